/**
 * Fail-nth sweeps, as tools/testing/selftests/iommu/iommufd_fail_nth.c runs them: for N = 1, 2, 3, …
 * arm the task's fail-nth counter, make one call, and if the call failed require an errno the
 * injected site produces and the whole machine exactly as it was before the call (objects, IDs,
 * users, areas, reserved and allowed ranges, frame refs and pins, every locked_vm/pinned_vm, and
 * the contents of each attached IO page table). The sweep ends at the first N whose call succeeds
 * with the counter still armed: every fault site of the call has then been failed once.
 *
 * Each sweep runs per fixture variant — no domain (nothing pins), one and two recording domains
 * (IOAS_MAP pins and charges) — and, for the calls whose copies to or from user memory all happen
 * before any state changes (IOAS_ALLOC, which aborts its object when the copy-back fails;
 * IOAS_ALLOW_IOVAS; close), with the `usercopy` site enabled too. IOAS_MAP, IOAS_COPY and
 * IOAS_UNMAP are not swept with it: the kernel copies their result back only after the mapping or
 * unmapping is done and does not undo it when that copy faults, so an injected copy-back failure
 * rightly leaves state behind; the last describe block asserts exactly that kernel behaviour.
 */

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Errno,
  IOMMU_DESTROY,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_ALLOW_IOVAS,
  IOMMU_IOAS_COPY,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  KernelError,
  type Machine,
  type Process,
  type SysResult,
  errnoName,
  iommu_destroy,
  iommu_ioas_alloc,
  iommu_ioas_allow_iovas,
  iommu_ioas_copy,
  iommu_iova_range,
} from '../src/index.js';
import { PAGE, RW, type Fixture, call, ioasAlloc, map, ok, setup, snapshot, unmap } from './helpers.js';
import { DOMAIN_VARIANTS, MapFault, RecordingDomain, addDomains, ioasObj } from './recording_domain.js';
import { IOMMU_FAULT_QUEUE_ALLOC, iommu_fault_alloc } from '../src/uapi/iommufd.js';
import {
  IOMMU_TEST_CMD,
  IOMMU_TEST_OP_ACCESS_PAGES,
  IOMMU_TEST_OP_ACCESS_RW,
  IOMMU_TEST_OP_CREATE_ACCESS,
  IOMMU_TEST_OP_DESTROY_ACCESS_PAGES,
  MOCK_ACCESS_RW_SLOW_PATH,
  MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES,
  iommu_test_cmd,
  test_access_pages,
  test_access_rw,
  test_create_access,
  test_destroy_access_pages,
} from '../src/uapi/iommufd_test.js';

const { ENOMEM, ENOENT, EFAULT } = Errno;

interface SweepFixture extends Fixture {
  doms: RecordingDomain[];
  /** Every recording domain attached in this fixture, wherever it is. */
  allDoms: RecordingDomain[];
}

/**
 * setup() plus `domains` recording domains on the IOAS and one existing 2-page mapping at 0x10000.
 * The buffer is faulted in first, so pinning it allocates no frames: a failed pin must then leave
 * every frame's refcount exactly as it found it.
 */
function sweepFixture(domains: number): SweepFixture {
  const f = setup();
  ok(f.p.poke(f.buf, new Uint8Array(Number(f.bufSize))));
  const doms = addDomains(f.p, f.fd, f.ioas, domains);
  ok(map(f, f.buf, 2n * PAGE, 0x10000n));
  return { ...f, doms, allDoms: [...doms] };
}

/** snapshot() plus what each recording domain maps, so a half-filled IO page table shows. */
function state(f: SweepFixture): string {
  const pts = f.allDoms.map((d) => [...d.pt].map(([iova, e]) => `${iova.toString(16)}>${e.frame.pfn}/${e.prot}`).sort());
  return `${snapshot(f.m)}|${JSON.stringify(pts)}`;
}

interface SweepResult<R extends SysResult> {
  /** errno name per failing N. */
  failing: Map<number, string>;
  /** The call's result at the N where the injection no longer fired. */
  final: R;
  finalN: number;
}

/**
 * Sweep `run` from N = 1. A failure must come from an injected fault (the counter reached 0),
 * with one of `errnos`, a reason naming the injection, and no trace left. A success whose fault
 * fired anyway (a site whose failure the call tolerates) must be undone by `undo` to the same
 * state. The sweep returns at the first success that left the counter armed.
 */
