/**
 * The process side of the emulated kernel: anonymous mmap/munmap, user memory access (peek/poke,
 * EFAULT), copy_struct_from_user as an ioctl sees it, the fd table (lowest free fd, /dev/null on
 * 0-2, dup, EBADF, EMFILE), fork and exit; and the interval tree io_pagetable is built on, checked
 * against a naive model.
 */

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Errno,
  Machine,
  HPAGE_SIZE,
  IOMMU_IOAS_ALLOC,
  KernelError,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_HUGETLB,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  iommu_ioas_alloc,
} from '../src/index.js';
import { IntervalTree, type IntervalNode, doubleSpans, type Span } from '../src/kernel/lib/interval_tree.js';
import { PAGE, checkedMachine, fails, ioasAlloc, map, ok, rng, setup } from './helpers.js';
import { ioasObj } from './recording_domain.js';
import { unpinFrame } from '../src/kernel/mm/mm.js';

const RW_PROT = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const HPAGE = BigInt(HPAGE_SIZE);
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

function throwsErrno(fn: () => unknown, errno: number): void {
  assert.throws(fn, (e: unknown) => e instanceof KernelError && e.errno === errno);
}

describe('mmap and munmap', () => {
  test('mmap rounds the length up to whole pages and returns a page-aligned address', () => {
    const { m } = setup();
    const p = m.spawn();
    const a = ok(p.mmap(0n, 100n, RW_PROT, ANON));
    assert.equal(a % PAGE, 0n);
    const vma = p.mm.findVma(a)!;
    assert.equal(vma.end - vma.start, PAGE);
    ok(p.poke(a + PAGE - 1n, enc('x')));
    fails(p.poke(a + PAGE, enc('x')), Errno.EFAULT);
  });

  test('mmap refuses length 0, both or neither of SHARED/PRIVATE, and non-anonymous memory', () => {
    const { p } = setup();
    fails(p.mmap(0n, 0n, RW_PROT, ANON), Errno.EINVAL);
    fails(p.mmap(0n, PAGE, RW_PROT, MAP_SHARED | MAP_PRIVATE | MAP_ANONYMOUS), Errno.EINVAL);
    fails(p.mmap(0n, PAGE, RW_PROT, MAP_ANONYMOUS), Errno.EINVAL);
    fails(p.mmap(0n, PAGE, RW_PROT, MAP_PRIVATE), Errno.ENODEV);
  });

  test('MAP_FIXED needs an aligned address and replaces whatever was mapped there', () => {
    const { p } = setup();
    const a = p.mmapOrThrow(4n * PAGE);
    ok(p.poke(a + PAGE, enc('old')));
    fails(p.mmap(a + 1n, PAGE, RW_PROT, ANON | MAP_FIXED), Errno.EINVAL);
    assert.equal(ok(p.mmap(a + PAGE, PAGE, PROT_READ, ANON | MAP_FIXED)), a + PAGE);
    assert.deepEqual([...p.peek(a + PAGE, 3)], [0, 0, 0], 'fresh zero page');
    fails(p.poke(a + PAGE, enc('new')), Errno.EFAULT);
    ok(p.poke(a, enc('still writable')));
    ok(p.poke(a + 2n * PAGE, enc('still writable')));
    assert.equal(p.mm.vmas.filter((v) => v.start >= a && v.end <= a + 4n * PAGE).length, 3, 'the VMA was split in three');
  });

  test('mmap without MAP_FIXED never overlaps existing mappings', () => {
    const { p } = setup();
    const got: bigint[] = [];
    for (let i = 0; i < 20; i++) got.push(p.mmapOrThrow(BigInt(1 + (i % 3)) * PAGE));
    const vmas = [...p.mm.vmas];
    for (let i = 1; i < vmas.length; i++) assert.ok(vmas[i - 1]!.end <= vmas[i]!.start, 'VMAs overlap');
  });

  test('munmap refuses an unaligned address or a zero length; unmapping nothing succeeds', () => {
    const { p } = setup();
    const a = p.mmapOrThrow(2n * PAGE);
    fails(p.munmap(a + 1n, PAGE), Errno.EINVAL);
    fails(p.munmap(a, 0n), Errno.EINVAL);
    ok(p.munmap(0x1000_0000n, PAGE));
  });

  test('munmap of a middle page leaves both edges mapped and drops the page', () => {
    const { m, p } = setup();
    const a = p.mmapOrThrow(3n * PAGE);
    ok(p.poke(a, new Uint8Array(3 * 4096).fill(7)));
    const frames = m.phys.allocated;
    ok(p.munmap(a + PAGE, PAGE));
    assert.equal(m.phys.allocated, frames - 1, 'the frame was freed');
    assert.equal(p.peek(a, 1)[0], 7);
    assert.equal(p.peek(a + 2n * PAGE, 1)[0], 7);
    throwsErrno(() => p.peek(a + PAGE, 1), Errno.EFAULT);
  });

  test('MAP_POPULATE faults every page in at once; plain mmap faults nothing', () => {
    const { p } = setup();
    const lazy = p.mmapOrThrow(4n * PAGE);
    const eager = p.mmapOrThrow(4n * PAGE, RW_PROT, ANON | MAP_POPULATE);
    const faulted = (a: bigint): number => [0, 1, 2, 3].filter((i) => p.mm.pages.has(Number(a >> 12n) + i)).length;
    assert.equal(faulted(lazy), 0);
    assert.equal(faulted(eager), 4);
  });

  test('hugetlb: whole huge pages from the pool, ENOMEM when it runs dry, back to the pool on munmap', () => {
    const m = checkedMachine({ hugePages: 3 });
    const p = m.spawn();
    const a = ok(p.mmap(0n, HPAGE + 1n, RW_PROT, ANON | MAP_HUGETLB));
    assert.equal(a % HPAGE, 0n, 'huge-page aligned');
    assert.equal(m.hugePool.free, 1, 'the length was rounded up to two huge pages');
    const r = p.mmap(0n, 2n * HPAGE, RW_PROT, ANON | MAP_HUGETLB);
    fails(r, Errno.ENOMEM);
    assert.equal(m.hugePool.free, 1, 'a refused mmap takes nothing');
    fails(p.munmap(a + PAGE, PAGE), Errno.EINVAL);
    ok(p.poke(a + PAGE, enc('x')));
    const first = p.mm.pages.get(Number(a >> 12n))!;
    assert.equal(first.pfn % (HPAGE_SIZE / 4096), 0, 'a touch faults the whole, naturally aligned huge page');
    ok(p.munmap(a, HPAGE));
    assert.equal(m.hugePool.free, 2);
    p.exit();
    assert.equal(m.hugePool.free, 3);
  });

  test('fork of a process with a MAP_SHARED hugetlb mapping needs no free huge pages', () => {
    // mm/hugetlb.c:copy_hugetlb_page_range shares the parent's huge pages with the child for
    // shared mappings (and for private ones not pinned for DMA); fork takes nothing from the pool.
    const m = checkedMachine({ hugePages: 4 });
    const p = m.spawn();
    const a = p.mmapOrThrow(3n * HPAGE, RW_PROT, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE);
    const child = p.fork();
    assert.equal(m.hugePool.free, 1);
    assert.equal(child.mm.pages.get(Number(a >> 12n)), p.mm.pages.get(Number(a >> 12n)));
    child.exit();
    p.exit();
    assert.equal(m.hugePool.free, 4);
  });
});

