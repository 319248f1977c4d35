/**
 * IOAS objects and their ioctls (ioas.c, io_pagetable.c, pages.c, vfio_compat.c:iommufd_vfio_ioas,
 * main.c:iommufd_option), in the selftest's `no_domain` fixture variant: no HWPT is attached, so
 * the IOAS alignment starts at 1, nothing is pinned and the only reserved ranges are the ones a test
 * adds (IOMMU_TEST_OP_ADD_RESERVED, done here through the engine).
 *
 * Every refusal also checks that the machine is exactly as before the call — except a partial
 * unmap, where the kernel keeps the areas it already removed. Tests ported from
 * tools/testing/selftests/iommu/iommufd.c name their selftest case in parentheses.
 */

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CAP_SYS_RESOURCE,
  Errno,
  IOMMU_DESTROY,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_ALLOW_IOVAS,
  IOMMU_IOAS_COPY,
  IOMMU_IOAS_IOVA_RANGES,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_OPTION,
  IOMMU_OPTION_HUGE_PAGES,
  IOMMU_OPTION_OP_GET,
  IOMMU_OPTION_OP_SET,
  IOMMU_OPTION_RLIMIT_MODE,
  IOMMU_VFIO_IOAS,
  IOMMU_VFIO_IOAS_CLEAR,
  IOMMU_VFIO_IOAS_GET,
  IOMMU_VFIO_IOAS_SET,
  PROT_READ,
  type SysResult,
  iommu_destroy,
  iommu_ioas_alloc,
  iommu_ioas_allow_iovas,
  iommu_ioas_copy,
  iommu_ioas_iova_ranges,
  iommu_ioas_map,
  iommu_iova_range,
  iommu_option,
  iommu_vfio_ioas,
} from '../src/index.js';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE } from '../src/kernel/iommufd/io_pagetable.js';
import { PAGE, RW, call, fails, map, ok, rng, unmap } from './helpers.js';
import {
  BUFFER_SIZE,
  type IoasFixture,
  MOCK_APERTURE_START,
  MOCK_PAGE_SIZE,
  U64_MAX,
  addReserved,
  areasOf,
  ctxOf,
  fullSnapshot,
  hx,
  ioasObj,
  ioasSetup,
  protect,
  refuse,
} from './iommufd_helpers.js';

type F = IoasFixture;
const FIXED = IOMMU_IOAS_MAP_FIXED_IOVA;
const R = IOMMU_IOAS_MAP_READABLE;
const W = IOMMU_IOAS_MAP_WRITEABLE;

// ---------------------------------------------------------------------------------------------
// One helper pair per ioctl: the call (returning its result and write-back), and `ok`/`refuse`.

const on = (f: F, ioas: number): F => ({ ...f, ioas });

/** test_ioctl_ioas_map_fixed: asserts success. */
function mapFixed(f: F, va: bigint, length: bigint, iova: bigint, ioas = f.ioas): void {
  ok(map(on(f, ioas), va, length, iova));
}

/** test_ioctl_ioas_map: a kernel-chosen IOVA; asserts success and returns it. */
function mapAuto(f: F, va: bigint, length: bigint, ioas = f.ioas): bigint {
  const r = map(on(f, ioas), va, length, null);
  ok(r);
  return r.iova;
}

function mapRaw(f: F, v: Partial<ReturnType<typeof iommu_ioas_map.zero>>) {
  return call(f.p, f.fd, IOMMU_IOAS_MAP, iommu_ioas_map, { ioas_id: f.ioas, ...v });
}

function unmapRaw(f: F, iova: bigint, length: bigint, ioas = f.ioas): SysResult & { length: bigint } {
  return unmap(on(f, ioas), iova, length);
}

function copy(f: F, v: Partial<ReturnType<typeof iommu_ioas_copy.zero>>): { r: SysResult; dst_iova: bigint } {
  const { r, out } = call(f.p, f.fd, IOMMU_IOAS_COPY, iommu_ioas_copy, { dst_ioas_id: f.ioas, src_ioas_id: f.ioas, ...v });
  return { r, dst_iova: out.dst_iova };
}

function iovaRanges(f: F, v: Partial<ReturnType<typeof iommu_ioas_iova_ranges.zero>> = {}): { r: SysResult; num: number; align: bigint } {
  const { r, out } = call(f.p, f.fd, IOMMU_IOAS_IOVA_RANGES, iommu_ioas_iova_ranges, { ioas_id: f.ioas, allowed_iovas: f.arr, ...v });
  return { r, num: out.num_iovas, align: out.out_iova_alignment };
}

/** The first `n` iommu_iova_range entries of `f.arr`, as [start, last] pairs. */
function readRanges(f: F, n: number): [bigint, bigint][] {
  const bytes = f.p.peek(f.arr, n * iommu_iova_range.size);
  return Array.from({ length: n }, (_, i) => {
    const v = iommu_iova_range.decode(bytes.subarray(i * iommu_iova_range.size, (i + 1) * iommu_iova_range.size));
    return [v.start, v.last];
  });
}

function clearArr(f: F): void {
  f.p.poke(f.arr, new Uint8Array(Number(PAGE)));
}

/** IOMMU_IOAS_ALLOW_IOVAS with `ranges` written to f.arr. */
function allow(f: F, ranges: readonly (readonly [bigint, bigint])[], v: Partial<ReturnType<typeof iommu_ioas_allow_iovas.zero>> = {}): SysResult {
  ranges.forEach(([start, last], i) => f.p.poke(f.arr + BigInt(i * iommu_iova_range.size), iommu_iova_range.encode({ start, last })));
  return call(f.p, f.fd, IOMMU_IOAS_ALLOW_IOVAS, iommu_ioas_allow_iovas, { ioas_id: f.ioas, num_iovas: ranges.length, allowed_iovas: f.arr, ...v }).r;
}

function option(f: F, v: Partial<ReturnType<typeof iommu_option.zero>>, fd = f.fd): { r: SysResult; val64: bigint; bytes: Uint8Array } {
  const { r, out, bytes } = call(f.p, fd, IOMMU_OPTION, iommu_option, v);
  return { r, val64: out.val64, bytes };
}

function hugePages(f: F, op: number, val64 = 0n, ioas = f.ioas): { r: SysResult; val64: bigint } {
  return option(f, { option_id: IOMMU_OPTION_HUGE_PAGES, op, object_id: ioas, val64 });
}

function vfioIoas(f: F, op: number, ioas_id = 0, extra: Partial<ReturnType<typeof iommu_vfio_ioas.zero>> = {}): { r: SysResult; ioas_id: number } {
  const { r, out } = call(f.p, f.fd, IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op, ioas_id, ...extra });
  return { r, ioas_id: out.ioas_id };
}

function alloc(f: F, fd = f.fd): number {
  const { r, out } = call(f.p, fd, IOMMU_IOAS_ALLOC, iommu_ioas_alloc, {});
  ok(r);
  return out.out_ioas_id;
}

function destroy(f: F, id: number): SysResult {
  return call(f.p, f.fd, IOMMU_DESTROY, iommu_destroy, { id }).r;
}

const prots = (f: F, id = f.ioas): number[] => [...ioasObj(f, id).iopt.areas].map((a) => a.iommuProt);

/** Nothing pinned, nothing charged, anywhere on the machine. */
function nothingPinned(f: F): void {
  assert.ok([...f.m.phys.frames()].every((fr) => fr.pins === 0), 'a frame is still pinned');
  assert.ok([...f.m.users()].every((u) => u.lockedVm === 0), 'locked_vm still charged');
}

// ---------------------------------------------------------------------------------------------

describe('IOMMU_IOAS_ALLOC', () => {
  test('creates an empty IOAS: no areas, reserved or allowed ranges, IOVA alignment 1', () => {
    const f = ioasSetup();
    const id = alloc(f);
    const io = ioasObj(f, id).iopt;
    assert.equal(io.areas.isEmpty() && io.reserved.isEmpty() && io.allowed.isEmpty(), true);
    assert.equal(io.iovaAlignment, 1n);
    assert.equal(io.disableLargePages, false);
  });

  test('any flag bit is EOPNOTSUPP', () => {
    const f = ioasSetup();
    for (const flags of [1, 2, 0x80000000]) {
      refuse(f.m, Errno.EOPNOTSUPP, () => call(f.p, f.fd, IOMMU_IOAS_ALLOC, iommu_ioas_alloc, { flags }).r);
    }
  });

  test('out_ioas_id on input is ignored', () => {
    const f = ioasSetup();
    const { r, out } = call(f.p, f.fd, IOMMU_IOAS_ALLOC, iommu_ioas_alloc, { out_ioas_id: 77 });
    ok(r);
    assert.equal(out.out_ioas_id, 2);
  });
});

