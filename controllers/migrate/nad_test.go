package migrate

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestRewriteNAD: every key of a sriov-cni configuration (sriov-cni v2.10
// NetConf and the CNI keys) is kept, changed or dropped and reported.
func TestRewriteNAD(t *testing.T) {
	const nad = `apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: sriov-net
  namespace: app
  resourceVersion: "7"
  uid: 1234
  annotations: {k8s.v1.cni.cncf.io/resourceName: openshift.io/intelnics}
spec:
  config: '%s'
`
	full := `{"cniVersion": "0.4.0", "name": "sriov-net", "type": "sriov", "vlan": 10, "vlanQoS": 1, "vlanProto": "802.1ad", "spoofchk": "off", "trust": "on", "link_state": "enable", "min_tx_rate": 10, "max_tx_rate": 100, "mac": "02:00:00:00:00:01", "deviceID": "0000:3b:02.0", "capabilities": {"mac": true, "ips": true}, "runtimeConfig": {"mac": "02:00:00:00:00:02"}, "logLevel": "debug", "logFile": "/tmp/sriov.log", "mtu": 1400, "master": "ens1", "ipam": {"type": "static"}}`
	for _, tc := range []struct {
		name, config string
		want         map[string]Status
		wantConfig   string
		rewritten    bool
		// detail maps fields to text their entry's detail must contain.
		detail map[string]string
	}{
		{
			name:   "every key",
			config: full,
			want: map[string]Status{
				"spec.config.type": Changed, "spec.config.cniVersion": Mapped, "spec.config.name": Mapped, "spec.config.vlan": Mapped,
				"spec.config.vlanQoS": Mapped, "spec.config.vlanProto": Mapped, "spec.config.spoofchk": Mapped, "spec.config.trust": Mapped,
				"spec.config.link_state": Mapped, "spec.config.min_tx_rate": Mapped, "spec.config.max_tx_rate": Mapped, "spec.config.mac": Mapped,
				"spec.config.deviceID": Mapped, "spec.config.capabilities": Mapped, "spec.config.runtimeConfig": Mapped, "spec.config.ipam": Mapped,
				"spec.config.logLevel": Mapped, "spec.config.logFile": Mapped, "spec.config.mtu": Changed, "spec.config.master": Unsupported,
				"metadata.annotations[k8s.v1.cni.cncf.io/resourceName]": Changed,
			},
			wantConfig: `{"cniVersion": "0.4.0", "name": "sriov-net", "type": "sluice-cni", "vlan": 10, "vlanQoS": 1, "vlanProto": "802.1ad", "spoofchk": "off", "trust": "on", "link_state": "enable", "min_tx_rate": 10, "max_tx_rate": 100, "mac": "02:00:00:00:00:01", "deviceID": "0000:3b:02.0", "capabilities": {"mac": true, "ips": true}, "runtimeConfig": {"mac": "02:00:00:00:00:02"}, "logLevel": "debug", "logFile": "/tmp/sriov.log", "mtu": 1400, "ipam": {"type": "static"}}`,
			rewritten:  true,
			detail:     map[string]string{"spec.config.type": "--node-sriov-cni-alias", "spec.config.logFile": "appends its lines there"},
		},
		{
			name:   "log settings sluice-cni would refuse; an absent logLevel is sriov-cni's info",
			config: `{"cniVersion": "1.0.0", "name": "logs", "type": "sriov", "logLevel": "trace", "logFile": "sriov.log"}`,
			want: map[string]Status{
				"spec.config.type": Changed, "spec.config.cniVersion": Mapped, "spec.config.name": Mapped,
				"spec.config.logLevel": Changed, "spec.config.logFile": Unsupported,
				"metadata.annotations[k8s.v1.cni.cncf.io/resourceName]": Changed,
			},
			wantConfig: `{"cniVersion": "1.0.0", "name": "logs", "type": "sluice-cni", "logLevel": "info"}`,
			rewritten:  true,
			detail:     map[string]string{"spec.config.logLevel": `"trace" is not a level`, "spec.config.logFile": `"sriov.log" is relative`},
		},
		{
			name:   "no logLevel, ips without ipam",
			config: `{"cniVersion": "1.0.0", "name": "quiet", "type": "sriov", "logFile": "", "capabilities": {"ips": true}}`,
			want: map[string]Status{
				"spec.config.type": Changed, "spec.config.cniVersion": Mapped, "spec.config.name": Mapped, "spec.config.capabilities": Changed,
				"spec.config.logLevel": Changed, "spec.config.logFile": Mapped,
				"metadata.annotations[k8s.v1.cni.cncf.io/resourceName]": Changed,
			},
			wantConfig: `{"cniVersion": "1.0.0", "name": "quiet", "type": "sluice-cni", "logLevel": "info", "logFile": "", "capabilities": {"ips": true}}`,
			rewritten:  true,
			detail:     map[string]string{"spec.config.logLevel": `absent: written "info"`, "spec.config.capabilities": "there is no ipam"},
		},
		{
			name:   "a conflist: only the sriov plugin changes",
			config: `{"cniVersion": "0.4.0", "name": "chain", "plugins": [{"type": "sriov", "vlan": 3, "logLevel": "info"}, {"type": "tuning", "sysctl": {"net.ipv4.conf.IFNAME.accept_redirects": "1"}}]}`,
			want: map[string]Status{
				"spec.config.plugins[0].type": Changed, "spec.config.plugins[0].vlan": Mapped, "spec.config.plugins[0].logLevel": Mapped,
				"metadata.annotations[k8s.v1.cni.cncf.io/resourceName]": Changed,
			},
			wantConfig: `{"cniVersion": "0.4.0", "name": "chain", "plugins": [{"type": "sluice-cni", "vlan": 3, "logLevel": "info"}, {"type": "tuning", "sysctl": {"net.ipv4.conf.IFNAME.accept_redirects": "1"}}]}`,
			rewritten:  true,
		},
		{
			name:   "another plugin is left alone",
			config: `{"cniVersion": "0.4.0", "name": "m", "type": "macvlan"}`,
			want:   map[string]Status{"spec.config": Mapped},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := DecodeBytes([]byte(sprintf(nad, tc.config)), tc.name)
			if err != nil {
				t.Fatal(err)
			}
			res := Convert(objs, Options{}, true)
			if err := res.Err(); err != nil {
				t.Fatal(err)
			}
			got := map[string]Status{}
			details := map[string]string{}
			for _, e := range res.Report.Entries {
				got[e.Field] = e.Status
				details[e.Field] += e.Detail
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("report %v\nwant %v", got, tc.want)
			}
			for f, want := range tc.detail {
				if !strings.Contains(details[f], want) {
					t.Errorf("field %s: detail %q does not contain %q", f, details[f], want)
				}
			}
			if !tc.rewritten {
				if len(res.NADs) != 0 {
					t.Errorf("rewrote %d NADs, want none", len(res.NADs))
				}
				return
			}
			if len(res.NADs) != 1 {
				t.Fatalf("rewrote %d NADs, want 1", len(res.NADs))
			}
			rw := res.NADs[0]
			var a, b any
			if err := json.Unmarshal([]byte(rw.After), &a); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tc.wantConfig), &b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, b) {
				t.Errorf("config %s\nwant %s", rw.After, tc.wantConfig)
			}
			if rw.AnnotationAfter != "sluice.dev/intelnics" {
				t.Errorf("resource annotation %q", rw.AnnotationAfter)
			}
			if rv := rw.Object.GetResourceVersion(); rv != "" {
				t.Errorf("resourceVersion %q kept: server-side apply would conflict", rv)
			}
			if c, _, _ := unstructured.NestedString(rw.Object.Object, "spec", "config"); c != rw.After {
				t.Errorf("object config %q, want After", c)
			}
		})
	}
}

