package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-net/sluice/api/dradevice"
	"github.com/sluice-net/sluice/test/node/cluster"
)

// The DRA pool of the emulated-igb-dra sample and its claim template.
const (
	draPool     = "igb-dra"
	draTemplate = "igb-dra"
	draIfName   = "net1-dra"
)

// dra shows a DRA pool beside the device-plugin pools: the
// emulated-igb-dra policy publishes a VF of the second PF in the node's ResourceSlices, a
// pod claims it through a ResourceClaimTemplate, and pings a device-plugin
// pod over it. The pod is deleted again, so that podCost finds the VF
// free.
func (d *demo) dra(ctx context.Context, pingers []corev1.Pod) error {
	d.begin("A DRA pool beside them: the emulated-igb-dra policy (a VF of the second PF, allocation DRA) and a pod claiming it")
	if _, err := d.c.Run(ctx, "apply", "-f", "config/samples/resourceclaimtemplate_emulated_igb_dra.yaml"); err != nil {
		return err
	}
	if err := cluster.Poll(ctx, 4*time.Minute, time.Second, "the igb-dra VF in the node's ResourceSlices", func() (bool, error) {
		n, err := d.draDevices(ctx)
		return n == 1, err
	}); err != nil {
		return err
	}
	d.done("the VF published in a ResourceSlice, DeviceClass %s.sluice.dev rendered", draPool)
	d.kubectl(ctx, "get", "deviceclasses,resourceslices")

	created := time.Now()
	if err := d.k.Create(ctx, cluster.DRAWorkload(namespace, "dra", 1, draTemplate)); err != nil {
		return err
	}
	pods, err := d.c.RunningPods(ctx, namespace, "dra", 1, 6*time.Minute)
	if err != nil {
		return err
	}
	d.done("Running %s after its creation", firstRunning(pods, created).Round(100*time.Millisecond))
	// The driver writes the claim's status beside the sandbox's start.
	var nd []resourceapi.NetworkDeviceData
	if err := cluster.Poll(ctx, time.Minute, time.Second, "the claim's networkData", func() (bool, error) {
		nd, err = d.c.ClaimNetworkData(ctx, &pods[0])
		return err == nil, err
	}); err != nil {
		return err
	}
	d.info("%s: claim status networkData: %s %v MAC %s", pods[0].Name, nd[0].InterfaceName, nd[0].IPs, nd[0].HardwareAddress)
	out, err := d.c.Run(ctx, "-n", namespace, "exec", pods[0].Name, "--", "sh", "-c",
		"grep -h DRIVER /sys/class/net/"+draIfName+"/device/uevent; basename $(readlink /sys/class/net/"+draIfName+"/device)")
	if err != nil {
		return err
	}
	d.info("%s: %s is VF %s", pods[0].Name, draIfName, strings.Join(strings.Fields(out), " "))
	ip, err := cluster.InterfaceIP(&pingers[0], "net1")
	if err != nil {
		return err
	}
	d.begin("ping from the DRA pod %s to the device-plugin pod %s (%s)", pods[0].Name, pingers[0].Name, ip)
	out, err = d.c.Ping(ctx, namespace, pods[0].Name, draIfName, ip)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	d.done("%s", lastLine(out, "rtt"))
	d.result("a pod claimed a VF through DRA (ResourceClaimTemplate, scheduler, sluice's kubelet plugin and NRI) and pinged a device-plugin pod over it")

	if _, err := d.c.Run(ctx, "-n", namespace, "delete", "deployment", "dra"); err != nil {
		return err
	}
	return cluster.Poll(ctx, 3*time.Minute, time.Second, "the DRA pod's claim gone", func() (bool, error) {
		l, err := d.c.CP.Client.ResourceV1().ResourceClaims(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		return len(l.Items) == 0, fmt.Errorf("%d claims left", len(l.Items))
	})
}

// draDevices counts the healthy devices of the DRA pool in the node's
// ResourceSlices.
func (d *demo) draDevices(ctx context.Context) (int, error) {
	l, err := d.c.CP.Client.ResourceV1().ResourceSlices().List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range l.Items {
		for _, dev := range s.Spec.Devices {
			a := dev.Attributes
			if p, h := a[dradevice.AttrPool].StringValue, a[dradevice.AttrHealthy].BoolValue; p != nil && *p == draPool && h != nil && *h {
				n++
			}
		}
	}
	return n, fmt.Errorf("%d healthy devices of pool %s", n, draPool)
}
