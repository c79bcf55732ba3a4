package deviceplugin

import (
	"strings"
)

// envName is the variable a pool's allocation is announced in:
// PCIDEVICE_<PREFIX>_<NAME>, upper case, anything but letters and digits
// turned into '_' ("sluice.dev/rdma-a" -> PCIDEVICE_SLUICE_DEV_RDMA_A), as
// sriov-network-device-plugin names it.
func envName(resource string) string {
	var b strings.Builder
	b.Grow(len("PCIDEVICE_") + len(resource))
	b.WriteString("PCIDEVICE_")
	for _, c := range strings.ToUpper(resource) {
		if (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// fileName turns a resource name into a file name part
// ("sluice.dev/rdma_a" -> "sluice.dev_rdma_a").
func fileName(resource string) string {
	return strings.ReplaceAll(resource, "/", "_")
}

// socketName is a pool's socket in the kubelet's device-plugins directory.
func socketName(resource string) string {
	return "sluice-" + fileName(resource) + ".sock"
}
