package plugin

import (
	"encoding/json"
	"errors"
	"math"
	"net"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/sluice-net/sluice/host"
)

// Fuzz targets for what the runtime (through Multus) puts in front of the
// plugin: the network configuration on stdin and CNI_ARGS. Seeds are in
// testdata/fuzz/<target>; plain go test runs them as regression tests.

// FuzzLoadConf feeds a network configuration and CNI_ARGS to the parser ADD
// and CHECK use. A refusal must be a CNI error of the right code that names
// the field at fault; an accepted configuration must hold every invariant
// the commands rely on, be read the same by DEL's parser, and parse again to
// the same Config when written back out.
func FuzzLoadConf(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"rdma-net","type":"sluice-cni","vlan":100,"spoofchk":"off","trust":"on","link_state":"enable","mtu":9000,"rdma":true,"ipam":{"type":"host-local","subnet":"10.56.0.0/16"},"deviceID":"0000:3b:02.0"}`),
		"IgnoreUnknown=1;K8S_POD_NAMESPACE=ml;K8S_POD_NAME=trainer-0;K8S_POD_INFRA_CONTAINER_ID=c1;K8S_POD_UID=5d1e2f3a-0000-4000-8000-000000000001")
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"n","type":"sluice-cni","runtimeConfig":{"deviceID":"0000:03:02.3","mac":"02:00:00:00:00:01"},"vlan":7,"vlanQoS":3,"vlanProto":"802.1AD","min_tx_rate":10,"max_tx_rate":100}`),
		"MAC=02:00:00:00:00:02")
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"igb-roce-net","type":"sluice-cni","rdma":true,"softRoCE":{"cdiKind":"sluice.dev/igb-roce"},"deviceID":"0000:00:04.1"}`), "")
	// What sriov-network-operator renders for sriov-cni, with the pod's
	// requested MAC and addresses from Multus.
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"sriov-net","type":"sriov","vlan":0,"vlanQoS":0,"vlanProto":"802.1q","capabilities":{"mac":true,"ips":true},"logLevel":"info","logFile":"/var/log/sriov-cni.log","ipam":{"type":"static"},"deviceID":"0000:3b:02.0","runtimeConfig":{"mac":"ca:fe:c0:ff:ee:00","ips":["10.56.217.20/24","fd00::20/64"]}}`),
		"IgnoreUnknown=1;K8S_POD_NAMESPACE=ml;K8S_POD_NAME=p")
	f.Fuzz(func(t *testing.T, conf []byte, cniArgs string) {
		args := &skel.CmdArgs{ContainerID: "c1", IfName: "net1", StdinData: conf, Args: cniArgs}
		c, err := LoadConf(args)
		if err != nil {
			checkConfError(t, err)
			return
		}
		checkConfig(t, c, cniArgs)

		// DEL, GC and STATUS read only the base: never more strictly than
		// ADD, and the same values (DEL must undo what ADD did).
		base, err := loadBaseConf(conf)
		if err != nil {
			t.Fatalf("ADD accepts the configuration, DEL's parser refuses it: %v", err)
		}
		if !reflect.DeepEqual(*base, c.BaseConf) {
			t.Fatalf("DEL reads\n%+v\nADD reads\n%+v", *base, c.BaseConf)
		}

		// Written back out and read again: the same Config. NetConf is
		// marshalled as a value: its address would pick the promoted
		// types.PluginConf.MarshalJSON, which writes only the CNI fields.
		out, err := json.Marshal(c.NetConf)
		if err != nil {
			t.Fatalf("encode accepted configuration: %v", err)
		}
		c2, err := LoadConf(&skel.CmdArgs{ContainerID: "c1", IfName: "net1", StdinData: out, Args: cniArgs})
		if err != nil {
			t.Fatalf("re-encoded configuration %s refused: %v", out, err)
		}
		emptyToNil(c)
		emptyToNil(c2)
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip through %s:\n%+v\nbecame\n%+v", out, c, c2)
		}
	})
}

// emptyToNil makes the collections json's omitempty drops nil, so that a
// round trip compares what the configuration says.
func emptyToNil(c *Config) {
	if len(c.Capabilities) == 0 {
		c.Capabilities = nil
	}
	if len(c.RawPrevResult) == 0 {
		c.RawPrevResult = nil
	}
	if len(c.ValidAttachments) == 0 {
		c.ValidAttachments = nil
	}
	if len(c.RuntimeConfig.IPs) == 0 {
		c.RuntimeConfig.IPs = nil
	}
	if len(c.DNS.Nameservers) == 0 {
		c.DNS.Nameservers = nil
	}
	if len(c.DNS.Search) == 0 {
		c.DNS.Search = nil
	}
	if len(c.DNS.Options) == 0 {
		c.DNS.Options = nil
	}
}

