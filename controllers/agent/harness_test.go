package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/sluice-net/sluice/api/drainslot"
	"github.com/sluice-net/sluice/api/nodefiles"
	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/host/hosttest"
	"github.com/sluice-net/sluice/test/testenv"
)

// The control plane is started by the first test that needs one and shared
// by the package's tests; each uses its own node name and namespace.
var shared struct {
	once sync.Once
	env  *testenv.Env
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.env != nil {
		if err := shared.env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop envtest:", err)
		}
	}
	os.Exit(code)
}

func controlPlane(t testing.TB) *testenv.Env {
	t.Helper()
	if testing.Short() {
		t.Skip("envtest: skipped in -short mode")
	}
	shared.once.Do(func() {
		shared.env, shared.err = testenv.Start()
		if shared.err == nil {
			shared.err = installClusterAccess(shared.env)
		}
	})
	if shared.err != nil {
		t.Fatalf("envtest: %v", shared.err)
	}
	return shared.env
}

const (
	agentAccount = "sluice-node"
	agentUser    = "system:serviceaccount:" + DefaultNamespace + ":" + agentAccount
	// nodeNameExtra is the user extra in which a service account token
	// bound to a pod names the pod's node.
	nodeNameExtra = "authentication.kubernetes.io/node-name"
	waitTimeout   = 30 * time.Second
)

// manifestDocs reads the YAML documents of a file under config/.
func manifestDocs(path ...string) ([]string, error) {
	raw, err := os.ReadFile(filepath.Join(append([]string{testenv.RepoRoot(), "config"}, path...)...))
	if err != nil {
		return nil, err
	}
	var docs []string
	for _, d := range strings.Split(string(raw), "\n---\n") {
		if strings.Contains(d, "kind:") {
			docs = append(docs, d)
		}
	}
	return docs, nil
}

// installClusterAccess installs the agent's ClusterRole and its binding,
// its ServiceAccount and the admission policy narrowing its writes to its
// node (config/admission): the agents under test act as the sluice-node
// ServiceAccount on their node, so every test also proves that
// config/rbac/agent_role.yaml is enough and that the policy lets the agent
// do its work.
func installClusterAccess(env *testenv.Env) error {
	ctx := context.Background()
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: DefaultNamespace}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: DefaultNamespace, Name: agentAccount}},
	} {
		if err := env.Client.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create %T %s: %w", obj, obj.GetName(), err)
		}
	}
	rbac, err := manifestDocs("rbac", "agent_role.yaml")
	if err != nil {
		return err
	}
	policy, err := manifestDocs("admission", "node_identity.yaml")
	if err != nil {
		return err
	}
	for _, d := range append(rbac, policy...) {
		var kind struct{ Kind string }
		if err := yaml.Unmarshal([]byte(d), &kind); err != nil {
			return err
		}
		var obj client.Object
		switch kind.Kind {
		case "ClusterRole":
			obj = &rbacv1.ClusterRole{}
		case "ClusterRoleBinding":
			obj = &rbacv1.ClusterRoleBinding{}
		case "ValidatingAdmissionPolicy":
			obj = &admissionregistrationv1.ValidatingAdmissionPolicy{}
		case "ValidatingAdmissionPolicyBinding":
			obj = &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}
		default:
			continue
		}
		if err := yaml.UnmarshalStrict([]byte(d), obj); err != nil {
			return fmt.Errorf("%s: %w", kind.Kind, err)
		}
		if err := env.Client.Create(ctx, obj); err != nil {
			return fmt.Errorf("install %s: %w", kind.Kind, err)
		}
	}
	return nil
}

// installNamespaceRBAC installs the agent's Role (drain slot Leases) into a
// test namespace.
func installNamespaceRBAC(t testing.TB, env *testenv.Env, ns string) {
	t.Helper()
	docs, err := manifestDocs("rbac", "agent_role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		var kind struct{ Kind string }
		if err := yaml.Unmarshal([]byte(d), &kind); err != nil {
			t.Fatal(err)
		}
		var obj client.Object
		switch kind.Kind {
		case "Role":
			obj = &rbacv1.Role{}
		case "RoleBinding":
			obj = &rbacv1.RoleBinding{}
		default:
			continue
		}
		if err := yaml.UnmarshalStrict([]byte(d), obj); err != nil {
			t.Fatal(err)
		}
		obj.SetNamespace(ns)
		if err := env.Client.Create(context.Background(), obj); err != nil {
			t.Fatalf("install %s: %v", kind.Kind, err)
		}
	}
}

// createDrainSlots creates the drain slot Leases in ns, as the operator
// does in its namespace.
func createDrainSlots(t testing.TB, env *testenv.Env, ns string, n int) {
	t.Helper()
	for _, name := range drainslot.Names(n) {
		l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		if err := env.Client.Create(context.Background(), l); err != nil {
			t.Fatalf("create drain slot %s: %v", name, err)
		}
	}
}