describe('IOMMU_IOAS_MAP', () => {
  describe('fixed IOVA', () => {
    test('places one area at the IOVA with READ|WRITE|CACHE and writes the IOVA back unchanged', () => {
      const f = ioasSetup();
      const r = map(f, f.buffer, 2n * PAGE, 0x100000n);
      ok(r);
      assert.equal(r.iova, 0x100000n);
      assert.deepEqual(areasOf(f, f.ioas), ['0x100000-0x101fff']);
      assert.deepEqual(prots(f), [IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE]);
    });

    test('READABLE-only and WRITEABLE-only maps are accepted with the matching protection', () => {
      const f = ioasSetup();
      ok(map(f, f.buffer, PAGE, 0x1000n, R));
      ok(map(f, f.buffer, PAGE, 0x2000n, W));
      assert.deepEqual(prots(f), [IOMMU_READ | IOMMU_CACHE, IOMMU_WRITE | IOMMU_CACHE]);
    });

    test('IOVA 0 may be mapped explicitly (ioas_area_destroy uses base_iova 0)', () => {
      const f = ioasSetup();
      mapFixed(f, f.buffer, PAGE, 0n);
      assert.deepEqual(areasOf(f, f.ioas), ['0x0-0xfff']);
    });

    test('an area may end at the last IOVA, 2^64 - 1', () => {
      const f = ioasSetup();
      mapFixed(f, f.buffer, PAGE, U64_MAX - PAGE + 1n);
      assert.deepEqual(areasOf(f, f.ioas), ['0xfffffffffffff000-0xffffffffffffffff']);
      const u = unmapRaw(f, U64_MAX - PAGE + 1n, PAGE);
      ok(u);
      assert.equal(u.length, PAGE);
    });

    test('with IOVA alignment 1, byte-granular IOVAs, lengths and user offsets are fine', () => {
      const f = ioasSetup();
      mapFixed(f, f.buffer + 0x123n, 0x10n, 0x5123n);
      mapFixed(f, f.buffer + 0x7n, 0x3n, 0x9n);
      assert.deepEqual(areasOf(f, f.ioas), ['0x9-0xb', '0x5123-0x5132']);
    });

    test('without a domain nothing is pinned, so even unmapped user memory maps', () => {
      const f = ioasSetup();
      const frames = [...f.m.phys.frames()].length;
      mapFixed(f, 1n << 31n, 16n * PAGE, 0x100000n);
      assert.equal([...f.m.phys.frames()].length, frames);
      nothingPinned(f);
    });

    test('WRITEABLE maps of read-only memory succeed without a domain: nothing is pinned yet', () => {
      const f = ioasSetup();
      const ro = f.p.mmapOrThrow(PAGE, PROT_READ);
      mapFixed(f, ro, PAGE, 0x1000n);
      assert.deepEqual(prots(f), [IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE]);
      nothingPinned(f);
    });

    test('fixed maps ignore the allowed ranges', () => {
      const f = ioasSetup();
      ok(allow(f, [[0x100000n, 0x1fffffn]]));
      mapFixed(f, f.buffer, PAGE, 0x5000n);
    });

    test('overlapping an area in any way is EEXIST (area)', () => {
      const f = ioasSetup();
      const base = 0n;
      mapFixed(f, f.buffer, 2n * PAGE, base + 16n * PAGE);
      for (const [len, at] of [
        [2n, 16n],
        [1n, 16n],
        [1n, 17n],
        [2n, 15n],
        [3n, 15n],
      ] as const) {
        refuse(f.m, Errno.EEXIST, () => map(f, f.buffer, len * PAGE, base + at * PAGE));
      }
      refuse(f.m, Errno.EEXIST, () => map(f, f.buffer, 1n, base + 18n * PAGE - 1n));
    });

    test('intersecting a reserved range is EINVAL', () => {
      const f = ioasSetup();
      ok(addReserved(f, f.ioas, 0x10000n, 0x10000n));
      refuse(f.m, Errno.EINVAL, () => map(f, f.buffer, PAGE, 0x10000n));
      refuse(f.m, Errno.EINVAL, () => map(f, f.buffer, 2n * PAGE, 0xf000n));
      refuse(f.m, Errno.EINVAL, () => map(f, f.buffer, 1n, 0x1ffffn));
      mapFixed(f, f.buffer, PAGE, 0xf000n);
      mapFixed(f, f.buffer, PAGE, 0x20000n);
    });

    test('a range hitting both a reserved range and an area is EINVAL: reserved ranges are checked first', () => {
      const f = ioasSetup();
      mapFixed(f, f.buffer, PAGE, 0x1000n);
      ok(addReserved(f, f.ioas, 0x2000n, PAGE));
      refuse(f.m, Errno.EINVAL, () => map(f, f.buffer, 2n * PAGE, 0x1000n));
    });

    test('iova + length - 1 past 2^64 - 1 is EOVERFLOW', () => {
      const f = ioasSetup();
      refuse(f.m, Errno.EOVERFLOW, () => map(f, f.buffer, 2n * PAGE, U64_MAX - PAGE + 1n));
    });
  });

  describe('argument checks, in ioas.c order', () => {
    test('unknown flag bits are EOPNOTSUPP', () => {
      const f = ioasSetup();
      for (const flags of [1 << 3, 1 << 31, RW | (1 << 4)]) {
        refuse(f.m, Errno.EOPNOTSUPP, () => mapRaw(f, { flags, user_va: f.buffer, length: PAGE }).r);
      }
    });

    test('a non-zero __reserved is EOPNOTSUPP', () => {
      const f = ioasSetup();
      refuse(f.m, Errno.EOPNOTSUPP, () => mapRaw(f, { flags: RW, __reserved: 1, user_va: f.buffer, length: PAGE }).r);
    });

    test('EOPNOTSUPP comes before EOVERFLOW, EOVERFLOW before EINVAL, EINVAL before ENOENT', () => {
      const f = ioasSetup();
      refuse(f.m, Errno.EOPNOTSUPP, () => mapRaw(f, { flags: 1 << 3, iova: U64_MAX, length: 0n }).r);
      refuse(f.m, Errno.EOVERFLOW, () => mapRaw(f, { flags: 0, iova: U64_MAX, ioas_id: 99 }).r);
      refuse(f.m, Errno.EINVAL, () => mapRaw(f, { flags: FIXED, ioas_id: 99, user_va: f.buffer, length: PAGE }).r);
    });

    test('iova == 2^64 - 1 is EOVERFLOW, with or without FIXED_IOVA', () => {
      const f = ioasSetup();
      refuse(f.m, Errno.EOVERFLOW, () => mapRaw(f, { flags: RW | FIXED, iova: U64_MAX, user_va: f.buffer, length: PAGE }).r);
      refuse(f.m, Errno.EOVERFLOW, () => mapRaw(f, { flags: RW, iova: U64_MAX, user_va: f.buffer, length: PAGE }).r);
    });

    test('length == 2^64 - 1 is EOVERFLOW', () => {
      const f = ioasSetup();
      refuse(f.m, Errno.EOVERFLOW, () => mapRaw(f, { flags: RW, user_va: 0n, length: U64_MAX }).r);
    });

    test('neither READABLE nor WRITEABLE is EINVAL', () => {
      const f = ioasSetup();
      refuse(f.m, Errno.EINVAL, () => mapRaw(f, { flags: FIXED, user_va: f.buffer, length: PAGE, iova: 0x1000n }).r);
      refuse(f.m, Errno.EINVAL, () => mapRaw(f, { flags: 0, user_va: f.buffer, length: PAGE }).r);
    });

    test('an unknown or destroyed IOAS ID is ENOENT', () => {
      const f = ioasSetup();
      refuse(f.m, Errno.ENOENT, () => mapRaw(f, { ioas_id: 99, flags: RW, user_va: f.buffer, length: PAGE }).r);
      refuse(f.m, Errno.ENOENT, () => mapRaw(f, { ioas_id: 0, flags: RW, user_va: f.buffer, length: PAGE }).r);
      const id = alloc(f);
      ok(destroy(f, id));
      refuse(f.m, Errno.ENOENT, () => mapRaw(f, { ioas_id: id, flags: RW, user_va: f.buffer, length: PAGE }).r);
    });

    test('length 0 is EINVAL, fixed or kernel-chosen', () => {
      const f = ioasSetup();
      refuse(f.m, Errno.EINVAL, () => map(f, f.buffer, 0n, 0x1000n));
      refuse(f.m, Errno.EINVAL, () => map(f, f.buffer, 0n, null));
    });

    test('user_va + length past 2^64 - 1 is EOVERFLOW', () => {
      const f = ioasSetup();
      refuse(f.m, Errno.EOVERFLOW, () => map(f, U64_MAX - PAGE + 1n, 2n * PAGE, 0x1000n));
      refuse(f.m, Errno.EOVERFLOW, () => map(f, U64_MAX - PAGE + 1n, 2n * PAGE, null));
    });

    test('a length above SIZE_MAX - PAGE_SIZE is EINVAL (iopt_alloc_pages)', () => {
      const f = ioasSetup();
      refuse(f.m, Errno.EINVAL, () => map(f, 0n, U64_MAX - 1n, null));
      refuse(f.m, Errno.EINVAL, () => map(f, 0n, U64_MAX - PAGE + 1n, 0n));
    });

    test('a refused map writes nothing back', () => {
      const f = ioasSetup();
      let iova = 0n;
      refuse(f.m, Errno.EINVAL, () => {
        const { r, out } = mapRaw(f, { flags: RW, user_va: f.buffer, length: 0n, iova: 0x4242n });
        iova = out.iova;
        return r;
      });
      assert.equal(iova, 0x4242n);
    });

    test('a map whose write-back faults is EFAULT, and the mapping stays', () => {
      const f = ioasSetup();
      const page = f.p.mmapOrThrow(PAGE);
      f.p.poke(page, iommu_ioas_map.encode({ size: iommu_ioas_map.size, flags: RW, ioas_id: f.ioas, user_va: f.buffer, length: PAGE }));
      protect(f, page, PROT_READ);
      fails(f.p.ioctl(f.fd, IOMMU_IOAS_MAP, page), Errno.EFAULT);
      assert.deepEqual(areasOf(f, f.ioas), ['0x1000-0x1fff']);
      const u = unmapRaw(f, 0n, U64_MAX);
      ok(u);
      assert.equal(u.length, PAGE);
    });
  });

  describe('alignment once huge pages are off (iova_alignment = PAGE_SIZE)', () => {
    const aligned = (): F => {
      const f = ioasSetup();
      ok(hugePages(f, IOMMU_OPTION_OP_SET, 0n).r);
      assert.equal(ioasObj(f, f.ioas).iopt.iovaAlignment, PAGE);
      return f;
    };

    test('a fixed IOVA that is not page aligned is EINVAL', () => {
      const f = aligned();
      refuse(f.m, Errno.EINVAL, () => map(f, f.buffer, PAGE, 0x1800n));
    });

    test('a length that is not a page multiple is EINVAL, fixed or kernel-chosen', () => {
      const f = aligned();
      refuse(f.m, Errno.EINVAL, () => map(f, f.buffer, PAGE + 1n, 0x1000n));
      refuse(f.m, Errno.EINVAL, () => map(f, f.buffer, 0x800n, null));
    });

    test('a user_va not page aligned is EINVAL, fixed or kernel-chosen', () => {
      const f = aligned();
      refuse(f.m, Errno.EINVAL, () => map(f, f.buffer + MOCK_PAGE_SIZE, PAGE, 0x1000n));
      refuse(f.m, Errno.EINVAL, () => map(f, f.buffer + MOCK_PAGE_SIZE, PAGE, null));
    });
  });

  describe('kernel-chosen IOVA (io_pagetable.c iopt_alloc_iova)', () => {
    test('on an empty IOAS it is PAGE_SIZE, never 0', () => {
      const f = ioasSetup();
      assert.equal(mapAuto(f, f.buffer, PAGE), PAGE);
      assert.equal(mapAuto(f, f.buffer, 0x10n, alloc(f)), PAGE);
    });

    test('IOVA 0 is skipped even when the allowed range starts there', () => {
      const f = ioasSetup();
      ok(allow(f, [[0n, 0xfffffn]]));
      assert.equal(mapAuto(f, f.buffer, PAGE), PAGE);
    });

    test('it is the lowest hole that fits, above PAGE_SIZE', () => {
      const f = ioasSetup();
      mapFixed(f, f.buffer, 2n * PAGE, 0x1000n);
      mapFixed(f, f.buffer, PAGE, 0x4000n);
      assert.equal(mapAuto(f, f.buffer, PAGE), 0x3000n);
      assert.equal(mapAuto(f, f.buffer, 2n * PAGE), 0x5000n);
      assert.equal(mapAuto(f, f.buffer, PAGE), 0x7000n);
    });

    test('it answers as the 6.12 kernel did for the oracle sequence', () => {
      const f = ioasSetup();
      assert.equal(mapAuto(f, 0x12345000n, 0x2000n), 0x1000n);
      assert.equal(mapAuto(f, f.buffer + 0x800n, 0x1000n), 0x3800n);
      assert.equal(mapAuto(f, f.buffer, 0x10000n), 0x5000n);
      assert.equal(mapAuto(f, f.buffer + 0x3000n, 0x3000n), 0x15000n);
    });

    test('it keeps user_va\'s offset in its page', () => {
      const f = ioasSetup();
      const iova = mapAuto(f, f.buffer + 0x800n, PAGE);
      assert.equal(iova, 0x1800n);
      assert.equal(iova % PAGE, 0x800n);
    });

    test('sub-page lengths align to roundup_pow_of_two(length) and OR in the page offset', () => {
      const f = ioasSetup();
      assert.equal(mapAuto(f, f.buffer, 0x10n), 0x1000n);
      // hole at 0x1010, alignment min(16, 8) = 8: (0x1010 aligned to 8) | 0x8 = 0x1018 (oracle: 0x1018)
      assert.equal(mapAuto(f, f.buffer + 8n, 0x10n), 0x1018n);
      assert.equal(mapAuto(f, f.buffer + 0x800n, 0x1000n), 0x1800n);
    });

    test('6.12 aligns to user_va, capped at PAGE_SIZE, not to the length: 1..10 pages pack back to back (6.12 form of area_auto_iova)', () => {
      const f = ioasSetup();
      const iovas: bigint[] = [];
      for (let i = 0n; i < 10n; i++) iovas.push(mapAuto(f, 1n << 31n, PAGE * (i + 1n)));
      assert.deepEqual(iovas.map(hx), Array.from({ length: 10 }, (_, i) => hx(PAGE * BigInt(1 + (i * (i + 1)) / 2))));
      assert.notEqual(iovas[3]! % (4n * PAGE), 0n, 'a 4-page map is not 16 KiB aligned on 6.12');
      for (let i = 0n; i < 10n; i++) ok(unmapRaw(f, iovas[Number(i)]!, PAGE * (i + 1n)));
    });

    test('simple 4k maps get distinct IOVAs and unmap again (area_auto_iova, first part)', () => {
      const f = ioasSetup();
      const iovas = Array.from({ length: 10 }, () => mapAuto(f, f.buffer, PAGE));
      assert.equal(new Set(iovas).size, 10);
      for (const iova of iovas) ok(unmapRaw(f, iova, PAGE));
    });

    test('it avoids reserved ranges (area_auto_iova, reserved part)', () => {
      const f = ioasSetup();
      ok(addReserved(f, f.ioas, PAGE * 4n, PAGE * 100n));
      const iovas: bigint[] = [];
      for (let i = 0n; i < 10n; i++) iovas.push(mapAuto(f, f.buffer, PAGE * (i + 1n)));
      assert.deepEqual(iovas.map(hx), ['0x1000', '0x2000', '0x68000', '0x6b000', '0x6f000', '0x74000', '0x7a000', '0x81000', '0x89000', '0x92000']);
      for (const [i, iova] of iovas.entries()) {
        const last = iova + PAGE * BigInt(i + 1) - 1n;
        assert.ok(last < PAGE * 4n || iova >= PAGE * 104n, `${hx(iova)} intersects the reserved range`);
      }
    });

    test('it is confined to the allowed ranges (area_auto_iova, allowed part)', () => {
      const f = ioasSetup();
      ok(allow(f, [[PAGE * 200n, PAGE * 600n - 1n]]));
      for (let i = 0n; i < 10n; i++) {
        const len = PAGE * (i + 1n);
        const iova = mapAuto(f, f.buffer, len);
        assert.ok(iova >= PAGE * 200n && iova + len <= PAGE * 600n, `${hx(iova)} is outside the allowed range`);
      }
    });

    test('a too-small first allowed range is skipped for the next', () => {
      const f = ioasSetup();
      ok(allow(f, [[0x10000n, 0x10fffn], [0x200000n, 0x2fffffn]]));
      assert.equal(mapAuto(f, f.buffer, 2n * PAGE), 0x200000n);
      assert.equal(mapAuto(f, f.buffer, PAGE), 0x10000n);
      assert.equal(mapAuto(f, f.buffer, PAGE), 0x202000n);
    });

    test('ENOSPC once the allowed ranges are full', () => {
      const f = ioasSetup();
      ok(allow(f, [[0x200000n, 0x2fffffn]]));
      for (let i = 0n; i < 16n; i++) assert.equal(mapAuto(f, f.buffer, BUFFER_SIZE), 0x200000n + i * BUFFER_SIZE);
      refuse(f.m, Errno.ENOSPC, () => map(f, f.buffer, PAGE, null));
    });

    test('ENOSPC when no allowed range is large enough', () => {
      const f = ioasSetup();
      ok(allow(f, [[0x10000n, 0x17fffn], [0x30000n, 0x37fffn]]));
      refuse(f.m, Errno.ENOSPC, () => map(f, f.buffer, 0x10000n, null));
    });

    test('ENOSPC when everything above PAGE_SIZE is reserved, though IOVA 0 is free', () => {
      const f = ioasSetup();
      ok(addReserved(f, f.ioas, PAGE, U64_MAX - PAGE + 1n));
      refuse(f.m, Errno.ENOSPC, () => map(f, f.buffer, PAGE, null));
      mapFixed(f, f.buffer, PAGE, 0n);
    });

    test('ENOSPC when the top page is the only free space: it is outside the search range', () => {
      const f = ioasSetup();
      ok(addReserved(f, f.ioas, 0n, U64_MAX - PAGE + 1n));
      refuse(f.m, Errno.ENOSPC, () => map(f, f.buffer, 1n, null));
      mapFixed(f, f.buffer, PAGE, U64_MAX - PAGE + 1n);
    });

    test('a length of 2^63 - 1 or more is EOVERFLOW', () => {
      const f = ioasSetup();
      refuse(f.m, Errno.EOVERFLOW, () => map(f, 0n, (1n << 63n) - 1n, null));
      refuse(f.m, Errno.EOVERFLOW, () => map(f, 0n, 1n << 63n, null));
    });

    test('a chosen alignment below the IOAS alignment is EINVAL', () => {
      const f = ioasSetup();
      ok(hugePages(f, IOMMU_OPTION_OP_SET, 0n).r);
      refuse(f.m, Errno.EINVAL, () => map(f, f.buffer + 0x800n, PAGE, null));
    });

    test('every length from 1 to 2 * PAGE_SIZE - 1 maps and unmaps (ioas_iova_alloc)', () => {
      const f = ioasSetup();
      for (let length = 1n; length !== PAGE * 2n; length++) {
        const iova = mapAuto(f, f.buffer, length);
        ok(unmapRaw(f, iova, length));
      }
      assert.deepEqual(areasOf(f, f.ioas), []);
    });
  });
});

