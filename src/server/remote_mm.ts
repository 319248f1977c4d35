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
 */

import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { Errno, fail } from '../errno.js';
import { type HugePool, Mm } from '../kernel/mm/mm.js';
import { Frame, PAGE_SHIFT, PAGE_SIZE_N, type PhysMem } from '../kernel/mm/physmem.js';

interface MapEntry {
  start: number;
  end: number;
  read: boolean;
  write: boolean;
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
    });
  }
  return out;
}

class RemoteFrame extends Frame {
  readonly #mm: RemoteMm;
  readonly #addr: bigint;

  constructor(pfn: number, mm: RemoteMm, addr: bigint) {
    super(pfn);
    this.#mm = mm;
    this.#addr = addr;
  }

  override read(offset: number, length: number): Uint8Array {
    return this.#mm.rawRead(this.#addr + BigInt(offset), length);
  }

  override write(offset: number, bytes: Uint8Array): void {
    this.#mm.rawWrite(this.#addr + BigInt(offset), bytes);
  }
}

export class RemoteMm extends Mm {
  readonly pid: number;
  #fd: number;
  #maps: MapEntry[] | null = null;
  #mapsText = '';
  readonly #mapsFd: number;
  readonly #mapsBuf = Buffer.alloc(64 * 1024);
  #parsed: MapEntry[] = [];

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
    const page = Number(addr >> BigInt(PAGE_SHIFT));
    let f = this.pages.get(page);
    if (!f) {
      const base = BigInt(page) * PAGE_SIZE_N;
      f = this.phys.alloc((pfn) => new RemoteFrame(pfn, this, base));
      this.pages.set(page, f);
    }
    return f;
  }

  override mmap(): bigint {
    return fail(Errno.ENOSYS, `pid ${this.pid} is a real process: it maps its own memory`);
  }

  override munmap(): void {
    fail(Errno.ENOSYS, `pid ${this.pid} is a real process: it unmaps its own memory`);
  }

  override teardown(): void {
    if (!this.alive) return;
    super.teardown();
    closeSync(this.#fd);
    closeSync(this.#mapsFd);
  }
}

