/**
 * Fixtures for the mock-device suite (mock_device.test.ts), on top of ./helpers.js: typed
 * IOMMU_TEST_CMD wrappers for the selftest's mock-domain ops, HWPT_ALLOC / HWPT_INVALIDATE /
 * GET_HW_INFO / dirty-tracking / fault-queue wrappers, a state string that covers what snapshot()
 * does not (IOMMU groups, mock page tables, the fd table), and the fail-nth sweep the kernel's
 * iommufd_fail_nth.c runs.
 */

import assert from 'node:assert/strict';
import {
  Errno,
  IOMMU_DESTROY,
  IOMMU_FAULT_QUEUE_ALLOC,
  IOMMU_GET_HW_INFO,
  IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_GET_DIRTY_BITMAP,
  IOMMU_HWPT_INVALIDATE,
  IOMMU_HWPT_SET_DIRTY_TRACKING,
  type Process,
  type SysResult,
  errnoName,
  iommu_destroy,
  iommu_fault_alloc,
  iommu_hw_info,
  iommu_hwpt_alloc,
  iommu_hwpt_get_dirty_bitmap,
  iommu_hwpt_invalidate,
  iommu_hwpt_set_dirty_tracking,
} from '../src/index.js';
import {
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
  IOMMU_TEST_CMD,
  IOMMU_TEST_OP_DIRTY,
  IOMMU_TEST_OP_MD_CHECK_IOTLB,
  IOMMU_TEST_OP_MD_CHECK_MAP,
  IOMMU_TEST_OP_MD_CHECK_REFS,
  IOMMU_TEST_OP_MOCK_DOMAIN,
  IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS,
  IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
  IOMMU_TEST_OP_TRIGGER_IOPF,
  iommu_hwpt_invalidate_selftest,
  iommu_hwpt_selftest,
  iommu_test_cmd,
  test_check_iotlb,
  test_check_map,
  test_check_refs,
  test_dirty,
  test_mock_domain,
  test_mock_domain_flags,
  test_mock_domain_replace,
  test_trigger_iopf,
} from '../src/uapi/iommufd_test.js';
import { HwptPaging } from '../src/kernel/iommufd/hw_pagetable.js';
import { MockDomain } from '../src/kernel/iommufd/selftest_mock.js';
import { type Fixture, PAGE, call, setup, snapshot } from './helpers.js';

type F = Pick<Fixture, 'm' | 'p' | 'fd'>;

/** One IOMMU_TEST_CMD; returns the result and the union as the kernel left it. */
export function testCmd(f: F, op: number, id: number, u: Uint8Array): { r: SysResult; u: Uint8Array } {
  const { r, out } = call(f.p, f.fd, IOMMU_TEST_CMD, iommu_test_cmd, { op, id, u });
  return { r, u: out.u };
}

export interface MockDomainOut {
  r: SysResult;
  stdev: number;
  hwpt: number;
  idev: number;
}

/** IOMMU_TEST_OP_MOCK_DOMAIN (or _FLAGS when `devFlags` is given) on `ptId`. */
export function mockDomain(f: F, ptId: number, devFlags?: number): MockDomainOut {
  const flagsOp = devFlags !== undefined;
  const { r, u } = testCmd(
    f,
    flagsOp ? IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS : IOMMU_TEST_OP_MOCK_DOMAIN,
    ptId,
    flagsOp ? test_mock_domain_flags.encode({ dev_flags: devFlags }) : new Uint8Array(48),
  );
  const o = test_mock_domain.decode(u);
  return { r, stdev: o.out_stdev_id, hwpt: o.out_hwpt_id, idev: o.out_idev_id };
}

/** IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE; `pt` is the pt_id the kernel wrote back. */
export function replace(f: F, stdev: number, ptId: number): { r: SysResult; pt: number } {
  const { r, u } = testCmd(f, IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, stdev, test_mock_domain_replace.encode({ pt_id: ptId }));
  return { r, pt: test_mock_domain_replace.decode(u).pt_id };
}

export function checkMap(f: F, hwpt: number, iova: bigint, length: bigint, uptr: bigint): SysResult {
  return testCmd(f, IOMMU_TEST_OP_MD_CHECK_MAP, hwpt, test_check_map.encode({ iova, length, uptr })).r;
}

export function checkRefs(f: F, uptr: bigint, length: bigint, refs: number): SysResult {
  return testCmd(f, IOMMU_TEST_OP_MD_CHECK_REFS, 0, test_check_refs.encode({ uptr, length, refs })).r;
}

export function checkIotlb(f: F, hwpt: number, id: number, iotlb: number): SysResult {
  return testCmd(f, IOMMU_TEST_OP_MD_CHECK_IOTLB, hwpt, test_check_iotlb.encode({ id, iotlb })).r;
}