describe('IOMMU_IOAS_UNMAP', () => {
  const threeAreas = (): F => {
    const f = ioasSetup();
    for (let i = 0n; i < 3n; i++) mapFixed(f, f.buffer, 2n * PAGE, 0x100000n + i * 0x4000n);
    return f;
  };

  test('unmapping exactly one area removes it and writes back its length', () => {
    const f = threeAreas();
    const u = unmapRaw(f, 0x104000n, 2n * PAGE);
    ok(u);
    assert.equal(u.length, 2n * PAGE);
    assert.deepEqual(areasOf(f, f.ioas), ['0x100000-0x101fff', '0x108000-0x109fff']);
  });

  test('a range over several whole areas and the holes between them removes them all', () => {
    const f = threeAreas();
    const u = unmapRaw(f, 0xff000n, 0x9000n);
    ok(u);
    assert.equal(u.length, 4n * PAGE);
    assert.deepEqual(areasOf(f, f.ioas), ['0x108000-0x109fff']);
  });

  test('iova 0 with length 2^64 - 1 unmaps everything and reports the bytes', () => {
    const f = threeAreas();
    mapFixed(f, f.buffer, PAGE, U64_MAX - PAGE + 1n);
    mapFixed(f, f.buffer, PAGE, 0n);
    const u = unmapRaw(f, 0n, U64_MAX);
    ok(u);
    assert.equal(u.length, 8n * PAGE);
    assert.deepEqual(areasOf(f, f.ioas), []);
  });

  test('unmap-all of an empty IOAS succeeds with length 0 (area)', () => {
    const f = ioasSetup();
    const u = unmapRaw(f, 0n, U64_MAX);
    ok(u);
    assert.equal(u.length, 0n);
  });

  test('nothing mapped in the range is ENOENT (area)', () => {
    const f = ioasSetup();
    for (let i = 0n; i < 10n; i++) refuse(f.m, Errno.ENOENT, () => unmapRaw(f, i * PAGE, PAGE));
    mapFixed(f, f.buffer, PAGE, 0x10000n);
    refuse(f.m, Errno.ENOENT, () => unmapRaw(f, 0x11000n, PAGE));
    refuse(f.m, Errno.ENOENT, () => unmapRaw(f, 0xf000n, PAGE));
  });

  test('a range covering only part of an area is ENOENT: areas cannot be split (area)', () => {
    const f = ioasSetup();
    const base = 0n;
    mapFixed(f, f.buffer, 2n * PAGE, base + 16n * PAGE);
    refuse(f.m, Errno.ENOENT, () => unmapRaw(f, base + 16n * PAGE, PAGE));
    refuse(f.m, Errno.ENOENT, () => unmapRaw(f, base + 17n * PAGE, PAGE));
    refuse(f.m, Errno.ENOENT, () => unmapRaw(f, base + 15n * PAGE, 2n * PAGE));
    refuse(f.m, Errno.ENOENT, () => unmapRaw(f, base + 16n * PAGE + 1n, 2n * PAGE));
  });

  test('a partial area after whole ones is ENOENT, but the whole ones before it are already gone', () => {
    const f = threeAreas();
    // [0x100000, 0x10afff] covers areas 1 and 2 and half of area 3.
    const u = unmapRaw(f, 0x100000n, 0x9000n);
    fails(u, Errno.ENOENT);
    assert.equal(u.length, 0x9000n, 'length is not written back on failure');
    assert.deepEqual(areasOf(f, f.ioas), ['0x108000-0x109fff']);
    refuse(f.m, Errno.ENOENT, () => unmapRaw(f, 0x100000n, 2n * PAGE));
  });

  test('a partial area at the start is ENOENT and removes nothing (unmap_fully_contained_areas)', () => {
    const f = ioasSetup();
    const base = PAGE * 4n;
    for (let i = 0n; i < 4n; i++) mapFixed(f, f.buffer, 8n * PAGE, base + i * 16n * PAGE);
    refuse(f.m, Errno.ENOENT, () => unmapRaw(f, base - 4n * PAGE, 8n * PAGE));
    refuse(f.m, Errno.ENOENT, () => unmapRaw(f, base + 3n * 16n * PAGE + 8n * PAGE - 4n * PAGE, 8n * PAGE));
    const u = unmapRaw(f, base - 4n * PAGE, 3n * 16n * PAGE + 8n * PAGE + 4n * PAGE);
    ok(u);
    assert.equal(u.length, 32n * PAGE);
    assert.deepEqual(areasOf(f, f.ioas), []);
  });

  test('length 0 is EINVAL', () => {
    const f = threeAreas();
    refuse(f.m, Errno.EINVAL, () => unmapRaw(f, 0x100000n, 0n));
  });

  test('iova or length of 2^64 - 1 (other than unmap-all) is EOVERFLOW', () => {
    const f = threeAreas();
    refuse(f.m, Errno.EOVERFLOW, () => unmapRaw(f, U64_MAX, 1n));
    refuse(f.m, Errno.EOVERFLOW, () => unmapRaw(f, 1n, U64_MAX));
  });

  test('iova + length - 1 past 2^64 - 1 is EOVERFLOW', () => {
    const f = threeAreas();
    refuse(f.m, Errno.EOVERFLOW, () => unmapRaw(f, 1n << 63n, (1n << 63n) + 1n));
  });

  test('an unknown IOAS is ENOENT, looked up before the range is checked', () => {
    const f = threeAreas();
    refuse(f.m, Errno.ENOENT, () => unmapRaw(f, 0x100000n, 0n, 99));
    refuse(f.m, Errno.ENOENT, () => unmapRaw(f, U64_MAX, 1n, 99));
  });

  test('ten one-page areas map and unmap one by one (area)', () => {
    const f = ioasSetup();
    for (let i = 0n; i < 10n; i++) mapFixed(f, f.buffer, PAGE, i * PAGE);
    for (let i = 0n; i < 10n; i++) {
      const u = unmapRaw(f, i * PAGE, PAGE);
      ok(u);
      assert.equal(u.length, PAGE);
    }
    mapFixed(f, f.buffer, 2n * PAGE, 16n * PAGE);
    ok(unmapRaw(f, 0n, U64_MAX));
    ok(unmapRaw(f, 0n, U64_MAX));
  });
});

