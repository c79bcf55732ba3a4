package plugin_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/sluice-net/sluice/api/nodefiles"
)

// execPlugin runs the plugin binary as the runtime does (CNI_* variables,
// configuration on stdin) in the node's namespace; a failure is the
// types.Error the plugin printed.
func (e *env) execPlugin(bin, cmd string, pod ns.NetNS, cid, ifName string, conf []byte) ([]byte, error) {
	netns := ""
	if pod != nil {
		netns = pod.Path()
	}
	c := exec.Command(filepath.Join(binDir, bin))
	c.Env = []string{"CNI_COMMAND=" + cmd, "CNI_CONTAINERID=" + cid, "CNI_NETNS=" + netns, "CNI_IFNAME=" + ifName,
		"CNI_PATH=" + binDir, "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=ml;K8S_POD_NAME=p", "SLUICE_STANDIN_NODE=" + e.node.Path()}
	c.Stdin = bytes.NewReader(conf)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := e.in(c.Run); err != nil {
		var ce types.Error
		if json.Unmarshal(stdout.Bytes(), &ce) == nil && ce.Msg != "" {
			return nil, &ce
		}
		return nil, fmt.Errorf("%s %s: %v: %s%s", bin, cmd, err, stdout.String(), stderr.String())
	}
	return stdout.Bytes(), nil
}

// TestLeak1000: 1,000 ADD/DEL cycles through the plugin binary, with
// host-local IPAM, by two workers on two VFs of one PF at once, leave no VF
// in a pod, no cache entry, no attachment record, no address and no renamed
// netdev.
func TestLeak1000(t *testing.T) {
	const cycles, workers = 1000, 2
	e := newEnv(t, workers)
	before := e.snapshot()
	pods := []ns.NetNS{newNS(t), newNS(t)}
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conf := e.conf(vfAddr(w), map[string]any{"vlan": 10 + w, "mtu": 1400, "mac": fmt.Sprintf("02:ee:00:00:00:%02x", w)})
			for i := 0; i < cycles/workers; i++ {
				cid := fmt.Sprintf("leak-%d-%d", w, i)
				if _, err := e.execPlugin("sluice-cni-standin", "ADD", pods[w], cid, "net1", conf); err != nil {
					errs[w] = fmt.Errorf("cycle %d ADD: %w", i, err)
					return
				}
				if _, err := e.execPlugin("sluice-cni-standin", "DEL", pods[w], cid, "net1", conf); err != nil {
					errs[w] = fmt.Errorf("cycle %d DEL: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Errorf("worker %d: %v", w, err)
		}
	}
	for i, pod := range pods {
		if l := podLinks(t, pod); len(l) != 0 {
			t.Errorf("pod %d still has %v", i, l)
		}
	}
	e.requireSame(before, fmt.Sprintf("%d ADD/DEL cycles", cycles))
	e.requireStats(map[nodefiles.StatsKey]uint64{{Command: "ADD", Result: "success"}: cycles, {Command: "DEL", Result: "success"}: cycles})
}

// requireStats checks the outcome counts the plugin processes recorded.
func (e *env) requireStats(want map[nodefiles.StatsKey]uint64) {
	e.t.Helper()
	got, err := nodefiles.NewStats(filepath.Join(e.dir, "stats")).Read()
	if err != nil {
		e.t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		e.t.Errorf("CNI outcome counts = %v, want %v", got, want)
	}
}

// TestBinary runs the real sluice-cni binary: VERSION, and STATUS and a
// bad ADD, which print spec errors.
func TestBinary(t *testing.T) {
	e := newEnv(t, 0)
	out, err := e.execPlugin("sluice-cni", "VERSION", nil, "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		CNIVersion        string   `json:"cniVersion"`
		SupportedVersions []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal(out, &v); err != nil || v.CNIVersion != "1.1.0" || len(v.SupportedVersions) < 7 {
		t.Errorf("VERSION = %s (%v)", out, err)
	}
	if _, err := e.execPlugin("sluice-cni", "STATUS", nil, "", "", e.conf("", nil)); err != nil {
		t.Errorf("STATUS: %v", err)
	}
	pod := newNS(t)
	_, err = e.execPlugin("sluice-cni", "ADD", pod, "c1", "net1", e.conf("0000:3b:02.0", map[string]any{"vlan": 5000}))
	if cniCode(err) != types.ErrInvalidNetworkConfig {
		t.Errorf("bad ADD = %v", err)
	}
	_, err = e.execPlugin("sluice-cni", "ADD", pod, "c1", "net1", e.conf("0000:99:00.1", nil))
	if cniCode(err) != types.ErrInvalidNetworkConfig {
		t.Errorf("ADD of a VF not on this node = %v", err)
	}
	// Older spec versions are accepted.
	conf := e.conf("", map[string]any{"cniVersion": "0.4.0"})
	if _, err := e.execPlugin("sluice-cni", "DEL", pod, "c1", "net1", conf); err != nil {
		t.Errorf("DEL with cniVersion 0.4.0: %v", err)
	}
	e.requireStats(map[nodefiles.StatsKey]uint64{{Command: "STATUS", Result: "success"}: 1, {Command: "ADD", Result: "error-7"}: 2, {Command: "DEL", Result: "success"}: 1})
}

// BenchmarkAddDelExec is the latency of attaching and detaching one VF as
// the runtime sees it: two executions of the plugin binary (ADD, DEL),
// each running host-local, on veth stand-ins.
func BenchmarkAddDelExec(b *testing.B) {
	e := newEnv(b, 1)
	pod := newNS(b)
	conf := e.conf(vfAddr(0), map[string]any{"vlan": 10, "mtu": 1400})
	for i := 0; b.Loop(); i++ {
		cid := fmt.Sprintf("bench-%d", i)
		if _, err := e.execPlugin("sluice-cni-standin", "ADD", pod, cid, "net1", conf); err != nil {
			b.Fatal(err)
		}
		if _, err := e.execPlugin("sluice-cni-standin", "DEL", pod, cid, "net1", conf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAddDelInProcess is the same through the command functions: the
// plugin's own work without process starts (host-local still runs).
func BenchmarkAddDelInProcess(b *testing.B) {
	e := newEnv(b, 1)
	pod := newNS(b)
	conf := e.conf(vfAddr(0), map[string]any{"vlan": 10, "mtu": 1400})
	for i := 0; b.Loop(); i++ {
		args := cmdArgs(pod, fmt.Sprintf("bench-%d", i), "net1", conf)
		if _, err := e.add(args); err != nil {
			b.Fatal(err)
		}
		if err := e.del(args); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVersionExec is the real sluice-cni binary's start-up: one
// execution of VERSION.
func BenchmarkVersionExec(b *testing.B) {
	requireNetns(b)
	for b.Loop() {
		c := exec.Command(filepath.Join(binDir, "sluice-cni"))
		c.Env = []string{"CNI_COMMAND=VERSION"}
		if out, err := c.Output(); err != nil || len(out) == 0 {
			b.Fatal(err)
		}
	}
}
