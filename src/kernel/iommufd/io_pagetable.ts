/**
 * io_pagetable: the IOVA space of one IOAS.
 *
 * Three interval trees partition what userspace sees: `areas` (mapped ranges, each a slice of an
 * iopt_pages), `reserved` (ranges nothing may be mapped in: domain apertures, device reserved
 * regions, test reservations — tagged by owner) and `allowed` (if non-empty, the only ranges
 * kernel-chosen IOVAs may come from). Areas never overlap each other or a reserved range.
 *
 * Terms: `iova`/`start` is the first byte, `last` the last byte (inclusive), `length` a byte count.
 * `iovaAlignment` is the largest minimum page size of any attached domain or pinning access (1
 * with none); every area's IOVA, length and user page offset honour it.
 *
 * Domains (IO page tables of attached HWPTs) are filled from every area when added and emptied
 * when removed; while at least one exists, each area's pages are pinned once on its behalf.
 */

import { Errno, KernelError, fail } from '../../errno.js';
import { IntervalTree, type IntervalNode } from '../lib/interval_tree.js';
import { type Frame, PAGE_SIZE_N } from '../mm/physmem.js';
import type { Process } from '../process.js';
import type { IoptPages } from './pages.js';

export const ULONG_MAX = (1n << 64n) - 1n;
export const IOMMU_READ = 1;
export const IOMMU_WRITE = 2;
export const IOMMU_CACHE = 4;

/** HPAGE_SIZE when CONFIG_TRANSPARENT_HUGEPAGE is set. The oracle's 6.12 kernel has it off. */
export const IOPT_MAX_AUTO_ALIGNMENT = PAGE_SIZE_N;

export class IoptArea implements IntervalNode {
  start = 0n;
  last = 0n;
  /** Null while the area is being created or destroyed. */
  pages: IoptPages | null = null;
  /** Byte offset into the first page. */
  pageOffset = 0;
  /** First and last page index of `pages` this area covers. */
  pagesStart = 0;
  pagesLast = 0;
  iommuProt = 0;
  numAccesses = 0;
  preventAccess = false;

  get length(): bigint {
    return this.last - this.start + 1n;
  }

  /** iopt_area_start_byte: byte offset into the pages run for `iova` inside this area. */
  startByte(iova: bigint): bigint {
    return iova - this.start + BigInt(this.pageOffset) + BigInt(this.pagesStart) * PAGE_SIZE_N;
  }
}

export class IoptReserved implements IntervalNode {
  constructor(
    public start: bigint,
    public last: bigint,
    public owner: unknown,
  ) {}
}

export class IoptAllowed implements IntervalNode {
  constructor(
    public start: bigint,
    public last: bigint,
  ) {}
}

/** What the io_pagetable needs from an IO page table it keeps filled. */
export interface IoptDomain {
  /** Supported page sizes; the smallest sets the IOVA alignment. */
  readonly pgsizeBitmap: bigint;
  readonly apertureStart: bigint;
  readonly apertureEnd: bigint;
  /**
   * Map `length` bytes at `iova` onto `frames` starting `pageOffset` bytes into the first.
   * `small`: map page by page, never merging runs (disable_large_pages, VFIO type1 v0), so any
   * page boundary can later be unmapped on its own. `task` is the caller, for fault injection.
   */
  map(iova: bigint, frames: readonly Frame[], pageOffset: number, length: bigint, prot: number, opts?: DomainMapOptions): void;
  unmap(iova: bigint, length: bigint): void;
}

export interface DomainMapOptions {
  task: Process | null;
  small: boolean;
}

/** An in-kernel user of the IOAS (iommufd_access as the io_pagetable sees it). */
export interface IoptAccess {
  /** PAGE_SIZE for users that pin pages, else 1. */
  readonly iovaAlignment: bigint;
  /** Ask the user to drop whatever it holds in [iova, iova + length). */
  notifyUnmap(iova: bigint, length: bigint): void;
}

/** One slice of pages to place at consecutive IOVAs (iopt_pages_list). */
export interface PagesListElem {
  pages: IoptPages;
  startByte: bigint;
  length: bigint;
}

