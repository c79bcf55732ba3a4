package migrate

import (
	"fmt"
	"regexp"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// Patterns of NetworkNodePolicy's fields, as its CRD schema checks them:
// a value the API server would refuse is refused here, naming the field.
var (
	policyResourceNameRE = regexp.MustCompile(`^[a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?$`)
	hexIDRE              = regexp.MustCompile(`^[0-9a-fA-F]{4}$`)
	pciAddressRE         = regexp.MustCompile(`^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$`)
	pfNameRE             = regexp.MustCompile(`^[a-zA-Z0-9_.:@-]{1,15}(#([0-9]{1,3})-([0-9]{1,3}))?$`)
)

const policyKind = "SriovNetworkNodePolicy"

// convertPolicy converts an SriovNetworkNodePolicy (SNO v1.6 api/v1
// fields) into a NetworkNodePolicy of the same name. Its Priority is
// meaningful even when 0: write it out explicitly (Convert does).
func convertPolicy(in *Object, opts Options, c *conv) (*sluicev1.NetworkNodePolicy, error) {
	opts = opts.withDefaults()
	meta, err := objectMeta(in, "", c)
	if err != nil {
		return nil, err
	}
	p := &sluicev1.NetworkNodePolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: sluicev1.GroupVersion.String(), Kind: "NetworkNodePolicy"},
		ObjectMeta: meta,
	}
	spec, ok, err := specOf(in)
	if err != nil || !ok {
		return nil, c.refuse("spec", "missing or not an object: an SriovNetworkNodePolicy needs a spec")
	}
	s := &p.Spec
	bad := func(err error) error { return c.refuse(fieldOf(err, spec), err.Error()) }

	// Fields that sluice cannot honour come first: such a policy is refused
	// whatever else it says.
	if v, ok, err := spec.str("eSwitchMode"); err != nil {
		return nil, bad(err)
	} else if ok {
		switch v {
		case "", "legacy":
			c.add("spec.eSwitchMode", Mapped, "", "legacy: the only mode sluice configures")
		default:
			return nil, c.refuse("spec.eSwitchMode", fmt.Sprintf("%q: sluice configures PFs in legacy SR-IOV mode only (no switchdev, no OVS hardware offload); converting would put this PF back in legacy mode. Keep this policy (and its PFs) under SNO, or drop eSwitchMode to use the VFs in legacy mode", v))
		}
	}
	if v, ok, err := spec.str("vdpaType"); err != nil {
		return nil, bad(err)
	} else if ok && v != "" {
		return nil, c.refuse("spec.vdpaType", fmt.Sprintf("%q: sluice creates no vDPA devices; keep this policy under SNO, or drop vdpaType to hand out the VFs as netdevice or vfio-pci", v))
	}
	if b, ok, err := spec.object("bridge"); err != nil {
		return nil, bad(err)
	} else if ok {
		if len(b.m) > 0 {
			return nil, c.refuse("spec.bridge", "an OVS bridge for switchdev PFs: sluice configures no OVS bridges (nor switchdev); keep this policy under SNO")
		}
		c.add("spec.bridge", Mapped, "", "empty: nothing to carry over")
	}

	if v, ok, err := spec.str("resourceName"); err != nil {
		return nil, bad(err)
	} else if !ok || v == "" {
		return nil, c.refuse("spec.resourceName", "missing: every policy names its pool")
	} else if len(v) > 63 || !policyResourceNameRE.MatchString(v) {
		return nil, c.refuse("spec.resourceName", fmt.Sprintf("%q: sluice takes letters, digits, '-' and '_', starting and ending with a letter or digit, at most 63 characters; rename the pool (and the pods' requests)", v))
	} else {
		s.ResourceName = v
		st, detail := Mapped, fmt.Sprintf("pods request %s/%s", opts.ResourcePrefix, v)
		if opts.ResourcePrefix != opts.SNOResourcePrefix {
			st = Changed
			detail = fmt.Sprintf("pods request %s/%s instead of %s/%s: change their resource requests (or run sluice with --resource-prefix %s)", opts.ResourcePrefix, v, opts.SNOResourcePrefix, v, opts.SNOResourcePrefix)
		}
		if !vfNetworkResourceNameRE.MatchString(v) {
			detail += "; a VFNetwork cannot name this pool (capitals or '_'), so attachments to it stay hand-written NetworkAttachmentDefinitions (see --rewrite-nads)"
		}
		c.add("spec.resourceName", st, "spec.resourceName", detail)
	}

	if v, ok, err := spec.stringMap("nodeSelector"); err != nil {
		return nil, bad(err)
	} else if ok {
		if len(v) > 0 {
			s.NodeSelector = v
		}
		c.add("spec.nodeSelector", Mapped, "spec.nodeSelector", "")
	} else {
		c.add("spec.nodeSelector", Mapped, "spec.nodeSelector", "absent: every node, as in SNO")
	}

	if v, ok, err := spec.integer("priority"); err != nil {
		return nil, bad(err)
	} else if v < 0 || v > 99 {
		return nil, c.refuse("spec.priority", fmt.Sprintf("%d: sluice takes 0 to 99 (lower wins, as in SNO)", v))
	} else {
		s.Priority = int32(v)
		if ok {
			c.add("spec.priority", Mapped, "spec.priority", "the lower number wins, as in SNO")
		} else {
			c.add("spec.priority", Changed, "spec.priority", "absent in SNO means 0 (the highest); sluice's default is 99, so priority: 0 is written out")
		}
	}

	if v, ok, err := spec.integer("numVfs"); err != nil {
		return nil, bad(err)
	} else if !ok {
		return nil, c.refuse("spec.numVfs", "missing: say how many VFs each selected PF gets (0 for none)")
	} else if v < 0 || v > 256 {
		return nil, c.refuse("spec.numVfs", fmt.Sprintf("%d: sluice creates 0 to 256 VFs per PF", v))
	} else {
		s.NumVfs = int32(v)
		if v > 0 {
			c.add("spec.numVfs", Mapped, "spec.numVfs", "")
		}
	}

	if v, ok, err := spec.integer("mtu"); err != nil {
		return nil, bad(err)
	} else if ok && v != 0 {
		if v < 576 || v > 9216 {
			return nil, c.refuse("spec.mtu", fmt.Sprintf("%d: sluice sets PF MTUs of 576 to 9216; use a value in that range or leave mtu out to keep the PF's", v))
		}
		s.MTU = int32(v)
		c.add("spec.mtu", Mapped, "spec.mtu", "")
	}

	if err := convertNicSelector(spec, s, c); err != nil {
		return nil, err
	}

	if v, ok, err := spec.str("deviceType"); err != nil {
		return nil, bad(err)
	} else if ok {
		switch dt := sluicev1.DeviceType(v); dt {
		case sluicev1.DeviceTypeNetdevice, sluicev1.DeviceTypeVfioPci:
			s.DeviceType = dt
			c.add("spec.deviceType", Mapped, "spec.deviceType", "")
		case "":
			c.add("spec.deviceType", Mapped, "spec.deviceType", "empty: netdevice, the default of both")
		default:
			return nil, c.refuse("spec.deviceType", fmt.Sprintf("%q: sluice hands VFs out as netdevice or vfio-pci", v))
		}
	}

	if v, ok, err := spec.boolean("isRdma"); err != nil {
		return nil, bad(err)
	} else if ok {
		if v && s.DeviceType == sluicev1.DeviceTypeVfioPci {
			return nil, c.refuse("spec.isRdma", "true with deviceType vfio-pci: a VF bound to vfio-pci has no kernel RDMA device; drop isRdma or use netdevice")
		}
		s.IsRdma = v
		detail := ""
		if v {
			detail = "alias of rdma.enabled: hardware RDMA, shared mode unless an SriovNetworkPoolConfig says exclusive"
		}
		c.add("spec.isRdma", Mapped, "spec.isRdma", detail)
	}

	if v, ok, err := spec.str("linkType"); err != nil {
		return nil, bad(err)
	} else if ok && v != "" {
		switch lt := sluicev1.PolicyLinkType(v); lt.Normalized() {
		case sluicev1.LinkTypeEthernet, sluicev1.LinkTypeInfiniband:
			s.LinkType = lt
			c.add("spec.linkType", Changed, "spec.linkType", "sluice only selects PFs of this link type; it never switches a VPI port's type as SNO does (a firmware setting): set it with the vendor's tool (mlxconfig ... LINK_TYPE_P1) before migrating")
		default:
			return nil, c.refuse("spec.linkType", fmt.Sprintf("%q: eth or ib, in either case", v))
		}
	}

	for _, b := range []struct {
		key string
		dst *bool
	}{{"needVhostNet", &s.NeedVhostNet}, {"excludeTopology", &s.ExcludeTopology}, {"externallyManaged", &s.ExternallyManaged}} {
		v, ok, err := spec.boolean(b.key)
		if err != nil {
			return nil, bad(err)
		}
		if ok {
			*b.dst = v
			c.add("spec."+b.key, Mapped, "spec."+b.key, "")
		}
	}
	if s.NumVfs == 0 {
		reportNoVFs(s, opts, c)
	}
	c.reportUnread(spec, policyKind)
	return p, nil
}

