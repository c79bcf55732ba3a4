package envtest

import (
	"context"
	"strings"
	"testing"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

func getNAD(ns, name string) (*nadv1.NetworkAttachmentDefinition, error) {
	nad := &nadv1.NetworkAttachmentDefinition{}
	return nad, env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, nad)
}

func getVFNetwork(ns, name string) (*sluicev1.VFNetwork, error) {
	n := &sluicev1.VFNetwork{}
	return n, env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, n)
}

func updateVFNetwork(t *testing.T, ns, name string, mutate func(*sluicev1.VFNetwork)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := getVFNetwork(ns, name)
		if err != nil {
			return err
		}
		mutate(n)
		return env.Client.Update(context.Background(), n)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// nadConfig waits for the NAD's config to be want.
func nadConfig(t *testing.T, ns, name, want string) *nadv1.NetworkAttachmentDefinition {
	t.Helper()
	var nad *nadv1.NetworkAttachmentDefinition
	eventually(t, "NetworkAttachmentDefinition "+ns+"/"+name, func() error {
		var err error
		if nad, err = getNAD(ns, name); err != nil {
			return err
		}
		if nad.Spec.Config != want {
			return errorf("config = %s\nwant     %s", nad.Spec.Config, want)
		}
		return nil
	})
	return nad
}

// vfnReady waits for the VFNetwork's Ready condition.
func vfnReady(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string) *sluicev1.VFNetwork {
	t.Helper()
	var n *sluicev1.VFNetwork
	eventually(t, "VFNetwork "+name+" Ready="+string(status), func() error {
		var err error
		if n, err = getVFNetwork(ns, name); err != nil {
			return err
		}
		c := meta.FindStatusCondition(n.Status.Conditions, sluicev1.ConditionReady)
		if c == nil || c.Status != status || c.Reason != reason || n.Status.ObservedGeneration != n.Generation {
			return errorf("status = %+v", n.Status)
		}
		return nil
	})
	return n
}

// A platform VFNetwork (in the operator's namespace, so that it may set a
// VLAN, trust and spoof checking) rendered into its own namespace.
func TestOperatorVFNetworkSameNamespace(t *testing.T) {
	startOperator(t)
	ctx := context.Background()
	ns, name := operatorNamespace, uniqueName(t, "rdma")
	vfn := createPlatformVFNetwork(t, name, sluicev1.VFNetworkSpec{
		ResourceName: "rdma-a", VLAN: 100, VLANQoS: 3, SpoofChk: sluicev1.Off, Trust: sluicev1.On,
		MaxTxRate: 1000, MTU: 9000, RDMA: true,
		IPAM: `{ "type": "host-local",
		         "subnet": "10.56.217.0/24" }`,
	})
	want := `{"cniVersion":"1.0.0","name":"` + name + `","type":"sluice-cni","vlan":100,"vlanQoS":3,"spoofchk":"off","trust":"on","max_tx_rate":1000,"mtu":9000,"rdma":true,"ipam":{"type":"host-local","subnet":"10.56.217.0/24"}}`
	nad := nadConfig(t, ns, name, want)
	if got := nad.Annotations["k8s.v1.cni.cncf.io/resourceName"]; got != "sluice.dev/rdma-a" {
		t.Errorf("resourceName annotation = %q", got)
	}
	owner := metav1.GetControllerOf(nad)
	if owner == nil || owner.Kind != "VFNetwork" || owner.Name != name || owner.UID != vfn.UID {
		t.Errorf("NAD controller = %+v, want the VFNetwork (garbage collection deletes the NAD with it)", owner)
	}
	got := vfnReady(t, ns, name, metav1.ConditionTrue, "Rendered")
	if got.Status.NetworkAttachmentDefinition != ns+"/"+name {
		t.Errorf("status.networkAttachmentDefinition = %q", got.Status.NetworkAttachmentDefinition)
	}
	if len(got.Finalizers) != 0 {
		t.Errorf("finalizers = %v: the owner reference is enough in the same namespace", got.Finalizers)
	}

	// A hand edit is reverted; an annotation someone else added stays.
	nad.Spec.Config = `{"cniVersion":"1.0.0","name":"` + name + `","type":"macvlan"}`
	nad.Annotations["k8s.v1.cni.cncf.io/resourceName"] = "sluice.dev/other"
	nad.Annotations["example.com/note"] = "kept"
	if err := env.Client.Update(ctx, nad); err != nil {
		t.Fatal(err)
	}
	nad = nadConfig(t, ns, name, want)
	if nad.Annotations["k8s.v1.cni.cncf.io/resourceName"] != "sluice.dev/rdma-a" || nad.Annotations["example.com/note"] != "kept" {
		t.Errorf("annotations after revert = %v", nad.Annotations)
	}
	// A deleted NAD comes back.
	if err := env.Client.Delete(ctx, nad); err != nil {
		t.Fatal(err)
	}
	eventually(t, "NAD recreated", func() error {
		n, err := getNAD(ns, name)
		if err != nil {
			return err
		}
		if n.UID == nad.UID {
			return errorf("not deleted yet")
		}
		return nil
	})

	// Spec changes are rendered; unset fields disappear.
	updateVFNetwork(t, ns, name, func(n *sluicev1.VFNetwork) {
		n.Spec = sluicev1.VFNetworkSpec{ResourceName: "rdma-b", LinkState: "enable"}
	})
	nad = nadConfig(t, ns, name, `{"cniVersion":"1.0.0","name":"`+name+`","type":"sluice-cni","link_state":"enable"}`)
	if got := nad.Annotations["k8s.v1.cni.cncf.io/resourceName"]; got != "sluice.dev/rdma-b" {
		t.Errorf("resourceName annotation = %q after the change", got)
	}

	// Invalid IPAM: not Ready, the NAD stays as it was.
	updateVFNetwork(t, ns, name, func(n *sluicev1.VFNetwork) { n.Spec.IPAM = `{"type": "host-local", "subnet": }` })
	bad := vfnReady(t, ns, name, metav1.ConditionFalse, "InvalidIPAM")
	c := meta.FindStatusCondition(bad.Status.Conditions, sluicev1.ConditionReady)
	if !strings.Contains(c.Message, "spec.ipam") || !strings.Contains(c.Message, "invalid character") {
		t.Errorf("InvalidIPAM message %q does not name spec.ipam and the JSON error", c.Message)
	}
	if n, err := getNAD(ns, name); err != nil || n.Spec.Config != nad.Spec.Config {
		t.Errorf("NAD changed after an invalid IPAM: %v %s", err, n.Spec.Config)
	}
	updateVFNetwork(t, ns, name, func(n *sluicev1.VFNetwork) { n.Spec.IPAM = `{"subnet":"10.0.0.0/8"}` })
	bad = vfnReady(t, ns, name, metav1.ConditionFalse, "InvalidIPAM")
	if c := meta.FindStatusCondition(bad.Status.Conditions, sluicev1.ConditionReady); !strings.Contains(c.Message, `"type"`) {
		t.Errorf("message %q does not ask for the IPAM type", c.Message)
	}
	updateVFNetwork(t, ns, name, func(n *sluicev1.VFNetwork) { n.Spec.IPAM = `{"type":"whereabouts","range":"192.168.2.0/24"}` })
	vfnReady(t, ns, name, metav1.ConditionTrue, "Rendered")
	nadConfig(t, ns, name, `{"cniVersion":"1.0.0","name":"`+name+`","type":"sluice-cni","link_state":"enable","ipam":{"type":"whereabouts","range":"192.168.2.0/24"}}`)
}

// A platform VFNetwork rendered into another namespace.
func TestOperatorVFNetworkOtherNamespace(t *testing.T) {
	startOperator(t)
	ctx := context.Background()
	home, target, name := operatorNamespace, env.Namespace(t), uniqueName(t, "net")
	createPlatformVFNetwork(t, name, sluicev1.VFNetworkSpec{ResourceName: "pool", NetworkNamespace: target, VLAN: 7})
	want := `{"cniVersion":"1.0.0","name":"` + name + `","type":"sluice-cni","vlan":7}`
	nad := nadConfig(t, target, name, want)
	if len(nad.OwnerReferences) != 0 {
		t.Errorf("owner references across namespaces: %+v", nad.OwnerReferences)
	}
	got := vfnReady(t, home, name, metav1.ConditionTrue, "Rendered")
	if got.Status.NetworkAttachmentDefinition != target+"/"+name {
		t.Errorf("status.networkAttachmentDefinition = %q", got.Status.NetworkAttachmentDefinition)
	}
	if len(got.Finalizers) != 1 || got.Finalizers[0] != "sluice.dev/networkattachmentdefinition" {
		t.Errorf("finalizers = %v", got.Finalizers)
	}

	// A hand edit in the other namespace is reverted too.
	nad.Spec.Config = `{}`
	if err := env.Client.Update(ctx, nad); err != nil {
		t.Fatal(err)
	}
	nadConfig(t, target, name, want)

	// metaPlugins the operator cannot use: not Ready, naming the entry,
	// and the NAD stays as it was; usable ones make it a list.
	updateVFNetwork(t, home, name, func(n *sluicev1.VFNetwork) { n.Spec.MetaPlugins = `{"type": "tuning"}, {"sysctl": {}}` })
	bad := vfnReady(t, home, name, metav1.ConditionFalse, "InvalidSpec")
	if c := meta.FindStatusCondition(bad.Status.Conditions, sluicev1.ConditionReady); !strings.Contains(c.Message, `spec.metaPlugins[1] has no "type"`) {
		t.Errorf("InvalidSpec message %q does not name the entry", c.Message)
	}
	nadConfig(t, target, name, want)
	updateVFNetwork(t, home, name, func(n *sluicev1.VFNetwork) {
		n.Spec.MetaPlugins = "{\"type\": \"tuning\", \"sysctl\": {\"net.ipv4.conf.IFNAME.arp_notify\": \"1\"}},\n{\"type\": \"sbr\"}"
		n.Spec.Capabilities, n.Spec.VLANProto = `{"mac": true, "ips": true}`, "802.1q"
	})
	want = `{"cniVersion":"1.0.0","name":"` + name + `","plugins":[{"type":"sluice-cni","vlan":7,"vlanProto":"802.1Q","capabilities":{"ips":true,"mac":true}},` +
		`{"type":"tuning","sysctl":{"net.ipv4.conf.IFNAME.arp_notify":"1"}},{"type":"sbr"}]}`
	got = vfnReady(t, home, name, metav1.ConditionTrue, "Rendered")
	nadConfig(t, target, name, want)

	if err := env.Client.Delete(ctx, got); err != nil {
		t.Fatal(err)
	}
	eventually(t, "NAD and VFNetwork deleted", func() error {
		if _, err := getNAD(target, name); !apierrors.IsNotFound(err) {
			return errorf("NAD: %v", err)
		}
		if _, err := getVFNetwork(home, name); !apierrors.IsNotFound(err) {
			return errorf("VFNetwork: %v", err)
		}
		return nil
	})
}

// A platform VFNetwork moved from another namespace to its own.
func TestOperatorVFNetworkMovesNamespace(t *testing.T) {
	startOperator(t)
	home, other, name := operatorNamespace, env.Namespace(t), uniqueName(t, "net")
	createPlatformVFNetwork(t, name, sluicev1.VFNetworkSpec{ResourceName: "pool", NetworkNamespace: other})
	vfnReady(t, home, name, metav1.ConditionTrue, "Rendered")
	updateVFNetwork(t, home, name, func(n *sluicev1.VFNetwork) { n.Spec.NetworkNamespace = "" })
	eventually(t, "NAD moved home, finalizer gone", func() error {
		if _, err := getNAD(other, name); !apierrors.IsNotFound(err) {
			return errorf("old NAD: %v", err)
		}
		if _, err := getNAD(home, name); err != nil {
			return err
		}
		n, err := getVFNetwork(home, name)
		if err != nil {
			return err
		}
		if len(n.Finalizers) != 0 || n.Status.NetworkAttachmentDefinition != home+"/"+name {
			return errorf("finalizers=%v status=%+v", n.Finalizers, n.Status)
		}
		return nil
	})
}

func TestOperatorVFNetworkLeavesForeignNADAlone(t *testing.T) {
	startOperator(t)
	ctx := context.Background()
	ns := env.Namespace(t)
	foreign := &nadv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "taken", Namespace: ns},
		Spec:       nadv1.NetworkAttachmentDefinitionSpec{Config: `{"cniVersion":"1.0.0","name":"taken","type":"macvlan"}`},
	}
	if err := env.Client.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	vfn := &sluicev1.VFNetwork{
		ObjectMeta: metav1.ObjectMeta{Name: "taken", Namespace: ns},
		Spec:       sluicev1.VFNetworkSpec{ResourceName: "pool"},
	}
	if err := env.Client.Create(ctx, vfn); err != nil {
		t.Fatal(err)
	}
	n := vfnReady(t, ns, "taken", metav1.ConditionFalse, "NADNotManaged")
	if c := meta.FindStatusCondition(n.Status.Conditions, sluicev1.ConditionReady); !strings.Contains(c.Message, ns+"/taken") {
		t.Errorf("message %q does not name the NAD", c.Message)
	}
	if got, err := getNAD(ns, "taken"); err != nil || got.Spec.Config != foreign.Spec.Config || len(got.OwnerReferences) != 0 {
		t.Errorf("foreign NAD touched: %v %+v", err, got)
	}
}