describe('IOMMU_IOAS_COPY', () => {
  const withSrc = (): F & { dst: number } => {
    const f = ioasSetup();
    mapFixed(f, f.buffer, 4n * PAGE, 0x200000n);
    return { ...f, dst: alloc(f) };
  };

  test('copies inside one IOAS and into another (copy_area)', () => {
    const f = ioasSetup();
    const base = 0n;
    mapFixed(f, f.buffer, PAGE, base);
    ok(copy(f, { flags: FIXED | W, length: PAGE, src_iova: base, dst_iova: base + PAGE }).r);
    const dst = alloc(f);
    ok(copy(f, { flags: FIXED | W, length: PAGE, src_iova: base, dst_iova: 0n, dst_ioas_id: dst }).r);
    assert.deepEqual(areasOf(f, f.ioas), ['0x0-0xfff', '0x1000-0x1fff']);
    assert.deepEqual(areasOf(f, dst), ['0x0-0xfff']);
    assert.deepEqual(prots(f, dst), [IOMMU_WRITE | IOMMU_CACHE]);
    refuse(f.m, Errno.EEXIST, () => copy(f, { flags: FIXED | W, length: PAGE, src_iova: base, dst_iova: base }).r);
  });

  test('copies to a kernel-chosen IOVA and writes it back', () => {
    const f = withSrc();
    const c = copy(f, { flags: RW, length: 4n * PAGE, src_iova: 0x200000n, dst_ioas_id: f.dst });
    ok(c.r);
    assert.equal(c.dst_iova, PAGE);
    assert.deepEqual(areasOf(f, f.dst), ['0x1000-0x4fff']);
  });

  test('the copy shares the source pages: it outlives the source IOAS', () => {
    const f = withSrc();
    ok(copy(f, { flags: RW | FIXED, length: 4n * PAGE, src_iova: 0x200000n, dst_ioas_id: f.dst, dst_iova: 0x1000n }).r);
    const pages = [...ioasObj(f, f.dst).iopt.areas][0]!.pages;
    assert.equal(pages, [...ioasObj(f, f.ioas).iopt.areas][0]!.pages);
    ok(destroy(f, f.ioas));
    assert.deepEqual(areasOf(f, f.dst), ['0x1000-0x4fff']);
    ok(unmapRaw(f, 0x1000n, 4n * PAGE, f.dst));
  });

  test('a sub-range of an area is accepted, and a chosen IOVA keeps the byte offset (oracle: 0x1123)', () => {
    const f = withSrc();
    const c = copy(f, { flags: RW, length: 0x800n, src_iova: 0x200123n, dst_ioas_id: f.dst });
    ok(c.r);
    assert.equal(c.dst_iova, 0x1123n);
    assert.deepEqual(areasOf(f, f.dst), ['0x1123-0x1922']);
  });

  test('a range over two adjacent areas copies as two areas', () => {
    const f = withSrc();
    mapFixed(f, f.buffer, 2n * PAGE, 0x204000n);
    ok(copy(f, { flags: RW | FIXED, length: 4n * PAGE, src_iova: 0x202000n, dst_ioas_id: f.dst, dst_iova: 0x10000n }).r);
    assert.deepEqual(areasOf(f, f.dst), ['0x10000-0x11fff', '0x12000-0x13fff']);
  });

  test('a source not covered from its first byte, to its last, or across a gap is ENOENT', () => {
    const f = withSrc();
    mapFixed(f, f.buffer, PAGE, 0x205000n);
    refuse(f.m, Errno.ENOENT, () => copy(f, { flags: RW, length: 2n * PAGE, src_iova: 0x1ff000n, dst_ioas_id: f.dst }).r);
    refuse(f.m, Errno.ENOENT, () => copy(f, { flags: RW, length: 2n * PAGE, src_iova: 0x203000n, dst_ioas_id: f.dst }).r);
    refuse(f.m, Errno.ENOENT, () => copy(f, { flags: RW, length: 6n * PAGE, src_iova: 0x200000n, dst_ioas_id: f.dst }).r);
    refuse(f.m, Errno.ENOENT, () => copy(f, { flags: RW, length: PAGE, src_iova: 0x300000n, dst_ioas_id: f.dst }).r);
  });

  test('unknown flag bits are EOPNOTSUPP', () => {
    const f = withSrc();
    refuse(f.m, Errno.EOPNOTSUPP, () => copy(f, { flags: RW | (1 << 3), length: PAGE, src_iova: 0x200000n, dst_ioas_id: f.dst }).r);
  });

  test('length, src_iova or dst_iova of 2^64 - 1 is EOVERFLOW', () => {
    const f = withSrc();
    refuse(f.m, Errno.EOVERFLOW, () => copy(f, { flags: RW, length: U64_MAX, src_iova: 0x200000n, dst_ioas_id: f.dst }).r);
    refuse(f.m, Errno.EOVERFLOW, () => copy(f, { flags: RW, length: PAGE, src_iova: U64_MAX, dst_ioas_id: f.dst }).r);
    refuse(f.m, Errno.EOVERFLOW, () => copy(f, { flags: RW, length: PAGE, src_iova: 0x200000n, dst_iova: U64_MAX, dst_ioas_id: f.dst }).r);
  });

  test('flags without READABLE or WRITEABLE are EINVAL', () => {
    const f = withSrc();
    refuse(f.m, Errno.EINVAL, () => copy(f, { flags: 0, length: PAGE, src_iova: 0x200000n, dst_ioas_id: f.dst }).r);
    refuse(f.m, Errno.EINVAL, () => copy(f, { flags: FIXED, length: PAGE, src_iova: 0x200000n, dst_iova: 0x1000n, dst_ioas_id: f.dst }).r);
  });

  test('an unknown source IOAS is ENOENT', () => {
    const f = withSrc();
    refuse(f.m, Errno.ENOENT, () => copy(f, { flags: RW, length: PAGE, src_iova: 0x200000n, src_ioas_id: 99, dst_ioas_id: f.dst }).r);
  });

  test('an unknown destination IOAS is ENOENT', () => {
    const f = withSrc();
    refuse(f.m, Errno.ENOENT, () => copy(f, { flags: RW, length: PAGE, src_iova: 0x200000n, dst_ioas_id: 99 }).r);
  });

  test('length 0 is EINVAL', () => {
    const f = withSrc();
    refuse(f.m, Errno.EINVAL, () => copy(f, { flags: RW, length: 0n, src_iova: 0x200000n, dst_ioas_id: f.dst }).r);
  });

  test('src_iova + length - 1 past 2^64 - 1 is EOVERFLOW', () => {
    const f = withSrc();
    refuse(f.m, Errno.EOVERFLOW, () => copy(f, { flags: RW, length: 2n * PAGE, src_iova: U64_MAX - PAGE + 1n, dst_ioas_id: f.dst }).r);
  });

  test('a fixed destination overlapping an area is EEXIST, one in a reserved range EINVAL', () => {
    const f = withSrc();
    mapFixed(f, f.buffer, PAGE, 0x1000n, f.dst);
    ok(addReserved(f, f.dst, 0x10000n, PAGE));
    refuse(f.m, Errno.EEXIST, () => copy(f, { flags: RW | FIXED, length: 2n * PAGE, src_iova: 0x200000n, dst_iova: 0n, dst_ioas_id: f.dst }).r);
    refuse(f.m, Errno.EINVAL, () => copy(f, { flags: RW | FIXED, length: PAGE, src_iova: 0x200000n, dst_iova: 0x10000n, dst_ioas_id: f.dst }).r);
  });

  test('a chosen destination IOVA honours the destination\'s allowed ranges', () => {
    const f = withSrc();
    ok(allow(on(f, f.dst), [[0x400000n, 0x4fffffn]]));
    const c = copy(f, { flags: RW, length: PAGE, src_iova: 0x200000n, dst_ioas_id: f.dst });
    ok(c.r);
    assert.equal(c.dst_iova, 0x400000n);
  });

  test('a WRITEABLE copy of a read-only mapping is EPERM; READABLE is fine', () => {
    const f = withSrc();
    mapFixed(f, f.buffer, PAGE, 0x300000n);
    ok(map(f, f.buffer, PAGE, 0x400000n, R));
    refuse(f.m, Errno.EPERM, () => copy(f, { flags: W, length: PAGE, src_iova: 0x400000n, dst_ioas_id: f.dst }).r);
    ok(copy(f, { flags: R, length: PAGE, src_iova: 0x400000n, dst_ioas_id: f.dst }).r);
  });

  test('a copy whose destination range already overlaps gives nothing back to the source (IOAS_COPY is all or nothing)', () => {
    const f = withSrc();
    mapFixed(f, f.buffer, PAGE, 0x1000n, f.dst);
    const refs = [...ioasObj(f, f.ioas).iopt.areas][0]!.pages!.refs;
    refuse(f.m, Errno.EEXIST, () => copy(f, { flags: RW | FIXED, length: PAGE, src_iova: 0x200000n, dst_iova: 0x1000n, dst_ioas_id: f.dst }).r);
    assert.equal([...ioasObj(f, f.ioas).iopt.areas][0]!.pages!.refs, refs);
  });

  test('MOCK_PAGE_SIZE copies swept by 511 bytes succeed exactly where the source is mapped (copy_sweep)', () => {
    const f = ioasSetup();
    const dst = alloc(f);
    const lastIova = MOCK_APERTURE_START + BUFFER_SIZE - 2n;
    mapFixed(f, f.buffer, lastIova - MOCK_APERTURE_START + 1n, MOCK_APERTURE_START);
    let copies = 0;
    for (let iova = MOCK_APERTURE_START - PAGE; iova <= lastIova; iova += 511n) {
      const args = { flags: FIXED | W, length: MOCK_PAGE_SIZE, src_iova: iova, dst_ioas_id: dst, dst_iova: MOCK_APERTURE_START };
      if (iova < MOCK_APERTURE_START || iova + MOCK_PAGE_SIZE - 1n > lastIova) {
        refuse(f.m, Errno.ENOENT, () => copy(f, args).r);
      } else {
        ok(copy(f, args).r);
        ok(unmapRaw(f, MOCK_APERTURE_START, MOCK_PAGE_SIZE, dst));
        copies++;
      }
    }
    assert.ok(copies > 100);
    ok(destroy(f, dst));
  });
});

