package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluice-net/sluice/test/testenv"
)

// Multus runs as its thick plugin, the way its upstream DaemonSet
// (deployments/multus-daemonset-thick.yml of multus-cni v4.2.3) installs it:
// a privileged host-network pod per node runs multus-daemon, whose
// informers hold the node's pods and the NetworkAttachmentDefinitions;
// its init container copies multus-shim onto the node, and the daemon
// writes the node's CNI configuration (00-multus.conf, type multus-shim)
// from the primary network's (10-pods.conflist). The runtime calls the
// shim, which hands the request to the daemon over /run/multus; the daemon
// calls the delegates (bridge, sluice-cni) in the node's root through
// chroot.
//
// The thin plugin this replaces started a 48 MB binary per CNI call that
// read the pod and its networks from the API server with 250 ms deadlines:
// on this emulated node, busy, half of the sandbox set-ups failed on
// "error waiting for pod: context deadline exceeded" and waited for the
// kubelet's retry.

// MultusImage is the Multus image the cluster builds from the binaries of
// hack/cluster-bins.sh, at the upstream image's paths.
const MultusImage = "ghcr.io/k8snetworkplumbingwg/multus-cni:v4.2.3-thick"

const multusBinDir = "/usr/src/multus-cni/bin"

// multusImageArgs are hack/image's arguments for the Multus image.
func multusImageArgs(runtimeBin string) []string {
	// -passwd: the daemon checks that it runs as root by user name.
	// /var/run -> /run as in a distribution's image: the daemon checks the
	// pod's netns path (/var/run/netns/...) in its own mount namespace.
	args := []string{"-name", MultusImage, "-entrypoint", multusBinDir + "/multus-daemon", "-user", "0:0", "-passwd",
		"-symlink", "/var/run=/run"}
	for _, b := range []string{"multus-daemon", "multus-shim", "install_multus", "passthru"} {
		args = append(args, "-add", multusBinDir+"/"+b+"="+filepath.Join(runtimeBin, b))
	}
	return args
}

