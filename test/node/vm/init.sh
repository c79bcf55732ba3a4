#!/bin/busybox sh
# Stage 1 of the sluice emulated node, run by busybox from the initrd as
# PID 1: load the 9p and overlay modules, mount the host's root (shared
# read-only by QEMU as "hostroot") under a tmpfs overlay so the guest can
# write anywhere without touching the host, then switch_root into it and run
# stage 2 with the host's own shell. switch_root (not chroot) from PID 1 makes
# the kernel's module auto-loading use the host's /sbin/modprobe and
# /lib/modules.
/bin/busybox --install -s /bin
export PATH=/bin

die() {
	echo "sluice-node: stage1: $*"
	echo "SLUICE_NODE_EXIT=125"
	poweroff -f
	echo o >/proc/sysrq-trigger
	sleep 10
}

mount -t proc proc /proc || die "mount /proc"
mount -t sysfs sysfs /sys || die "mount /sys"
mount -t devtmpfs devtmpfs /dev || die "mount /dev"
for m in $(cat /modules/order); do
	insmod "/modules/$m" || die "insmod $m"
done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /lower ||
	die "mount the host root over 9p (QEMU -virtfs mount_tag=hostroot)"
mount -t tmpfs -o mode=0755 tmpfs /rw || die "mount tmpfs for the overlay"
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot ||
	die "mount the overlay root"
mkdir -p /newroot/.sluice-node
cp /stage2 /newroot/.sluice-node/init || die "copy stage 2"
umount /proc /sys /dev
exec switch_root /newroot /bin/sh /.sluice-node/init
die "switch_root failed"