export function triggerIopf(f: F, devId: number, fields: { pasid?: number; grpid?: number; perm?: number; addr?: bigint } = {}): SysResult {
  return testCmd(f, IOMMU_TEST_OP_TRIGGER_IOPF, 0, test_trigger_iopf.encode({ dev_id: devId, pasid: 1, grpid: 2, perm: 3, addr: 0xdeadbeafn, ...fields })).r;
}

/** IOMMU_TEST_OP_DIRTY: mark entries dirty through a bitmap of `bits` (LSB first) in fresh user memory. */
export function markDirty(f: F, hwpt: number, iova: bigint, length: bigint, pageSize: bigint, bits: readonly number[]): { r: SysResult; nr: bigint } {
  const nbits = Number(length / pageSize);
  const bytes = new Uint8Array(Math.max(1, Math.ceil(nbits / 8)));
  for (const b of bits) bytes[b >> 3]! |= 1 << (b & 7);
  const uptr = f.p.mmapOrThrow(BigInt(Math.ceil(bytes.length / Number(PAGE))) * PAGE);
  f.p.poke(uptr, bytes);
  const { r, u } = testCmd(f, IOMMU_TEST_OP_DIRTY, hwpt, test_dirty.encode({ iova, length, page_size: pageSize, uptr }));
  return { r, nr: test_dirty.decode(u).out_nr_dirty };
}

export function destroy(f: F, id: number): SysResult {
  return call(f.p, f.fd, IOMMU_DESTROY, iommu_destroy, { id }).r;
}

export interface HwptAllocArgs {
  dev: number;
  pt: number;
  flags?: number;
  dataType?: number;
  dataLen?: number;
  dataUptr?: bigint;
  faultId?: number;
  reserved?: number;
}

export function hwptAlloc(f: F, a: HwptAllocArgs): { r: SysResult; id: number } {
  const { r, out } = call(f.p, f.fd, IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, {
    flags: a.flags ?? 0,
    dev_id: a.dev,
    pt_id: a.pt,
    data_type: a.dataType ?? 0,
    data_len: a.dataLen ?? 0,
    data_uptr: a.dataUptr ?? 0n,
    fault_id: a.faultId ?? 0,
    __reserved: a.reserved ?? 0,
  });
  return { r, id: out.out_hwpt_id };
}

/** A struct iommu_hwpt_selftest { iotlb } in fresh user memory; returns its address. */
export function selftestData(f: F, iotlb: number): bigint {
  const uptr = f.p.mmapOrThrow(PAGE);
  f.p.poke(uptr, iommu_hwpt_selftest.encode({ iotlb }));
  return uptr;
}

/** HWPT_ALLOC of a nested HWPT with IOMMU_HWPT_DATA_SELFTEST data. */
export function nestedAlloc(f: F, dev: number, parent: number, iotlb: number, extra: Partial<HwptAllocArgs> = {}): { r: SysResult; id: number } {
  return hwptAlloc(f, { dev, pt: parent, dataType: IOMMU_HWPT_DATA_SELFTEST, dataLen: iommu_hwpt_selftest.size, dataUptr: selftestData(f, iotlb), ...extra });
}

export interface InvalidateArgs {
  entries?: { flags: number; iotlb_id: number }[];
  entryNum?: number;
  entryLen?: number;
  dataType?: number;
  dataUptr?: bigint;
  reserved?: number;
}

/** HWPT_INVALIDATE with an array of iommu_hwpt_invalidate_selftest; `num` is entry_num as written back. */
export function invalidate(f: F, hwpt: number, a: InvalidateArgs = {}): { r: SysResult; num: number } {
  const entries = a.entries ?? [];
  const entryLen = a.entryLen ?? iommu_hwpt_invalidate_selftest.size;
  let uptr = a.dataUptr;
  if (uptr === undefined) {
    uptr = f.p.mmapOrThrow(PAGE);
    const bytes = new Uint8Array(Math.max(1, entries.length * entryLen));
    entries.forEach((e, i) => bytes.set(iommu_hwpt_invalidate_selftest.encode(e).subarray(0, Math.min(entryLen, 8)), i * entryLen));
    f.p.poke(uptr, bytes);
  }
  const { r, out } = call(f.p, f.fd, IOMMU_HWPT_INVALIDATE, iommu_hwpt_invalidate, {
    hwpt_id: hwpt,
    data_uptr: uptr,
    data_type: a.dataType ?? IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
    entry_len: entryLen,
    entry_num: a.entryNum ?? entries.length,
    __reserved: a.reserved ?? 0,
  });
  return { r, num: out.entry_num };
}

export function hwInfo(f: F, dev: number, v: Partial<Parameters<typeof iommu_hw_info.encode>[0] & object> = {}) {
  return call(f.p, f.fd, IOMMU_GET_HW_INFO, iommu_hw_info, { dev_id: dev, ...v });
}

export function setDirtyTracking(f: F, hwpt: number, flags: number): SysResult {
  return call(f.p, f.fd, IOMMU_HWPT_SET_DIRTY_TRACKING, iommu_hwpt_set_dirty_tracking, { hwpt_id: hwpt, flags }).r;
}