function sweep<R extends SysResult>(p: Process, st: () => string, run: () => R, errnos: readonly number[], undo?: () => void): SweepResult<R> {
  const before = st();
  const failing = new Map<number, string>();
  for (let n = 1; ; n++) {
    assert.ok(n < 1000, 'the sweep never reached a success with the counter still armed');
    p.setFailNth(n);
    const r = run();
    const left = p.failNth;
    p.setFailNth(0);
    if (r.errno) {
      assert.equal(left, 0, `N=${n}: failed with ${errnoName(r.errno)} though no fault fired: ${r.reason}`);
      assert.ok(errnos.includes(r.errno), `N=${n}: ${errnoName(r.errno)} is not an errno the injected sites produce (${errnos.map(errnoName).join(', ')}): ${r.reason}`);
      assert.match(r.reason ?? '', /fault injected/, `N=${n}: the reason should name the injected fault`);
      assert.equal(st(), before, `N=${n}: failed with ${errnoName(r.errno)} (${r.reason}) but left state behind`);
      failing.set(n, errnoName(r.errno));
      continue;
    }
    if (left !== 0) return { failing, final: r, finalN: n };
    assert.ok(undo, `N=${n}: the injected fault fired, yet the call succeeded and no undo was given`);
    undo();
    assert.equal(st(), before, `N=${n}: a tolerated fault left state behind after undo`);
  }
}

function assertSwept(res: SweepResult<SysResult>, mustInclude: readonly string[]): void {
  assert.ok(res.failing.size >= 1, 'the sweep visited no failing N');
  const seen = new Set(res.failing.values());
  for (const e of mustInclude) assert.ok(seen.has(e), `no N failed with ${e}; saw ${[...res.failing].map(([n, e2]) => `${n}:${e2}`).join(' ')}`);
}

/** What `act` returns on a fresh, unfaulted fixture: the control a sweep's final result must match. */
function control<T>(domains: number, act: (f: SweepFixture) => T): T {
  return act(sweepFixture(domains));
}

function copyCmd(f: SweepFixture, dst: number, opts: { fixed: boolean }): SysResult & { dstIova: bigint } {
  const { r, out } = call(f.p, f.fd, IOMMU_IOAS_COPY, iommu_ioas_copy, {
    flags: RW | (opts.fixed ? IOMMU_IOAS_MAP_FIXED_IOVA : 0),
    dst_ioas_id: dst,
    src_ioas_id: f.ioas,
    length: 2n * PAGE,
    dst_iova: opts.fixed ? 0x400000n : 0n,
    src_iova: 0x10000n,
  });
  return { ...r, dstIova: out.dst_iova };
}

/** A user array of iommu_iova_range in fresh memory of `p`. */
function rangesInUser(p: Process, ranges: readonly [bigint, bigint][]): bigint {
  const addr = p.mmapOrThrow(PAGE);
  const bytes = new Uint8Array(ranges.length * iommu_iova_range.size);
  ranges.forEach(([start, last], i) => bytes.set(iommu_iova_range.encode({ start, last }), i * iommu_iova_range.size));
  ok(p.poke(addr, bytes));
  return addr;
}

function allowIovas(f: Fixture, addr: bigint, num: number): SysResult {
  return call(f.p, f.fd, IOMMU_IOAS_ALLOW_IOVAS, iommu_ioas_allow_iovas, { ioas_id: f.ioas, num_iovas: num, allowed_iovas: addr }).r;
}

function pinsOf(f: SweepFixture): number {
  let n = 0;
  for (const fr of f.m.phys.frames()) n += fr.pins;
  return n;
}

