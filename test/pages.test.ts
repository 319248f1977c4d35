/**
 * iopt_pages: pinning and accounting, seen through a recording IO page table attached to the IOAS.
 * Pages are pinned once per iopt_pages page however many domains map them; each IOAS_MAP makes its
 * own iopt_pages; pinned pages are charged per user, per mm (RLIMIT_MODE=1) or not at all
 * (CAP_IPC_LOCK), while pinned_vm always moves; and pinned frames outlive their process.
 */

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CAP_IPC_LOCK,
  CAP_SYS_RESOURCE,
  Errno,
  IOMMU_IOAS_COPY,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_OPTION,
  IOMMU_OPTION_OP_GET,
  IOMMU_OPTION_OP_SET,
  IOMMU_OPTION_RLIMIT_MODE,
  HPAGE_SIZE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_HUGETLB,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  type Process,
  type SpawnOptions,
  iommu_ioas_copy,
  iommu_option,
} from '../src/index.js';
import type { Frame } from '../src/kernel/mm/physmem.js';
import { KernelError } from '../src/errno.js';
import { PAGE, RW, type Fixture, call, checkedMachine, fails, ioasAlloc, map, ok, setup, snapshot, unmap } from './helpers.js';
import { RecordingDomain, addDomains, ioasObj } from './recording_domain.js';

const USER: SpawnOptions = { uid: 1000, memlock: 4n * PAGE };

/**
 * setup() whose user_struct exists from the start, as it does after login: the emulator creates
 * it on first use, and a snapshot must not mistake that for state a failed call left behind.
 */
function fixture(spawn: SpawnOptions): Fixture {
  const f = setup(spawn);
  assert.equal(f.p.user.lockedVm, 0);
  return f;
}

function totalPins(f: Pick<Fixture, 'm'>): number {
  let n = 0;
  for (const fr of f.m.phys.frames()) n += fr.pins;
  return n;
}

/** The frames behind `npages` pages of `p` at `addr`, faulting nothing new in. */
function framesOf(p: Process, addr: bigint, npages: number): Frame[] {
  return Array.from({ length: npages }, (_, i) => {
    const fr = p.mm.pages.get(Number((addr >> 12n) + BigInt(i)));
    assert.ok(fr, `page ${i} at 0x${addr.toString(16)} is not faulted in`);
    return fr;
  });
}

function domainFrames(d: RecordingDomain, iova: bigint, npages: number): Frame[] {
  return Array.from({ length: npages }, (_, i) => {
    const fr = d.frameAt(iova + BigInt(i) * PAGE);
    assert.ok(fr, `the domain maps nothing at 0x${(iova + BigInt(i) * PAGE).toString(16)}`);
    return fr;
  });
}

function setRlimitMode(p: Process, fd: number, val: bigint): void {
  ok(call(p, fd, IOMMU_OPTION, iommu_option, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, object_id: 0, val64: val }).r);
}

