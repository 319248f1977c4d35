/**
 * /proc/PID/pagemap (fs/proc/task_mmu.c pagemap_read, pte_to_pagemap_entry, pagemap_hugetlb_range)
 * and the order in which read, write, pread and pwrite refuse (vfs_read, vfs_write, ksys_pread64):
 * one 8-byte entry per virtual page with PM_PRESENT, PM_FILE for shared memory and
 * PM_MMAP_EXCLUSIVE when one mapping holds the page, the PFN only for an opener that had
 * CAP_SYS_ADMIN; whole entries at aligned positions; nothing past the top of user space; an exited
 * process reads as empty; another process's map needs ptrace read access. Every refusal leaves the
 * position, the caller's buffer, the fd table and the machine as they were.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CAP_SYS_ADMIN,
  CAP_SYS_PTRACE,
  CAP_SYS_RAWIO,
  Errno,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_HUGETLB,
  MAP_PRIVATE,
  MAP_SHARED,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  PROT_READ,
  PROT_WRITE,
  type Machine,
  type Process,
  type SpawnOptions,
} from '../src/index.js';
import { PM_FILE, PM_MMAP_EXCLUSIVE, PM_PRESENT, TASK_SIZE } from '../src/kernel/mm/mm.js';
import { CAP_DAC_READ_SEARCH } from '../src/kernel/process.js';
import { checkedMachine, fails, map, ok, setup, snapshot } from './helpers.js';
import { mockDomain } from './mock_helpers.js';

const PAGE = 4096n;
const IO = 0x1000000000n;
const IO_SIZE = 16n * PAGE;
/** The fill every read buffer starts with, so a refused read can be seen to have copied nothing. */
const FILL = 0xa5;
const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/** `p` with an I/O buffer at IO, touched, so snapshots around calls agree. */
function withIo(p: Process): Process {
  p.mm.write(p.mmapOrThrow(IO_SIZE, RW, ANON | MAP_FIXED, IO), new Uint8Array(Number(IO_SIZE)).fill(FILL));
  return p;
}
const proc = (m: Machine, spawn: SpawnOptions = {}): Process => withIo(m.spawn(spawn));

function machine(spawn: SpawnOptions = {}): { m: Machine; p: Process } {
  const m = checkedMachine();
  return { m, p: proc(m, spawn) };
}

/** The pagemap position of the entry for `va`. */
const pos = (va: bigint): bigint => (va / PAGE) * 8n;
const pfnOf = (p: Process, va: bigint): bigint => BigInt(p.mm.walkUser(va)!.frame.pfn);

/** `n` entries from position `at` of an open pagemap (pread into the I/O buffer). */
function entries(p: Process, fd: number, at: bigint, n: number): bigint[] {
  assert.equal(ok(p.pread(fd, IO, n * 8, at)), n * 8);
  return decode(p, n);
}
const entry = (p: Process, fd: number, va: bigint): bigint => entries(p, fd, pos(va), 1)[0]!;

function decode(p: Process, n: number): bigint[] {
  const b = Buffer.from(p.mm.read(IO, n * 8));
  return Array.from({ length: n }, (_, i) => b.readBigUInt64LE(i * 8));
}

/** The I/O buffer refilled, so the next refusal can be seen to copy nothing. */
function refill(p: Process): void {
  p.mm.write(IO, new Uint8Array(Number(IO_SIZE)).fill(FILL));
}
const untouched = (p: Process): boolean => p.mm.read(IO, Number(IO_SIZE)).every((b) => b === FILL);

/** What a refused call must leave: the machine, every fd table, and the caller's buffer. */
function state(m: Machine): string {
  return JSON.stringify({ base: snapshot(m), fds: [...m.processes()].map((p) => [p.pid, p.openFds(), p.openFds().map((fd) => p.fget(fd).pos)]) });
}