// checkConfError: a CNI error whose code says whose fault it is, and whose
// message names the field or variable at fault.
func checkConfError(t *testing.T, err error) {
	t.Helper()
	var e *types.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %q is not a CNI error", err)
	}
	switch e.Code {
	case types.ErrDecodingFailure:
		if !strings.HasPrefix(e.Msg, "network configuration is not valid JSON") && !strings.HasPrefix(e.Msg, "network configuration is a JSON ") {
			t.Fatalf("decoding error %q does not say the configuration is not a JSON object", e.Msg)
		}
	case types.ErrInvalidNetworkConfig:
		if !namesConfField(e.Msg) {
			t.Fatalf("configuration error %q does not start with the field at fault", e.Msg)
		}
		if goType := goTypeRE.FindString(quotedRE.ReplaceAllString(e.Msg, `""`)); goType != "" {
			t.Fatalf("configuration error %q names the Go type %q, not what to write", e.Msg, goType)
		}
	case types.ErrInvalidEnvironmentVariables:
		if !strings.HasPrefix(e.Msg, "CNI_ARGS") {
			t.Fatalf("environment error %q does not name CNI_ARGS", e.Msg)
		}
	default:
		t.Fatalf("error %q has code %d: want 6 (not JSON), 7 (configuration) or 4 (CNI_ARGS)", e.Msg, e.Code)
	}
}

// namesConfField reports whether a configuration error starts with a field
// of the configuration: `field "x" ...` or the field's name.
func namesConfField(msg string) bool {
	fields := confFields(reflect.TypeFor[NetConf](), "")
	if rest, ok := strings.CutPrefix(msg, `field "`); ok {
		name, _, _ := strings.Cut(rest, `"`)
		for _, f := range fields {
			if name == f || strings.HasPrefix(name, f+".") {
				return true
			}
		}
		return false
	}
	first, _, _ := strings.Cut(msg, " ")
	for _, f := range fields {
		if first == f {
			return true
		}
	}
	return false
}

// goTypeRE matches Go type names (plugin.NetConf, types.IPAM, struct {...},
// a int) in a message meant for whoever writes the configuration.
var goTypeRE = regexp.MustCompile(`\b(plugin|types|host)\.[A-Z]\w*|struct \{|map\[|\[\]|\ba (int|uint|float|bool)\d*\b`)

// quotedRE matches the %q-quoted values of a message, which are the
// configuration's own and may hold anything.
var quotedRE = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// confFields lists the JSON names of t's fields, nested ones dotted
// (runtimeConfig.mac), as encoding/json names them.
func confFields(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
			out = append(out, confFields(ft, prefix)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, prefix+name)
		if ft.Kind() == reflect.Struct {
			out = append(out, confFields(ft, prefix+name+".")...)
		}
	}
	return out
}