describe('pinning', () => {
  test('a mapping in an IOAS without a domain pins and charges nothing', () => {
    const f = fixture(USER);
    ok(map(f, f.buf, 4n * PAGE, 0x10000n));
    assert.equal(totalPins(f), 0);
    assert.equal(f.p.user.lockedVm, 0);
    assert.equal(f.p.mm.pinnedVm, 0);
  });

  test('each page is pinned once however many domains map it', () => {
    const f = setup();
    const [d1, d2] = addDomains(f.p, f.fd, f.ioas, 2) as [RecordingDomain, RecordingDomain];
    ok(map(f, f.buf, 4n * PAGE, 0x10000n));
    const frames = framesOf(f.p, f.buf, 4);
    for (const fr of frames) {
      assert.equal(fr.pins, 1);
      assert.equal(fr.refs, 2, 'one reference from the page table, one from the pin');
    }
    assert.deepEqual(domainFrames(d1, 0x10000n, 4), frames);
    assert.deepEqual(domainFrames(d2, 0x10000n, 4), frames);
    assert.equal(f.p.mm.pinnedVm, 4);
  });

  test('IOAS_COPY into another IOAS with its own domains shares the pins of the source', () => {
    const f = setup();
    addDomains(f.p, f.fd, f.ioas, 1);
    ok(map(f, f.buf, 4n * PAGE, 0x10000n));
    const dst = ioasAlloc(f.p, f.fd);
    const [dd] = addDomains(f.p, f.fd, dst, 2) as [RecordingDomain, RecordingDomain];
    ok(call(f.p, f.fd, IOMMU_IOAS_COPY, iommu_ioas_copy, { flags: RW | IOMMU_IOAS_MAP_FIXED_IOVA, dst_ioas_id: dst, src_ioas_id: f.ioas, length: 4n * PAGE, dst_iova: 0x80000n, src_iova: 0x10000n }).r);
    const frames = framesOf(f.p, f.buf, 4);
    for (const fr of frames) assert.equal(fr.pins, 1);
    assert.deepEqual(domainFrames(dd, 0x80000n, 4), frames);
    assert.equal(f.p.mm.pinnedVm, 4);
    // The pins stay while either IOAS still maps the pages.
    ok(unmap(f, 0x10000n, 4n * PAGE));
    for (const fr of frames) assert.equal(fr.pins, 1);
    ok(unmap({ ...f, ioas: dst }, 0x80000n, 4n * PAGE));
    for (const fr of frames) assert.equal(fr.pins, 0);
    assert.equal(f.p.mm.pinnedVm, 0);
  });

  test('two IOAS_MAPs of the same buffer pin every page twice, and each unmap drops one pin', () => {
    const f = fixture(USER);
    addDomains(f.p, f.fd, f.ioas, 1);
    ok(map(f, f.buf, 2n * PAGE, 0x10000n));
    ok(map(f, f.buf, 2n * PAGE, 0x20000n));
    const frames = framesOf(f.p, f.buf, 2);
    for (const fr of frames) assert.equal(fr.pins, 2);
    assert.equal(f.p.mm.pinnedVm, 4);
    assert.equal(f.p.user.lockedVm, 4, 'each iopt_pages is charged for its own pins');
    ok(unmap(f, 0x10000n, 2n * PAGE));
    for (const fr of frames) assert.equal(fr.pins, 1);
    assert.equal(f.p.user.lockedVm, 2);
    ok(unmap(f, 0x20000n, 2n * PAGE));
    for (const fr of frames) {
      assert.equal(fr.pins, 0);
      assert.equal(fr.refs, 1, 'only the page table holds the frame again');
    }
    assert.equal(f.p.mm.pinnedVm, 0);
    assert.equal(f.p.user.lockedVm, 0);
  });

  test('unmapping the IOAS destroys pins of every area, and IOAS destroy on close does too', () => {
    const f = fixture(USER);
    addDomains(f.p, f.fd, f.ioas, 2);
    ok(map(f, f.buf, 2n * PAGE, 0x10000n));
    ok(map(f, f.buf + 2n * PAGE, 2n * PAGE, null));
    assert.equal(totalPins(f), 4);
    ok(f.p.close(f.fd));
    assert.equal(totalPins(f), 0);
    assert.equal(f.p.user.lockedVm, 0);
    assert.equal(f.p.mm.pinnedVm, 0);
  });
});

