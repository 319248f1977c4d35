/**
 * The IO page table of the selftest's mock IOMMU (selftest.c, mock_iommu_domain): one entry per
 * MOCK_IO_PAGE_SIZE (half a CPU page, so iommufd must cope with an IOMMU page smaller than
 * PAGE_SIZE) in a map keyed by iova / MOCK_IO_PAGE_SIZE. Each entry holds the physical address in
 * MOCK_IO_PAGE_SIZE units plus flags: the first and last entry of every map call are marked, so
 * the table can check that each unmap covers whole earlier maps (iommufd never splits a map);
 * huge entries (MOCK_FLAGS_DEVICE_HUGE_IOVA devices) and dirty bits are marked too.
 *
 * Like the kernel's mock, this checks its caller: an unmap that starts or ends inside an earlier
 * map, a map over a live entry or an unaligned call is an emulator bug and throws.
 */

export const MOCK_IO_PAGE_SIZE = 2048n;
export const MOCK_HUGE_PAGE_SIZE = 512n * MOCK_IO_PAGE_SIZE;

const START = 1;
const LAST = 2;
const DIRTY = 4;
const HUGE = 8;

interface MockPte {
  /** Physical address / MOCK_IO_PAGE_SIZE. */
  pfn: bigint;
  flags: number;
  prot: number;
}

export class MockPgtable {
  readonly pgsizeBitmap: bigint;
  readonly #ptes = new Map<bigint, MockPte>();

  constructor(hugeIova: boolean) {
    this.pgsizeBitmap = MOCK_IO_PAGE_SIZE | (hugeIova ? MOCK_HUGE_PAGE_SIZE : 0n);
  }

  get entries(): number {
    return this.#ptes.size;
  }

  /** mock_domain_map_pages: `pgcount` pages of `pgsize` at iova → paddr. */
  mapPages(iova: bigint, paddr: bigint, pgsize: bigint, pgcount: number, prot: number): void {
    if (iova % MOCK_IO_PAGE_SIZE || pgsize % MOCK_IO_PAGE_SIZE || paddr % MOCK_IO_PAGE_SIZE) {
      throw new Error(`mock IOMMU: unaligned map of 0x${iova.toString(16)} (page size 0x${pgsize.toString(16)})`);
    }
    const total = pgsize * BigInt(pgcount);
    for (let off = 0n; off < total; off += MOCK_IO_PAGE_SIZE) {
      if (this.#ptes.has((iova + off) / MOCK_IO_PAGE_SIZE)) throw new Error(`mock IOMMU: 0x${(iova + off).toString(16)} is already mapped`);
    }
    for (let off = 0n; off < total; off += MOCK_IO_PAGE_SIZE) {
      let flags = 0;
      if (off === 0n) flags |= START;
      if (off + MOCK_IO_PAGE_SIZE === total) flags |= LAST;
      if (pgsize !== MOCK_IO_PAGE_SIZE) flags |= HUGE;
      this.#ptes.set((iova + off) / MOCK_IO_PAGE_SIZE, { pfn: (paddr + off) / MOCK_IO_PAGE_SIZE, flags, prot });
    }
  }

  /**
   * mock_domain_unmap_pages: erase and return the bytes covered. Without huge pages every unmap
   * must start where some map started and end where one ended.
   */
  unmapPages(iova: bigint, pgsize: bigint, pgcount: number): bigint {
    if (iova % MOCK_IO_PAGE_SIZE || pgsize % MOCK_IO_PAGE_SIZE) throw new Error(`mock IOMMU: unaligned unmap of 0x${iova.toString(16)}`);
    const total = pgsize * BigInt(pgcount);
    const strict = !(this.pgsizeBitmap & MOCK_HUGE_PAGE_SIZE);
    for (let off = 0n; off < total; off += MOCK_IO_PAGE_SIZE) {
      const key = (iova + off) / MOCK_IO_PAGE_SIZE;
      const pte = this.#ptes.get(key);
      this.#ptes.delete(key);
      if (!strict || !pte) continue;
      if (off === 0n && !(pte.flags & START)) throw new Error(`mock IOMMU: unmap at 0x${iova.toString(16)} starts inside a map`);
      if (off + MOCK_IO_PAGE_SIZE === total && !(pte.flags & LAST)) throw new Error(`mock IOMMU: unmap ending at 0x${(iova + total - 1n).toString(16)} ends inside a map`);
    }
    return total;
  }

  /** mock_domain_iova_to_phys; null where nothing is mapped. */
  iovaToPhys(iova: bigint): bigint | null {
    const pte = this.#ptes.get(iova / MOCK_IO_PAGE_SIZE);
    return pte ? pte.pfn * MOCK_IO_PAGE_SIZE + (iova % MOCK_IO_PAGE_SIZE) : null;
  }

  /** The permission bits the map gave `iova`, or null. */
  protAt(iova: bigint): number | null {
    return this.#ptes.get(iova / MOCK_IO_PAGE_SIZE)?.prot ?? null;
  }

  /** IOMMU_TEST_OP_DIRTY's half: mark the entry at `iova` dirty; false when unmapped. */
  markDirty(iova: bigint): boolean {
    const pte = this.#ptes.get(iova / MOCK_IO_PAGE_SIZE);
    if (!pte) return false;
    pte.flags |= DIRTY;
    return true;
  }

  /**
   * mock_test_and_clear_dirty over [iova, iova + size): whether any entry was dirty, clearing the
   * bits unless `noClear`.
   */
  testAndClearDirty(iova: bigint, size: bigint, noClear: boolean): boolean {
    let dirty = false;
    for (let cur = iova; cur < iova + size; cur += MOCK_IO_PAGE_SIZE) {
      const pte = this.#ptes.get(cur / MOCK_IO_PAGE_SIZE);
      if (!pte || !(pte.flags & DIRTY)) continue;
      dirty = true;
      if (!noClear) pte.flags &= ~DIRTY;
    }
    return dirty;
  }

  /** Whether the entry at `iova` belongs to a huge map (dirty reads then go by MOCK_HUGE_PAGE_SIZE). */
  isHuge(iova: bigint): boolean {
    return ((this.#ptes.get(iova / MOCK_IO_PAGE_SIZE)?.flags ?? 0) & HUGE) !== 0;
  }
}