describe('IOMMU_IOAS_IOVA_RANGES', () => {
  test('reports [0, 2^64 - 1] and alignment 1, then EMSGSIZE with the count when the array is too small, then holes around a reservation (iova_ranges)', () => {
    const f = ioasSetup();
    const max = Number(PAGE) / iommu_iova_range.size;
    let q = iovaRanges(f, { num_iovas: max });
    ok(q.r);
    assert.equal(q.num, 1);
    assert.deepEqual(readRanges(f, 1), [[0n, U64_MAX]]);
    assert.equal(q.align, 1n);

    clearArr(f);
    refuse(f.m, Errno.EMSGSIZE, () => (q = iovaRanges(f, { num_iovas: 0 })).r);
    assert.equal(q.num, 1);
    assert.deepEqual(readRanges(f, 1), [[0n, 0n]]);

    ok(addReserved(f, f.ioas, PAGE, PAGE));
    q = iovaRanges(f, { num_iovas: max });
    ok(q.r);
    assert.equal(q.num, 2);
    assert.deepEqual(readRanges(f, 2), [
      [0n, PAGE - 1n],
      [2n * PAGE, U64_MAX],
    ]);

    clearArr(f);
    refuse(f.m, Errno.EMSGSIZE, () => (q = iovaRanges(f, { num_iovas: 1 })).r);
    assert.equal(q.num, 2);
    assert.deepEqual(readRanges(f, 2), [
      [0n, PAGE - 1n],
      [0n, 0n],
    ]);
  });

  test('EMSGSIZE changes nothing but the write-back of num_iovas and out_iova_alignment', () => {
    const f = ioasSetup();
    ok(hugePages(f, IOMMU_OPTION_OP_SET, 0n).r);
    let align = 0n;
    refuse(f.m, Errno.EMSGSIZE, () => {
      const q = iovaRanges(f, { num_iovas: 0, out_iova_alignment: 77n });
      align = q.align;
      return q.r;
    });
    assert.equal(align, PAGE);
  });

  test('only reserved ranges make holes: areas and allowed ranges are not reported', () => {
    const f = ioasSetup();
    mapFixed(f, f.buffer, PAGE, 0x1000n);
    ok(allow(f, [[0x100000n, 0x1fffffn]]));
    clearArr(f);
    const q = iovaRanges(f, { num_iovas: 4 });
    ok(q.r);
    assert.equal(q.num, 1);
    assert.deepEqual(readRanges(f, 1), [[0n, U64_MAX]]);
  });

  test('overlapping and touching reserved ranges merge; ranges at both ends leave one hole', () => {
    const f = ioasSetup();
    ok(addReserved(f, f.ioas, 0n, PAGE));
    ok(addReserved(f, f.ioas, 0x10000n, 0x2000n));
    ok(addReserved(f, f.ioas, 0x11000n, 0x2000n));
    ok(addReserved(f, f.ioas, 0x13000n, 0x1000n));
    ok(addReserved(f, f.ioas, 1n << 63n, 1n << 63n));
    const q = iovaRanges(f, { num_iovas: 8 });
    ok(q.r);
    assert.equal(q.num, 2);
    assert.deepEqual(readRanges(f, 2), [
      [PAGE, 0xffffn],
      [0x14000n, (1n << 63n) - 1n],
    ]);
  });

  test('out_iova_alignment is PAGE_SIZE while huge pages are off', () => {
    const f = ioasSetup();
    ok(hugePages(f, IOMMU_OPTION_OP_SET, 0n).r);
    const q = iovaRanges(f, { num_iovas: 1 });
    ok(q.r);
    assert.equal(q.align, PAGE);
  });

  test('a non-zero __reserved is EOPNOTSUPP, an unknown IOAS ENOENT', () => {
    const f = ioasSetup();
    refuse(f.m, Errno.EOPNOTSUPP, () => iovaRanges(f, { num_iovas: 1, __reserved: 1 }).r);
    refuse(f.m, Errno.ENOENT, () => iovaRanges(f, { num_iovas: 1, ioas_id: 99 }).r);
  });

  test('an unwritable array is EFAULT; with num_iovas 0 nothing is written, so it is EMSGSIZE', () => {
    const f = ioasSetup();
    refuse(f.m, Errno.EFAULT, () => iovaRanges(f, { num_iovas: 4, allowed_iovas: 8n }).r);
    refuse(f.m, Errno.EMSGSIZE, () => iovaRanges(f, { num_iovas: 0, allowed_iovas: 0n }).r);
  });
});

