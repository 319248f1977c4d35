#!/usr/bin/env bash
# ../shared/oracle/run.sh -v, but the guest has no IOMMU and boots with
# vfio.enable_unsafe_noiommu_mode=1: the edu device (0000:00:03.0) is bound to vfio-pci in a
# noiommu group (/dev/vfio/noiommu-0, no cdev). Same arguments as run.sh.
#   test/oracle/noiommu.sh /tmp/probe -- probe
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
oracle=${ORACLE_DIR:-$here/../../../shared/oracle}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# The run script resolves the kernel image next to itself: link it into the copy's directory.
ln -s "$(cd "$oracle" && pwd)/bzImage-6.12" "$tmp/bzImage-6.12"
sed -e 's/ -device intel-iommu,intremap=on,caching-mode=on//' \
    -e 's/append="$append intel_iommu=on"/append="$append vfio.enable_unsafe_noiommu_mode=1"/' \
    "$oracle/run.sh" > "$tmp/run.sh"
grep -q 'enable_unsafe_noiommu_mode=1' "$tmp/run.sh" && ! grep -q intel-iommu "$tmp/run.sh" \
  || { echo "noiommu.sh: $oracle/run.sh changed shape; update the edits" >&2; exit 2; }
bash "$tmp/run.sh" -v "$@"
