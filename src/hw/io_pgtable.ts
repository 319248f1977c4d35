/**
 * A radix IO page table, the structure VT-d and SMMU hardware walk: 512-entry levels of 9 address
 * bits each above a 4 KiB leaf, as many levels as the input address width needs (4 for 48 bits).
 * Leaves may sit at any level whose page size the `pgsizeBitmap` allows (4 KiB, 2 MiB, 1 GiB), and
 * mapping picks the largest size that the IOVA, the physical address and the remaining length all
 * allow — iommu_pgsize()'s rule — so a 2 MiB-aligned run of contiguous frames becomes one entry.
 *
 * Entries live in Float64Arrays (one per table, allocated on first use): 0 is empty, a positive
 * number is a leaf (physical address | permission bits), a negative one points at the child table
 * with index -(n + 1) in the pool. Physical addresses stay below 2^52, so every entry is an exact
 * double. Unmapping part of a large leaf is refused rather than split, as drivers that cannot split
 * do; io_pagetable never asks for it because it maps and unmaps whole areas.
 */

export const IOPTE_READ = 1;
export const IOPTE_WRITE = 2;
const PERM_MASK = IOPTE_READ | IOPTE_WRITE;
/** Set in every leaf, so a leaf for physical address 0 with no permissions is still non-zero. */
const PRESENT = 0x800;
const LEVEL_BITS = 9;
const ENTRIES = 1 << LEVEL_BITS;
const LEAF_SHIFT = 12;

export interface Translation {
  paddr: bigint;
  perm: number;
  /** The size of the leaf that mapped it. */
  pageSize: bigint;
}

export interface IoPgtableOptions {
  /** Supported page sizes, e.g. 0x40201000n for 4K | 2M | 1G. */
  pgsizeBitmap: bigint;
  /** Input address bits (aperture 0 .. 2^ias - 1). */
  ias: number;
}

export class IoPgtableError extends Error {}

export class IoPgtable {
  readonly pgsizeBitmap: bigint;
  readonly ias: number;
  readonly levels: number;
  readonly #tables: (Float64Array | null)[] = [];
  readonly #free: number[] = [];
  /** Bytes currently mapped. */
  mapped = 0n;

  constructor(opts: IoPgtableOptions) {
    if (opts.pgsizeBitmap & ((1n << BigInt(LEAF_SHIFT)) - 1n)) throw new IoPgtableError('page sizes below 4 KiB need a different table format');
    this.pgsizeBitmap = opts.pgsizeBitmap;
    this.ias = opts.ias;
    this.levels = Math.ceil((opts.ias - LEAF_SHIFT) / LEVEL_BITS);
    this.#newTable();
  }

  /** Tables allocated (the root counts), for memory accounting and tests. */
  get tableCount(): number {
    return this.#tables.length - this.#free.length;
  }