describe('pinning failures', () => {
  test('a mapping that runs into unmapped memory is EFAULT with a domain and leaves nothing pinned', () => {
    const f = fixture(USER);
    ok(f.p.poke(f.buf, new Uint8Array(Number(f.bufSize))));
    addDomains(f.p, f.fd, f.ioas, 1);
    ok(f.p.munmap(f.buf + 3n * PAGE, PAGE));
    const before = snapshot(f.m);
    fails(map(f, f.buf, 4n * PAGE, 0x10000n), Errno.EFAULT);
    assert.equal(snapshot(f.m), before);
  });

  test('without a domain nothing is pinned, so the same mapping succeeds, and the domain added later is refused', () => {
    const f = fixture(USER);
    ok(f.p.munmap(f.buf + 3n * PAGE, PAGE));
    ok(map(f, f.buf, 4n * PAGE, 0x10000n));
    const iopt = ioasObj(f.p, f.fd, f.ioas).iopt;
    assert.throws(() => iopt.addDomain(f.p, new RecordingDomain()), (e: unknown) => e instanceof KernelError && e.errno === Errno.EFAULT);
    assert.equal(totalPins(f), 0);
    assert.equal(f.p.user.lockedVm, 0);
  });

  test('read-only memory maps READABLE but not WRITEABLE once pages are pinned', () => {
    const f = fixture(USER);
    addDomains(f.p, f.fd, f.ioas, 1);
    const ro = f.p.mmapOrThrow(2n * PAGE, PROT_READ);
    fails(map(f, ro, 2n * PAGE, 0x10000n), Errno.EFAULT);
    ok(map(f, ro, 2n * PAGE, 0x10000n, IOMMU_IOAS_MAP_READABLE));
    assert.equal(totalPins(f), 2);
  });

  test('an area copied from part of another keeps exactly its pages pinned when the original goes', () => {
    const f = fixture(USER);
    addDomains(f.p, f.fd, f.ioas, 1);
    ok(map(f, f.buf, 4n * PAGE, 0x10000n));
    ok(call(f.p, f.fd, IOMMU_IOAS_COPY, iommu_ioas_copy, { flags: RW | IOMMU_IOAS_MAP_FIXED_IOVA, dst_ioas_id: f.ioas, src_ioas_id: f.ioas, length: 2n * PAGE, dst_iova: 0x80000n, src_iova: 0x11000n }).r);
    const frames = framesOf(f.p, f.buf, 4);
    assert.deepEqual(frames.map((fr) => fr.pins), [1, 1, 1, 1]);
    ok(unmap(f, 0x10000n, 4n * PAGE));
    assert.deepEqual(frames.map((fr) => fr.pins), [0, 1, 1, 0]);
    assert.equal(f.p.user.lockedVm, 2);
    assert.equal(f.p.mm.pinnedVm, 2);
    ok(unmap(f, 0x80000n, 2n * PAGE));
    assert.deepEqual(frames.map((fr) => fr.pins), [0, 0, 0, 0]);
    assert.equal(f.p.user.lockedVm, 0);
  });
});

