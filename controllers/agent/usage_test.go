package agent

import (
	"context"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/sluice-net/sluice/api/nodefiles"
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