for (const v of DOMAIN_VARIANTS) {
  const pinning = v.domains > 0;

  describe(`fail-nth sweep, ${v.name}`, () => {
    test('IOAS_MAP at a fixed IOVA fails cleanly at every fault site', () => {
      const f = sweepFixture(v.domains);
      const res = sweep(f.p, () => state(f), () => map(f, f.buf + 4n * PAGE, 4n * PAGE, 0x200000n), [ENOMEM, ENOENT, EFAULT]);
      assertSwept(res, pinning ? ['ENOENT', 'ENOMEM', 'EFAULT'] : ['ENOENT', 'ENOMEM']);
      const area = ioasObj(f.p, f.fd, f.ioas).iopt.areas.iterFirst(0x200000n, 0x200000n);
      assert.ok(area && area.start === 0x200000n && area.length === 4n * PAGE, 'the final MAP mapped the range');
      for (const d of f.doms) assert.equal(d.pt.size, 6, 'each domain holds the old 2 pages and the new 4');
      assert.equal(pinsOf(f), pinning ? 6 : 0);
    });

    test('IOAS_MAP at a kernel-chosen IOVA fails cleanly and then picks the IOVA an unfaulted run picks', () => {
      const f = sweepFixture(v.domains);
      const res = sweep(f.p, () => state(f), () => map(f, f.buf + 4n * PAGE, 4n * PAGE, null), [ENOMEM, ENOENT, EFAULT]);
      assertSwept(res, pinning ? ['ENOENT', 'ENOMEM', 'EFAULT'] : ['ENOENT', 'ENOMEM']);
      const want = control(v.domains, (c) => map(c, c.buf + 4n * PAGE, 4n * PAGE, null).iova);
      assert.equal(res.final.iova, want);
    });

    test('IOAS_COPY into a fixed IOVA fails cleanly at every fault site', () => {
      const f = sweepFixture(v.domains);
      const dst = ioasAlloc(f.p, f.fd);
      f.allDoms.push(...addDomains(f.p, f.fd, dst, v.domains));
      const res = sweep(f.p, () => state(f), () => copyCmd(f, dst, { fixed: true }), [ENOMEM, ENOENT, EFAULT]);
      // The source IOAS already pinned the pages, so the copy pins nothing new: no EFAULT site.
      assertSwept(res, ['ENOENT', 'ENOMEM']);
      assert.ok(ioasObj(f.p, f.fd, dst).iopt.areas.iterFirst(0x400000n, 0x400000n), 'the final COPY mapped the range');
      assert.equal(pinsOf(f), pinning ? 2 : 0, 'the copy shares the pins of its iopt_pages');
    });

    test('IOAS_COPY to a kernel-chosen IOVA fails cleanly and then picks the IOVA an unfaulted run picks', () => {
      const f = sweepFixture(v.domains);
      const dst = ioasAlloc(f.p, f.fd);
      f.allDoms.push(...addDomains(f.p, f.fd, dst, v.domains));
      const res = sweep(f.p, () => state(f), () => copyCmd(f, dst, { fixed: false }), [ENOMEM, ENOENT, EFAULT]);
      assertSwept(res, ['ENOENT', 'ENOMEM']);
      const want = control(v.domains, (c) => {
        const d = ioasAlloc(c.p, c.fd);
        addDomains(c.p, c.fd, d, v.domains);
        return copyCmd(c, d, { fixed: false }).dstIova;
      });
      assert.equal(res.final.dstIova, want);
    });

    if (pinning) {
      test('IOAS_COPY of two source areas from an IOAS with no domain into one with domains pins, and fails cleanly at every fault site', () => {
        const f = sweepFixture(0);
        // A second source area right after the first, from other pages: the copy takes two slices.
        ok(map(f, f.buf + 8n * PAGE, 2n * PAGE, 0x12000n));
        const dst = ioasAlloc(f.p, f.fd);
        f.allDoms.push(...addDomains(f.p, f.fd, dst, v.domains));
        const copy4 = (): SysResult =>
          call(f.p, f.fd, IOMMU_IOAS_COPY, iommu_ioas_copy, { flags: RW | IOMMU_IOAS_MAP_FIXED_IOVA, dst_ioas_id: dst, src_ioas_id: f.ioas, length: 4n * PAGE, dst_iova: 0x400000n, src_iova: 0x10000n }).r;
        const res = sweep(f.p, () => state(f), copy4, [ENOMEM, ENOENT, EFAULT]);
        assertSwept(res, ['ENOENT', 'ENOMEM', 'EFAULT']);
        // Both slices were pinned; a fault while pinning the second one must have unpinned the first.
        assert.ok([...res.failing.values()].filter((e) => e === 'EFAULT').length >= 2);
        assert.equal(pinsOf(f), 4);
        assert.equal([...ioasObj(f.p, f.fd, dst).iopt.areas].length, 2);
      });
    }

    test('IOAS_UNMAP fails cleanly at every fault site', () => {
      const f = sweepFixture(v.domains);
      ok(map(f, f.buf + 4n * PAGE, 4n * PAGE, 0x200000n));
      const res = sweep(f.p, () => state(f), () => unmap(f, 0x200000n, 4n * PAGE), [ENOENT, ENOMEM, EFAULT]);
      assertSwept(res, ['ENOENT']);
      assert.equal(res.final.length, 4n * PAGE);
      assert.equal(pinsOf(f), pinning ? 2 : 0);
    });

    for (const usercopy of [false, true]) {
      const uc = usercopy ? ' (usercopy faults too)' : '';
      const errnos = usercopy ? [ENOMEM, ENOENT, EFAULT] : [ENOMEM, ENOENT];

      test(`IOAS_ALLOW_IOVAS fails cleanly at every fault site and replaces the list atomically${uc}`, () => {
        const f = sweepFixture(v.domains);
        ok(allowIovas(f, rangesInUser(f.p, [[0x1000n, 0xfffffn]]), 1));
        const addr = rangesInUser(f.p, [
          [0x100000n, 0x1fffffn],
          [0x400000n, 0x4fffffn],
          [0x10000000n, 0x1fffffffn],
        ]);
        if (usercopy) f.m.inject.enabled.add('usercopy');
        const res = sweep(f.p, () => state(f), () => allowIovas(f, addr, 3), errnos);
        assertSwept(res, usercopy ? ['ENOENT', 'ENOMEM', 'EFAULT'] : ['ENOENT', 'ENOMEM']);
        // One failing N per allocated range: a fault after any of them must drop the partial list.
        assert.ok([...res.failing.values()].filter((e) => e === 'ENOMEM').length >= 3);
        assert.deepEqual(
          [...ioasObj(f.p, f.fd, f.ioas).iopt.allowed].map((a) => [a.start, a.last]),
          [
            [0x100000n, 0x1fffffn],
            [0x400000n, 0x4fffffn],
            [0x10000000n, 0x1fffffffn],
          ],
        );
      });

      test(`IOAS_ALLOC fails cleanly at every fault site and then takes the lowest free ID${uc}`, () => {
        const f = sweepFixture(v.domains);
        // Free an ID below the next never-used one, so "lowest free" is what is checked.
        const spare = ioasAlloc(f.p, f.fd);
        ioasAlloc(f.p, f.fd);
        ok(call(f.p, f.fd, IOMMU_DESTROY, iommu_destroy, { id: spare }).r);
        if (usercopy) f.m.inject.enabled.add('usercopy');
        let id = 0;
        const res = sweep(
          f.p,
          () => state(f),
          () => {
            const { r, out } = call(f.p, f.fd, IOMMU_IOAS_ALLOC, iommu_ioas_alloc, {});
            id = out.out_ioas_id;
            return r;
          },
          errnos,
        );
        assertSwept(res, usercopy ? ['ENOMEM', 'EFAULT'] : ['ENOMEM']);
        assert.equal(id, spare, 'no failed allocation kept an ID');
      });

      test(`close of an iommufd holding an IOAS with mappings cannot fail and releases everything${uc}`, () => {
        // iommufd_fops_release has no failure path in 6.12 (the unmap side falls back to on-stack
        // batches when an allocation fails), so no N can make the close fail: the sweep checks
        // that close succeeds at every N and always returns the machine to its empty state.
        let visited = 0;
        for (let n = 1; ; n++) {
          assert.ok(n < 1000, 'close kept consuming the fail-nth counter');
          const f = sweepFixture(v.domains);
          ok(map(f, f.buf + 4n * PAGE, 4n * PAGE, null));
          const ioas2 = ioasAlloc(f.p, f.fd);
          f.allDoms.push(...addDomains(f.p, f.fd, ioas2, v.domains));
          ok(copyCmd(f, ioas2, { fixed: true }));
          if (usercopy) f.m.inject.enabled.add('usercopy');
          f.p.setFailNth(n);
          ok(f.p.close(f.fd));
          const left = f.p.failNth;
          f.p.setFailNth(0);
          visited++;
          assert.equal(f.m.iommufd.contexts.size, 0, 'the context is gone');
          assert.equal(pinsOf(f), 0, 'nothing stays pinned');
          for (const u of f.m.users()) assert.equal(u.lockedVm, 0);
          assert.equal(f.p.mm.pinnedVm, 0);
          assert.equal(f.p.mm.lockedVm, 0);
          for (const d of f.allDoms) assert.equal(d.pt.size, 0, 'every domain was emptied');
          if (left !== 0) break;
        }
        assert.ok(visited >= 1);
      });
    }
  });
}

