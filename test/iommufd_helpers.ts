/**
 * Fixtures shared by the iommufd dispatch and IOAS suites, on top of ./helpers.js: the selftest's
 * `buffer`, a snapshot that also covers the context-wide settings a failed OPTION or VFIO_IOAS must
 * not touch, a refusal assertion that checks nothing changed, and IOMMU_TEST_OP_ADD_RESERVED done
 * through the engine (the emulator has no IOMMU_TEST_CMD yet).
 */

import assert from 'node:assert/strict';
import {
  Errno,
  KernelError,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  type Machine,
  type SpawnOptions,
  type SysResult,
  checkInvariants,
} from '../src/index.js';
import { IommufdIoas } from '../src/kernel/iommufd/ioas.js';
import type { IommufdCtx } from '../src/kernel/iommufd/object.js';
import { type Fixture, PAGE, fails, setup, snapshot } from './helpers.js';

export const U64_MAX = (1n << 64n) - 1n;
/** MOCK_APERTURE_START of the selftest: the IOVA its fixed maps use. */
export const MOCK_APERTURE_START = 1n << 24n;
/** MOCK_PAGE_SIZE (PAGE_SIZE / 2). */
export const MOCK_PAGE_SIZE = PAGE / 2n;
/** Where the selftest's hugepage-aligned `buffer` is placed (2 MiB aligned). */
export const BUFFER_ADDR = 0x7e0000000000n;
export const BUFFER_SIZE = 16n * PAGE;

export const hx = (v: bigint | number): string => `0x${v.toString(16)}`;

export interface IoasFixture extends Fixture {
  /** The selftest's `buffer`: 16 pages, MAP_SHARED, hugepage aligned, already faulted in. */
  buffer: bigint;
  /** A faulted-in page for iommu_iova_range arrays. */
  arr: bigint;
}

/** FIXTURE_SETUP(iommufd_ioas), no_domain variant: /dev/iommu, one IOAS, the selftest buffer. */
export function ioasSetup(spawn: SpawnOptions = {}): IoasFixture {
  const f = setup(spawn);
  const buffer = f.p.mmapOrThrow(BUFFER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, BUFFER_ADDR);
  assert.equal(buffer, BUFFER_ADDR);
  const arr = f.p.mmapOrThrow(PAGE);
  // Fault everything in now so that later reads by the kernel allocate no frames.
  for (let off = 0n; off < BUFFER_SIZE; off += PAGE) f.p.poke(buffer + off, new Uint8Array([0xa5]));
  f.p.poke(arr, new Uint8Array(Number(PAGE)));
  // The uid's user_struct is created on first use; create it now so snapshots do not see it appear.
  void f.p.user;
  return { ...f, buffer, arr };
}

/** The context behind an iommufd. */
export function ctxOf(f: Pick<Fixture, 'm' | 'p' | 'fd'>): IommufdCtx {
  return f.m.iommufd.ctxFromFile(f.p.fget(f.fd));
}

/** The IOAS object with `id` (asserting it exists and is an IOAS). */
export function ioasObj(f: Pick<Fixture, 'm' | 'p' | 'fd'>, id: number): IommufdIoas {
  const o = ctxOf(f).peek(id);
  assert.ok(o instanceof IommufdIoas, `object ${id} is not an IOAS`);
  return o;
}

/** The areas of an IOAS as `start-last` strings (IOVAs in hex). */
export function areasOf(f: Pick<Fixture, 'm' | 'p' | 'fd'>, id: number): string[] {
  return [...ioasObj(f, id).iopt.areas].map((a) => `${hx(a.start)}-${hx(a.last)}`);
}

/**
 * snapshot() plus what it does not cover: each context's accounting mode and VFIO compat IOAS, and
 * each IOAS's huge-page setting.
 */
export function fullSnapshot(m: Machine): string {
  const extra = [...m.iommufd.contexts].map((c) => ({
    accountMode: c.accountMode,
    vfioIoas: c.vfioIoas?.id ?? null,
    hugePagesOff: c.objects().map((o) => (o instanceof IommufdIoas ? o.iopt.disableLargePages : null)),
  }));
  return `${snapshot(m)}|${JSON.stringify(extra)}`;
}

/** Assert that `run` fails with exactly `errno` and leaves the machine as it was; returns the reason. */
export function refuse(m: Machine, errno: number, run: () => SysResult<unknown>): string {
  const before = fullSnapshot(m);
  const reason = fails(run(), errno);
  assert.equal(fullSnapshot(m), before, `the refused call (${reason}) changed the machine`);
  return reason;
}

/**
 * IOMMU_TEST_OP_ADD_RESERVED (selftest.c:iommufd_test_add_reserved) through the engine: length 0
 * is EINVAL, start + length - 1 overflowing EOVERFLOW, then iopt_reserve_iova with a NULL owner.
 */
export function addReserved(f: Pick<Fixture, 'm' | 'p' | 'fd'>, ioasId: number, start: bigint, length: bigint): SysResult {
  let res: SysResult;
  try {
    if (length === 0n) throw new KernelError(Errno.EINVAL, 'ADD_RESERVED: length is 0');
    if (start + length - 1n > U64_MAX) throw new KernelError(Errno.EOVERFLOW, 'ADD_RESERVED: start + length overflows');
    const o = ctxOf(f).peek(ioasId);
    if (!(o instanceof IommufdIoas)) throw new KernelError(Errno.ENOENT, `ADD_RESERVED: no IOAS ${ioasId}`);
    o.iopt.reserveIova(start, start + length - 1n, null);
    res = { ret: 0, errno: 0 };
  } catch (e) {
    if (!(e instanceof KernelError)) throw e;
    res = { ret: -1, errno: e.errno, reason: e.reason };
  }
  const errs = checkInvariants(f.m);
  if (errs.length) assert.fail(`invariants broken after ADD_RESERVED:\n${errs.join('\n')}`);
  return res;
}

/** Simulated mprotect of the VMA around `addr` (the emulator has no mprotect syscall). */
export function protect(f: Pick<Fixture, 'p'>, addr: bigint, prot: number): void {
  const vma = f.p.mm.findVma(addr);
  assert.ok(vma, `no mapping at ${hx(addr)}`);
  vma.prot = prot;
}
