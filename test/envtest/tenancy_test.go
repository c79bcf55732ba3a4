package envtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/controllers"
)

// tenantClient acts as a tenant of namespace ns: its service account
// "tenant", which a Role lets manage VFNetworks in ns and nothing else.
func tenantClient(t *testing.T, ns string) client.Client {
	t.Helper()
	mustCreate(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "tenant", Namespace: ns}})
	mustCreate(t, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "vfnetwork-editor", Namespace: ns},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{sluicev1.Group}, Resources: []string{"vfnetworks"},
			Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"},
		}},
	})
	mustCreate(t, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "tenant-vfnetworks", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "vfnetwork-editor"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "tenant", Namespace: ns}},
	})
	user := "system:serviceaccount:" + ns + ":tenant"
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
	// The API server's RBAC authorizer sees the binding through its
	// informers, a moment after the create returns: until then the tenant
	// is refused (seen once in a make test, stop 29). Ask the authorizer
	// itself until it allows.
	eventually(t, "tenant "+user+" may create VFNetworks in "+ns+" (its RoleBinding seen by the authorizer)", func() error {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, Groups: groups,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ns, Verb: "create", Group: sluicev1.Group, Resource: "vfnetworks",
			},
		}}
		if err := env.Client.Create(context.Background(), sar); err != nil {
			return err
		}
		if !sar.Status.Allowed {
			return errorf("not yet allowed: %s", sar.Status.Reason)
		}
		return nil
	})
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tenantSpec uses every option a tenant's VFNetwork may set.
func tenantSpec(ns string) sluicev1.VFNetworkSpec {
	return sluicev1.VFNetworkSpec{
		ResourceName: "pool", NetworkNamespace: ns, SpoofChk: sluicev1.On, Trust: sluicev1.Off,
		LinkState: "enable", MaxTxRate: 1000, MTU: 9000, RDMA: true,
		IPAM:         `{"type":"host-local","subnet":"10.56.0.0/24"}`,
		Capabilities: `{"ips": true, "mac": false}`, LogLevel: "debug",
	}
}

// tenantSpecConfig is the NetworkAttachmentDefinition config of tenantSpec.
func tenantSpecConfig(name string) string {
	return `{"cniVersion":"1.0.0","name":"` + name + `","type":"sluice-cni","spoofchk":"on","trust":"off","link_state":"enable","max_tx_rate":1000,"mtu":9000,"rdma":true,"ipam":{"type":"host-local","subnet":"10.56.0.0/24"},"capabilities":{"ips":true,"mac":false},"logLevel":"debug"}`
}

// privilegedOption is one thing only a platform VFNetwork may ask for.
type privilegedOption struct {
	name string
	// fields are what the refusal names, with the fix.
	fields []string
	set    func(*sluicev1.VFNetworkSpec)
}

// privilegedOptions are every such thing; other is a namespace that is
// not the tenant's.
func privilegedOptions(other string) []privilegedOption {
	return []privilegedOption{
		{"another namespace", []string{`spec.networkNamespace "` + other + `"`, "remove spec.networkNamespace"},
			func(s *sluicev1.VFNetworkSpec) { s.NetworkNamespace = other }},
		{"trust on", []string{`spec.trust "on"`, `remove spec.trust or set it to "off"`},
			func(s *sluicev1.VFNetworkSpec) { s.Trust = sluicev1.On }},
		{"spoofChk off", []string{`spec.spoofChk "off"`, `remove spec.spoofChk or set it to "on"`},
			func(s *sluicev1.VFNetworkSpec) { s.SpoofChk = sluicev1.Off }},
		{"vlan", []string{"spec.vlan 100", "remove spec.vlan"},
			func(s *sluicev1.VFNetworkSpec) { s.VLAN = 100 }},
		// The schema wants a VLAN under a QoS.
		{"vlanQoS", []string{"spec.vlanQoS 3", "remove spec.vlanQoS"},
			func(s *sluicev1.VFNetworkSpec) { s.VLAN, s.VLANQoS = 100, 3 }},
		{"vlanProto", []string{`spec.vlanProto "802.1Q"`, "remove spec.vlanProto"},
			func(s *sluicev1.VFNetworkSpec) { s.VLANProto = "802.1Q" }},
		{"minTxRate", []string{"spec.minTxRate 100", "remove spec.minTxRate"},
			func(s *sluicev1.VFNetworkSpec) { s.MinTxRate = 100 }},
		{"mac capability", []string{`spec.capabilities "mac": true`, `set "mac" to false or leave it out`},
			func(s *sluicev1.VFNetworkSpec) { s.Capabilities = `{"ips": true, "mac":  true}` }},
		{"metaPlugins", []string{"spec.metaPlugins", "remove spec.metaPlugins"},
			func(s *sluicev1.VFNetworkSpec) { s.MetaPlugins = `{"type":"tuning"}` }},
		{"logFile", []string{`spec.logFile "/var/log/cni.log"`, "remove spec.logFile"},
			func(s *sluicev1.VFNetworkSpec) { s.LogFile = "/var/log/cni.log" }},
	}
}

