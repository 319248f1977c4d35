/**
 * The VFIO type1 IOMMU backend of the legacy container (vfio_iommu_type1.c), as of Linux 6.12.
 *
 * A container that picked TYPE1 or TYPE1v2 owns one `VfioIommu`: a list of IOMMU paging domains,
 * each translating for one or more IOMMU groups, and a tree of DMA mappings (`VfioDma`, one per
 * VFIO_IOMMU_MAP_DMA) that every domain carries identically. The user memory behind a mapping is
 * pinned when it is mapped and stays pinned until it is unmapped; the pages are charged to the
 * mapping process's mm (`locked_vm`, checked against RLIMIT_MEMLOCK unless the mapper had
 * CAP_IPC_LOCK — the pages are charged either way). Mappings are never split: TYPE1v2 refuses an
 * unmap that cuts one (EINVAL); TYPE1 (v1) unmaps whole mappings whose first IOVA the range
 * covers and silently skips ranges that start inside one.
 *
 * Attaching a group allocates a new paging domain from the group's first device and attaches the
 * group to it, then checks what the container already promised userspace: the new aperture must
 * still hold every mapping, the group's reserved regions must not hit one, the valid IOVA list
 * (apertures minus every group's reserved regions) must not become empty, and the group's MSIs
 * must be isolated unless `allowUnsafeInterrupts`. If an existing domain of the same driver and
 * the same cache-coherency enforcement accepts the group, the new domain is dropped and that one
 * is shared; otherwise every mapping is replayed into the new domain. Detaching the last group of
 * a domain frees it; detaching the container's last group unmaps and unpins everything.
 *
 * Dirty tracking (VFIO_IOMMU_DIRTY_PAGES) is type1's "pinned-pages scope": IOMMU-backed groups
 * cannot say what they wrote, so every page of every mapped DMA is reported dirty. Each mapping
 * keeps the kernel's per-DMA bitmap words, so what userspace reads back — including the bits the
 * kernel's shift-and-merge leaves behind for unaligned ranges — matches 6.12 byte for byte.
 *
 * Not modelled: emulated-IOMMU (mdev) groups and their external pin API, fine-grained superpage
 * probing (only changes how unmaps are chunked), and the MSI cookie beyond noting its base.
 * Fail-nth sites: the state, group, domain and mapping allocations, and whatever the IOMMU driver
 * allocates — not every small allocation the kernel makes on these paths.
 *
 * Conventions: IOVAs, sizes and user addresses are bigint; `last` is inclusive, `end` exclusive.
 * This file is the engine and never sees an ioctl struct; vfio_iommu_type1_info.ts decodes them
 * and holds the ops object the container registers (re-exported here).
 */

import { Errno, KernelError, fail } from '../../errno.js';
import { IOMMU_RESV, type IommuGroup, type PagingDomain, type ResvRegion } from '../iommu/core.js';
import { IOMMU_CACHE, IOMMU_WRITE } from '../iommufd/io_pagetable.js';
import { IntervalTree, type IntervalNode } from '../lib/interval_tree.js';
import type { Machine } from '../machine.js';
import { type Mm, unpinFrame } from '../mm/mm.js';
import { type Frame, PAGE_SHIFT, PAGE_SIZE_N } from '../mm/physmem.js';
import { CAP_IPC_LOCK, type Process } from '../process.js';
import type { VfioDevice, VfioGroupType } from './vfio.js';
import { Type1Sva } from './vfio_iommu_type1_sva.js';

export const U64_MAX = (1n << 64n) - 1n;
/** Arithmetic on dma_addr_t / u64: wraps at 2^64 as the kernel's does. */
export const u64 = (v: bigint): bigint => BigInt.asUintN(64, v);
export const hx = (v: bigint | number): string => `0x${v.toString(16)}`;
const PAGE_MASK = u64(~(PAGE_SIZE_N - 1n));

/** DIRTY_BITMAP_PAGES_MAX: bitmap_set counts bits in an int. */
export const DIRTY_BITMAP_PAGES_MAX = 0x7fffffffn;
/** DIRTY_BITMAP_BYTES: whole u64 words. */
export const dirtyBitmapBytes = (npages: bigint): bigint => ((npages + 63n) / 64n) * 8n;
export const DIRTY_BITMAP_SIZE_MAX = dirtyBitmapBytes(DIRTY_BITMAP_PAGES_MAX);

/** __ffs as x86's tzcnt answers it (64 for 0). */
export function ffs(v: bigint): number {
  if (v === 0n) return 64;
  let n = 0;
  while (!((v >> BigInt(n)) & 1n)) n++;
  return n;
}

