/**
 * An IOTLB: the translation cache an IOMMU keeps in front of its page-table walks.
 *
 * Entries are per 4 KiB page of input address and tagged, as real IOTLBs are, by the translation
 * structure they came from (a VT-d domain ID, an SMMU ASID): `tag` 0 .. 2^16 - 1, `page` the IOVA
 * page number below 2^36 (a 48-bit aperture), packed into one exact double. A hit costs one Map
 * lookup. Replacement is FIFO over a fixed capacity (insertion order of the Map).
 *
 * The cache never decides correctness by itself: the driver invalidates (a range of a tag on
 * unmap, a whole tag when a domain leaves the unit or dies, a nested tag on a user invalidation)
 * and the unit may be asked to verify every hit against a fresh walk (`HwIommu.verifyIotlb`).
 */

/** One cached translation: the physical page, its permission bits, and where dirty bits go. */
export interface IotlbEntry {
  /** Physical page number of the 4 KiB page. */
  readonly ppn: number;
  /** IOPTE_READ | IOPTE_WRITE. */
  readonly perm: number;
  /** IOVA page number of the leaf that maps it, in the table that records dirty bits. */
  readonly leafPage: number;
}

export const IOTLB_TAG_BITS = 16;
const PAGE_SPAN = 2 ** 36;

export interface IotlbStats {
  hits: number;
  misses: number;
  fills: number;
  evictions: number;
  /** Entries dropped by invalidation. */
  invalidated: number;
  /** Invalidation commands received. */
  invalidations: number;
}

export class Iotlb {
  readonly capacity: number;
  readonly stats: IotlbStats = { hits: 0, misses: 0, fills: 0, evictions: 0, invalidated: 0, invalidations: 0 };
  readonly #map = new Map<number, IotlbEntry>();

  constructor(capacity = 512) {
    if (capacity < 1) throw new Error('an IOTLB needs at least one entry');
    this.capacity = capacity;
  }

  static key(tag: number, page: number): number {
    return tag * PAGE_SPAN + page;
  }

  /** Whether a page number can be cached (the packed key stays exact). */
  static cacheable(page: number): boolean {
    return page < PAGE_SPAN;
  }

  get size(): number {
    return this.#map.size;
  }

  lookup(tag: number, page: number): IotlbEntry | undefined {
    const e = this.#map.get(tag * PAGE_SPAN + page);
    if (e) this.stats.hits++;
    else this.stats.misses++;
    return e;
  }

  /** Look without counting (tests, verification). */
  peek(tag: number, page: number): IotlbEntry | undefined {
    return this.#map.get(tag * PAGE_SPAN + page);
  }

  fill(tag: number, page: number, entry: IotlbEntry): void {
    if (this.#map.size >= this.capacity) {
      const oldest = this.#map.keys().next();
      if (!oldest.done) {
        this.#map.delete(oldest.value);
        this.stats.evictions++;
      }
    }
    this.#map.set(tag * PAGE_SPAN + page, entry);
    this.stats.fills++;
  }

  /** Page-selective invalidation of pages [first, last] of `tag`. */
  invalidateRange(tag: number, first: number, last: number): void {
    this.stats.invalidations++;
    if (!this.#map.size) return;
    if (last - first + 1 <= this.#map.size) {
      for (let p = first; p <= last; p++) if (this.#map.delete(tag * PAGE_SPAN + p)) this.stats.invalidated++;
      return;
    }
    for (const k of [...this.#map.keys()]) {
      const t = Math.floor(k / PAGE_SPAN);
      const p = k - t * PAGE_SPAN;
      if (t === tag && p >= first && p <= last) {
        this.#map.delete(k);
        this.stats.invalidated++;
      }
    }
  }

  /** Domain-selective invalidation. */
  invalidateTag(tag: number): void {
    this.stats.invalidations++;
    for (const k of [...this.#map.keys()]) {
      if (Math.floor(k / PAGE_SPAN) === tag) {
        this.#map.delete(k);
        this.stats.invalidated++;
      }
    }
  }

  /** Global invalidation. */
  invalidateAll(): void {
    this.stats.invalidations++;
    this.stats.invalidated += this.#map.size;
    this.#map.clear();
  }

  /** Entries cached for `tag`. */
  countTag(tag: number): number {
    let n = 0;
    for (const k of this.#map.keys()) if (Math.floor(k / PAGE_SPAN) === tag) n++;
    return n;
  }

  resetStats(): void {
    Object.assign(this.stats, { hits: 0, misses: 0, fills: 0, evictions: 0, invalidated: 0, invalidations: 0 });
  }
}
