/**
 * HW page tables (hw_pagetable.c) and IOMMU_GET_HW_INFO (device.c).
 *
 * A paging HWPT wraps an IOMMU paging domain filled from one IOAS (it holds a reference on the
 * IOAS and sits in its hwpt_list); automatic ones are made by device attach and die with their
 * last device, user ones come from IOMMU_HWPT_ALLOC. A nested HWPT wraps a driver's stage-1
 * domain on top of a NEST_PARENT paging HWPT. Either may route IO page faults to a fault object.
 */

import { Errno, KernelError, fail } from '../../errno.js';
import {
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_DATA_NONE,
  IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
  IOMMU_HWPT_FAULT_ID_VALID,
  IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
  IOMMU_HW_CAP_DIRTY_TRACKING,
  IOMMU_HW_INFO_TYPE_NONE,
  type iommu_hw_info,
  type iommu_hwpt_alloc,
  type iommu_hwpt_get_dirty_bitmap,
  type iommu_hwpt_invalidate,
  type iommu_hwpt_set_dirty_tracking,
} from '../../uapi/iommufd.js';
import { IOMMU_CAP, IOMMU_DIRTY_NO_CLEAR, IommuDomain, PagingDomain, type IommuUserData } from '../iommu/core.js';
import { PAGE_SIZE } from '../mm/physmem.js';
import type { Process } from '../process.js';
import { copyFromUser, copyToUser } from '../uaccess.js';
import { IommufdDevice, hwptAttach, hwptDetach } from './device.js';
import { IommufdFault } from './fault.js';
import { ULONG_MAX } from './io_pagetable.js';
import type { IommufdIoas } from './ioas.js';
import { IOMMUFD_OBJ, type IommufdCtx, IommufdObject } from './object.js';
import type { Ucmd } from './ucmd.js';

const IOMMU_HWPT_INVALIDATE_ENTRY_NUM_MAX = 1 << 19;
const hx = (v: bigint | number): string => `0x${v.toString(16)}`;

export abstract class IommufdHwpt extends IommufdObject {
  /** Set right after allocation; every published HWPT has one. */
  domain!: IommuDomain;
  fault: IommufdFault | null = null;

  /** find_hwpt_paging: the paging HWPT itself, or a nested one's parent. */
  abstract get paging(): HwptPaging | null;

  /** __iommufd_hwpt_destroy. */
  protected releaseCommon(): void {
    this.domain?.free();
    if (this.fault) this.fault.users--;
  }
}

export class HwptPaging extends IommufdHwpt {
  readonly type = IOMMUFD_OBJ.HWPT_PAGING;
  readonly ioas: IommufdIoas;
  declare domain: PagingDomain;
  autoDomain = false;
  nestParent = false;
  enforceCacheCoherency = false;
  /** The software MSI window base the domain's MSI cookie was set up with (iommu_get_msi_cookie). */
  msiCookie: bigint | null = null;
  /** On ioas.hwptList and in the io_pagetable's domains. */
  listed = false;

  constructor(ictx: IommufdCtx, ioas: IommufdIoas) {
    super(ictx);
    this.ioas = ioas;
  }

  get paging(): HwptPaging {
    return this;
  }

  #unlist(): void {
    if (!this.listed) return;
    this.listed = false;
    this.ioas.hwptList.splice(this.ioas.hwptList.indexOf(this), 1);
    this.ioas.iopt.removeDomain(this.domain);
  }

  destroy(): void {
    this.#unlist();
    this.releaseCommon();
    this.ioas.users--;
  }

  /** iommufd_hwpt_paging_enforce_cc: once on, coherency stays on. */
  enforceCc(): void {
    if (this.enforceCacheCoherency) return;
    this.enforceCacheCoherency = this.domain.enforceCacheCoherency();
    if (!this.enforceCacheCoherency) fail(Errno.EINVAL, `HWPT ${this.id}: its domain cannot enforce cache coherency`);
  }
}

export class HwptNested extends IommufdHwpt {
  readonly type = IOMMUFD_OBJ.HWPT_NESTED;
  readonly parent: HwptPaging;

  constructor(ictx: IommufdCtx, parent: HwptPaging) {
    super(ictx);
    this.parent = parent;
  }

  /** find_hwpt_paging: a nested HWPT's reserved regions and MSI live in its parent's IOAS. */
  get paging(): HwptPaging {
    return this.parent;
  }

  destroy(): void {
    this.releaseCommon();
    this.parent.users--;
  }
}