describe('IOMMU_IOAS_ALLOW_IOVAS', () => {
  const allowedOf = (f: F): string[] => [...ioasObj(f, f.ioas).iopt.allowed].map((a) => `${hx(a.start)}-${hx(a.last)}`);

  test('a reservation inside an allowed range is EADDRINUSE, and an allowed range over a reservation too (area_allowed)', () => {
    const f = ioasSetup();
    const base = 0n;
    ok(allow(f, [[base, base + PAGE * 600n]]));
    refuse(f.m, Errno.EADDRINUSE, () => addReserved(f, f.ioas, base + PAGE, PAGE));
    ok(allow(f, []));
    ok(addReserved(f, f.ioas, base + PAGE, PAGE));
    refuse(f.m, Errno.EADDRINUSE, () => allow(f, [[base, base + PAGE * 600n]]));
  });

  test('sets the list; num_iovas 0 clears it', () => {
    const f = ioasSetup();
    ok(allow(f, [[0x200000n, 0x2fffffn], [0x10000n, 0x1ffffn]]));
    assert.deepEqual(allowedOf(f), ['0x10000-0x1ffff', '0x200000-0x2fffff']);
    ok(allow(f, []));
    assert.deepEqual(allowedOf(f), []);
    assert.equal(mapAuto(f, f.buffer, PAGE), PAGE);
  });

  test('touching entries are accepted', () => {
    const f = ioasSetup();
    ok(allow(f, [[0x10000n, 0x1ffffn], [0x20000n, 0x2ffffn]]));
    assert.equal(allowedOf(f).length, 2);
  });

  test('start == last or start > last is EINVAL', () => {
    const f = ioasSetup();
    refuse(f.m, Errno.EINVAL, () => allow(f, [[0x10000n, 0x10000n]]));
    refuse(f.m, Errno.EINVAL, () => allow(f, [[0x10000n, 0x1ffffn], [0x30000n, 0x2ffffn]]));
  });

  test('overlapping entries are EINVAL, whatever their order', () => {
    const f = ioasSetup();
    refuse(f.m, Errno.EINVAL, () => allow(f, [[0x10000n, 0x1ffffn], [0x1f000n, 0x2ffffn]]));
    refuse(f.m, Errno.EINVAL, () => allow(f, [[0x1f000n, 0x2ffffn], [0x10000n, 0x1ffffn]]));
    refuse(f.m, Errno.EINVAL, () => allow(f, [[0x10000n, 0x1ffffn], [0x12000n, 0x13fffn]]));
  });

  test('an entry intersecting a reserved range is EADDRINUSE', () => {
    const f = ioasSetup();
    ok(addReserved(f, f.ioas, 0x100000n, PAGE));
    refuse(f.m, Errno.EADDRINUSE, () => allow(f, [[0x10000n, 0x1ffffn], [0xff000n, 0x100000n]]));
    ok(allow(f, [[0x10000n, 0xfffffn], [0x101000n, 0x1fffffn]]));
  });

  test('a refused replacement keeps the old list, and auto IOVAs still come from it', () => {
    const f = ioasSetup();
    ok(allow(f, [[0x10000n, 0x1ffffn]]));
    ok(addReserved(f, f.ioas, 0x400000n, PAGE));
    refuse(f.m, Errno.EINVAL, () => allow(f, [[0x30000n, 0x3ffffn], [0x38000n, 0x48000n]]));
    refuse(f.m, Errno.EADDRINUSE, () => allow(f, [[0x30000n, 0x3ffffn], [0x400000n, 0x4fffffn]]));
    assert.deepEqual(allowedOf(f), ['0x10000-0x1ffff']);
    assert.equal(mapAuto(f, f.buffer, PAGE), 0x10000n);
  });

  test('allowed ranges may cover existing areas', () => {
    const f = ioasSetup();
    mapFixed(f, f.buffer, PAGE, 0x10000n);
    ok(allow(f, [[0x10000n, 0x1ffffn]]));
    assert.equal(mapAuto(f, f.buffer, PAGE), 0x11000n);
  });

  test('a non-zero __reserved is EOPNOTSUPP, an unknown IOAS ENOENT, an unreadable array EFAULT', () => {
    const f = ioasSetup();
    refuse(f.m, Errno.EOPNOTSUPP, () => allow(f, [[0x10000n, 0x1ffffn]], { __reserved: 1 }));
    refuse(f.m, Errno.ENOENT, () => allow(f, [[0x10000n, 0x1ffffn]], { ioas_id: 99 }));
    refuse(f.m, Errno.EFAULT, () => allow(f, [], { num_iovas: 1, allowed_iovas: 8n }));
  });

  test('num_iovas 0 reads nothing: a NULL array clears the list', () => {
    const f = ioasSetup();
    ok(allow(f, [[0x10000n, 0x1ffffn]]));
    ok(allow(f, [], { allowed_iovas: 0n }));
    assert.deepEqual(allowedOf(f), []);
  });
});

describe('IOMMU_OPTION', () => {
  test('RLIMIT_MODE reads 0, root sets 1, 2 is EINVAL, reads 1, sets 0; HUGE_PAGES of object 0 is ENOENT (global_options)', () => {
    const f = ioasSetup();
    const fd = f.p.openOrThrow('/dev/iommu');
    let o = option(f, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET, val64: 1n }, fd);
    ok(o.r);
    assert.equal(o.val64, 0n);
    ok(option(f, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 1n }, fd).r);
    refuse(f.m, Errno.EINVAL, () => option(f, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 2n }, fd).r);
    o = option(f, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET, val64: 2n }, fd);
    ok(o.r);
    assert.equal(o.val64, 1n);
    ok(option(f, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 0n }, fd).r);
    refuse(f.m, Errno.ENOENT, () => option(f, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET, val64: 0n }, fd).r);
    refuse(f.m, Errno.ENOENT, () => option(f, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_SET, val64: 0n }, fd).r);
  });

  describe('RLIMIT_MODE', () => {
    const rl = (f: F, op: number, val64: bigint, fd: number, extra: Partial<ReturnType<typeof iommu_option.zero>> = {}): SysResult =>
      option(f, { option_id: IOMMU_OPTION_RLIMIT_MODE, op, val64, ...extra }, fd).r;

    test('a non-zero object_id is EOPNOTSUPP', () => {
      const f = ioasSetup();
      const fd = f.p.openOrThrow('/dev/iommu');
      refuse(f.m, Errno.EOPNOTSUPP, () => rl(f, IOMMU_OPTION_OP_GET, 0n, fd, { object_id: 1 }));
      refuse(f.m, Errno.EOPNOTSUPP, () => rl(f, IOMMU_OPTION_OP_SET, 1n, fd, { object_id: 1 }));
    });

    test('SET without CAP_SYS_RESOURCE is EPERM, even on an empty iommufd; GET works', () => {
      const f = ioasSetup({ uid: 1000 });
      assert.equal(f.p.capable(CAP_SYS_RESOURCE), false);
      const fd = f.p.openOrThrow('/dev/iommu');
      refuse(f.m, Errno.EPERM, () => rl(f, IOMMU_OPTION_OP_SET, 1n, fd));
      refuse(f.m, Errno.EPERM, () => rl(f, IOMMU_OPTION_OP_SET, 0n, fd));
      const o = option(f, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET, val64: 9n }, fd);
      ok(o.r);
      assert.equal(o.val64, 0n);
    });

    test('CAP_SYS_RESOURCE alone is enough for a non-root user', () => {
      const f = ioasSetup({ uid: 1000, caps: [CAP_SYS_RESOURCE] });
      const fd = f.p.openOrThrow('/dev/iommu');
      ok(rl(f, IOMMU_OPTION_OP_SET, 1n, fd));
    });

    test('SET is EBUSY once the iommufd holds an object, and allowed again once it holds none', () => {
      const f = ioasSetup();
      refuse(f.m, Errno.EBUSY, () => rl(f, IOMMU_OPTION_OP_SET, 1n, f.fd));
      refuse(f.m, Errno.EBUSY, () => rl(f, IOMMU_OPTION_OP_SET, 0n, f.fd));
      ok(destroy(f, f.ioas));
      ok(rl(f, IOMMU_OPTION_OP_SET, 1n, f.fd));
      assert.equal(ctxOf(f).accountMode, 2);
    });

    test('EPERM comes before EBUSY, EBUSY before EINVAL', () => {
      const f = ioasSetup({ uid: 1000 });
      refuse(f.m, Errno.EPERM, () => rl(f, IOMMU_OPTION_OP_SET, 2n, f.fd));
      const g = ioasSetup();
      refuse(g.m, Errno.EBUSY, () => rl(g, IOMMU_OPTION_OP_SET, 2n, g.fd));
    });

    test('an op that is neither SET nor GET is EOPNOTSUPP, also without the capability', () => {
      const f = ioasSetup({ uid: 1000 });
      const fd = f.p.openOrThrow('/dev/iommu');
      refuse(f.m, Errno.EOPNOTSUPP, () => rl(f, 2, 0n, fd));
      refuse(f.m, Errno.EOPNOTSUPP, () => rl(f, 0xffff, 0n, fd));
    });

    test('the mode belongs to one iommufd: another keeps its own', () => {
      const f = ioasSetup();
      const a = f.p.openOrThrow('/dev/iommu');
      const b = f.p.openOrThrow('/dev/iommu');
      ok(rl(f, IOMMU_OPTION_OP_SET, 1n, a));
      const o = option(f, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET }, b);
      ok(o.r);
      assert.equal(o.val64, 0n);
    });
  });

  test('a non-zero __reserved is EOPNOTSUPP', () => {
    const f = ioasSetup();
    refuse(f.m, Errno.EOPNOTSUPP, () => option(f, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET, object_id: f.ioas, __reserved: 1 }).r);
    refuse(f.m, Errno.EOPNOTSUPP, () => option(f, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET, __reserved: 0x8000 }).r);
  });

  test('an unknown option_id is EOPNOTSUPP', () => {
    const f = ioasSetup();
    for (const option_id of [2, 0xffffffff]) {
      refuse(f.m, Errno.EOPNOTSUPP, () => option(f, { option_id, op: IOMMU_OPTION_OP_GET, object_id: f.ioas }).r);
    }
  });

  describe('HUGE_PAGES', () => {
    test('GET is 1, SET 0 reads back 0, SET 2 is EINVAL, SET 1 restores (ioas_option_huge_pages)', () => {
      const f = ioasSetup();
      let o = hugePages(f, IOMMU_OPTION_OP_GET, 3n);
      ok(o.r);
      assert.equal(o.val64, 1n);
      ok(hugePages(f, IOMMU_OPTION_OP_SET, 0n).r);
      o = hugePages(f, IOMMU_OPTION_OP_GET, 3n);
      ok(o.r);
      assert.equal(o.val64, 0n);
      refuse(f.m, Errno.EINVAL, () => hugePages(f, IOMMU_OPTION_OP_SET, 2n).r);
      ok(hugePages(f, IOMMU_OPTION_OP_SET, 1n).r);
      o = hugePages(f, IOMMU_OPTION_OP_GET, 3n);
      assert.equal(o.val64, 1n);
    });

    test('SET 0 raises the IOVA alignment to PAGE_SIZE, SET 1 lowers it to 1; setting 0 twice is fine', () => {
      const f = ioasSetup();
      ok(hugePages(f, IOMMU_OPTION_OP_SET, 0n).r);
      ok(hugePages(f, IOMMU_OPTION_OP_SET, 0n).r);
      assert.equal(ioasObj(f, f.ioas).iopt.iovaAlignment, PAGE);
      ok(hugePages(f, IOMMU_OPTION_OP_SET, 1n).r);
      assert.equal(ioasObj(f, f.ioas).iopt.iovaAlignment, 1n);
    });

    test('the setting belongs to one IOAS', () => {
      const f = ioasSetup();
      const other = alloc(f);
      ok(hugePages(f, IOMMU_OPTION_OP_SET, 0n).r);
      const o = hugePages(f, IOMMU_OPTION_OP_GET, 0n, other);
      ok(o.r);
      assert.equal(o.val64, 1n);
      assert.equal(ioasObj(f, other).iopt.iovaAlignment, 1n);
    });

    test('an unknown op is EOPNOTSUPP, but an unknown object is ENOENT first', () => {
      const f = ioasSetup();
      refuse(f.m, Errno.EOPNOTSUPP, () => hugePages(f, 2).r);
      refuse(f.m, Errno.ENOENT, () => hugePages(f, 2, 0n, 99).r);
      refuse(f.m, Errno.ENOENT, () => hugePages(f, IOMMU_OPTION_OP_GET, 0n, 0).r);
    });

    test('PAGE_SIZE alignment comes and goes with the areas (ioas_align_change, no_domain)', () => {
      const f = ioasSetup();
      mapFixed(f, f.buffer, PAGE, MOCK_APERTURE_START);
      ok(hugePages(f, IOMMU_OPTION_OP_SET, 0n).r);
      refuse(f.m, Errno.EINVAL, () => map(f, f.buffer + MOCK_PAGE_SIZE, PAGE, MOCK_APERTURE_START + PAGE));
      ok(hugePages(f, IOMMU_OPTION_OP_SET, 0n).r);
      ok(hugePages(f, IOMMU_OPTION_OP_SET, 1n).r);
      mapFixed(f, f.buffer + MOCK_PAGE_SIZE, PAGE, MOCK_APERTURE_START + PAGE);
      refuse(f.m, Errno.EADDRINUSE, () => hugePages(f, IOMMU_OPTION_OP_SET, 0n).r);
      assert.equal(ioasObj(f, f.ioas).iopt.disableLargePages, false);
      ok(unmapRaw(f, MOCK_APERTURE_START + PAGE, PAGE));
      ok(unmapRaw(f, MOCK_APERTURE_START, PAGE));
    });

    test('SET 0 is EADDRINUSE for a misaligned IOVA or length too', () => {
      const f = ioasSetup();
      mapFixed(f, f.buffer, PAGE, 0x1800n);
      refuse(f.m, Errno.EADDRINUSE, () => hugePages(f, IOMMU_OPTION_OP_SET, 0n).r);
      ok(unmapRaw(f, 0n, U64_MAX));
      mapFixed(f, f.buffer, 0x1800n, 0x1000n);
      refuse(f.m, Errno.EADDRINUSE, () => hugePages(f, IOMMU_OPTION_OP_SET, 0n).r);
    });
  });

  test('only val64 is written back, and nothing on failure', () => {
    const f = ioasSetup();
    const fields = { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET, object_id: f.ioas, val64: 5n };
    const o = option(f, fields);
    ok(o.r);
    assert.deepEqual(o.bytes.subarray(0, 16), iommu_option.encode({ ...fields, size: iommu_option.size }).subarray(0, 16));
    assert.equal(o.val64, 1n);
    let val = 0n;
    refuse(f.m, Errno.EINVAL, () => {
      const bad = option(f, { ...fields, op: IOMMU_OPTION_OP_SET, val64: 7n });
      val = bad.val64;
      return bad.r;
    });
    assert.equal(val, 7n);
    refuse(f.m, Errno.ENOENT, () => {
      const missing = option(f, { ...fields, object_id: 99 });
      val = missing.val64;
      return missing.r;
    });
    assert.equal(val, 5n);
  });
});

