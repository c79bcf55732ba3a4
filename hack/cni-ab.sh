#!/usr/bin/env bash
# Compares sluice-cni builds of git revisions on one igb VF of the emulated
# node, inside one boot (hack/cni-ab/main.go says why and how):
#
#   hack/cni-ab.sh [-n PAIRS] REV [REV ...]     e.g. hack/cni-ab.sh HEAD~1 HEAD HEAD~1 HEAD
#
# REV is a git revision, or . for the working tree. Naming a revision twice
# measures two copies of one build: the run's own noise. The configuration
# is the emulated-node benchmark's NoIPAM one (vlan 100, spoofchk off,
# trust on). Builds, the guest script and the output stay in _out/cni-ab/.
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=40
if [[ ${1:-} == -n ]]; then pairs=$2; shift 2; fi
(( $# > 0 )) || { echo "usage: hack/cni-ab.sh [-n PAIRS] REV [REV ...]" >&2; exit 2; }
export GOTOOLCHAIN=local CGO_ENABLED=0
stage=$PWD/_out/cni-ab/$(date +%Y%m%d-%H%M%S)
mkdir -p "$stage"
bins=()
i=0
for rev in "$@"; do
  if [[ $rev == . ]]; then
    src=$PWD name=$i-worktree
  else
    id=$(git rev-parse --short "$rev^{commit}")
    src=$stage/src-$id name=$i-$id
    if [[ ! -d $src ]]; then
      mkdir -p "$src"
      git archive "$id" | tar -x -C "$src"
    fi
  fi
  (cd "$src" && go build -trimpath -ldflags '-s -w' -o "$stage/$name/sluice-cni" ./cni)
  bins+=("$name")
  i=$((i + 1))
done
go build -o "$stage/cni-ab" ./hack/cni-ab
cat > "$stage/guest.sh" <<GUEST
set -e
modprobe igbvf 2>/dev/null || true
pf=\$(for d in /sys/class/net/*; do [ -e \$d/device/sriov_totalvfs ] && basename \$d && break; done)
ip link set "\$pf" up
echo 1 > /sys/class/net/\$pf/device/sriov_numvfs
vf=\$(basename "\$(readlink /sys/class/net/\$pf/device/virtfn0)")
for i in \$(seq 50); do [ -e /sys/bus/pci/devices/\$vf/net ] && break; sleep 0.2; done
ip netns add abpod
mkdir -p /run/ab
for b in ${bins[*]}; do mkdir -p /run/ab/\$b; cp $stage/\$b/sluice-cni /run/ab/\$b/; done
cat > /run/ab/conf.json <<JSON
{"cniVersion":"1.1.0","name":"ab-net","type":"sluice-cni","deviceID":"\$vf","cacheDir":"/run/ab/cache","attachmentsDir":"/run/ab/attachments","lockDir":"/run/ab/locks","statsDir":"/run/ab/stats","vlan":100,"spoofchk":"off","trust":"on"}
JSON
echo "VF \$vf of \$pf, kernel \$(uname -r), $pairs ADD+DEL pairs per build"
$stage/cni-ab -n $pairs -netns /var/run/netns/abpod -conf /run/ab/conf.json \$(for b in ${bins[*]}; do echo /run/ab/\$b/sluice-cni; done)
GUEST
echo "cni-ab: builds ${bins[*]} in $stage"
hack/node-run.sh ${CNI_AB_NODE_FLAGS:-} -f "$stage/guest.sh" 2>&1 | tee "$stage/output.txt" | grep -vE '^\s*$|\[[ 0-9.]+\]|SeaBIOS|Booting'
