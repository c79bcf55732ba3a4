#!/bin/sh
# Stage 2 of the sluice emulated node, run as PID 1 by the host's /bin/sh in
# the guest's overlay root (the host's root, read-only underneath, writable in
# guest RAM): mount the kernel file systems and the writable run directory
# shared by the host, load the node's modules, set up lo, the management NIC
# and the igb PFs, run the host's guest script and power off. The exit code is
# printed as SLUICE_NODE_EXIT=<n> on the console and written to
# <rundir>/.exit-code.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TMPDIR=/tmp LANG=C.UTF-8 TERM=dumb

say() { echo "sluice-node: $*"; }
now() {
	read -r up _ </proc/uptime
	echo "$up"
}
finish() {
	trap - EXIT
	[ -n "${rundir:-}" ] && echo "$1" >"$rundir/.exit-code" 2>/dev/null
	sync
	echo "SLUICE_NODE_EXIT=$1"
	/bin/busybox poweroff -f >/dev/null 2>&1
	echo o >/proc/sysrq-trigger
	sleep 30
}
die() {
	say "stage2: $*"
	finish 125
}

# busybox (static) for the many small steps: every dynamically linked exec is
# slow under emulation.
bb=/bin/busybox
$bb mount -t proc proc /proc || die "mount /proc"
$bb mount -t sysfs sysfs /sys || die "mount /sys"
$bb mount -t devtmpfs devtmpfs /dev || die "mount /dev"
$bb mkdir -p /dev/pts /dev/shm /dev/mqueue
$bb mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
$bb mount -t tmpfs -o mode=1777 tmpfs /dev/shm
for l in fd:/proc/self/fd stdin:/proc/self/fd/0 stdout:/proc/self/fd/1 stderr:/proc/self/fd/2; do
	$bb ln -sf "${l#*:}" "/dev/${l%%:*}"
done
# The host's /tmp stays reachable under /.host-tmp for SLUICE_NODE_HOST_TMP_DIRS.
$bb mkdir -p /.host-tmp && $bb mount -o bind /tmp /.host-tmp || die "bind the host's /tmp to /.host-tmp"
$bb mount -t tmpfs -o mode=1777 tmpfs /tmp || die "mount /tmp"
$bb mount -t tmpfs -o mode=0755 tmpfs /run || die "mount /run"
$bb mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
$bb mount -t bpf bpf /sys/fs/bpf 2>/dev/null
echo sluice-node >/proc/sys/kernel/hostname
say "stage 2 at $(now)s"

rundir=
read -r cmdline </proc/cmdline
for arg in $cmdline; do
	case $arg in sluice.rundir=*) rundir=${arg#sluice.rundir=} ;; esac
done
[ -n "$rundir" ] || die "no sluice.rundir= on the kernel command line"
$bb mkdir -p "$rundir"
$bb mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 rundir "$rundir" ||
	die "mount the run directory over 9p (QEMU -virtfs mount_tag=rundir)"
. "$rundir/.node.env" || die "read $rundir/.node.env"
for d in $SLUICE_NODE_HOST_TMP_DIRS; do
	$bb mkdir -p "$d" && $bb mount -o bind "/.host-tmp/${d#/tmp/}" "$d" ||
		die "bind the host's $d into the guest's /tmp"
done

# A kernel fetched into the cache keeps its modules there: put them where
# modprobe and the kernel's module auto-loading look.
read -r kver </proc/sys/kernel/osrelease
if [ -n "${SLUICE_NODE_KERNEL_MODULES:-}" ] && [ "$SLUICE_NODE_KERNEL_MODULES" != "/lib/modules/$kver" ]; then
	$bb mkdir -p "/lib/modules/$kver" && $bb mount -o bind,ro "$SLUICE_NODE_KERNEL_MODULES" "/lib/modules/$kver" ||
		die "bind $SLUICE_NODE_KERNEL_MODULES to /lib/modules/$kver"
fi
if [ -n "$SLUICE_NODE_MODULES" ]; then
	modprobe -a $SLUICE_NODE_MODULES || die "modprobe -a $SLUICE_NODE_MODULES"
fi

# One "ip -batch" for lo, the management NIC (virtio-net, QEMU user
# networking: the host's loopback is reachable at 10.0.2.2) and the igb PFs
# (in PCI order, up with no address).
echo "link set lo up" >/run/net.ip
for dev in /sys/class/net/*; do
	[ -e "$dev/device/driver" ] || continue
	drv=$($bb readlink "$dev/device/driver")
	if [ "${drv##*/}" = virtio_net ]; then
		printf '%s\n' "link set ${dev##*/} name mgmt0" "addr add 10.0.2.15/24 dev mgmt0" \
			"link set mgmt0 up" "route add default via 10.0.2.2 dev mgmt0" >>/run/net.ip
		break
	fi
done
pfs=
pcis=
for d in /sys/bus/pci/drivers/igb/0000:*; do
	[ -d "$d/net" ] || continue
	for n in "$d"/net/*; do
		pfs="$pfs ${n##*/}"
		pcis="$pcis ${d##*/}"
		echo "link set ${n##*/} up" >>/run/net.ip
	done
done
[ -n "$pfs" ] || die "no igb PF netdev"
ip -batch /run/net.ip || die "ip -batch: $(cat /run/net.ip)"
export SLUICE_NODE_PFS="${pfs# }" SLUICE_NODE_PF_PCI="${pcis# }"
export SLUICE_NODE_MGMT=mgmt0 SLUICE_NODE_HOST_IP=10.0.2.2
# Bounded wait for the PFs' carrier so tests start on a link that is up.
i=0
while [ $i -lt 100 ]; do
	down=
	for p in $SLUICE_NODE_PFS; do
		c=0
		read -r c <"/sys/class/net/$p/carrier" 2>/dev/null
		[ "$c" = 1 ] || down="$down $p"
	done
	[ -z "$down" ] && break
	$bb usleep 100000
	i=$((i + 1))
done
[ -n "$down" ] && say "warning: no carrier on$down"

say "ready at $(now)s: kernel $kver, PFs [$SLUICE_NODE_PFS] at [$SLUICE_NODE_PF_PCI]"
cd "$rundir" || die "cd $rundir"
/bin/sh "$rundir/.guest.sh" </dev/null
code=$?
say "guest script exited $code at $(now)s"
finish $code