describe('user memory access', () => {
  test('poke then peek round-trips, across a page boundary too', () => {
    const { p, buf } = setup();
    ok(p.poke(buf + PAGE - 3n, enc('boundary')));
    assert.equal(dec(p.peek(buf + PAGE - 3n, 8)), 'boundary');
  });

  test('unmapped memory is EFAULT for both', () => {
    const { p } = setup();
    const a = p.mmapOrThrow(PAGE);
    ok(p.munmap(a, PAGE));
    fails(p.poke(a, enc('x')), Errno.EFAULT);
    throwsErrno(() => p.peek(a, 1), Errno.EFAULT);
    throwsErrno(() => p.peek(0n, 1), Errno.EFAULT);
    throwsErrno(() => p.peek(1n << 63n, 1), Errno.EFAULT);
  });

  test('a PROT_READ mapping can be read but a write is EFAULT; PROT_NONE refuses both', () => {
    const { p } = setup();
    const ro = p.mmapOrThrow(PAGE, PROT_READ);
    assert.deepEqual([...p.peek(ro, 2)], [0, 0]);
    const r = fails(p.poke(ro, enc('x')), Errno.EFAULT);
    assert.match(r, /protection/);
    const none = p.mmapOrThrow(PAGE, PROT_NONE);
    throwsErrno(() => p.peek(none, 1), Errno.EFAULT);
  });
});

