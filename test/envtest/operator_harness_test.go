package envtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/controllers"
	"github.com/sluice-net/sluice/test/testenv"
)

const (
	operatorNamespace = controllers.DefaultNamespace
	// operatorUser is who the operator under test acts as: a service
	// account bound to nothing but config/rbac/role.yaml, so every test
	// also proves the generated RBAC is enough.
	operatorUser  = "system:serviceaccount:" + operatorNamespace + ":sluice-operator"
	testNodeImage = "registry.example/sluice:test"
	waitTimeout   = 30 * time.Second
)

// startOperator runs the operator against the shared control plane until
// the test ends; change, when given, adjusts its options.
func startOperator(t *testing.T, change ...func(*controllers.Options)) {
	t.Helper()
	ctx := context.Background()
	grantOperatorRBAC(t)
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: operatorUser}
	o := controllers.Options{
		RestConfig:                   cfg,
		Namespace:                    operatorNamespace,
		MetricsBindAddress:           "0",
		NodeDaemonSet:                controllers.NodeDaemonSetOptions{Image: testNodeImage, MaxUnavailable: 2, NodeSelector: map[string]string{"sluice.dev/agent": "true"}},
		SkipControllerNameValidation: true,
	}
	for _, c := range change {
		c(&o)
	}
	mgr, err := controllers.NewManager(o)
	if err != nil {
		t.Fatalf("operator: %v", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("operator stopped with %v", err)
		}
	})
	if !mgr.GetCache().WaitForCacheSync(runCtx) {
		t.Fatal("operator caches did not sync")
	}
}

// grantOperatorRBAC installs config/rbac/role.yaml and binds it to
// operatorUser; it is idempotent.
func grantOperatorRBAC(t *testing.T) {
	t.Helper()
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}})
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "sluice-operator", Namespace: operatorNamespace}}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		if strings.TrimSpace(strings.Trim(doc, "-\n")) == "" {
			continue
		}
		var kind struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &kind); err != nil {
			t.Fatalf("role.yaml: %v", err)
		}
		switch kind.Kind {
		case "ClusterRole":
			var r rbacv1.ClusterRole
			if err := yaml.Unmarshal([]byte(doc), &r); err != nil {
				t.Fatal(err)
			}
			upsert(t, &r)
			upsert(t, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: r.Name},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: r.Name},
				Subjects:   subject,
			})
		case "Role":
			var r rbacv1.Role
			if err := yaml.Unmarshal([]byte(doc), &r); err != nil {
				t.Fatal(err)
			}
			upsert(t, &r)
			upsert(t, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: r.Name, Namespace: r.Namespace},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: r.Name},
				Subjects:   subject,
			})
		default:
			t.Fatalf("role.yaml: unexpected kind %q", kind.Kind)
		}
	}
}

// upsert creates obj or replaces the stored one with it.
func upsert(t *testing.T, obj client.Object) {
	t.Helper()
	ctx := context.Background()
	err := env.Client.Create(ctx, obj)
	if apierrors.IsAlreadyExists(err) {
		cur := obj.DeepCopyObject().(client.Object)
		if err = env.Client.Get(ctx, client.ObjectKeyFromObject(obj), cur); err == nil {
			obj.SetResourceVersion(cur.GetResourceVersion())
			err = env.Client.Update(ctx, obj)
		}
	}
	if err != nil {
		t.Fatalf("install %T %s: %v", obj, obj.GetName(), err)
	}
}

func mustCreate(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// uniqueName is a DNS-1123 name unique to this test run, for cluster-scoped
// objects (nodes, policies) that fresh namespaces cannot isolate.
func uniqueName(t *testing.T, suffix string) string {
	base := strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(base) > 30 {
		base = base[len(base)-30:]
	}
	return strings.Trim(fmt.Sprintf("%s-%04x-%s", base, rand.IntN(1<<16), suffix), "-")
}

// createNode creates a Node with labels, deleted (with its NodeNetworkState)
// when the test ends.
func createNode(t *testing.T, name string, labels map[string]string) *corev1.Node {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := env.Client.Create(context.Background(), n); err != nil {
		t.Fatalf("create node: %v", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = env.Client.Delete(ctx, n)
		// envtest runs no garbage collector.
		_ = env.Client.Delete(ctx, &sluicev1.NodeNetworkState{ObjectMeta: metav1.ObjectMeta{Name: name}})
	})
	return n
}

func createPolicy(t *testing.T, p *sluicev1.NetworkNodePolicy) {
	t.Helper()
	if err := env.Client.Create(context.Background(), p); err != nil {
		t.Fatalf("create policy %s: %v", p.Name, err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), p) })
}

// twoPFs is what a simulated agent discovers on each node.
func twoPFs() []sluicev1.InterfaceStatus {
	return []sluicev1.InterfaceStatus{
		{Name: "ens1f0", PCIAddress: "0000:3b:00.0", Vendor: "15b3", DeviceID: "101b", LinkType: sluicev1.LinkTypeEthernet, NUMANode: 0, TotalVfs: 16},
		{Name: "ens1f1", PCIAddress: "0000:3b:00.1", Vendor: "15b3", DeviceID: "101b", LinkType: sluicev1.LinkTypeEthernet, NUMANode: 0, TotalVfs: 16},
	}
}

// agentReports acts as the node agent discovering interfaces: it creates
// the node's NodeNetworkState when missing and writes status.interfaces.
func agentReports(t *testing.T, node string, ifaces []sluicev1.InterfaceStatus) {
	t.Helper()
	ctx := context.Background()
	nns := &sluicev1.NodeNetworkState{ObjectMeta: metav1.ObjectMeta{Name: node}}
	if err := env.Client.Create(ctx, nns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("agent: create NodeNetworkState: %v", err)
	}
	updateNNSStatus(t, node, func(st *sluicev1.NodeNetworkState) { st.Status.Interfaces = ifaces })
}

// agentSynced acts as the node agent having applied the current spec.
func agentSynced(t *testing.T, node string, result sluicev1.SyncStatus, dryRun *sluicev1.DryRunResult) {
	t.Helper()
	updateNNSStatus(t, node, func(st *sluicev1.NodeNetworkState) {
		st.Status.SyncStatus = result
		st.Status.ObservedGeneration = st.Generation
		st.Status.DryRun = dryRun
		if result == sluicev1.SyncFailed {
			st.Status.LastSyncError = "write sriov_numvfs: device busy"
		}
	})
}

func updateNNSStatus(t *testing.T, node string, mutate func(*sluicev1.NodeNetworkState)) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		nns := &sluicev1.NodeNetworkState{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: node}, nns); err != nil {
			return err
		}
		mutate(nns)
		return env.Client.Status().Update(ctx, nns)
	})
	if err != nil {
		t.Fatalf("agent: update NodeNetworkState %s status: %v", node, err)
	}
}

// eventually polls check until it returns nil, failing the test with its
// last error after waitTimeout.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after %s: %v", what, waitTimeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// errorf makes eventually's checks short.
func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
