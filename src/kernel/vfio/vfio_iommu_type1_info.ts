/**
 * The type1 backend's ioctls on the container fd (vfio_iommu_type1_ioctl): what type1 reports
 * (CHECK_EXTENSION, GET_INFO and its capability chain, dirty bitmaps) and the argument checks of
 * what it accepts (MAP_DMA, UNMAP_DMA, DIRTY_PAGES), in the kernel's order; and the ops object
 * the container calls (`VfioIommuType1`, made by `createType1`). The engine in vfio_iommu_type1.ts
 * does the work and never sees these structs.
 *
 * VFIO's conventions, not iommufd's: `argsz` must reach the mandatory fields (EINVAL), unknown
 * flags are EINVAL, and trailing bytes are not checked. A failed UNMAP_DMA writes nothing back.
 *
 * GET_INFO always reports three capabilities — MIGRATION (the smallest page size as the dirty
 * page size, and the largest bitmap), DMA_AVAIL (mappings left under dma_entry_limit) and
 * IOVA_RANGE (the valid IOVA list) — each 8-byte aligned and linked by offsets from the start of
 * the info struct. When `argsz` cannot hold them, only `argsz` grows to what is needed.
 *
 * Dirty bitmaps are written as the kernel writes them: a mapping starting `shift` bits into a u64
 * word is shifted up, OR-ed with the user's current word, and copied out in whole words — so bits
 * of the user's word survive below it, and the mapping's own bitmap words (never fully cleared)
 * can carry stale bits into later reports.
 */

import { Errno, fail } from '../../errno.js';
import { IOMMU_READ, IOMMU_WRITE } from '../iommufd/io_pagetable.js';
import { TASK_SIZE } from '../mm/mm.js';
import type { IommuGroup } from '../iommu/core.js';
import type { Process } from '../process.js';
import { copyFromUser, copyToUser } from '../uaccess.js';
import { VFIO_IOMMU_BIND, VFIO_IOMMU_UNBIND, vfio_iommu_type1_bind } from '../../uapi/vfio_sva.js';
import {
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_CC_IOMMU,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_VADDR,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_IOMMU_DIRTY_PAGES,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_START,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1_NESTING_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UNMAP_ALL,
  VFIO_UPDATE_VADDR,
  vfio_bitmap,
  vfio_iommu_type1_dirty_bitmap,
  vfio_iommu_type1_dirty_bitmap_get,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info,
  vfio_iommu_type1_info_cap_iova_range,
  vfio_iommu_type1_info_cap_migration,
  vfio_iommu_type1_info_dma_avail,
  vfio_iova_range,
} from '../../uapi/vfio.js';
import { DIRTY_BITMAP_SIZE_MAX, type Type1Params, type VfioDma, VfioIommu, bitmapFill, dirtyBitmapBytes, ffs, hx, u64 } from './vfio_iommu_type1.js';
import type { VfioDevice, VfioGroupType, VfioIommuDriverOps } from './vfio.js';

/** One ioctl of the table: its mandatory size (offsetofend of the last mandatory field) and handler. */
export interface Type1IoctlRow {
  readonly name: string;
  readonly minsz: number;
  readonly handler: (iommu: VfioIommu, arg: bigint, task: Process, minsz: number) => number;
}

/** vfio_iommu_type1_check_extension; `iommu` is null before the container has a backend. */
function checkExtension(iommu: VfioIommu | null, ext: bigint): number {
  switch (ext) {
    case BigInt(VFIO_TYPE1_IOMMU):
    case BigInt(VFIO_TYPE1v2_IOMMU):
    case BigInt(VFIO_TYPE1_NESTING_IOMMU):
    case BigInt(VFIO_UNMAP_ALL):
      return 1;
    case BigInt(VFIO_UPDATE_VADDR):
      // Refused with emulated (mdev) groups, which type1 here never has.
      return iommu ? 1 : 0;
    case BigInt(VFIO_DMA_CC_IOMMU):
      return iommu && iommu.domains.every((d) => d.enforceCacheCoherency) ? 1 : 0;
    default:
      return 0;
  }
}