describe('pagemap entries', () => {
  it('a present private page is PM_PRESENT | PM_MMAP_EXCLUSIVE with its PFN; a page never touched and an unmapped address are 0', () => {
    const { p } = machine();
    const fd = ok(p.open('/proc/self/pagemap', O_RDONLY));
    const va = p.mmapOrThrow(3n * PAGE);
    p.poke(va, Uint8Array.of(1));
    p.poke(va + 2n * PAGE + 100n, Uint8Array.of(2));
    assert.deepEqual(entries(p, fd, pos(va), 3), [
      PM_PRESENT | PM_MMAP_EXCLUSIVE | pfnOf(p, va),
      0n,
      PM_PRESENT | PM_MMAP_EXCLUSIVE | pfnOf(p, va + 2n * PAGE),
    ]);
    assert.equal(entry(p, fd, va + 3n * PAGE), 0n, 'past the mapping');
    assert.equal(entry(p, fd, 0n), 0n);
    // The PFN names the frame holding the process's bytes.
    const e = entry(p, fd, va + 2n * PAGE);
    assert.equal(p.machine.phys.lookup(Number(e & ((1n << 55n) - 1n)))!.read(100, 1)[0], 2);
  });

  it('the PFN is shown only to an opener with CAP_SYS_ADMIN, as it was at open: flags alone otherwise', () => {
    const m = checkedMachine();
    const user = proc(m, { uid: 1000 });
    const va = user.mmapOrThrow(PAGE);
    user.poke(va, Uint8Array.of(1));
    const own = ok(user.open('/proc/self/pagemap', O_RDONLY));
    assert.equal(entry(user, own, va), PM_PRESENT | PM_MMAP_EXCLUSIVE);
    // Gaining the capability later does not change what the file shows...
    user.cred = { ...user.cred, caps: new Set([CAP_SYS_ADMIN]) };
    assert.equal(entry(user, own, va), PM_PRESENT | PM_MMAP_EXCLUSIVE);
    // ...and a file opened with it shows the PFN after the capability is gone.
    const withCap = ok(user.open(`/proc/${user.pid}/pagemap`, O_RDONLY));
    user.cred = { ...user.cred, caps: new Set() };
    assert.equal(entry(user, withCap, va), PM_PRESENT | PM_MMAP_EXCLUSIVE | pfnOf(user, va));
    // Root reading the user's map sees the PFN too.
    const root = proc(m);
    const rfd = ok(root.open(`/proc/${user.pid}/pagemap`, O_RDONLY));
    assert.equal(entry(root, rfd, va), PM_PRESENT | PM_MMAP_EXCLUSIVE | pfnOf(user, va));
  });

  it('a MAP_SHARED page is PM_FILE; shared with a forked child it is in both maps at the same PFN, exclusive in neither', () => {
    const { p } = machine();
    const fd = ok(p.open('/proc/self/pagemap', O_RDONLY));
    const sh = p.mmapOrThrow(PAGE, RW, MAP_SHARED | MAP_ANONYMOUS);
    p.poke(sh, Uint8Array.of(7));
    const pfn = pfnOf(p, sh);
    assert.equal(entry(p, fd, sh), PM_PRESENT | PM_FILE | PM_MMAP_EXCLUSIVE | pfn);
    const child = p.fork();
    const cfd = ok(child.open('/proc/self/pagemap', O_RDONLY));
    assert.equal(entry(p, fd, sh), PM_PRESENT | PM_FILE | pfn);
    assert.equal(entry(child, cfd, sh), PM_PRESENT | PM_FILE | pfn, '/proc/self in the child is the child');
    child.exit();
    assert.equal(entry(p, fd, sh), PM_PRESENT | PM_FILE | PM_MMAP_EXCLUSIVE | pfn, 'exclusive again once the child is gone');
  });

  it('a private page written by a forked child is the child\'s own copy: exclusive in both maps, at different PFNs, the parent\'s unchanged', () => {
    const { p } = machine();
    const fd = ok(p.open('/proc/self/pagemap', O_RDONLY));
    const va = p.mmapOrThrow(PAGE);
    p.poke(va, Uint8Array.of(1));
    const pfn = pfnOf(p, va);
    const child = p.fork();
    child.poke(va, Uint8Array.of(2));
    const cfd = ok(child.open('/proc/self/pagemap', O_RDONLY));
    const c = entry(child, cfd, va);
    assert.equal(entry(p, fd, va), PM_PRESENT | PM_MMAP_EXCLUSIVE | pfn);
    assert.equal(c & ~((1n << 55n) - 1n), PM_PRESENT | PM_MMAP_EXCLUSIVE);
    assert.notEqual(c & ((1n << 55n) - 1n), pfn);
    assert.deepEqual([p.peek(va, 1)[0], child.peek(va, 1)[0]], [1, 2]);
  });

  it('right after fork a private page is shared copy-on-write: the same PFN in both maps, exclusive in neither', () => {
    const { p } = machine();
    const fd = ok(p.open('/proc/self/pagemap', O_RDONLY));
    const va = p.mmapOrThrow(PAGE);
    p.poke(va, Uint8Array.of(1));
    const pfn = pfnOf(p, va);
    const child = p.fork();
    const cfd = ok(child.open('/proc/self/pagemap', O_RDONLY));
    assert.equal(entry(child, cfd, va), PM_PRESENT | pfn);
    assert.equal(entry(p, fd, va), PM_PRESENT | pfn);
  });

  it('a page pinned by IOMMU_IOAS_MAP into a domain keeps its PFN and stays exclusive: a pin is no mapping; fork gives the child its own copy at once', () => {
    const f = setup();
    const p = withIo(f.p);
    ok(mockDomain(f, f.ioas).r);
    const fd = ok(p.open('/proc/self/pagemap', O_RDONLY));
    p.poke(f.buf, Uint8Array.of(9));
    const pfn = pfnOf(p, f.buf);
    const want = PM_PRESENT | PM_MMAP_EXCLUSIVE | pfn;
    assert.equal(entry(p, fd, f.buf), want);
    ok(map(f, f.buf, PAGE, null));
    assert.equal(p.mm.walkUser(f.buf)!.frame.pins, 1);
    assert.equal(entry(p, fd, f.buf), want);
    // A pinned page is copied at fork (page_needs_cow_for_dma): the parent keeps the frame the IOMMU maps.
    const child = p.fork();
    const cfd = ok(child.open('/proc/self/pagemap', O_RDONLY));
    const c = entry(child, cfd, f.buf);
    assert.equal(entry(p, fd, f.buf), want);
    assert.equal(c & ~((1n << 55n) - 1n), PM_PRESENT | PM_MMAP_EXCLUSIVE);
    assert.notEqual(c & ((1n << 55n) - 1n), pfn);
  });

  it('a huge page reads as 512 present entries with consecutive PFNs from a 2 MiB-aligned frame; munmap makes them 0', () => {
    const { p } = machine();
    const fd = ok(p.open('/proc/self/pagemap', O_RDONLY));
    const va = p.mmapOrThrow(2n << 20n, RW, ANON | MAP_HUGETLB);
    p.poke(va + 0x1234n, Uint8Array.of(1));
    const first = pfnOf(p, va);
    assert.equal(first % 512n, 0n);
    assert.deepEqual(entries(p, fd, pos(va), 512), Array.from({ length: 512 }, (_, i) => PM_PRESENT | PM_MMAP_EXCLUSIVE | (first + BigInt(i))));
    ok(p.munmap(va, 2n << 20n));
    assert.deepEqual(entries(p, fd, pos(va), 512), Array<bigint>(512).fill(0n));
  });
});

