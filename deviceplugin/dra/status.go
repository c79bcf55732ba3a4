package dra

import (
	"context"
	"fmt"
	"slices"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/sluice-net/sluice/api/nodefiles"
)

// The claims' status.devices: once a VF is in its pod, the driver reports
// its interface name, addresses and MAC (networkData) and a Ready
// condition; when it is given back, it removes its entry. The writes run
// in order, one at a time, away from the runtime's events: a failure is
// logged and never fails a pod.

// ConditionReady is the device condition the driver sets on a VF moved
// into its pod.
const ConditionReady = "Ready"

// statusQueueLen bounds the pending status writes; more are dropped (and
// logged).
const statusQueueLen = 256

// statusWorker writes the queued statuses until ctx ends.
func (d *Driver) statusWorker(ctx context.Context) {
	d.statusQ = make(chan nodefiles.DRAClaim, statusQueueLen)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case cl := <-d.statusQ:
				wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				if err := d.writeStatus(wctx, cl); err != nil {
					d.log.Error(err, "cannot write the claim's device status (the pod is not affected)", "claim", cl.Namespace+"/"+cl.Name)
				}
				cancel()
			}
		}
	}()
}

// queueStatus asks for the claim's status.devices to match its
// attachments (copied: the claim is d's).
func (d *Driver) queueStatus(cl nodefiles.DRAClaim) {
	if d.statusQ == nil {
		return
	}
	cl.Devices = slices.Clone(cl.Devices)
	select {
	case d.statusQ <- cl:
	default:
		d.log.Error(nil, "too many pending claim status writes: dropping one", "claim", cl.Namespace+"/"+cl.Name)
	}
}

// deviceStatuses are the entries the driver owns in the claim's status:
// one per attached device.
func (d *Driver) deviceStatuses(cl nodefiles.DRAClaim, generation int64) []resourceapi.AllocatedDeviceStatus {
	var out []resourceapi.AllocatedDeviceStatus
	for _, cd := range cl.Devices {
		a := cd.Attachment
		if a == nil || a.State != nodefiles.DRAAttachmentAttached {
			continue
		}
		out = append(out, resourceapi.AllocatedDeviceStatus{
			Driver: d.opts.DriverName, Pool: cd.Pool, Device: cd.Device,
			NetworkData: &resourceapi.NetworkDeviceData{InterfaceName: a.IfName, IPs: slices.Clone(a.IPs), HardwareAddress: a.MAC},
			Conditions: []metav1.Condition{{
				Type: ConditionReady, Status: metav1.ConditionTrue, Reason: "VFInPod", ObservedGeneration: generation,
				LastTransitionTime: metav1.NewTime(a.Created.Truncate(time.Second)),
				Message:            fmt.Sprintf("VF %s is %s in pod %s/%s", cd.PCIAddress, a.IfName, a.PodNamespace, a.PodName),
			}},
		})
	}
	return out
}

// writeStatus replaces the claim's status.devices entries of this driver's
// devices of cl with the attached ones.
func (d *Driver) writeStatus(ctx context.Context, cl nodefiles.DRAClaim) error {
	claims := d.opts.KubeClient.ResourceV1().ResourceClaims(cl.Namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		c, err := claims.Get(ctx, cl.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if string(c.UID) != cl.UID {
			return nil // another claim of that name
		}
		ours := func(s resourceapi.AllocatedDeviceStatus) bool {
			return s.Driver == d.opts.DriverName && slices.ContainsFunc(cl.Devices, func(cd nodefiles.DRAClaimDevice) bool {
				return cd.Pool == s.Pool && cd.Device == s.Device
			})
		}
		devs := slices.DeleteFunc(slices.Clone(c.Status.Devices), ours)
		devs = append(devs, d.deviceStatuses(cl, c.Generation)...)
		if len(devs) == 0 && len(c.Status.Devices) == 0 {
			return nil
		}
		c.Status.Devices = devs
		_, err = claims.UpdateStatus(ctx, c, metav1.UpdateOptions{})
		return err
	})
}
