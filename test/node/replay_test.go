package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// testEvent is one line of go tool test2json's output.
type testEvent struct {
	Action  string
	Test    string
	Output  string
	Elapsed float64
}

// guestTest is one guest test (or subtest) and what it printed.
type guestTest struct {
	name     string // full name, e.g. TestVFConfig/VLAN
	action   string // pass, fail, skip; "" if it never finished
	output   []string
	elapsed  float64
	children []*guestTest
}

// suiteReport is a guest suite's parsed output.
type suiteReport struct {
	tests     []*guestTest // top level, in order
	pkgAction string       // pass, fail, skip ("" when the binary's output ended early)
	pkgOutput []string
	elapsed   float64
}

// parseTestOutput converts a guest binary's -test.v=test2json output with
// go tool test2json and builds the test tree.
func parseTestOutput(ctx context.Context, pkg string, raw []byte) (*suiteReport, error) {
	cmd := exec.CommandContext(ctx, goBin(), "tool", "test2json", "-p", pkg)
	cmd.Stdin = bytes.NewReader(raw)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go tool test2json: %w: %s", err, errb.String())
	}
	return parseEvents(out.Bytes())
}

func parseEvents(jsonLines []byte) (*suiteReport, error) {
	rep := &suiteReport{}
	byName := map[string]*guestTest{}
	sc := bufio.NewScanner(bytes.NewReader(jsonLines))
	sc.Buffer(make([]byte, 1024*1024), 16*1024*1024)
	for sc.Scan() {
		var ev testEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("test2json line %q: %w", sc.Text(), err)
		}
		if ev.Test == "" {
			switch ev.Action {
			case "output":
				rep.pkgOutput = append(rep.pkgOutput, strings.TrimRight(ev.Output, "\n"))
			case "pass", "fail", "skip":
				rep.pkgAction, rep.elapsed = ev.Action, ev.Elapsed
			}
			continue
		}
		gt := byName[ev.Test]
		if gt == nil {
			gt = &guestTest{name: ev.Test}
			byName[ev.Test] = gt
			if parent := parentOf(byName, ev.Test); parent != nil {
				parent.children = append(parent.children, gt)
			} else {
				rep.tests = append(rep.tests, gt)
			}
		}
		switch ev.Action {
		case "output":
			line := strings.TrimRight(ev.Output, "\n")
			gt.output = append(gt.output, line)
			if m := resultLine.FindStringSubmatch(line); m != nil && m[1] == ev.Test {
				gt.elapsed, _ = strconv.ParseFloat(m[2], 64)
			}
		case "pass", "fail", "skip":
			gt.action = ev.Action
			if ev.Elapsed > 0 {
				gt.elapsed = ev.Elapsed
			}
		}
	}
	// test2json gives a benchmark no pass event: one that did not fail
	// passed with its package.
	if rep.pkgAction == "pass" {
		var passBenchmarks func([]*guestTest)
		passBenchmarks = func(ts []*guestTest) {
			for _, g := range ts {
				if g.action == "" && strings.HasPrefix(g.name, "Benchmark") {
					g.action = "pass"
				}
				passBenchmarks(g.children)
			}
		}
		passBenchmarks(rep.tests)
	}
	if rep.elapsed == 0 {
		for _, g := range rep.tests {
			rep.elapsed += g.elapsed
		}
	}
	return rep, sc.Err()
}

// parentOf finds the closest known ancestor of a subtest name.
func parentOf(byName map[string]*guestTest, name string) *guestTest {
	for i := strings.LastIndex(name, "/"); i > 0; i = strings.LastIndex(name[:i], "/") {
		if p := byName[name[:i]]; p != nil {
			return p
		}
	}
	return nil
}

// resultLine is "--- PASS: TestX/sub (1.23s)".
var resultLine = regexp.MustCompile(`^\s*--- (?:PASS|FAIL|SKIP): (\S+) \(([0-9.]+)s\)`)

var framing = regexp.MustCompile(`^\s*(=== (RUN|PAUSE|CONT|NAME)|--- (PASS|FAIL|SKIP):)`)

// logLines is a test's output without the framing lines.
func (g *guestTest) logLines() []string {
	var out []string
	for _, l := range g.output {
		if !framing.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

// skipReason is the skipped test's own output, joined.
func (g *guestTest) skipReason() string {
	var parts []string
	for _, l := range g.logLines() {
		if s := strings.TrimSpace(l); s != "" {
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 {
		return "(no reason given)"
	}
	return strings.Join(parts, " ")
}

func (g *guestTest) anyChildFailed() bool {
	for _, c := range g.children {
		if c.action == "fail" || c.action == "" || c.anyChildFailed() {
			return true
		}
	}
	return false
}

// tally counts results over a tree and collects skip reasons.
type tally struct {
	passed, failed, skipped, unfinished int
	skips                               []string
}

func (ta *tally) add(prefix string, tests []*guestTest) {
	for _, g := range tests {
		switch g.action {
		case "pass":
			ta.passed++
		case "fail":
			ta.failed++
		case "skip":
			ta.skipped++
			ta.skips = append(ta.skips, fmt.Sprintf("%s/%s: %s", prefix, g.name, g.skipReason()))
		default:
			ta.unfinished++
		}
		ta.add(prefix, g.children)
	}
}

// replay turns guest tests into host subtests with the same names and
// results, their guest output attached.
func replay(t *testing.T, tests []*guestTest) {
	for _, g := range tests {
		short := g.name[strings.LastIndex(g.name, "/")+1:]
		t.Run(short, func(t *testing.T) {
			if lines := g.logLines(); len(lines) > 0 {
				t.Log("guest output:\n" + strings.Join(lines, "\n"))
			}
			replay(t, g.children)
			switch g.action {
			case "pass":
			case "fail":
				if !g.anyChildFailed() {
					t.Errorf("guest test %s failed (%.2fs)", g.name, g.elapsed)
				}
			case "skip":
				t.Skip("guest skipped: " + g.skipReason())
			default:
				t.Errorf("guest test %s never finished (the binary crashed, timed out or the VM stopped); see the suite's output", g.name)
			}
		})
	}
}

// readIfExists returns a file's content or nil.
func readIfExists(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return b
}