describe('accounting', () => {
  test('per-user: RLIMIT_MEMLOCK is reached exactly, one page more is ENOMEM and leaves nothing pinned or charged', () => {
    const f = fixture(USER);
    ok(f.p.poke(f.buf, new Uint8Array(Number(f.bufSize))));
    addDomains(f.p, f.fd, f.ioas, 1);
    ok(map(f, f.buf, 3n * PAGE, 0x10000n));
    ok(map(f, f.buf + 3n * PAGE, PAGE, 0x20000n));
    assert.equal(f.p.user.lockedVm, 4, 'exactly at the 4-page limit');
    assert.equal(f.p.mm.lockedVm, 0);
    assert.equal(f.p.mm.pinnedVm, 4);
    const before = snapshot(f.m);
    const reason = fails(map(f, f.buf + 4n * PAGE, PAGE, 0x30000n), Errno.ENOMEM);
    assert.match(reason, /RLIMIT_MEMLOCK/);
    assert.equal(snapshot(f.m), before);
    // A refund makes room again.
    ok(unmap(f, 0x20000n, PAGE));
    ok(map(f, f.buf + 4n * PAGE, PAGE, 0x30000n));
    assert.equal(f.p.user.lockedVm, 4);
  });

  test('per-user: one mapping larger than the limit fails whole', () => {
    const f = fixture(USER);
    ok(f.p.poke(f.buf, new Uint8Array(Number(f.bufSize))));
    addDomains(f.p, f.fd, f.ioas, 1);
    const before = snapshot(f.m);
    fails(map(f, f.buf, 5n * PAGE, null), Errno.ENOMEM);
    assert.equal(snapshot(f.m), before);
    assert.equal(totalPins(f), 0);
  });

  test('per-user: the limit is shared by every process of the uid', () => {
    const a = fixture(USER);
    addDomains(a.p, a.fd, a.ioas, 1);
    const b = a.m.spawn(USER);
    const bfd = b.openOrThrow('/dev/iommu');
    const bf = { p: b, fd: bfd, ioas: ioasAlloc(b, bfd) };
    addDomains(b, bfd, bf.ioas, 1);
    const bbuf = b.mmapOrThrow(4n * PAGE);
    ok(map(a, a.buf, 3n * PAGE, 0x10000n));
    fails(map(bf, bbuf, 2n * PAGE, 0x10000n), Errno.ENOMEM);
    ok(map(bf, bbuf, PAGE, 0x10000n));
    assert.equal(a.p.user.lockedVm, 4);
    assert.equal(a.p.mm.pinnedVm, 3);
    assert.equal(b.mm.pinnedVm, 1);
  });

  test('RLIMIT_MODE=1 charges the mm instead of the user, against the same limit', () => {
    const m = checkedMachine();
    const p = m.spawn({ ...USER, caps: [CAP_SYS_RESOURCE] });
    const fd = p.openOrThrow('/dev/iommu');
    setRlimitMode(p, fd, 1n);
    const got = call(p, fd, IOMMU_OPTION, iommu_option, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET, object_id: 0 });
    ok(got.r);
    assert.equal(got.out.val64, 1n);
    const f = { m, p, fd, ioas: ioasAlloc(p, fd) };
    addDomains(p, fd, f.ioas, 1);
    const buf = p.mmapOrThrow(8n * PAGE);
    ok(p.poke(buf, new Uint8Array(8 * 4096)));
    ok(map(f, buf, 4n * PAGE, null));
    assert.equal(p.mm.lockedVm, 4);
    assert.equal(p.mm.pinnedVm, 4);
    assert.equal(p.user.lockedVm, 0, 'the user is not charged');
    const before = snapshot(m);
    fails(map(f, buf + 4n * PAGE, PAGE, null), Errno.ENOMEM);
    assert.equal(snapshot(m), before);
    ok(unmap(f, 0n, (1n << 64n) - 1n));
    assert.equal(p.mm.lockedVm, 0);
    assert.equal(p.mm.pinnedVm, 0);
  });

  test('CAP_IPC_LOCK charges nothing, but pinned_vm still moves', () => {
    const f = setup({ uid: 1000, caps: [CAP_IPC_LOCK], memlock: PAGE });
    addDomains(f.p, f.fd, f.ioas, 1);
    ok(map(f, f.buf, 8n * PAGE, null));
    assert.equal(f.p.user.lockedVm, 0);
    assert.equal(f.p.mm.lockedVm, 0);
    assert.equal(f.p.mm.pinnedVm, 8);
    assert.equal(totalPins(f), 8);
    ok(unmap(f, 0n, (1n << 64n) - 1n));
    assert.equal(f.p.mm.pinnedVm, 0);
  });
});

