/**
 * Physical memory: page frames with the refcounts the kernel keeps in struct page.
 *
 * A frame's data is allocated on first touch, so a million pins of one page cost a counter, not a
 * megabyte. `refs` counts every reference (page-table mappings and pins alike, like page_ref);
 * `pins` counts FOLL_PIN references (what MD_CHECK_REFS reads as page_ref / GUP_PIN_COUNTING_BIAS).
 * Frames are numbered (PFNs) so IO page tables can point at them; huge pages are runs of
 * contiguous, naturally aligned PFNs, as hugetlbfs gives.
 */

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
export const PAGE_SIZE_N = BigInt(PAGE_SIZE);

export class Frame {
  readonly pfn: number;
  refs = 0;
  pins = 0;
  /** Part of a huge (compound) page. */
  compound = false;
  #data: Uint8Array | null = null;

  constructor(pfn: number) {
    this.pfn = pfn;
  }

  /** The frame's bytes, allocated zero-filled on first use. */
  get data(): Uint8Array {
    return (this.#data ??= new Uint8Array(PAGE_SIZE));
  }

  /** Whether the frame was ever written or read as data (for cheap copies). */
  get touched(): boolean {
    return this.#data !== null;
  }

  /** Read `length` bytes at `offset` in the frame. Frames backed elsewhere override this. */
  read(offset: number, length: number): Uint8Array {
    return this.data.slice(offset, offset + length);
  }

  /** Write bytes at `offset` in the frame. */
  write(offset: number, bytes: Uint8Array): void {
    this.data.set(bytes, offset);
  }
}

export class PhysMem {
  #frames = new Map<number, Frame>();
  #nextPfn = 0x1000; // leave low physical memory empty, as firmware would
  #freed: number[] = [];

  /** Frames currently allocated. */
  get allocated(): number {
    return this.#frames.size;
  }

  lookup(pfn: number): Frame | undefined {
    return this.#frames.get(pfn);
  }

  /** Allocate one frame with one reference; `make` builds frames whose bytes live elsewhere. */
  alloc(make: (pfn: number) => Frame = (pfn) => new Frame(pfn)): Frame {
    const pfn = this.#freed.pop() ?? this.#nextPfn++;
    const f = make(pfn);
    f.refs = 1;
    this.#frames.set(pfn, f);
    return f;
  }

  /** Allocate `count` contiguous frames whose first PFN is aligned to `count` (a power of two). */
  allocContig(count: number, make: (pfn: number) => Frame = (pfn) => new Frame(pfn)): Frame[] {
    const first = Math.ceil(this.#nextPfn / count) * count;
    this.#nextPfn = first + count;
    const out: Frame[] = [];
    for (let i = 0; i < count; i++) {
      const f = make(first + i);
      f.refs = 1;
      f.compound = true;
      this.#frames.set(f.pfn, f);
      out.push(f);
    }
    return out;
  }

  get(frame: Frame): void {
    frame.refs++;
  }

  /** Drop a reference; the frame is freed with its last one. */
  put(frame: Frame): void {
    if (frame.refs <= 0) throw new Error(`put of free frame pfn ${frame.pfn}`);
    if (--frame.refs === 0) {
      if (frame.pins !== 0) throw new Error(`frame pfn ${frame.pfn} freed while pinned`);
      this.#frames.delete(frame.pfn);
      this.#freed.push(frame.pfn);
    }
  }

  /** Every allocated frame, for invariant checks. */
  frames(): IterableIterator<Frame> {
    return this.#frames.values();
  }
}
