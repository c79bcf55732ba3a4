package agent

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/deviceplugin/dra"
)

type fakeKubelet struct {
	podresourcesv1.UnimplementedPodResourcesListerServer
	resp *podresourcesv1.ListPodResourcesResponse
}

func (f fakeKubelet) List(context.Context, *podresourcesv1.ListPodResourcesRequest) (*podresourcesv1.ListPodResourcesResponse, error) {
	return f.resp, nil
}

// TestKubeletUsage reads VF users from a pod-resources server on a unix
// socket, as the kubelet serves it.
func TestKubeletUsage(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "kubelet.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	podresourcesv1.RegisterPodResourcesListerServer(srv, fakeKubelet{resp: &podresourcesv1.ListPodResourcesResponse{
		PodResources: []*podresourcesv1.PodResources{
			{Namespace: "ns", Name: "a", Containers: []*podresourcesv1.ContainerResources{
				{Name: "c1", Devices: []*podresourcesv1.ContainerDevices{{ResourceName: "sluice.dev/net1", DeviceIds: []string{"0000:81:00.1", "0000:81:00.2"}}}},
				{Name: "c2", Devices: []*podresourcesv1.ContainerDevices{{ResourceName: "sluice.dev/net1", DeviceIds: []string{"0000:81:00.1"}}}},
			}},
			{Namespace: "ns", Name: "b", Containers: []*podresourcesv1.ContainerResources{
				{Name: "c", Devices: []*podresourcesv1.ContainerDevices{{ResourceName: "nvidia.com/gpu", DeviceIds: []string{"GPU-1234"}}}},
			}},
		},
	}})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	got, err := kubeletUsage{socket: sock, timeout: 5 * time.Second}.VFUsers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a := PodRef{Namespace: "ns", Name: "a"}
	if !slices.Equal(got["0000:81:00.1"], []PodRef{a}) || !slices.Equal(got["0000:81:00.2"], []PodRef{a}) || len(got) != 3 {
		t.Errorf("users = %v", got)
	}

	_, err = kubeletUsage{socket: filepath.Join(t.TempDir(), "none.sock"), timeout: 2 * time.Second}.VFUsers(context.Background())
	if err == nil || !strings.Contains(err.Error(), "none.sock") || !strings.Contains(err.Error(), "--pod-resources-socket") {
		t.Errorf("missing socket: err = %v, want one naming the socket and the flag", err)
	}
}