// A VFNetwork of a soft-RoCE pool renders softRoCE with the pool's CDI
// kind; the NAD follows the policy when its provider changes, and when it
// goes.
func TestOperatorVFNetworkSoftRoCEPool(t *testing.T) {
	startOperator(t)
	ctx := context.Background()
	ns := env.Namespace(t)
	pool, p := softRoCEPolicy(t)
	vfn := &sluicev1.VFNetwork{ObjectMeta: metav1.ObjectMeta{Name: "roce-net", Namespace: ns}, Spec: sluicev1.VFNetworkSpec{ResourceName: pool}}
	if err := env.Client.Create(ctx, vfn); err != nil {
		t.Fatal(err)
	}
	soft := `{"cniVersion":"1.0.0","name":"roce-net","type":"sluice-cni","rdma":true,"softRoCE":{"cdiKind":"sluice.dev/` + pool + `"}}`
	nadConfig(t, ns, "roce-net", soft)

	// The pool becomes a hardware RDMA pool: the network follows. (The
	// operator writes the policy's status meanwhile: retry on conflict.)
	setProvider := func(provider sluicev1.RDMAProvider) {
		t.Helper()
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
				return err
			}
			p.Spec.RDMA.Provider = provider
			return env.Client.Update(ctx, p)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	setProvider(sluicev1.RDMAProviderHardware)
	nadConfig(t, ns, "roce-net", `{"cniVersion":"1.0.0","name":"roce-net","type":"sluice-cni"}`)

	// Back to soft-RoCE, then the policy is deleted.
	setProvider(sluicev1.RDMAProviderSoftRoCE)
	nadConfig(t, ns, "roce-net", soft)
	if err := env.Client.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	nadConfig(t, ns, "roce-net", `{"cniVersion":"1.0.0","name":"roce-net","type":"sluice-cni"}`)
}