describe('IOMMU_VFIO_IOAS', () => {
  test('GET without one is ENODEV, SET of a bad ID ENOENT, SET then GET returns it, CLEAR makes GET ENODEV again (vfio_ioas)', () => {
    const f = ioasSetup();
    const fd = f.p.openOrThrow('/dev/iommu');
    const g = { ...f, fd };
    refuse(f.m, Errno.ENODEV, () => vfioIoas(g, IOMMU_VFIO_IOAS_GET).r);
    refuse(f.m, Errno.ENOENT, () => vfioIoas(g, IOMMU_VFIO_IOAS_SET).r);
    const id = alloc(g);
    ok(vfioIoas(g, IOMMU_VFIO_IOAS_SET, id).r);
    const got = vfioIoas(g, IOMMU_VFIO_IOAS_GET);
    ok(got.r);
    assert.equal(got.ioas_id, id);
    ok(vfioIoas(g, IOMMU_VFIO_IOAS_CLEAR).r);
    refuse(f.m, Errno.ENODEV, () => vfioIoas(g, IOMMU_VFIO_IOAS_GET).r);
  });

  test('SET replaces the compat IOAS; CLEAR with none set succeeds', () => {
    const f = ioasSetup();
    ok(vfioIoas(f, IOMMU_VFIO_IOAS_CLEAR).r);
    const other = alloc(f);
    ok(vfioIoas(f, IOMMU_VFIO_IOAS_SET, f.ioas).r);
    ok(vfioIoas(f, IOMMU_VFIO_IOAS_SET, other).r);
    assert.equal(vfioIoas(f, IOMMU_VFIO_IOAS_GET).ioas_id, other);
  });

  test('a non-zero __reserved or an unknown op is EOPNOTSUPP', () => {
    const f = ioasSetup();
    refuse(f.m, Errno.EOPNOTSUPP, () => vfioIoas(f, IOMMU_VFIO_IOAS_SET, f.ioas, { __reserved: 1 }).r);
    refuse(f.m, Errno.EOPNOTSUPP, () => vfioIoas(f, IOMMU_VFIO_IOAS_GET, 0, { __reserved: 1 }).r);
    refuse(f.m, Errno.EOPNOTSUPP, () => vfioIoas(f, 3, f.ioas).r);
  });

  test('SET takes no reference: the IOAS can still be destroyed, and that clears the compat IOAS', () => {
    const f = ioasSetup();
    ok(vfioIoas(f, IOMMU_VFIO_IOAS_SET, f.ioas).r);
    assert.equal(ioasObj(f, f.ioas).users, 1);
    ok(destroy(f, f.ioas));
    refuse(f.m, Errno.ENODEV, () => vfioIoas(f, IOMMU_VFIO_IOAS_GET).r);
    const again = alloc(f);
    assert.equal(again, f.ioas, 'the ID is reused');
    refuse(f.m, Errno.ENODEV, () => vfioIoas(f, IOMMU_VFIO_IOAS_GET).r);
  });

  test('destroying another IOAS leaves the compat IOAS set', () => {
    const f = ioasSetup();
    const other = alloc(f);
    ok(vfioIoas(f, IOMMU_VFIO_IOAS_SET, f.ioas).r);
    ok(destroy(f, other));
    assert.equal(vfioIoas(f, IOMMU_VFIO_IOAS_GET).ioas_id, f.ioas);
  });

  test('SET of an ID of another iommufd is ENOENT', () => {
    const f = ioasSetup();
    const fd = f.p.openOrThrow('/dev/iommu');
    refuse(f.m, Errno.ENOENT, () => vfioIoas({ ...f, fd }, IOMMU_VFIO_IOAS_SET, f.ioas).r);
  });
});

describe('IOAS lifetime and teardown (iommufd_ioas, no_domain)', () => {
  test('an IOAS is freed by close (ioas_auto_destroy)', () => {
    const f = ioasSetup();
    ok(f.p.close(f.fd));
    assert.equal(f.m.iommufd.contexts.size, 0);
  });

  test('an IOAS can be destroyed by hand (ioas_destroy)', () => {
    const f = ioasSetup();
    ok(destroy(f, f.ioas));
    assert.deepEqual(ctxOf(f).objects(), []);
  });

  test('mapping an area does not stop DESTROY (ioas_area_destroy)', () => {
    const f = ioasSetup();
    mapFixed(f, f.buffer, PAGE, 0n);
    ok(destroy(f, f.ioas));
    assert.deepEqual(ctxOf(f).objects(), []);
    nothingPinned(f);
  });

  test('an IOAS with ten areas is freed by close (ioas_area_auto_destroy)', () => {
    const f = ioasSetup();
    for (let i = 0n; i < 10n; i++) mapFixed(f, f.buffer, PAGE, i * PAGE);
    ok(f.p.close(f.fd));
    assert.equal(f.m.iommufd.contexts.size, 0);
    nothingPinned(f);
  });

  test('close tears down every IOAS, area, copy, reservation and the compat IOAS', () => {
    const f = ioasSetup();
    const dst = alloc(f);
    mapFixed(f, f.buffer, 4n * PAGE, 0x200000n);
    ok(copy(f, { flags: RW, length: 4n * PAGE, src_iova: 0x200000n, dst_ioas_id: dst }).r);
    ok(addReserved(f, dst, 0x10000000n, PAGE));
    ok(allow(f, [[0x100000n, 0x1fffffn]]));
    ok(vfioIoas(f, IOMMU_VFIO_IOAS_SET, dst).r);
    ok(hugePages(f, IOMMU_OPTION_OP_SET, 0n).r);
    ok(f.p.close(f.fd));
    assert.equal(f.m.iommufd.contexts.size, 0);
    nothingPinned(f);
    refuse(f.m, Errno.EBADF, () => f.p.ioctl(f.fd, IOMMU_IOAS_ALLOC, iommu_ioas_alloc.encode({ size: 12 })));
  });

  test('the iommufd lives until its last fd is closed', () => {
    const f = ioasSetup();
    const dup = ok(f.p.dup(f.fd));
    mapFixed(f, f.buffer, PAGE, 0x1000n);
    ok(f.p.close(f.fd));
    assert.equal(f.m.iommufd.contexts.size, 1);
    assert.deepEqual(areasOf({ ...f, fd: dup }, f.ioas), ['0x1000-0x1fff']);
    ok(f.p.close(dup));
    assert.equal(f.m.iommufd.contexts.size, 0);
  });

  test('process exit closes the iommufd and tears it down', () => {
    const f = ioasSetup();
    mapFixed(f, f.buffer, PAGE, 0x1000n);
    f.p.exit();
    assert.equal(f.m.iommufd.contexts.size, 0);
  });

  test('a fresh iommufd after teardown starts again at ID 1', () => {
    const f = ioasSetup();
    alloc(f);
    ok(f.p.close(f.fd));
    const fd = f.p.openOrThrow('/dev/iommu');
    assert.equal(alloc(f, fd), 1);
  });
});