/** The module parameters of vfio_iommu_type1 (one set per machine). */
export interface Type1Params {
  /** allow_unsafe_interrupts: attach groups whose MSIs the platform cannot isolate. */
  allowUnsafeInterrupts: boolean;
  /** disable_hugepages: pin and map page by page, so the IOMMU never gets a large page. */
  disableHugepages: boolean;
  /** dma_entry_limit: mappings per container (U16_MAX). */
  dmaEntryLimit: number;
}

/** struct vfio_dma: one VFIO_IOMMU_MAP_DMA, over IOVAs [start, last]. */
export class VfioDma implements IntervalNode {
  readonly start: bigint;
  readonly last: bigint;
  readonly size: bigint;
  /** IOMMU_READ / IOMMU_WRITE. */
  readonly prot: number;
  vaddr: bigint;
  /** VFIO_DMA_UNMAP_FLAG_VADDR: the user address is stale until MAP_DMA with FLAG_VADDR. */
  vaddrInvalid = false;
  iommuMapped = false;
  /** Who is charged: the mapping task's mm, and whether it could exceed RLIMIT_MEMLOCK. */
  task: Process;
  mm: Mm;
  lockCap: boolean;
  /** Pages charged to `mm` for this mapping. */
  lockedVm = 0;
  /** The pinned frame behind each page. */
  frames: Frame[] = [];
  /** Dirty bits while tracking: DIRTY_BITMAP_BYTES(npages) plus one spare word, as allocated. */
  bitmap: BigUint64Array | null = null;

  constructor(iova: bigint, size: bigint, vaddr: bigint, prot: number, task: Process) {
    this.start = iova;
    this.last = iova + size - 1n;
    this.size = size;
    this.vaddr = vaddr;
    this.prot = prot;
    this.task = task;
    this.mm = task.mm;
    this.lockCap = task.capable(CAP_IPC_LOCK);
  }

  get iova(): bigint {
    return this.start;
  }

  get end(): bigint {
    return this.start + this.size;
  }
}

/** struct vfio_domain: one IOMMU domain and the groups translating through it. */
export interface VfioDomain {
  readonly domain: PagingDomain;
  readonly groups: IommuGroup[];
  enforceCacheCoherency: boolean;
  /** The software MSI window the domain's MSI cookie was set up for. */
  msiCookie: bigint | null;
}

/** struct vfio_iova: a range of IOVAs userspace may map, [start, last]. */
export interface IovaRange {
  start: bigint;
  last: bigint;
}

/** dma->bitmap words: set or clear bits [0, nbits). */
export function bitmapFill(bm: BigUint64Array, nbits: bigint, set: boolean): void {
  for (let w = 0; BigInt(w) * 64n < nbits && w < bm.length; w++) {
    const bits = nbits - BigInt(w) * 64n;
    const mask = bits >= 64n ? U64_MAX : (1n << bits) - 1n;
    bm[w] = set ? bm[w]! | mask : bm[w]! & ~mask;
  }
}

/** The container's type1 state (struct vfio_iommu). */
export class VfioIommu {
  /** The module parameters, live (shared by every container of the machine). */
  readonly params: Type1Params;
  readonly v2: boolean;
  readonly nesting: boolean;
  /** domain_list: the newest domain first. */
  readonly domains: VfioDomain[] = [];
  /** iova_list: sorted, disjoint. */
  iovaList: IovaRange[] = [];
  readonly dmas = new IntervalTree<VfioDma>();
  dmaAvail: number;
  vaddrInvalidCount = 0;
  pgsizeBitmap = PAGE_MASK;
  /** Groups that may dirty memory behind type1's back (every IOMMU-backed group). */
  numNonPinnedGroups = 0;
  dirtyPageTracking = false;
  /** Opened devices of the container's groups (device_list; only mdevs use it in 6.12). */
  readonly devices = new Set<VfioDevice>();
  /** Bound process address spaces (the seed series' SVA), made by the first VFIO_IOMMU_BIND. */
  sva: Type1Sva | null = null;

  constructor(params: Type1Params, v2: boolean, nesting: boolean) {
    this.params = params;
    this.v2 = v2;
    this.nesting = nesting;
    this.dmaAvail = params.dmaEntryLimit;
  }

  /** The smallest page size every domain maps (1 << __ffs(pgsize_bitmap)). */
  get pgsize(): bigint {
    return 1n << BigInt(ffs(this.pgsizeBitmap));
  }

