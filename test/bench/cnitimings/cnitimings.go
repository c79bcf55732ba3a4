// Package cnitimings reads the step timings sluice-cni writes with
// SLUICE_CNI_TIMINGS (cni/plugin.Timing, one line per command) into the
// medians the emulated-node benchmark and hack/cni-ab report.
package cnitimings

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	cniplugin "github.com/sluice-net/sluice/cni/plugin"
)

// Steps are, per command, each step's durations over the runs, in the
// order the steps first appear, and the in-process totals.
type Steps struct {
	order  map[string][]string
	steps  map[string]map[string][]time.Duration
	totals map[string][]time.Duration
}

// Read reads a timings file.
func Read(path string) (*Steps, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("the binary wrote no timings: %w", err)
	}
	defer f.Close()
	st := &Steps{order: map[string][]string{}, steps: map[string]map[string][]time.Duration{}, totals: map[string][]time.Duration{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var tm cniplugin.Timing
		if err := json.Unmarshal(sc.Bytes(), &tm); err != nil {
			return nil, fmt.Errorf("timings line %q: %w", sc.Text(), err)
		}
		if st.steps[tm.Command] == nil {
			st.steps[tm.Command] = map[string][]time.Duration{}
		}
		for _, s := range tm.Steps {
			if _, seen := st.steps[tm.Command][s.Name]; !seen {
				st.order[tm.Command] = append(st.order[tm.Command], s.Name)
			}
			st.steps[tm.Command][s.Name] = append(st.steps[tm.Command][s.Name], time.Duration(s.Micros)*time.Microsecond)
		}
		st.totals[tm.Command] = append(st.totals[tm.Command], time.Duration(tm.TotalMicros)*time.Microsecond)
	}
	return st, sc.Err()
}

// Medians is the median of each step of command, in order, as
// " name=ms" with spaces in names as underscores.
func (st *Steps) Medians(command string) string {
	var b strings.Builder
	for _, name := range st.order[command] {
		fmt.Fprintf(&b, " %s=%.2f", strings.ReplaceAll(name, " ", "_"), Millis(Median(st.steps[command][name])))
	}
	return b.String()
}

// InProcess is the median of command's in-process totals.
func (st *Steps) InProcess(command string) time.Duration { return Median(st.totals[command]) }

// Median is the median of d; 0 when d is empty.
func Median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Millis is d in milliseconds.
func Millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
