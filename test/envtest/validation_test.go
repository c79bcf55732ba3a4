package envtest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

func validPolicy(name string) *sluicev1.NetworkNodePolicy {
	return &sluicev1.NetworkNodePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: sluicev1.NetworkNodePolicySpec{
			NodeSelector: map[string]string{"feature.node.kubernetes.io/network-sriov.capable": "true"},
			Priority:     10,
			NicSelector: sluicev1.NicSelector{
				Vendor:      "15b3",
				PFNames:     []sluicev1.PFName{"ens1f0#0-3"},
				RootDevices: []sluicev1.PCIAddress{"0000:3b:00.0"},
			},
			NumVfs:       8,
			MTU:          9000,
			DeviceType:   sluicev1.DeviceTypeNetdevice,
			RDMA:         &sluicev1.RDMASpec{Enabled: true, Mode: sluicev1.RDMAModeExclusive},
			LinkType:     "eth",
			ResourceName: "rdma-a",
			VFConfig:     &sluicev1.VFConfigDefaults{Trust: ptr.To(true), SpoofChk: ptr.To(false)},
		},
	}
}

func TestValidPolicyAccepted(t *testing.T) {
	ctx := context.Background()
	p := validPolicy("valid-policy")
	if err := env.Client.Create(ctx, p); err != nil {
		t.Fatalf("valid policy rejected: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, p) })

	// Defaults come from the schema.
	minimal := &sluicev1.NetworkNodePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "minimal-policy"},
		Spec: sluicev1.NetworkNodePolicySpec{
			NicSelector:  sluicev1.NicSelector{PFNames: []sluicev1.PFName{"eth0"}},
			NumVfs:       1,
			ResourceName: "a",
		},
	}
	if err := env.Client.Create(ctx, minimal); err != nil {
		t.Fatalf("minimal policy rejected: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, minimal) })
	if minimal.Spec.Priority != 99 || minimal.Spec.DeviceType != sluicev1.DeviceTypeNetdevice {
		t.Errorf("defaults not applied: priority=%d deviceType=%q", minimal.Spec.Priority, minimal.Spec.DeviceType)
	}
}

// TestSNOResourceNamesAccepted: resourceNames as sriov-network-operator's
// admission accepts them (capitals and '_' inside) are valid here too.
func TestSNOResourceNamesAccepted(t *testing.T) {
	ctx := context.Background()
	for i, name := range []string{"Intel_SRIOV", "mlnx_sriov_rdma", "intelnics", "A", "x710-VF_1"} {
		p := validPolicy(fmt.Sprintf("sno-resource-%d", i))
		p.Spec.ResourceName = name
		if err := env.Client.Create(ctx, p); err != nil {
			t.Errorf("resourceName %q rejected: %v", name, err)
			continue
		}
		_ = env.Client.Delete(ctx, p)
	}
}

// TestNumVfsZeroAccepted: numVfs 0, which sriov-network-operator's schema
// allows, is accepted (the PFs it selects get no VFs).
func TestNumVfsZeroAccepted(t *testing.T) {
	ctx := context.Background()
	p := validPolicy("numvfs-zero")
	p.Spec.NumVfs = 0
	p.Spec.NicSelector.PFNames = []sluicev1.PFName{"ens1f0"}
	if err := env.Client.Create(ctx, p); err != nil {
		t.Fatalf("numVfs 0 rejected: %v", err)
	}
	_ = env.Client.Delete(ctx, p)
}

// TestIsRdmaAliasAccepted: isRdma, sriov-network-operator's spelling of
// rdma.enabled, is kept (not pruned), alone or agreeing with rdma.enabled.
func TestIsRdmaAliasAccepted(t *testing.T) {
	ctx := context.Background()
	for i, rdma := range []*sluicev1.RDMASpec{nil, {Enabled: true, Mode: sluicev1.RDMAModeShared}} {
		p := validPolicy(fmt.Sprintf("is-rdma-%d", i))
		p.Spec.RDMA = rdma
		p.Spec.IsRdma = true
		if err := env.Client.Create(ctx, p); err != nil {
			t.Errorf("isRdma with rdma %+v rejected: %v", rdma, err)
			continue
		}
		got := &sluicev1.NetworkNodePolicy{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(p), got); err != nil || !got.Spec.IsRdma {
			t.Errorf("isRdma not stored (pruned?): %+v, %v", got.Spec, err)
		}
		_ = env.Client.Delete(ctx, p)
	}
}

// TestSNOPoolFieldsKept: excludeTopology, needVhostNet (and the policy's
// externallyManaged) are stored, not
// pruned, in policies and in the NodeNetworkState pools the operator writes.
func TestSNOPoolFieldsKept(t *testing.T) {
	ctx := context.Background()
	p := validPolicy("sno-pool-fields")
	p.Spec.ExcludeTopology, p.Spec.NeedVhostNet, p.Spec.ExternallyManaged = true, true, true
	if err := env.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Client.Delete(ctx, p) }()
	got := &sluicev1.NetworkNodePolicy{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(p), got); err != nil || !got.Spec.ExcludeTopology || !got.Spec.NeedVhostNet || !got.Spec.ExternallyManaged {
		t.Errorf("policy fields pruned: %+v, %v", got.Spec, err)
	}
	nns := &sluicev1.NodeNetworkState{ObjectMeta: metav1.ObjectMeta{Name: "sno-pool-fields"}, Spec: sluicev1.NodeNetworkStateSpec{
		Pools: []sluicev1.DevicePluginPool{{ResourceName: "a", ExcludeTopology: true, NeedVhostNet: true, Selectors: sluicev1.PoolSelectors{PFNames: []string{"ens1f0#0-3"}}}},
	}}
	if err := env.Client.Create(ctx, nns); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Client.Delete(ctx, nns) }()
	gotNNS := &sluicev1.NodeNetworkState{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(nns), gotNNS); err != nil || !gotNNS.Spec.Pools[0].ExcludeTopology || !gotNNS.Spec.Pools[0].NeedVhostNet {
		t.Errorf("pool fields pruned: %+v, %v", gotNNS.Spec.Pools, err)
	}
}

