/**
 * An address space that is a real process's memory: the daemon's view of a shim client.
 *
 * Bytes move through /proc/PID/mem (positions passed as Numbers: user addresses fit in 53 bits,
 * and a BigInt position would silently misplace writes). /proc/PID/mem ignores page protections,
 * so accesses are checked against /proc/PID/maps first, as the kernel's uaccess and GUP would
 * check the VMA: an unmapped address or a write to memory without PROT_WRITE is EFAULT. The maps
 * are read at most once per request (`invalidate()` between requests), since the client can
 * mmap, munmap and mprotect between any two calls.
 *
 * A pinned page becomes a frame whose bytes stay in the client: reading or writing the frame
 * reads or writes that virtual page. (The real kernel would keep the physical page even if the
 * client unmapped it; the emulator cannot, and documents that.)
 *
 * Huge pages are the machine's: the shim maps a MAP_HUGETLB request with ordinary 2 MiB-aligned
 * pages and registers the range here (`mapHuge`), which charges the machine's pool as hugetlb
 * does. A page of such a range faults in its whole huge page: 512 compound frames, as GUP sees a
 * hugetlb folio (their PFNs are not contiguous; nothing the emulated kernel does depends on it).
 * A fork inherits the ranges, shared ones without a second charge, as Mm.fork does.
 */

import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { Errno, fail } from '../errno.js';
import { HPAGE_SIZE, type HugePool, MAP_SHARED, Mm, PM_PRESENT } from '../kernel/mm/mm.js';
import { Frame, PAGE_SHIFT, PAGE_SIZE, PAGE_SIZE_N, type PhysMem } from '../kernel/mm/physmem.js';

/** An emulated hugetlb mapping of a client: [start, end), 2 MiB aligned. */
export interface HugeRange {
  start: bigint;
  end: bigint;
  shared: boolean;
  /** Whether this address space holds the range's huge pages out of the machine's pool. */
  charged: boolean;
}

const HPAGE = BigInt(HPAGE_SIZE);
/** A pagemap entry's PFN (or swap) bits, 0-54. */
const PFN_MASK = (1n << 55n) - 1n;
const HPAGE_PAGES = HPAGE_SIZE / PAGE_SIZE;

interface MapEntry {
  start: number;
  end: number;
  read: boolean;
  write: boolean;
  /** MAP_SHARED: a fork's parent and child see the same pages here. */
  shared: boolean;
}

/** /proc/PID/maps lines: `start-end perms ...`, addresses in hex (user addresses fit a Number). */
function parseMaps(text: string): MapEntry[] {
  const out: MapEntry[] = [];
  let at = 0;
  while (at < text.length) {
    const nl = text.indexOf('\n', at);
    const line = text.slice(at, nl < 0 ? text.length : nl);
    at = nl < 0 ? text.length : nl + 1;
    const dash = line.indexOf('-');
    const sp = line.indexOf(' ', dash);
    if (dash < 0 || sp < 0) continue;
    out.push({
      start: parseInt(line.slice(0, dash), 16),
      end: parseInt(line.slice(dash + 1, sp), 16),
      read: line[sp + 1] === 'r',
      write: line[sp + 2] === 'w',
      shared: line[sp + 4] === 's',
    });
  }
  return out;
}

/**
 * A page of a client's memory, read and written in place through /proc/PID/mem. A pinned page
 * outlives its process as in the kernel: when the client exits, a page of a MAP_SHARED mapping
 * moves to the nearest live fork ancestor that shares it (same address, same pages); a private
 * page's contents cannot be read after exit, so it continues as a zero-filled frame.
 */
class RemoteFrame extends Frame {
  #mm: RemoteMm;
  readonly #addr: bigint;

  constructor(pfn: number, mm: RemoteMm, addr: bigint) {
    super(pfn);
    this.#mm = mm;
    this.#addr = addr;
  }

  get addr(): bigint {
    return this.#addr;
  }

  /** Back the frame by another process mapping the same shared page at the same address. */
  rehome(mm: RemoteMm): void {
    this.#mm = mm;
  }

