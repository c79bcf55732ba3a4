// Command testsummary reads `go test -json` on stdin and prints what a
// plain `go test` prints (an ok/FAIL line per package, the whole output of
// failed tests and of failed packages), then counts the tests and lists
// every skipped test with its reason, so that a skip is never silent.
// It exits 1 when a test, a package or a build failed.
//
//	go test -json ./... | go run ./hack/testsummary
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// event is one line of test2json (go doc test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

type key struct{ pkg, test string }

// summary accumulates the stream.
type summary struct {
	out                     io.Writer
	output                  map[key][]string
	passed, failed, skipped int
	skips                   []string
	failedPkgs              []string
	buildFailed             bool
}

func main() {
	s := &summary{out: os.Stdout, output: map[key][]string{}}
	if err := s.read(os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if !s.report() {
		os.Exit(1)
	}
}

func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintf(s.out, "%s\n", line) // not test2json: a message of go itself
			continue
		}
		s.handle(e)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read go test -json: %w", err)
	}
	return nil
}

func (s *summary) handle(e event) {
	k := key{e.Package, e.Test}
	switch e.Action {
	case "build-output":
		fmt.Fprint(s.out, e.Output)
	case "build-fail":
		s.buildFailed = true
	case "output":
		s.output[k] = append(s.output[k], e.Output)
	case "pass", "fail", "skip":
		if e.Test == "" {
			s.packageDone(e)
		} else {
			s.testDone(e)
		}
		delete(s.output, k)
	}
}

func (s *summary) testDone(e event) {
	out := s.output[key{e.Package, e.Test}]
	switch e.Action {
	case "pass":
		s.passed++
	case "fail":
		s.failed++
		fmt.Fprint(s.out, strings.Join(out, ""))
	case "skip":
		s.skipped++
		s.skips = append(s.skips, fmt.Sprintf("%s %s: %s", e.Package, e.Test, skipReason(out)))
	}
}

func (s *summary) packageDone(e event) {
	out := s.output[key{e.Package, ""}]
	switch e.Action {
	case "pass":
		fmt.Fprintf(s.out, "ok  \t%s\t%.3fs\n", e.Package, e.Elapsed)
	case "skip":
		fmt.Fprintf(s.out, "?   \t%s\t[no test files]\n", e.Package)
	case "fail":
		s.failedPkgs = append(s.failedPkgs, e.Package)
		fmt.Fprint(s.out, strings.Join(out, ""))
		fmt.Fprintf(s.out, "FAIL\t%s\t%.3fs\n", e.Package, e.Elapsed)
	}
}

// skipReason is the last thing the test logged before it skipped (t.Skip
// logs its reason last), without go test's own "===" and "---" lines.
func skipReason(out []string) string {
	for i := len(out) - 1; i >= 0; i-- {
		t := strings.TrimSpace(out[i])
		if t != "" && !strings.HasPrefix(t, "=== ") && !strings.HasPrefix(t, "--- ") {
			return t
		}
	}
	return "(no reason given)"
}

// report prints the counts and the skips; false when anything failed.
func (s *summary) report() bool {
	fmt.Fprintf(s.out, "\ntests: %d passed, %d failed, %d skipped\n", s.passed, s.failed, s.skipped)
	if len(s.skips) > 0 {
		fmt.Fprintf(s.out, "skipped (%d):\n", len(s.skips))
		for _, sk := range s.skips {
			fmt.Fprintf(s.out, "  %s\n", sk)
		}
	}
	if len(s.failedPkgs) > 0 {
		fmt.Fprintf(s.out, "FAIL: %s\n", strings.Join(s.failedPkgs, " "))
	}
	if s.buildFailed {
		fmt.Fprintln(s.out, "FAIL: a package did not build (see above)")
	}
	return s.failed == 0 && len(s.failedPkgs) == 0 && !s.buildFailed
}
