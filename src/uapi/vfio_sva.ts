/**
 * Shared Virtual Addressing for type1 containers, from the seed series: VFIO_IOMMU_BIND and
 * VFIO_IOMMU_UNBIND bind a process address space to every device of the container under one
 * PASID. Never merged upstream, so not in 6.12's linux/vfio.h (and not in vfioAbi, which gcc
 * checks against that header); C programs declare these themselves.
 */

import { _IO } from './ioctl.js';
import { flex, s32, struct, u32, u8 } from './schema.js';
import { VFIO_BASE, VFIO_TYPE } from './vfio.js';

export const vfio_iommu_type1_bind = struct('vfio_iommu_type1_bind', {
  argsz: u32,
  flags: u32,
  data: flex(u8),
});
/** vfio_iommu_type1_bind.flags: data holds a vfio_iommu_type1_bind_process. */
export const VFIO_IOMMU_BIND_PROCESS = 1 << 0;
export const vfio_iommu_type1_bind_process = struct('vfio_iommu_type1_bind_process', {
  flags: u32,
  pasid: u32,
  pid: s32,
});
/** vfio_iommu_type1_bind_process.flags: bind the process `pid`, not the caller. */
export const VFIO_IOMMU_BIND_PID = 1 << 0;
export const VFIO_IOMMU_BIND = _IO(VFIO_TYPE, VFIO_BASE + 22);
export const VFIO_IOMMU_UNBIND = _IO(VFIO_TYPE, VFIO_BASE + 23);
