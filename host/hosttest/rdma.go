package hosttest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

type fakeRDMA struct {
	name  string
	dir   string // the device's own sysfs dir
	chars []string
	links []string // class symlinks and /dev files to remove with it
}

// addPCIRDMA gives a PCI function an mlx5-style RDMA device.
func (n *Node) addPCIRDMA(d *fakeDev, linkType string) {
	name := fmt.Sprintf("mlx5_%d", n.nextMlx)
	n.nextMlx++
	r := n.addRDMA(name, filepath.Join(d.dir, "infiniband", name), d.dir, d.netdev, linkType)
	must(os.Symlink("../../../"+d.addr, filepath.Join(r.dir, "device")))
	d.rdma = name
}

// AddRxe adds a soft-RoCE device on a netdev, as `rdma link add NAME type
// rxe netdev NETDEV` does: a virtual device whose "parent" names the netdev.
func (n *Node) AddRxe(name, netdev string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.links[netdev] == nil {
		panic("hosttest: no netdev " + netdev)
	}
	virt := filepath.Join(n.Root, "sys/devices/virtual")
	r := n.addRDMA(name, filepath.Join(virt, "infiniband", name), virt, netdev, "eth")
	must(os.WriteFile(filepath.Join(r.dir, "parent"), []byte(netdev+"\n"), 0o444))
}

// RemoveRDMA removes an RDMA device (a driver reset, rdma link delete).
func (n *Node) RemoveRDMA(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.removeRDMA(name)
}

func (n *Node) addRDMA(name, dir, parentDir, netdev, linkType string) *fakeRDMA {
	layer := "Ethernet"
	if linkType == "ib" {
		layer = "InfiniBand"
	}
	port := filepath.Join(dir, "ports", "1")
	must(os.MkdirAll(filepath.Join(port, "gid_attrs", "ndevs"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "node_guid"), []byte(fmt.Sprintf("0000:0000:0000:%04x\n", n.nextUverbs)), 0o444))
	must(os.WriteFile(filepath.Join(port, "state"), []byte("4: ACTIVE\n"), 0o444))
	must(os.WriteFile(filepath.Join(port, "link_layer"), []byte(layer+"\n"), 0o444))
	if netdev != "" {
		must(os.WriteFile(filepath.Join(port, "gid_attrs", "ndevs", "0"), []byte(netdev+"\n"), 0o444))
	}
	r := &fakeRDMA{name: name, dir: dir}
	r.links = append(r.links, n.classLink("infiniband", name, dir))

	k := n.nextUverbs
	n.nextUverbs++
	chars := []string{"uverbs" + strconv.Itoa(k)}
	if linkType == "ib" {
		chars = append(chars, "umad"+strconv.Itoa(k), "issm"+strconv.Itoa(k))
	}
	must(os.MkdirAll(filepath.Join(n.Root, "dev", "infiniband"), 0o755))
	if _, err := os.Stat(filepath.Join(n.Root, "dev/infiniband/rdma_cm")); err != nil {
		must(os.WriteFile(filepath.Join(n.Root, "dev/infiniband/rdma_cm"), nil, 0o666))
	}
	for _, c := range chars {
		class := "infiniband_mad"
		if strings.HasPrefix(c, "uverbs") {
			class = "infiniband_verbs"
		}
		cdir := filepath.Join(parentDir, class, c)
		must(os.MkdirAll(cdir, 0o755))
		must(os.WriteFile(filepath.Join(cdir, "ibdev"), []byte(name+"\n"), 0o444))
		r.links = append(r.links, n.classLink(class, c, cdir), cdir)
		devf := filepath.Join(n.Root, "dev/infiniband", c)
		must(os.WriteFile(devf, nil, 0o666))
		r.links = append(r.links, devf)
		r.chars = append(r.chars, "/dev/infiniband/"+c)
	}
	n.rdma[name] = r
	return r
}

// classLink creates /sys/class/<class>/<name> -> target and returns its path.
func (n *Node) classLink(class, name, target string) string {
	cdir := filepath.Join(n.Root, "sys/class", class)
	must(os.MkdirAll(cdir, 0o755))
	rel, err := filepath.Rel(cdir, target)
	must(err)
	l := filepath.Join(cdir, name)
	must(os.Symlink(rel, l))
	return l
}

func (n *Node) removeRDMA(name string) {
	r := n.rdma[name]
	if r == nil {
		return
	}
	for _, l := range r.links {
		_ = os.RemoveAll(l)
	}
	_ = os.RemoveAll(r.dir)
	delete(n.rdma, name)
	for _, d := range n.devs {
		if d.rdma == name {
			d.rdma = ""
		}
	}
}

// RDMADevice is the RDMA device of a PCI function, empty if none.
func (n *Node) RDMADevice(addr string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if d := n.devs[addr]; d != nil {
		return d.rdma
	}
	return ""
}
