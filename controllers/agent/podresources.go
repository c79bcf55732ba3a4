package agent

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// kubeletUsage asks the kubelet's PodResources API which devices each pod
// was allocated. The device plugin's device IDs are VF PCI addresses, so a
// device ID is a VF; IDs of other plugins match no VF and are ignored by
// the plan.
type kubeletUsage struct {
	socket  string
	timeout time.Duration
}

func (k kubeletUsage) VFUsers(ctx context.Context) (map[string][]PodRef, error) {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+k.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("kubelet pod-resources at %s: %w", k.socket, err)
	}
	defer conn.Close()
	resp, err := podresourcesv1.NewPodResourcesListerClient(conn).List(ctx, &podresourcesv1.ListPodResourcesRequest{})
	if err != nil {
		return nil, fmt.Errorf("list pod resources from the kubelet at %s (is the kubelet running and the socket mounted? --pod-resources-socket=\"\" leaves the kubelet out): %w", k.socket, err)
	}
	out := map[string][]PodRef{}
	for _, pod := range resp.GetPodResources() {
		ref := PodRef{Namespace: pod.GetNamespace(), Name: pod.GetName()}
		for _, c := range pod.GetContainers() {
			for _, d := range c.GetDevices() {
				for _, id := range d.GetDeviceIds() {
					out[id] = appendPod(out[id], ref)
				}
			}
		}
	}
	return out, nil
}

func appendPod(pods []PodRef, p PodRef) []PodRef {
	for _, q := range pods {
		if q.Namespace == p.Namespace && q.Name == p.Name && q.Record == p.Record && q.DRAHold == p.DRAHold && q.ClaimUID == p.ClaimUID {
			return pods
		}
	}
	return append(pods, p)
}