// platformSpec is a platform VFNetwork asking for all of it, rendered into
// target.
func platformSpec(target string) sluicev1.VFNetworkSpec {
	return sluicev1.VFNetworkSpec{
		ResourceName: "pool", NetworkNamespace: target, VLAN: 100, VLANQoS: 3, VLANProto: "802.1AD",
		SpoofChk: sluicev1.Off, Trust: sluicev1.On, MinTxRate: 100, MaxTxRate: 1000,
		Capabilities: `{"mac": true}`, LogLevel: "debug", LogFile: "/var/log/sluice-cni.log",
		MetaPlugins: `{"type": "tuning", "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}}`,
	}
}

func platformSpecConfig(name string) string {
	// A configuration list: sluice-cni, then the meta plugin; vlanProto
	// as sluice-cni writes it.
	return `{"cniVersion":"1.0.0","name":"` + name + `","plugins":[{"type":"sluice-cni","vlan":100,"vlanQoS":3,"vlanProto":"802.1ad","spoofchk":"off","trust":"on","min_tx_rate":100,"max_tx_rate":1000,` +
		`"capabilities":{"mac":true},"logLevel":"debug","logFile":"/var/log/sluice-cni.log"},{"type":"tuning","sysctl":{"net.ipv4.conf.IFNAME.arp_notify":"1"}}]}`
}

// createPlatformVFNetwork creates a VFNetwork in the operator's namespace,
// which no test deletes: it is deleted, with what it rendered, when the
// test ends (while the test's operator still runs to finalize it).
func createPlatformVFNetwork(t *testing.T, name string, spec sluicev1.VFNetworkSpec) *sluicev1.VFNetwork {
	t.Helper()
	ctx := context.Background()
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}})
	n := &sluicev1.VFNetwork{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: operatorNamespace}, Spec: spec}
	if err := env.Client.Create(ctx, n); err != nil {
		t.Fatalf("platform VFNetwork %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = env.Client.Delete(ctx, n)
		// envtest runs no garbage collector.
		_ = env.Client.Delete(ctx, &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: operatorNamespace}})
		_ = eventuallyFor(waitTimeout, func() error {
			if _, err := getVFNetwork(operatorNamespace, name); !apierrors.IsNotFound(err) {
				return errorf("still there: %v", err)
			}
			return nil
		})
	})
	return n
}