/** A nested domain that takes user cache invalidations (cache_invalidate_user). */
export interface InvalidatingDomain {
  cacheInvalidateUser(task: Process, arr: { type: number; uptr: bigint; entryLen: number; entryNum: number }): { done: number; error: KernelError | null };
}

function canInvalidate(d: IommuDomain): d is IommuDomain & InvalidatingDomain {
  return typeof (d as Partial<InvalidatingDomain>).cacheInvalidateUser === 'function';
}

/** iommufd_hw_pagetable_put: an automatic domain is destroyed with its last user. */
export function hwptPut(ictx: IommufdCtx, hwpt: IommufdHwpt): void {
  if (hwpt instanceof HwptPaging && hwpt.autoDomain) {
    ictx.removeKernel(hwpt, true);
    return;
  }
  hwpt.users--;
}

/**
 * iommufd_hwpt_paging_alloc: a paging domain for `idev` over `ioas`, filled with the IOAS's
 * mappings. Unpublished on return: the caller finalizes or aborts it.
 */
export function hwptPagingAlloc(ictx: IommufdCtx, task: Process | null, ioas: IommufdIoas, idev: IommufdDevice, flags: number, immediateAttach: boolean, userData: IommuUserData | null): HwptPaging {
  const ops = idev.dev.ops;
  const valid = IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
  if ((flags || userData) && !ops.domainAllocUser) fail(Errno.EOPNOTSUPP, `${ops.name} takes no HWPT flags or driver data`);
  if (flags & ~valid) fail(Errno.EOPNOTSUPP, `iommu_hwpt_alloc.flags has bits 0x${(flags & ~valid).toString(16)} a paging HWPT cannot take`);
  if (flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING && !idev.dev.capable(IOMMU_CAP.DIRTY_TRACKING)) fail(Errno.EOPNOTSUPP, `${idev.dev.name}: its IOMMU cannot track dirty pages`);
  if (flags & IOMMU_HWPT_FAULT_ID_VALID && flags & IOMMU_HWPT_ALLOC_NEST_PARENT) fail(Errno.EOPNOTSUPP, 'a nest parent HWPT cannot take faults');

  const hp = ictx.alloc(task, new HwptPaging(ictx, ioas));
  ioas.users++;
  hp.nestParent = (flags & IOMMU_HWPT_ALLOC_NEST_PARENT) !== 0;
  let attached = false;
  try {
    let domain: IommuDomain;
    if (ops.domainAllocUser) domain = ops.domainAllocUser(idev.dev, flags, null, userData, task);
    else if (ops.domainAllocPaging) domain = ops.domainAllocPaging(idev.dev, task);
    else fail(Errno.EOPNOTSUPP, `${ops.name} cannot allocate paging domains`);
    if (!(domain instanceof PagingDomain)) throw new Error(`${ops.name} returned a ${domain.type} domain for a paging HWPT`);
    hp.domain = domain;
    if (idev.enforceCacheCoherency) hp.enforceCc();
    if (immediateAttach) {
      hwptAttach(hp, idev, task);
      attached = true;
    }
    ioas.iopt.addDomain(task, domain);
    hp.listed = true;
    ioas.hwptList.push(hp);
    return hp;
  } catch (e) {
    if (attached) hwptDetach(idev);
    ictx.abortAndDestroy(hp);
    throw e;
  }
}

/** iommufd_hwpt_nested_alloc. */
function hwptNestedAlloc(ictx: IommufdCtx, task: Process, parent: HwptPaging, idev: IommufdDevice, flags: number, userData: IommuUserData): HwptNested {
  const ops = idev.dev.ops;
  if (flags & ~IOMMU_HWPT_FAULT_ID_VALID || !userData.len || !ops.domainAllocUser) fail(Errno.EOPNOTSUPP, 'a nested HWPT takes only IOMMU_HWPT_FAULT_ID_VALID, needs driver data, and a driver that nests');
  if (parent.autoDomain || !parent.nestParent || parent.domain.owner !== ops) fail(Errno.EINVAL, `HWPT ${parent.id} cannot be a nest parent (${parent.autoDomain ? 'automatic' : !parent.nestParent ? 'not allocated with IOMMU_HWPT_ALLOC_NEST_PARENT' : 'another IOMMU driver'})`);
  const hn = ictx.alloc(task, new HwptNested(ictx, parent));
  parent.users++;
  try {
    hn.domain = ops.domainAllocUser(idev.dev, flags & ~IOMMU_HWPT_FAULT_ID_VALID, parent.domain, userData, task);
    if (hn.domain.type !== 'nested' || !canInvalidate(hn.domain)) fail(Errno.EINVAL, `${ops.name} returned no nested domain`);
    return hn;
  } catch (e) {
    ictx.abortAndDestroy(hn);
    throw e;
  }
}

