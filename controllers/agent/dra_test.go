package agent

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	resourcev1 "k8s.io/api/resource/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/deviceplugin"
	"github.com/sluice-net/sluice/deviceplugin/dra"
	"github.com/sluice-net/sluice/deviceplugin/kubelettest"
)

// TestAgentPublishesDRAPools: with DRA on, the VFs of the NodeNetworkState's
// draPools reach the node's ResourceSlices through the agent's own
// identity (its RBAC and admission policy), the device-plugin pool stays
// with the kubelet, and a pool leaving draPools leaves the slices.
func TestAgentPublishesDRAPools(t *testing.T) {
	kubelet := kubelettest.New(t)
	dir, err := os.MkdirTemp("", "dra-agent-") // short: unix socket paths
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	h := twoPFHarness(t, func(h *harness) {
		h.opts.DevicePlugin = &deviceplugin.Options{KubeletDir: kubelet.Dir, Resync: time.Hour, LinkEvents: noLinkEvents{}}
		h.opts.DRA = &dra.Options{PluginDir: dir + "/plugin", RegistryDir: dir + "/registry"}
	})
	withDRA := func(s *sluicev1.NodeNetworkStateSpec) {
		twoPFs(4, nil)(s)
		s.Interfaces[1].VFGroups[0].ResourceName, s.Interfaces[1].VFGroups[0].DRA = "rail", true
		s.Pools = []sluicev1.DevicePluginPool{{ResourceName: "net1", Selectors: sluicev1.PoolSelectors{PFNames: []string{"ens1f0"}}}}
		s.DRAPools = []sluicev1.DevicePluginPool{{ResourceName: "rail", Selectors: sluicev1.PoolSelectors{PFNames: []string{"ens1f1"}}}}
	}
	h.synced(sluicev1.SyncSucceeded, h.setSpec(withDRA))
	kubelet.Wait(DefaultResourcePrefix+"/net1", 10*time.Second, "pfA's 4 VFs advertised", func(s kubelettest.Snapshot) bool {
		return s.Streaming && s.Healthy() == 4
	})
	want := []string{dra.DeviceName(h.node.VFAddress(pfB, 0)), dra.DeviceName(h.node.VFAddress(pfB, 1))}
	slices.Sort(want)
	h.eventually("pfB's 2 VFs published", func() error {
		got, err := h.draDevices()
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("devices = %v, want %v", got, want)
		}
		return nil
	})
	if got := kubelet.Plugins(); slices.Contains(got, DefaultResourcePrefix+"/rail") {
		t.Errorf("the DRA pool was registered with the kubelet as a device-plugin resource: %v", got)
	}

	// The pool goes back to the device plugin: no DRA device left.
	h.synced(sluicev1.SyncSucceeded, h.setSpec(func(s *sluicev1.NodeNetworkStateSpec) {
		withDRA(s)
		s.Interfaces[1].VFGroups[0].DRA = false
		s.Pools = append(s.Pools, s.DRAPools...)
		s.DRAPools = nil
	}))
	h.eventually("no DRA device", func() error {
		got, err := h.draDevices()
		if err != nil || len(got) != 0 {
			return fmt.Errorf("devices = %v (%v), want none", got, err)
		}
		return nil
	})
	kubelet.Wait(DefaultResourcePrefix+"/rail", 10*time.Second, "rail served by the device plugin", func(s kubelettest.Snapshot) bool {
		return s.Streaming && s.Healthy() == 2
	})
}

// draDevices are the names of the devices in the node's ResourceSlices.
func (h *harness) draDevices() ([]string, error) {
	var l resourcev1.ResourceSliceList
	if err := h.env.Client.List(context.Background(), &l, client.MatchingFields{"spec.nodeName": h.name}); err != nil {
		return nil, err
	}
	var names []string
	for _, s := range l.Items {
		for _, d := range s.Spec.Devices {
			names = append(names, d.Name)
		}
	}
	slices.Sort(names)
	return names, nil
}
