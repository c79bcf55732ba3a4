package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NetworksAnnotation and NetworkStatusAnnotation are Multus's pod
// annotations: the networks a pod asks for, and what it got.
const (
	NetworksAnnotation      = "k8s.v1.cni.cncf.io/networks"
	NetworkStatusAnnotation = "k8s.v1.cni.cncf.io/network-status"
)

// Workload is a Deployment of test-pod containers that each ask for vfs
// devices of resource and attach network (a NetworkAttachmentDefinition
// in namespace) through Multus. vfs 0 and network "" make a pod on the
// cluster network alone.
func Workload(namespace, name, network string, res corev1.ResourceName, replicas int32, vfs int64) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	annotations := map[string]string{}
	if network != "" {
		annotations[NetworksAnnotation] = network
	}
	var zero int64
	c := corev1.Container{
		Name: "app", Image: TestPodImage, ImagePullPolicy: corev1.PullIfNotPresent,
		// ping needs raw sockets.
		SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_RAW"}}},
	}
	if vfs > 0 {
		q := *resource.NewQuantity(vfs, resource.DecimalSI)
		c.Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{res: q}, Limits: corev1.ResourceList{res: q}}
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec:       corev1.PodSpec{TerminationGracePeriodSeconds: &zero, Containers: []corev1.Container{c}},
			},
		},
	}
}

// DRAWorkload is a Deployment of test-pod containers that each use a
// claim made from the ResourceClaimTemplate template (in namespace), as
// claim "vf" of the pod.
func DRAWorkload(namespace, name string, replicas int32, template string) *appsv1.Deployment {
	d := Workload(namespace, name, "", "", replicas, 0)
	spec := &d.Spec.Template.Spec
	spec.ResourceClaims = []corev1.PodResourceClaim{{Name: "vf", ResourceClaimTemplateName: &template}}
	spec.Containers[0].Resources.Claims = []corev1.ResourceClaim{{Name: "vf"}}
	return d
}

// ClaimNetworkData is the networkData the DRA driver put in the status of
// the pod's claim "vf" for its devices: interface name and addresses.
func (c *Cluster) ClaimNetworkData(ctx context.Context, p *corev1.Pod) ([]resourceapi.NetworkDeviceData, error) {
	for _, st := range p.Status.ResourceClaimStatuses {
		if st.Name != "vf" || st.ResourceClaimName == nil {
			continue
		}
		cl, err := c.CP.Client.ResourceV1().ResourceClaims(p.Namespace).Get(ctx, *st.ResourceClaimName, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		var out []resourceapi.NetworkDeviceData
		for _, d := range cl.Status.Devices {
			if d.NetworkData != nil {
				out = append(out, *d.NetworkData)
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("claim %s of pod %s has no networkData: %+v", cl.Name, p.Name, cl.Status.Devices)
		}
		return out, nil
	}
	return nil, fmt.Errorf("pod %s has no generated claim vf: %+v", p.Name, p.Status.ResourceClaimStatuses)
}

// NetworkStatus is one entry of the network-status annotation.
type NetworkStatus struct {
	Name       string          `json:"name"`
	Interface  string          `json:"interface"`
	IPs        []string        `json:"ips"`
	Mac        string          `json:"mac"`
	MTU        int             `json:"mtu"`
	DeviceInfo json.RawMessage `json:"device-info"`
}

// PodNetworks reads a pod's network-status annotation.
func PodNetworks(p *corev1.Pod) ([]NetworkStatus, error) {
	raw := p.Annotations[NetworkStatusAnnotation]
	if raw == "" {
		return nil, fmt.Errorf("pod %s has no %s annotation", p.Name, NetworkStatusAnnotation)
	}
	var st []NetworkStatus
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return nil, fmt.Errorf("pod %s: %s: %w", p.Name, NetworkStatusAnnotation, err)
	}
	return st, nil
}

// InterfaceIP is the pod's first address on interface ifName, from
// network-status.
func InterfaceIP(p *corev1.Pod, ifName string) (string, error) {
	nets, err := PodNetworks(p)
	if err != nil {
		return "", err
	}
	for _, n := range nets {
		if n.Interface == ifName && len(n.IPs) > 0 {
			return n.IPs[0], nil
		}
	}
	return "", fmt.Errorf("pod %s: no %s with an address in %s", p.Name, ifName, p.Annotations[NetworkStatusAnnotation])
}

// Poll calls cond every interval until it returns true, the timeout
// passes (the error then carries cond's last error) or ctx ends.
func Poll(ctx context.Context, timeout, interval time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not true after %s: %v", what, timeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %v)", what, ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}

// RunningPods waits until exactly n pods labelled app=<app> are Running
// with every container ready, and returns them.
func (c *Cluster) RunningPods(ctx context.Context, namespace, app string, n int, timeout time.Duration) ([]corev1.Pod, error) {
	var pods []corev1.Pod
	err := Poll(ctx, timeout, time.Second, fmt.Sprintf("%d Running pods of %s", n, app), func() (bool, error) {
		l, err := c.CP.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			return false, err
		}
		pods = pods[:0]
		var states []string
		for _, p := range l.Items {
			if p.DeletionTimestamp != nil {
				continue
			}
			ready := p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) > 0
			for _, cs := range p.Status.ContainerStatuses {
				ready = ready && cs.Ready
			}
			if ready {
				pods = append(pods, p)
			}
			states = append(states, p.Name+"="+string(p.Status.Phase)+PodReason(&p))
		}
		return len(pods) == n, fmt.Errorf("pods: %s", strings.Join(states, ", "))
	})
	return pods, err
}