/** The capability chain of GET_INFO, offsets relative to a buffer placed right after the info struct. */
function buildCaps(iommu: VfioIommu): Uint8Array {
  const parts: Uint8Array[] = [
    vfio_iommu_type1_info_cap_migration.encode({
      header: { id: VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, version: 1, next: 0 },
      flags: 0,
      pgsize_bitmap: iommu.pgsize,
      max_dirty_bitmap_size: DIRTY_BITMAP_SIZE_MAX,
    }),
    vfio_iommu_type1_info_dma_avail.encode({ header: { id: VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, version: 1, next: 0 }, avail: iommu.dmaAvail }),
  ];
  if (iommu.iovaList.length) {
    const head = vfio_iommu_type1_info_cap_iova_range.encode({ header: { id: VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, version: 1, next: 0 }, nr_iovas: iommu.iovaList.length });
    const cap = new Uint8Array(head.length + vfio_iova_range.size * iommu.iovaList.length);
    cap.set(head);
    iommu.iovaList.forEach((r, i) => cap.set(vfio_iova_range.encode({ start: r.start, end: r.last }), head.length + i * vfio_iova_range.size));
    parts.push(cap);
  }
  const sizes = parts.map((p) => Math.ceil(p.length / 8) * 8);
  const out = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
  const dv = new DataView(out.buffer);
  let off = 0;
  parts.forEach((p, i) => {
    out.set(p, off);
    const next = off + sizes[i]!;
    if (i + 1 < parts.length) dv.setUint32(off + 4, vfio_iommu_type1_info.size + next, true);
    off = next;
  });
  return out;
}

/** vfio_iommu_type1_get_info. */
function getInfo(iommu: VfioIommu, arg: bigint, task: Process, minsz: number): number {
  const info = vfio_iommu_type1_info.decode(copyFromUser(task, arg, minsz, 'reading vfio_iommu_type1_info'));
  if (info.argsz < minsz) fail(Errno.EINVAL, `vfio_iommu_type1_info.argsz ${info.argsz} is below ${minsz}`);
  const copyBack = Math.min(info.argsz, vfio_iommu_type1_info.size);
  info.flags = VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS;
  info.iova_pgsizes = iommu.pgsizeBitmap;
  info.cap_offset = 0;
  info.pad = 0;
  const caps = buildCaps(iommu);
  const need = vfio_iommu_type1_info.size + caps.length;
  if (info.argsz < need) {
    info.argsz = need;
  } else {
    copyToUser(task, arg + BigInt(vfio_iommu_type1_info.size), caps, 'writing the type1 capability chain');
    info.cap_offset = vfio_iommu_type1_info.size;
  }
  copyToUser(task, arg, vfio_iommu_type1_info.encode(info).subarray(0, copyBack), 'writing back vfio_iommu_type1_info');
  return 0;
}

/** vfio_iommu_type1_map_dma. */
function mapDma(iommu: VfioIommu, arg: bigint, task: Process, minsz: number): number {
  const map = vfio_iommu_type1_dma_map.decode(copyFromUser(task, arg, minsz, 'reading vfio_iommu_type1_dma_map'));
  const mask = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE | VFIO_DMA_MAP_FLAG_VADDR;
  if (map.argsz < minsz) fail(Errno.EINVAL, `vfio_iommu_type1_dma_map.argsz ${map.argsz} is below ${minsz}`);
  if (map.flags & ~mask) fail(Errno.EINVAL, `vfio_iommu_type1_dma_map.flags has unknown bits ${hx(map.flags & ~mask)}`);
  let prot = 0;
  if (map.flags & VFIO_DMA_MAP_FLAG_WRITE) prot |= IOMMU_WRITE;
  if (map.flags & VFIO_DMA_MAP_FLAG_READ) prot |= IOMMU_READ;
  iommu.map(task, map.iova, map.vaddr, map.size, prot, (map.flags & VFIO_DMA_MAP_FLAG_VADDR) !== 0);
  return 0;
}

/** access_ok on x86-64: the range ends at or below the highest user address, without wrapping. */
function accessOk(addr: bigint, size: bigint): boolean {
  const sum = u64(addr + size);
  return sum <= TASK_SIZE && sum >= addr;
}

/** A u64 shift by __ffs(pgsize) as the CPU does it (the count taken mod 64). */
function pagesIn(size: bigint, pgsize: bigint): bigint {
  return size >> BigInt(ffs(pgsize) & 63);
}

/** verify_bitmap_size. */
function verifyBitmapSize(npages: bigint, bitmapSize: bigint): void {
  if (!npages || !bitmapSize || bitmapSize > DIRTY_BITMAP_SIZE_MAX || bitmapSize < dirtyBitmapBytes(npages)) {
    fail(Errno.EINVAL, `a dirty bitmap of ${hx(bitmapSize)} bytes for ${hx(npages)} pages: it must be non-empty, hold a bit per page, and not exceed ${hx(DIRTY_BITMAP_SIZE_MAX)} bytes`);
  }
}