// eventuallyFor polls check until it returns nil or d passes, and returns
// its last error; for cleanups, which must not stop the test.
func eventuallyFor(d time.Duration, check func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Without the admission policy (or for VFNetworks written before it), the
// operator itself renders nothing a tenant may not have: Ready=False with
// reason PlatformOnly and the fix, no NetworkAttachmentDefinition, and
// what it rendered before for the same VFNetwork is removed. A platform
// VFNetwork still renders all of it, anywhere.
func TestTenantVFNetworkRefusedByOperator(t *testing.T) {
	startOperator(t)
	ctx := context.Background()
	ns, other := env.Namespace(t), env.Namespace(t)
	tenant := tenantClient(t, ns)

	ok := &sluicev1.VFNetwork{ObjectMeta: metav1.ObjectMeta{Name: "ok", Namespace: ns}, Spec: tenantSpec(ns)}
	if err := tenant.Create(ctx, ok); err != nil {
		t.Fatal(err)
	}
	nadConfig(t, ns, "ok", tenantSpecConfig("ok"))
	vfnReady(t, ns, "ok", metav1.ConditionTrue, "Rendered")

	for i, o := range privilegedOptions(other) {
		t.Run(o.name, func(t *testing.T) {
			name := fmt.Sprintf("p-%d", i)
			n := &sluicev1.VFNetwork{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: tenantSpec(ns)}
			o.set(&n.Spec)
			if err := tenant.Create(ctx, n); err != nil {
				t.Fatal(err)
			}
			got := vfnReady(t, ns, name, metav1.ConditionFalse, controllers.ReasonPlatformOnly)
			c := meta.FindStatusCondition(got.Status.Conditions, sluicev1.ConditionReady)
			for _, f := range o.fields {
				if !strings.Contains(c.Message, f) {
					t.Errorf("Ready message does not say %q: %s", f, c.Message)
				}
			}
			if want := controllers.TenantRefusal(n, operatorNamespace); c.Message != want {
				t.Errorf("Ready message\n  %s\nwant\n  %s", c.Message, want)
			}
			for _, where := range []string{ns, other} {
				if _, err := getNAD(where, name); !apierrors.IsNotFound(err) {
					t.Errorf("NetworkAttachmentDefinition %s/%s rendered (or %v)", where, name, err)
				}
			}
			if got.Status.NetworkAttachmentDefinition != "" || len(got.Finalizers) != 0 {
				t.Errorf("status.networkAttachmentDefinition %q, finalizers %v", got.Status.NetworkAttachmentDefinition, got.Finalizers)
			}
		})
	}

	// A rendered VFNetwork changed to ask for more loses its
	// NetworkAttachmentDefinition: no half state.
	updateVFNetwork(t, ns, "ok", func(n *sluicev1.VFNetwork) { n.Spec.Trust = sluicev1.On })
	vfnReady(t, ns, "ok", metav1.ConditionFalse, controllers.ReasonPlatformOnly)
	eventually(t, "NetworkAttachmentDefinition of the refused VFNetwork removed", func() error {
		if _, err := getNAD(ns, "ok"); !apierrors.IsNotFound(err) {
			return errorf("NAD: %v", err)
		}
		return nil
	})
	// Asking for less renders it again.
	updateVFNetwork(t, ns, "ok", func(n *sluicev1.VFNetwork) { n.Spec.Trust = sluicev1.Off })
	vfnReady(t, ns, "ok", metav1.ConditionTrue, "Rendered")
	nadConfig(t, ns, "ok", tenantSpecConfig("ok"))

	// What an operator without this check left behind: a tenant VFNetwork
	// rendered into another namespace, with its finalizer.
	leftover := &nadv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "legacy", Namespace: other, Annotations: map[string]string{
			controllers.VFNetworkAnnotation:   ns + "/legacy",
			controllers.NADResourceAnnotation: "sluice.dev/pool",
		}},
		Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: `{"cniVersion":"1.0.0","name":"legacy","type":"sluice-cni","trust":"on"}`},
	}
	if err := env.Client.Create(ctx, leftover); err != nil {
		t.Fatal(err)
	}
	legacy := &sluicev1.VFNetwork{
		ObjectMeta: metav1.ObjectMeta{Name: "legacy", Namespace: ns, Finalizers: []string{controllers.NADFinalizer}},
		Spec:       sluicev1.VFNetworkSpec{ResourceName: "pool", NetworkNamespace: other, Trust: sluicev1.On},
	}
	if err := env.Client.Create(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	vfnReady(t, ns, "legacy", metav1.ConditionFalse, controllers.ReasonPlatformOnly)
	eventually(t, "the leftover NetworkAttachmentDefinition and the finalizer removed", func() error {
		if _, err := getNAD(other, "legacy"); !apierrors.IsNotFound(err) {
			return errorf("NAD in %s: %v", other, err)
		}
		n, err := getVFNetwork(ns, "legacy")
		if err != nil {
			return err
		}
		if len(n.Finalizers) != 0 {
			return errorf("finalizers %v", n.Finalizers)
		}
		return nil
	})

	// A platform VFNetwork renders all of it, into another namespace.
	name := uniqueName(t, "platform")
	createPlatformVFNetwork(t, name, platformSpec(ns))
	nadConfig(t, ns, name, platformSpecConfig(name))
	vfnReady(t, operatorNamespace, name, metav1.ConditionTrue, "Rendered")
}
