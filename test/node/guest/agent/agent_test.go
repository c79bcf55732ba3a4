//go:build nodetest

// Package agent runs the node agent (controllers/agent.Run, as 'sluice
// agent' does) on the emulated node against an envtest API server on the
// host: a NodeNetworkState asking for 4 VFs on the igb PF makes real VFs,
// drift on sriov_numvfs is repaired, and a PF leaving the spec goes back
// to zero VFs. The times from spec to Succeeded are written to the suite's
// output directory for the host to report.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-net/sluice/api/nodefiles"
	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/controllers/agent"
	"github.com/sluice-net/sluice/deviceplugin"
	"github.com/sluice-net/sluice/deviceplugin/kubelettest"
	nu "github.com/sluice-net/sluice/test/node/guest/nodeutil"
)

const nodeName = "emulated-node"

func TestAgentOnEmulatedNode(t *testing.T) {
	nu.Require(t)
	kubeconfig := os.Getenv("SLUICE_AGENT_KUBECONFIG")
	if kubeconfig == "" {
		// A harness binary built without test/node/agent_host_test.go.
		t.Skip("SLUICE_AGENT_KUBECONFIG is not set: the host side (test/node/agent_host_test.go) started no API server")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = sluicev1.AddToScheme(scheme)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pf := nu.PFs(t)[0]
	t.Cleanup(func() { _ = nu.Write(pf.Device()+"/sriov_numvfs", "0") })

	apiStart := time.Now()
	if err := c.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}); err != nil {
		t.Fatalf("create Node through %s: %v", cfg.Host, err)
	}
	apiRTT := time.Since(apiStart)

	dir := t.TempDir()
	o := agent.Options{
		NodeName:           nodeName,
		RestConfig:         cfg,
		StateDir:           filepath.Join(dir, "state"),
		GatePath:           filepath.Join(dir, "readiness.json"),
		DevicePluginConfig: filepath.Join(dir, "device-plugin.json"),
		AttachmentsDir:     filepath.Join(dir, "attachments"),
		Namespace:          "default",
		// Long enough that a quick repair below comes from the netlink
		// link events, not from the periodic resync.
		ResyncPeriod: 30 * time.Second,
		RetryPeriod:  time.Second,
		Logger:       testr.New(t),
	}
	// The device plugin in-process, as 'sluice agent' runs it; the kubelet
	// is a fake one that records what is advertised.
	kubelet := kubelettest.New(t)
	o.DevicePlugin = &deviceplugin.Options{KubeletDir: kubelet.Dir, Log: testr.New(t)}
	o.WatchLinks = true
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	agentStart := time.Now()
	go func() { done <- agent.Run(runCtx, o) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("agent: %v", err)
		}
	})

	timings := map[string]any{"apiRoundTrip": apiRTT.Round(time.Millisecond).String()}
	wait := func(what string, timeout time.Duration, check func(*sluicev1.NodeNetworkState) error) *sluicev1.NodeNetworkState {
		t.Helper()
		var n *sluicev1.NodeNetworkState
		nu.Poll(t, timeout, 50*time.Millisecond, what, func() (bool, error) {
			n = &sluicev1.NodeNetworkState{}
			if err := c.Get(ctx, client.ObjectKey{Name: nodeName}, n); err != nil {
				return false, err
			}
			if err := check(n); err != nil {
				return false, err
			}
			return true, nil
		})
		return n
	}

	n := wait("the agent reports the igb PF", 60*time.Second, func(n *sluicev1.NodeNetworkState) error {
		for _, in := range n.Status.Interfaces {
			if in.PCIAddress == pf.PCI {
				return nil
			}
		}
		return fmt.Errorf("status.interfaces = %v", n.Status.Interfaces)
	})
	timings["startToDiscovered"] = time.Since(agentStart).Round(time.Millisecond).String()
	in := n.Status.Interfaces[slices.IndexFunc(n.Status.Interfaces, func(i sluicev1.InterfaceStatus) bool { return i.PCIAddress == pf.PCI })]
	t.Logf("discovered %s (%s): vendor %s device %s driver %s, totalVfs %d", in.Name, in.PCIAddress, in.Vendor, in.DeviceID, in.Driver, in.TotalVfs)
	if in.Driver != "igb" || in.TotalVfs != 7 || in.Name != pf.Netdev {
		t.Errorf("discovered PF %+v, want igb with 7 VFs named %s", in, pf.Netdev)
	}

	// The spec the operator would render for a 4-VF netdevice policy.
	setSpec := func(edit func(*sluicev1.NodeNetworkStateSpec)) int64 {
		t.Helper()
		var gen int64
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			n := &sluicev1.NodeNetworkState{}
			if err := c.Get(ctx, client.ObjectKey{Name: nodeName}, n); err != nil {
				return err
			}
			edit(&n.Spec)
			if err := c.Update(ctx, n); err != nil {
				return err
			}
			gen = n.Generation
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return gen
	}
	succeeded := func(gen int64) func(*sluicev1.NodeNetworkState) error {
		return func(n *sluicev1.NodeNetworkState) error {
			if n.Status.SyncStatus != sluicev1.SyncSucceeded || n.Status.ObservedGeneration != gen {
				return fmt.Errorf("syncStatus %s at generation %d (want %d), error %q", n.Status.SyncStatus, n.Status.ObservedGeneration, gen, n.Status.LastSyncError)
			}
			return nil
		}
	}

	applied := time.Now()
	gen := setSpec(func(s *sluicev1.NodeNetworkStateSpec) {
		s.Interfaces = []sluicev1.InterfaceSpec{{PCIAddress: sluicev1.PCIAddress(pf.PCI), Name: pf.Netdev, NumVfs: 4,
			VFGroups: []sluicev1.VFGroup{{Policy: "igb-net", ResourceName: "igb_net", VFRange: "0-3", DeviceType: sluicev1.DeviceTypeNetdevice}}}}
		s.Pools = []sluicev1.DevicePluginPool{{ResourceName: "igb_net", DeviceType: sluicev1.DeviceTypeNetdevice,
			Selectors: sluicev1.PoolSelectors{PFNames: []string{pf.Netdev + "#0-3"}}}}
	})
	n = wait("4 VFs applied", 2*time.Minute, succeeded(gen))
	specToSucceeded := time.Since(applied)
	timings["specToSucceeded"] = specToSucceeded.Round(time.Millisecond).String()
	t.Logf("spec (4 VFs) to Succeeded: %s", specToSucceeded.Round(time.Millisecond))

	kubelet.Wait("sluice.dev/igb_net", 60*time.Second, "4 healthy VFs advertised to the kubelet", func(s kubelettest.Snapshot) bool {
		return len(s.Devices) == 4 && s.Healthy() == 4
	})
	specToAdvertised := time.Since(applied)
	timings["specToAdvertised"] = specToAdvertised.Round(time.Millisecond).String()
	t.Logf("spec (4 VFs) to 4 VFs advertised by the in-process device plugin: %s", specToAdvertised.Round(time.Millisecond))

	vfs, err := nu.ListVFs(pf)
	if err != nil {
		t.Fatal(err)
	}
	if got := nu.MustRead(t, pf.Device()+"/sriov_numvfs"); got != "4" || len(vfs) != 4 {
		t.Fatalf("sriov_numvfs %s, %d VFs listed, want 4", got, len(vfs))
	}
	for _, vf := range vfs {
		if d := nu.Driver(vf.PCI); d != "igbvf" || vf.Netdev == "" {
			t.Errorf("VF %d (%s): driver %q netdev %q, want igbvf with a netdev", vf.Index, vf.PCI, d, vf.Netdev)
		}
	}
	if g, err := nodefiles.ReadGate(o.GatePath); err != nil || !slices.Equal(g.Ready, []string{pf.PCI}) || g.Generation != gen {
		t.Errorf("readiness gate %+v (%v), want %s at generation %d", g, err, pf.PCI, gen)
	}
	if raw, err := os.ReadFile(o.DevicePluginConfig); err != nil || !json.Valid(raw) {
		t.Errorf("device plugin config: %v %s", err, raw)
	}
	if got := len(n.Status.Interfaces[0].VFs); got != 4 {
		t.Errorf("status lists %d VFs, want 4", got)
	}

	// Drift: someone resets sriov_numvfs behind the agent's back.
	drifted := time.Now()
	nu.MustWrite(t, pf.Device()+"/sriov_numvfs", "0")
	nu.Poll(t, 90*time.Second, 50*time.Millisecond, "drift repaired", func() (bool, error) {
		vfs, err := nu.ListVFs(pf)
		if err != nil || len(vfs) != 4 {
			return false, fmt.Errorf("%d VFs (%v)", len(vfs), err)
		}
		for _, vf := range vfs {
			if vf.Netdev == "" {
				return false, fmt.Errorf("VF %d has no netdev yet", vf.Index)
			}
		}
		g, err := nodefiles.ReadGate(o.GatePath)
		return err == nil && slices.Contains(g.Ready, pf.PCI), err
	})
	repair := time.Since(drifted)
	timings["driftRepaired"] = repair.Round(time.Millisecond).String()
	timings["driftRepairedBy"] = "netlink link events"
	if repair > o.ResyncPeriod {
		timings["driftRepairedBy"] = "periodic resync"
	}
	t.Logf("sriov_numvfs reset to 0: repaired in %s (by %s)", repair.Round(time.Millisecond), timings["driftRepairedBy"])

	// The PF leaves the spec: sluice configured it, so it goes back to 0.
	removed := time.Now()
	gen = setSpec(func(s *sluicev1.NodeNetworkStateSpec) { s.Interfaces, s.Pools = nil, nil })
	wait("PF returned", 2*time.Minute, succeeded(gen))
	timings["removalToSucceeded"] = time.Since(removed).Round(time.Millisecond).String()
	if got := nu.MustRead(t, pf.Device()+"/sriov_numvfs"); got != "0" {
		state, _ := os.ReadFile(filepath.Join(o.StateDir, "agent-state.json"))
		t.Errorf("sriov_numvfs %s after the PF left the spec, want 0; state file: %s", got, state)
	}
	timings["vfs"] = strconv.Itoa(4)

	raw, _ := json.Marshal(timings)
	if err := os.WriteFile(filepath.Join(nu.OutDir(t), "timings.json"), raw, 0o644); err != nil {
		t.Error(err)
	}
}