// ---------------------------------------------------------------------------------------------
// A transcription of io_pagetable.c's IOVA rules over plain arrays, to compare the emulator's
// O(log n) search with, call by call.

type Range = readonly [bigint, bigint];

/** Merge ranges that overlap or touch (interval_tree_span_iter's notion of one used span). */
function mergeRanges(rs: readonly Range[]): Range[] {
  const sorted = [...rs].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: [bigint, bigint][] = [];
  for (const [s, l] of sorted) {
    const top = out[out.length - 1];
    if (top && s <= top[1] + 1n) {
      if (l > top[1]) top[1] = l;
    } else out.push([s, l]);
  }
  return out;
}

/** Used spans and holes of `rs` clipped to [lo, hi], in order. */
function spansOf(rs: readonly Range[], lo: bigint, hi: bigint): { hole: boolean; s: bigint; l: bigint }[] {
  const out: { hole: boolean; s: bigint; l: bigint }[] = [];
  let cur = lo;
  for (const [s, l] of mergeRanges(rs)) {
    if (l < cur || s > hi) continue;
    if (s > cur) out.push({ hole: true, s: cur, l: s - 1n });
    const end = l < hi ? l : hi;
    out.push({ hole: false, s: s > cur ? s : cur, l: end });
    if (end === hi) return out;
    cur = end + 1n;
  }
  out.push({ hole: true, s: cur, l: hi });
  return out;
}

const roundupPow2 = (v: bigint): bigint => {
  let p = 1n;
  while (p < v) p <<= 1n;
  return p;
};

interface IoptModel {
  areas: Range[];
  reserved: Range[];
  allowed: Range[];
  align: bigint;
}

/** iopt_alloc_area_pages + iopt_alloc_iova / iopt_check_iova + iopt_insert_area, for one IOAS_MAP. */
function modelMap(m: IoptModel, uptr: bigint, length: bigint, fixed: bigint | null): bigint | number {
  if (length & (m.align - 1n) || length === 0n) return Errno.EINVAL;
  let iova: bigint;
  const hits = (rs: readonly Range[], s: bigint, l: bigint): boolean => rs.some(([a, b]) => a <= l && s <= b);
  if (fixed === null) {
    if (length >= U64_MAX / 2n) return Errno.EOVERFLOW;
    const low = uptr & -uptr;
    let align = uptr === 0n ? roundupPow2(length) : roundupPow2(length) < low ? roundupPow2(length) : low;
    if (align >= PAGE) align = PAGE;
    if (align < m.align) return Errno.EINVAL;
    const off = uptr % PAGE;
    const fit = (s: bigint, l: bigint): bigint | null => {
      const a = ((s + align - 1n) & ~(align - 1n)) | off;
      return a >= l || l - a < length - 1n ? null : a;
    };
    const lo = PAGE;
    const hi = U64_MAX - PAGE;
    const allowedUsed = m.allowed.length ? spansOf(m.allowed, lo, hi).filter((x) => !x.hole) : [{ hole: false, s: lo, l: hi }];
    let found: bigint | null = null;
    for (const a of allowedUsed) {
      // __alloc_iova_check_used moves the span's start to the aligned start, and the hole walk
      // begins there (oracle-measured: a 0x100-byte map at page offset 0x200 lands at 0x1200).
      const from = fit(a.s, a.l);
      if (from === null) continue;
      for (const h of spansOf([...m.areas, ...m.reserved], from, a.l)) {
        if (!h.hole) continue;
        found = fit(h.s, h.l);
        if (found !== null) break;
      }
      if (found !== null) break;
    }
    if (found === null) return Errno.ENOSPC;
    iova = found;
  } else {
    if (fixed & (m.align - 1n)) return Errno.EINVAL;
    if (fixed + length - 1n > U64_MAX) return Errno.EOVERFLOW;
    if (hits(m.reserved, fixed, fixed + length - 1n)) return Errno.EINVAL;
    if (hits(m.areas, fixed, fixed + length - 1n)) return Errno.EEXIST;
    iova = fixed;
  }
  if ((uptr % PAGE) & (m.align - 1n)) return Errno.EINVAL;
  m.areas.push([iova, iova + length - 1n]);
  return iova;
}

describe('kernel-chosen IOVAs against a transcription of iopt_alloc_iova', () => {
  test('random areas, reservations, allowed ranges and maps give the same IOVA or errno, call by call', () => {
    const rand = rng(0x10a5);
    const int = (n: number): bigint => BigInt(Math.floor(rand() * n));
    for (let round = 0; round < 60; round++) {
      const f = ioasSetup();
      const model: IoptModel = { areas: [], reserved: [], allowed: [], align: 1n };
      if (rand() < 0.3) {
        ok(hugePages(f, IOMMU_OPTION_OP_SET, 0n).r);
        model.align = PAGE;
      }
      const span = 0x100000n;
      for (let i = int(4); i > 0n; i--) {
        const s = int(Number(span));
        const l = s + int(0x8000);
        if (ok(addReserved(f, f.ioas, s, l - s + 1n)) === 0) model.reserved.push([s, l]);
      }
      if (rand() < 0.6) {
        const want: [bigint, bigint][] = [];
        let at = int(0x4000);
        for (let i = int(4) + 1n; i > 0n; i--) {
          const s = at + int(0x8000);
          const l = s + 1n + int(0x20000);
          want.push([s, l]);
          at = l + 1n;
        }
        const clash = want.some(([s, l]) => model.reserved.some(([a, b]) => a <= l && s <= b));
        if (clash) refuse(f.m, Errno.EADDRINUSE, () => allow(f, want));
        else {
          ok(allow(f, want));
          model.allowed = want;
        }
      }
      for (let op = 0; op < 40; op++) {
        const dice = rand();
        if (dice < 0.2 && model.areas.length) {
          const k = Math.floor(rand() * model.areas.length);
          const [s, l] = model.areas[k]!;
          const u = unmapRaw(f, s, l - s + 1n);
          ok(u);
          assert.equal(u.length, l - s + 1n);
          model.areas.splice(k, 1);
          continue;
        }
        const sub = rand() < 0.5;
        const length = sub ? int(0x1800) + 1n : (int(12) + 1n) * PAGE;
        const uptr = f.buffer + (rand() < 0.5 ? int(Number(PAGE)) : int(4) * PAGE);
        const fixed = dice < 0.35 ? int(Number(span)) & (rand() < 0.5 ? ~(PAGE - 1n) : ~0n) : null;
        const want = modelMap(model, uptr, length, fixed);
        const before = fullSnapshot(f.m);
        const r = map(f, uptr, length, fixed);
        const where = `round ${round} op ${op}: map ${hx(uptr)} +${hx(length)} at ${fixed === null ? 'auto' : hx(fixed)}`;
        if (typeof want === 'bigint') {
          assert.equal(r.errno, 0, `${where}: expected ${hx(want)}, got ${r.reason ?? ''}`);
          assert.equal(hx(r.iova), hx(want), where);
        } else {
          assert.equal(r.errno, want, `${where}: expected errno ${want}, got ${r.errno} ${r.reason ?? hx(r.iova)}`);
          assert.equal(fullSnapshot(f.m), before, `${where}: the refused map changed the machine`);
        }
      }
      assert.deepEqual(areasOf(f, f.ioas), [...model.areas].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([s, l]) => `${hx(s)}-${hx(l)}`));
    }
  });

  test('allowed ranges are clipped to [PAGE_SIZE, 2^64 - 1 - PAGE_SIZE]', () => {
    const f = ioasSetup();
    const top = U64_MAX - 0xffffn;
    ok(allow(f, [[top, U64_MAX]]));
    for (let i = 0n; i < 15n; i++) assert.equal(mapAuto(f, f.buffer, PAGE), top + i * PAGE);
    refuse(f.m, Errno.ENOSPC, () => map(f, f.buffer, PAGE, null));
  });

  test('a one-byte hole never takes a one-byte map: the kernel wants aligned_start < last', () => {
    const f = ioasSetup();
    ok(allow(f, [[0x10000n, 0x10001n]]));
    assert.equal(mapAuto(f, f.buffer, 1n), 0x10000n);
    refuse(f.m, Errno.ENOSPC, () => map(f, f.buffer, 1n, null));
    mapFixed(f, f.buffer, 1n, 0x10001n);
  });

  test('areas straddling the edges of an allowed range shrink it', () => {
    const f = ioasSetup();
    mapFixed(f, f.buffer, 2n * PAGE, 0xf000n);
    mapFixed(f, f.buffer, 2n * PAGE, 0x1f000n);
    ok(allow(f, [[0x10000n, 0x1ffffn]]));
    assert.equal(mapAuto(f, f.buffer, 14n * PAGE), 0x11000n);
    refuse(f.m, Errno.ENOSPC, () => map(f, f.buffer, PAGE, null));
  });
});
