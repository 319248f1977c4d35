/**
 * A simulated process address space (mm_struct): VMAs, a page table from virtual page to frame,
 * demand paging, pin_user_pages and the locked_vm/pinned_vm counters that iommufd accounts into.
 *
 * Pages are faulted in on first touch (reads of anonymous memory get a fresh zero frame, as a
 * private zero page would be replaced on pin anyway). Hugetlb VMAs fault a whole huge page of
 * contiguous frames at once. fork copies private pages eagerly — the kernel's copy-on-write gives
 * the same observable result for everything iommufd can see, including the rule that pages pinned
 * for DMA stay with the parent — and shares MAP_SHARED frames.
 *
 * Addresses are bigint at the API; page indexes (address >> 12) are numbers internally.
 */

import { Errno, fail } from '../../errno.js';
import { PAGE_SHIFT, PAGE_SIZE, PAGE_SIZE_N, type Frame, type PhysMem } from './physmem.js';

export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;

export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const MAP_POPULATE = 0x8000;
export const MAP_HUGETLB = 0x40000;

/** pagemap entry bits (fs/proc/task_mmu.c): bits 0-54 the PFN, then these. */
export const PM_MMAP_EXCLUSIVE = 1n << 56n;
export const PM_FILE = 1n << 61n;
export const PM_PRESENT = 1n << 63n;

export const HPAGE_SHIFT = 21;
export const HPAGE_SIZE = 1 << HPAGE_SHIFT;
const HPAGE_PAGES = HPAGE_SIZE / PAGE_SIZE;

/** The top of user space on x86-64 (TASK_SIZE_MAX with 4-level paging). */
export const TASK_SIZE = 0x7ffffffff000n;
const MMAP_BASE = 0x7f0000000000n;

export interface Vma {
  start: bigint;
  /** Exclusive. */
  end: bigint;
  prot: number;
  flags: number;
  pageSize: number;
  /** Huge pages this VMA holds out of the pool (false for a shared hugetlb VMA a fork inherited). */
  poolCharged: boolean;
}

/** Hugetlb pages available to the machine, shared by every process (like nr_hugepages). */
export interface HugePool {
  free: number;
}

const pageIndex = (addr: bigint): number => Number(addr >> BigInt(PAGE_SHIFT));
const alignUp = (v: bigint, a: bigint): bigint => ((v + a - 1n) / a) * a;

export class Mm {
  readonly phys: PhysMem;
  readonly hugePool: HugePool;
  /** Sorted by start, never overlapping. */
  vmas: Vma[] = [];
  readonly pages = new Map<number, Frame>();
  /** mm->locked_vm and mm->pinned_vm, in pages. */
  lockedVm = 0;
  pinnedVm = 0;
  /** False once the owning process exited and the address space was torn down. */
  alive = true;
  /**
   * mmu_notifier release callbacks: run by exit_mmap before the pages go, so a secondary MMU
   * (an IOMMU walking this mm for SVA) stops walking first.
   */
  readonly releaseNotifiers = new Set<() => void>();
  #hugeReserved = 0;
  /** Private pages this address space shares copy-on-write with a fork relative (write-protected). */
  readonly #cow = new Set<number>();

  constructor(phys: PhysMem, hugePool: HugePool) {
    this.phys = phys;
    this.hugePool = hugePool;
  }

