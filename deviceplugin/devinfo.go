package deviceplugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"

	"github.com/sluice-net/sluice/api/nodefiles"
)

// devInfoFiles keeps the device-info files (the Network Plumbing Working
// Group's device-info spec, "dp" flavour) of allocated VFs: written at
// Allocate, as sriov-network-device-plugin does, so that Multus finds
// them when the pod's networks are attached, and removed once the device
// is gone from its pool, its pool is gone, or the pod released it.
//
// The kubelet never says when a pod releases a device; the CNI's
// attachment registry does: a VF seen attached since its file was written
// and no longer attached has been released. A VF that no sluice-cni
// attachment ever lists (a DPDK pod without a network, another CNI) keeps
// its file until it is allocated again or leaves its pool.
//
// Files survive the plugin's exit, unlike sriov-network-device-plugin's:
// a pod whose sandbox is being created during an upgrade still finds its
// file. The next start adopts the files of its pools' devices.
type devInfoFiles struct {
	dir string
	log logr.Logger

	mu sync.Mutex
	// files are the files written or adopted, by resource and device ID.
	files map[devInfoKey]*devInfoFile
	// looked are the devices of the last scan whose file was looked for.
	looked map[devInfoKey]bool
}

type devInfoKey struct{ resource, id string }

type devInfoFile struct {
	// written is when Allocate wrote it; zero for an adopted file.
	written time.Time
	// attached is set once the device was seen attached after written.
	attached bool
}

func newDevInfoFiles(dir string, log logr.Logger) *devInfoFiles {
	return &devInfoFiles{dir: dir, log: log, files: map[devInfoKey]*devInfoFile{}, looked: map[devInfoKey]bool{}}
}

// writesDevInfo reports whether a pool's allocations get device-info
// files: VF pools, as sriov-network-device-plugin's netdevice pools;
// neither accelerators nor shared RDMA devices, which its accelerator
// pools and k8s-rdma-shared-dev-plugin leave without.
func writesDevInfo(p *Pool) bool {
	return !p.Shared() && !p.Accelerator
}

// path is a device's file, named as the Network Plumbing Working Group's
// client library names it: <resource>-<device ID>-device.json with '/'
// turned into '-'.
func (f *devInfoFiles) path(resource, id string) string {
	return filepath.Join(f.dir, strings.ReplaceAll(resource, "/", "-")+"-"+strings.ReplaceAll(id, "/", "-")+"-device.json")
}

// fileInfo is what the file says of a device: its PCI address and, for
// pools that hand RDMA out, its RDMA device.
func fileInfo(p *Pool, d *Device) *nadv1.DeviceInfo {
	di := &nadv1.DeviceInfo{
		Type:    nadv1.DeviceInfoTypePCI,
		Version: nadv1.DeviceInfoVersion,
		Pci:     &nadv1.PciDevice{PciAddress: d.PCIAddress},
	}
	if p.RDMA && d.RDMA != nil {
		di.Pci.RdmaDevice = d.RDMA.Name
	}
	return di
}

// save writes the files of devices just allocated.
func (f *devInfoFiles) save(p *Pool, devs []*Device, now time.Time) error {
	if !writesDevInfo(p) {
		return nil
	}
	res := p.Resource()
	for _, d := range devs {
		b, err := json.Marshal(fileInfo(p, d))
		if err != nil {
			return fmt.Errorf("encode the device-info of %s: %w", d.ID, err)
		}
		if err := nodefiles.WriteFileAtomic(f.path(res, d.ID), b); err != nil {
			return fmt.Errorf("device-info of %s: %w", d.ID, err)
		}
		f.mu.Lock()
		f.files[devInfoKey{res, d.ID}] = &devInfoFile{written: now}
		f.mu.Unlock()
	}
	return nil
}

// reconcile removes the files of devices gone or released at a scan whose
// attachment registry was read after since. It first adopts the files a
// previous run left for devices new in the tree.
func (f *devInfoFiles) reconcile(t *Tree, since time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.adopt(t)
	for k, file := range f.files {
		var d *Device
		if pd := t.Pools[k.resource]; pd != nil && writesDevInfo(&pd.Pool) {
			d, _ = pd.Device(k.id)
		}
		attached := false
		if d != nil {
			_, attached = t.attached[d.PCIAddress]
		}
		switch {
		case d == nil:
			f.remove(k, "the device left its pool")
		case file.written.After(since):
			// Allocated while the scan ran: its registry may predate the pod.
		case attached:
			file.attached = true
		case file.attached:
			f.remove(k, "the pod released the device")
		}
	}
}

// adopt records the files a previous run left for the tree's devices,
// looking once for each device new in the tree (at the first scan, every
// one; later, those whose PF became ready or whose pool is new).
func (f *devInfoFiles) adopt(t *Tree) {
	looked := make(map[devInfoKey]bool, len(f.looked))
	for res, pd := range t.Pools {
		if !writesDevInfo(&pd.Pool) {
			continue
		}
		for i := range pd.Devices {
			d := &pd.Devices[i]
			k := devInfoKey{res, d.ID}
			looked[k] = true
			if f.looked[k] || f.files[k] != nil {
				continue
			}
			if _, err := os.Stat(f.path(res, d.ID)); err != nil {
				continue
			}
			_, att := t.attached[d.PCIAddress]
			f.files[k] = &devInfoFile{attached: att}
		}
	}
	f.looked = looked
}

// remove deletes one file and forgets it; it keeps it on an error other
// than the file being gone, to try again at the next scan.
func (f *devInfoFiles) remove(k devInfoKey, why string) {
	p := f.path(k.resource, k.id)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		f.log.Error(err, "cannot remove a device-info file; retrying at the next scan", "file", p)
		return
	}
	delete(f.files, k)
	f.log.V(1).Info("removed device-info file", "file", p, "reason", why)
}
