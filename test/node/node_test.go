// Package node runs the guest test suites under test/node/guest inside the
// emulated sluice node (test/node/vm: QEMU, the Debian backports kernel,
// emulated igb SR-IOV NICs, soft-RoCE) and reports each guest test as a
// subtest of TestGuest. It is part of "go test ./..." and runs alone with
// "make test-node". See docs/emulated-node.md.
//
// Environment:
//
//	SLUICE_SKIP_NODE=1       skip the emulated node entirely (so does -short)
//	SLUICE_NODE_SUITES=a,b   run only these guest suites
//	SLUICE_NODE_RUN=regexp   -test.run for the guest binaries (by default
//	                         taken from -run TestGuest/<suite>/<test>)
//	SLUICE_NODE_BENCH=regexp -test.bench for the guest binaries (tests then
//	                         run only if SLUICE_NODE_RUN or -run names
//	                         them); SLUICE_NODE_BENCHTIME is -test.benchtime
//	                         (default 20x). make bench uses it.
//	SLUICE_NODE_VERBOSE=1    log the whole serial console as it arrives
//	SLUICE_NODE_KEEP=1       keep the run directory (kept anyway on failure)
package node

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluice-net/sluice/test/node/vm"
	"github.com/sluice-net/sluice/test/testenv"
)

func repoRoot() string { return testenv.RepoRoot() }

func goBin() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

func TestGuest(t *testing.T) {
	if os.Getenv("SLUICE_SKIP_NODE") == "1" {
		t.Skip("SLUICE_SKIP_NODE=1")
	}
	if testing.Short() {
		t.Skip("the emulated node takes minutes: skipped with -short")
	}
	start := time.Now()
	ctx := context.Background()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-30*time.Second))
		defer cancel()
	}
	root := repoRoot()

	// A fresh CI machine gets QEMU, the kernel and the tools here (root);
	// elsewhere, say exactly what is missing.
	if err := vm.EnsureDeps(ctx, filepath.Join(root, "hack", "node-deps.sh")); err != nil {
		if os.Geteuid() == 0 {
			t.Fatalf("emulated node: %v", err)
		}
		t.Skipf("emulated node: %v", err)
	}
	depsDone := time.Now()

	suites, err := discoverSuites(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	suiteRE, guestRun := runFilter()
	if suiteRE != nil {
		var sel []*guestSuite
		for _, s := range suites {
			if suiteRE.MatchString(s.Name) {
				sel = append(sel, s)
			}
		}
		suites = sel
	}
	if only := os.Getenv("SLUICE_NODE_SUITES"); only != "" {
		keep := map[string]bool{}
		for _, n := range strings.Split(only, ",") {
			keep[strings.TrimSpace(n)] = true
		}
		var sel []*guestSuite
		for _, s := range suites {
			if keep[s.Name] {
				sel = append(sel, s)
			}
		}
		suites = sel
	}
	if len(suites) == 0 {
		t.Skip("no guest suites selected")
	}

	runDir, err := vm.NewRunDir("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("SLUICE_NODE_KEEP") == "1" {
			t.Logf("run directory kept: %s", runDir)
			return
		}
		_ = os.RemoveAll(runDir)
	})

	// One test binary per guest package, built in one go command.
	binDir := filepath.Join(runDir, "bin")
	args := []string{"test", "-c", "-tags", "nodetest", "-o", binDir + "/"}
	for _, s := range suites {
		args = append(args, s.ImportPath)
	}
	build := exec.CommandContext(ctx, goBin(), args...)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for _, s := range suites {
		if _, err := os.Stat(suiteBinary(runDir, s)); err != nil {
			t.Fatalf("guest suite %s: no test binary: %v", s.Name, err)
		}
	}
	built := time.Now()

	for _, s := range suites {
		s.host = newHost(s.Name, runDir, root)
		if err := os.MkdirAll(s.host.OutDir(), 0o755); err != nil {
			t.Fatal(err)
		}
		if s.Setup != nil {
			s.Setup(t, s.host)
		}
	}

	var total tally
	var timings []string
	timings = append(timings, fmt.Sprintf("deps check %s, build %s", depsDone.Sub(start).Round(time.Millisecond), built.Sub(depsDone).Round(time.Millisecond)))
	for _, g := range groupSuites(suites) {
		res, err := runGroup(ctx, t, g, runDir, guestRun)
		if res != nil {
			timings = append(timings, fmt.Sprintf("VM %q (%d PF, IOMMU %v): boot %s, total %s", g.name, g.opts.PFs, g.opts.IOMMU,
				res.Boot.Round(time.Millisecond), res.Duration.Round(time.Millisecond)))
		}
		if err != nil {
			t.Errorf("VM %q: %v", g.name, err)
			if res != nil {
				t.Logf("console tail:\n%s", vm.Tail(res.Console, 60))
			}
		}
		for _, s := range g.suites {
			rep := reportSuite(ctx, t, s, runDir, res)
			if rep == nil {
				continue
			}
			var ta tally
			ta.add(s.Name, rep.tests)
			total.passed += ta.passed
			total.failed += ta.failed
			total.skipped += ta.skipped
			total.unfinished += ta.unfinished
			total.skips = append(total.skips, ta.skips...)
			timings = append(timings, fmt.Sprintf("suite %s: %.1fs in the guest", s.Name, rep.elapsed))
		}
	}
	summary := fmt.Sprintf("emulated node: %d passed, %d failed, %d skipped, %d unfinished guest tests in %s\n  %s",
		total.passed, total.failed, total.skipped, total.unfinished, time.Since(start).Round(time.Millisecond), strings.Join(timings, "\n  "))
	if len(total.skips) > 0 {
		summary += fmt.Sprintf("\nskipped (%d):\n  %s", len(total.skips), strings.Join(total.skips, "\n  "))
	}
	t.Log(summary)
}