/** __bitmap_shift_left in place over BITS_TO_LONGS(nbits) words (the top word is not masked). */
export function bitmapShiftLeft(bm: BigUint64Array, shift: number, nbits: bigint): void {
  const lim = Math.min(Number((nbits + 63n) / 64n), bm.length);
  const s = BigInt(shift);
  for (let k = lim - 1; k >= 0; k--) {
    const lower = s && k > 0 ? bm[k - 1]! >> (64n - s) : 0n;
    bm[k] = u64(bm[k]! << s) | lower;
  }
}

/** update_user_bitmap: the mapping's bits (all dirty while it is mapped) into the user's bitmap based at `base`. */
function updateUserBitmap(task: Process, iommu: VfioIommu, data: bigint, dma: VfioDma, base: bigint, pgsize: bigint): void {
  const pgshift = BigInt(ffs(pgsize));
  const nbits = dma.size >> pgshift;
  const bitOffset = (dma.iova - base) >> pgshift;
  const at = data + (bitOffset / 64n) * 8n;
  const shift = Number(bitOffset % 64n);
  const bm = dma.bitmap!;
  if (iommu.numNonPinnedGroups && dma.iommuMapped) bitmapFill(bm, nbits, true);
  if (shift) {
    bitmapShiftLeft(bm, shift, nbits + BigInt(shift));
    const leftover = copyFromUser(task, at, 8, 'reading the dirty bitmap word the mapping starts in');
    bm[0] = bm[0]! | new DataView(leftover.buffer, leftover.byteOffset, 8).getBigUint64(0, true);
  }
  const words = Number(dirtyBitmapBytes(nbits + BigInt(shift)) / 8n);
  const out = new Uint8Array(words * 8);
  const dv = new DataView(out.buffer);
  for (let w = 0; w < words; w++) dv.setBigUint64(w * 8, bm[w] ?? 0n, true);
  copyToUser(task, at, out, 'writing the dirty bitmap');
}

/** vfio_iommu_type1_unmap_dma. */
function unmapDma(iommu: VfioIommu, arg: bigint, task: Process, minsz: number): number {
  const unmap = vfio_iommu_type1_dma_unmap.decode(copyFromUser(task, arg, minsz, 'reading vfio_iommu_type1_dma_unmap'));
  const mask = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_VADDR | VFIO_DMA_UNMAP_FLAG_ALL;
  if (unmap.argsz < minsz) fail(Errno.EINVAL, `vfio_iommu_type1_dma_unmap.argsz ${unmap.argsz} is below ${minsz}`);
  if (unmap.flags & ~mask) fail(Errno.EINVAL, `vfio_iommu_type1_dma_unmap.flags has unknown bits ${hx(unmap.flags & ~mask)}`);
  const dirty = (unmap.flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) !== 0;
  if (dirty && unmap.flags & (VFIO_DMA_UNMAP_FLAG_ALL | VFIO_DMA_UNMAP_FLAG_VADDR)) {
    fail(Errno.EINVAL, 'VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP cannot be combined with FLAG_ALL or FLAG_VADDR');
  }
  let bitmap = null;
  if (dirty) {
    if (unmap.argsz < minsz + vfio_bitmap.size) fail(Errno.EINVAL, `argsz ${unmap.argsz} has no room for the vfio_bitmap GET_DIRTY_BITMAP needs (${minsz + vfio_bitmap.size})`);
    bitmap = vfio_bitmap.decode(copyFromUser(task, arg + BigInt(minsz), vfio_bitmap.size, 'reading vfio_bitmap'));
    if (!accessOk(bitmap.data, bitmap.size)) fail(Errno.EINVAL, `the dirty bitmap [${hx(bitmap.data)}, +${hx(bitmap.size)}) is not user memory`);
    verifyBitmapSize(pagesIn(unmap.size, bitmap.pgsize), bitmap.size);
  }
  const report = bitmap ? (dma: VfioDma): void => updateUserBitmap(task, iommu, bitmap.data, dma, unmap.iova, iommu.pgsize) : null;
  unmap.size = iommu.unmap(
    unmap.iova,
    unmap.size,
    { all: (unmap.flags & VFIO_DMA_UNMAP_FLAG_ALL) !== 0, vaddr: (unmap.flags & VFIO_DMA_UNMAP_FLAG_VADDR) !== 0, dirtyPgsize: bitmap?.pgsize ?? null },
    report,
  );
  copyToUser(task, arg, vfio_iommu_type1_dma_unmap.encode(unmap).subarray(0, minsz), 'writing back vfio_iommu_type1_dma_unmap');
  return 0;
}