  #newTable(): number {
    const t = new Float64Array(ENTRIES);
    const i = this.#free.pop();
    if (i !== undefined) {
      this.#tables[i] = t;
      return i;
    }
    this.#tables.push(t);
    return this.#tables.length - 1;
  }

  /** Address bits below level `lvl` (0 = the leaf level of 4 KiB pages). */
  static #shift(lvl: number): number {
    return LEAF_SHIFT + lvl * LEVEL_BITS;
  }

  #index(iova: bigint, lvl: number): number {
    return Number((iova >> BigInt(IoPgtable.#shift(lvl))) & BigInt(ENTRIES - 1));
  }

  /** iommu_pgsize: the largest supported size that iova, paddr and length allow. */
  pickPageSize(iova: bigint, paddr: bigint, length: bigint): bigint {
    let best = 0n;
    for (let b = this.pgsizeBitmap; b; b &= b - 1n) {
      const size = b & -b;
      if (size <= length && (iova & (size - 1n)) === 0n && (paddr & (size - 1n)) === 0n && size > best) best = size;
    }
    if (!best) throw new IoPgtableError(`no supported page size fits iova 0x${iova.toString(16)} paddr 0x${paddr.toString(16)} length 0x${length.toString(16)}`);
    return best;
  }

  /** Map `length` bytes at `iova` to `paddr`. Throws (mapping nothing new) over an existing entry. */
  map(iova: bigint, paddr: bigint, length: bigint, perm: number): void {
    if (iova + length > 1n << BigInt(this.ias)) throw new IoPgtableError(`[0x${iova.toString(16)}, +0x${length.toString(16)}) is beyond the ${this.ias}-bit aperture`);
    const done: [bigint, bigint][] = [];
    try {
      let off = 0n;
      while (off < length) {
        const size = this.pickPageSize(iova + off, paddr + off, length - off);
        this.#mapOne(iova + off, paddr + off, size, perm);
        done.push([iova + off, size]);
        off += size;
      }
    } catch (e) {
      for (const [a, s] of done) this.#unmapOne(a, s);
      throw e;
    }
  }

  #mapOne(iova: bigint, paddr: bigint, size: bigint, perm: number): void {
    const leafLvl = Number(BigInt(size.toString(2).length - 1) - BigInt(LEAF_SHIFT)) / LEVEL_BITS;
    let t = 0;
    for (let lvl = this.levels - 1; lvl > leafLvl; lvl--) {
      const table = this.#tables[t]!;
      const i = this.#index(iova, lvl);
      const e = table[i]!;
      if (e > 0) throw new IoPgtableError(`0x${iova.toString(16)} is inside a larger mapping`);
      if (e === 0) {
        const child = this.#newTable();
        this.#tables[t]![i] = -(child + 1);
        t = child;
      } else {
        t = -e - 1;
      }
    }
    const table = this.#tables[t]!;
    const i = this.#index(iova, leafLvl);
    if (table[i] !== 0) throw new IoPgtableError(`0x${iova.toString(16)} is already mapped`);
    table[i] = Number(paddr) + PRESENT + (perm & PERM_MASK);
    this.mapped += size;
  }

  #unmapOne(iova: bigint, size: bigint): void {
    const path: [number, number][] = [];
    let t = 0;
    for (let lvl = this.levels - 1; lvl >= 0; lvl--) {
      const i = this.#index(iova, lvl);
      const e = this.#tables[t]![i]!;
      path.push([t, i]);
      if (e > 0) {
        const leafSize = 1n << BigInt(IoPgtable.#shift(lvl));
        if (leafSize !== size) throw new IoPgtableError(`unmapping 0x${size.toString(16)} bytes at 0x${iova.toString(16)} would split a 0x${leafSize.toString(16)} page`);
        this.#tables[t]![i] = 0;
        this.mapped -= size;
        this.#prune(path);
        return;
      }
      if (e === 0) throw new IoPgtableError(`0x${iova.toString(16)} is not mapped`);
      t = -e - 1;
    }
  }

  /** Free tables that became empty, bottom up (never the root). */
  #prune(path: [number, number][]): void {
    for (let k = path.length - 1; k > 0; k--) {
      const [t] = path[k]!;
      if (this.#tables[t]!.some((e) => e !== 0)) return;
      this.#tables[t] = null;
      this.#free.push(t);
      const [pt, pi] = path[k - 1]!;
      this.#tables[pt]![pi] = 0;
    }
  }

  /**
   * Unmap [iova, iova + length): every leaf in the range must lie wholly inside it. Returns the
   * bytes unmapped; stops at the first hole, like iommu_unmap.
   */
  unmap(iova: bigint, length: bigint): bigint {
    let off = 0n;
    while (off < length) {
      const tr = this.translate(iova + off);
      if (!tr) break;
      if ((iova + off) & (tr.pageSize - 1n) || off + tr.pageSize > length) {
        throw new IoPgtableError(`unmapping [0x${iova.toString(16)}, +0x${length.toString(16)}) would split the 0x${tr.pageSize.toString(16)} page at 0x${(iova + off).toString(16)}`);
      }
      this.#unmapOne(iova + off, tr.pageSize);
      off += tr.pageSize;
    }
    return off;
  }

  /** The walk: where `iova` goes, or null when nothing maps it. */
  translate(iova: bigint): Translation | null {
    if (iova >= 1n << BigInt(this.ias)) return null;
    let t = 0;
    for (let lvl = this.levels - 1; lvl >= 0; lvl--) {
      const e = this.#tables[t]![this.#index(iova, lvl)]!;
      if (e === 0) return null;
      if (e > 0) {
        const shift = BigInt(IoPgtable.#shift(lvl));
        const pageSize = 1n << shift;
        const base = BigInt(e - (e % 4096));
        return { paddr: base + (iova & (pageSize - 1n)), perm: e % 4096 & PERM_MASK, pageSize };
      }
      t = -e - 1;
    }
    return null;
  }
}