const lowestSetBit = (v: bigint): bigint => v & -v;
const roundupPow2 = (v: bigint): bigint => {
  let p = 1n;
  while (p < v) p <<= 1n;
  return p;
};
const hx = (v: bigint): string => `0x${v.toString(16)}`;

export class IoPagetable {
  readonly areas = new IntervalTree<IoptArea>();
  readonly reserved = new IntervalTree<IoptReserved>();
  allowed = new IntervalTree<IoptAllowed>();
  readonly domains: IoptDomain[] = [];
  /** In-kernel users of this IOAS (iopt->access_list), told when a range they may hold is unmapped. */
  readonly accesses = new Set<IoptAccess>();
  iovaAlignment = 1n;
  disableLargePages = false;

  /** iopt_alloc_iova: the lowest suitable hole, preserving uptr's offset in its page. */
  allocIova(uptr: bigint, length: bigint): bigint {
    const pageOffset = uptr % PAGE_SIZE_N;
    if (length === 0n || length >= ULONG_MAX / 2n) fail(Errno.EOVERFLOW, `length ${hx(length)} cannot be placed automatically`);
    let align = uptr === 0n ? roundupPow2(length) : roundupPow2(length) < lowestSetBit(uptr) ? roundupPow2(length) : lowestSetBit(uptr);
    if (align >= IOPT_MAX_AUTO_ALIGNMENT) align = IOPT_MAX_AUTO_ALIGNMENT;
    if (align < this.iovaAlignment) {
      fail(Errno.EINVAL, `user_va ${hx(uptr)} and length ${hx(length)} allow only ${hx(align)} IOVA alignment, below the IOAS's ${hx(this.iovaAlignment)}`);
    }
    const fit = (start: bigint, last: bigint): bigint | null => {
      const aligned = ((start + align - 1n) & ~(align - 1n)) | pageOffset;
      if (start + align - 1n > ULONG_MAX) return null;
      if (aligned >= last || last - aligned < length - 1n) return null;
      return aligned;
    };
    const lo = PAGE_SIZE_N;
    const hi = ULONG_MAX - PAGE_SIZE_N;
    const allowedSpans = this.allowed.isEmpty() ? [{ isHole: false, start: lo, last: hi }] : this.allowed.spans(lo, hi);
    for (const a of allowedSpans) {
      if (a.isHole) continue;
      // Like __alloc_iova_check_used, the walk of this allowed span starts at its aligned start.
      const from = fit(a.start, a.last);
      if (from === null) continue;
      // The holes between areas, found in O(log n), then cut by the (few) reserved ranges: the
      // same maximal free ranges interval_tree_double_span_iter walks, lowest first.
      for (const h of this.areas.holes(from, a.last, length)) {
        for (const u of this.reserved.spans(h.start, h.last)) {
          if (!u.isHole) continue;
          const at = fit(u.start, u.last);
          if (at !== null) return at;
        }
      }
    }
    return fail(Errno.ENOSPC, `no free IOVA range of ${hx(length)} bytes with ${hx(align)} alignment`);
  }

  /** iopt_check_iova: a fixed IOVA must be aligned, fit, avoid reserved ranges and areas. */
  checkIova(iova: bigint, length: bigint): void {
    if (iova & (this.iovaAlignment - 1n)) fail(Errno.EINVAL, `iova ${hx(iova)} is not aligned to the IOAS's ${hx(this.iovaAlignment)}`);
    const last = iova + length - 1n;
    if (last > ULONG_MAX) fail(Errno.EOVERFLOW, `iova ${hx(iova)} + length ${hx(length)} overflows`);
    const r = this.reserved.iterFirst(iova, last);
    if (r) fail(Errno.EINVAL, `[${hx(iova)}, ${hx(last)}] intersects the reserved range [${hx(r.start)}, ${hx(r.last)}]`);
    const a = this.areas.iterFirst(iova, last);
    if (a) fail(Errno.EEXIST, `[${hx(iova)}, ${hx(last)}] overlaps the mapping at [${hx(a.start)}, ${hx(a.last)}]`);
  }