describe('pagemap reads', () => {
  it('whole entries at aligned positions only: EINVAL for a position or a count not a multiple of 8, nothing copied; a count of 0 reads 0', () => {
    const { m, p } = machine();
    const fd = ok(p.open('/proc/self/pagemap', O_RDONLY));
    const before = state(m);
    fails(p.pread(fd, IO, 8, 4n), Errno.EINVAL);
    fails(p.pread(fd, IO, 12, 0n), Errno.EINVAL);
    fails(p.pread(fd, IO, 7, pos(IO)), Errno.EINVAL);
    fails(p.read(fd, IO, 4), Errno.EINVAL);
    fails(p.pread(fd, IO, 0, 4n), Errno.EINVAL);
    assert.equal(ok(p.pread(fd, IO, 0, 8n)), 0);
    assert.equal(ok(p.read(fd, IO, 0)), 0);
    assert.ok(untouched(p));
    assert.equal(state(m), before);
  });

  it('read moves the position by what it copied, pread leaves it', () => {
    const { p } = machine();
    const fd = ok(p.open('/proc/self/pagemap', O_RDONLY));
    // A page at virtual page 16: entry 16, the first of the second 16-entry read.
    const va = p.mmapOrThrow(PAGE, RW, ANON | MAP_FIXED, 16n * PAGE);
    p.poke(va, Uint8Array.of(1));
    const present = PM_PRESENT | PM_MMAP_EXCLUSIVE | pfnOf(p, va);
    assert.equal(ok(p.read(fd, IO, 128)), 128);
    assert.deepEqual(decode(p, 16), Array<bigint>(16).fill(0n));
    assert.deepEqual(entries(p, fd, pos(IO), 1), [PM_PRESENT | PM_MMAP_EXCLUSIVE | pfnOf(p, IO)]);
    assert.equal(ok(p.read(fd, IO, 16)), 16);
    assert.deepEqual(decode(p, 2), [present, 0n]);
    assert.equal(p.fget(fd).pos, 144);
  });

  it('reads stop at the top of the user address space; a position at or past it reads 0', () => {
    const { m, p } = machine();
    const fd = ok(p.open('/proc/self/pagemap', O_RDONLY));
    const last = TASK_SIZE / PAGE;
    const top = p.mmapOrThrow(PAGE, RW, ANON | MAP_FIXED, TASK_SIZE - PAGE);
    p.poke(top, Uint8Array.of(1));
    assert.equal(ok(p.pread(fd, IO, 32, (last - 1n) * 8n)), 8);
    assert.deepEqual(decode(p, 1), [PM_PRESENT | PM_MMAP_EXCLUSIVE | pfnOf(p, top)]);
    refill(p);
    const before = state(m);
    assert.equal(ok(p.pread(fd, IO, 8, last * 8n)), 0);
    assert.equal(ok(p.pread(fd, IO, 64, (last + 1000n) * 8n)), 0);
    assert.equal(ok(p.pread(fd, IO, 8, 1n << 52n)), 0);
    assert.ok(untouched(p));
    assert.equal(state(m), before);
  });

  it('a position past 2^53 (still a valid file offset) reads 0 too', () => {
    const { p } = machine();
    const fd = ok(p.open('/proc/self/pagemap', O_RDONLY));
    assert.equal(ok(p.pread(fd, IO, 8, 1n << 60n)), 0);
  });

  it('a process that exited reads as empty, before any alignment check; its pid no longer opens (ENOENT)', () => {
    const m = checkedMachine();
    const p = proc(m);
    const q = proc(m);
    const va = q.mmapOrThrow(PAGE);
    q.poke(va, Uint8Array.of(1));
    const fd = ok(p.open(`/proc/${q.pid}/pagemap`, O_RDONLY));
    assert.equal(entry(p, fd, va) & PM_PRESENT, PM_PRESENT);
    q.exit();
    refill(p);
    assert.equal(ok(p.pread(fd, IO, 8, pos(va))), 0);
    assert.equal(ok(p.pread(fd, IO, 12, 3n)), 0);
    assert.equal(ok(p.read(fd, IO, 64)), 0);
    assert.ok(untouched(p));
    const before = state(m);
    fails(p.open(`/proc/${q.pid}/pagemap`, O_RDONLY), Errno.ENOENT);
    assert.equal(state(m), before);
  });

  it('an unwritable buffer is EFAULT and the position stays', () => {
    const { m, p } = machine();
    const fd = ok(p.open('/proc/self/pagemap', O_RDONLY));
    const ro = p.mmapOrThrow(PAGE, PROT_READ);
    const before = state(m);
    fails(p.read(fd, 0x2000n, 8), Errno.EFAULT);
    fails(p.read(fd, ro, 8), Errno.EFAULT);
    assert.equal(state(m), before);
    assert.equal(p.fget(fd).pos, 0);
  });
});

