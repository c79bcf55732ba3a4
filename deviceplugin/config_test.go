package deviceplugin

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/sluice-net/sluice/api/v1alpha1"
)

func TestParseNative(t *testing.T) {
	// Exactly what the node agent writes: the API type, marshalled.
	f := NativeFile{ResourcePrefix: "example.com", Pools: []v1alpha1.DevicePluginPool{
		{ResourceName: "rdma_a", DeviceType: v1alpha1.DeviceTypeNetdevice, Selectors: v1alpha1.PoolSelectors{
			PFNames: []string{"ens1f0#0-3", "ens1f1"}, IsRdma: true, LinkTypes: []string{"ether"}}},
		{ResourceName: "dpdk", ResourcePrefix: "sluice.dev", DeviceType: v1alpha1.DeviceTypeVfioPci, Selectors: v1alpha1.PoolSelectors{
			Vendors: []string{"0x8086"}, Devices: []string{"1889"}, RootDevices: []string{"0000:86:00.0"}}},
		{ResourceName: "hca", RDMAHcaMax: 100, Selectors: v1alpha1.PoolSelectors{PFNames: []string{"ens1f0"}}},
	}}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(b, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []Pool{
		{Prefix: "example.com", Name: "rdma_a", Driver: v1alpha1.DeviceTypeNetdevice, RDMA: true, Selectors: []Selector{{
			PFNames: []PFName{{Name: "ens1f0", VFs: []VFRange{{0, 3}}}, {Name: "ens1f1"}}, LinkTypes: []string{"eth"}, RDMA: true,
			Vendors: []string{}, Devices: []string{}, Drivers: []string{}, RootDevices: []string{}, PCIAddresses: []string{}, IfNames: []string{}}}},
		{Prefix: "sluice.dev", Name: "dpdk", Driver: v1alpha1.DeviceTypeVfioPci, Selectors: []Selector{{
			Vendors: []string{"8086"}, Devices: []string{"1889"}, RootDevices: []string{"0000:86:00.0"},
			Drivers: []string{}, PFNames: []PFName{}, PCIAddresses: []string{}, LinkTypes: []string{}, IfNames: []string{}}}},
		{Prefix: "example.com", Name: "hca", SharedMax: 100, RDMA: true, Selectors: []Selector{{
			PFNames: []PFName{{Name: "ens1f0"}}, RDMA: true,
			Vendors: []string{}, Devices: []string{}, Drivers: []string{}, RootDevices: []string{}, PCIAddresses: []string{}, LinkTypes: []string{}, IfNames: []string{}}}},
	}
	if c.Format != FormatNative || !reflect.DeepEqual(c.Pools, want) {
		t.Errorf("pools =\n%+v\nwant\n%+v", c.Pools, want)
	}
	// The agent writes "pools": null when the node has none.
	c, err = ParseConfig([]byte(`{"resourcePrefix":"sluice.dev","pools":null}`), "")
	if err != nil || len(c.Pools) != 0 {
		t.Errorf("no pools: %+v, %v", c, err)
	}
}

func TestParseSRIOVDP(t *testing.T) {
	// A config as sriov-network-device-plugin's README and the SR-IOV
	// operator write them: selectors as an object, resource-level and
	// capitalised IsRdma, SelectorObj null, pfNames with VF lists.
	old := `{
	  "resourceList": [{
	      "resourceName": "intel_sriov_netdevice",
	      "selectors": {"vendors": ["8086"], "devices": ["154c", "10ed"], "drivers": ["i40evf", "ixgbevf"]}
	    }, {
	      "resourceName": "mlnx_sriov_rdma", "resourcePrefix": "mellanox.com", "isRdma": true,
	      "selectors": {"vendors": ["15b3"], "devices": ["1018"], "drivers": ["mlx5_ib"]}
	    }, {
	      "resourceName": "sriovnics",
	      "selectors": {"pfNames": ["ens785f0#0-4", "netpf0#0,2-7,9"], "IsRdma": false, "NeedVhostNet": true},
	      "SelectorObj": null
	    }]
	}`
	c, err := ParseConfig([]byte(old), "intel.com")
	if err != nil {
		t.Fatal(err)
	}
	if c.Format != FormatSRIOVDP || len(c.Pools) != 3 {
		t.Fatalf("config = %+v", c)
	}
	if p := c.Pools[0]; p.Resource() != "intel.com/intel_sriov_netdevice" || !reflect.DeepEqual(p.Selectors[0].Devices, []string{"154c", "10ed"}) {
		t.Errorf("pool 0 = %+v", p)
	}
	if p := c.Pools[1]; p.Resource() != "mellanox.com/mlnx_sriov_rdma" || !p.RDMA || !p.Selectors[0].RDMA {
		t.Errorf("pool 1 (resource-level isRdma) = %+v", p)
	}
	p := c.Pools[2]
	if !p.NeedVhostNet || p.RDMA {
		t.Errorf("pool 2 flags = %+v", p)
	}
	wantPF := []PFName{{Name: "ens785f0", VFs: []VFRange{{0, 4}}}, {Name: "netpf0", VFs: []VFRange{{0, 0}, {2, 7}, {9, 9}}}}
	if !reflect.DeepEqual(p.Selectors[0].PFNames, wantPF) {
		t.Errorf("pfNames = %+v, want %+v", p.Selectors[0].PFNames, wantPF)
	}
	for idx, want := range map[int]bool{0: true, 1: false, 5: true, 8: false, 9: true} {
		if got := p.Selectors[0].PFNames[1].Has(idx); got != want {
			t.Errorf("netpf0#0,2-7,9 has VF %d = %v", idx, got)
		}
	}

	// Newer versions: a list of selectors, a device in any of them.
	newer := `{"resourceList": [{
	    "resourceName": "sriov_net_A", "resourcePrefix": "intel.com", "deviceType": "netDevice", "excludeTopology": true,
	    "selectors": [
	      {"vendors": ["8086"], "devices": ["154c"], "pfNames": ["enp0s0f0"], "pciAddresses": ["0000:86:02.0"], "linkTypes": ["ether"],
	       "ddpProfiles": [], "vdpaType": "", "isRdma": false, "needVhostNet": false},
	      {"rootDevices": ["0000:86:00.0"], "linkTypes": ["infiniband"], "isRdma": true}
	    ],
	    "additionalInfo": {"*": {"net": "a"}, "0000:86:02.0": {"port": "1"}}
	  }, {"resourceName": "qat", "deviceType": "accelerator", "selectors": {"vendors": ["8086"], "devices": ["37c9"], "drivers": ["vfio-pci"]}}]}`
	c, err = ParseConfig([]byte(newer), "")
	if err != nil {
		t.Fatal(err)
	}
	p = c.Pools[0]
	if len(p.Selectors) != 2 || !p.ExcludeTopology || !p.RDMA || p.Selectors[0].RDMA || !p.Selectors[1].RDMA {
		t.Errorf("pool with two selectors = %+v", p)
	}
	if !reflect.DeepEqual(p.Selectors[0].LinkTypes, []string{"eth"}) || !reflect.DeepEqual(p.Selectors[1].LinkTypes, []string{"ib"}) {
		t.Errorf("link types = %v / %v", p.Selectors[0].LinkTypes, p.Selectors[1].LinkTypes)
	}
	if p.AdditionalInfo["0000:86:02.0"]["port"] != "1" || p.AdditionalInfo["*"]["net"] != "a" {
		t.Errorf("additionalInfo = %v", p.AdditionalInfo)
	}
	if q := c.Pools[1]; !q.Accelerator || q.Resource() != "sluice.dev/qat" {
		t.Errorf("accelerator pool = %+v", q)
	}
}

func TestParseRDMAShared(t *testing.T) {
	in := `{
	  "periodicUpdateInterval": 300,
	  "configList": [
	    {"resourceName": "hca_shared_devices_a", "rdmaHcaMax": 1000, "devices": ["ib0", "ib1"]},
	    {"resourceName": "hca_shared_devices_b", "resourcePrefix": "nvidia.com", "rdmaHcaMax": 500,
	     "selectors": {"vendors": ["15b3"], "deviceIDs": ["1017"], "drivers": ["mlx5_core"], "ifNames": ["ib3", "ib4"], "linkTypes": ["infiniband"]}}
	  ]
	}`
	c, err := ParseConfig([]byte(in), "rdma")
	if err != nil {
		t.Fatal(err)
	}
	if c.Format != FormatRDMAShared || len(c.Pools) != 2 {
		t.Fatalf("config = %+v", c)
	}
	a, b := c.Pools[0], c.Pools[1]
	if a.Resource() != "rdma/hca_shared_devices_a" || a.SharedMax != 1000 || !a.WholeSet || !reflect.DeepEqual(a.Selectors[0].IfNames, []string{"ib0", "ib1"}) {
		t.Errorf("pool a = %+v", a)
	}
	s := b.Selectors[0]
	if b.Resource() != "nvidia.com/hca_shared_devices_b" || b.SharedMax != 500 || !b.Shared() || !b.WholeSet ||
		!reflect.DeepEqual(s.Devices, []string{"1017"}) || !reflect.DeepEqual(s.LinkTypes, []string{"ib"}) || !s.RDMA {
		t.Errorf("pool b = %+v", b)
	}
}

func TestParseRejectsWithFieldAndFix(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		// want are substrings of the error: the field's path and the fix.
		want []string
	}{
		{"empty", ``, []string{"empty", `{"pools": []}`}},
		{"not an object", `[1]`, []string{"config is a JSON array, not an object", `{"pools": [...]}`}},
		{"not JSON", `{"pools": [}`, []string{"config is not a JSON object", "invalid character"}},
		{"unknown format", `{"devices": []}`, []string{`"pools"`, `"resourceList"`, `"configList"`}},
		{"native typo", `{"pools":[{"resourceName":"a","selectors":{"pfName":["x"]}}]}`,
			[]string{"pools[0].selectors.pfName", `did you mean "pfNames"`}},
		{"native unknown top-level", `{"pools":[],"prefix":"x"}`, []string{"prefix", "unknown field"}},
		{"native wrong type", `{"pools":[{"resourceName":"a","selectors":{"vendors":"8086"}}]}`,
			[]string{"pools[0].selectors.vendors", "list of strings"}},
		{"native bad device type", `{"pools":[{"resourceName":"a","deviceType":"vfio"}]}`,
			[]string{"pools[0].deviceType", `"vfio-pci"`}},
		{"native bad vendor", `{"pools":[{"resourceName":"a","selectors":{"vendors":["intel"]}}]}`,
			[]string{"pools[0].selectors.vendors[0]", "4 hex digits"}},
		{"native bad root device", `{"pools":[{"resourceName":"a","selectors":{"rootDevices":["3b:00.0"]}}]}`,
			[]string{"pools[0].selectors.rootDevices[0]", "0000:3b:00.0"}},
		{"native bad VF range", `{"pools":[{"resourceName":"a","selectors":{"pfNames":["ens1f0#3-1"]}}]}`,
			[]string{"pools[0].selectors.pfNames[0]", "first <= last"}},
		{"native pfName not a netdev", `{"pools":[{"resourceName":"a","selectors":{"pfNames":["ens1f0 #0-3"]}}]}`,
			[]string{"pools[0].selectors.pfNames[0]", `PF name "ens1f0 "`, "interface names cannot"}},
		{"native bad link type", `{"pools":[{"resourceName":"a","selectors":{"linkTypes":["roce"]}}]}`,
			[]string{"pools[0].selectors.linkTypes[0]", `"ether" or "infiniband"`}},
		{"native negative rdmaHcaMax", `{"pools":[{"resourceName":"a","rdmaHcaMax":-1}]}`,
			[]string{"pools[0].rdmaHcaMax", "0 for a VF pool"}},
		{"native shared vfio", `{"pools":[{"resourceName":"a","rdmaHcaMax":5,"deviceType":"vfio-pci"}]}`,
			[]string{"pools[0].deviceType", "remove deviceType or rdmaHcaMax"}},
		{"missing name", `{"pools":[{"selectors":{}}]}`, []string{"pools[0].resourceName is empty"}},
		{"bad name", `{"pools":[{"resourceName":"rdma a"}]}`, []string{"pools[0]", `"sluice.dev/rdma a"`, "letters, digits"}},
		{"reserved prefix", `{"pools":[{"resourceName":"a","resourcePrefix":"kubernetes.io"}]}`, []string{"pools[0].resourcePrefix", "reserved"}},
		{"duplicate", `{"pools":[{"resourceName":"a"},{"resourceName":"b"},{"resourceName":"a"}]}`,
			[]string{"pools[2]", "already defined by pools[0]"}},
		{"sriovdp unknown selector", `{"resourceList":[{"resourceName":"a","selectors":[{"vendors":["8086"]},{"driver":["iavf"]}]}]}`,
			[]string{"resourceList[0].selectors[1].driver", `did you mean "drivers"`}},
		{"sriovdp selectors scalar", `{"resourceList":[{"resourceName":"a","selectors":"all"}]}`,
			[]string{"resourceList[0].selectors", "selector object or a list"}},
		{"sriovdp ddp", `{"resourceList":[{"resourceName":"a","selectors":{"ddpProfiles":["GTP"]}}]}`,
			[]string{"resourceList[0].selectors.ddpProfiles", "remove the selector"}},
		{"sriovdp vdpa", `{"resourceList":[{"resourceName":"a","selectors":{"vdpaType":"virtio"}}]}`,
			[]string{"resourceList[0].selectors.vdpaType", "vDPA"}},
		{"sriovdp aux", `{"resourceList":[{"resourceName":"a","deviceType":"auxNetDevice"}]}`,
			[]string{"resourceList[0].deviceType", "auxiliary"}},
		{"sriovdp accelerator with pfNames", `{"resourceList":[{"resourceName":"a","deviceType":"accelerator","selectors":{"pfNames":["x"]}}]}`,
			[]string{"resourceList[0].selectors.pfNames", "deviceType to netDevice"}},
		{"sriovdp accelerator with resource isRdma", `{"resourceList":[{"resourceName":"a","deviceType":"accelerator","isRdma":true}]}`,
			[]string{"resourceList[0].isRdma", "deviceType to netDevice"}},
		{"sriovdp bad pci address", `{"resourceList":[{"resourceName":"a","selectors":{"pciAddresses":["0000:86:02"]}}]}`,
			[]string{"resourceList[0].selectors.pciAddresses[0]"}},
		{"sriovdp wrong type", `{"resourceList":[{"resourceName":"a","excludeTopology":"yes"}]}`,
			[]string{"resourceList[0].excludeTopology", "true or false"}},
		{"rdma shared negative max", `{"configList":[{"resourceName":"a","rdmaHcaMax":-100,"selectors":{"ifNames":["ib0"]}}]}`,
			[]string{"configList[0].rdmaHcaMax -100", "1 to 10000"}},
		{"rdma shared max too large", `{"configList":[{"resourceName":"a","rdmaHcaMax":10001,"selectors":{"ifNames":["ib0"]}}]}`,
			[]string{"configList[0].rdmaHcaMax 10001", "1 to 10000"}},
		{"rdmaSharing unknown", `{"pools":[{"resourceName":"a","rdmaHcaMax":2,"rdmaSharing":"All","selectors":{"pfNames":["ib0"]}}]}`,
			[]string{"pools[0].rdmaSharing", `"PerDevice"`, `"WholeSet"`}},
		{"rdmaSharing on a VF pool", `{"pools":[{"resourceName":"a","rdmaSharing":"WholeSet","selectors":{"pfNames":["ib0"]}}]}`,
			[]string{"pools[0].rdmaSharing", "set rdmaHcaMax above 0"}},
		{"ifNames on a VF pool", `{"pools":[{"resourceName":"a","selectors":{"ifNames":["ib0"]}}]}`,
			[]string{"pools[0].selectors.ifNames", "use pfNames"}},
		{"rdma shared devices typo", `{"configList":[{"resourceName":"a","rdmaHcaMax":1,"selectors":{"devices":["1017"]}}]}`,
			[]string{"configList[0].selectors.devices", `did you mean "deviceIDs"`}},
		{"rdma shared bad device ID", `{"configList":[{"resourceName":"a","rdmaHcaMax":1,"selectors":{"deviceIDs":["cx6"]}}]}`,
			[]string{"configList[0].selectors.deviceIDs[0]"}},
		{"rdma shared both interfaces", `{"configList":[{"resourceName":"a","rdmaHcaMax":1,"devices":["ib0"],"selectors":{"ifNames":["ib1"]}}]}`,
			[]string{"configList[0].devices", "keep selectors.ifNames only"}},
		{"rdma shared ifName not a netdev", `{"configList":[{"resourceName":"a","rdmaHcaMax":1,"selectors":{"ifNames":["ib 0"]}}]}`,
			[]string{"configList[0].selectors.ifNames[0]", `"ib 0"`, "interface names cannot"}},
		{"rdma shared device too long", `{"configList":[{"resourceName":"a","rdmaHcaMax":1,"devices":["mlx5_ib_verylong0"]}]}`,
			[]string{"configList[0].devices[0]", "17 bytes long", "15"}},
		{"rdma shared duplicate", `{"configList":[{"resourceName":"a","rdmaHcaMax":1},{"resourceName":"a","rdmaHcaMax":2}]}`,
			[]string{"configList[1]", "already defined by configList[0]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.in), "")
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseMatchesKeysAsEncodingJSON(t *testing.T) {
	// encoding/json matches keys case-insensitively; so does the strict
	// check, or configs the original plugins accept would be refused.
	c, err := ParseConfig([]byte(`{"ResourceList":[{"ResourceName":"a","Selectors":{"Vendors":["8086"]}}]}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Pools[0].Selectors[0].Vendors; !reflect.DeepEqual(got, []string{"8086"}) {
		t.Errorf("vendors = %v", got)
	}
}

// k8s-rdma-shared-dev-plugin takes rdmaHcaMax 0 (and an absent one) as a
// resource with no units; the pool stays a whole-set shared pool.
func TestParseRDMASharedZeroMax(t *testing.T) {
	c, err := ParseConfig([]byte(`{"configList":[{"resourceName":"a","rdmaHcaMax":0,"selectors":{"ifNames":["ib0"]}},{"resourceName":"b","selectors":{"ifNames":["ib1"]}}]}`), "rdma")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range c.Pools {
		if p.SharedMax != 0 || !p.WholeSet || !p.Shared() || !p.RDMA {
			t.Errorf("pool %s = %+v, want a whole-set shared RDMA pool of 0 units", p.Name, p)
		}
	}
	// The native format keeps refusing rdmaSharing without units.
	if _, err := ParseConfig([]byte(`{"pools":[{"resourceName":"a","rdmaSharing":"WholeSet","selectors":{"ifNames":["ib0"]}}]}`), ""); err == nil || !strings.Contains(err.Error(), "pools[0].rdmaSharing") {
		t.Errorf("native WholeSet without rdmaHcaMax: err = %v, want pools[0].rdmaSharing refused", err)
	}
}