  /**
   * iopt_map_pages: place every slice at consecutive IOVAs (chosen here when `iova` is null),
   * fill the domains, then publish the areas. Returns the first IOVA. All or nothing.
   */
  mapPages(task: Process | null, list: readonly PagesListElem[], length: bigint, iova: bigint | null, prot: number): bigint {
    const inject = list[0]?.pages.sourceTask.machine.inject;
    for (let i = 0; i < list.length; i++) {
      if (inject?.shouldFail(task, 'slab')) fail(Errno.ENOMEM, 'allocating an iopt_area: fault injected (fail-nth)');
    }
    if (length & (this.iovaAlignment - 1n) || length === 0n) {
      fail(Errno.EINVAL, length === 0n ? 'length is 0' : `length ${hx(length)} is not a multiple of the IOAS's IOVA alignment ${hx(this.iovaAlignment)}`);
    }
    let dst: bigint;
    if (iova === null) {
      const first = list[0]!;
      dst = this.allocIova(first.pages.uptr + first.startByte, length);
      this.checkIova(dst, length);
    } else {
      this.checkIova(iova, length);
      dst = iova;
    }
    const created: IoptArea[] = [];
    try {
      let at = dst;
      for (const elm of list) {
        created.push(this.#insertArea(elm, at, prot));
        at += elm.length;
      }
      const filled: IoptArea[] = [];
      try {
        for (const [k, area] of created.entries()) {
          this.#fillDomains(task, area, list[k]!.pages);
          filled.push(area);
        }
      } catch (e) {
        for (const [k, area] of filled.entries()) this.#unfillDomains(area, list[k]!.pages);
        throw e;
      }
    } catch (e) {
      for (const area of created) this.areas.remove(area);
      throw e;
    }
    created.forEach((area, k) => (area.pages = list[k]!.pages.get()));
    return dst;
  }

  /** iopt_insert_area: an area with no pages yet, reserving its IOVA range. */
  #insertArea(elm: PagesListElem, iova: bigint, prot: number): IoptArea {
    if (prot & IOMMU_WRITE && !elm.pages.writable) fail(Errno.EPERM, 'a writeable mapping of pages that were mapped read-only');
    const area = new IoptArea();
    area.iommuProt = prot;
    area.pageOffset = Number(elm.startByte % PAGE_SIZE_N);
    if (BigInt(area.pageOffset) & (this.iovaAlignment - 1n)) {
      fail(Errno.EINVAL, `user_va offset ${hx(BigInt(area.pageOffset))} in its page is not aligned to the IOAS's ${hx(this.iovaAlignment)}`);
    }
    area.start = iova;
    area.last = iova + elm.length - 1n;
    if (area.last > ULONG_MAX) fail(Errno.EOVERFLOW, `iova ${hx(iova)} + length overflows`);
    area.pagesStart = Number(elm.startByte / PAGE_SIZE_N);
    area.pagesLast = Number((elm.startByte + elm.length - 1n) / PAGE_SIZE_N);
    this.areas.insert(area);
    return area;
  }