describe('copy_struct_from_user through an ioctl', () => {
  function allocBytes(size: number, trailing?: number): Uint8Array {
    const b = new Uint8Array(size);
    b.set(iommu_ioas_alloc.encode({ size }).subarray(0, Math.min(size, iommu_ioas_alloc.size)));
    if (trailing !== undefined) b[trailing] = 1;
    return b;
  }

  test('a larger struct whose extra bytes are zero is accepted; only the known part is written back', () => {
    const { p, fd } = setup();
    const b = allocBytes(24);
    b.fill(0, 12);
    ok(p.ioctl(fd, IOMMU_IOAS_ALLOC, b));
    assert.equal(iommu_ioas_alloc.decode(b).out_ioas_id, 2);
    assert.deepEqual([...b.subarray(12)], new Array(12).fill(0));
  });

  test('a non-zero byte past the known struct is E2BIG, names the byte, and allocates nothing', () => {
    const { m, p, fd } = setup();
    const ctx = [...m.iommufd.contexts][0]!;
    const reason = fails(p.ioctl(fd, IOMMU_IOAS_ALLOC, allocBytes(24, 19)), Errno.E2BIG);
    assert.match(reason, /byte 19/);
    assert.equal(ctx.objects().length, 1);
    // The next allocation still gets the next ID: nothing was reserved.
    assert.equal(ioasAlloc(p, fd), 2);
  });

  test('extra bytes that run into unmapped memory are EFAULT', () => {
    const { p, fd } = setup();
    const two = p.mmapOrThrow(2n * PAGE);
    ok(p.munmap(two + PAGE, PAGE));
    const at = two + PAGE - 12n;
    ok(p.poke(at, iommu_ioas_alloc.encode({ size: 16 })));
    fails(p.ioctl(fd, IOMMU_IOAS_ALLOC, at), Errno.EFAULT);
  });

  test('a struct in read-only memory is read, then the write-back is EFAULT and the IOAS is aborted', () => {
    const { m, p, fd } = setup();
    // A read-only page with the struct in it, as a read-only file mapping would hold it: the test
    // fills the frame behind the page directly, since the program itself cannot write there.
    const a = p.mmapOrThrow(PAGE, PROT_READ);
    p.mm.frameAt(a, false).data.set(iommu_ioas_alloc.encode({ size: iommu_ioas_alloc.size }));
    const ctx = [...m.iommufd.contexts][0]!;
    const reason = fails(p.ioctl(fd, IOMMU_IOAS_ALLOC, a), Errno.EFAULT);
    assert.match(reason, /writing back iommu_ioas_alloc/);
    assert.equal(ctx.objects().length, 1, 'the IOAS was aborted');
    assert.equal(ioasAlloc(p, fd), 2, 'and its ID given back');
  });
});

