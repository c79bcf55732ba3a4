// Command cni-ab compares sluice-cni builds on one VF of the emulated
// node, inside one boot: it runs ADD then DEL of each build in turn, the
// builds' order reversed every other round, and prints each build's ADD and
// DEL medians, their ratio and the median of each step (SLUICE_CNI_TIMINGS).
// Runs on different boots move every step together by more than the
// difference between two builds (docs/benchmarks.md), so builds are only
// compared within one run. hack/cni-ab.sh builds the revisions, boots the
// node and runs it there:
//
//	hack/cni-ab.sh HEAD~1 HEAD
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	cniplugin "github.com/sluice-net/sluice/cni/plugin"
	"github.com/sluice-net/sluice/test/bench/cnitimings"
)

func main() {
	n := flag.Int("n", 40, "ADD+DEL pairs per build")
	netns := flag.String("netns", "", "the pod's network namespace (CNI_NETNS)")
	confPath := flag.String("conf", "", "the network configuration")
	flag.Parse()
	conf, err := os.ReadFile(*confPath)
	if err != nil {
		fatal(err)
	}
	bins := flag.Args()
	if len(bins) == 0 || *netns == "" {
		fatal(fmt.Errorf("usage: cni-ab -netns PATH -conf FILE sluice-cni [sluice-cni ...]"))
	}
	add := make([][]time.Duration, len(bins))
	del := make([][]time.Duration, len(bins))
	for i := range *n {
		order := make([]int, len(bins))
		for j := range order {
			order[j] = j
		}
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, j := range order {
			cid := fmt.Sprintf("ab%d-%d", i, j)
			for _, cmd := range []string{"ADD", "DEL"} {
				d, err := run(bins[j], cmd, cid, *netns, conf)
				if err != nil {
					fatal(fmt.Errorf("%s %s %s: %w", bins[j], cmd, cid, err))
				}
				if cmd == "ADD" {
					add[j] = append(add[j], d)
				} else {
					del[j] = append(del[j], d)
				}
			}
		}
	}
	ms := cnitimings.Millis
	for j, bin := range bins {
		a, d := cnitimings.Median(add[j]), cnitimings.Median(del[j])
		fmt.Printf("%s: ADD median %.1f ms (%.1f-%.1f), DEL median %.1f ms (%.1f-%.1f), ADD/DEL %.3f\n", bin,
			ms(a), ms(slices.Min(add[j])), ms(slices.Max(add[j])), ms(d), ms(slices.Min(del[j])), ms(slices.Max(del[j])), float64(a)/float64(d))
		if err := printSteps(timingsPath(bin)); err != nil {
			fmt.Printf("  no steps: %v\n", err)
		}
	}
}

func timingsPath(bin string) string { return bin + ".timings" }

// run executes one command of the build at bin as a runtime does.
func run(bin, cmd, cid, netns string, conf []byte) (time.Duration, error) {
	c := exec.Command(bin)
	c.Env = []string{
		"CNI_COMMAND=" + cmd, "CNI_CONTAINERID=" + cid, "CNI_NETNS=" + netns, "CNI_IFNAME=net1",
		"CNI_PATH=" + filepath.Dir(bin), "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=" + cid,
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin", cniplugin.TimingsEnv + "=" + timingsPath(bin),
	}
	c.Stdin = bytes.NewReader(conf)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	start := time.Now()
	if err := c.Run(); err != nil {
		return 0, fmt.Errorf("%w: %s", err, out.String())
	}
	return time.Since(start), nil
}

// printSteps prints the median of each step of each command.
func printSteps(path string) error {
	st, err := cnitimings.Read(path)
	if err != nil {
		return err
	}
	for _, cmd := range []string{"ADD", "DEL"} {
		fmt.Printf("  %s steps (median ms):%s in_process=%.2f\n", cmd, st.Medians(cmd), cnitimings.Millis(st.InProcess(cmd)))
	}
	return nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "cni-ab:", err)
	os.Exit(1)
}
