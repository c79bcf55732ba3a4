package deviceplugin

import (
	"strings"
)

// envName is the variable a pool's allocation is announced in, named as
// sriov-network-device-plugin names it: PCIDEVICE_<PREFIX>_<NAME> in upper
// case with only '.' (and the '/' between prefix and name) turned into
// '_'; '-' and any other character stay ("sluice.dev/rdma-a" ->
// PCIDEVICE_SLUICE_DEV_RDMA-A), so a workload reads the same variable
// whichever plugin serves it.
func envName(resource string) string {
	return "PCIDEVICE_" + strings.ToUpper(strings.NewReplacer("/", "_", ".", "_").Replace(resource))
}

// shellEnvName is the name earlier sluice versions used: every character
// but letters and digits turned into '_' (PCIDEVICE_SLUICE_DEV_RDMA_A), one
// a shell can expand. Allocate sets it too when it differs from envName,
// which a shell cannot expand when the resource name has a '-'.
func shellEnvName(resource string) string {
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