  findVma(addr: bigint): Vma | undefined {
    let lo = 0;
    let hi = this.vmas.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const v = this.vmas[mid]!;
      if (addr < v.start) hi = mid - 1;
      else if (addr >= v.end) lo = mid + 1;
      else return v;
    }
    return undefined;
  }

  #overlaps(start: bigint, end: bigint): boolean {
    return this.vmas.some((v) => v.start < end && start < v.end);
  }

  #findFree(length: bigint, align: bigint): bigint {
    let top = MMAP_BASE;
    for (let i = this.vmas.length - 1; i >= -1; i--) {
      const v = this.vmas[i];
      if (v && v.start >= top) continue;
      const floor = v ? v.end : PAGE_SIZE_N * 16n;
      const cand = ((top - length) / align) * align;
      if (cand >= floor && cand + length <= top) return cand;
      if (v) top = v.start < top ? v.start : top;
    }
    return fail(Errno.ENOMEM, `mmap: no free ${length}-byte range in the address space`);
  }

  /** mmap of anonymous memory; returns the address. */
  mmap(addr: bigint, length: bigint, prot: number, flags: number): bigint {
    if (!this.alive) fail(Errno.EFAULT, 'mmap: the address space was torn down');
    if (length <= 0n) fail(Errno.EINVAL, 'mmap: length is 0');
    if (!(flags & MAP_ANONYMOUS)) fail(Errno.ENODEV, 'mmap: only anonymous memory can be simulated in-process');
    if (!!(flags & MAP_SHARED) === !!(flags & MAP_PRIVATE)) fail(Errno.EINVAL, 'mmap: exactly one of MAP_SHARED and MAP_PRIVATE');
    const huge = (flags & MAP_HUGETLB) !== 0;
    const pageSize = huge ? HPAGE_SIZE : PAGE_SIZE;
    const psz = BigInt(pageSize);
    const len = alignUp(length, psz);
    let start: bigint;
    if (flags & MAP_FIXED) {
      if (addr % psz !== 0n) fail(Errno.EINVAL, `mmap: MAP_FIXED address 0x${addr.toString(16)} is not ${pageSize}-aligned`);
      if (addr + len > TASK_SIZE) fail(Errno.ENOMEM, 'mmap: MAP_FIXED range is beyond TASK_SIZE');
      start = addr;
    } else {
      start = this.#findFree(len, psz);
    }
    const nHuge = huge ? Number(len / psz) : 0;
    if (huge && nHuge > this.hugePool.free) fail(Errno.ENOMEM, `mmap: MAP_HUGETLB needs ${nHuge} huge pages, ${this.hugePool.free} free`);
    if (flags & MAP_FIXED) this.munmap(start, len);
    this.hugePool.free -= nHuge;
    this.#hugeReserved += nHuge;
    const vma: Vma = { start, end: start + len, prot, flags, pageSize, poolCharged: huge };
    this.#insertVma(vma);
    if (flags & MAP_POPULATE) {
      for (let a = start; a < vma.end; a += psz) this.#fault(vma, pageIndex(a), false);
    }
    return start;
  }

  #insertVma(vma: Vma): void {
    let i = 0;
    while (i < this.vmas.length && this.vmas[i]!.start < vma.start) i++;
    this.vmas.splice(i, 0, vma);
  }

  /** munmap: drop every page in [addr, addr+length); split VMAs at the edges. */
  munmap(addr: bigint, length: bigint): void {
    if (addr % PAGE_SIZE_N !== 0n) fail(Errno.EINVAL, 'munmap: address is not page aligned');
    if (length <= 0n) fail(Errno.EINVAL, 'munmap: length is 0');
    const end = alignUp(addr + length, PAGE_SIZE_N);
    if (!this.#overlaps(addr, end)) return;
    const keep: Vma[] = [];
    for (const v of this.vmas) {
      if (v.end <= addr || v.start >= end) {
        keep.push(v);
        continue;
      }
      const psz = BigInt(v.pageSize);
      if ((v.start < addr && addr % psz !== 0n) || (v.end > end && end % psz !== 0n)) {
        fail(Errno.EINVAL, 'munmap: range splits a huge page');
      }
      if (v.start < addr) keep.push({ ...v, end: addr });
      if (v.end > end) keep.push({ ...v, start: end });
      const lo = v.start > addr ? v.start : addr;
      const hi = v.end < end ? v.end : end;
      for (let p = pageIndex(lo); p < pageIndex(hi); p++) this.#dropPage(p);
      if (v.pageSize === HPAGE_SIZE && v.poolCharged) {
        const n = Number((hi - lo) / psz);
        this.#hugeReserved -= n;
        this.hugePool.free += n;
      }
    }
    this.vmas = keep.sort((a, b) => (a.start < b.start ? -1 : 1));
  }

  #dropPage(p: number): void {
    const f = this.pages.get(p);
    if (!f) return;
    this.pages.delete(p);
    this.#cow.delete(p);
    this.phys.put(f);
  }

  /**
   * Handle a fault at page `p` inside `vma`; returns the frame mapped there. A write, or an
   * `unshare` (what FOLL_PIN asks of a page it pins, even for reading), takes a copy-on-write page
   * for this address space alone: the frame itself once no one else maps it, else a copy.
   */
  #fault(vma: Vma, p: number, write: boolean, unshare = false): Frame {
    if (write ? !(vma.prot & PROT_WRITE) : !(vma.prot & (PROT_READ | PROT_WRITE))) {
      fail(Errno.EFAULT, `${write ? 'write' : 'read'} of 0x${(BigInt(p) << BigInt(PAGE_SHIFT)).toString(16)} violates the mapping's protection`);
    }
    const have = this.pages.get(p);
    if (have && (write || unshare) && this.#cow.has(p)) return this.#breakCow(p, have);
    if (have) return have;
    if (vma.pageSize === HPAGE_SIZE) {
      const first = Math.floor(p / HPAGE_PAGES) * HPAGE_PAGES;
      const frames = this.phys.allocContig(HPAGE_PAGES);
      frames.forEach((f, i) => this.pages.set(first + i, f));
      return this.pages.get(p)!;
    }
    const f = this.phys.alloc();
    this.pages.set(p, f);
    return f;
  }

  /** wp_page_reuse or wp_page_copy: page `p` becomes this address space's own. */
  #breakCow(p: number, f: Frame): Frame {
    this.#cow.delete(p);
    // Mappings hold the references pins do not: the last one reuses the frame.
    if (f.refs - f.pins === 1) return f;
    const nf = this.phys.alloc();
    if (f.touched) nf.data.set(f.data);
    this.pages.set(p, nf);
    this.phys.put(f);
    return nf;
  }

  /**
   * The CPU page table at `addr` as hardware walking it sees it: the frame if one is present and
   * the access the VMA grants; null if nothing is present there (no fault is taken).
   */
  walkUser(addr: bigint): { frame: Frame; read: boolean; write: boolean } | null {
    if (!this.alive || addr < 0n || addr >= TASK_SIZE) return null;
    const vma = this.findVma(addr);
    const frame = vma ? this.pages.get(pageIndex(addr)) : undefined;
    if (!vma || !frame) return null;
    // A copy-on-write page is write-protected until a write fault takes it.
    return { frame, read: (vma.prot & PROT_READ) !== 0, write: (vma.prot & PROT_WRITE) !== 0 && !this.#cow.has(pageIndex(addr)) };
  }

  /**
   * /proc/PID/pagemap entries for `count` pages from page-aligned `addr` (pagemap_pmd_range's
   * view): PM_PRESENT for a present page, with its PFN when `showPfn`; PM_FILE for a shared
   * mapping's page (shmem is not anonymous); PM_MMAP_EXCLUSIVE when only this address space maps
   * it. A page not present, or no VMA, is 0 (no soft-dirty: the oracle's kernel has none).
   */
  pagemap(addr: bigint, count: number, showPfn: boolean): bigint[] {
    const out: bigint[] = [];
    for (let i = 0; i < count; i++) {
      const a = addr + BigInt(i) * PAGE_SIZE_N;
      const vma = this.alive ? this.findVma(a) : undefined;
      const f = vma ? this.pages.get(pageIndex(a)) : undefined;
      if (!vma || !f) {
        out.push(0n);
        continue;
      }
      let e = PM_PRESENT | (showPfn ? BigInt(f.pfn) : 0n);
      if (vma.flags & MAP_SHARED) e |= PM_FILE;
      // Mappings hold the references pins do not (page_mapcount == 1).
      if (f.refs - f.pins === 1) e |= PM_MMAP_EXCLUSIVE;
      out.push(e);
    }
    return out;
  }

  /**
   * handle_mm_fault on behalf of a device (iommu_sva_handle_mm): false when the mm is gone, no VMA
   * covers `addr` or the VMA does not allow the access; otherwise the page is made present.
   */
  handleDeviceFault(addr: bigint, write: boolean): boolean {
    if (!this.alive || addr < 0n || addr >= TASK_SIZE) return false;
    const vma = this.findVma(addr);
    if (!vma || !(vma.prot & (write ? PROT_WRITE : PROT_READ))) return false;
    this.#fault(vma, pageIndex(addr), write);
    return true;
  }

  /** The frame backing `addr`, faulting it in; EFAULT where nothing is mapped. */
  frameAt(addr: bigint, write: boolean): Frame {
    if (!this.alive) fail(Errno.EFAULT, 'the address space was torn down');
    const vma = addr < TASK_SIZE ? this.findVma(addr) : undefined;
    if (!vma) fail(Errno.EFAULT, `address 0x${addr.toString(16)} is not mapped`);
    return this.#fault(vma, pageIndex(addr), write);
  }

  /** Read `length` bytes at `addr` (the kernel's copy_from_user). */
  read(addr: bigint, length: number): Uint8Array {
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const a = addr + BigInt(done);
      const off = Number(a & (PAGE_SIZE_N - 1n));
      const n = Math.min(PAGE_SIZE - off, length - done);
      const f = this.frameAt(a, false);
      out.set(f.read(off, n), done);
      done += n;
    }
    return out;
  }

  /** Write bytes at `addr` (the kernel's copy_to_user). */
  write(addr: bigint, data: Uint8Array): void {
    let done = 0;
    while (done < data.length) {
      const a = addr + BigInt(done);
      const off = Number(a & (PAGE_SIZE_N - 1n));
      const n = Math.min(PAGE_SIZE - off, data.length - done);
      const f = this.frameAt(a, true);
      f.write(off, data.subarray(done, done + n));
      done += n;
    }
  }

  /**
   * pin_user_pages: fault in and pin `npages` pages from page-aligned `addr`. All or nothing: on
   * EFAULT no pin is left behind.
   */
  pinPages(addr: bigint, npages: number, write: boolean): Frame[] {
    const out: Frame[] = [];
    try {
      for (let i = 0; i < npages; i++) {
        const f = this.pinFrame(addr + BigInt(i) * PAGE_SIZE_N, write);
        this.phys.get(f);
        f.pins++;
        out.push(f);
      }
    } catch (e) {
      for (const f of out) unpinFrame(this.phys, f);
      throw e;
    }
    return out;
  }

  /** The frame GUP pins at `addr`: faulted in and, if shared copy-on-write, unshared first. */
  protected pinFrame(addr: bigint, write: boolean): Frame {
    if (!this.alive) fail(Errno.EFAULT, 'the address space was torn down');
    const vma = addr < TASK_SIZE ? this.findVma(addr) : undefined;
    if (!vma) fail(Errno.EFAULT, `address 0x${addr.toString(16)} is not mapped`);
    return this.#fault(vma, pageIndex(addr), write, (vma.flags & MAP_SHARED) === 0);
  }

  /**
   * A copy of this address space for a forked child: shared mappings shared, private pages
   * shared copy-on-write (copy_present_pte) except pinned ones, which the child gets a copy of at
   * once (page_needs_cow_for_dma: DMA keeps going to the parent's page).
   */
  fork(): Mm {
    const child = new Mm(this.phys, this.hugePool);
    // Shared hugetlb mappings are shared, not copied; private ones need pages of their own.
    const privateHuge = (v: Vma): boolean => v.pageSize === HPAGE_SIZE && !(v.flags & MAP_SHARED);
    const hugeNeeded = this.vmas.filter(privateHuge).reduce((n, v) => n + Number((v.end - v.start) / BigInt(HPAGE_SIZE)), 0);
    if (hugeNeeded > this.hugePool.free) fail(Errno.ENOMEM, 'fork: not enough free huge pages to copy private hugetlb mappings');
    this.hugePool.free -= hugeNeeded;
    child.#hugeReserved = hugeNeeded;
    child.vmas = this.vmas.map((v) => ({ ...v, poolCharged: v.pageSize === HPAGE_SIZE && privateHuge(v) }));
    for (const v of this.vmas) {
      const shared = (v.flags & MAP_SHARED) !== 0;
      for (let p = pageIndex(v.start); p < pageIndex(v.end); p++) {
        const f = this.pages.get(p);
        if (!f) continue;
        if (shared) {
          this.phys.get(f);
          child.pages.set(p, f);
        } else if (v.pageSize === HPAGE_SIZE) {
          // Copy a whole huge page at its first subpage; later subpages are filled by that copy.
          if (child.pages.has(p)) continue;
          const first = Math.floor(p / HPAGE_PAGES) * HPAGE_PAGES;
          const frames = this.phys.allocContig(HPAGE_PAGES);
          frames.forEach((nf, i) => {
            const src = this.pages.get(first + i);
            if (src?.touched) nf.data.set(src.data);
            child.pages.set(first + i, nf);
          });
        } else if (f.pins > 0) {
          const nf = this.phys.alloc();
          if (f.touched) nf.data.set(f.data);
          child.pages.set(p, nf);
        } else {
          this.phys.get(f);
          child.pages.set(p, f);
          this.#cow.add(p);
          child.#cow.add(p);
        }
      }
    }
    return child;
  }

  /** exit_mmap: tear down every mapping. Pinned frames live on until unpinned. */
  teardown(): void {
    if (!this.alive) return;
    for (const release of [...this.releaseNotifiers]) release();
    this.releaseNotifiers.clear();
    for (const f of this.pages.values()) this.phys.put(f);
    this.pages.clear();
    this.#cow.clear();
    this.vmas = [];
    this.hugePool.free += this.#hugeReserved;
    this.#hugeReserved = 0;
    this.alive = false;
  }
}

/** unpin_user_page. */
export function unpinFrame(phys: PhysMem, f: Frame): void {
  if (f.pins <= 0) throw new Error(`unpin of unpinned frame pfn ${f.pfn}`);
  f.pins--;
  phys.put(f);
}