/** iommufd_get_device. */
function getDevice(ictx: IommufdCtx, task: Process, id: number): IommufdDevice {
  return ictx.get(task, id, IOMMUFD_OBJ.DEVICE, IommufdDevice);
}

export function hwptAlloc(u: Ucmd<typeof iommu_hwpt_alloc>): number {
  const c = u.cmd;
  const ictx = u.ictx;
  if (c.__reserved) fail(Errno.EOPNOTSUPP, 'iommu_hwpt_alloc.__reserved must be 0');
  if (c.data_type === IOMMU_HWPT_DATA_NONE && c.data_len) fail(Errno.EINVAL, 'data_type NONE takes no data, but data_len is non-zero');
  if (c.data_type !== IOMMU_HWPT_DATA_NONE && !c.data_len) fail(Errno.EINVAL, `data_type ${c.data_type} needs data, but data_len is 0`);
  const userData: IommuUserData = { type: c.data_type, uptr: c.data_uptr, len: c.data_len, task: u.task };
  const idev = getDevice(ictx, u.task, c.dev_id);
  let pt: IommufdObject;
  try {
    pt = ictx.get(u.task, c.pt_id, IOMMUFD_OBJ.ANY);
  } catch (e) {
    if (!(e instanceof KernelError)) throw e;
    return fail(Errno.EINVAL, `pt_id ${c.pt_id}: ${e.reason}`);
  }
  let hwpt: IommufdHwpt;
  if (pt.type === IOMMUFD_OBJ.IOAS) {
    hwpt = hwptPagingAlloc(ictx, u.task, pt as IommufdIoas, idev, c.flags, false, userData.len ? userData : null);
  } else if (pt instanceof HwptPaging) {
    hwpt = hwptNestedAlloc(ictx, u.task, pt, idev, c.flags, userData);
  } else {
    return fail(Errno.EINVAL, `pt_id ${c.pt_id} is neither an IOAS nor a paging HWPT`);
  }
  try {
    if (c.flags & IOMMU_HWPT_FAULT_ID_VALID) {
      const fault = ictx.get(u.task, c.fault_id, IOMMUFD_OBJ.FAULT, IommufdFault);
      hwpt.fault = fault;
      hwpt.domain.iopfHandler = fault.handlerFor();
      fault.users++;
    }
    c.out_hwpt_id = hwpt.id;
    u.respond();
  } catch (e) {
    ictx.abortAndDestroy(hwpt);
    throw e;
  }
  ictx.finalize(hwpt);
  return 0;
}

export function getHwInfo(u: Ucmd<typeof iommu_hw_info>): number {
  const c = u.cmd;
  if (c.flags) fail(Errno.EOPNOTSUPP, `iommu_hw_info.flags must be 0 on 6.12, got 0x${c.flags.toString(16)}`);
  if (c.__reserved.some((b) => b !== 0)) fail(Errno.EOPNOTSUPP, 'iommu_hw_info.__reserved must be 0');
  const idev = getDevice(u.ictx, u.task, c.dev_id);
  const ops = idev.dev.ops;
  let data: Uint8Array = new Uint8Array(0);
  if (ops.hwInfo) {
    if (u.ictx.machine.inject.shouldFail(u.task, 'slab')) fail(Errno.ENOMEM, 'allocating the hw_info data: fault injected (fail-nth)');
    const info = ops.hwInfo(idev.dev);
    if (info.type === IOMMU_HW_INFO_TYPE_NONE) fail(Errno.ENODEV, `${ops.name} reported hw_info of type NONE`);
    c.out_data_type = info.type;
    data = info.data;
  } else {
    c.out_data_type = IOMMU_HW_INFO_TYPE_NONE;
  }
  const copyLen = Math.min(c.data_len, data.length);
  const uptr = c.data_uptr;
  copyToUser(u.task, uptr, data.subarray(0, copyLen), 'copying the hw_info data');
  if (copyLen < c.data_len) copyToUser(u.task, uptr + BigInt(copyLen), new Uint8Array(c.data_len - copyLen), 'clearing the rest of the hw_info buffer');
  c.data_len = data.length;
  c.out_capabilities = 0n;
  if (idev.dev.capable(IOMMU_CAP.DIRTY_TRACKING)) c.out_capabilities |= BigInt(IOMMU_HW_CAP_DIRTY_TRACKING);
  c.out_max_pasid_log2 = 0;
  const maxPasids = idev.dev.iommu?.maxPasids ?? 0;
  if (maxPasids) c.out_max_pasid_log2 = 31 - Math.clz32(maxPasids);
  u.respond();
  return 0;
}