describe('a failed copy-back after the work is done leaves the work done, as in the kernel', () => {
  // ioas.c: iommufd_ioas_map/copy/unmap call iommufd_ucmd_respond only after iopt_map_user_pages /
  // iopt_map_pages / iopt_unmap_iova succeeded, and do not undo them when the copy to user fails:
  // userspace gets EFAULT while the mapping exists (or the range is gone). These tests pin that
  // down by failing exactly the last usercopy of each call.

  /** How many `usercopy` evaluations one run of `run` makes (only that site enabled). */
  function usercopySites(m: Machine, run: () => SysResult, undo: () => void): number {
    const e0 = m.inject.evaluations;
    ok(run());
    const n = m.inject.evaluations - e0;
    undo();
    return n;
  }

  function usercopyOnly(domains: number): SweepFixture {
    const f = sweepFixture(domains);
    f.m.inject.enabled.clear();
    f.m.inject.enabled.add('usercopy');
    return f;
  }

  for (const v of DOMAIN_VARIANTS) {
    test(`IOAS_MAP: EFAULT, the IOVA not reported, and the mapping (and its pins) in place (${v.name})`, () => {
      const f = usercopyOnly(v.domains);
      const sites = usercopySites(f.m, () => map(f, f.buf + 4n * PAGE, 4n * PAGE, null), () => {
        ok(unmap(f, 0n, (1n << 64n) - 1n));
        ok(map(f, f.buf, 2n * PAGE, 0x10000n));
      });
      f.p.setFailNth(sites);
      const r = map(f, f.buf + 4n * PAGE, 4n * PAGE, null);
      assert.equal(f.p.failNth, 0, 'the last usercopy site fired');
      assert.equal(r.errno, EFAULT);
      assert.match(r.reason ?? '', /writing back iommu_ioas_map/);
      assert.equal(r.iova, 0n, 'the chosen IOVA never reached userspace');
      const areas = [...ioasObj(f.p, f.fd, f.ioas).iopt.areas];
      assert.equal(areas.length, 2, 'the mapping was made and kept');
      const made = areas.find((a) => a.start !== 0x10000n)!;
      assert.equal(made.length, 4n * PAGE);
      for (const d of f.doms) assert.equal(d.pt.size, 6);
      assert.equal(pinsOf(f), v.domains ? 6 : 0);
      // Userspace can find it again (e.g. by IOVA_RANGES walking) and unmap it.
      assert.equal(ok(unmap(f, made.start, made.length)), 0);
    });

    test(`IOAS_MAP at a fixed IOVA: EFAULT, and a retry of the same call is EEXIST (${v.name})`, () => {
      const f = usercopyOnly(v.domains);
      const sites = usercopySites(f.m, () => map(f, f.buf + 4n * PAGE, 4n * PAGE, 0x200000n), () => ok(unmap(f, 0x200000n, 4n * PAGE)));
      f.p.setFailNth(sites);
      assert.equal(map(f, f.buf + 4n * PAGE, 4n * PAGE, 0x200000n).errno, EFAULT);
      f.p.setFailNth(0);
      assert.equal(map(f, f.buf + 4n * PAGE, 4n * PAGE, 0x200000n).errno, Errno.EEXIST);
    });

    test(`IOAS_COPY: EFAULT with the destination mapping in place (${v.name})`, () => {
      const f = usercopyOnly(v.domains);
      const dst = ioasAlloc(f.p, f.fd);
      addDomains(f.p, f.fd, dst, v.domains);
      const sites = usercopySites(f.m, () => copyCmd(f, dst, { fixed: true }), () => ok(unmap({ ...f, ioas: dst }, 0x400000n, 2n * PAGE)));
      f.p.setFailNth(sites);
      const r = copyCmd(f, dst, { fixed: true });
      assert.equal(r.errno, EFAULT);
      assert.ok(ioasObj(f.p, f.fd, dst).iopt.areas.iterFirst(0x400000n, 0x400000n), 'the copy was made and kept');
    });

    test(`IOAS_UNMAP: EFAULT with the range already unmapped (${v.name})`, () => {
      const f = usercopyOnly(v.domains);
      const sites = usercopySites(f.m, () => unmap(f, 0x10000n, 2n * PAGE), () => ok(map(f, f.buf, 2n * PAGE, 0x10000n)));
      f.p.setFailNth(sites);
      const r = unmap(f, 0x10000n, 2n * PAGE);
      assert.equal(r.errno, EFAULT);
      assert.ok(ioasObj(f.p, f.fd, f.ioas).iopt.areas.isEmpty(), 'the unmap happened');
      assert.equal(pinsOf(f), 0);
      f.p.setFailNth(0);
      assert.equal(unmap(f, 0x10000n, 2n * PAGE).errno, ENOENT);
    });
  }
});