describe('domains added and removed under existing mappings', () => {
  test('addDomain pins every existing area once; a second domain pins nothing more; removal unpins with the last', () => {
    const f = fixture(USER);
    ok(map(f, f.buf, 2n * PAGE, 0x10000n));
    ok(map(f, f.buf + 2n * PAGE, PAGE, 0x40000n));
    assert.equal(totalPins(f), 0);
    const iopt = ioasObj(f.p, f.fd, f.ioas).iopt;
    const d1 = new RecordingDomain();
    iopt.addDomain(f.p, d1);
    assert.equal(totalPins(f), 3);
    assert.equal(d1.pt.size, 3);
    assert.equal(f.p.user.lockedVm, 3);
    const d2 = new RecordingDomain();
    iopt.addDomain(f.p, d2);
    assert.equal(totalPins(f), 3);
    assert.deepEqual([...d2.pt.keys()].sort(), [...d1.pt.keys()].sort());
    iopt.removeDomain(d1);
    assert.equal(d1.pt.size, 0);
    assert.equal(totalPins(f), 3);
    iopt.removeDomain(d2);
    assert.equal(d2.pt.size, 0);
    assert.equal(totalPins(f), 0);
    assert.equal(f.p.user.lockedVm, 0);
    assert.equal(f.p.mm.pinnedVm, 0);
  });

  test('addDomain over the memory limit fails whole: nothing pinned, charged or mapped, no reservations left', () => {
    const f = fixture(USER);
    ok(f.p.poke(f.buf, new Uint8Array(Number(f.bufSize))));
    ok(map(f, f.buf, 3n * PAGE, 0x10000n));
    ok(map(f, f.buf + 3n * PAGE, 3n * PAGE, 0x40000n));
    const before = snapshot(f.m);
    const iopt = ioasObj(f.p, f.fd, f.ioas).iopt;
    const d = new RecordingDomain();
    assert.throws(() => iopt.addDomain(f.p, d), (e: unknown) => e instanceof KernelError && e.errno === Errno.ENOMEM);
    assert.equal(d.pt.size, 0);
    assert.equal(iopt.domains.length, 0);
    assert.equal(snapshot(f.m), before);
  });

  test('addDomain of a 4 KiB domain refuses an IOAS holding a sub-page-aligned mapping (EADDRINUSE)', () => {
    const f = fixture(USER);
    ok(map(f, f.buf + 0x800n, 0x800n, 0x10800n));
    const iopt = ioasObj(f.p, f.fd, f.ioas).iopt;
    assert.throws(() => iopt.addDomain(f.p, new RecordingDomain()), (e: unknown) => e instanceof KernelError && e.errno === Errno.EADDRINUSE);
    assert.equal(iopt.iovaAlignment, 1n);
    assert.equal(totalPins(f), 0);
  });
});

