package agent

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/host"
)

// vfUsers maps a VF PCI address to the live pods using it.
type vfUsers map[string][]PodRef

// intChange is a value going from one number to another.
type intChange struct{ from, to int }

// vfStep is what changes on one VF of a PF whose VF count is right.
type vfStep struct {
	index   int
	address string
	policy  string
	// rebind binds the VF to driver (host.VfioPci or host.DefaultDriver).
	rebind     bool
	driver     string
	fromDriver string
	// mtu, when non-zero, is set on the VF's netdev (after any rebind).
	mtu, fromMTU int
	inPod        bool // the VF's netdev is in a pod: fromMTU is the applied one
	trust        *bool
	spoofChk     *bool
}

// disruption is a change that cannot be made while a pod uses the VF.
type disruption struct {
	vf   string
	pods []PodRef
	why  string
}

// pfPlan is what must change on one PF for the host to match the spec.
type pfPlan struct {
	address string
	// label names the PF in messages: "ens1f0 (0000:3b:00.0)".
	label string
	// name is the PF's netdev (VF settings go through it).
	name string
	// spec is the desired state; nil when the PF left the spec (remove).
	spec   *sluicev1.InterfaceSpec
	remove bool
	numVFs *intChange
	pfMTU  *intChange
	vfs    []vfStep
	// disrupts are the changes that need the VF's pods gone first.
	disrupts []disruption
	// err says why the spec cannot be applied to this PF as it is.
	err error
	// drifted: the PF was verified as its (unchanged) spec asks before, and
	// the host no longer matches it.
	drifted bool
}

func (p *pfPlan) changes() bool { return p.numVFs != nil || p.pfMTU != nil || len(p.vfs) > 0 }

// pods are the pods using VFs this plan disrupts, sorted.
func (p *pfPlan) pods() []PodRef {
	var out []PodRef
	for _, d := range p.disrupts {
		for _, pod := range d.pods {
			out = appendPod(out, pod)
		}
	}
	sortPods(out)
	return out
}

// policies are the policies of the PF's VF groups (spec and applied).
func (p *pfPlan) policies() []string {
	var out []string
	if p.spec != nil {
		for _, g := range p.spec.VFGroups {
			if !slices.Contains(out, g.Policy) {
				out = append(out, g.Policy)
			}
		}
	}
	slices.Sort(out)
	return out
}

// nodePlan is the plan for the whole node.
type nodePlan struct {
	// pfs are the PFs with changes or errors, sorted by address.
	pfs []*pfPlan
	// ready are the spec PFs the host matches, sorted.
	ready []string
	// rdmaMode is the RDMA netns mode change, nil for none.
	rdmaMode *struct{ from, to string }
	// forget are recorded PFs with nothing left to undo.
	forget []string
}

// changing are the PF plans with host changes and no error.
func (n *nodePlan) changing() []*pfPlan {
	var out []*pfPlan
	for _, p := range n.pfs {
		if p.err == nil && p.changes() {
			out = append(out, p)
		}
	}
	return out
}

// drainPods are the pods the whole plan needs gone, sorted.
func (n *nodePlan) drainPods() []PodRef {
	var out []PodRef
	for _, p := range n.pfs {
		if p.err != nil {
			continue
		}
		for _, pod := range p.pods() {
			out = appendPod(out, pod)
		}
	}
	sortPods(out)
	return out
}

// lines summarise the plan, one line per PF (and one for the RDMA mode).
func (n *nodePlan) lines() []string {
	var out []string
	for _, p := range n.pfs {
		out = append(out, p.line())
	}
	if n.rdmaMode != nil {
		out = append(out, fmt.Sprintf("rdma netns mode %s -> %s", orNone(n.rdmaMode.from), n.rdmaMode.to))
	}
	return out
}

