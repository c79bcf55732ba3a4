package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	nu "github.com/sluice-net/sluice/test/node/guest/nodeutil"
)

// RDMA traffic between pods, run from inside their containers with the
// test image's rdmacm and perftest tools.

// RDMAWorkload is Workload for verbs applications: IPC_LOCK lets them pin
// the memory they register.
func RDMAWorkload(namespace, name, network string, res corev1.ResourceName, replicas int32) *appsv1.Deployment {
	d := Workload(namespace, name, network, res, replicas, 1)
	c := &d.Spec.Template.Spec.Containers[0]
	c.SecurityContext.Capabilities.Add = append(c.SecurityContext.Capabilities.Add, "IPC_LOCK")
	return d
}

// SoftRoCEGone waits until the node has no soft-RoCE device and no
// attachment CDI spec left: the CNI DELs of deleted soft-RoCE pods have
// run. Their pod objects go before that: the kubelet stops a sandbox, and
// with it runs the DEL, after the pod's containers.
func (c *Cluster) SoftRoCEGone(ctx context.Context, timeout time.Duration) error {
	return Poll(ctx, timeout, time.Second, "soft-RoCE devices and their CDI specs removed", func() (bool, error) {
		out, err := c.Node.Sh(ctx, "ls /sys/class/infiniband/ /var/run/cdi/ 2>/dev/null | grep -c 'rxe_\\|sluice-attachment-'; true")
		return strings.TrimSpace(out) == "0", fmt.Errorf("%s left (%v)", strings.TrimSpace(out), err)
	})
}

// PodRDMADevices lists the RDMA devices the pod's verbs library sees
// (ibv_devices) and its /dev/infiniband files.
func (c *Cluster) PodRDMADevices(ctx context.Context, namespace, pod string) (devs, files []string, err error) {
	out, err := c.Run(ctx, "-n", namespace, "exec", pod, "--", "ibv_devices")
	if err != nil {
		return nil, nil, err
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] != "device" && !strings.HasPrefix(f[0], "---") {
			devs = append(devs, f[0])
		}
	}
	out, err = c.Run(ctx, "-n", namespace, "exec", pod, "--", "ls", "/dev/infiniband")
	if err != nil {
		return devs, nil, err
	}
	return devs, strings.Fields(out), nil
}

// RPing runs 3 rping iterations from pod client to a server in pod server
// listening on serverIP (rdma_cm over the pods' soft-RoCE devices).
func (c *Cluster) RPing(ctx context.Context, namespace, server, serverIP, client string) (string, error) {
	return c.rdmaPair(ctx, namespace, server, client,
		[]string{"timeout", "90", "rping", "-s", "-a", serverIP, "-C", "3"},
		[]string{"timeout", "30", "rping", "-c", "-a", serverIP, "-C", "3", "-v"},
		func(out string) bool { return strings.Contains(out, "rdma-ping-2") })
}

// WriteBW runs ib_write_bw (200 RDMA writes of 4 KiB, connected through
// rdma_cm) from pod client to a server in pod server on serverIP and
// returns perftest's result line. A client that hangs (soft-RoCE under
// TCG on a loaded host once left one waiting out its 60 s while the
// emulated node ran another suite beside it) is given up, and the pair
// runs again on a fresh port, up to three times; the result line says
// which attempt it was.
func (c *Cluster) WriteBW(ctx context.Context, namespace, server, serverIP, client string) (string, error) {
	var errs []error
	for attempt := 1; attempt <= 3; attempt++ {
		args := []string{"ib_write_bw", "-R", "-n", "200", "-s", "4096", "-F", "-p", strconv.Itoa(18600 + attempt)}
		var line string
		out, err := c.rdmaPair(ctx, namespace, server, client,
			append([]string{"timeout", "90"}, args...),
			append(append([]string{"timeout", "60"}, args...), serverIP),
			func(out string) bool { line = nu.BWLine(out); return line != "" })
		if err == nil {
			return fmt.Sprintf("%s (attempt %d)", line, attempt), nil
		}
		errs = append(errs, fmt.Errorf("attempt %d: %w\n%s", attempt, err, out))
	}
	return "", errors.Join(errs...)
}

// rdmaPair starts srv in pod server, then runs cli in pod client until it
// succeeds (rdma_cm has no listening socket to wait for), and waits for
// the server to finish.
func (c *Cluster) rdmaPair(ctx context.Context, namespace, server, client string, srv, cli []string, ok func(string) bool) (string, error) {
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := c.Run(ctx, append([]string{"-n", namespace, "exec", server, "--"}, srv...)...)
		done <- result{out, err}
	}()
	var out string
	var err error
	deadline := time.Now().Add(60 * time.Second)
	for {
		time.Sleep(2 * time.Second)
		out, err = c.Run(ctx, append([]string{"-n", namespace, "exec", client, "--"}, cli...)...)
		if err == nil && ok(out) {
			break
		}
		if time.Now().After(deadline) {
			return out, fmt.Errorf("%s in %s: %v", strings.Join(cli, " "), client, err)
		}
		select {
		case r := <-done:
			return out, fmt.Errorf("the server in %s ended before a client connected: %v\n%s", server, r.err, r.out)
		default:
		}
	}
	select {
	case r := <-done:
		if r.err != nil {
			return out, fmt.Errorf("server in %s: %w\n%s", server, r.err, r.out)
		}
	case <-time.After(90 * time.Second):
		return out, fmt.Errorf("the server in %s did not finish", server)
	}
	return out, nil
}