describe('opening a pagemap', () => {
  it('another process\'s map needs the same uid and gid, or CAP_SYS_PTRACE past the file\'s mode 0400: EACCES otherwise, and no pid is ENOENT; refusals make no fd', () => {
    const m = checkedMachine();
    const target = proc(m, { uid: 1000 });
    const stranger = proc(m, { uid: 1001 });
    const otherGroup = proc(m, { uid: 1000, gid: 1001 });
    // The file is the target's, mode 0400: a tracer of another uid also needs to get past the mode.
    const tracerNoDac = proc(m, { uid: 1001, caps: [CAP_SYS_PTRACE] });
    const tracer = proc(m, { uid: 1001, caps: [CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH] });
    const sibling = proc(m, { uid: 1000 });
    const path = `/proc/${target.pid}/pagemap`;
    const before = state(m);
    fails(stranger.open(path, O_RDONLY), Errno.EACCES);
    fails(otherGroup.open(path, O_RDONLY), Errno.EACCES);
    fails(tracerNoDac.open(path, O_RDONLY), Errno.EACCES);
    fails(stranger.open('/proc/99999/pagemap', O_RDONLY), Errno.ENOENT);
    assert.equal(state(m), before);
    ok(tracer.open(path, O_RDONLY));
    ok(sibling.open(path, O_RDONLY));
    ok(target.open(`/proc/${target.pid}/pagemap`, O_RDONLY));
  });

  it('the same uid is not enough when the target holds capabilities the opener lacks (cap_ptrace_access_check): EACCES', () => {
    const m = checkedMachine();
    const target = proc(m, { uid: 1000, caps: [CAP_SYS_RAWIO] });
    const user = proc(m, { uid: 1000 });
    fails(user.open(`/proc/${target.pid}/pagemap`, O_RDONLY), Errno.EACCES);
  });

  it('root may open a pagemap for writing (CAP_DAC_OVERRIDE); it has no write, so write is EINVAL and a read-only fd\'s EBADF', () => {
    const { m, p } = machine();
    const rw = ok(p.open('/proc/self/pagemap', O_RDWR));
    const wo = ok(p.open('/proc/self/pagemap', O_WRONLY));
    const rd = ok(p.open('/proc/self/pagemap', O_RDONLY));
    const before = state(m);
    fails(p.write(rw, IO, 8), Errno.EINVAL);
    fails(p.pwrite(rw, IO, 8, 0n), Errno.EINVAL);
    fails(p.write(rd, IO, 8), Errno.EBADF);
    fails(p.read(wo, IO, 8), Errno.EBADF);
    fails(p.pread(wo, IO, 8, 0n), Errno.EBADF);
    assert.ok(untouched(p));
    assert.equal(state(m), before);
    assert.equal(ok(p.read(rw, IO, 8)), 8);
  });

  it('pagemap is mode 0400: its owner cannot open it for writing (EACCES)', () => {
    const { m, p } = machine({ uid: 1000 });
    const before = state(m);
    fails(p.open('/proc/self/pagemap', O_WRONLY), Errno.EACCES);
    fails(p.open('/proc/self/pagemap', O_RDWR), Errno.EACCES);
    assert.equal(state(m), before);
  });
});