describe('pinned frames and the process lifecycle', () => {
  test('a process that exits keeps its pinned frames alive until they are unmapped', () => {
    const f = fixture(USER);
    addDomains(f.p, f.fd, f.ioas, 1);
    ok(f.p.poke(f.buf, new TextEncoder().encode('pinned')));
    ok(map(f, f.buf, 2n * PAGE, 0x10000n));
    const frames = framesOf(f.p, f.buf, 2);
    const child = f.p.fork();
    f.p.exit();
    assert.equal(f.p.mm.alive, false);
    for (const fr of frames) {
      assert.equal(f.m.phys.lookup(fr.pfn), fr, 'the frame is still allocated');
      assert.equal(fr.pins, 1);
      assert.equal(fr.refs, 1, 'only the pin holds it now');
    }
    assert.equal(new TextDecoder().decode(frames[0]!.data.subarray(0, 6)), 'pinned');
    assert.equal(f.p.user.lockedVm, 2, 'the charge stays until the unmap');
    // The child holds the iommufd; its unmap frees the frames and refunds the exited mm and user.
    ok(unmap({ p: child, fd: f.fd, ioas: f.ioas }, 0x10000n, 2n * PAGE));
    for (const fr of frames) assert.equal(f.m.phys.lookup(fr.pfn), undefined, 'the frame was freed');
    assert.equal(f.p.mm.pinnedVm, 0);
    assert.equal(f.p.user.lockedVm, 0);
  });

  test('the pages of an exited process can no longer be pinned (EFAULT)', () => {
    const f = fixture(USER);
    ok(map(f, f.buf, 2n * PAGE, 0x10000n));
    const child = f.p.fork();
    f.p.exit();
    const iopt = ioasObj(child, f.fd, f.ioas).iopt;
    assert.throws(() => iopt.addDomain(child, new RecordingDomain()), (e: unknown) => e instanceof KernelError && e.errno === Errno.EFAULT);
    assert.equal(iopt.domains.length, 0);
    child.exit();
    assert.equal(f.m.iommufd.contexts.size, 0);
  });

  test('munmap of pinned memory leaves the device on the old frames; memory mapped there afterwards is new', () => {
    const f = fixture(USER);
    const [d] = addDomains(f.p, f.fd, f.ioas, 1) as [RecordingDomain];
    ok(f.p.poke(f.buf, new TextEncoder().encode('before munmap')));
    ok(map(f, f.buf, 2n * PAGE, 0x10000n));
    const pinned = domainFrames(d, 0x10000n, 2);
    ok(f.p.munmap(f.buf, 2n * PAGE));
    for (const fr of pinned) {
      assert.equal(f.m.phys.lookup(fr.pfn), fr);
      assert.equal(fr.refs, 1);
    }
    ok(f.p.mmap(f.buf, 2n * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED));
    ok(f.p.poke(f.buf, new TextEncoder().encode('after')));
    assert.notEqual(framesOf(f.p, f.buf, 1)[0], pinned[0]);
    assert.equal(new TextDecoder().decode(pinned[0]!.data.subarray(0, 13)), 'before munmap');
    // The IOAS still maps the old frames; pinning the range again (a second domain) sees the old pins.
    const d2 = addDomains(f.p, f.fd, f.ioas, 1)[0]!;
    assert.deepEqual(domainFrames(d2, 0x10000n, 2), pinned);
    ok(unmap(f, 0x10000n, 2n * PAGE));
    for (const fr of pinned) assert.equal(f.m.phys.lookup(fr.pfn), undefined);
    assert.equal(f.p.user.lockedVm, 0);
  });

  test('hugetlb memory is pinned page by page of the huge page it sits in', () => {
    const f = fixture({ ...USER, memlock: 1n << 30n });
    const [d] = addDomains(f.p, f.fd, f.ioas, 1) as [RecordingDomain];
    const huge = f.p.mmapOrThrow(BigInt(HPAGE_SIZE), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB);
    ok(map(f, huge + 4n * PAGE, 8n * PAGE, 0x200000n));
    const frames = domainFrames(d, 0x200000n, 8);
    for (let i = 1; i < 8; i++) assert.equal(frames[i]!.pfn, frames[0]!.pfn + i, 'contiguous frames of one huge page');
    assert.equal(frames[0]!.pfn % (HPAGE_SIZE / 4096), 4);
    assert.equal(f.p.user.lockedVm, 8);
  });

  test('fork: the child gets its own copy of a pinned private page; DMA keeps seeing the parent\'s', () => {
    const f = fixture(USER);
    const [d] = addDomains(f.p, f.fd, f.ioas, 1) as [RecordingDomain];
    ok(f.p.poke(f.buf, new TextEncoder().encode('parent')));
    ok(map(f, f.buf, PAGE, 0x10000n));
    const pinned = d.frameAt(0x10000n)!;
    const child = f.p.fork();
    const childFrame = child.mm.pages.get(Number(f.buf >> 12n));
    assert.ok(childFrame && childFrame !== pinned, 'the child has a different frame');
    assert.equal(new TextDecoder().decode(child.peek(f.buf, 6)), 'parent', 'with the same contents');
    ok(child.poke(f.buf, new TextEncoder().encode('child!')));
    assert.equal(new TextDecoder().decode(pinned.data.subarray(0, 6)), 'parent', 'the child\'s write does not reach the device');
    ok(f.p.poke(f.buf, new TextEncoder().encode('again!')));
    assert.equal(new TextDecoder().decode(pinned.data.subarray(0, 6)), 'again!', 'the parent\'s write does');
    assert.equal(pinned.pins, 1);
  });

  test('fork: MAP_SHARED frames are shared, so the child\'s writes reach the device', () => {
    const f = fixture(USER);
    const [d] = addDomains(f.p, f.fd, f.ioas, 1) as [RecordingDomain];
    const shm = f.p.mmapOrThrow(2n * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
    ok(map(f, shm, 2n * PAGE, 0x10000n));
    const child = f.p.fork();
    const pinned = domainFrames(d, 0x10000n, 2);
    assert.deepEqual(framesOf(child, shm, 2), pinned, 'the child maps the very frames the domain does');
    ok(child.poke(shm + PAGE, new TextEncoder().encode('shared')));
    assert.equal(new TextDecoder().decode(pinned[1]!.data.subarray(0, 6)), 'shared');
    for (const fr of pinned) assert.equal(fr.refs, 3, 'parent page table, child page table, pin');
    child.exit();
    for (const fr of pinned) assert.equal(fr.refs, 2);
  });
});