// fakeUsage is a VF usage source the test sets.
type fakeUsage struct {
	mu   sync.Mutex
	vfs  map[string][]PodRef
	fail error
}

func (f *fakeUsage) VFUsers(context.Context) (map[string][]PodRef, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	out := map[string][]PodRef{}
	for k, v := range f.vfs {
		out[k] = append([]PodRef(nil), v...)
	}
	return out, nil
}

func (f *fakeUsage) use(vf string, pods ...PodRef) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.vfs == nil {
		f.vfs = map[string][]PodRef{}
	}
	f.vfs[vf] = pods
}

// harness is one agent under test: a fake node, a Node object, a fresh
// namespace for its pods and drain slots, and its files.
type harness struct {
	t     testing.TB
	env   *testenv.Env
	node  *hosttest.Node
	name  string
	ns    string
	dir   string
	usage *fakeUsage
	opts  Options
	stop  func()
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	env := controlPlane(t)
	h := &harness{t: t, env: env, node: hosttest.New(t), usage: &fakeUsage{}, dir: t.TempDir()}
	h.name = fmt.Sprintf("node-%06x", rand.IntN(1<<24))
	h.ns = env.Namespace(t)
	installNamespaceRBAC(t, env, h.ns)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: h.name}}
	if err := env.Client.Create(context.Background(), node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = env.Client.Delete(ctx, node)
		// envtest runs no garbage collector.
		_ = env.Client.Delete(ctx, &sluicev1.NodeNetworkState{ObjectMeta: metav1.ObjectMeta{Name: h.name}})
	})
	// The agent's user as a token bound to a pod on this node makes it.
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: agentUser, Extra: map[string][]string{nodeNameExtra: {h.name}}}
	h.opts = Options{
		NodeName:           h.name,
		RestConfig:         cfg,
		StateDir:           filepath.Join(h.dir, "state"),
		LockDir:            filepath.Join(h.dir, "locks"),
		GatePath:           filepath.Join(h.dir, "run", "ready.json"),
		DevicePluginConfig: filepath.Join(h.dir, "run", "device-plugin.json"),
		Usage:              h.usage,
		Namespace:          h.ns,
		MaxUnavailable:     1,
		ResyncPeriod:       time.Second,
		RetryPeriod:        200 * time.Millisecond,
		LeaseDuration:      10 * time.Second,
		Logger:             testr.NewWithInterface(t, testr.Options{Verbosity: 0}),
	}
	createDrainSlots(t, env, h.ns, h.opts.MaxUnavailable)
	return h
}

// start runs the agent (Run, as 'sluice agent' does) until the test ends
// or stopAgent.
func (h *harness) start() {
	h.t.Helper()
	o := h.opts
	o.Host = h.node.Host()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, o) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil && !errors.Is(err, context.Canceled) {
					h.t.Errorf("agent stopped with %v", err)
				}
			case <-time.After(30 * time.Second):
				h.t.Errorf("agent did not stop within 30s")
			}
		})
	}
	h.t.Cleanup(h.stop)
}

func (h *harness) nns() *sluicev1.NodeNetworkState {
	h.t.Helper()
	n := &sluicev1.NodeNetworkState{}
	if err := h.env.Client.Get(context.Background(), client.ObjectKey{Name: h.name}, n); err != nil {
		h.t.Fatalf("get NodeNetworkState: %v", err)
	}
	return n
}

// setSpec edits the spec as the operator would and returns the new
// generation.
func (h *harness) setSpec(edit func(*sluicev1.NodeNetworkStateSpec)) int64 {
	h.t.Helper()
	var gen int64
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n := &sluicev1.NodeNetworkState{}
		if err := h.env.Client.Get(context.Background(), client.ObjectKey{Name: h.name}, n); err != nil {
			return err
		}
		edit(&n.Spec)
		if err := h.env.Client.Update(context.Background(), n); err != nil {
			return err
		}
		gen = n.Generation
		return nil
	})
	if err != nil {
		h.t.Fatalf("set spec: %v", err)
	}
	return gen
}