// planNode compares the desired interfaces with the discovered host. rec
// names the PFs sluice configured; users the VFs pods use.
func planNode(desired []sluicev1.InterfaceSpec, rdmaMode sluicev1.RDMAMode, snap *host.Snapshot, rec *nodeRecord, users vfUsers) *nodePlan {
	n := &nodePlan{}
	inSpec := map[string]bool{}
	specs := slices.Clone(desired)
	sort.Slice(specs, func(i, j int) bool { return specs[i].PCIAddress < specs[j].PCIAddress })
	for i := range specs {
		s := &specs[i]
		addr := string(s.PCIAddress)
		inSpec[addr] = true
		r := rec.PFs[addr]
		p := planPF(s, snap.PFByAddress(addr), r, users)
		if p.err == nil && !p.changes() {
			n.ready = append(n.ready, addr)
			continue
		}
		p.drifted = r != nil && r.Applied != nil && equality.Semantic.DeepEqual(*r.Applied, *s)
		n.pfs = append(n.pfs, p)
	}
	var recorded []string
	for addr := range rec.PFs {
		if !inSpec[addr] {
			recorded = append(recorded, addr)
		}
	}
	slices.Sort(recorded)
	for _, addr := range recorded {
		pf := snap.PFByAddress(addr)
		if pf == nil {
			n.forget = append(n.forget, addr)
			continue
		}
		p := planRemove(pf, rec.PFs[addr], users)
		if !p.changes() {
			n.forget = append(n.forget, addr)
			continue
		}
		n.pfs = append(n.pfs, p)
	}
	sort.Slice(n.pfs, func(i, j int) bool { return n.pfs[i].address < n.pfs[j].address })
	// Without RDMA devices the kernel reports no mode and there is none to set.
	if rdmaMode != "" && snap.RDMANetnsMode != "" && string(rdmaMode) != snap.RDMANetnsMode {
		n.rdmaMode = &struct{ from, to string }{snap.RDMANetnsMode, string(rdmaMode)}
	}
	return n
}

func pfLabel(name, addr string) string {
	if name == "" {
		return addr
	}
	return name + " (" + addr + ")"
}

// planPF compares one PF with its spec.
func planPF(spec *sluicev1.InterfaceSpec, pf *host.PF, rec *pfRecord, users vfUsers) *pfPlan {
	addr := string(spec.PCIAddress)
	p := &pfPlan{address: addr, spec: spec, label: pfLabel(spec.Name, addr)}
	if pf == nil {
		p.err = fmt.Errorf("PF %s: not found on this node (no SR-IOV capable PCI function at %s): fix the policy's nicSelector", p.label, addr)
		return p
	}
	p.label, p.name = pfLabel(pf.Name, addr), pf.Name
	want := int(spec.NumVfs)
	switch {
	case want > pf.TotalVFs:
		p.err = fmt.Errorf("PF %s: spec asks for %d VFs, the PF supports at most %d (sriov_totalvfs): lower the policy's numVfs", p.label, want, pf.TotalVFs)
		return p
	case spec.LinkType != "" && pf.LinkType != "" && string(spec.LinkType) != pf.LinkType:
		p.err = fmt.Errorf("PF %s: link type is %s, spec asks for %s: sluice does not change link types; set it with the NIC vendor's tool (e.g. mlxconfig LINK_TYPE_P1) and reboot", p.label, pf.LinkType, spec.LinkType)
		return p
	}
	if spec.MTU > 0 && int(spec.MTU) != pf.MTU {
		if pf.Name == "" {
			p.err = fmt.Errorf("PF %s: spec asks for MTU %d but the PF has no netdev to set it on", p.label, spec.MTU)
			return p
		}
		p.pfMTU = &intChange{pf.MTU, int(spec.MTU)}
	}
	if spec.ExternallyManaged {
		if pf.NumVFs < want {
			p.err = fmt.Errorf("PF %s: the policy is externallyManaged and asks for %d VFs, but only %d exist and sluice does not create them: create at least %d VFs on the PF (sriov_numvfs) or lower the policy's numVfs", p.label, want, pf.NumVFs, want)
			return p
		}
		// The VFs beyond numVfs are someone else's: left as they are.
	} else if want != pf.NumVFs {
		p.numVFs = &intChange{pf.NumVFs, want}
		if pf.NumVFs > 0 {
			why := fmt.Sprintf("numVfs %d -> %d destroys every VF of %s (the kernel changes the count through 0)", pf.NumVFs, want, p.label)
			p.disruptAllUsed(pf, users, why)
		}
		return p // the groups' settings follow once the VFs exist
	}
	byIndex := make(map[int]*host.VF, len(pf.VFs))
	for i := range pf.VFs {
		byIndex[pf.VFs[i].Index] = &pf.VFs[i]
	}
	for _, g := range spec.VFGroups {
		first, last, err := parseVFRange(g.VFRange)
		if err != nil {
			p.err = fmt.Errorf("PF %s: group of policy %q: %w", p.label, g.Policy, err)
			return p
		}
		for idx := first; idx <= last; idx++ {
			vf := byIndex[idx]
			if vf == nil {
				p.err = fmt.Errorf("PF %s: policy %q asks for VF %d, the PF has %d VFs", p.label, g.Policy, idx, pf.NumVFs)
				return p
			}
			step, ok := planVF(g, vf, rec, users[vf.PCIAddress])
			if !ok {
				continue
			}
			if (step.trust != nil || step.spoofChk != nil) && pf.Name == "" {
				p.err = fmt.Errorf("PF %s: policy %q sets trust/spoofChk of VF %d, which needs the PF's netdev, and the PF has none", p.label, g.Policy, idx)
				return p
			}
			p.vfs = append(p.vfs, step)
			if pods := users[vf.PCIAddress]; len(pods) > 0 && (step.rebind || step.mtu != 0) {
				p.disrupts = append(p.disrupts, disruption{vf: vf.PCIAddress, pods: pods, why: fmt.Sprintf("%s vf %d: %s", p.label, idx, step.disruptive())})
			}
		}
	}
	return p
}

