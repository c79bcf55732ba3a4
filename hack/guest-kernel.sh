#!/usr/bin/env bash
# Fetches the emulated node's guest kernel: a Debian 7.x kernel, whose
# soft-RoCE (rdma_rxe) carries RDMA between network namespaces (the 6.12
# backports kernel cannot; see docs/emulated-node.md). Its packages are
# downloaded with a separate apt configuration (the host's sources, lists
# and /boot are not touched) and extracted into
#   $SLUICE_CACHE/kernel/<version>/   (boot image: vmlinuz, modules: lib/modules/<version>)
# Pinned to GUEST_KERNEL; when the archive has dropped that version, the
# newest 7.x kernel of the suites below is taken instead, and said so.
# Idempotent: an extracted kernel is reused. Prints the kernel's directory.
set -euo pipefail

GUEST_KERNEL=${GUEST_KERNEL:-7.2.13+deb14-amd64}
SUITES=${GUEST_KERNEL_SUITES:-"sid trixie-backports"}
MIRROR=${GUEST_KERNEL_MIRROR:-$(awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
CACHE=${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}
root=$CACHE/kernel

log() { echo "guest-kernel: $*" >&2; }

ready() { [[ -f $root/$1/.complete ]]; }

if ready "$GUEST_KERNEL"; then
  echo "$root/$GUEST_KERNEL"
  exit 0
fi

# A separate apt tree: sources, lists and package cache all under the cache.
apt=$root/apt
mkdir -p "$apt/sources.list.d" "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/preferences.d"
: >"$apt/sources.list"
cat >"$apt/sources.list.d/guest-kernel.sources" <<SRC
Types: deb
URIs: $MIRROR
Suites: $SUITES
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
aptopts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=$apt/sources.list.d"
  -o "Dir::Etc::Preferences=$apt/preferences" -o "Dir::Etc::PreferencesParts=$apt/preferences.d"
  -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o "Dir::State::status=/dev/null"
  -o "APT::Architecture=amd64" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root" -o "Acquire::Retries=3")

log "reading $SUITES from $MIRROR (own apt state under $apt)"
apt-get "${aptopts[@]}" -qq update >&2

have() { apt-cache "${aptopts[@]}" show "linux-image-$1" >/dev/null 2>&1; }
ver=$GUEST_KERNEL
if ! have "$ver"; then
  newest=$(apt-cache "${aptopts[@]}" pkgnames linux-image-7. 2>/dev/null |
    grep -E '^linux-image-7\.[0-9]+\.[0-9]+\+deb[0-9]+-amd64$' | sed 's/^linux-image-//' | sort -V | tail -1)
  [[ -n $newest ]] || { log "no linux-image-7.x-amd64 in $SUITES"; exit 1; }
  log "$GUEST_KERNEL is no longer in the archive; taking the newest 7.x kernel: $newest"
  ver=$newest
  if ready "$ver"; then
    echo "$root/$ver"
    exit 0
  fi
fi

dl=$root/debs/$ver
mkdir -p "$dl"
# The image package holds little since trixie: the image and modules are in
# linux-binary and linux-modules, and the image depends on linux-base.
pkgs=()
for p in "linux-image-$ver" "linux-binary-$ver" "linux-modules-$ver"; do
  if apt-cache "${aptopts[@]}" show "$p" >/dev/null 2>&1; then pkgs+=("$p"); fi
done
log "downloading ${pkgs[*]}"
(cd "$dl" && apt-get "${aptopts[@]}" -qq download "${pkgs[@]}" >&2)

out=$root/$ver
tmp=$out.tmp
rm -rf "$tmp"
mkdir -p "$tmp"
for d in "$dl"/*.deb; do dpkg-deb -x "$d" "$tmp"; done
img=
for c in "$tmp/usr/lib/modules/$ver/vmlinuz" "$tmp/boot/vmlinuz-$ver"; do
  [[ -f $c ]] && img=$c && break
done
[[ -n $img ]] || { log "no kernel image in ${pkgs[*]}"; exit 1; }
mods=$tmp/usr/lib/modules/$ver
[[ -d $mods ]] || mods=$tmp/lib/modules/$ver
compgen -G "$mods/kernel/drivers/infiniband/sw/rxe/rdma_rxe.ko*" >/dev/null ||
  { log "$ver has no rdma_rxe module"; exit 1; }
mv "$img" "$tmp/vmlinuz"
mkdir -p "$tmp/lib/modules"
[[ $mods == "$tmp/lib/modules/$ver" ]] || mv "$mods" "$tmp/lib/modules/$ver"
depmod -b "$tmp" "$ver"
rm -rf "$tmp/usr/share/doc" "$dl"
echo "$ver" >"$tmp/.complete"
rm -rf "$out"
mv "$tmp" "$out"
log "kernel $ver ready in $out"
echo "$out"
