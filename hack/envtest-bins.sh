#!/usr/bin/env bash
# Provides kube-apiserver and etcd for envtest without downloading release
# archives: both are built from source through the Go module proxy and cached
# by version outside the repository. Prints the directory to use as
# KUBEBUILDER_ASSETS on stdout (everything else goes to stderr).
# ENVTEST_KUBECTL=1 builds kubectl too; KUBE_CMDS="kubelet kube-proxy ..."
# builds those commands of k8s.io/kubernetes/cmd as well, at the same version
# and in the same module (hack/cluster-bins.sh uses it for the real node).
#
# Idempotent: a second run with the binaries in the cache only prints the path.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.1}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
CACHE_ROOT="${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}"
ASSETS="$CACHE_ROOT/envtest/k8s-${KUBE_VERSION}-etcd-${ETCD_VERSION}"

log() { echo "envtest-bins: $*" >&2; }

cmds=(kube-apiserver ${KUBE_CMDS:-})
[[ "${ENVTEST_KUBECTL:-0}" == 1 ]] && cmds+=(kubectl)
have_all() {
  [[ -x "$ASSETS/etcd" ]] || return 1
  local c
  for c in "${cmds[@]}"; do [[ -x "$ASSETS/$c" ]] || return 1; done
}
if have_all; then
  echo "$ASSETS"
  exit 0
fi

mkdir -p "$ASSETS"
work="$CACHE_ROOT/envtest/build"
mkdir -p "$work"
# Building must not pick up the project's go.work or flags.
export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0
# -trimpath and CGO_ENABLED=0 as in the Makefile: packages both builds
# share (k8s.io/api, apimachinery, client-go at v0.37.1) compile once.
export GOFLAGS="-buildvcs=false -trimpath -mod=mod"

build_kube() {
  local dir="$work/kube-$KUBE_VERSION"
  mkdir -p "$dir"
  log "building ${cmds[*]} $KUBE_VERSION from the module proxy (cold: ~6 min on 2 cores for kube-apiserver)"
  ( cd "$dir"
    go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" >/dev/null
    local kmod
    kmod="$(go env GOMODCACHE)/k8s.io/kubernetes@$KUBE_VERSION/go.mod"
    local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
    local staging="v0.${minor}.${KUBE_VERSION##*.}"
    {
      echo "module envtest-bins"
      echo
      echo "go 1.26.0"
      echo
      echo "require k8s.io/kubernetes $KUBE_VERSION"
      echo
      echo "replace ("
      # Every staging module required at v0.0.0, except the samples the proxy refuses.
      grep -E '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0(\s|$)' "$kmod" | awk '{print $1}' \
        | grep -vE 'sample-(cli-plugin|controller)$' | sort -u \
        | while read -r m; do echo "	$m => $m $staging"; done
      echo ")"
    } > go.mod
    local ld="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
    local c
    for c in "${cmds[@]}"; do
      [[ -x "$ASSETS/$c" ]] && continue
      go build -ldflags "$ld" -o "$ASSETS/$c.tmp" "k8s.io/kubernetes/cmd/$c"
      mv "$ASSETS/$c.tmp" "$ASSETS/$c"
    done
  )
}

build_etcd() {
  local dir="$work/etcd-$ETCD_VERSION"
  mkdir -p "$dir"
  log "building etcd $ETCD_VERSION from the module proxy"
  ( cd "$dir"
    cat > go.mod <<MOD
module etcd-bin

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
    cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
    go mod tidy >&2
    go build -ldflags "-s -w" -o "$ASSETS/etcd.tmp" .
  )
  mv "$ASSETS/etcd.tmp" "$ASSETS/etcd"
}

[[ -x "$ASSETS/etcd" ]] || build_etcd
have_all || build_kube
log "ready in $ASSETS"
echo "$ASSETS"