// planVF compares one VF with its group; ok is false when it matches.
func planVF(g sluicev1.VFGroup, vf *host.VF, rec *pfRecord, pods []PodRef) (vfStep, bool) {
	s := vfStep{index: vf.Index, address: vf.PCIAddress, policy: g.Policy, fromDriver: vf.Driver}
	vfio := g.DeviceType == sluicev1.DeviceTypeVfioPci
	switch {
	case vfio && vf.Driver != host.VfioPci:
		s.rebind, s.driver = true, host.VfioPci
	case !vfio && (vf.Driver == "" || vf.Driver == host.VfioPci):
		s.rebind, s.driver = true, host.DefaultDriver
	}
	if mtu := int(g.MTU); !vfio && mtu > 0 {
		switch {
		// A netdev that sysfs lists but netlink did not (MTU 0) is
		// moving between namespaces (a CNI ADD or DEL under way): its
		// MTU is not known here, so it is judged as in a pod.
		case vf.Netdev != "" && vf.MTU > 0:
			if vf.MTU != mtu {
				s.mtu, s.fromMTU = mtu, vf.MTU
			}
		case s.rebind:
			s.mtu = mtu // set once the network driver has made the netdev
		case len(pods) > 0:
			// The netdev is in the pod: what was applied is what it has.
			// With nothing recorded for the VF (the record was made
			// anew, or is lost) its MTU is unknown, not wrong: evicting
			// the pod for it would drain on every sync. The VF is
			// checked again once its netdev is back on the host.
			if prev, known := appliedMTU(rec, vf.Index); known && prev != mtu {
				s.mtu, s.fromMTU, s.inPod = mtu, prev, true
			}
		}
	}
	if g.Trust != nil && *g.Trust != vf.Settings.Trust {
		s.trust = g.Trust
	}
	if g.SpoofChk != nil && *g.SpoofChk != vf.Settings.SpoofChk {
		s.spoofChk = g.SpoofChk
	}
	if slices.ContainsFunc(pods, PodRef.claim) {
		// A DRA claim's settings are the claim's: its Unprepare puts back
		// the VF's, and the next sync applies the policy's then.
		s.trust, s.spoofChk = nil, nil
	}
	return s, s.rebind || s.mtu != 0 || s.trust != nil || s.spoofChk != nil
}

// appliedMTU is the MTU the last applied spec gave VF idx (0: the
// driver's default); known is false when no applied spec covers the VF.
func appliedMTU(rec *pfRecord, idx int) (mtu int, known bool) {
	if rec == nil || rec.Applied == nil {
		return 0, false
	}
	for _, g := range rec.Applied.VFGroups {
		if first, last, err := parseVFRange(g.VFRange); err == nil && idx >= first && idx <= last {
			return int(g.MTU), true
		}
	}
	return 0, false
}

// planRemove returns a PF that left the spec to zero VFs and its MTU.
func planRemove(pf *host.PF, rec *pfRecord, users vfUsers) *pfPlan {
	p := &pfPlan{address: pf.PCIAddress, label: pfLabel(pf.Name, pf.PCIAddress), name: pf.Name, remove: true}
	external := rec != nil && rec.Applied != nil && rec.Applied.ExternallyManaged
	if pf.NumVFs > 0 && !external { // externally managed VFs stay
		p.numVFs = &intChange{pf.NumVFs, 0}
		p.disruptAllUsed(pf, users, fmt.Sprintf("%s left the spec: its %d VFs are removed", p.label, pf.NumVFs))
	}
	if rec != nil && rec.OriginalMTU > 0 && pf.MTU != rec.OriginalMTU && pf.Name != "" {
		p.pfMTU = &intChange{pf.MTU, rec.OriginalMTU}
	}
	return p
}

func (p *pfPlan) disruptAllUsed(pf *host.PF, users vfUsers, why string) {
	for _, vf := range pf.VFs {
		if pods := users[vf.PCIAddress]; len(pods) > 0 {
			p.disrupts = append(p.disrupts, disruption{vf: vf.PCIAddress, pods: pods, why: why})
		}
	}
}

