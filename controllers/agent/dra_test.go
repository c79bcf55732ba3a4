package agent

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	drapb "k8s.io/kubelet/pkg/apis/dra/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-net/sluice/api/nodefiles"
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
		h.opts.DRA = &dra.Options{PluginDir: dir + "/plugin", RegistryDir: dir + "/registry", NoNRI: true}
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

// TestAgentPreparesDRAClaim: the kubelet's Prepare of a claim on a DRA
// pool's VF, over the driver's socket as the kubelet calls it, reaches the
// driver through the agent's own identity (the helper reads the claim, so
// its RBAC must allow it): the VF gets the claim's VLAN, the claim its CDI
// device; Unprepare puts the VF back.
func TestAgentPreparesDRAClaim(t *testing.T) {
	kubelet := kubelettest.New(t)
	dir, err := os.MkdirTemp("", "dra-agent-") // short: unix socket paths
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	h := twoPFHarness(t, func(h *harness) {
		h.opts.DevicePlugin = &deviceplugin.Options{KubeletDir: kubelet.Dir, Resync: time.Hour, LinkEvents: noLinkEvents{}, CDIDir: dir + "/cdi"}
		h.opts.DRA = &dra.Options{PluginDir: dir + "/plugin", RegistryDir: dir + "/registry", AttachmentsDir: dir + "/attachments", NoNRI: true}
	})
	h.synced(sluicev1.SyncSucceeded, h.setSpec(func(s *sluicev1.NodeNetworkStateSpec) {
		twoPFs(4, nil)(s)
		s.Interfaces[1].VFGroups[0].ResourceName, s.Interfaces[1].VFGroups[0].DRA = "rail", true
		s.Pools = []sluicev1.DevicePluginPool{{ResourceName: "net1", Selectors: sluicev1.PoolSelectors{PFNames: []string{"ens1f0"}}}}
		s.DRAPools = []sluicev1.DevicePluginPool{{ResourceName: "rail", Selectors: sluicev1.PoolSelectors{PFNames: []string{"ens1f1"}}}}
	}))
	vf := h.node.VFAddress(pfB, 0)
	h.eventually("pfB's VFs published", func() error {
		got, err := h.draDevices()
		if err != nil || !slices.Contains(got, dra.DeviceName(vf)) {
			return fmt.Errorf("devices = %v (%v)", got, err)
		}
		return nil
	})

	ctx := context.Background()
	params := []byte(`{"apiVersion": "sluice.dev/v1alpha1", "kind": "VFClaimConfig", "vlan": 100}`)
	cfg := resourcev1.DeviceConfiguration{Opaque: &resourcev1.OpaqueDeviceConfiguration{Driver: "sluice.dev", Parameters: runtime.RawExtension{Raw: params}}}
	claim := &resourcev1.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "rail-claim"},
		Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{
			Requests: []resourcev1.DeviceRequest{{Name: "rail", Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: "rail.sluice.dev"}}},
			Config:   []resourcev1.DeviceClaimConfiguration{{DeviceConfiguration: cfg}},
		}},
	}
	if err := h.env.Client.Create(ctx, claim); err != nil {
		t.Fatal(err)
	}
	claim.Status.Allocation = &resourcev1.AllocationResult{Devices: resourcev1.DeviceAllocationResult{
		Results: []resourcev1.DeviceRequestAllocationResult{{Request: "rail", Driver: "sluice.dev", Pool: h.name, Device: dra.DeviceName(vf)}},
		Config:  []resourcev1.DeviceAllocationConfiguration{{Source: resourcev1.AllocationConfigSourceClaim, DeviceConfiguration: cfg}},
	}}
	if err := h.env.Client.Status().Update(ctx, claim); err != nil {
		t.Fatal(err)
	}

	conn, err := grpc.NewClient("unix://"+dir+"/plugin/dra.sock", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	plugin := drapb.NewDRAPluginClient(conn)
	ref := []*drapb.Claim{{Namespace: h.ns, Name: claim.Name, Uid: string(claim.UID)}}
	prep, err := plugin.NodePrepareResources(ctx, &drapb.NodePrepareResourcesRequest{Claims: ref})
	if err != nil {
		t.Fatal(err)
	}
	r := prep.Claims[string(claim.UID)]
	want := "sluice.dev/vf=" + string(claim.UID) + "-" + dra.DeviceName(vf)
	if r == nil || r.Error != "" || len(r.Devices) != 1 || !slices.Equal(r.Devices[0].CdiDeviceIds, []string{want}) {
		t.Fatalf("NodePrepareResources = %+v, want CDI device %s", prep.Claims, want)
	}
	s, err := h.node.Host().VFSettingsOf("ens1f1", 0)
	if err != nil || s.VLAN != 100 {
		t.Errorf("VF %s after Prepare: %+v (%v), want VLAN 100", vf, s, err)
	}
	if _, err := os.Stat(nodefiles.DRAClaimCDISpecPath(dir+"/cdi", string(claim.UID))); err != nil {
		t.Errorf("the claim's CDI spec: %v", err)
	}

	un, err := plugin.NodeUnprepareResources(ctx, &drapb.NodeUnprepareResourcesRequest{Claims: ref})
	if err != nil || un.Claims[string(claim.UID)] == nil || un.Claims[string(claim.UID)].Error != "" {
		t.Fatalf("NodeUnprepareResources = %+v, %v", un, err)
	}
	if s, err := h.node.Host().VFSettingsOf("ens1f1", 0); err != nil || s.VLAN != 0 {
		t.Errorf("VF %s after Unprepare: %+v (%v), want VLAN 0", vf, s, err)
	}
}