function getHwptPaging(u: { ictx: IommufdCtx; task: Process }, id: number): HwptPaging {
  return u.ictx.get(u.task, id, IOMMUFD_OBJ.HWPT_PAGING, HwptPaging);
}

export function hwptSetDirtyTracking(u: Ucmd<typeof iommu_hwpt_set_dirty_tracking>): number {
  const c = u.cmd;
  if (c.flags & ~IOMMU_HWPT_DIRTY_TRACKING_ENABLE) fail(Errno.EOPNOTSUPP, `iommu_hwpt_set_dirty_tracking.flags has unknown bits 0x${(c.flags & ~IOMMU_HWPT_DIRTY_TRACKING_ENABLE).toString(16)}`);
  const hp = getHwptPaging(u, c.hwpt_id);
  const enable = (c.flags & IOMMU_HWPT_DIRTY_TRACKING_ENABLE) !== 0;
  // iopt_set_dirty_tracking
  const domain = hp.domain;
  if (!domain.dirtyCapable) fail(Errno.EOPNOTSUPP, `HWPT ${hp.id} was not allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING`);
  if (enable) {
    // A clean snapshot: clear what the PTEs say before tracking starts.
    for (const area of hp.ioas.iopt.areas) {
      if (!area.pages) continue;
      domain.readAndClearDirty(area.start, area.length, 0, null);
    }
  }
  domain.setDirtyTracking(enable);
  return 0;
}

/** iommufd_check_iova_range. */
function checkIovaRange(alignment: bigint, c: { iova: bigint; length: bigint; page_size: bigint }): void {
  if (!c.length) fail(Errno.EINVAL, 'the dirty bitmap range has length 0');
  const last = c.iova + c.length - 1n;
  if (last >= 1n << 64n) fail(Errno.EOVERFLOW, `iova ${hx(c.iova)} + length ${hx(c.length)} overflows`);
  if (c.iova > ULONG_MAX || last > ULONG_MAX) fail(Errno.EOVERFLOW, 'the range is beyond the address space');
  if (c.iova & (alignment - 1n) || (last + 1n) & (alignment - 1n)) fail(Errno.EINVAL, `the range [${hx(c.iova)}, ${hx(last)}] is not aligned to the IOAS's ${hx(alignment)}`);
  if (!c.page_size) fail(Errno.EINVAL, 'page_size is 0');
  if (c.iova & (c.page_size - 1n) || (last + 1n) & (c.page_size - 1n)) fail(Errno.EINVAL, `the range [${hx(c.iova)}, ${hx(last)}] is not aligned to page_size ${hx(c.page_size)}`);
}

/**
 * IOMMU_HWPT_GET_DIRTY_BITMAP: the domain reports dirty IOVAs area by area; each sets bits (one
 * per page_size from `iova`) in the user bitmap, which is only ever OR-ed into. As in 6.12
 * (iommu_read_and_clear_dirty drops iova_bitmap_for_each's result), a failure while walking — a
 * hole between areas, an unreachable bitmap page — ends the walk but the ioctl returns 0.
 */
export function hwptGetDirtyBitmap(u: Ucmd<typeof iommu_hwpt_get_dirty_bitmap>): number {
  const c = u.cmd;
  if (c.flags & ~IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR || c.__reserved) fail(Errno.EOPNOTSUPP, 'iommu_hwpt_get_dirty_bitmap has unknown flags or a non-zero __reserved');
  const hp = getHwptPaging(u, c.hwpt_id);
  const iopt = hp.ioas.iopt;
  checkIovaRange(iopt.iovaAlignment, c);
  const domain = hp.domain;
  if (!domain.dirtyCapable) fail(Errno.EOPNOTSUPP, `HWPT ${hp.id} was not allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING`);
  if (u.ictx.machine.inject.shouldFail(u.task, 'slab')) fail(Errno.ENOMEM, 'allocating the iova_bitmap: fault injected (fail-nth)');
  const flags = c.flags & IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR ? IOMMU_DIRTY_NO_CLEAR : 0;
  const bitmap = new UserBitmap(u.task, c.iova, c.length, c.page_size, c.data);
  try {
    const last = c.iova + c.length - 1n;
    let cur = c.iova;
    for (let area = iopt.areas.iterFirst(c.iova, last); area; area = iopt.areas.iterNext(area, c.iova, last)) {
      if (area.start > cur || !area.pages) break;
      const end = area.last < last ? area.last : last;
      domain.readAndClearDirty(cur, end - cur + 1n, flags, (iova, len) => bitmap.set(iova, len));
      cur = end + 1n;
      if (end === last) break;
    }
  } catch (e) {
    if (!(e instanceof KernelError)) throw e;
  } finally {
    bitmap.flush();
  }
  return 0;
}

