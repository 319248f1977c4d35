/**
 * IOAS objects and their ioctls: thin handlers that validate the uapi struct, look objects up and
 * call the io_pagetable engine. Check order follows ioas.c so the first failing check decides the
 * errno, as on the kernel.
 */

import { Errno, KernelError, fail } from '../../errno.js';
import {
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_OPTION_HUGE_PAGES,
  IOMMU_OPTION_OP_GET,
  IOMMU_OPTION_OP_SET,
  iommu_iova_range,
  type iommu_ioas_alloc,
  type iommu_ioas_allow_iovas,
  type iommu_ioas_copy,
  type iommu_ioas_iova_ranges,
  type iommu_ioas_map,
  type iommu_ioas_unmap,
  type iommu_option,
} from '../../uapi/iommufd.js';
import type { Process } from '../process.js';
import { copyFromUser, copyToUser } from '../uaccess.js';
import { IntervalTree } from '../lib/interval_tree.js';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE, IoPagetable, IoptAllowed, ULONG_MAX, putPagesList } from './io_pagetable.js';
import { IOMMUFD_OBJ, IOPT_PAGES_ACCOUNT, type IommufdCtx, IommufdObject } from './object.js';
import { IoptPages } from './pages.js';
import type { Ucmd } from './ucmd.js';

/** What an IOAS knows of each paging HWPT built on it (ioas->hwpt_list). */
export interface IoasHwpt {
  readonly enforceCacheCoherency: boolean;
}

export class IommufdIoas extends IommufdObject {
  readonly type = IOMMUFD_OBJ.IOAS;
  readonly iopt = new IoPagetable();
  readonly hwptList: IoasHwpt[] = [];

  destroy(): void {
    const { error } = this.iopt.unmapAll();
    if (error && error.errno !== Errno.ENOENT) throw error;
    this.iopt.removeReserved(null);
  }
}

/** iommufd_get_ioas. */
export function getIoas(ictx: IommufdCtx, task: Process | null, id: number): IommufdIoas {
  return ictx.get(task, id, IOMMUFD_OBJ.IOAS, IommufdIoas);
}

const MAP_FLAGS = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE;
const hx = (v: bigint): string => `0x${v.toString(16)}`;

/** conv_iommu_prot: coherent DMA always, plus the access the flags ask for. */
function convIommuProt(flags: number): number {
  let prot = IOMMU_CACHE;
  if (flags & IOMMU_IOAS_MAP_WRITEABLE) prot |= IOMMU_WRITE;
  if (flags & IOMMU_IOAS_MAP_READABLE) prot |= IOMMU_READ;
  return prot;
}

export function ioasAlloc(u: Ucmd<typeof iommu_ioas_alloc>): number {
  if (u.cmd.flags) fail(Errno.EOPNOTSUPP, `iommu_ioas_alloc.flags must be 0, got 0x${u.cmd.flags.toString(16)}`);
  const ioas = u.ictx.alloc(u.task, new IommufdIoas(u.ictx));
  u.cmd.out_ioas_id = ioas.id;
  try {
    u.respond();
  } catch (e) {
    u.ictx.abortAndDestroy(ioas);
    throw e;
  }
  u.ictx.finalize(ioas);
  return 0;
}

export function ioasIovaRanges(u: Ucmd<typeof iommu_ioas_iova_ranges>): number {
  const c = u.cmd;
  if (c.__reserved) fail(Errno.EOPNOTSUPP, 'iommu_ioas_iova_ranges.__reserved must be 0');
  const ioas = getIoas(u.ictx, u.task, c.ioas_id);
  const max = c.num_iovas;
  c.num_iovas = 0;
  c.out_iova_alignment = ioas.iopt.iovaAlignment;
  for (const span of ioas.iopt.reserved.spans(0n, ULONG_MAX)) {
    if (!span.isHole) continue;
    if (c.num_iovas < max) {
      const elm = iommu_iova_range.encode({ start: span.start, last: span.last });
      copyToUser(u.task, c.allowed_iovas + BigInt(c.num_iovas * iommu_iova_range.size), elm, 'writing iommu_iova_range');
    }
    c.num_iovas++;
  }
  u.respond();
  if (c.num_iovas > max) fail(Errno.EMSGSIZE, `num_iovas is ${max} but the IOAS has ${c.num_iovas} ranges (the count was written back)`);
  return 0;
}

export function ioasAllowIovas(u: Ucmd<typeof iommu_ioas_allow_iovas>): number {
  const c = u.cmd;
  if (c.__reserved) fail(Errno.EOPNOTSUPP, 'iommu_ioas_allow_iovas.__reserved must be 0');
  const ioas = getIoas(u.ictx, u.task, c.ioas_id);
  const tree = new IntervalTree<IoptAllowed>();
  for (let i = 0; i < c.num_iovas; i++) {
    const raw = copyFromUser(u.task, c.allowed_iovas + BigInt(i * iommu_iova_range.size), iommu_iova_range.size, `reading allowed_iovas[${i}]`);
    const r = iommu_iova_range.decode(raw);
    if (r.start >= r.last) fail(Errno.EINVAL, `allowed_iovas[${i}] has start ${hx(r.start)} >= last ${hx(r.last)}`);
    const o = tree.iterFirst(r.start, r.last);
    if (o) fail(Errno.EINVAL, `allowed_iovas[${i}] [${hx(r.start)}, ${hx(r.last)}] overlaps an earlier entry [${hx(o.start)}, ${hx(o.last)}]`);
    if (u.task.machine.inject.shouldFail(u.task, 'slab')) fail(Errno.ENOMEM, 'allocating an allowed range: fault injected (fail-nth)');
    tree.insert(new IoptAllowed(r.start, r.last));
  }
  ioas.iopt.setAllowIova(tree);
  return 0;
}