func (s vfStep) disruptive() string {
	var parts []string
	if s.rebind {
		parts = append(parts, fmt.Sprintf("driver %s -> %s", orNone(s.fromDriver), driverName(s.driver)))
	}
	if s.mtu != 0 {
		parts = append(parts, fmt.Sprintf("mtu %s -> %d cannot change while the VF is in a pod", mtuName(s.fromMTU), s.mtu))
	}
	return strings.Join(parts, ", ")
}

// describe is one VF step for the change line.
func (s vfStep) describe() string {
	var parts []string
	if s.rebind {
		parts = append(parts, fmt.Sprintf("driver %s -> %s", orNone(s.fromDriver), driverName(s.driver)))
	}
	if s.mtu != 0 {
		where := ""
		if s.inPod {
			where = " (in a pod)"
		}
		parts = append(parts, fmt.Sprintf("mtu %s -> %d%s", mtuName(s.fromMTU), s.mtu, where))
	}
	if s.trust != nil {
		parts = append(parts, fmt.Sprintf("trust %s -> %s", onOff(!*s.trust), onOff(*s.trust)))
	}
	if s.spoofChk != nil {
		parts = append(parts, fmt.Sprintf("spoofchk %s -> %s", onOff(!*s.spoofChk), onOff(*s.spoofChk)))
	}
	return fmt.Sprintf("vf %d %s (policy %s)", s.index, strings.Join(parts, ", "), s.policy)
}

// line is the PF's change summary.
func (p *pfPlan) line() string {
	if p.err != nil {
		return "cannot apply: " + p.err.Error()
	}
	var parts []string
	raiseFirst := p.raisesMTUFirst()
	if raiseFirst {
		parts = append(parts, fmt.Sprintf("mtu %d -> %d", p.pfMTU.from, p.pfMTU.to))
	}
	if p.numVFs != nil {
		parts = append(parts, fmt.Sprintf("numVfs %d -> %d", p.numVFs.from, p.numVFs.to))
		if p.spec != nil && p.numVFs.to > 0 {
			for _, g := range p.spec.VFGroups {
				parts = append(parts, "then "+groupSummary(g))
			}
		}
	}
	for _, s := range p.vfs {
		parts = append(parts, s.describe())
	}
	if p.pfMTU != nil && !raiseFirst {
		parts = append(parts, fmt.Sprintf("mtu %d -> %d", p.pfMTU.from, p.pfMTU.to))
	}
	head := p.label + ": "
	if p.remove {
		head = p.label + ": left the spec: "
	}
	line := head + strings.Join(parts, "; ")
	if pods := p.pods(); len(pods) > 0 {
		var claims, others []PodRef
		for _, pod := range pods {
			if pod.claim() {
				claims = append(claims, pod)
			} else {
				others = append(others, pod)
			}
		}
		if len(others) > 0 {
			line += "; drain: evicts " + podList(others)
		}
		if len(claims) > 0 {
			line += "; waits for the kubelet to unprepare " + podList(claims)
		}
	}
	return line
}

// raisesMTUFirst: a PF MTU going up is set before its VFs' (a VF's MTU
// cannot exceed its PF's); going down, after them.
func (p *pfPlan) raisesMTUFirst() bool {
	return p.pfMTU != nil && !p.remove && p.pfMTU.to > p.pfMTU.from
}

func groupSummary(g sluicev1.VFGroup) string {
	s := fmt.Sprintf("VFs %s %s", g.VFRange, g.DeviceType)
	if g.MTU > 0 {
		s += " mtu " + strconv.Itoa(int(g.MTU))
	}
	if g.Trust != nil {
		s += " trust " + onOff(*g.Trust)
	}
	if g.SpoofChk != nil {
		s += " spoofchk " + onOff(*g.SpoofChk)
	}
	return s + " (policy " + g.Policy + ")"
}

// parseVFRange reads "first-last".
func parseVFRange(r sluicev1.VFRange) (int, int, error) {
	a, b, ok := strings.Cut(string(r), "-")
	first, err1 := strconv.Atoi(a)
	last, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || first < 0 || last < first {
		return 0, 0, fmt.Errorf("VF range %q must be first-last with first <= last", r)
	}
	return first, last, nil
}

func driverName(d string) string {
	if d == host.DefaultDriver {
		return "default driver"
	}
	return d
}

func mtuName(m int) string {
	if m == 0 {
		return "default"
	}
	return strconv.Itoa(m)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func sortPods(p []PodRef) {
	sort.Slice(p, func(i, j int) bool { return p[i].String() < p[j].String() })
}

func podList(pods []PodRef) string {
	s := make([]string, len(pods))
	for i, p := range pods {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

func podNames(pods []PodRef) []string {
	if len(pods) == 0 {
		return nil
	}
	s := make([]string, len(pods))
	for i, p := range pods {
		s[i] = p.String()
	}
	return s
}
