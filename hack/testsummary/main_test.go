package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func jsonLines(t *testing.T, events ...event) string {
	t.Helper()
	var b strings.Builder
	for _, e := range events {
		raw, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(raw)
		b.WriteByte('\n')
	}
	return b.String()
}

func summarize(t *testing.T, in string) (string, bool) {
	t.Helper()
	var out bytes.Buffer
	s := &summary{out: &out, output: map[key][]string{}}
	if err := s.read(strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	ok := s.report()
	return out.String(), ok
}

func TestCountsSkipsWithReasons(t *testing.T) {
	in := jsonLines(t,
		event{Action: "run", Package: "p", Test: "TestA"},
		event{Action: "output", Package: "p", Test: "TestA", Output: "=== RUN   TestA\n"},
		event{Action: "output", Package: "p", Test: "TestA", Output: "    a_test.go:9: noisy log of a passing test\n"},
		event{Action: "pass", Package: "p", Test: "TestA", Elapsed: 12.5},
		event{Action: "output", Package: "p", Test: "TestB", Output: "=== RUN   TestB\n"},
		event{Action: "output", Package: "p", Test: "TestB", Output: "    b_test.go:10: looked for /dev/vfio\n"},
		event{Action: "output", Package: "p", Test: "TestB", Output: "    b_test.go:12: needs root\n"},
		event{Action: "output", Package: "p", Test: "TestB", Output: "--- SKIP: TestB (0.00s)\n"},
		event{Action: "skip", Package: "p", Test: "TestB"},
		event{Action: "output", Package: "p", Output: "PASS\n"},
		event{Action: "pass", Package: "p", Elapsed: 1.5},
		event{Action: "skip", Package: "q"},
	)
	out, ok := summarize(t, in)
	if !ok {
		t.Errorf("a run without failures reported failure:\n%s", out)
	}
	for _, want := range []string{"ok  \tp\t1.500s", "?   \tq\t[no test files]", "tests: 1 passed, 0 failed, 1 skipped", "  p TestB: b_test.go:12: needs root\n",
		"slowest tests (1):\n      12.5s  p TestA\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "noisy log") {
		t.Errorf("the output of a passing test is shown:\n%s", out)
	}
}

func TestFailuresShowTheirOutputAndFail(t *testing.T) {
	in := jsonLines(t,
		event{Action: "output", Package: "p", Test: "TestC", Output: "    c_test.go:3: got 1, want 2\n"},
		event{Action: "fail", Package: "p", Test: "TestC"},
		event{Action: "fail", Package: "p", Elapsed: 0.2},
	)
	out, ok := summarize(t, in)
	if ok {
		t.Errorf("a failed test reported success:\n%s", out)
	}
	for _, want := range []string{"got 1, want 2", "FAIL\tp\t0.200s", "tests: 0 passed, 1 failed, 0 skipped", "FAIL: p"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	out, ok = summarize(t, jsonLines(t, event{Action: "build-output", Package: "r", Output: "r/x.go:1:1: syntax error\n"},
		event{Action: "build-fail", Package: "r"}))
	if ok || !strings.Contains(out, "syntax error") {
		t.Errorf("a build failure: ok=%v\n%s", ok, out)
	}
}

// TestRealGoTest runs go test -json on a throwaway module with a pass, a
// skip and a failure, so a change in test2json's format shows here.
func TestRealGoTest(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test on a throwaway module: skipped with -short")
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/m\n\ngo 1.22\n",
		"m_test.go": `package m

import "testing"

func TestPass(t *testing.T) {}
func TestSkip(t *testing.T) { t.Skip("no SR-IOV here") }
func TestFail(t *testing.T) { t.Error("broken") }
`,
	}
	for name, body := range files {
		if err := writeFile(filepath.Join(dir, name), body); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "test", "-count=1", "-json", "./...")
	cmd.Dir = dir
	raw, _ := cmd.Output() // exits 1: TestFail
	out, ok := summarize(t, string(raw))
	if ok {
		t.Errorf("a failing go test summarized as success:\n%s", out)
	}
	for _, want := range []string{"tests: 1 passed, 1 failed, 1 skipped", "TestSkip: m_test.go:6: no SR-IOV here", "broken", "FAIL\texample.com/m"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

func writeFile(path, body string) error { return os.WriteFile(path, []byte(body), 0o644) }

// TestCommandsRunAtOnce runs two commands with -c's code path: their
// events add up, and a command that exits non-zero without a failed test
// (a crashed go test, a killed process) still fails the run.
func TestCommandsRunAtOnce(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.json")
	b := filepath.Join(dir, "b.json")
	if err := writeFile(a, jsonLines(t, event{Action: "pass", Package: "p", Test: "TestA"}, event{Action: "pass", Package: "p", Elapsed: 1})); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(b, jsonLines(t, event{Action: "pass", Package: "q", Test: "TestB"}, event{Action: "pass", Package: "q", Elapsed: 2})); err != nil {
		t.Fatal(err)
	}
	run := func(cmds ...string) (string, bool) {
		var out, stderr bytes.Buffer
		s := &summary{out: &out, output: map[key][]string{}}
		if err := s.run(cmds, &stderr); err != nil {
			t.Fatal(err)
		}
		ok := s.report()
		return out.String(), ok
	}
	out, ok := run("cat "+a, "sleep 0.2; cat "+b)
	if !ok || !strings.Contains(out, "tests: 2 passed, 0 failed, 0 skipped") || !strings.Contains(out, "ok  \tq\t2.000s") {
		t.Errorf("two passing commands: ok=%v\n%s", ok, out)
	}
	out, ok = run("cat "+a, "cat "+b+"; exit 3")
	if ok || !strings.Contains(out, "exit status 3") {
		t.Errorf("a command exiting 3 after passing tests: ok=%v\n%s", ok, out)
	}
}