  /** vfio_find_dma: a mapping overlapping [start, start + size); size 0 finds one strictly containing start. */
  findDma(start: bigint, size: bigint): VfioDma | null {
    if (size === 0n) {
      const d = this.dmas.iterFirst(start, start);
      return d && d.start !== start ? d : null;
    }
    const last = start + size - 1n;
    return this.dmas.iterFirst(start, last > U64_MAX ? U64_MAX : last);
  }

  /** vfio_find_dma_first_node: the lowest mapping ending after `start`, unless it begins at or past start + size. */
  #firstNode(start: bigint, size: bigint): VfioDma | null {
    const d = this.dmas.iterFirst(start, U64_MAX);
    return d && size && d.start >= u64(start + size) ? null : d;
  }

  #next(d: VfioDma): VfioDma | null {
    return this.dmas.iterNext(d, 0n, U64_MAX);
  }

  /** vfio_update_pgsize_bitmap: the common page sizes, sub-page sizes folded into PAGE_SIZE. */
  #updatePgsizeBitmap(): void {
    let bm = U64_MAX;
    for (const d of this.domains) bm &= d.domain.pgsizeBitmap;
    if (bm & ~PAGE_MASK) bm = (bm & PAGE_MASK) | PAGE_SIZE_N;
    this.pgsizeBitmap = bm;
  }

  // ---- pinning and accounting ----

  /** vfio_lock_acct: charge (or refund) `npage` pages to the mapping's mm; a gone mm is left alone. */
  #lockAcct(dma: VfioDma, npage: number): void {
    if (!npage || !dma.mm.alive) return;
    dma.mm.lockedVm += npage;
    dma.lockedVm += npage;
  }

  /**
   * vfio_pin_pages_remote over the whole mapping, from `task`'s mm, all or nothing. A page is
   * pinned, then charged, so the error is the first in page order: the first page that cannot be
   * pinned (EFAULT) or the first over RLIMIT_MEMLOCK without CAP_IPC_LOCK (ENOMEM).
   */
  #pin(dma: VfioDma, task: Process): Frame[] {
    const mm = task.mm;
    const npages = Number(dma.size >> BigInt(PAGE_SHIFT));
    const write = (dma.prot & IOMMU_WRITE) !== 0;
    const limit = task.rlimits.memlock >> BigInt(PAGE_SHIFT);
    const frames: Frame[] = [];
    try {
      for (let i = 0; i < npages; i++) {
        const va = dma.vaddr + BigInt(i) * PAGE_SIZE_N;
        try {
          frames.push(...mm.pinPages(va, 1, write));
        } catch (e) {
          if (!(e instanceof KernelError)) throw e;
          fail(Errno.EFAULT, `pinning vaddr ${hx(va)} (${write ? 'for device writes' : 'read-only'}): ${e.reason}`);
        }
        if (!dma.lockCap && BigInt(mm.lockedVm + i + 1) > limit) {
          fail(Errno.ENOMEM, `pinning vaddr ${hx(va)} would raise locked_vm to ${mm.lockedVm + i + 1} pages, over RLIMIT_MEMLOCK (${limit} pages; no CAP_IPC_LOCK)`);
        }
      }
    } catch (e) {
      for (const f of frames) unpinFrame(mm.phys, f);
      throw e;
    }
    return frames;
  }

  /** vfio_unmap_unpin: take the mapping out of every domain, then unpin and refund its pages. */
  #unmapUnpin(dma: VfioDma): void {
    if (!this.domains.length || !dma.frames.length) return;
    for (const d of this.domains) d.domain.unmap(dma.iova, dma.size);
    for (const f of dma.frames) unpinFrame(dma.mm.phys, f);
    this.#lockAcct(dma, -dma.frames.length);
    dma.frames = [];
    dma.iommuMapped = false;
  }

  /** vfio_remove_dma. */
  #removeDma(dma: VfioDma): void {
    this.#unmapUnpin(dma);
    this.dmas.remove(dma);
    dma.bitmap = null;
    if (dma.vaddrInvalid) this.vaddrInvalidCount--;
    this.dmaAvail++;
  }

  /** vfio_iommu_unmap_unpin_all. */
  unmapUnpinAll(): void {
    for (let d = this.dmas.iterFirst(0n, U64_MAX); d; d = this.dmas.iterFirst(0n, U64_MAX)) this.#removeDma(d);
  }

  /** Map `frames` at the mapping's IOVA into each domain, undoing the ones done if one fails. */
  #mapInto(domains: readonly VfioDomain[], dma: VfioDma, task: Process): void {
    const done: VfioDomain[] = [];
    try {
      for (const d of domains) {
        d.domain.map(dma.iova, dma.frames, 0, dma.size, dma.prot | IOMMU_CACHE, { task, small: this.params.disableHugepages });
        done.push(d);
      }
    } catch (e) {
      for (const d of done.reverse()) d.domain.unmap(dma.iova, dma.size);
      throw e;
    }
  }

  // ---- MAP_DMA / UNMAP_DMA ----

  /**
   * vfio_dma_do_map after the ABI checks: `prot` is IOMMU_READ|IOMMU_WRITE (0 with `setVaddr`).
   * A new mapping is pinned and mapped into every domain, or nothing changes.
   */
  map(task: Process, iova: bigint, vaddr: bigint, size: bigint, prot: number, setVaddr: boolean): void {
    if ((prot !== 0) === setVaddr) {
      fail(Errno.EINVAL, setVaddr ? 'VFIO_DMA_MAP_FLAG_VADDR only updates a user address; it takes no READ/WRITE flag' : 'vfio_iommu_type1_dma_map.flags has neither READ nor WRITE');
    }
    const pgsize = this.pgsize;
    if (!size || (size | iova | vaddr) & (pgsize - 1n)) {
      fail(Errno.EINVAL, `iova ${hx(iova)}, vaddr ${hx(vaddr)} and size ${hx(size)} must be non-zero multiples of the smallest IOMMU page (${hx(pgsize)})`);
    }
    if (u64(iova + size - 1n) < iova) fail(Errno.EINVAL, `iova ${hx(iova)} + size ${hx(size)} wraps around the IOVA space`);
    if (u64(vaddr + size - 1n) < vaddr) fail(Errno.EINVAL, `vaddr ${hx(vaddr)} + size ${hx(size)} wraps around the address space`);
    const found = this.findDma(iova, size);
    if (setVaddr) {
      if (!found) fail(Errno.ENOENT, `VFIO_DMA_MAP_FLAG_VADDR: no mapping at iova ${hx(iova)}`);
      if (!found.vaddrInvalid || found.iova !== iova || found.size !== size) {
        fail(Errno.EINVAL, `VFIO_DMA_MAP_FLAG_VADDR must name exactly one mapping whose vaddr was invalidated (found [${hx(found.iova)}, ${hx(found.last)}]${found.vaddrInvalid ? '' : ', still valid'})`);
      }
      this.#changeOwner(found, task);
      found.vaddr = vaddr;
      found.vaddrInvalid = false;
      this.vaddrInvalidCount--;
      return;
    }
    if (found) fail(Errno.EEXIST, `[${hx(iova)}, ${hx(iova + size - 1n)}] overlaps the mapping [${hx(found.iova)}, ${hx(found.last)}]`);
    if (!this.dmaAvail) fail(Errno.ENOSPC, `the container already has dma_entry_limit (${this.params.dmaEntryLimit}) mappings`);
    if (!this.#iovaValid(iova, iova + size - 1n)) {
      fail(Errno.EINVAL, `[${hx(iova)}, ${hx(iova + size - 1n)}] is not inside one valid IOVA range (${this.iovaList.map((r) => `[${hx(r.start)}, ${hx(r.last)}]`).join(' ')}): outside the aperture or in a reserved region`);
    }
    if (task.machine.inject.shouldFail(task, 'slab')) fail(Errno.ENOMEM, 'allocating the vfio_dma: fault injected (fail-nth)');
    const dma = new VfioDma(iova, size, vaddr, prot, task);
    if (this.domains.length) {
      dma.frames = this.#pin(dma, task);
      try {
        this.#mapInto(this.domains, dma, task);
      } catch (e) {
        for (const f of dma.frames) unpinFrame(task.mm.phys, f);
        throw e;
      }
      this.#lockAcct(dma, dma.frames.length);
      dma.iommuMapped = true;
    }
    this.dmas.insert(dma);
    this.dmaAvail--;
    if (!this.dirtyPageTracking) return;
    if (size / pgsize > DIRTY_BITMAP_PAGES_MAX) {
      this.#removeDma(dma);
      fail(Errno.EINVAL, `a ${hx(size)}-byte mapping has more pages than a dirty bitmap can hold`);
    }
    dma.bitmap = newBitmap(size / pgsize);
  }

  /** vfio_change_dma_owner: charge the pages to the caller's mm instead (VFIO_UPDATE_VADDR from another process). */
  #changeOwner(dma: VfioDma, task: Process): void {
    if (task.mm === dma.mm) return;
    const lockCap = task.capable(CAP_IPC_LOCK);
    const limit = task.rlimits.memlock >> BigInt(PAGE_SHIFT);
    if (!lockCap && BigInt(task.mm.lockedVm + dma.lockedVm) > limit) {
      fail(Errno.ENOMEM, `taking over the mapping's ${dma.lockedVm} locked pages would exceed this process's RLIMIT_MEMLOCK (${limit} pages)`);
    }
    task.mm.lockedVm += dma.lockedVm;
    if (dma.mm.alive) dma.mm.lockedVm -= dma.lockedVm;
    dma.task = task;
    dma.mm = task.mm;
    dma.lockCap = lockCap;
  }

  /** vfio_iommu_iova_dma_valid: inside one range of the IOVA list (an empty list allows anything). */
  #iovaValid(start: bigint, last: bigint): boolean {
    return !this.iovaList.length || this.iovaList.some((r) => start >= r.start && last <= r.last);
  }

  /**
   * vfio_dma_do_unmap after the ABI checks. `report` (GET_DIRTY_BITMAP) sees each mapping before
   * it goes and may fail, which stops the unmap there. Returns the bytes unmapped (or invalidated).
   */
  unmap(iova: bigint, size: bigint, flags: { all: boolean; vaddr: boolean; dirtyPgsize: bigint | null }, report: ((dma: VfioDma) => void) | null): bigint {
    const pgsize = this.pgsize;
    if (iova & (pgsize - 1n)) fail(Errno.EINVAL, `iova ${hx(iova)} is not a multiple of the smallest IOMMU page (${hx(pgsize)})`);
    if (flags.all) {
      if (iova || size) fail(Errno.EINVAL, 'VFIO_DMA_UNMAP_FLAG_ALL needs iova and size 0');
      size = U64_MAX;
    } else if (!size || size & (pgsize - 1n) || u64(iova + size - 1n) < iova) {
      fail(Errno.EINVAL, `size ${hx(size)} must be a non-zero multiple of ${hx(pgsize)} that does not wrap past iova ${hx(iova)}`);
    }
    if (flags.dirtyPgsize !== null && (!this.dirtyPageTracking || flags.dirtyPgsize !== pgsize)) {
      fail(Errno.EINVAL, this.dirtyPageTracking ? `the dirty bitmap's pgsize ${hx(flags.dirtyPgsize)} is not the smallest IOMMU page ${hx(pgsize)}` : 'VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP while dirty tracking is off (VFIO_IOMMU_DIRTY_PAGES_FLAG_START first)');
    }
    if (this.v2 && !flags.all) this.#checkNotBisected(iova, size, 'TYPE1v2 unmaps');
    const end = u64(iova + size);
    let unmapped = 0n;
    const first = this.#firstNode(iova, size);
    for (let dma = first; dma; ) {
      if (dma.iova >= end) break;
      if (!this.v2 && iova > dma.iova) break;
      const next = this.#next(dma);
      if (flags.vaddr) {
        if (dma.vaddrInvalid) {
          for (let d = first; d && d !== dma; d = this.#next(d)) {
            d.vaddrInvalid = false;
            this.vaddrInvalidCount--;
          }
          fail(Errno.EINVAL, `VFIO_DMA_UNMAP_FLAG_VADDR: the vaddr of [${hx(dma.iova)}, ${hx(dma.last)}] is already invalid; nothing was invalidated`);
        }
        dma.vaddrInvalid = true;
        this.vaddrInvalidCount++;
      } else {
        report?.(dma);
        this.#removeDma(dma);
      }
      unmapped += dma.size;
      dma = next;
    }
    return unmapped;
  }

  /** TYPE1v2 unmap and GET_BITMAP ranges must start and end on mapping boundaries. */
  #checkNotBisected(iova: bigint, size: bigint, what: string): void {
    const head = this.findDma(iova, 1n);
    if (head && head.iova !== iova) fail(Errno.EINVAL, `${what} must not cut a mapping: iova ${hx(iova)} is inside [${hx(head.iova)}, ${hx(head.last)}]`);
    const tail = this.findDma(u64(iova + size - 1n), 0n);
    if (tail && tail.end !== u64(iova + size)) fail(Errno.EINVAL, `${what} must not cut a mapping: the range ends inside [${hx(tail.iova)}, ${hx(tail.last)}]`);
  }

  // ---- dirty tracking ----

  /** VFIO_IOMMU_DIRTY_PAGES_FLAG_START: a bitmap for every mapping, all or none. */
  startDirtyTracking(): void {
    if (this.dirtyPageTracking) return;
    const pgsize = this.pgsize;
    const made: VfioDma[] = [];
    for (const dma of this.dmas) {
      if (dma.size / pgsize > DIRTY_BITMAP_PAGES_MAX) {
        for (const d of made) d.bitmap = null;
        fail(Errno.EINVAL, `the mapping at ${hx(dma.iova)} has more pages than a dirty bitmap can hold`);
      }
      dma.bitmap = newBitmap(dma.size / pgsize);
      made.push(dma);
    }
    this.dirtyPageTracking = true;
  }

  stopDirtyTracking(): void {
    if (!this.dirtyPageTracking) return;
    this.dirtyPageTracking = false;
    for (const dma of this.dmas) dma.bitmap = null;
  }

  /** vfio_iova_dirty_bitmap: `report` each mapping inside [iova, iova + size), then restart its bits. */
  dirtyBitmap(iova: bigint, size: bigint, pgsize: bigint, report: (dma: VfioDma) => void): void {
    this.#checkNotBisected(iova, size, 'VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP ranges');
    const last = iova + size - 1n;
    for (const dma of [...this.dmas.overlapping(iova, last)]) {
      if (dma.iova < iova) continue;
      report(dma);
      bitmapFill(dma.bitmap!, dma.size >> BigInt(ffs(pgsize)), false);
    }
  }

  // ---- groups ----

  #findGroup(group: IommuGroup): VfioDomain | null {
    return this.domains.find((d) => d.groups.includes(group)) ?? null;
  }

  /** The SVA state, made on first use. */
  svaOf(machine: Machine): Type1Sva {
    return (this.sva ??= new Type1Sva({ groups: () => this.domains.flatMap((d) => d.groups) }, machine));
  }

  /** vfio_iommu_type1_attach_group, then every bound address space replayed onto the group (or the attach undone). */
  attachGroup(group: IommuGroup, type: VfioGroupType, task: Process): void {
    this.#attachGroup(group, type, task);
    if (!this.sva?.mms.length) return;
    try {
      this.sva.replay(group);
    } catch (e) {
      this.detachGroup(group);
      throw e;
    }
  }

  #attachGroup(group: IommuGroup, type: VfioGroupType, task: Process): void {
    if (this.vaddrInvalidCount) fail(Errno.EBUSY, `${this.vaddrInvalidCount} mappings have an invalidated vaddr; no group can join until VFIO_DMA_MAP_FLAG_VADDR restores them`);
    if (this.#findGroup(group)) fail(Errno.EINVAL, `IOMMU group ${group.id} is already in this container`);
    if (type !== 'iommu') fail(Errno.EINVAL, `vfio-iommu-type1 takes only IOMMU-backed groups, not a ${type} group`);
    const inject = task.machine.inject;
    if (inject.shouldFail(task, 'slab')) fail(Errno.ENOMEM, 'allocating the vfio_iommu_group: fault injected (fail-nth)');
    if (inject.shouldFail(task, 'slab')) fail(Errno.ENOMEM, 'allocating the vfio_domain: fault injected (fail-nth)');
    const dev = group.firstDevice;
    if (!dev.iommu) fail(Errno.ENODEV, `${dev.name} has no IOMMU to allocate a domain from`);
    const ops = dev.ops;
    if (!ops.domainAllocPaging) fail(Errno.EOPNOTSUPP, `${ops.name} cannot allocate paging domains`);
    const vd: VfioDomain = { domain: ops.domainAllocPaging(dev, task), groups: [], enforceCacheCoherency: false, msiCookie: null };
    const domain = vd.domain;
    let attached = false;
    try {
      if (this.nesting) enableNesting(domain);
      group.attachDomain(domain);
      attached = true;
      if (this.#aperConflict(domain.apertureStart, domain.apertureEnd)) {
        fail(Errno.EINVAL, `the new domain's aperture [${hx(domain.apertureStart)}, ${hx(domain.apertureEnd)}] would leave out IOVAs the container already allows or maps`);
      }
      const resv = groupResvRegions(group);
      const hit = resv.find((r) => r.type !== IOMMU_RESV.DIRECT_RELAXABLE && this.findDma(r.start, r.length));
      if (hit) fail(Errno.EINVAL, `IOMMU group ${group.id}'s reserved region [${hx(hit.start)}, ${hx(hit.start + hit.length - 1n)}] overlaps an existing DMA mapping`);
      const iovaCopy = aperResize(this.iovaList.map((r) => ({ ...r })), domain.apertureStart, domain.apertureEnd);
      resvExclude(iovaCopy, resv, `IOMMU group ${group.id}`);
      const swMsi = swMsiBase(resv);
      if (!this.params.allowUnsafeInterrupts && !group.devices.every((d) => d.iommu?.msiIsolated === true)) {
        fail(Errno.EPERM, `IOMMU group ${group.id}: no interrupt remapping, so its MSIs are not isolated; set vfio_iommu_type1 allow_unsafe_interrupts to use it anyway`);
      }
      vd.enforceCacheCoherency = domain.enforceCacheCoherency();
      if (this.#joinExisting(vd, group)) {
        domain.free();
      } else {
        this.#replay(vd, task);
        vd.msiCookie = swMsi;
        vd.groups.push(group);
        this.domains.unshift(vd);
        this.#updatePgsizeBitmap();
      }
      this.iovaList = iovaCopy;
      this.numNonPinnedGroups++;
    } catch (e) {
      if (attached && group.domain === domain) group.detachDomain();
      if (!this.domains.includes(vd)) domain.free();
      throw e;
    }
  }

  /**
   * Try each existing domain of the same driver and coherency: move the group there if it attaches,
   * else back onto the new domain (whose failure ends the attach).
   */
  #joinExisting(vd: VfioDomain, group: IommuGroup): boolean {
    for (const d of this.domains) {
      if (d.domain.owner !== vd.domain.owner || d.enforceCacheCoherency !== vd.enforceCacheCoherency) continue;
      group.detachDomain();
      try {
        group.attachDomain(d.domain);
        d.groups.unshift(group);
        return true;
      } catch (e) {
        if (!(e instanceof KernelError)) throw e;
      }
      group.attachDomain(vd.domain);
    }
    return false;
  }

  /** vfio_iommu_replay: every mapping's pinned pages into the new domain, or none. */
  #replay(vd: VfioDomain, task: Process): void {
    const done: VfioDma[] = [];
    try {
      for (const dma of this.dmas) {
        if (!dma.iommuMapped) throw new Error(`type1: mapping at ${hx(dma.iova)} is not pinned, yet no emulated IOMMU group exists`);
        this.#mapInto([vd], dma, task);
        done.push(dma);
      }
    } catch (e) {
      for (const dma of done) vd.domain.unmap(dma.iova, dma.size);
      throw e;
    }
  }

  /** vfio_iommu_aper_conflict: a new aperture must overlap the list and drop no mapping. */
  #aperConflict(start: bigint, last: bigint): boolean {
    const first = this.iovaList[0];
    const final = this.iovaList[this.iovaList.length - 1];
    if (!first || !final) return false;
    if (start > final.last || last < first.start) return true;
    if (start > first.start && this.findDma(first.start, start - first.start)) return true;
    return last < final.last && this.findDma(last + 1n, final.last - last) !== null;
  }

  /** vfio_iommu_type1_detach_group. */
  detachGroup(group: IommuGroup): void {
    const vd = this.#findGroup(group);
    if (!vd) return;
    for (const vmm of this.sva?.mms ?? []) this.sva!.unbindGroup(group, vmm);
    let iovaCopy = this.iovaList.map((r) => ({ ...r }));
    group.detachDomain();
    vd.groups.splice(vd.groups.indexOf(group), 1);
    if (!vd.groups.length) {
      if (this.domains.length === 1) this.unmapUnpinAll();
      // The kernel frees the page table with its mappings; the simulated drivers want them gone first.
      else for (const dma of this.dmas) if (dma.iommuMapped) vd.domain.unmap(dma.iova, dma.size);
      vd.domain.free();
      this.domains.splice(this.domains.indexOf(vd), 1);
      this.#aperExpand(iovaCopy);
      this.#updatePgsizeBitmap();
    }
    iovaCopy = this.#resvRefresh(iovaCopy) ?? this.iovaList;
    this.iovaList = iovaCopy;
    this.numNonPinnedGroups--;
    if (this.dirtyPageTracking) {
      const shift = BigInt(ffs(this.pgsizeBitmap));
      for (const dma of this.dmas) bitmapFill(dma.bitmap!, dma.size >> shift, true);
    }
  }

  /** vfio_iommu_aper_expand: the list's ends become the narrowest remaining aperture. */
  #aperExpand(list: IovaRange[]): void {
    const first = list[0];
    const final = list[list.length - 1];
    if (!first || !final) return;
    let start = 0n;
    let last = U64_MAX;
    for (const d of this.domains) {
      if (d.domain.apertureStart > start) start = d.domain.apertureStart;
      if (d.domain.apertureEnd < last) last = d.domain.apertureEnd;
    }
    first.start = start;
    final.last = last;
  }

  /** vfio_iommu_resv_refresh: rebuild the list from its ends minus the remaining groups' regions; null keeps the old one. */
  #resvRefresh(list: IovaRange[]): IovaRange[] | null {
    const first = list[0];
    const final = list[list.length - 1];
    if (!first || !final) return null;
    const resv = this.domains.flatMap((d) => d.groups.flatMap(groupResvRegions));
    const fresh = aperResize([], first.start, final.last);
    try {
      resvExclude(fresh, resv, 'the remaining groups');
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      return null;
    }
    return fresh;
  }

  /** vfio_iommu_type1_release: everything unmapped and unpinned, every group detached, every domain freed. */
  release(): void {
    this.sva?.unbindAll();
    this.unmapUnpinAll();
    for (const vd of this.domains) {
      for (const g of vd.groups) g.detachDomain();
      vd.domain.free();
    }
    this.domains.length = 0;
    this.iovaList = [];
  }

  /** Pinned frames, for invariant checks. */
  *pinnedFrames(): Generator<Frame> {
    for (const dma of this.dmas) yield* dma.frames;
  }
}