// TestLinkTypeEitherCase: linkType ETH and IB, as sriov-network-operator
// policies write them, are accepted.
func TestLinkTypeEitherCase(t *testing.T) {
	ctx := context.Background()
	for i, lt := range []sluicev1.PolicyLinkType{"ETH", "IB", "eth", "ib"} {
		p := validPolicy(fmt.Sprintf("link-type-%d", i))
		p.Spec.LinkType = lt
		if err := env.Client.Create(ctx, p); err != nil {
			t.Errorf("linkType %q rejected: %v", lt, err)
			continue
		}
		_ = env.Client.Delete(ctx, p)
	}
}

func TestInvalidPolicyRejected(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*sluicev1.NetworkNodePolicySpec)
		// field must appear in the error, naming what is wrong.
		field string
		// msg must appear too: the reason, or the fix.
		msg string
	}{
		{"numVfs negative", func(s *sluicev1.NetworkNodePolicySpec) { s.NumVfs = -1 }, "spec.numVfs", "greater than or equal to 0"},
		{"numVfs zero with a VF range", func(s *sluicev1.NetworkNodePolicySpec) { s.NumVfs = 0 }, "spec.nicSelector.pfNames", "ends at or beyond numVfs"},
		{"numVfs 1000", func(s *sluicev1.NetworkNodePolicySpec) { s.NumVfs = 1000 }, "spec.numVfs", "less than or equal to 256"},
		{"bad PCI address", func(s *sluicev1.NetworkNodePolicySpec) {
			s.NicSelector.RootDevices = []sluicev1.PCIAddress{"3b:00.0"}
		}, "spec.nicSelector.rootDevices[0]", "should match"},
		{"PCI function out of range", func(s *sluicev1.NetworkNodePolicySpec) {
			s.NicSelector.RootDevices = []sluicev1.PCIAddress{"0000:3b:00.9"}
		}, "spec.nicSelector.rootDevices[0]", "should match"},
		{"VF range reversed", func(s *sluicev1.NetworkNodePolicySpec) {
			s.NicSelector.PFNames = []sluicev1.PFName{"ens1f0#5-2"}
		}, "spec.nicSelector.pfNames[0]", "first <= last"},
		{"VF range malformed", func(s *sluicev1.NetworkNodePolicySpec) {
			s.NicSelector.PFNames = []sluicev1.PFName{"ens1f0#0-"}
		}, "spec.nicSelector.pfNames[0]", "should match"},
		{"VF range beyond numVfs", func(s *sluicev1.NetworkNodePolicySpec) {
			s.NicSelector.PFNames = []sluicev1.PFName{"ens1f0#4-8"}
		}, "spec.nicSelector.pfNames", "ends at or beyond numVfs"},
		{"PF name too long", func(s *sluicev1.NetworkNodePolicySpec) {
			s.NicSelector.PFNames = []sluicev1.PFName{"a-very-long-interface-name"}
		}, "spec.nicSelector.pfNames[0]", ""},
		{"resource name starts with _", func(s *sluicev1.NetworkNodePolicySpec) { s.ResourceName = "_intel" }, "spec.resourceName", "should match"},
		{"resource name ends with -", func(s *sluicev1.NetworkNodePolicySpec) { s.ResourceName = "intel-" }, "spec.resourceName", "should match"},
		{"resource name with dot", func(s *sluicev1.NetworkNodePolicySpec) { s.ResourceName = "intel.sriov" }, "spec.resourceName", "should match"},
		{"resource name with slash", func(s *sluicev1.NetworkNodePolicySpec) { s.ResourceName = "sluice.dev/a" }, "spec.resourceName", "should match"},
		{"resource name empty", func(s *sluicev1.NetworkNodePolicySpec) { s.ResourceName = "" }, "spec.resourceName", ""},
		{"mtu too small", func(s *sluicev1.NetworkNodePolicySpec) { s.MTU = 100 }, "spec.mtu", "greater than or equal to 576"},
		{"mtu too large", func(s *sluicev1.NetworkNodePolicySpec) { s.MTU = 9217 }, "spec.mtu", "less than or equal to 9216"},
		{"unknown deviceType", func(s *sluicev1.NetworkNodePolicySpec) { s.DeviceType = "dpdk" }, "spec.deviceType", `supported values: "netdevice", "vfio-pci"`},
		{"exclusive RDMA with vfio-pci", func(s *sluicev1.NetworkNodePolicySpec) {
			s.DeviceType = sluicev1.DeviceTypeVfioPci
			s.RDMA = &sluicev1.RDMASpec{Enabled: true, Mode: sluicev1.RDMAModeExclusive}
		}, "spec.rdma", "use deviceType netdevice or disable rdma"},
		{"shared RDMA with vfio-pci", func(s *sluicev1.NetworkNodePolicySpec) {
			s.DeviceType = sluicev1.DeviceTypeVfioPci
			s.RDMA = &sluicev1.RDMASpec{Enabled: true, Mode: sluicev1.RDMAModeShared}
		}, "spec.rdma", "vfio-pci has no kernel RDMA device"},
		{"isRdma with vfio-pci", func(s *sluicev1.NetworkNodePolicySpec) {
			s.DeviceType = sluicev1.DeviceTypeVfioPci
			s.RDMA = nil
			s.IsRdma = true
		}, "spec.rdma", "rdma.enabled (or isRdma) cannot be combined with deviceType vfio-pci"},
		{"isRdma disagrees with rdma.enabled", func(s *sluicev1.NetworkNodePolicySpec) {
			s.RDMA = &sluicev1.RDMASpec{Enabled: false}
			s.IsRdma = true
		}, "spec.isRdma", "isRdma and rdma.enabled disagree"},
		{"unknown RDMA mode", func(s *sluicev1.NetworkNodePolicySpec) {
			s.RDMA = &sluicev1.RDMASpec{Enabled: true, Mode: "partial"}
		}, "spec.rdma.mode", `supported values: "shared", "exclusive"`},
		{"soft-RoCE in exclusive mode", func(s *sluicev1.NetworkNodePolicySpec) {
			s.RDMA = &sluicev1.RDMASpec{Enabled: true, Mode: sluicev1.RDMAModeExclusive, Provider: sluicev1.RDMAProviderSoftRoCE}
		}, "spec.rdma.mode", "provider soft-roce needs mode shared"},
		{"unknown RDMA provider", func(s *sluicev1.NetworkNodePolicySpec) {
			s.RDMA = &sluicev1.RDMASpec{Enabled: true, Provider: "iwarp"}
		}, "spec.rdma.provider", `supported values: "hardware", "soft-roce"`},
		{"unknown linkType", func(s *sluicev1.NetworkNodePolicySpec) { s.LinkType = "fc" }, "spec.linkType", `supported values: "eth", "ETH", "ib", "IB"`},
		{"priority 100", func(s *sluicev1.NetworkNodePolicySpec) { s.Priority = 100 }, "spec.priority", "less than or equal to 99"},
		{"priority negative", func(s *sluicev1.NetworkNodePolicySpec) { s.Priority = -1 }, "spec.priority", "greater than or equal to 0"},
		{"vendor not hex", func(s *sluicev1.NetworkNodePolicySpec) { s.NicSelector.Vendor = "mlnx" }, "spec.nicSelector.vendor", "should match"},
		{"empty nicSelector", func(s *sluicev1.NetworkNodePolicySpec) { s.NicSelector = sluicev1.NicSelector{} }, "spec.nicSelector", "at least one of vendor, deviceID, pfNames or rootDevices"},
	}
	ctx := context.Background()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := validPolicy(fmt.Sprintf("invalid-%d", i))
			tc.mutate(&p.Spec)
			assertRejected(t, ctx, p, tc.field, tc.msg)
		})
	}
}

