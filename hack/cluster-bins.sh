#!/usr/bin/env bash
# Provides every binary of the real-cluster node (test/cluster), built from
# source through the Go module proxy at pinned versions and cached by version
# outside the repository:
#
#   control plane (host): kube-apiserver, etcd, kube-scheduler,
#                         kube-controller-manager, kubectl
#   node (QEMU guest):    kubelet, kube-proxy, containerd (+ shim, ctr),
#                         runc, Multus (thin plugin), the reference CNI
#                         plugins bridge, host-local, loopback, portmap
#
# Prints two lines on stdout: the Kubernetes binaries' directory, then the
# node runtime's directory (everything else goes to stderr). Idempotent: with
# everything in the cache it only prints the paths.
set -euo pipefail
cd "$(dirname "$0")/.."

CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.4.2}"
RUNC_VERSION="${RUNC_VERSION:-v1.3.3}"
MULTUS_VERSION="${MULTUS_VERSION:-v4.2.3}"
CNI_PLUGINS_VERSION="${CNI_PLUGINS_VERSION:-v1.9.1}"
CACHE_ROOT="${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}"
NODE_BIN="$CACHE_ROOT/cluster/containerd-${CONTAINERD_VERSION}-runc-${RUNC_VERSION}-multus-${MULTUS_VERSION}-cni-${CNI_PLUGINS_VERSION}"
work="$CACHE_ROOT/cluster/build"

log() { echo "cluster-bins: $*" >&2; }

kube="$(KUBE_CMDS="kubelet kube-proxy kube-scheduler kube-controller-manager" ENVTEST_KUBECTL=1 hack/envtest-bins.sh)"

node_cmds=(containerd containerd-shim-runc-v2 ctr runc multus bridge host-local loopback portmap)
have_node() {
  local c
  for c in "${node_cmds[@]}"; do [[ -x "$NODE_BIN/$c" ]] || return 1; done
}
if have_node; then
  printf '%s\n%s\n' "$kube" "$NODE_BIN"
  exit 0
fi

# runc needs cgo and libseccomp (the kubelet asks for RuntimeDefault seccomp
# profiles); everything else is pure Go.
if ! dpkg-query -W -f='${Status}' libseccomp-dev 2>/dev/null | grep -q 'install ok installed'; then
  if [[ $(id -u) -ne 0 ]]; then
    log "runc needs libseccomp-dev: install it as root (apt-get install libseccomp-dev)"
    exit 1
  fi
  log "installing libseccomp-dev (runc's seccomp support)"
  apt=(apt-get -o DPkg::Lock::Timeout=600 -y -qq)
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends libseccomp-dev gcc libc6-dev pkg-config >&2 ||
    { "${apt[@]}" update >&2 && DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends libseccomp-dev gcc libc6-dev pkg-config >&2; }
fi

mkdir -p "$NODE_BIN" "$work"
export GOWORK=off GOTOOLCHAIN=local
export GOFLAGS="-buildvcs=false -trimpath -mod=mod"

# module DIR NAME REQUIRE...: a throwaway module requiring exactly these
# versions, so no version list is ever asked for.
module() {
  local dir="$1" name="$2"
  shift 2
  mkdir -p "$dir"
  {
    echo "module $name"
    echo
    echo "go 1.26.0"
    echo
    local r
    for r in "$@"; do echo "require $r"; done
  } > "$dir/go.mod"
}

build() { # build DIR OUT PKG [go build flags...]
  local dir="$1" out="$2" pkg="$3"
  shift 3
  [[ -x "$NODE_BIN/$out" ]] && return 0
  log "building $out ($pkg)"
  ( cd "$dir" && go build "$@" -o "$NODE_BIN/$out.tmp" "$pkg" )
  mv "$NODE_BIN/$out.tmp" "$NODE_BIN/$out"
}

# containerd 2.x: the daemon, the runc shim (required) and ctr.
d="$work/containerd-$CONTAINERD_VERSION"
module "$d" containerd-bins "github.com/containerd/containerd/v2 $CONTAINERD_VERSION"
for c in containerd containerd-shim-runc-v2 ctr; do
  CGO_ENABLED=0 build "$d" "$c" "github.com/containerd/containerd/v2/cmd/$c" \
    -tags "no_btrfs no_devmapper no_zfs urfave_cli_no_docs" \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION"
done

# runc in a module of its own: next to containerd, version selection picks a
# newer runtime-spec than runc compiles with.
d="$work/runc-$RUNC_VERSION"
module "$d" runc-bin "github.com/opencontainers/runc $RUNC_VERSION"
CGO_ENABLED=1 build "$d" runc github.com/opencontainers/runc -tags seccomp \
  -ldflags "-s -w -X main.version=${RUNC_VERSION#v}"

# Multus, the thin plugin: reads NetworkAttachmentDefinitions and the pod's
# networks annotation and calls the delegates (sluice-cni).
d="$work/multus-$MULTUS_VERSION"
module "$d" multus-bin "gopkg.in/k8snetworkplumbingwg/multus-cni.v4 $MULTUS_VERSION"
CGO_ENABLED=0 build "$d" multus gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/multus -ldflags "-s -w"

# The reference plugins: the cluster's primary pod network.
d="$work/cni-plugins-$CNI_PLUGINS_VERSION"
module "$d" cni-plugins-bins "github.com/containernetworking/plugins $CNI_PLUGINS_VERSION"
for c in bridge loopback; do
  CGO_ENABLED=0 build "$d" "$c" "github.com/containernetworking/plugins/plugins/main/$c" -ldflags "-s -w"
done
CGO_ENABLED=0 build "$d" host-local github.com/containernetworking/plugins/plugins/ipam/host-local -ldflags "-s -w"
CGO_ENABLED=0 build "$d" portmap github.com/containernetworking/plugins/plugins/meta/portmap -ldflags "-s -w"

have_node || { log "missing after build: ${node_cmds[*]} in $NODE_BIN"; exit 1; }
log "ready in $kube and $NODE_BIN"
printf '%s\n%s\n' "$kube" "$NODE_BIN"