describe('the order of read, write, pread and pwrite refusals', () => {
  it('write to a file open only for reading is EBADF whatever the file; read of a write-only file likewise', () => {
    const { m, p } = machine();
    const pagemap = ok(p.open('/proc/self/pagemap', O_RDONLY));
    const failNth = ok(p.open(`/proc/self/task/${p.pid}/fail-nth`, O_RDONLY));
    const failNthW = ok(p.open(`/proc/self/task/${p.pid}/fail-nth`, O_WRONLY));
    const attr = ok(p.open('/sys/module/vfio/parameters/enable_unsafe_noiommu_mode', O_RDONLY));
    p.mm.write(IO, new TextEncoder().encode('Y\n'));
    const before = state(m);
    for (const fd of [0, pagemap, failNth, attr]) fails(p.write(fd, IO, 2), Errno.EBADF);
    for (const fd of [1, 2, failNthW]) fails(p.read(fd, IO, 8), Errno.EBADF);
    assert.equal(state(m), before);
    assert.equal(m.vfio.noiommu, false);
    assert.equal(p.failNth, 0);
  });

  it('pread and pwrite: a negative offset is EINVAL before the fd is looked up, then EBADF, then ESPIPE for a file without positions, then the file\'s mode', () => {
    const { m, p } = machine();
    const rd = ok(p.open('/proc/self/pagemap', O_RDONLY));
    const wo = ok(p.open('/proc/self/pagemap', O_WRONLY));
    const efd = ok(p.eventfd());
    const before = state(m);
    fails(p.pread(999, IO, 8, -1n), Errno.EINVAL);
    fails(p.pwrite(999, IO, 8, -8n), Errno.EINVAL);
    fails(p.pread(rd, IO, 8, -8n), Errno.EINVAL);
    fails(p.pread(999, IO, 8, 0n), Errno.EBADF);
    fails(p.pwrite(-1, IO, 8, 0n), Errno.EBADF);
    fails(p.pread(efd, IO, 8, 0n), Errno.ESPIPE);
    fails(p.pwrite(efd, IO, 8, 0n), Errno.ESPIPE);
    fails(p.pwrite(rd, IO, 8, 0n), Errno.EBADF);
    fails(p.pread(wo, IO, 12, 4n), Errno.EBADF);
    assert.ok(untouched(p));
    assert.equal(state(m), before);
  });
});
