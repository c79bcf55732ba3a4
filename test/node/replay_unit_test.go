package node

import (
	"strings"
	"testing"
)

// TestParseEvents checks the guest-output parsing that TestGuest relies on,
// without a VM.
func TestParseEvents(t *testing.T) {
	events := `{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"    a_test.go:10: hello\n"}
{"Action":"run","Package":"p","Test":"TestA/sub"}
{"Action":"output","Package":"p","Test":"TestA/sub","Output":"    a_test.go:12: measured: no\n"}
{"Action":"output","Package":"p","Test":"TestA/sub","Output":"    --- SKIP: TestA/sub (0.50s)\n"}
{"Action":"skip","Package":"p","Test":"TestA/sub"}
{"Action":"output","Package":"p","Test":"TestA","Output":"--- PASS: TestA (1.25s)\n"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"run","Package":"p","Test":"TestB"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:3: boom\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"--- FAIL: TestB (2.00s)\n"}
{"Action":"fail","Package":"p","Test":"TestB"}
{"Action":"run","Package":"p","Test":"TestC"}
{"Action":"output","Package":"p","Output":"FAIL\n"}
{"Action":"fail","Package":"p"}
`
	rep, err := parseEvents([]byte(events))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.tests) != 3 || rep.tests[0].name != "TestA" || len(rep.tests[0].children) != 1 {
		t.Fatalf("tree: %+v", rep.tests)
	}
	if rep.pkgAction != "fail" || rep.elapsed != 3.25 {
		t.Errorf("package: %s %.2f", rep.pkgAction, rep.elapsed)
	}
	if got := strings.Join(rep.tests[0].logLines(), "|"); got != "    a_test.go:10: hello" {
		t.Errorf("TestA log lines %q", got)
	}
	var ta tally
	ta.add("p", rep.tests)
	if ta.passed != 1 || ta.failed != 1 || ta.skipped != 1 || ta.unfinished != 1 {
		t.Errorf("tally %+v", ta)
	}
	if len(ta.skips) != 1 || ta.skips[0] != "p/TestA/sub: a_test.go:12: measured: no" {
		t.Errorf("skip reasons %q", ta.skips)
	}
}

// TestBenchmarksPassWithTheirPackage: test2json gives benchmarks a run
// event and no pass event; one passes when its package passed, and stays
// unfinished (a failure) when the package did not.
func TestBenchmarksPassWithTheirPackage(t *testing.T) {
	for _, c := range []struct{ pkg, want string }{{"pass", "pass"}, {"fail", ""}} {
		events := `{"Action":"run","Package":"p","Test":"BenchmarkX"}
{"Action":"run","Package":"p","Test":"BenchmarkX/Sub"}
{"Action":"output","Package":"p","Test":"BenchmarkX/Sub","Output":"BenchmarkX/Sub-2 \t 20\t 630.0 add-ms\n"}
{"Action":"` + c.pkg + `","Package":"p"}
`
		rep, err := parseEvents([]byte(events))
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.tests) != 1 || len(rep.tests[0].children) != 1 {
			t.Fatalf("tree: %+v", rep.tests)
		}
		if got := rep.tests[0].children[0].action; got != c.want || rep.tests[0].action != c.want {
			t.Errorf("package %s: benchmark action %q, want %q", c.pkg, got, c.want)
		}
	}
}

func TestGroupSuites(t *testing.T) {
	suites := []*guestSuite{
		{Suite: Suite{Name: "a"}},
		{Suite: Suite{Name: "b", PFs: 2, IOMMU: true}},
		{Suite: Suite{Name: "c", Isolated: true, KernelArgs: []string{"x=1"}}},
	}
	groups := groupSuites(suites)
	if len(groups) != 2 {
		t.Fatalf("%d groups", len(groups))
	}
	if g := groups[0]; g.name != "shared" || len(g.suites) != 2 || g.opts.PFs != 2 || !g.opts.IOMMU {
		t.Errorf("shared group: %+v", g)
	}
	if g := groups[1]; g.name != "c" || g.opts.PFs != 1 || g.opts.IOMMU || len(g.opts.KernelArgs) != 1 {
		t.Errorf("isolated group: %+v", g)
	}
}