describe('an IO page table that fails to map', () => {
  // iommu_map can fail (a page-table level cannot be allocated). Every such failure, in any of the
  // domains and for any of the slices, must unwind: earlier domains emptied, pins dropped, charge
  // refunded, no area left.
  for (const domains of [1, 2, 3]) {
    test(`IOAS_MAP and IOAS_COPY unwind a failing domain map at every position (${domains} domain${domains > 1 ? 's' : ''})`, () => {
      const fault = new MapFault();
      const f = sweepFixture(0);
      ok(map(f, f.buf + 8n * PAGE, 2n * PAGE, 0x12000n));
      f.doms.push(...addDomains(f.p, f.fd, f.ioas, domains, fault));
      f.allDoms.push(...f.doms);
      const dst = ioasAlloc(f.p, f.fd);
      f.allDoms.push(...addDomains(f.p, f.fd, dst, domains, fault));
      const calls: [string, () => SysResult][] = [
        ['IOAS_MAP', () => map(f, f.buf + 4n * PAGE, 4n * PAGE, null)],
        ['IOAS_COPY', () => call(f.p, f.fd, IOMMU_IOAS_COPY, iommu_ioas_copy, { flags: RW, dst_ioas_id: dst, src_ioas_id: f.ioas, length: 4n * PAGE, src_iova: 0x10000n }).r],
      ];
      for (const [name, run] of calls) {
        const before = state(f);
        let failures = 0;
        for (let n = 1; ; n++) {
          assert.ok(n < 100);
          fault.n = n;
          const r = run();
          const fired = fault.n === 0;
          fault.n = 0;
          if (!fired) {
            ok(r);
            break;
          }
          assert.equal(r.errno, ENOMEM, `${name} n=${n}: ${r.reason}`);
          assert.equal(state(f), before, `${name}: a map failure at domain call ${n} left state behind`);
          failures++;
        }
        // One map call per domain per slice: MAP has one slice, COPY two.
        assert.equal(failures, domains * (name === 'IOAS_MAP' ? 1 : 2), name);
      }
    });

    test(`addDomain unwinds a failing map at every existing area (${domains - 1} domain${domains === 2 ? '' : 's'} already attached)`, () => {
      const f = sweepFixture(domains - 1);
      ok(map(f, f.buf + 8n * PAGE, 2n * PAGE, 0x40000n));
      ok(map(f, f.buf + 12n * PAGE, PAGE, 0x80000n));
      const iopt = ioasObj(f.p, f.fd, f.ioas).iopt;
      const before = state(f);
      const fault = new MapFault();
      for (let n = 1; ; n++) {
        assert.ok(n < 100);
        fault.n = n;
        const d = new RecordingDomain(fault);
        let err: unknown = null;
        try {
          iopt.addDomain(f.p, d);
        } catch (e) {
          err = e;
        }
        const fired = fault.n === 0;
        fault.n = 0;
        if (!fired) {
          assert.equal(err, null);
          assert.equal(d.pt.size, 5);
          break;
        }
        assert.ok(err instanceof KernelError && err.errno === ENOMEM);
        assert.equal(d.pt.size, 0, `n=${n}: the failed domain was emptied`);
        assert.equal(iopt.domains.length, domains - 1);
        assert.equal(state(f), before, `n=${n}: addDomain left state behind`);
      }
      assert.equal(pinsOf(f), 5);
    });
  }
});