// waitFor polls the NodeNetworkState until check passes.
func (h *harness) waitFor(what string, check func(*sluicev1.NodeNetworkState) error) *sluicev1.NodeNetworkState {
	h.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		n := &sluicev1.NodeNetworkState{}
		err := h.env.Client.Get(context.Background(), client.ObjectKey{Name: h.name}, n)
		if err == nil {
			err = check(n)
		}
		if err == nil {
			return n
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: not true after %s: %v", what, waitTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// synced waits for syncStatus at generation gen.
func (h *harness) synced(want sluicev1.SyncStatus, gen int64) *sluicev1.NodeNetworkState {
	h.t.Helper()
	return h.waitFor(fmt.Sprintf("syncStatus %s at generation %d", want, gen), func(n *sluicev1.NodeNetworkState) error {
		st := n.Status
		if st.SyncStatus != want || st.ObservedGeneration != gen || n.Generation != gen {
			return fmt.Errorf("syncStatus %q at observed generation %d (generation %d), error %q, drain %+v",
				st.SyncStatus, st.ObservedGeneration, n.Generation, st.LastSyncError, st.Drain)
		}
		return nil
	})
}

// eventually polls check.
func (h *harness) eventually(what string, check func() error) {
	h.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: not true after %s: %v", what, waitTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *harness) gate() nodefiles.GateState {
	h.t.Helper()
	s, err := nodefiles.ReadGate(h.opts.GatePath)
	if err != nil && !nodefiles.GateClosed(err) {
		h.t.Fatal(err)
	}
	return s
}

// numVFs is the fake node's VF count of a PF, from sysfs.
func (h *harness) numVFs(pf string) int {
	h.t.Helper()
	snap, err := h.node.Host().Discover(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	p := snap.PFByAddress(pf)
	if p == nil {
		h.t.Fatalf("no PF %s", pf)
	}
	return p.NumVFs
}

// pod creates a Running pod. It is not scheduled, so that an eviction
// deletes it at once (no kubelet runs); Running, because the eviction API
// ignores PodDisruptionBudgets for Pending pods.
func (h *harness) pod(name string, labels map[string]string) PodRef {
	h.t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: name, Labels: labels},
		// Bound to the agent's node; no kubelet confirms a graceful
		// deletion here, so grace 0 lets an eviction delete it at once.
		Spec: corev1.PodSpec{NodeName: h.name, TerminationGracePeriodSeconds: ptr.To(int64(0)),
			Containers: []corev1.Container{{Name: "c", Image: "registry.example/app:1"}}},
	}
	if err := h.env.Client.Create(context.Background(), p); err != nil {
		h.t.Fatal(err)
	}
	p.Status.Phase = corev1.PodRunning
	if err := h.env.Client.Status().Update(context.Background(), p); err != nil {
		h.t.Fatal(err)
	}
	return PodRef{Namespace: h.ns, Name: name, UID: string(p.UID)}
}

func (h *harness) podExists(name string) bool {
	h.t.Helper()
	err := h.env.Client.Get(context.Background(), client.ObjectKey{Namespace: h.ns, Name: name}, &corev1.Pod{})
	if err != nil && !apierrors.IsNotFound(err) {
		h.t.Fatal(err)
	}
	return err == nil
}

// fourVFs is a spec of n VFs on one PF in one netdevice group, and its pool.
func nVFs(pf, name string, n int32, groups ...sluicev1.VFGroup) func(*sluicev1.NodeNetworkStateSpec) {
	return func(s *sluicev1.NodeNetworkStateSpec) {
		if len(groups) == 0 {
			groups = []sluicev1.VFGroup{{Policy: "p1", ResourceName: "net1", VFRange: sluicev1.VFRange(fmt.Sprintf("0-%d", n-1)), DeviceType: sluicev1.DeviceTypeNetdevice}}
		}
		in := sluicev1.InterfaceSpec{PCIAddress: sluicev1.PCIAddress(pf), Name: name, NumVfs: n, VFGroups: groups}
		s.Interfaces = []sluicev1.InterfaceSpec{in}
		s.Pools = nil
		for _, g := range groups {
			s.Pools = append(s.Pools, sluicev1.DevicePluginPool{ResourceName: g.ResourceName, DeviceType: g.DeviceType,
				Selectors: sluicev1.PoolSelectors{PFNames: []string{name + "#" + string(g.VFRange)}}})
		}
	}
}

// TestRoleGrantsTheDrainSlots: the agent's Role names exactly the drain
// slots sluice-drain-0 .. drainslot.Max-1, the most --max-unavailable
// accepts, and no other Lease.
func TestRoleGrantsTheDrainSlots(t *testing.T) {
	docs, err := manifestDocs("rbac", "agent_role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var roles []rbacv1.Role
	for _, d := range docs {
		var r rbacv1.Role
		if err := yaml.Unmarshal([]byte(d), &r); err != nil {
			t.Fatal(err)
		}
		if r.Kind == "Role" {
			roles = append(roles, r)
		}
	}
	want := []rbacv1.PolicyRule{{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"},
		Verbs: []string{"get", "update"}, ResourceNames: drainslot.Names(drainslot.Max)}}
	if len(roles) != 1 || !reflect.DeepEqual(roles[0].Rules, want) {
		t.Errorf("agent_role.yaml's Roles %+v, want one with the rules %+v", roles, want)
	}
}