// multusManifests are the upstream thick DaemonSet's objects, with the
// image built here, IfNotPresent, and requests without limits (its 50Mi
// limit is for nodes that are not emulated).
const multusManifests = `apiVersion: v1
kind: ServiceAccount
metadata:
  name: multus
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: multus
rules:
- apiGroups: ["k8s.cni.cncf.io"]
  resources: ["*"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["pods", "pods/status"]
  verbs: ["get", "list", "watch", "update", "patch"]
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch", "update"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: multus
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: multus
subjects:
- kind: ServiceAccount
  name: multus
  namespace: kube-system
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: multus-daemon-config
  namespace: kube-system
data:
  daemon-config.json: |
    {
      "chrootDir": "/hostroot",
      "cniVersion": "1.0.0",
      "logLevel": "error",
      "logToStderr": true,
      "cniConfigDir": "/host/etc/cni/net.d",
      "multusAutoconfigDir": "/host/etc/cni/net.d",
      "multusConfigFile": "auto",
      "socketDir": "/host/run/multus/"
    }
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-multus-ds
  namespace: kube-system
  labels: {app: multus}
spec:
  selector:
    matchLabels: {name: multus}
  updateStrategy: {type: RollingUpdate}
  template:
    metadata:
      labels: {app: multus, name: multus}
    spec:
      hostNetwork: true
      hostPID: true
      tolerations:
      - {operator: Exists, effect: NoSchedule}
      - {operator: Exists, effect: NoExecute}
      serviceAccountName: multus
      terminationGracePeriodSeconds: 10
      initContainers:
      - name: install-multus-binary
        image: ` + MultusImage + `
        imagePullPolicy: IfNotPresent
        command: ["` + multusBinDir + `/install_multus", "-d", "/host/opt/cni/bin", "-t", "thick"]
        resources: {requests: {cpu: 10m, memory: 15Mi}}
        securityContext: {privileged: true}
        terminationMessagePolicy: FallbackToLogsOnError
        volumeMounts:
        - {name: cnibin, mountPath: /host/opt/cni/bin, mountPropagation: Bidirectional}
      containers:
      - name: kube-multus
        image: ` + MultusImage + `
        imagePullPolicy: IfNotPresent
        command: ["` + multusBinDir + `/multus-daemon"]
        resources: {requests: {cpu: 50m, memory: 50Mi}}
        securityContext: {privileged: true}
        terminationMessagePolicy: FallbackToLogsOnError
        env:
        - name: MULTUS_NODE_NAME
          valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
        volumeMounts:
        - {name: cni, mountPath: /host/etc/cni/net.d}
        - {name: cnibin, mountPath: /opt/cni/bin}
        - {name: host-run, mountPath: /host/run}
        - {name: host-var-lib-cni-multus, mountPath: /var/lib/cni/multus}
        - {name: host-var-lib-kubelet, mountPath: /var/lib/kubelet, mountPropagation: HostToContainer}
        - {name: host-run-k8s-cni-cncf-io, mountPath: /run/k8s.cni.cncf.io}
        - {name: host-run-netns, mountPath: /run/netns, mountPropagation: HostToContainer}
        - {name: multus-daemon-config, mountPath: /etc/cni/net.d/multus.d, readOnly: true}
        - {name: hostroot, mountPath: /hostroot, mountPropagation: HostToContainer}
        - {name: multus-conf-dir, mountPath: /etc/cni/multus/net.d}
      volumes:
      - {name: cni, hostPath: {path: /etc/cni/net.d}}
      - {name: cnibin, hostPath: {path: /opt/cni/bin}}
      - {name: hostroot, hostPath: {path: /}}
      - name: multus-daemon-config
        configMap:
          name: multus-daemon-config
          items: [{key: daemon-config.json, path: daemon-config.json}]
      - {name: host-run, hostPath: {path: /run}}
      - {name: host-var-lib-cni-multus, hostPath: {path: /var/lib/cni/multus}}
      - {name: host-var-lib-kubelet, hostPath: {path: /var/lib/kubelet}}
      - {name: host-run-k8s-cni-cncf-io, hostPath: {path: /run/k8s.cni.cncf.io}}
      - {name: host-run-netns, hostPath: {path: /run/netns/}}
      - {name: multus-conf-dir, hostPath: {path: /etc/cni/multus/net.d}}
`

// installMultus does the cluster side of installing Multus: the
// NetworkAttachmentDefinition CRD, and the thick plugin's service
// account, RBAC, configuration and DaemonSet. Its pod starts when the node
// registers.
func (c *Cluster) installMultus(ctx context.Context) error {
	crd, err := testenv.NADCRDPath()
	if err != nil {
		return err
	}
	if _, err := c.Run(ctx, "apply", "-f", crd); err != nil {
		return fmt.Errorf("NetworkAttachmentDefinition CRD: %w", err)
	}
	f := filepath.Join(c.cfg.Dir, "multus.yaml")
	if err := os.WriteFile(f, []byte(multusManifests), 0o644); err != nil {
		return err
	}
	if _, err := c.Run(ctx, "apply", "-f", f); err != nil {
		return fmt.Errorf("Multus DaemonSet: %w", err)
	}
	return nil
}

// waitMultus waits until Multus has written the node's CNI configuration
// and its daemon's socket is up: from then on, pods get their networks.
func (c *Cluster) waitMultus(ctx context.Context, timeout time.Duration) error {
	return Poll(ctx, timeout, time.Second, "Multus's daemon up and 00-multus.conf written", func() (bool, error) {
		out, err := c.Node.Sh(ctx, "cat /etc/cni/net.d/00-multus.conf 2>&1; test -S /run/multus/multus.sock && echo socket-up")
		return err == nil && strings.Contains(out, `"multus-shim"`) && strings.Contains(out, "socket-up"),
			fmt.Errorf("%v: %s", err, out)
	})
}