// softRoCEPolicy creates a policy whose pool (returned) is a shared
// soft-RoCE pool.
func softRoCEPolicy(t *testing.T) (string, *sluicev1.NetworkNodePolicy) {
	t.Helper()
	pool := uniqueName(t, "roce")
	p := validPolicy(uniqueName(t, "roce-policy"))
	p.Spec.ResourceName = pool
	p.Spec.RDMA = &sluicev1.RDMASpec{Enabled: true, Mode: sluicev1.RDMAModeShared, Provider: sluicev1.RDMAProviderSoftRoCE}
	createPolicy(t, p)
	return pool, p
}

// waitNoNAD waits until the NAD is gone.
func waitNoNAD(t *testing.T, ns, name string) {
	t.Helper()
	eventually(t, "NetworkAttachmentDefinition "+ns+"/"+name+" gone", func() error {
		if _, err := getNAD(ns, name); !apierrors.IsNotFound(err) {
			return errorf("NAD: %v", err)
		}
		return nil
	})
}

// claimReference waits for the VFNetwork to report that its pool is DRA
// and checks that it has no NAD and tells how a claim names it.
func claimReference(t *testing.T, ns, name, claimNS string) *sluicev1.VFNetwork {
	t.Helper()
	n := vfnReady(t, ns, name, metav1.ConditionTrue, "ClaimReference")
	if n.Status.NetworkAttachmentDefinition != "" {
		t.Errorf("status.networkAttachmentDefinition = %q, want none", n.Status.NetworkAttachmentDefinition)
	}
	c := meta.FindStatusCondition(n.Status.Conditions, sluicev1.ConditionReady)
	for _, want := range []string{
		"DRA", "ResourceClaim", n.Spec.ResourceName + ".sluice.dev", "apiVersion: sluice.dev/v1alpha1", "kind: VFClaimConfig",
		"vfNetwork: {name: " + name + ", namespace: " + ns + "}", "namespace " + claimNS, "no NetworkAttachmentDefinition",
	} {
		if !strings.Contains(c.Message, want) {
			t.Errorf("ClaimReference message %q does not say %q", c.Message, want)
		}
	}
	if _, err := getNAD(claimNS, name); !apierrors.IsNotFound(err) {
		t.Errorf("NAD %s/%s of a DRA pool: %v", claimNS, name, err)
	}
	return n
}