// assertNames checks that the API server's rejection names the field and
// says why, and that it is about that field and not another.
// assertRejected creates obj and wants the API server to refuse it as
// Invalid, naming field with msg (assertNames); one it accepts is deleted.
func assertRejected(t *testing.T, ctx context.Context, obj client.Object, field, msg string) {
	t.Helper()
	err := env.Client.Create(ctx, obj)
	if err == nil {
		_ = env.Client.Delete(ctx, obj)
		t.Fatalf("accepted; want a rejection naming %s", field)
	}
	if !apierrors.IsInvalid(err) {
		t.Fatalf("want an Invalid error, got %v", err)
	}
	assertNames(t, err, field, msg)
}

func assertNames(t *testing.T, err error, field, msg string) {
	t.Helper()
	status, ok := err.(apierrors.APIStatus)
	if !ok || status.Status().Details == nil {
		t.Fatalf("no status details in %v", err)
	}
	for _, c := range status.Status().Details.Causes {
		if c.Field == field && strings.Contains(c.Message, msg) {
			return
		}
	}
	t.Errorf("rejection does not name %s with %q:\n%v", field, msg, err)
}

func TestVFNetworkValidation(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	good := &sluicev1.VFNetwork{
		ObjectMeta: metav1.ObjectMeta{Name: "good", Namespace: ns},
		Spec: sluicev1.VFNetworkSpec{
			ResourceName: "rdma-a", VLAN: 100, VLANQoS: 3, SpoofChk: sluicev1.On, Trust: sluicev1.Off,
			LinkState: "enable", MinTxRate: 100, MaxTxRate: 1000, IPAM: `{"type":"host-local","subnet":"10.56.0.0/24"}`,
		},
	}
	if err := env.Client.Create(ctx, good); err != nil {
		t.Fatalf("valid VFNetwork rejected: %v", err)
	}
	// sriov-network-operator's spellings and fields are accepted.
	for i, sno := range []func(*sluicev1.VFNetworkSpec){
		func(s *sluicev1.VFNetworkSpec) { s.VLANProto = "802.1q" },
		func(s *sluicev1.VFNetworkSpec) { s.VLANProto = "802.1AD" },
		func(s *sluicev1.VFNetworkSpec) {
			s.Capabilities, s.LogLevel, s.LogFile = "{\n  \"mac\": true,\n  \"ips\": true\n}\n", "debug", "/var/log/sriov-cni.log"
			s.MetaPlugins = `{"type": "tuning", "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}}, {"type": "sbr"}`
		},
		func(s *sluicev1.VFNetworkSpec) { s.Capabilities, s.LogLevel = "{}", "" },
	} {
		n := good.DeepCopy()
		n.ObjectMeta = metav1.ObjectMeta{Name: fmt.Sprintf("sno-%d", i), Namespace: ns}
		sno(&n.Spec)
		if err := env.Client.Create(ctx, n); err != nil {
			t.Errorf("sriov-network-operator spelling %d rejected: %v", i, err)
		}
	}
	cases := []struct {
		name   string
		mutate func(*sluicev1.VFNetworkSpec)
		field  string
		msg    string
	}{
		{"vlan 4095", func(s *sluicev1.VFNetworkSpec) { s.VLAN = 4095 }, "spec.vlan", "less than or equal to 4094"},
		{"qos without vlan", func(s *sluicev1.VFNetworkSpec) { s.VLAN = 0 }, "spec.vlanQoS", "needs a vlan"},
		{"qos 8", func(s *sluicev1.VFNetworkSpec) { s.VLANQoS = 8 }, "spec.vlanQoS", "less than or equal to 7"},
		{"bad vlanProto", func(s *sluicev1.VFNetworkSpec) { s.VLANProto = "802.1x" }, "spec.vlanProto", "must be 802.1Q or 802.1ad (in any case)"},
		{"802.1ad without vlan", func(s *sluicev1.VFNetworkSpec) { s.VLAN, s.VLANQoS, s.VLANProto = 0, 0, "802.1ad" }, "spec.vlanProto", "802.1ad needs a vlan"},
		{"802.1AD without vlan", func(s *sluicev1.VFNetworkSpec) { s.VLAN, s.VLANQoS, s.VLANProto = 0, 0, "802.1AD" }, "spec.vlanProto", "802.1ad needs a vlan"},
		{"capabilities not JSON", func(s *sluicev1.VFNetworkSpec) { s.Capabilities = "mac" }, "spec.capabilities", `object of "mac" and "ips" switches`},
		{"capability sluice-cni ignores", func(s *sluicev1.VFNetworkSpec) { s.Capabilities = `{"mac": true, "bandwidth": true}` }, "spec.capabilities", "put any other on the meta plugin"},
		{"capability not a switch", func(s *sluicev1.VFNetworkSpec) { s.Capabilities = `{"mac": "yes"}` }, "spec.capabilities", `object of "mac" and "ips" switches`},
		{"bad logLevel", func(s *sluicev1.VFNetworkSpec) { s.LogLevel = "verbose" }, "spec.logLevel", "supported values"},
		{"relative logFile", func(s *sluicev1.VFNetworkSpec) { s.LogFile = "sriov.log" }, "spec.logFile", "absolute path"},
		{"spoofChk yes", func(s *sluicev1.VFNetworkSpec) { s.SpoofChk = "yes" }, "spec.spoofChk", `supported values: "on", "off"`},
		{"min above max", func(s *sluicev1.VFNetworkSpec) { s.MinTxRate = 2000 }, "spec.minTxRate", "must not exceed maxTxRate"},
		{"bad linkState", func(s *sluicev1.VFNetworkSpec) { s.LinkState = "up" }, "spec.linkState", "supported values"},
		{"mtu below 68", func(s *sluicev1.VFNetworkSpec) { s.MTU = 51 }, "spec.mtu", "0 (keep the VF's MTU) or 68-9216"},
		{"bad networkNamespace", func(s *sluicev1.VFNetworkSpec) { s.NetworkNamespace = "Kube_System" }, "spec.networkNamespace", "should match"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := good.DeepCopy()
			n.ObjectMeta = metav1.ObjectMeta{Name: fmt.Sprintf("bad-%d", i), Namespace: ns}
			tc.mutate(&n.Spec)
			err := env.Client.Create(ctx, n)
			if err == nil {
				t.Fatalf("accepted; want a rejection naming %s", tc.field)
			}
			assertNames(t, err, tc.field, tc.msg)
		})
	}
}