/**
 * struct iova_bitmap over user memory: one bit per page_size of [iova, iova + length), LSB first
 * from uptr. The bytes are read when pinned and written back at the end (set_bit on the pinned
 * pages in the kernel), so bits already set stay set.
 */
class UserBitmap {
  readonly #task: Process;
  readonly #iova: bigint;
  readonly #length: bigint;
  readonly #shift: bigint;
  readonly #uptr: bigint;
  #bytes: Uint8Array | null = null;
  #broken = false;
  #dirty = false;

  constructor(task: Process, iova: bigint, length: bigint, pageSize: bigint, uptr: bigint) {
    this.#task = task;
    this.#iova = iova;
    this.#length = length;
    // __ffs(page_size): the lowest set bit, as iova_bitmap_alloc takes it.
    this.#shift = BigInt((pageSize & -pageSize).toString(2).length - 1);
    this.#uptr = uptr;
  }

  /** Bytes of bitmap the range covers: bit k lives in byte uptr + k / 8, whatever uptr's alignment. */
  get size(): number {
    const bits = Number(((this.#length - 1n) >> this.#shift) + 1n);
    return Math.ceil(bits / 8);
  }

  /**
   * pin_user_pages_fast of the bitmap, done when the first bit is to be set: every page of it must
   * be writable user memory. When it is not, the bits are dropped — the domain has already
   * cleared them — and the ioctl still succeeds, as in 6.12.
   */
  #pin(): boolean {
    if (this.#bytes) return true;
    if (this.#broken) return false;
    try {
      this.#bytes = copyFromUser(this.#task, this.#uptr, this.size, 'pinning the dirty bitmap');
      // Writability is checked by writing the same bytes back (a read-only mapping faults here).
      copyToUser(this.#task, this.#uptr, this.#bytes, 'pinning the dirty bitmap');
      return true;
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      this.#bytes = null;
      this.#broken = true;
      return false;
    }
  }

  set(iova: bigint, length: bigint): void {
    if (!this.#pin()) return;
    const b = this.#bytes!;
    const end = this.#iova + this.#length - 1n;
    const first = iova < this.#iova ? this.#iova : iova;
    const lastIova = iova + length - 1n > end ? end : iova + length - 1n;
    if (first > lastIova) return;
    const lo = Number((first - this.#iova) >> this.#shift);
    const hi = Number((lastIova - this.#iova) >> this.#shift);
    for (let bit = lo; bit <= hi; bit++) b[bit >> 3]! |= 1 << (bit & 7);
    this.#dirty = true;
  }

  flush(): void {
    if (this.#bytes && this.#dirty) copyToUser(this.#task, this.#uptr, this.#bytes, 'writing the dirty bitmap');
  }
}

/** IOMMU_HWPT_INVALIDATE: entry_num is always written back with how many entries were handled. */
export function hwptInvalidate(u: Ucmd<typeof iommu_hwpt_invalidate>): number {
  const c = u.cmd;
  let err: KernelError | null = null;
  let done = 0;
  if (c.__reserved) err = new KernelError(Errno.EOPNOTSUPP, 'iommu_hwpt_invalidate.__reserved must be 0');
  else if (c.entry_num && (!c.data_uptr || !c.entry_len || c.entry_len > PAGE_SIZE || c.entry_num > IOMMU_HWPT_INVALIDATE_ENTRY_NUM_MAX)) {
    err = new KernelError(Errno.EINVAL, `entry_num ${c.entry_num} needs data_uptr, an entry_len in 1..${PAGE_SIZE} and at most ${IOMMU_HWPT_INVALIDATE_ENTRY_NUM_MAX} entries`);
  } else {
    try {
      const hwpt = u.ictx.get(u.task, c.hwpt_id, IOMMUFD_OBJ.HWPT_NESTED, HwptNested);
      const d = hwpt.domain;
      if (!canInvalidate(d)) throw new Error('nested domain without cache_invalidate_user');
      const r = d.cacheInvalidateUser(u.task, { type: c.data_type, uptr: c.data_uptr, entryLen: c.entry_len, entryNum: c.entry_num });
      done = r.done;
      err = r.error;
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      err = e;
    }
  }
  c.entry_num = done;
  try {
    u.respond();
  } catch (e) {
    if (e instanceof KernelError) fail(Errno.EFAULT, e.reason);
    throw e;
  }
  if (err) throw err;
  return 0;
}