describe('the fd table', () => {
  test('fds 0-2 are /dev/null: reads end at once, writes vanish', () => {
    const { p, buf } = setup();
    assert.deepEqual(p.openFds().slice(0, 3), [0, 1, 2]);
    for (const fd of [0, 1, 2]) assert.equal(p.fget(fd).path, '/dev/null');
    assert.equal(ok(p.read(0, buf, 100)), 0);
    assert.equal(ok(p.write(1, buf, 100)), 100);
  });

  test('open takes the lowest free fd', () => {
    const m = checkedMachine();
    const p = m.spawn();
    assert.equal(p.openOrThrow('/dev/iommu'), 3);
    assert.equal(p.openOrThrow('/dev/iommu'), 4);
    assert.equal(p.openOrThrow('/dev/iommu'), 5);
    ok(p.close(4));
    assert.equal(p.openOrThrow('/dev/null'), 4);
    ok(p.close(0));
    assert.equal(p.openOrThrow('/dev/iommu'), 0);
    assert.equal(p.openOrThrow('/dev/iommu'), 6);
  });

  test('dup shares the file: the context lives until its last fd closes', () => {
    const { m, p, fd, ioas, buf } = setup();
    const fd2 = ok(p.dup(fd));
    assert.equal(fd2, fd + 1);
    assert.equal(p.fget(fd2), p.fget(fd));
    ok(p.close(fd));
    assert.equal(m.iommufd.contexts.size, 1);
    ok(map({ p, fd: fd2, ioas }, buf, PAGE, 0x10000n));
    ok(p.close(fd2));
    assert.equal(m.iommufd.contexts.size, 0);
  });

  test('EBADF for a closed, never-opened or negative fd', () => {
    const { p, fd } = setup();
    ok(p.close(fd));
    fails(p.close(fd), Errno.EBADF);
    fails(p.ioctl(fd, IOMMU_IOAS_ALLOC, new Uint8Array(12)), Errno.EBADF);
    fails(p.dup(fd), Errno.EBADF);
    fails(p.close(77), Errno.EBADF);
    fails(p.close(-1), Errno.EBADF);
    fails(p.read(99, 0n, 1), Errno.EBADF);
  });

  test('EMFILE at RLIMIT_NOFILE for open, and the refused open leaks no context', () => {
    const m = checkedMachine();
    const p = m.spawn({ nofile: 5 });
    assert.equal(p.openOrThrow('/dev/iommu'), 3);
    assert.equal(p.openOrThrow('/dev/iommu'), 4);
    fails(p.open('/dev/iommu'), Errno.EMFILE);
    assert.equal(m.iommufd.contexts.size, 2);
    ok(p.close(4));
    assert.equal(ok(p.dup(3)), 4);
  });

  test('EMFILE for dup drops the reference it took: closing the fd still releases the context', () => {
    // fs/file.c:SYSCALL_DEFINE1(dup) fputs the file when get_unused_fd_flags fails.
    const m = checkedMachine();
    const p = m.spawn({ nofile: 4 });
    const fd = p.openOrThrow('/dev/iommu');
    const refs = p.fget(fd).refs;
    fails(p.dup(fd), Errno.EMFILE);
    assert.equal(p.fget(fd).refs, refs);
    ok(p.close(fd));
    assert.equal(m.iommufd.contexts.size, 0, 'the iommufd was released with its only fd');
  });

  test('opening a path that does not exist is ENOENT', () => {
    const { p } = setup();
    fails(p.open('/dev/nonexistent'), Errno.ENOENT);
  });
});