// TestRewriteNADLeavesSNOs: a NetworkAttachmentDefinition SNO renders is
// not rewritten (SNO would put it back); its SriovNetwork's VFNetwork
// takes it over.
func TestRewriteNADLeavesSNOs(t *testing.T) {
	in := `apiVersion: sriovnetwork.openshift.io/v1
kind: SriovNetwork
metadata: {name: net1, namespace: sriov-network-operator}
spec: {resourceName: intelnics, networkNamespace: app}
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: net1, namespace: app}
spec: {config: '{"type": "sriov"}'}
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: net2, namespace: app, annotations: {sriovnetwork.openshift.io/owner-ref: SriovNetwork.sriovnetwork.openshift.io/sriov-network-operator/net2}}
spec: {config: '{"type": "sriov"}'}
`
	objs, err := DecodeBytes([]byte(in), "t")
	if err != nil {
		t.Fatal(err)
	}
	res := Convert(objs, Options{}, true)
	if len(res.NADs) != 0 || len(res.Objects) != 1 {
		t.Fatalf("NADs %d objects %d, want 0 and 1\n%s", len(res.NADs), len(res.Objects), dump(res))
	}
}

// TestNADWithoutRewrite: without --rewrite-nads a NetworkAttachmentDefinition
// is left alone, and the report names both ways to sluice-cni.
func TestNADWithoutRewrite(t *testing.T) {
	runCases(t, []fieldCase{{
		name:   "sriov NAD",
		in:     "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata: {name: n, namespace: app}\nspec: {config: '{\"type\": \"sriov\"}'}\n",
		want:   map[string]Status{"kind": Unsupported},
		detail: map[string]string{"kind": "--rewrite-nads; to leave those of sriov-cni as they are, run the operator with --node-sriov-cni-alias"},
	}}, Options{}, false)
}
