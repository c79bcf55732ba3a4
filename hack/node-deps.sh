#!/usr/bin/env bash
# Installs what the emulated SR-IOV node needs on a Debian 12 host: QEMU with
# the igb NIC and the backports kernel (igb/igbvf/rdma_rxe modules) from
# bookworm-backports, busybox for the guest's init, and the RDMA/network
# user-space the guest runs from the host's shared root (with nftables and
# iptables for the real-cluster node's kube-proxy and bridge plugin, gdb to
# stop the real agent inside a DRA Prepare).
#
# Idempotent: when everything is present it does nothing and exits 0.
set -euo pipefail

log() { echo "node-deps: $*" >&2; }

# make test runs two suites at once that both call this script: one
# installs, the other waits for it and then finds everything present.
lockdir=${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}
mkdir -p "$lockdir"
exec 9>"$lockdir/.node-deps.lock"
flock 9

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for p in busybox-static iproute2 iputils-ping rdma-core rdmacm-utils ibverbs-utils ibverbs-providers perftest kmod cpio nftables iptables procps e2fsprogs gdb; do
  have_pkg "$p" || need+=("$p")
done
qemu_ok() {
  command -v qemu-system-x86_64 >/dev/null && qemu-system-x86_64 -device help 2>/dev/null | grep -q '"igb"'
}
kernel_ok() { compgen -G '/lib/modules/*/kernel/drivers/infiniband/sw/rxe/rdma_rxe.ko*' >/dev/null; }

# The guest kernel: a Debian 7.x kernel extracted into the cache (nothing is
# installed into /boot or /lib/modules); on it soft-RoCE works between
# network namespaces. Its own script is idempotent and quiet when cached.
guest_kernel() { "$(dirname "${BASH_SOURCE[0]}")/guest-kernel.sh" >/dev/null; }

if [[ ${#need[@]} -eq 0 ]] && qemu_ok && kernel_ok; then
  guest_kernel
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  log "must run as root to install: ${need[*]} qemu-system-x86 linux-image-amd64 (bookworm-backports)"
  exit 1
fi

src=/etc/apt/sources.list.d/sluice-bookworm-backports.sources
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  uri=$(awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  uri=${uri:-http://deb.debian.org/debian}
  log "adding bookworm-backports from $uri"
  cat > "$src" <<SRC
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

export DEBIAN_FRONTEND=noninteractive
log "apt-get update"
apt-get update -qq >&2
if [[ ${#need[@]} -gt 0 ]]; then
  log "installing ${need[*]}"
  apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
if ! qemu_ok || ! kernel_ok; then
  log "installing qemu-system-x86 and linux-image-amd64 from bookworm-backports"
  # The kernel package's postinst wants an initramfs generator; the guest boots
  # from our own tiny initrd, so skip building one for the host.
  apt-get install -y -qq --no-install-recommends -t bookworm-backports \
    qemu-system-x86 linux-image-amd64 >&2
fi
qemu_ok || { log "qemu-system-x86_64 has no igb device after install"; exit 1; }
kernel_ok || { log "no rdma_rxe module under /lib/modules after install"; exit 1; }
guest_kernel
log "ready"