// runFilter maps the host's -run pattern onto the guest:
// "TestGuest/<suite re>/<guest test re>/..." selects suites and becomes the
// guest binaries' -test.run, so "go test ./test/node -run
// TestGuest/probe/TestRXE" boots the node for that test alone.
// SLUICE_NODE_RUN, when set, is the guest -test.run instead.
func runFilter() (*regexp.Regexp, string) {
	var suiteRE *regexp.Regexp
	guest := ""
	if f := flag.Lookup("test.run"); f != nil && f.Value.String() != "" {
		parts := strings.Split(f.Value.String(), "/")
		if len(parts) >= 2 && parts[1] != "" {
			if re, err := regexp.Compile(parts[1]); err == nil {
				suiteRE = re
			}
		}
		if len(parts) >= 3 {
			guest = strings.Join(parts[2:], "/")
		}
	}
	if run := os.Getenv("SLUICE_NODE_RUN"); run != "" {
		guest = run
	}
	return suiteRE, guest
}

// guestArgs are the guest binaries' -test.run and, with SLUICE_NODE_BENCH,
// -test.bench flags, shell-quoted.
func guestArgs(guestRun string) []string {
	var args []string
	bench := os.Getenv("SLUICE_NODE_BENCH")
	if bench != "" && guestRun == "" {
		guestRun = "^$" // benchmarks alone
	}
	if guestRun != "" {
		args = append(args, vm.ShellQuote("-test.run="+guestRun))
	}
	if bench != "" {
		benchtime := os.Getenv("SLUICE_NODE_BENCHTIME")
		if benchtime == "" {
			benchtime = "20x"
		}
		args = append(args, vm.ShellQuote("-test.bench="+bench), vm.ShellQuote("-test.benchtime="+benchtime))
	}
	return args
}

func suiteBinary(runDir string, s *guestSuite) string {
	return filepath.Join(runDir, "bin", filepath.Base(s.ImportPath)+".test")
}

func suiteOutput(runDir string, s *guestSuite) string {
	return filepath.Join(runDir, "out", s.Name+".testout")
}