function newBitmap(npages: bigint): BigUint64Array {
  return new BigUint64Array(Number(dirtyBitmapBytes(npages) / 8n) + 1);
}

/** iommu_get_group_resv_regions, ordered by start then type (merging does not change what type1 computes). */
function groupResvRegions(group: IommuGroup): ResvRegion[] {
  const out: ResvRegion[] = [];
  for (const d of group.devices) {
    if (!d.iommu) break;
    out.push(...d.ops.getResvRegions(d));
  }
  return out.sort((a, b) => (a.start !== b.start ? (a.start < b.start ? -1 : 1) : a.type - b.type));
}

/** vfio_iommu_has_sw_msi: a software MSI window, unless a hardware one takes precedence. */
function swMsiBase(resv: readonly ResvRegion[]): bigint | null {
  let base: bigint | null = null;
  for (const r of resv) {
    if (r.type === IOMMU_RESV.MSI) return null;
    if (r.type === IOMMU_RESV.SW_MSI) base = r.start;
  }
  return base;
}

/**
 * vfio_iommu_aper_resize, with its edge behaviour: a range whose last IOVA equals the new start,
 * or whose first equals the new last, is dropped rather than trimmed to one address.
 */
function aperResize(list: IovaRange[], start: bigint, last: bigint): IovaRange[] {
  if (!list.length) return [{ start, last }];
  let i = 0;
  while (i < list.length) {
    const n = list[i]!;
    if (start < n.start) break;
    if (start < n.last) {
      n.start = start;
      break;
    }
    list.splice(i, 1);
  }
  i = 0;
  while (i < list.length) {
    const n = list[i]!;
    if (last > n.last) {
      i++;
    } else if (last > n.start) {
      n.last = last;
      i++;
    } else {
      list.splice(i, 1);
    }
  }
  return list;
}