// PodsGone waits until the API server has no pod labelled app=<app> left.
// Their sandboxes may still be stopping, their CNI DEL not yet run (seen in
// the demo's node logs): SoftRoCEGone waits for that where it matters.
func (c *Cluster) PodsGone(ctx context.Context, namespace, app string, timeout time.Duration) error {
	return Poll(ctx, timeout, time.Second, "pods of "+app+" gone", func() (bool, error) {
		l, err := c.CP.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			return false, err
		}
		return len(l.Items) == 0, fmt.Errorf("%d pods left", len(l.Items))
	})
}

// PodReason is why a pod is not running yet, for messages.
func PodReason(p *corev1.Pod) string {
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Waiting != nil {
			return "(" + c.State.Waiting.Reason + ": " + c.State.Waiting.Message + ")"
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue && c.Message != "" {
			return "(" + c.Message + ")"
		}
	}
	return ""
}

// WaitAllocatable waits until the node reports n devices of res as both
// capacity and allocatable, in a node status the kubelet posted after
// since (the zero time: any status). A restarted kubelet's first statuses
// are what "allocatable back" means; the node object says the old numbers
// until then.
func (c *Cluster) WaitAllocatable(ctx context.Context, res corev1.ResourceName, n int64, since time.Time, timeout time.Duration) error {
	return Poll(ctx, timeout, 250*time.Millisecond, fmt.Sprintf("%d %s allocatable", n, res), func() (bool, error) {
		node, err := c.CP.Client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		fresh := since.IsZero()
		for _, cond := range node.Status.Conditions {
			fresh = fresh || (cond.Type == corev1.NodeReady && cond.LastHeartbeatTime.After(since.Add(time.Second)))
		}
		cp, a := node.Status.Capacity[res], node.Status.Allocatable[res]
		return fresh && cp.Value() == n && a.Value() == n,
			fmt.Errorf("status posted after %s: %v; capacity %s, allocatable %s", since.Format(time.TimeOnly), fresh, cp.String(), a.String())
	})
}

// Ping runs ping in pod (namespace/name) towards ip over ifName, with extra
// ping arguments, and returns its output; lost packets are an error.
func (c *Cluster) Ping(ctx context.Context, namespace, pod, ifName, ip string, extra ...string) (string, error) {
	args := append([]string{"-n", namespace, "exec", pod, "--", "ping", "-c", "3", "-W", "5", "-I", ifName}, extra...)
	out, err := c.Run(ctx, append(args, ip)...)
	if err != nil {
		return out, err
	}
	// Every request answered; duplicates are no loss (the emulated PFs
	// share one hub, whose user-networking port may answer too).
	var sent, got int
	if m := pingStats.FindStringSubmatch(out); m != nil {
		sent, _ = strconv.Atoi(m[1])
		got, _ = strconv.Atoi(m[2])
	}
	if sent == 0 || got < sent {
		return out, fmt.Errorf("ping %s over %s from %s lost packets", ip, ifName, pod)
	}
	return out, nil
}

var pingStats = regexp.MustCompile(`(\d+) packets transmitted, (\d+) (?:packets )?received`)
