#!/usr/bin/env bash
# Boots the emulated sluice node (docs/emulated-node.md) and runs a shell
# script in it as root, streaming the serial console; exits with the
# script's status. For exploring what the guest kernel does by hand:
#
#   hack/node-run.sh [-pfs 2] [-iommu] [-keep] [-e KEY=VALUE] 'rdma link; ip -br link'
#   hack/node-run.sh -f script.sh
#
# Installs QEMU, the guest kernel and tools first when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -eq 0 ]]; then
  hack/node-deps.sh
fi
export GOTOOLCHAIN=local
exec go run ./test/node/noderun "$@"