/** vfio_iommu_type1_dirty_pages: TYPE1v2 only; exactly one of START, STOP, GET_BITMAP. */
function dirtyPages(iommu: VfioIommu, arg: bigint, task: Process, minsz: number): number {
  if (!iommu.v2) fail(Errno.EACCES, 'VFIO_IOMMU_DIRTY_PAGES needs a TYPE1v2 container');
  const dirty = vfio_iommu_type1_dirty_bitmap.decode(copyFromUser(task, arg, minsz, 'reading vfio_iommu_type1_dirty_bitmap'));
  const mask = VFIO_IOMMU_DIRTY_PAGES_FLAG_START | VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP | VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
  if (dirty.argsz < minsz) fail(Errno.EINVAL, `vfio_iommu_type1_dirty_bitmap.argsz ${dirty.argsz} is below ${minsz}`);
  if (dirty.flags & ~mask) fail(Errno.EINVAL, `vfio_iommu_type1_dirty_bitmap.flags has unknown bits ${hx(dirty.flags & ~mask)}`);
  if (dirty.flags !== VFIO_IOMMU_DIRTY_PAGES_FLAG_START && dirty.flags !== VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP && dirty.flags !== VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP) {
    fail(Errno.EINVAL, `vfio_iommu_type1_dirty_bitmap.flags ${hx(dirty.flags)} must be exactly one of START, STOP and GET_BITMAP`);
  }
  if (dirty.flags === VFIO_IOMMU_DIRTY_PAGES_FLAG_START) iommu.startDirtyTracking();
  else if (dirty.flags === VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP) iommu.stopDirtyTracking();
  else getDirtyBitmap(iommu, arg, task, minsz, dirty.argsz);
  return 0;
}

function getDirtyBitmap(iommu: VfioIommu, arg: bigint, task: Process, minsz: number, argsz: number): void {
  const dataSize = argsz - minsz;
  const rsize = vfio_iommu_type1_dirty_bitmap_get.size;
  if (dataSize < rsize) fail(Errno.EINVAL, `argsz ${argsz} has no room for the vfio_iommu_type1_dirty_bitmap_get GET_BITMAP needs (${minsz + rsize})`);
  const range = vfio_iommu_type1_dirty_bitmap_get.decode(copyFromUser(task, arg + BigInt(minsz), rsize, 'reading vfio_iommu_type1_dirty_bitmap_get'));
  if (u64(range.iova + range.size) < range.iova) fail(Errno.EINVAL, `iova ${hx(range.iova)} + size ${hx(range.size)} wraps around the IOVA space`);
  const bm = range.bitmap;
  if (!accessOk(bm.data, bm.size)) fail(Errno.EINVAL, `the dirty bitmap [${hx(bm.data)}, +${hx(bm.size)}) is not user memory`);
  verifyBitmapSize(pagesIn(range.size, bm.pgsize), bm.size);
  const pgsize = iommu.pgsize;
  if (bm.pgsize !== pgsize) fail(Errno.EINVAL, `the bitmap's pgsize ${hx(bm.pgsize)} is not the smallest IOMMU page ${hx(pgsize)}`);
  if (range.iova & (pgsize - 1n)) fail(Errno.EINVAL, `iova ${hx(range.iova)} is not a multiple of ${hx(pgsize)}`);
  if (!range.size || range.size & (pgsize - 1n)) fail(Errno.EINVAL, `size ${hx(range.size)} is not a non-zero multiple of ${hx(pgsize)}`);
  if (!iommu.dirtyPageTracking) fail(Errno.EINVAL, 'dirty tracking is off (VFIO_IOMMU_DIRTY_PAGES_FLAG_START first)');
  iommu.dirtyBitmap(range.iova, range.size, pgsize, (dma) => updateUserBitmap(task, iommu, bm.data, dma, range.iova, pgsize));
}