// checkConfig checks the invariants ADD and CHECK rely on.
func checkConfig(t *testing.T, c *Config, cniArgs string) {
	t.Helper()
	if !pciAddrRE.MatchString(c.PCI) || c.PCI != c.deviceID() {
		t.Fatalf("PCI %q: not a PCI address, or not the configuration's deviceID %q", c.PCI, c.deviceID())
	}
	wantArgs, err := parseArgs(cniArgs)
	if err != nil || c.Args != wantArgs {
		t.Fatalf("Args = %+v, CNI_ARGS %q parses to %+v, %v", c.Args, cniArgs, wantArgs, err)
	}
	vf := c.VF
	if vf.VLAN == nil {
		t.Fatal("VF.VLAN is nil: the VLAN is always set, so a VF never keeps a previous user's tag")
	}
	if *vf.VLAN < 0 || *vf.VLAN > 4094 || vf.QoS < 0 || vf.QoS > 7 {
		t.Fatalf("VLAN %d QoS %d out of range", *vf.VLAN, vf.QoS)
	}
	if (vf.QoS != 0 || vf.VLANProto == host.VLANProto8021AD) && *vf.VLAN == 0 {
		t.Fatalf("QoS %d / proto %#x without a VLAN", vf.QoS, vf.VLANProto)
	}
	if vf.VLANProto != host.VLANProto8021Q && vf.VLANProto != host.VLANProto8021AD {
		t.Fatalf("VLANProto %#x", vf.VLANProto)
	}
	if c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535) {
		t.Fatalf("MTU %d", c.MTU)
	}

	// The MAC: runtimeConfig.mac, else CNI_ARGS MAC, else mac.
	wantMAC := c.MAC
	if c.Args.MAC != "" {
		wantMAC = c.Args.MAC
	}
	if c.RuntimeConfig.MAC != "" {
		wantMAC = c.RuntimeConfig.MAC
	}
	switch {
	case wantMAC == "":
		if c.MACAddr != nil || vf.MAC != nil {
			t.Fatalf("MAC %v / %v set without one asked", c.MACAddr, vf.MAC)
		}
	default:
		parsed, err := net.ParseMAC(wantMAC)
		if err != nil || c.MACAddr.String() != parsed.String() || len(c.MACAddr) != 6 || c.MACAddr[0]&1 != 0 ||
			vf.MAC == nil || *vf.MAC != c.MACAddr.String() {
			t.Fatalf("MAC %q became %v / %v", wantMAC, c.MACAddr, vf.MAC)
		}
	}

	for _, s := range []struct {
		field, v string
		got      *bool
	}{{"spoofchk", c.SpoofChk, vf.SpoofChk}, {"trust", c.Trust, vf.Trust}} {
		if (s.v == "") != (s.got == nil) || (s.got != nil && *s.got != (s.v == "on")) {
			t.Fatalf("%s %q became %v", s.field, s.v, s.got)
		}
	}
	if (c.LinkState == "") != (vf.LinkState == nil) || (vf.LinkState != nil && *vf.LinkState != c.LinkState) {
		t.Fatalf("link_state %q became %v", c.LinkState, vf.LinkState)
	}

	// Rates go to the kernel as u32 Mbps (IFLA_VF_RATE): a larger value
	// would be cut to its low 32 bits.
	for _, r := range []*int{vf.MinTxRate, vf.MaxTxRate} {
		if r != nil && (*r < 0 || int64(*r) > math.MaxUint32) {
			t.Fatalf("tx rate %d does not fit the kernel's u32 Mbps", *r)
		}
	}
	if vf.MinTxRate != c.MinTxRate || vf.MaxTxRate != c.MaxTxRate {
		t.Fatal("VF rates are not the configuration's")
	}
	if vf.MinTxRate != nil && vf.MaxTxRate != nil && *vf.MaxTxRate != 0 && *vf.MinTxRate > *vf.MaxTxRate {
		t.Fatalf("min_tx_rate %d above max_tx_rate %d", *vf.MinTxRate, *vf.MaxTxRate)
	}
	if c.SoftRoCE != nil && !cdiKindRE.MatchString(c.SoftRoCE.CDIKind) {
		t.Fatalf("softRoCE.cdiKind %q", c.SoftRoCE.CDIKind)
	}

	// Requested addresses are addresses, and an IPAM plugin assigns them.
	for _, ip := range c.RuntimeConfig.IPs {
		if _, _, err := net.ParseCIDR(ip); err != nil && net.ParseIP(ip) == nil {
			t.Fatalf("runtimeConfig.ips %q accepted", ip)
		}
	}
	if len(c.RuntimeConfig.IPs) > 0 && c.IPAM.Type == "" {
		t.Fatalf("runtimeConfig.ips %v accepted without an IPAM plugin to assign them", c.RuntimeConfig.IPs)
	}
	// Logging: one of sriov-cni's levels, a file by absolute path.
	if _, ok := ParseLogLevel(c.LogLevel); c.LogLevel != "" && !ok {
		t.Fatalf("logLevel %q accepted", c.LogLevel)
	}
	if c.LogFile != "" && !strings.HasPrefix(c.LogFile, "/") {
		t.Fatalf("logFile %q accepted", c.LogFile)
	}
}

// FuzzParseArgs feeds CNI_ARGS to the plugin's parser. Whatever the CNI
// library's own parser (types.LoadArgs) reads, the plugin must read the
// same; a refusal is a CNI environment error that quotes the bad pair.
func FuzzParseArgs(f *testing.F) {
	f.Add("IgnoreUnknown=1;K8S_POD_NAMESPACE=ml;K8S_POD_NAME=trainer-0;K8S_POD_INFRA_CONTAINER_ID=c1;K8S_POD_UID=5d1e2f3a-0000-4000-8000-000000000001")
	f.Add("MAC=02:00:00:00:00:01")
	f.Add("K8S_POD_NAME=a;K8S_POD_NAME=b;;")
	f.Add("K8S_POD_NAME=a=b")
	f.Add("IgnoreUnknown=1;nokey")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseArgs(s)

		// The plugin's own rule: every non-empty pair is KEY=VALUE.
		var bad string
		for _, kv := range strings.Split(s, ";") {
			if kv != "" && !strings.Contains(kv, "=") {
				bad = kv
				break
			}
		}
		switch {
		case bad != "" && err == nil:
			t.Fatalf("pair %q without '=' accepted", bad)
		case bad == "" && err != nil:
			t.Fatalf("refused: %v", err)
		case err != nil:
			var e *types.Error
			if !errors.As(err, &e) || e.Code != types.ErrInvalidEnvironmentVariables ||
				!strings.HasPrefix(e.Msg, "CNI_ARGS") || !strings.Contains(e.Msg, strconv.Quote(bad)) {
				t.Fatalf("error %v: want code 4 naming CNI_ARGS and the pair %q", err, bad)
			}
			return
		}

		// The CNI library's reading, unknown keys ignored as the runtime asks.
		var ref struct {
			types.CommonArgs
			MAC, K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_UID types.UnmarshallableString //nolint:revive // CNI_ARGS keys
		}
		ref.IgnoreUnknown = true
		if types.LoadArgs(s, &ref) != nil {
			return
		}
		want := podArgs{MAC: string(ref.MAC), PodNamespace: string(ref.K8S_POD_NAMESPACE), PodName: string(ref.K8S_POD_NAME), PodUID: string(ref.K8S_POD_UID)}
		if got != want {
			t.Fatalf("parseArgs(%q) = %+v; the CNI library reads %+v", s, got, want)
		}
	})
}
