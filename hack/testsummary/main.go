// Command testsummary reads `go test -json` on stdin and prints what a
// plain `go test` prints (an ok/FAIL line per package, the whole output of
// failed tests and of failed packages), then counts the tests and lists
// every skipped test with its reason, so that a skip is never silent.
// It exits 1 when a test, a package or a build failed.
//
//	go test -json ./... | go run ./hack/testsummary
//
// With -c (repeatable) it runs each command with sh -c instead, all at the
// same time, and reads their outputs as one stream: make test runs the
// real-cluster suite next to the other packages this way, each emulated
// node on its own host core. A command that exits non-zero fails the run
// even when its output showed no failed test.
//
//	testsummary -c 'go test -json ./a/...' -c 'go test -json ./b'
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
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
	failedCmds              []string
	// timed are the finished tests with their times, for the slowest list.
	timed []timedTest
}

type timedTest struct {
	name    string
	elapsed float64
}

// slowest is how many of the slowest tests the report lists.
const slowest = 15

type commands []string

func (c *commands) String() string     { return strings.Join(*c, "; ") }
func (c *commands) Set(v string) error { *c = append(*c, v); return nil }

func main() {
	var cmds commands
	flag.Var(&cmds, "c", "run this command (sh -c) and read its go test -json output; repeatable, all run at once")
	flag.Parse()
	s := &summary{out: os.Stdout, output: map[key][]string{}}
	var err error
	if len(cmds) == 0 {
		err = s.read(os.Stdin)
	} else {
		err = s.run(cmds, os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if !s.report() {
		os.Exit(1)
	}
}

func (s *summary) read(r io.Reader) error {
	sc := scanner(r)
	for sc.Scan() {
		s.line(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read go test -json: %w", err)
	}
	return nil
}

func scanner(r io.Reader) *bufio.Scanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	return sc
}

func (s *summary) line(line []byte) {
	var e event
	if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
		fmt.Fprintf(s.out, "%s\n", line) // not test2json: a message of go itself
		return
	}
	s.handle(e)
}

// run starts every command at once and handles their output lines as
// they come, one line at a time (lines of different commands never mix).
// A command that cannot start is an error; one that exits non-zero is a
// failure of the run, reported with the rest.
func (s *summary) run(cmds []string, stderr io.Writer) error {
	lines := make(chan []byte)
	exits := make([]error, len(cmds))
	var wg sync.WaitGroup
	for i, c := range cmds {
		cmd := exec.Command("sh", "-c", c)
		cmd.Stderr = stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start %q: %w", c, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := scanner(out)
			for sc.Scan() {
				lines <- bytes.Clone(sc.Bytes())
			}
			if err := sc.Err(); err != nil {
				_, _ = io.Copy(io.Discard, out)
				exits[i] = fmt.Errorf("read its output: %w", err)
			}
			if err := cmd.Wait(); err != nil && exits[i] == nil {
				exits[i] = err
			}
		}()
	}
	go func() {
		wg.Wait()
		close(lines)
	}()
	for l := range lines {
		s.line(l)
	}
	for i, err := range exits {
		if err != nil {
			s.failedCmds = append(s.failedCmds, fmt.Sprintf("%q: %v", cmds[i], err))
		}
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
	if e.Action != "skip" {
		s.timed = append(s.timed, timedTest{name: e.Package + " " + e.Test, elapsed: e.Elapsed})
	}
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
	if len(s.timed) > 0 {
		sort.SliceStable(s.timed, func(i, j int) bool { return s.timed[i].elapsed > s.timed[j].elapsed })
		n := min(slowest, len(s.timed))
		fmt.Fprintf(s.out, "\nslowest tests (%d):\n", n)
		for _, t := range s.timed[:n] {
			fmt.Fprintf(s.out, "  %8.1fs  %s\n", t.elapsed, t.name)
		}
	}
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
	for _, c := range s.failedCmds {
		fmt.Fprintf(s.out, "FAIL: command %s\n", c)
	}
	return s.failed == 0 && len(s.failedPkgs) == 0 && !s.buildFailed && len(s.failedCmds) == 0
}