// A VFNetwork of a DRA pool gets no NAD (no device plugin serves the
// resource it would ask for) and says how claims use it; it follows the
// pool between DRA and the device plugin. While a device-plugin policy
// feeds the pool too, the NAD stays, for the nodes that policy wins.
func TestOperatorVFNetworkDRAPool(t *testing.T) {
	startOperator(t)
	ctx := context.Background()
	ns, pool := env.Namespace(t), uniqueName(t, "pool")
	p := draPolicy(uniqueName(t, "dra"), pool)
	createPolicy(t, p)
	vfn := &sluicev1.VFNetwork{ObjectMeta: metav1.ObjectMeta{Name: "net", Namespace: ns}, Spec: sluicev1.VFNetworkSpec{ResourceName: pool, MTU: 1400}}
	if err := env.Client.Create(ctx, vfn); err != nil {
		t.Fatal(err)
	}
	claimReference(t, ns, "net", ns)

	want := `{"cniVersion":"1.0.0","name":"net","type":"sluice-cni","mtu":1400}`
	editPolicy(t, p.Name, func(s *sluicev1.NetworkNodePolicySpec) { s.Allocation = sluicev1.AllocationDevicePlugin })
	nadConfig(t, ns, "net", want)
	vfnReady(t, ns, "net", metav1.ConditionTrue, "Rendered")

	editPolicy(t, p.Name, func(s *sluicev1.NetworkNodePolicySpec) { s.Allocation = sluicev1.AllocationDRA })
	waitNoNAD(t, ns, "net")
	claimReference(t, ns, "net", ns)

	// A device-plugin policy of the same pool: the pools conflict on the
	// nodes both select, and the NAD is rendered for the device plugin's.
	dp := validPolicy(uniqueName(t, "dp"))
	dp.Spec.ResourceName = pool
	createPolicy(t, dp)
	nadConfig(t, ns, "net", want)
	vfnReady(t, ns, "net", metav1.ConditionTrue, "Rendered")
	if err := env.Client.Delete(ctx, dp); err != nil {
		t.Fatal(err)
	}
	waitNoNAD(t, ns, "net")
	claimReference(t, ns, "net", ns)
}