describe('fail-nth sweep of open', () => {
  test('open of /dev/iommu fails cleanly: no context and no fd are left behind', () => {
    const f = sweepFixture(0);
    const fds = f.p.openFds();
    const res = sweep(f.p, () => `${state(f)}|${f.m.iommufd.contexts.size}|${f.p.openFds().join(',')}`, () => f.p.open('/dev/iommu'), [ENOMEM]);
    assertSwept(res, ['ENOMEM']);
    assert.equal(res.final.ret, Math.max(...fds) + 1);
    assert.equal(f.m.iommufd.contexts.size, 2);
  });
});

describe('fail-nth sweeps over in-kernel users (IOMMU_TEST_CMD access objects, fault queues)', () => {
  const testCmd = (f: SweepFixture, op: number, id: number, u: Uint8Array) => call(f.p, f.fd, IOMMU_TEST_CMD, iommu_test_cmd, { op, id, u });
  /** snapshot plus the fd table: a failed call must not leave an fd behind either. */
  const stateWithFds = (f: SweepFixture) => () => `${state(f)}|${f.p.openFds().join(',')}`;

  for (const { name, domains } of DOMAIN_VARIANTS) {
    test(`CREATE_ACCESS, ${name}: every failing N leaves no object and no fd`, () => {
      const f = sweepFixture(domains);
      const res = sweep(
        f.p,
        stateWithFds(f),
        () => testCmd(f, IOMMU_TEST_OP_CREATE_ACCESS, f.ioas, test_create_access.encode({ flags: MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES })).r,
        [ENOMEM, ENOENT],
      );
      assertSwept(res, ['ENOMEM', 'ENOENT']);
    });

    test(`ACCESS_PAGES, ${name}: every failing N leaves pins and accounting as they were`, () => {
      const f = sweepFixture(domains);
      const created = testCmd(f, IOMMU_TEST_OP_CREATE_ACCESS, f.ioas, test_create_access.encode({ flags: MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES }));
      ok(created.r);
      const afd = test_create_access.decode(created.out.u).out_access_fd;
      const pin = () => testCmd(f, IOMMU_TEST_OP_ACCESS_PAGES, afd, test_access_pages.encode({ iova: 0x10000n, length: 2n * PAGE, uptr: f.buf }));
      const res = sweep(f.p, stateWithFds(f), () => pin().r, [ENOMEM, EFAULT]);
      // With a domain the pages are already pinned, so only the allocation sites remain.
      assertSwept(res, domains ? ['ENOMEM'] : ['ENOMEM', 'EFAULT']);
      // The pin that finally went through is real: releasing it restores the start.
      const id = test_access_pages.decode(pin().out.u).out_access_pages_id;
      ok(testCmd(f, IOMMU_TEST_OP_DESTROY_ACCESS_PAGES, afd, test_destroy_access_pages.encode({ access_pages_id: id })).r);
      ok(testCmd(f, IOMMU_TEST_OP_DESTROY_ACCESS_PAGES, afd, test_destroy_access_pages.encode({ access_pages_id: id - 1 })).r);
    });
  }

  test('ACCESS_RW on the slow path: failing N change nothing and say so', () => {
    const f = sweepFixture(0);
    const created = testCmd(f, IOMMU_TEST_OP_CREATE_ACCESS, f.ioas, test_create_access.encode({ flags: 0 }));
    ok(created.r);
    const afd = test_create_access.decode(created.out.u).out_access_fd;
    const res = sweep(
      f.p,
      stateWithFds(f),
      () => testCmd(f, IOMMU_TEST_OP_ACCESS_RW, afd, test_access_rw.encode({ iova: 0x10000n, length: 64n, uptr: f.buf + 0x8000n, flags: MOCK_ACCESS_RW_SLOW_PATH })).r,
      [Errno.EINVAL],
    );
    assertSwept(res, ['EINVAL']);
  });

  test('FAULT_QUEUE_ALLOC: every failing N leaves no object and no fd', () => {
    const f = sweepFixture(0);
    const res = sweep(f.p, stateWithFds(f), () => call(f.p, f.fd, IOMMU_FAULT_QUEUE_ALLOC, iommu_fault_alloc, {}).r, [ENOMEM]);
    assertSwept(res, ['ENOMEM']);
  });
});