/** The backend's ioctls besides CHECK_EXTENSION, for dispatch and for tests that walk them. */
export const TYPE1_IOCTLS: ReadonlyMap<number, Type1IoctlRow> = new Map<number, Type1IoctlRow>([
  [VFIO_IOMMU_GET_INFO, { name: 'VFIO_IOMMU_GET_INFO', minsz: vfio_iommu_type1_info.offsetEnd('iova_pgsizes'), handler: getInfo }],
  [VFIO_IOMMU_MAP_DMA, { name: 'VFIO_IOMMU_MAP_DMA', minsz: vfio_iommu_type1_dma_map.offsetEnd('size'), handler: mapDma }],
  [VFIO_IOMMU_UNMAP_DMA, { name: 'VFIO_IOMMU_UNMAP_DMA', minsz: vfio_iommu_type1_dma_unmap.offsetEnd('size'), handler: unmapDma }],
  [VFIO_IOMMU_DIRTY_PAGES, { name: 'VFIO_IOMMU_DIRTY_PAGES', minsz: vfio_iommu_type1_dirty_bitmap.offsetEnd('flags'), handler: dirtyPages }],
  // The seed series' SVA (vfio_iommu_type1_sva.ts).
  [VFIO_IOMMU_BIND, { name: 'VFIO_IOMMU_BIND', minsz: vfio_iommu_type1_bind.offsetEnd('flags'), handler: (iommu, arg, task) => iommu.svaOf(task.machine).bindIoctl(arg, task) }],
  [VFIO_IOMMU_UNBIND, { name: 'VFIO_IOMMU_UNBIND', minsz: vfio_iommu_type1_bind.offsetEnd('flags'), handler: (iommu, arg, task) => iommu.svaOf(task.machine).unbindIoctl(arg, task) }],
]);

/** vfio_iommu_type1_ioctl. */
export function type1Ioctl(iommu: VfioIommu | null, cmd: number, arg: bigint, task: Process): number {
  if (cmd === VFIO_CHECK_EXTENSION) return checkExtension(iommu, arg);
  const row = TYPE1_IOCTLS.get(cmd);
  if (!row) return fail(Errno.ENOTTY, `vfio-iommu-type1 has no ioctl ${hx(cmd)}`);
  if (!iommu) return fail(Errno.EINVAL, `${row.name}: the container has no type1 state yet (VFIO_SET_IOMMU first)`);
  return row.handler(iommu, arg, task, row.minsz);
}

/**
 * The type1 backend as the container sees it (vfio_iommu_driver_ops_type1). One instance per
 * machine: it carries the module parameters and knows every live container state.
 */
export class VfioIommuType1 implements VfioIommuDriverOps {
  readonly name = 'vfio-iommu-type1';
  readonly params: Type1Params;
  readonly #states = new Set<VfioIommu>();

  constructor(params: Partial<Type1Params> = {}) {
    this.params = { allowUnsafeInterrupts: false, disableHugepages: false, dmaEntryLimit: 0xffff, ...params };
  }

  /** Live container states (for invariants and inspection). */
  states(): VfioIommu[] {
    return [...this.#states];
  }

  open(type: bigint, task: Process): VfioIommu {
    if (task.machine.inject.shouldFail(task, 'slab')) fail(Errno.ENOMEM, 'allocating the vfio_iommu: fault injected (fail-nth)');
    let iommu: VfioIommu;
    switch (type) {
      case BigInt(VFIO_TYPE1_IOMMU):
        iommu = new VfioIommu(this.params, false, false);
        break;
      case BigInt(VFIO_TYPE1v2_IOMMU):
        iommu = new VfioIommu(this.params, true, false);
        break;
      case BigInt(VFIO_TYPE1_NESTING_IOMMU):
        iommu = new VfioIommu(this.params, true, true);
        break;
      default:
        return fail(Errno.EINVAL, `vfio-iommu-type1 serves TYPE1, TYPE1v2 and TYPE1_NESTING, not type ${type}`);
    }
    this.#states.add(iommu);
    return iommu;
  }

  release(data: unknown): void {
    const iommu = asIommu(data);
    iommu.release();
    this.#states.delete(iommu);
  }

  ioctl(data: unknown, cmd: number, arg: bigint, task: Process): number {
    return type1Ioctl(data === null ? null : asIommu(data), cmd, arg, task);
  }

  attachGroup(data: unknown, group: IommuGroup, type: VfioGroupType, task: Process): void {
    asIommu(data).attachGroup(group, type, task);
  }

  detachGroup(data: unknown, group: IommuGroup): void {
    asIommu(data).detachGroup(group);
  }

  registerDevice(data: unknown, vdev: VfioDevice): void {
    asIommu(data).devices.add(vdev);
  }

  unregisterDevice(data: unknown, vdev: VfioDevice): void {
    asIommu(data).devices.delete(vdev);
  }
}

function asIommu(data: unknown): VfioIommu {
  if (!(data instanceof VfioIommu)) throw new Error('vfio-iommu-type1: the container data is not a type1 state');
  return data;
}

/** A type1 backend for `machine.vfio.containers.registerDriver`, with the module parameters given. */
export function createType1(params: Partial<Type1Params> = {}): VfioIommuType1 {
  return new VfioIommuType1(params);
}