func convertNicSelector(spec *fields, s *sluicev1.NetworkNodePolicySpec, c *conv) error {
	ns, ok, err := spec.object("nicSelector")
	if err != nil {
		return c.refuse("spec.nicSelector", err.Error())
	}
	if !ok {
		return c.refuse("spec.nicSelector", "missing: say which PFs the policy configures (vendor, deviceID, pfNames or rootDevices)")
	}
	sel := &s.NicSelector
	for _, h := range []struct {
		key string
		dst *sluicev1.HexID
	}{{"vendor", &sel.Vendor}, {"deviceID", &sel.DeviceID}} {
		v, ok, err := ns.str(h.key)
		if err != nil {
			return c.refuse(ns.at(h.key), err.Error())
		}
		if !ok || v == "" {
			continue
		}
		if !hexIDRE.MatchString(v) {
			return c.refuse(ns.at(h.key), fmt.Sprintf("%q: sluice takes the 4 hexadecimal digits of the PCI ID (e.g. 15b3), without 0x", v))
		}
		*h.dst = sluicev1.HexID(v)
		c.add(ns.at(h.key), Mapped, "spec.nicSelector."+h.key, "")
	}
	if v, ok, err := ns.strings("rootDevices"); err != nil {
		return c.refuse(ns.at("rootDevices"), err.Error())
	} else if ok && len(v) > 0 {
		for i, a := range v {
			if !pciAddressRE.MatchString(a) {
				return c.refuse(fmt.Sprintf("%s[%d]", ns.at("rootDevices"), i), fmt.Sprintf("%q: sluice takes full PCI addresses, domain:bus:device.function (0000:3b:00.0)", a))
			}
			sel.RootDevices = append(sel.RootDevices, sluicev1.PCIAddress(a))
		}
		c.add(ns.at("rootDevices"), Mapped, "spec.nicSelector.rootDevices", "")
	}
	if v, ok, err := ns.strings("pfNames"); err != nil {
		return c.refuse(ns.at("pfNames"), err.Error())
	} else if ok && len(v) > 0 {
		for i, n := range v {
			m := pfNameRE.FindStringSubmatch(n)
			if m == nil {
				return c.refuse(fmt.Sprintf("%s[%d]", ns.at("pfNames"), i), fmt.Sprintf("%q: sluice takes an interface name, optionally with a VF range (ens1f0#0-3)", n))
			}
			if m[1] != "" {
				var first, last int
				fmt.Sscan(m[2], &first)
				fmt.Sscan(m[3], &last)
				if first > last || last >= int(s.NumVfs) {
					return c.refuse(fmt.Sprintf("%s[%d]", ns.at("pfNames"), i), fmt.Sprintf("%q: the VF range must be first-last with first <= last < numVfs (%d)", n, s.NumVfs))
				}
			}
			sel.PFNames = append(sel.PFNames, sluicev1.PFName(n))
		}
		c.add(ns.at("pfNames"), Mapped, "spec.nicSelector.pfNames", "")
	}
	if v, ok, err := ns.str("netFilter"); err != nil {
		return c.refuse(ns.at("netFilter"), err.Error())
	} else if ok && v != "" {
		sel.NetFilter = v
		c.add(ns.at("netFilter"), Changed, "spec.nicSelector.netFilter", "kept, but sluice's agent reports no cloud network metadata, so the policy selects no PF (its Ready condition says so); select the PFs by pfNames or rootDevices instead")
	}
	if sel.Vendor == "" && sel.DeviceID == "" && len(sel.PFNames) == 0 && len(sel.RootDevices) == 0 {
		return c.refuse("spec.nicSelector", "sets none of vendor, deviceID, pfNames or rootDevices: sluice requires one of them, so that a policy never selects every PF; add the one that names your PFs")
	}
	c.reportUnread(ns, policyKind)
	return nil
}

