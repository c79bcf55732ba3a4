package controllers

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// The device plugin writes each allocated VF's device-info file where
// Multus reads it: the host's directory, mounted at the same path, as
// sriov-network-device-plugin's DaemonSet mounts it.
func TestNodeDaemonSetMountsDeviceInfoDir(t *testing.T) {
	const dir = "/var/run/k8s.cni.cncf.io/devinfo/dp"
	ds := nodeDaemonSet(NodeDaemonSetOptions{Namespace: "ns", Image: "img", MaxUnavailable: 1, ServiceAccount: "sa"})
	pod := ds.Spec.Template.Spec
	host := map[string]string{}
	for _, v := range pod.Volumes {
		if v.HostPath != nil && v.HostPath.Path != nil {
			host[*v.Name] = *v.HostPath.Path
			if *v.HostPath.Path == dir && (v.HostPath.Type == nil || *v.HostPath.Type != corev1.HostPathDirectoryOrCreate) {
				t.Errorf("%s volume type %v, want DirectoryOrCreate", dir, v.HostPath.Type)
			}
		}
	}
	for _, m := range pod.Containers[0].VolumeMounts {
		if host[*m.Name] == dir && *m.MountPath == dir {
			return
		}
	}
	t.Errorf("host %s not mounted at the same path into the agent (volumes %v)", dir, host)
}