// A platform VFNetwork rendered into another namespace: when its pool
// moves to DRA, the NAD there and the finalizer go; back on the device
// plugin, both return.
func TestOperatorVFNetworkOtherNamespaceDRAPool(t *testing.T) {
	startOperator(t)
	home, target, name, pool := operatorNamespace, env.Namespace(t), uniqueName(t, "net"), uniqueName(t, "pool")
	p := validPolicy(uniqueName(t, "dp"))
	p.Spec.ResourceName = pool
	createPolicy(t, p)
	createPlatformVFNetwork(t, name, sluicev1.VFNetworkSpec{ResourceName: pool, NetworkNamespace: target, VLAN: 7})
	want := `{"cniVersion":"1.0.0","name":"` + name + `","type":"sluice-cni","vlan":7}`
	nadConfig(t, target, name, want)
	vfnReady(t, home, name, metav1.ConditionTrue, "Rendered")

	editPolicy(t, p.Name, func(s *sluicev1.NetworkNodePolicySpec) { s.Allocation = sluicev1.AllocationDRA })
	waitNoNAD(t, target, name)
	eventually(t, "finalizer gone", func() error {
		n, err := getVFNetwork(home, name)
		if err != nil {
			return err
		}
		if len(n.Finalizers) != 0 {
			return errorf("finalizers = %v", n.Finalizers)
		}
		return nil
	})
	claimReference(t, home, name, target)

	editPolicy(t, p.Name, func(s *sluicev1.NetworkNodePolicySpec) { s.Allocation = sluicev1.AllocationDevicePlugin })
	nadConfig(t, target, name, want)
	got := vfnReady(t, home, name, metav1.ConditionTrue, "Rendered")
	if got.Status.NetworkAttachmentDefinition != target+"/"+name || len(got.Finalizers) != 1 {
		t.Errorf("status.networkAttachmentDefinition = %q, finalizers = %v", got.Status.NetworkAttachmentDefinition, got.Finalizers)
	}
}