// runGroup boots one VM and runs the group's suites one after the other.
func runGroup(ctx context.Context, t *testing.T, g *vmGroup, runDir, guestRun string) (*vm.Result, error) {
	var script strings.Builder
	script.WriteString("# generated by test/node: run each guest suite's test binary\n")
	script.WriteString("now() { read -r up _ </proc/uptime; echo \"$up\"; }\n")
	var vmTimeout time.Duration
	for _, s := range g.suites {
		timeout := s.Timeout
		if timeout == 0 {
			timeout = 5 * time.Minute
		}
		vmTimeout += timeout
		env := []string{"SLUICE_NODE_SUITE=" + s.Name, "SLUICE_NODE_OUTDIR=" + s.host.OutDir()}
		for k, v := range s.host.env {
			env = append(env, k+"="+v)
		}
		cmd := []string{"env"}
		for _, kv := range env {
			cmd = append(cmd, vm.ShellQuote(kv))
		}
		cmd = append(cmd, vm.ShellQuote(suiteBinary(runDir, s)), "-test.v=test2json", "-test.count=1",
			"-test.timeout="+timeout.String())
		cmd = append(cmd, guestArgs(guestRun)...)
		out := suiteOutput(runDir, s)
		fmt.Fprintf(&script, "echo \"sluice-node: suite %s start at $(now)s\"\n", s.Name)
		fmt.Fprintf(&script, "cd %s && { %s; echo $? >%s; } 2>&1 | tee %s\n",
			vm.ShellQuote(s.Dir), strings.Join(cmd, " "), vm.ShellQuote(out+".rc"), vm.ShellQuote(out))
		fmt.Fprintf(&script, "echo \"sluice-node: suite %s exit $(cat %s) at $(now)s\"\n", s.Name, vm.ShellQuote(out+".rc"))
	}
	script.WriteString("exit 0\n")

	opts := g.opts
	opts.Script = script.String()
	opts.RunDir = runDir
	for _, s := range g.suites {
		opts.HostDirs = append(opts.HostDirs, s.Dir) // each suite runs in its package directory
	}
	opts.Timeout = vmTimeout + 3*time.Minute
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < opts.Timeout {
		opts.Timeout = time.Until(dl)
	}
	logf, err := os.Create(filepath.Join(runDir, "console-"+g.name+".log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cw := newConsoleLogger(t, logf, os.Getenv("SLUICE_NODE_VERBOSE") == "1")
	defer cw.Close()
	opts.Console = cw
	t.Logf("booting VM %q: %d PF(s), IOMMU %v, suites %s", g.name, opts.PFs, opts.IOMMU, suiteNames(g.suites))
	return vm.Run(ctx, opts)
}

// reportSuite replays a suite's guest tests as TestGuest/<suite>/... and
// runs its Check. It returns nil when the suite left no output.
func reportSuite(ctx context.Context, t *testing.T, s *guestSuite, runDir string, res *vm.Result) *suiteReport {
	raw := readIfExists(suiteOutput(runDir, s))
	rc := strings.TrimSpace(string(readIfExists(suiteOutput(runDir, s) + ".rc")))
	var rep *suiteReport
	t.Run(s.Name, func(t *testing.T) {
		if len(raw) == 0 {
			msg := fmt.Sprintf("guest suite %s produced no output (exit %q)", s.Name, rc)
			if res != nil {
				msg += "; console tail:\n" + vm.Tail(res.Console, 40)
			}
			t.Fatal(msg)
		}
		var err error
		rep, err = parseTestOutput(ctx, s.ImportPath, raw)
		if err != nil {
			t.Fatal(err)
		}
		replay(t, rep.tests)
		s.host.results = map[string]string{}
		var record func([]*guestTest)
		record = func(ts []*guestTest) {
			for _, g := range ts {
				s.host.results[g.name] = g.action
				record(g.children)
			}
		}
		record(rep.tests)
		var ta tally
		ta.add(s.Name, rep.tests)
		switch {
		case rep.pkgAction == "":
			t.Errorf("guest suite %s output ended without a result (exit %q): crashed, timed out or the VM stopped; last lines:\n%s", s.Name, rc, strings.Join(lastN(rep.pkgOutput, 20), "\n"))
		case rep.pkgAction == "fail" && ta.failed == 0 && ta.unfinished == 0:
			t.Errorf("guest suite %s failed outside any test (exit %q):\n%s", s.Name, rc, strings.Join(rep.pkgOutput, "\n"))
		case rc != "0" && ta.failed == 0:
			t.Errorf("guest suite %s exited %q", s.Name, rc)
		}
		if s.Check != nil {
			t.Run("HostCheck", func(t *testing.T) { s.Check(t, s.host) })
		}
	})
	return rep
}

func suiteNames(ss []*guestSuite) string {
	var n []string
	for _, s := range ss {
		n = append(n, s.Name)
	}
	return strings.Join(n, ",")
}

func lastN(lines []string, n int) []string {
	if len(lines) > n {
		return lines[len(lines)-n:]
	}
	return lines
}

// consoleLogger copies the serial console to a file and logs progress lines
// (the node's own messages and top-level guest test results) to the test,
// or every line when verbose.
type consoleLogger struct {
	pw   *io.PipeWriter
	done chan struct{}
}

func newConsoleLogger(t *testing.T, file io.Writer, verbose bool) *consoleLogger {
	pr, pw := io.Pipe()
	c := &consoleLogger{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(io.TeeReader(pr, file))
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			line := strings.TrimRight(strings.ReplaceAll(sc.Text(), "\x16", ""), "\r")
			if verbose || strings.HasPrefix(line, "sluice-node:") || strings.HasPrefix(line, "SLUICE_NODE_EXIT") ||
				strings.HasPrefix(line, "--- ") || strings.Contains(line, "Kernel panic") {
				t.Log("vm: " + line)
			}
		}
		// Keep QEMU's output flowing even if a line was too long to scan.
		_, _ = io.Copy(io.Discard, pr)
	}()
	return c
}

func (c *consoleLogger) Write(p []byte) (int, error) { return c.pw.Write(p) }

func (c *consoleLogger) Close() {
	c.pw.Close()
	<-c.done
}