export function getDirtyBitmap(f: F, hwpt: number, v: { iova: bigint; length: bigint; pageSize: bigint; data: bigint; flags?: number }): SysResult {
  return call(f.p, f.fd, IOMMU_HWPT_GET_DIRTY_BITMAP, iommu_hwpt_get_dirty_bitmap, {
    hwpt_id: hwpt,
    flags: v.flags ?? 0,
    iova: v.iova,
    length: v.length,
    page_size: v.pageSize,
    data: v.data,
  }).r;
}

export function faultAlloc(f: F): { r: SysResult; id: number; fd: number } {
  const { r, out } = call(f.p, f.fd, IOMMU_FAULT_QUEUE_ALLOC, iommu_fault_alloc, {});
  return { r, id: out.out_fault_id, fd: out.out_fault_fd };
}

/** The set bits of a little-endian bitmap, in order. */
export function bitsOf(bytes: Uint8Array): number[] {
  const out: number[] = [];
  bytes.forEach((b, i) => {
    for (let k = 0; k < 8; k++) if (b & (1 << k)) out.push(i * 8 + k);
  });
  return out;
}

/**
 * snapshot() plus what it leaves out and a mock-device call can change: the IOMMU groups (their
 * IDs, devices and current domain kind), every mock page table of every paging HWPT, each
 * context's iommufd groups, and the fd table.
 */
export function mockState(f: Pick<Fixture, 'm' | 'p'>): string {
  const groups = f.m.iommu.groups().map((g) => `${g.id}:${g.devices.map((d) => d.name).join('+')}:${g.domain?.type ?? '-'}:${g.ownerCnt}`);
  const pts = [...f.m.iommufd.contexts].map((c) => ({
    igroups: [...c.groups.keys()].sort((a, b) => a - b),
    pts: c.objects().flatMap((o) => {
      if (!(o instanceof HwptPaging) || !(o.domain instanceof MockDomain)) return [];
      const d = o.domain;
      const ents: string[] = [];
      for (const a of o.ioas.iopt.areas) {
        for (let iova = a.start; iova <= a.last; iova += 2048n) ents.push(`${iova.toString(16)}>${d.iovaToPhys(iova)?.toString(16) ?? '-'}`);
      }
      return [`${o.id}:${d.pt.entries}:${ents.join(',')}`];
    }),
  }));
  return `${snapshot(f.m)}|${JSON.stringify({ groups, pts })}|${f.p.openFds().join(',')}`;
}

export interface SweepResult {
  /** errno name per failing N. */
  failing: Map<number, string>;
  /** The refusal's reason per failing N (names the injected site). */
  reasons: Map<number, string>;
  /** N at which the call finally succeeded with the counter still armed. */
  finalN: number;
  /** N at which a fault fired yet the call succeeded (the call tolerated it). */
  tolerated: number[];
}

/**
 * The fail-nth sweep: for N = 1, 2, … arm the counter, run once; a failure must come from the
 * injected fault, carry one of `errnos`, and leave `st()` as before. A success with the fault
 * spent is a tolerated fault: `undo` must bring the state back. Ends at the first success that
 * left the counter armed.
 */
export function sweep(p: Process, st: () => string, run: () => SysResult, errnos: readonly number[], undo?: () => void): SweepResult {
  const before = st();
  const failing = new Map<number, string>();
  const reasons = new Map<number, string>();
  const tolerated: number[] = [];
  for (let n = 1; ; n++) {
    assert.ok(n < 1000, 'the sweep never reached a success with the counter still armed');
    p.setFailNth(n);
    const r = run();
    const left = p.failNth;
    p.setFailNth(0);
    if (r.errno) {
      assert.equal(left, 0, `N=${n}: failed with ${errnoName(r.errno)} though no fault fired: ${r.reason}`);
      assert.ok(errnos.includes(r.errno), `N=${n}: ${errnoName(r.errno)} is not an errno the injected sites produce: ${r.reason}`);
      assert.match(r.reason ?? '', /fault injected/, `N=${n}: the reason should name the injected fault`);
      assert.equal(st(), before, `N=${n}: failed with ${errnoName(r.errno)} (${r.reason}) but left state behind`);
      failing.set(n, errnoName(r.errno));
      reasons.set(n, r.reason ?? '');
      continue;
    }
    if (left !== 0) return { failing, reasons, finalN: n, tolerated };
    assert.ok(undo, `N=${n}: the injected fault fired, yet the call succeeded and no undo was given`);
    tolerated.push(n);
    undo();
    assert.equal(st(), before, `N=${n}: a tolerated fault left state behind after undo`);
  }
}

export { Errno };

/**
 * setup() with the 16-page buffer faulted in and the uid's user_struct created, so later calls
 * allocate no frames behind a snapshot's back.
 */
export function mockSetup(): Fixture {
  const f = setup();
  f.p.poke(f.buf, new Uint8Array(Number(f.bufSize)));
  void f.p.user;
  return f;
}
