package deviceplugin

import (
	"fmt"
	"reflect"

	"github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/host"
)

// userspaceDrivers are drivers under which a VF has no netdev.
var userspaceDrivers = map[string]bool{"vfio-pci": true, "uio_pci_generic": true, "igb_uio": true}

// vfHealth lists why a VF of a pool cannot be used now; none means Healthy.
// old is the VF's device in the previous scan (nil if new); held says a
// pod holds it (the CNI's attachment record or a DRA claim's hold), so its
// netdev and RDMA device may be in the pod.
func vfHealth(p *Pool, pf *host.PF, vf *host.VF, old *Device, held bool) []string {
	var reasons []string
	switch {
	case vf.Driver == "":
		reasons = append(reasons, "VF is bound to no driver")
	case p.Driver == v1alpha1.DeviceTypeVfioPci && vf.Driver != "vfio-pci":
		reasons = append(reasons, fmt.Sprintf("VF is bound to %s, the pool wants vfio-pci", vf.Driver))
	case p.Driver == v1alpha1.DeviceTypeNetdevice && userspaceDrivers[vf.Driver]:
		reasons = append(reasons, fmt.Sprintf("VF is bound to %s, the pool wants its network driver", vf.Driver))
	}
	if vf.Driver != "" && !userspaceDrivers[vf.Driver] && !p.Accelerator && vf.Netdev == "" && !held {
		what := "VF netdev vanished"
		if old != nil && old.Netdev != "" {
			what = fmt.Sprintf("VF netdev %s vanished", old.Netdev)
		}
		reasons = append(reasons, what+" and no pod holds it")
	}
	reasons = append(reasons, pfHealth(pf, old)...)
	if vf.Settings.LinkState == "disable" {
		reasons = append(reasons, fmt.Sprintf("VF %d link is disabled on PF %s (ip link set %s vf %d state disable)", vf.Index, pf.Name, pf.Name, vf.Index))
	}
	if p.RDMA {
		switch {
		case vf.RDMA != nil:
			if !vf.RDMA.Active() {
				reasons = append(reasons, fmt.Sprintf("RDMA device %s has no ACTIVE port (%s)", vf.RDMA.Name, portList(vf.RDMA)))
			}
		case held:
			// The CNI or the DRA driver may have moved the RDMA device into
			// the pod with the VF (exclusive RDMA mode): not a failure.
		case old != nil && old.RDMA != nil:
			reasons = append(reasons, fmt.Sprintf("RDMA device %s vanished", old.RDMA.Name))
		default:
			reasons = append(reasons, "VF has no RDMA device")
		}
	}
	return reasons
}

// pfHealth lists what makes every VF of a PF unusable: no carrier, or its
// netdev gone.
func pfHealth(pf *host.PF, old *Device) []string {
	switch {
	case pf.Name != "" && !pf.Carrier:
		return []string{fmt.Sprintf("PF %s has no carrier (link %s)", pf.Name, pf.OperState)}
	case pf.Name == "" && old != nil && old.PFName != "":
		return []string{fmt.Sprintf("PF netdev %s vanished", old.PFName)}
	}
	return nil
}

// sharedHealth lists why a shared RDMA device cannot be used now.
func sharedHealth(c candidate, old *Device) []string {
	var reasons []string
	r := c.rdma()
	switch {
	case r == nil && old != nil && old.RDMA != nil:
		reasons = append(reasons, fmt.Sprintf("RDMA device %s vanished", old.RDMA.Name))
	case r != nil && !r.Active():
		reasons = append(reasons, fmt.Sprintf("RDMA device %s has no ACTIVE port (%s)", r.Name, portList(r)))
	}
	reasons = append(reasons, pfHealth(c.pf, old)...)
	if c.vf != nil && c.vf.Settings.LinkState == "disable" {
		reasons = append(reasons, fmt.Sprintf("VF %d link is disabled on PF %s", c.vf.Index, c.pf.Name))
	}
	return reasons
}

func portList(r *host.RDMADevice) string {
	if len(r.Ports) == 0 {
		return "no ports"
	}
	s := ""
	for i, p := range r.Ports {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("port %d %s", p.Num, p.State)
	}
	return s
}

func poolEqual(a, b *Pool) bool { return reflect.DeepEqual(a, b) }