export function ioasMap(u: Ucmd<typeof iommu_ioas_map>): number {
  const c = u.cmd;
  if (c.flags & ~MAP_FLAGS) fail(Errno.EOPNOTSUPP, `iommu_ioas_map.flags has unknown bits 0x${(c.flags & ~MAP_FLAGS).toString(16)}`);
  if (c.__reserved) fail(Errno.EOPNOTSUPP, 'iommu_ioas_map.__reserved must be 0');
  if (c.iova >= ULONG_MAX || c.length >= ULONG_MAX) fail(Errno.EOVERFLOW, `iommu_ioas_map.${c.iova >= ULONG_MAX ? 'iova' : 'length'} is ULONG_MAX`);
  if (!(c.flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE))) fail(Errno.EINVAL, 'iommu_ioas_map.flags needs READABLE or WRITEABLE');
  const ioas = getIoas(u.ictx, u.task, c.ioas_id);
  const fixed = (c.flags & IOMMU_IOAS_MAP_FIXED_IOVA) !== 0;
  c.iova = mapUserPages(u.ictx, u.task, ioas, c.user_va, c.length, fixed ? c.iova : null, convIommuProt(c.flags));
  u.respond();
  return 0;
}

/**
 * iopt_map_user_pages with the context's accounting: a context in per-process (MM) mode charges
 * the mm unless CAP_IPC_LOCK exempts the mapping. Returns the IOVA.
 */
export function mapUserPages(ictx: IommufdCtx, task: Process, ioas: IommufdIoas, uptr: bigint, length: bigint, iova: bigint | null, prot: number): bigint {
  const pages = IoptPages.alloc(task, uptr, length, (prot & IOMMU_WRITE) !== 0);
  if (ictx.accountMode === IOPT_PAGES_ACCOUNT.MM && pages.accountMode === IOPT_PAGES_ACCOUNT.USER) pages.accountMode = IOPT_PAGES_ACCOUNT.MM;
  return ioas.iopt.mapUserPages(task, pages, uptr, length, iova, prot);
}

export function ioasCopy(u: Ucmd<typeof iommu_ioas_copy>): number {
  const c = u.cmd;
  if (c.flags & ~MAP_FLAGS) fail(Errno.EOPNOTSUPP, `iommu_ioas_copy.flags has unknown bits 0x${(c.flags & ~MAP_FLAGS).toString(16)}`);
  if (c.length >= ULONG_MAX || c.src_iova >= ULONG_MAX || c.dst_iova >= ULONG_MAX) fail(Errno.EOVERFLOW, 'iommu_ioas_copy length or an IOVA is ULONG_MAX');
  if (!(c.flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE))) fail(Errno.EINVAL, 'iommu_ioas_copy.flags needs READABLE or WRITEABLE');
  const src = getIoas(u.ictx, u.task, c.src_ioas_id);
  const list = src.iopt.getPages(u.task, c.src_iova, c.length);
  try {
    const dst = getIoas(u.ictx, u.task, c.dst_ioas_id);
    const fixed = (c.flags & IOMMU_IOAS_MAP_FIXED_IOVA) !== 0;
    c.dst_iova = dst.iopt.mapPages(u.task, list, c.length, fixed ? c.dst_iova : null, convIommuProt(c.flags));
    u.respond();
  } finally {
    putPagesList(list);
  }
  return 0;
}

export function ioasUnmap(u: Ucmd<typeof iommu_ioas_unmap>): number {
  const c = u.cmd;
  const ioas = getIoas(u.ictx, u.task, c.ioas_id);
  let res: { unmapped: bigint; error?: KernelError };
  if (c.iova === 0n && c.length === ULONG_MAX) {
    res = ioas.iopt.unmapAll();
    if (res.error) throw res.error;
  } else {
    if (c.iova >= ULONG_MAX || c.length >= ULONG_MAX) fail(Errno.EOVERFLOW, `iommu_ioas_unmap.${c.iova >= ULONG_MAX ? 'iova' : 'length'} is ULONG_MAX`);
    res = ioas.iopt.unmapIova(c.iova, c.length);
    if (res.error) throw res.error;
    if (!res.unmapped) fail(Errno.ENOENT, `no mapping inside [${hx(c.iova)}, ${hx(c.iova + c.length - 1n)}]`);
  }
  c.length = res.unmapped;
  u.respond();
  return 0;
}

/** IOMMU_OPTION_HUGE_PAGES on one IOAS. */
export function ioasOption(u: Ucmd<typeof iommu_option>): void {
  const c = u.cmd;
  const ioas = getIoas(u.ictx, u.task, c.object_id);
  if (c.option_id !== IOMMU_OPTION_HUGE_PAGES) fail(Errno.EOPNOTSUPP, `option_id ${c.option_id} is not a per-IOAS option`);
  if (c.op === IOMMU_OPTION_OP_GET) {
    c.val64 = ioas.iopt.disableLargePages ? 0n : 1n;
    return;
  }
  if (c.op !== IOMMU_OPTION_OP_SET) fail(Errno.EOPNOTSUPP, `iommu_option.op ${c.op} is neither SET nor GET`);
  if (c.val64 === 0n) ioas.iopt.disableLarge();
  else if (c.val64 === 1n) ioas.iopt.enableLarge();
  else fail(Errno.EINVAL, `IOMMU_OPTION_HUGE_PAGES takes 0 or 1, got ${c.val64}`);
}
