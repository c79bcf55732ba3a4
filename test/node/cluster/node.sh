# The real-cluster node's boot, run by the emulated node (test/node/vm) as
# its guest script: what a node image's systemd units do on a real node.
# The node's /var/lib and /var/log live on a disk image that persists
# across reboots; everything else is the host's root seen through an
# overlay in guest memory, as before.
#
# From the host (environment): CLUSTER_FILES (kubeconfigs, configs, image
# archives), CLUSTER_NODE_BIN (containerd, runc, CNI plugins, Multus),
# CLUSTER_KUBE_BIN (kubelet, kube-proxy), CLUSTER_NODE_IP, CLUSTER_EXEC_PORT,
# CLUSTER_POD_CIDR.
set -u
log() { echo "cluster-node: at $(cut -d" " -f1 /proc/uptime)s: $*"; }
logs="$SLUICE_NODE_RUNDIR/logs"
mkdir -p "$logs"
stopfile="$SLUICE_NODE_RUNDIR/stop"
rm -f "$stopfile"

modprobe -a virtio_blk ext4 overlay br_netfilter bridge veth nf_tables nft_chain_nat nft_ct nft_masq nft_nat \
	nft_compat nf_conntrack nf_nat xt_MASQUERADE xt_conntrack xt_comment xt_mark 2>&1 | head -5
i=0
while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
mkdir -p /mnt/node
mount -t ext4 /dev/vda /mnt/node || { log "cannot mount the node disk /dev/vda"; exit 1; }
for d in lib/kubelet lib/containerd lib/cni lib/sluice log; do
	mkdir -p "/mnt/node/$d" "/var/$d"
	mount --bind "/mnt/node/$d" "/var/$d"
done
mount --make-rshared /
boots=$(cat /mnt/node/boots 2>/dev/null || echo 0)
echo $((boots + 1)) >/mnt/node/boots
log "node disk mounted (boot $((boots + 1)))"

sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1 \
	fs.inotify.max_user_instances=1024 fs.inotify.max_user_watches=65536 kernel.panic=10

# The node image: runtime, CNI plugins, configuration. The binaries are
# linked, not copied: the host's root is shared with the page cache on
# (cache=loose), so only the pages a program runs are read, once. Copying
# them (300 MB) into the guest's memory took most of 17 s at every boot.
mkdir -p /usr/local/bin /opt/cni/bin /etc/cni/net.d/multus.d /etc/kubernetes /etc/containerd
for b in "$CLUSTER_NODE_BIN/containerd" "$CLUSTER_NODE_BIN/containerd-shim-runc-v2" "$CLUSTER_NODE_BIN/ctr" \
	"$CLUSTER_NODE_BIN/runc" "$CLUSTER_KUBE_BIN/kubelet" "$CLUSTER_KUBE_BIN/kube-proxy"; do
	ln -sf "$b" /usr/local/bin/
done
for p in bridge loopback portmap multus; do ln -sf "$CLUSTER_NODE_BIN/$p" /opt/cni/bin/; done
# host-local is copied: the agent's DRA driver runs it from its container,
# which mounts /opt/cni/bin but not the link's target.
cp "$CLUSTER_NODE_BIN/host-local" /opt/cni/bin/host-local.tmp && mv /opt/cni/bin/host-local.tmp /opt/cni/bin/host-local
cp "$CLUSTER_FILES/ca.crt" "$CLUSTER_FILES/kubelet.kubeconfig" "$CLUSTER_FILES/kube-proxy.kubeconfig" \
	"$CLUSTER_FILES/kubelet.yaml" "$CLUSTER_FILES/kube-proxy.yaml" /etc/kubernetes/
cp "$CLUSTER_FILES/00-multus.conf" /etc/cni/net.d/
cp "$CLUSTER_FILES/multus.kubeconfig" /etc/cni/net.d/multus.d/
cp "$CLUSTER_FILES/containerd.toml" /etc/containerd/config.toml
log "node image in place"

# supervise NAME CMD...: run CMD again a second after it exits, until the
# node stops: systemd's Restart=always.
supervise() {
	name=$1
	shift
	(
		while [ ! -e "$stopfile" ]; do
			echo "=== start $(date +%T)" >>"$logs/$name.log"
			"$@" >>"$logs/$name.log" 2>&1
			echo "=== exit $? $(date +%T)" >>"$logs/$name.log"
			sleep 1
		done
	) &
}

"$CLUSTER_FILES/nodeexec" -listen ":$CLUSTER_EXEC_PORT" >>"$logs/nodeexec.log" 2>&1 &

# Pods' traffic to outside the pod network leaves with the node's address
# (node.go: why here and not in the bridge plugin).
nft -f - <<EOF
table ip sluice-node {
	chain postrouting {
		type nat hook postrouting priority srcnat;
		ip saddr $CLUSTER_POD_CIDR ip daddr != $CLUSTER_POD_CIDR masquerade
	}
}
EOF
supervise containerd containerd --config /etc/containerd/config.toml
i=0
while [ ! -S /run/containerd/containerd.sock ] && [ $i -lt 300 ]; do sleep 0.2; i=$((i + 1)); done
# The images persist in /var/lib/containerd like a real node's: imported
# once per archive, not again at every boot (an import costs 30 s or more
# under TCG).
for img in "$CLUSTER_FILES"/images/*.tar; do
	mark="/var/lib/containerd/.imported-$(basename "$img")-$(stat -c %s "$img")"
	[ -e "$mark" ] && continue
	if ctr -n k8s.io images import --local "$img" >>"$logs/images.log" 2>&1; then
		touch "$mark"
	else
		log "import $img failed"
	fi
done
log "containerd up, images imported"
supervise kubelet kubelet --config /etc/kubernetes/kubelet.yaml --kubeconfig /etc/kubernetes/kubelet.kubeconfig \
	--hostname-override sluice-node --node-ip "$CLUSTER_NODE_IP" --v=2
supervise kube-proxy kube-proxy --config /etc/kubernetes/kube-proxy.yaml --v=1
log "kubelet and kube-proxy started"

while [ ! -e "$stopfile" ]; do sleep 0.5; done
log "stopping"
pkill -x kubelet
pkill -x kube-proxy
sleep 1
pkill -x containerd
pkill -f containerd-shim-runc-v2
sleep 1
sync
exit 0