func TestCRDsInstalled(t *testing.T) {
	ctx := context.Background()
	for _, l := range []client.ObjectList{&sluicev1.NetworkNodePolicyList{}, &sluicev1.NodeNetworkStateList{}, &sluicev1.VFNetworkList{}} {
		if err := env.Client.List(ctx, l); err != nil {
			t.Errorf("list %T: %v", l, err)
		}
	}
	// NodeNetworkState status is a subresource: a spec update does not touch it.
	nns := &sluicev1.NodeNetworkState{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}
	if err := env.Client.Create(ctx, nns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, nns) })
	nns.Status.SyncStatus = sluicev1.SyncSucceeded
	if err := env.Client.Status().Update(ctx, nns); err != nil {
		t.Fatalf("status update: %v", err)
	}
	nns.Spec.Interfaces = []sluicev1.InterfaceSpec{{PCIAddress: "0000:3b:00.0", NumVfs: 4}}
	nns.Status.SyncStatus = sluicev1.SyncFailed
	if err := env.Client.Update(ctx, nns); err != nil {
		t.Fatalf("spec update: %v", err)
	}
	got := &sluicev1.NodeNetworkState{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(nns), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.SyncStatus != sluicev1.SyncSucceeded || len(got.Spec.Interfaces) != 1 {
		t.Errorf("status subresource not honoured: sync=%q interfaces=%d", got.Status.SyncStatus, len(got.Spec.Interfaces))
	}
}
