/**
 * HW page table ioctls (hw_pagetable.c) and IOMMU_GET_HW_INFO (device.c), as far as they go before
 * a device exists: every argument check in the kernel's order, then the device or HWPT lookup.
 * Nothing can create DEVICE or HWPT objects until the IOMMU layer lands, so today those lookups
 * end each call with ENOENT, as they would on a kernel with no bound device.
 */

import { Errno, KernelError, fail } from '../../errno.js';
import {
  IOMMU_HWPT_DATA_NONE,
  IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
  IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
  type iommu_hw_info,
  type iommu_hwpt_alloc,
  type iommu_hwpt_get_dirty_bitmap,
  type iommu_hwpt_invalidate,
  type iommu_hwpt_set_dirty_tracking,
} from '../../uapi/iommufd.js';
import { PAGE_SIZE } from '../mm/physmem.js';
import type { Process } from '../process.js';
import { IOMMUFD_OBJ, type IommufdCtx, type IommufdObject } from './object.js';
import type { Ucmd } from './ucmd.js';

const IOMMU_HWPT_INVALIDATE_ENTRY_NUM_MAX = 1 << 19;

/** iommufd_get_device. */
function getDevice(u: { ictx: IommufdCtx; task: Process }, id: number): IommufdObject {
  return u.ictx.get(u.task, id, IOMMUFD_OBJ.DEVICE);
}

export function hwptAlloc(u: Ucmd<typeof iommu_hwpt_alloc>): number {
  const c = u.cmd;
  if (c.__reserved) fail(Errno.EOPNOTSUPP, 'iommu_hwpt_alloc.__reserved must be 0');
  if (c.data_type === IOMMU_HWPT_DATA_NONE && c.data_len) fail(Errno.EINVAL, 'data_type NONE takes no data, but data_len is non-zero');
  if (c.data_type !== IOMMU_HWPT_DATA_NONE && !c.data_len) fail(Errno.EINVAL, `data_type ${c.data_type} needs data, but data_len is 0`);
  getDevice(u, c.dev_id);
  return fail(Errno.ENOENT, `device ${c.dev_id} cannot be bound on this machine yet`);
}

export function getHwInfo(u: Ucmd<typeof iommu_hw_info>): number {
  const c = u.cmd;
  if (c.flags) fail(Errno.EOPNOTSUPP, `iommu_hw_info.flags must be 0 on 6.12, got 0x${c.flags.toString(16)}`);
  if (c.__reserved.some((b) => b !== 0)) fail(Errno.EOPNOTSUPP, 'iommu_hw_info.__reserved must be 0');
  getDevice(u, c.dev_id);
  return fail(Errno.ENOENT, `device ${c.dev_id} cannot be bound on this machine yet`);
}

export function hwptSetDirtyTracking(u: Ucmd<typeof iommu_hwpt_set_dirty_tracking>): number {
  const c = u.cmd;
  if (c.flags & ~IOMMU_HWPT_DIRTY_TRACKING_ENABLE) fail(Errno.EOPNOTSUPP, `iommu_hwpt_set_dirty_tracking.flags has unknown bits 0x${(c.flags & ~IOMMU_HWPT_DIRTY_TRACKING_ENABLE).toString(16)}`);
  u.ictx.get(u.task, c.hwpt_id, IOMMUFD_OBJ.HWPT_PAGING);
  return fail(Errno.ENOENT, `HWPT ${c.hwpt_id} cannot exist on this machine yet`);
}

export function hwptGetDirtyBitmap(u: Ucmd<typeof iommu_hwpt_get_dirty_bitmap>): number {
  const c = u.cmd;
  if (c.flags & ~IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR || c.__reserved) fail(Errno.EOPNOTSUPP, 'iommu_hwpt_get_dirty_bitmap has unknown flags or a non-zero __reserved');
  u.ictx.get(u.task, c.hwpt_id, IOMMUFD_OBJ.HWPT_PAGING);
  return fail(Errno.ENOENT, `HWPT ${c.hwpt_id} cannot exist on this machine yet`);
}

/** IOMMU_HWPT_INVALIDATE: entry_num is always written back (0 when nothing was done). */
export function hwptInvalidate(u: Ucmd<typeof iommu_hwpt_invalidate>): number {
  const c = u.cmd;
  let err: [number, string] | null = null;
  if (c.__reserved) err = [Errno.EOPNOTSUPP, 'iommu_hwpt_invalidate.__reserved must be 0'];
  else if (c.entry_num && (!c.data_uptr || !c.entry_len || c.entry_len > PAGE_SIZE || c.entry_num > IOMMU_HWPT_INVALIDATE_ENTRY_NUM_MAX)) {
    err = [Errno.EINVAL, `entry_num ${c.entry_num} needs data_uptr, an entry_len in 1..${PAGE_SIZE} and at most ${IOMMU_HWPT_INVALIDATE_ENTRY_NUM_MAX} entries`];
  } else {
    try {
      u.ictx.get(u.task, c.hwpt_id, IOMMUFD_OBJ.HWPT_NESTED);
      err = [Errno.ENOENT, `HWPT ${c.hwpt_id} cannot exist on this machine yet`];
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      err = [e.errno, e.reason];
    }
  }
  c.entry_num = 0;
  u.respond();
  return fail(err[0], err[1]);
}