// TestAttachmentUsage merges the CNI's records with another source.
func TestAttachmentUsage(t *testing.T) {
	dir := nodefiles.NewAttachments(t.TempDir())
	for _, r := range []nodefiles.Record{
		{PCIAddress: "0000:81:00.1", PodNamespace: "ns", PodName: "a", PodUID: "uid-a", ContainerID: "c1"},
		{PCIAddress: "0000:81:00.2", ContainerID: "c2"}, // not a Kubernetes pod
	} {
		if err := dir.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	other := &fakeUsage{}
	other.use("0000:81:00.1", PodRef{Namespace: "ns", Name: "a"}, PodRef{Namespace: "ns", Name: "b"})
	got, err := multiUsage{attachmentUsage{dir: dir}, other}.VFUsers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []PodRef{{Namespace: "ns", Name: "a", UID: "uid-a"}, {Namespace: "ns", Name: "b"}}
	if !slices.Equal(got["0000:81:00.1"], want) || len(got) != 1 {
		t.Errorf("users = %v, want %v on 0000:81:00.1 only", got, want)
	}
}

// TestDRAUsage: a DRA hold makes its claim a user of the VF, with the
// pods the driver moved the VF into (from the claim's checkpoint); an
// unreadable hold is a user that cannot be named; two claims on two VFs
// stay two users in a drain's list.
func TestDRAUsage(t *testing.T) {
	const uidA, uidB = "6f1c9a52-0d3e-4c1b-8a44-2b7e0c9d1a01", "6f1c9a52-0d3e-4c1b-8a44-2b7e0c9d1a02"
	claims := nodefiles.NewDRAClaims(t.TempDir())
	if err := claims.Put(nodefiles.DRAClaim{UID: uidA, Namespace: "ml", Name: "x", State: nodefiles.DRAClaimPrepared,
		Devices: []nodefiles.DRAClaimDevice{{PCIAddress: "0000:81:00.1", Attachment: &nodefiles.DRAAttachment{
			State: nodefiles.DRAAttachmentAttached, PodNamespace: "ml", PodName: "trainer", PodUID: "uid-t"}}}}); err != nil {
		t.Fatal(err)
	}
	for _, h := range []nodefiles.DRAHold{
		{PCIAddress: "0000:81:00.1", ClaimUID: uidA, Namespace: "ml", Name: "x"},
		{PCIAddress: "0000:81:00.2", ClaimUID: uidB, Namespace: "ml", Name: "y"}, // no checkpoint (yet)
	} {
		if err := claims.PutHold(h); err != nil {
			t.Fatal(err)
		}
	}
	bad := filepath.Join(claims.HoldsDir(), "0000:81:00.3.json")
	if err := os.WriteFile(bad, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := &fakeUsage{}
	other.use("0000:81:00.1", PodRef{Namespace: "ml", Name: "trainer"})
	got, err := multiUsage{draUsage{claims: claims}, other}.VFUsers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	x := PodRef{Claim: "ml/x", ClaimUID: uidA, DRAHold: true}
	y := PodRef{Claim: "ml/y", ClaimUID: uidB, DRAHold: true}
	unknown := PodRef{Record: bad, DRAHold: true}
	want := map[string][]PodRef{
		"0000:81:00.1": {x, {Namespace: "ml", Name: "trainer", UID: "uid-t"}},
		"0000:81:00.2": {y},
		"0000:81:00.3": {unknown},
	}
	if len(got) != len(want) {
		t.Errorf("users = %v, want %v", got, want)
	}
	for vf, w := range want {
		if !slices.Equal(got[vf], w) {
			t.Errorf("users of %s = %v, want %v", vf, got[vf], w)
		}
	}
	if !x.noEviction() || !unknown.noEviction() || !strings.Contains(x.String(), "ResourceClaim ml/x") || !strings.Contains(unknown.String(), bad) {
		t.Errorf("claim holders: %v (evictable: %v), %v (evictable: %v)", x, !x.noEviction(), unknown, !unknown.noEviction())
	}
	var all []PodRef
	for _, vf := range []string{"0000:81:00.1", "0000:81:00.2", "0000:81:00.3"} {
		for _, p := range got[vf] {
			all = appendPod(all, p)
		}
	}
	if len(all) != 4 {
		t.Errorf("a drain's list of the users = %v, want the two claims, the unknown one and the pod", all)
	}
}

// TestDefaultUsageReadsDRAHolds: the agent's usage reads the DRA driver's
// holds where the driver writes its checkpoints, with the driver on or
// off (claims it prepared before it was turned off still hold VFs).
func TestDefaultUsageReadsDRAHolds(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{StateDir: "/run/x"}, "/run/x/dra/claims"},
		{Options{StateDir: "/run/x", DRA: &dra.Options{}}, "/run/x/dra/claims"},
		{Options{StateDir: "/run/x", DRA: &dra.Options{ClaimsDir: "/elsewhere"}}, "/elsewhere"},
	} {
		var dirs []string
		for _, s := range defaultUsage(tc.o).(multiUsage) {
			if d, ok := s.(draUsage); ok {
				dirs = append(dirs, d.claims.Root())
			}
		}
		if !slices.Equal(dirs, []string{tc.want}) {
			t.Errorf("DRA usage of %+v reads %v, want %s", tc.o, dirs, tc.want)
		}
	}
	if got := (Options{}).withDefaults(); draClaimsDir(got) != nodefiles.DefaultDRAClaimsDir {
		t.Errorf("default DRA claims directory %s, want the CNI's %s", draClaimsDir(got), nodefiles.DefaultDRAClaimsDir)
	}
}