  override read(offset: number, length: number): Uint8Array {
    if (!this.#mm.alive) return super.read(offset, length);
    return this.#mm.rawRead(this.#addr + BigInt(offset), length);
  }

  override write(offset: number, bytes: Uint8Array): void {
    if (!this.#mm.alive) return super.write(offset, bytes);
    this.#mm.rawWrite(this.#addr + BigInt(offset), bytes);
  }
}

export class RemoteMm extends Mm {
  readonly pid: number;
  /** The client this one was forked from, if it forked under the emulator. */
  parent: RemoteMm | null = null;
  #fd: number;
  #maps: MapEntry[] | null = null;
  #mapsText = '';
  readonly #mapsFd: number;
  readonly #mapsBuf = Buffer.alloc(64 * 1024);
  #parsed: MapEntry[] = [];
  #huge: HugeRange[] = [];

  constructor(phys: PhysMem, hugePool: HugePool, pid: number) {
    super(phys, hugePool);
    this.pid = pid;
    this.#fd = openSync(`/proc/${pid}/mem`, 'r+');
    this.#mapsFd = openSync(`/proc/${pid}/maps`, 'r');
  }

  /** Forget the cached /proc/PID/maps (call between requests). */
  invalidate(): void {
    this.#maps = null;
  }

  #vma(addr: bigint): MapEntry | undefined {
    if (!this.alive) fail(Errno.EFAULT, 'the client has exited');
    if (!this.#maps) {
      // Re-read every request, but parse only when the layout changed since the last one.
      const text = this.#readMaps();
      if (text !== this.#mapsText) {
        this.#mapsText = text;
        this.#parsed = parseMaps(text);
      }
      this.#maps = this.#parsed;
    }
    const a = Number(addr);
    return this.#maps.find((m) => a >= m.start && a < m.end);
  }

  /** /proc/PID/maps through a descriptor kept open: one pread per request, not four syscalls. */
  #readMaps(): string {
    const chunks: Buffer[] = [];
    let pos = 0;
    for (;;) {
      const n = readSync(this.#mapsFd, this.#mapsBuf, 0, this.#mapsBuf.length, pos);
      if (n <= 0) break;
      chunks.push(Buffer.from(this.#mapsBuf.subarray(0, n)));
      pos += n;
    }
    return Buffer.concat(chunks).toString('latin1');
  }

  #check(addr: bigint, length: number, write: boolean): void {
    let a = addr & ~(PAGE_SIZE_N - 1n);
    const end = addr + BigInt(length);
    while (a < end) {
      const v = this.#vma(a);
      if (!v) fail(Errno.EFAULT, `address 0x${a.toString(16)} is not mapped in pid ${this.pid}`);
      if (write ? !v.write : !v.read) fail(Errno.EFAULT, `${write ? 'write to' : 'read of'} 0x${a.toString(16)} violates pid ${this.pid}'s mapping protection`);
      a = BigInt(v.end);
    }
  }

  /** Bytes at `addr` without protection checks (frames of pinned pages use this). */
  rawRead(addr: bigint, length: number): Uint8Array {
    const out = new Uint8Array(length);
    try {
      const n = readSync(this.#fd, out, 0, length, Number(addr));
      if (n !== length) fail(Errno.EFAULT, `short read of pid ${this.pid}'s memory at 0x${addr.toString(16)}`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EIO') fail(Errno.EFAULT, `address 0x${addr.toString(16)} is not mapped in pid ${this.pid}`);
      throw e;
    }
    return out;
  }

  rawWrite(addr: bigint, bytes: Uint8Array): void {
    try {
      const n = writeSync(this.#fd, bytes, 0, bytes.length, Number(addr));
      if (n !== bytes.length) fail(Errno.EFAULT, `short write to pid ${this.pid}'s memory at 0x${addr.toString(16)}`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EIO') fail(Errno.EFAULT, `address 0x${addr.toString(16)} is not mapped in pid ${this.pid}`);
      throw e;
    }
  }

  override read(addr: bigint, length: number): Uint8Array {
    if (length === 0) return new Uint8Array(0);
    this.#check(addr, length, false);
    return this.rawRead(addr, length);
  }

  override write(addr: bigint, data: Uint8Array): void {
    if (data.length === 0) return;
    this.#check(addr, data.length, true);
    this.rawWrite(addr, data);
  }

  override frameAt(addr: bigint, write: boolean): Frame {
    this.#check(addr, 1, write);
    return this.#frame(addr);
  }

  /** The client's own kernel does copy-on-write for its pages: a pin takes the page as it is. */
  protected override pinFrame(addr: bigint, write: boolean): Frame {
    return this.frameAt(addr, write);
  }

  /** The frame standing for the client's page at `addr` (made on first use). */
  #frame(addr: bigint): Frame {
    const page = Number(addr >> BigInt(PAGE_SHIFT));
    let f = this.pages.get(page);
    if (!f) {
      if (this.#huge.some((h) => addr >= h.start && addr < h.end)) {
        // Fault the whole huge page in, as a hugetlb folio.
        // Physically contiguous and aligned, so IOMMUs can map it with large pages.
        const first = page - (page % HPAGE_PAGES);
        const frames = this.phys.allocContig(HPAGE_PAGES, (pfn) => new RemoteFrame(pfn, this, BigInt(first + (pfn % HPAGE_PAGES)) * PAGE_SIZE_N));
        frames.forEach((hf, k) => this.pages.set(first + k, hf));
        return this.pages.get(page)!;
      }
      const base = BigInt(page) * PAGE_SIZE_N;
      f = this.phys.alloc((pfn) => new RemoteFrame(pfn, this, base));
      this.pages.set(page, f);
    }
    return f;
  }

  /**
   * The client's page table as an IOMMU walking it for SVA sees it: present pages come from
   * /proc/PID/pagemap (bit 63), access from the mapping's protection. Nothing is faulted in.
   */
  override walkUser(addr: bigint): { frame: Frame; read: boolean; write: boolean } | null {
    if (!this.alive || addr < 0n || addr >= 1n << 47n) return null;
    const v = this.#vma(addr);
    if (!v || !this.#present(addr)) return null;
    return { frame: this.#frame(addr), read: v.read, write: v.write };
  }

  /**
   * A device's page request served by the client's mm: the mapping must allow the access; the
   * page is then made present by touching it through /proc/PID/mem, which faults it in as the
   * kernel's handle_mm_fault would (the device's write itself then breaks any copy-on-write).
   */
  override handleDeviceFault(addr: bigint, write: boolean): boolean {
    if (!this.alive || addr < 0n || addr >= 1n << 47n) return false;
    const v = this.#vma(addr);
    if (!v || !(write ? v.write : v.read)) return false;
    try {
      this.rawRead(addr & ~(PAGE_SIZE_N - 1n), 1);
    } catch {
      return false;
    }
    return this.#present(addr);
  }

  /**
   * The client's own pagemap entries (present, file, exclusive, swapped: the real kernel's
   * flags) with the emulated frame's PFN in place of the real one: what a noiommu driver
   * programs into its device must be an address this machine's DMA reaches.
   */
  override pagemap(addr: bigint, count: number, showPfn: boolean): bigint[] {
    if (!this.alive || !count) return new Array<bigint>(count).fill(0n);
    if (this.#pagemapFd < 0) this.#pagemapFd = openSync(`/proc/${this.pid}/pagemap`, 'r');
    const raw = Buffer.alloc(count * 8);
    const n = readSync(this.#pagemapFd, raw, 0, raw.length, Number(addr >> BigInt(PAGE_SHIFT)) * 8);
    const out: bigint[] = [];
    for (let i = 0; i < count; i++) {
      const e = i * 8 < n ? raw.readBigUInt64LE(i * 8) : 0n;
      const flags = e & ~PFN_MASK;
      const a = addr + BigInt(i) * PAGE_SIZE_N;
      out.push(flags & PM_PRESENT && showPfn && this.#vma(a) ? flags | BigInt(this.#frame(a).pfn) : flags);
    }
    return out;
  }

  #pagemapFd = -1;
  readonly #pagemapBuf = Buffer.alloc(8);

  #present(addr: bigint): boolean {
    if (this.#pagemapFd < 0) this.#pagemapFd = openSync(`/proc/${this.pid}/pagemap`, 'r');
    const n = readSync(this.#pagemapFd, this.#pagemapBuf, 0, 8, Number(addr >> BigInt(PAGE_SHIFT)) * 8);
    return n === 8 && (this.#pagemapBuf.readBigUInt64LE(0) & (1n << 63n)) !== 0n;
  }

  /** The client's emulated hugetlb mappings (a fork's child inherits them). */
  hugeRanges(): readonly HugeRange[] {
    return this.#huge.map((h) => ({ ...h }));
  }

  /**
   * The shim mapped [start, start+length) with ordinary pages for a MAP_HUGETLB mmap (`flags`):
   * take its huge pages from the machine's pool (ENOMEM when short), as hugetlb_reserve_pages.
   */
  mapHuge(start: bigint, length: bigint, flags: number): void {
    if (start % HPAGE || length % HPAGE || length <= 0n) fail(Errno.EINVAL, `hugetlb range 0x${start.toString(16)}+0x${length.toString(16)} is not 2 MiB aligned`);
    const n = Number(length / HPAGE);
    this.unmapRange(start, length);
    if (n > this.hugePool.free) fail(Errno.ENOMEM, `MAP_HUGETLB needs ${n} huge pages, the machine has ${this.hugePool.free} free`);
    this.hugePool.free -= n;
    this.#huge.push({ start, end: start + length, shared: (flags & MAP_SHARED) !== 0, charged: true });
  }

  /** A fork's child: the parent's hugetlb ranges, private ones charged again (when the pool allows). */
  inheritHuge(ranges: readonly HugeRange[]): void {
    for (const h of ranges) {
      const n = Number((h.end - h.start) / HPAGE);
      const charged = !h.shared && n <= this.hugePool.free;
      if (charged) this.hugePool.free -= n;
      this.#huge.push({ ...h, charged });
    }
  }

  /**
   * The client unmapped (or mapped over) [start, start+length), which held emulated huge pages:
   * forget the frames there (pinned ones live on in their pins) and return the pool's pages.
   */
  unmapRange(start: bigint, length: bigint): void {
    const end = start + length;
    for (let p = Number(start >> BigInt(PAGE_SHIFT)); p < Number(end >> BigInt(PAGE_SHIFT)); p++) {
      const f = this.pages.get(p);
      if (!f) continue;
      this.pages.delete(p);
      this.phys.put(f);
    }
    const keep: HugeRange[] = [];
    for (const h of this.#huge) {
      if (h.end <= start || end <= h.start) {
        keep.push(h);
        continue;
      }
      const lo = h.start > start ? h.start : start;
      const hi = h.end < end ? h.end : end;
      if (h.charged) this.hugePool.free += Number((hi - lo) / HPAGE);
      if (h.start < lo) keep.push({ ...h, end: lo });
      if (hi < h.end) keep.push({ ...h, start: hi });
    }
    this.#huge = keep;
  }

  override mmap(): bigint {
    return fail(Errno.ENOSYS, `pid ${this.pid} is a real process: it maps its own memory`);
  }

  override munmap(): void {
    fail(Errno.ENOSYS, `pid ${this.pid} is a real process: it unmaps its own memory`);
  }

  /** Whether [addr] lies in a MAP_SHARED mapping of this live client. */
  sharesAt(addr: bigint): boolean {
    if (!this.alive) return false;
    this.invalidate();
    try {
      return this.#vma(addr)?.shared === true;
    } catch {
      return false;
    }
  }

  /** Pinned pages of shared mappings move to the nearest live ancestor that maps them too. */
  #rehomePinned(): void {
    for (const f of this.pages.values()) {
      if (!(f instanceof RemoteFrame) || f.pins === 0) continue;
      const a = Number(f.addr);
      if (!this.#parsed.find((m) => a >= m.start && a < m.end)?.shared) continue;
      for (let up = this.parent; up; up = up.parent) {
        if (up.sharesAt(f.addr)) {
          f.rehome(up);
          break;
        }
      }
    }
  }

  override teardown(): void {
    if (!this.alive) return;
    this.#rehomePinned();
    for (const h of this.#huge) if (h.charged) this.hugePool.free += Number((h.end - h.start) / HPAGE);
    this.#huge = [];
    super.teardown();
    closeSync(this.#fd);
    closeSync(this.#mapsFd);
    if (this.#pagemapFd >= 0) closeSync(this.#pagemapFd);
  }
}