describe('fork and exit', () => {
  test('the child inherits every fd and shares the iommufd: objects made through it are the parent\'s too', () => {
    const { m, p, fd, buf } = setup();
    const child = p.fork();
    assert.deepEqual(child.openFds(), p.openFds());
    assert.equal(child.fget(fd), p.fget(fd));
    const id = ioasAlloc(child, fd);
    // The parent maps its own memory into the IOAS the child created.
    ok(map({ p, fd, ioas: id }, buf, PAGE, 0x10000n));
    assert.equal(ioasObj(child, fd, id).iopt.areas.size, 1);
    assert.equal(m.iommufd.contexts.size, 1);
  });

  test('the child\'s private memory starts as a copy and then goes its own way', () => {
    const { p, buf } = setup();
    ok(p.poke(buf, enc('before fork')));
    const child = p.fork();
    assert.equal(dec(child.peek(buf, 11)), 'before fork');
    ok(child.poke(buf, enc('child')));
    assert.equal(dec(p.peek(buf, 11)), 'before fork');
  });

  test('after fork a private page is one frame shared copy-on-write: the first writer gets a copy, the last keeps the frame', () => {
    const { m, p, buf } = setup();
    ok(p.poke(buf, enc('shared')));
    const frame = p.mm.frameAt(buf, false);
    const frames = m.phys.allocated;
    const child = p.fork();
    assert.equal(child.mm.frameAt(buf, false), frame, 'a read keeps sharing it');
    assert.equal(m.phys.allocated, frames);
    assert.equal(frame.refs, 2);
    ok(child.poke(buf, enc('child!')));
    const copy = child.mm.frameAt(buf, false);
    assert.notEqual(copy, frame);
    assert.equal(frame.refs, 1);
    assert.equal(dec(p.peek(buf, 6)), 'shared');
    assert.equal(dec(child.peek(buf, 6)), 'child!');
    ok(p.poke(buf, enc('parent')));
    assert.equal(p.mm.frameAt(buf, false), frame, 'the last mapping reuses the frame');
    assert.equal(m.phys.allocated, frames + 1);
  });

  test('a page pinned at fork is copied for the child at once (DMA keeps reaching the parent\'s); a pin after fork unshares, even for reading', () => {
    // Pins taken by hand, not by iommufd: a machine without the invariant checker.
    const p = new Machine().spawn();
    const buf = p.mmapOrThrow(2n * PAGE);
    ok(p.poke(buf, enc('pinned')));
    ok(p.poke(buf + PAGE, enc('later!')));
    const [pinned] = p.mm.pinPages(buf, 1, true);
    const child = p.fork();
    assert.notEqual(child.mm.frameAt(buf, false), pinned);
    assert.equal(dec(child.peek(buf, 6)), 'pinned');
    const before = p.mm.frameAt(buf + PAGE, false);
    assert.equal(child.mm.frameAt(buf + PAGE, false), before);
    const [late] = child.mm.pinPages(buf + PAGE, 1, false);
    assert.notEqual(late, before, 'FOLL_PIN takes the page for the child alone');
    assert.equal(dec(child.peek(buf + PAGE, 6)), 'later!');
    assert.equal(p.mm.frameAt(buf + PAGE, false), before);
    unpinFrame(p.machine.phys, pinned!);
    unpinFrame(p.machine.phys, late!);
  });

  test('closing in the child leaves the parent\'s fd open', () => {
    const { m, p, fd } = setup();
    const child = p.fork();
    ok(child.close(fd));
    assert.equal(m.iommufd.contexts.size, 1);
    assert.equal(ioasAlloc(p, fd), 2);
  });

  test('exit closes every fd: the context dies with the last process holding it', () => {
    const { m, p, fd } = setup();
    const child = p.fork();
    p.exit();
    assert.equal(m.iommufd.contexts.size, 1, 'the child still holds it');
    assert.equal(ioasAlloc(child, fd), 2);
    child.exit();
    assert.equal(m.iommufd.contexts.size, 0);
    assert.equal([...m.processes()].length, 0);
  });

  test('an exited process answers every syscall with ESRCH', () => {
    const { p, fd, buf } = setup();
    p.exit();
    fails(p.ioctl(fd, IOMMU_IOAS_ALLOC, new Uint8Array(12)), Errno.ESRCH);
    fails(p.open('/dev/iommu'), Errno.ESRCH);
    fails(p.poke(buf, enc('x')), Errno.ESRCH);
    throwsErrno(() => p.fork(), Errno.ESRCH);
  });
});

// ---- interval tree ----

interface Node extends IntervalNode {
  id: number;
}