  #fillDomains(task: Process | null, area: IoptArea, pages: IoptPages): void {
    if (!this.domains.length) return;
    const frames = pages.pin(task, area.pagesStart, area.pagesLast);
    const done: IoptDomain[] = [];
    try {
      for (const d of this.domains) {
        d.map(area.start, frames, area.pageOffset, area.length, area.iommuProt, { task, small: this.disableLargePages });
        done.push(d);
      }
    } catch (e) {
      for (const d of done) d.unmap(area.start, area.length);
      pages.unpin(area.pagesStart, area.pagesLast);
      throw e;
    }
  }

  #unfillDomains(area: IoptArea, pages: IoptPages): void {
    if (!this.domains.length) return;
    for (const d of this.domains) d.unmap(area.start, area.length);
    pages.unpin(area.pagesStart, area.pagesLast);
  }

  /** iopt_map_user_pages. */
  mapUserPages(task: Process, pages: IoptPages, uptr: bigint, length: bigint, iova: bigint | null, prot: number): bigint {
    try {
      return this.mapPages(task, [{ pages, startByte: uptr - pages.uptr, length }], length, iova, prot);
    } finally {
      pages.put();
    }
  }

  /**
   * iopt_get_pages: the slices behind [iova, iova+length), which must be covered by contiguous
   * areas. Each slice holds a reference on its pages; release them with `putPagesList`.
   */
  getPages(task: Process | null, iova: bigint, length: bigint): PagesListElem[] {
    if (length === 0n) fail(Errno.EINVAL, 'length is 0');
    const last = iova + length - 1n;
    if (last > ULONG_MAX) fail(Errno.EOVERFLOW, `iova ${hx(iova)} + length ${hx(length)} overflows`);
    const list: PagesListElem[] = [];
    let cur = iova;
    let area = this.areas.iterFirst(iova, iova);
    try {
      while (area && area.pages && area.start <= cur) {
        if (area.pages.sourceTask.machine.inject.shouldFail(task, 'slab')) fail(Errno.ENOMEM, 'allocating a pages list entry: fault injected (fail-nth)');
        const end = last < area.last ? last : area.last;
        list.push({ pages: area.pages.get(), startByte: area.startByte(cur), length: end - cur + 1n });
        if (end === last) return list;
        cur = end + 1n;
        area = this.areas.iterFirst(cur, cur);
      }
      fail(Errno.ENOENT, `[${hx(iova)}, ${hx(last)}] is not fully mapped: nothing contiguous at ${hx(cur)}`);
    } catch (e) {
      putPagesList(list);
      throw e;
    }
  }

  /**
   * iopt_unmap_iova_range: remove every area inside [start, last]. An area only partly inside
   * stops the walk with ENOENT; areas removed before it stay removed, as in the kernel.
   */
  unmapRange(start: bigint, last: bigint): { unmapped: bigint; error?: KernelError } {
    let unmapped = 0n;
    let cur = start;
    let tries = 0;
    let area: IoptArea | null;
    while ((area = this.areas.iterFirst(cur, last))) {
      if (!area.pages) return { unmapped, error: kerr(Errno.EBUSY, `the mapping at ${hx(area.start)} is being created or destroyed`) };
      if (area.start < start || area.last > last) {
        return { unmapped, error: kerr(Errno.ENOENT, `the mapping [${hx(area.start)}, ${hx(area.last)}] is only partly inside [${hx(start)}, ${hx(last)}]; mappings cannot be split`) };
      }
      if (area.start !== cur) tries = 0;
      if (area.numAccesses) {
        // Block new pins, ask every access to let go, and look again.
        cur = area.start;
        area.preventAccess = true;
        for (const a of [...this.accesses]) a.notifyUnmap(area.start, area.length);
        if (++tries > 100) {
          return { unmapped, error: kerr(Errno.EDEADLK, `the mapping at ${hx(area.start)} has in-kernel users that did not let go after 100 requests`) };
        }
        continue;
      }
      const pages = area.pages;
      area.pages = null;
      this.#unfillDomains(area, pages);
      this.areas.remove(area);
      pages.put();
      unmapped += area.length;
      if (area.last >= last) break;
      cur = area.last + 1n;
    }
    return { unmapped };
  }

  /** iopt_unmap_iova. */
  unmapIova(iova: bigint, length: bigint): { unmapped: bigint; error?: KernelError } {
    if (length === 0n) return { unmapped: 0n, error: kerr(Errno.EINVAL, 'length is 0') };
    const last = iova + length - 1n;
    if (last > ULONG_MAX) return { unmapped: 0n, error: kerr(Errno.EOVERFLOW, `iova ${hx(iova)} + length ${hx(length)} overflows`) };
    return this.unmapRange(iova, last);
  }

  unmapAll(): { unmapped: bigint; error?: KernelError } {
    return this.unmapRange(0n, ULONG_MAX);
  }

  /**
   * iopt_cut_iova: split the areas holding each IOVA so that IOVA ends an area (VFIO TYPE1 v0
   * unmaps inside mappings this way). Stops at the first split that fails.
   */
  cutIova(task: Process | null, iovas: readonly bigint[]): void {
    for (const iova of iovas) {
      const area = this.areas.iterFirst(iova, iova);
      if (area) this.#splitArea(task, area, iova);
    }
  }

  /** iopt_area_split: replace `area` by one ending at `iova` and one starting after it. */
  #splitArea(task: Process | null, area: IoptArea, iova: bigint): void {
    if (iova === area.start || iova === area.last) return;
    const pages = area.pages;
    if (!pages || area.preventAccess) fail(Errno.EBUSY, `the mapping at ${hx(area.start)} is being created or destroyed`);
    const newStart = iova + 1n;
    const align = this.iovaAlignment - 1n;
    if (newStart & align || area.startByte(newStart) & align) fail(Errno.EINVAL, `cannot cut the mapping at ${hx(newStart)}: not aligned to ${hx(this.iovaAlignment)}`);
    const inject = pages.sourceTask.machine.inject;
    for (let i = 0; i < 2; i++) if (inject.shouldFail(task, 'slab')) fail(Errno.ENOMEM, 'allocating a split iopt_area: fault injected (fail-nth)');
    if (area.numAccesses) fail(Errno.EINVAL, `cannot cut the mapping at ${hx(area.start)}: in-kernel users hold pages of it`);
    if (this.domains.length && !this.disableLargePages) fail(Errno.EINVAL, `cannot cut the mapping at ${hx(area.start)}: a domain may map it with huge pages`);
    this.areas.remove(area);
    const lhs = this.#insertArea({ pages, startByte: area.startByte(area.start), length: newStart - area.start }, area.start, area.iommuProt);
    const rhs = this.#insertArea({ pages, startByte: area.startByte(newStart), length: area.last - newStart + 1n }, newStart, area.iommuProt);
    lhs.pages = pages;
    rhs.pages = pages.get();
    // A page both halves touch now has one more holder on behalf of the domains.
    if (this.domains.length && lhs.pagesLast === rhs.pagesStart) pages.pin(task, rhs.pagesStart, rhs.pagesStart);
  }

  /** iopt_set_allow_iova: replace the allowed list; refused if any entry hits a reserved range. */
  setAllowIova(tree: IntervalTree<IoptAllowed>): void {
    for (const a of tree) {
      const r = this.reserved.iterFirst(a.start, a.last);
      if (r) fail(Errno.EADDRINUSE, `allowed range [${hx(a.start)}, ${hx(a.last)}] intersects the reserved range [${hx(r.start)}, ${hx(r.last)}]`);
    }
    this.allowed = tree;
  }

  /** iopt_reserve_iova: refused over a mapping or an allowed range. */
  reserveIova(start: bigint, last: bigint, owner: unknown, task: Process | null = null): void {
    const a = this.areas.iterFirst(start, last);
    if (a) fail(Errno.EADDRINUSE, `reserving [${hx(start)}, ${hx(last)}] would cover the mapping at [${hx(a.start)}, ${hx(a.last)}]`);
    const al = this.allowed.iterFirst(start, last);
    if (al) fail(Errno.EADDRINUSE, `reserving [${hx(start)}, ${hx(last)}] would cover the allowed range [${hx(al.start)}, ${hx(al.last)}]`);
    if (task?.machine.inject.shouldFail(task, 'slab')) fail(Errno.ENOMEM, 'allocating a reserved range: fault injected (fail-nth)');
    this.reserved.insert(new IoptReserved(start, last, owner));
  }

  removeReserved(owner: unknown): void {
    for (const r of [...this.reserved]) if (r.owner === owner) this.reserved.remove(r);
  }

  /** iopt_check_iova_alignment: every area must already honour a new, larger alignment. */
  checkIovaAlignment(align: bigint): void {
    for (const a of this.areas) {
      if (a.start & (align - 1n) || a.length & (align - 1n) || BigInt(a.pageOffset) & (align - 1n)) {
        fail(Errno.EADDRINUSE, `the mapping [${hx(a.start)}, ${hx(a.last)}] is not aligned to ${hx(align)}`);
      }
    }
  }

  /** iopt_calculate_iova_alignment: recompute from large-page policy, domains and accesses. */
  calculateIovaAlignment(): void {
    let align = this.disableLargePages ? PAGE_SIZE_N : 1n;
    for (const d of this.domains) {
      const min = lowestSetBit(d.pgsizeBitmap);
      if (min > align) align = min;
    }
    for (const a of this.accesses) if (a.iovaAlignment > align) align = a.iovaAlignment;
    if (align > this.iovaAlignment) this.checkIovaAlignment(align);
    this.iovaAlignment = align;
  }

  /** iopt_disable_large_pages: refused once domains hold mappings. */
  disableLarge(): void {
    if (this.disableLargePages) return;
    if (this.domains.length && !this.areas.isEmpty()) fail(Errno.EINVAL, 'huge pages cannot be turned off while attached domains hold mappings');
    this.disableLargePages = true;
    try {
      this.calculateIovaAlignment();
    } catch (e) {
      this.disableLargePages = false;
      throw e;
    }
  }

  enableLarge(): void {
    this.disableLargePages = false;
    this.calculateIovaAlignment();
  }

  /** iopt_add_access: the new user's alignment must fit every existing area. */
  addAccess(access: IoptAccess): void {
    this.accesses.add(access);
    try {
      this.calculateIovaAlignment();
    } catch (e) {
      this.accesses.delete(access);
      throw e;
    }
  }

  /** iopt_remove_access. */
  removeAccess(access: IoptAccess): void {
    this.accesses.delete(access);
    this.calculateIovaAlignment();
  }

  /**
   * iopt_table_add_domain: raise the alignment, reserve outside the aperture, fill the domain
   * from every area. All or nothing.
   */
  addDomain(task: Process | null, domain: IoptDomain): void {
    const min = lowestSetBit(domain.pgsizeBitmap);
    const newAlign = min > this.iovaAlignment ? min : this.iovaAlignment;
    if (newAlign > PAGE_SIZE_N) fail(Errno.EINVAL, `the domain's smallest page ${hx(min)} is larger than PAGE_SIZE`);
    if (newAlign !== this.iovaAlignment) this.checkIovaAlignment(newAlign);
    try {
      if (domain.apertureStart !== 0n) this.reserveIova(0n, domain.apertureStart - 1n, domain, task);
      if (domain.apertureEnd !== ULONG_MAX) this.reserveIova(domain.apertureEnd + 1n, ULONG_MAX, domain, task);
      // xa_reserve of the domain's slot.
      if (task?.machine.inject.shouldFail(task, 'slab')) fail(Errno.ENOMEM, 'reserving the domain slot: fault injected (fail-nth)');
      const filled: IoptArea[] = [];
      try {
        for (const area of this.areas) {
          if (!area.pages) continue;
          const frames = this.domains.length
            ? Array.from({ length: area.pagesLast - area.pagesStart + 1 }, (_, k) => area.pages!.frameAt(area.pagesStart + k)!)
            : area.pages.pin(task, area.pagesStart, area.pagesLast);
          try {
            domain.map(area.start, frames, area.pageOffset, area.length, area.iommuProt, { task, small: this.disableLargePages });
          } catch (e) {
            if (!this.domains.length) area.pages.unpin(area.pagesStart, area.pagesLast);
            throw e;
          }
          filled.push(area);
        }
      } catch (e) {
        for (const area of filled) {
          domain.unmap(area.start, area.length);
          if (!this.domains.length) area.pages!.unpin(area.pagesStart, area.pagesLast);
        }
        throw e;
      }
    } catch (e) {
      this.removeReserved(domain);
      throw e;
    }
    this.iovaAlignment = newAlign;
    this.domains.push(domain);
  }

  /** iopt_table_remove_domain: empty the domain and drop its reservations. */
  removeDomain(domain: IoptDomain): void {
    const i = this.domains.indexOf(domain);
    if (i < 0) throw new Error('removing a domain the io_pagetable does not hold');
    this.domains.splice(i, 1);
    for (const area of this.areas) {
      if (!area.pages) continue;
      domain.unmap(area.start, area.length);
      if (!this.domains.length) area.pages.unpin(area.pagesStart, area.pagesLast);
    }
    this.removeReserved(domain);
    this.calculateIovaAlignment();
  }
}

/** iopt_free_pages_list. */
export function putPagesList(list: readonly PagesListElem[]): void {
  for (const e of list) e.pages.put();
}

function kerr(errno: number, reason: string): KernelError {
  return new KernelError(errno, reason);
}