/** vfio_iommu_resv_exclude: cut every reserved region out of the list; an empty result is EINVAL. */
function resvExclude(list: IovaRange[], resv: readonly ResvRegion[], whose: string): void {
  for (const r of resv) {
    if (r.type === IOMMU_RESV.DIRECT_RELAXABLE) continue;
    const start = r.start;
    const last = r.start + r.length - 1n;
    for (let i = 0; i < list.length; ) {
      const n = list[i]!;
      if (start > n.last || last < n.start) {
        i++;
        continue;
      }
      const pieces: IovaRange[] = [];
      if (start > n.start) pieces.push({ start: n.start, last: start - 1n });
      if (last < n.last) pieces.push({ start: last + 1n, last: n.last });
      list.splice(i, 1, ...pieces);
      i += pieces.length;
    }
  }
  if (!list.length) fail(Errno.EINVAL, `${whose}: the reserved regions leave no usable IOVA inside the aperture`);
}

/** iommu_enable_nesting in 6.12: intel-iommu has no enable_nesting; arm-smmu-v3 finalises its domains at allocation, too early to switch stage. */
const ENABLE_NESTING: Readonly<Record<string, () => never>> = {
  'arm-smmu-v3': () => fail(Errno.EPERM, 'VFIO_TYPE1_NESTING_IOMMU: the arm-smmu-v3 domain is already finalised on its SMMU and cannot switch to stage 2'),
};

function enableNesting(domain: PagingDomain): void {
  const hook = ENABLE_NESTING[domain.owner.name];
  if (hook) hook();
  fail(Errno.EINVAL, `VFIO_TYPE1_NESTING_IOMMU: ${domain.owner.name} has no enable_nesting`);
}

// The container-facing ops (VfioIommuType1, createType1) live with the ioctls.
export { VfioIommuType1, createType1 } from './vfio_iommu_type1_info.js';
