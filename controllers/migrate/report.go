package migrate

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Status is what became of one field of an incumbent object.
type Status string

const (
	// Mapped: the field is carried over with the same meaning and value.
	Mapped Status = "mapped"
	// Changed: the field is carried over, but its spelling, place or
	// effect differs; Entry.Detail says how.
	Changed Status = "changed"
	// Unsupported: sluice has no equivalent; Entry.Detail says why and
	// what to do instead.
	Unsupported Status = "unsupported"
)

// Entry is the fate of one field of one input object.
type Entry struct {
	// Object is "<Kind> <namespace>/<name>" (or "<Kind> <name>") of the
	// input, Source the file (and document) or "cluster" it came from.
	Object string `json:"object"`
	Source string `json:"source,omitempty"`
	// Field is the field's path in the input, e.g. spec.nicSelector.vendor.
	Field  string `json:"field"`
	Status Status `json:"status"`
	// Target is where the value went in the sluice object (or flag).
	Target string `json:"target,omitempty"`
	// Detail says how it changed, or why it is unsupported and the way
	// around it.
	Detail string `json:"detail,omitempty"`
}

// Report is the entries of a migration, in input order.
type Report struct {
	Entries []Entry `json:"entries"`
}

// Add appends entries.
func (r *Report) Add(e ...Entry) { r.Entries = append(r.Entries, e...) }

// Count returns how many entries have status s.
func (r *Report) Count(s Status) int {
	n := 0
	for _, e := range r.Entries {
		if e.Status == s {
			n++
		}
	}
	return n
}

// WriteTable writes the report as a table a person reads, then a line of
// totals.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OBJECT\tFIELD\tSTATUS\tSLUICE\tDETAIL")
	for _, e := range r.Entries {
		target := dash(e.Target)
		if e.Target == e.Field {
			target = "same"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Object, e.Field, e.Status, target, oneLine(e.Detail))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	_, err := fmt.Fprintf(w, "\n%d mapped, %d changed, %d unsupported\n", r.Count(Mapped), r.Count(Changed), r.Count(Unsupported))
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// WriteJSON writes the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