/** The naive model: an array in tree order, (start, insertion sequence). */
class Model {
  items: { n: Node; seq: number }[] = [];
  #seq = 0;
  insert(n: Node): void {
    this.items.push({ n, seq: this.#seq++ });
    this.items.sort((a, b) => (a.n.start < b.n.start ? -1 : a.n.start > b.n.start ? 1 : a.seq - b.seq));
  }
  remove(n: Node): void {
    this.items = this.items.filter((i) => i.n !== n);
  }
  ordered(): Node[] {
    return this.items.map((i) => i.n);
  }
  overlapping(s: bigint, l: bigint): Node[] {
    return this.ordered().filter((n) => n.start <= l && n.last >= s);
  }
}

/** Spans of [s, l] from a per-point coverage function: maximal runs of used or unused points. */
function pointSpans(s: bigint, l: bigint, covered: (x: bigint) => boolean): Span[] {
  const out: Span[] = [];
  for (let x = s; x <= l; x++) {
    const used = covered(x);
    const top = out[out.length - 1];
    if (top && top.isHole === !used) top.last = x;
    else out.push({ isHole: !used, start: x, last: x });
  }
  return out;
}

describe('interval tree', () => {
  test('random inserts and removes agree with a naive model: order, iterFirst, iterNext, spans', () => {
    const r = rng(1234);
    const tree = new IntervalTree<Node>();
    const model = new Model();
    let id = 0;
    const int = (n: number): number => Math.floor(r() * n);
    for (let step = 0; step < 1500; step++) {
      const live = model.ordered();
      if (live.length && r() < 0.4) {
        const victim = live[int(live.length)]!;
        tree.remove(victim);
        model.remove(victim);
      } else {
        const start = BigInt(int(300));
        const node: Node = { id: id++, start, last: start + BigInt(int(r() < 0.2 ? 0 : 40)) };
        tree.insert(node);
        model.insert(node);
      }
      assert.equal(tree.size, model.items.length);
      if (step % 5) continue;
      assert.deepEqual([...tree].map((n) => n.id), model.ordered().map((n) => n.id), `order after step ${step}`);
      for (let q = 0; q < 8; q++) {
        const s = BigInt(int(360));
        const l = s + BigInt(int(q < 2 ? 1 : 120));
        const want = model.overlapping(s, l);
        assert.equal(tree.iterFirst(s, l)?.id, want[0]?.id, `iterFirst(${s}, ${l})`);
        const chain: number[] = [];
        for (let it = tree.iterFirst(s, l); it; it = tree.iterNext(it, s, l)) chain.push(it.id);
        assert.deepEqual(chain, want.map((n) => n.id), `iterNext chain over [${s}, ${l}] at step ${step}`);
        // iterNext from any node, overlapping or not, is the next overlapping node in tree order.
        const all = model.ordered();
        if (all.length) {
          const from = all[int(all.length)]!;
          const after = all.slice(all.indexOf(from) + 1).find((n) => n.start <= l && n.last >= s);
          assert.equal(tree.iterNext(from, s, l)?.id, after?.id);
        }
        const covered = (x: bigint): boolean => all.some((n) => n.start <= x && x <= n.last);
        assert.deepEqual([...tree.spans(s, l)], pointSpans(s, l, covered), `spans(${s}, ${l}) at step ${step}`);
      }
    }
  });

  test('spans merges touching nodes into one used span and clips to the query', () => {
    const tree = new IntervalTree<IntervalNode>();
    for (const [s, l] of [
      [10n, 19n],
      [20n, 29n],
      [40n, 49n],
      [45n, 60n],
    ] as const) {
      tree.insert({ start: s, last: l });
    }
    assert.deepEqual(
      [...tree.spans(0n, 55n)],
      [
        { isHole: true, start: 0n, last: 9n },
        { isHole: false, start: 10n, last: 29n },
        { isHole: true, start: 30n, last: 39n },
        { isHole: false, start: 40n, last: 55n },
      ],
    );
    assert.deepEqual([...tree.spans(15n, 15n)], [{ isHole: false, start: 15n, last: 15n }]);
    assert.deepEqual([...new IntervalTree<IntervalNode>().spans(3n, 7n)], [{ isHole: true, start: 3n, last: 7n }]);
  });

  test('doubleSpans: holes are exactly the points neither tree covers', () => {
    const r = rng(99);
    for (let round = 0; round < 150; round++) {
      const a = new IntervalTree<IntervalNode>();
      const b = new IntervalTree<IntervalNode>();
      const nodes: IntervalNode[] = [];
      for (let i = 0; i < 12; i++) {
        const s = BigInt(Math.floor(r() * 200));
        const n = { start: s, last: s + BigInt(Math.floor(r() * 15)) };
        nodes.push(n);
        (r() < 0.5 ? a : b).insert(n);
      }
      const s = BigInt(Math.floor(r() * 100));
      const l = s + BigInt(Math.floor(r() * 150));
      const covered = (x: bigint): boolean => nodes.some((n) => n.start <= x && x <= n.last);
      assert.deepEqual([...doubleSpans(a, b, s, l)], pointSpans(s, l, covered), `round ${round} [${s}, ${l}]`);
    }
  });

  test('double insert and removing a stranger are programming errors, not kernel errors', () => {
    const tree = new IntervalTree<IntervalNode>();
    const n = { start: 1n, last: 2n };
    tree.insert(n);
    assert.throws(() => tree.insert(n), /already in the tree/);
    assert.throws(() => tree.remove({ start: 1n, last: 2n }), /not in the tree/);
    assert.throws(() => tree.insert({ start: 5n, last: 4n }), /bad interval/);
    tree.remove(n);
    assert.ok(tree.isEmpty());
  });

  test('nodes with equal starts iterate in insertion order', () => {
    const tree = new IntervalTree<Node>();
    const ns = [0, 1, 2, 3].map((id) => ({ id, start: 5n, last: 5n + BigInt(id) }));
    for (const n of ns) tree.insert(n);
    assert.deepEqual([...tree.overlapping(0n, 100n)].map((n) => n.id), [0, 1, 2, 3]);
    assert.deepEqual([...tree.overlapping(7n, 7n)].map((n) => n.id), [2, 3]);
  });
});