// specOf returns the input's spec.
func specOf(in *Object) (*fields, bool, error) {
	return newFields(in.U.Object, "").object("spec")
}

// fieldOf extracts the field path that a fields error starts with.
func fieldOf(err error, f *fields) string {
	msg := err.Error()
	if i := strings.Index(msg, " "); i > 0 && strings.HasPrefix(msg, f.path) {
		return msg[:i]
	}
	return f.path
}

// reportNoVFs says what numVfs 0 does, which differs from SNO in what
// happens to VFs SNO did not create. SNO's webhook refuses numVfs 0 once
// the policy selects a NIC, so such a policy selected none when it was
// admitted, or the webhook is off.
func reportNoVFs(s *sluicev1.NetworkNodePolicySpec, opts Options, c *conv) {
	detail := "0: the selected PFs get no VFs. "
	if len(s.NicSelector.PFNames) == 0 && len(s.NicSelector.RootDevices) == 0 && !s.DRA() {
		detail += fmt.Sprintf("Each is advertised whole as %s/%s once it has none, as SNO renders this policy for its device plugin (the PF's own device ID instead of its VFs'). ", opts.ResourcePrefix, s.ResourceName)
	} else {
		detail += "SNO's device-plugin pool for this policy has its pfNames or rootDevices, which select VFs only, so it advertised nothing, and neither does this policy. "
	}
	if s.ExternallyManaged {
		detail += "With externallyManaged the agent leaves the VF count alone, as SNO does"
	} else {
		detail += "SNO removes only VFs it created itself; sluice also removes VFs created otherwise on a selected PF that no other policy gives VFs (their pods drained first): set externallyManaged: true to keep those"
	}
	c.add("spec.numVfs", Changed, "spec.numVfs", detail)
}
