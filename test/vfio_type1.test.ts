/**
 * The VFIO type1 IOMMU backend of the legacy container (src/kernel/vfio/vfio_iommu_type1.ts),
 * driven through /dev/vfio/vfio and a group file as a VMM drives it: extensions, SET_IOMMU,
 * GET_INFO and its capability chain, MAP_DMA / UNMAP_DMA with their checks, pinning and locked_vm
 * accounting, device DMA through the domain, v1 vs v2 unmap rules, VFIO_UPDATE_VADDR, dirty
 * bitmaps, several groups (shared and separate domains, replay, reserved regions, apertures, MSI
 * isolation), detach and release. Every refusal is checked to change nothing.
 *
 * The oracle transcript at the end replays a C probe's calls in-process and must print exactly
 * what the probe printed on Linux 6.12 (QEMU VT-d, 39-bit, no snoop control; the edu device).
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CAP_IPC_LOCK,
  Errno,
  Machine,
  MAP_ANONYMOUS,
  MAP_HUGETLB,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
  type Process,
  type SpawnOptions,
  type SysResult,
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_VADDR,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_DIRTY_PAGES,
  VFIO_IOMMU_ENABLE,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_SET_IOMMU,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1_NESTING_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
} from '../src/index.js';
import type { HwIommu, HwIommuOptions } from '../src/hw/iommu.js';
import type { PciDevice } from '../src/hw/pci.js';
import { type Type1Params, VfioIommu, VfioIommuType1 } from '../src/kernel/vfio/vfio_iommu_type1.js';
import { TYPE1_IOCTLS } from '../src/kernel/vfio/vfio_iommu_type1_info.js';
import { PAGE, fails, ok, probeLine } from './helpers.js';

const IOVA = 0x100000n;
const RW = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
/** The oracle's VT-d: QEMU intel-iommu with interrupt remapping, 39-bit, no snoop control. */
const ORACLE_VTD: HwIommuOptions = { profile: 'vtd', addressWidth: 39, snoopControl: false, verifyIotlb: true };
const hx = (v: bigint | number): string => `0x${v.toString(16)}`;

/** The machine's type1 backend with `params` applied. */
function type1Of(m: Machine, params: Partial<Type1Params> = {}): VfioIommuType1 {
  Object.assign(m.vfio.type1.params, params);
  return m.vfio.type1;
}

/** A PCI function behind `unit`, bound to vfio-pci (its group appears as /dev/vfio/N). */
function plug(m: Machine, unit: HwIommu, bdf: string): PciDevice {
  const dev = m.addPciDevice({ bdf, iommu: unit });
  m.vfio.pci.bind(dev);
  return dev;
}

const groupPath = (dev: PciDevice): string => `/dev/vfio/${dev.group!.id}`;

function s32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, v, true);
  return b;
}

function setContainer(p: Process, group: number, container: number): SysResult {
  return p.ioctl(group, VFIO_GROUP_SET_CONTAINER, s32(container));
}

interface Fx {
  m: Machine;
  p: Process;
  type1: VfioIommuType1;
  unit: HwIommu;
  dev: PciDevice;
  c: number;
  g: number;
  /** 64 pages of anonymous read-write memory. */
  buf: bigint;
}

interface FxOptions {
  type?: number;
  unit?: HwIommuOptions;
  spawn?: SpawnOptions;
  params?: Partial<Type1Params>;
}

/** A container with one group and the backend set (TYPE1v2 unless told). */
function fixture(o: FxOptions = {}): Fx {
  const m = new Machine();
  const type1 = type1Of(m, o.params);
  const unit = m.addIommu(o.unit ?? ORACLE_VTD);
  const dev = plug(m, unit, '0000:00:03.0');
  const p = m.spawn(o.spawn);
  const c = p.openOrThrow('/dev/vfio/vfio');
  const g = p.openOrThrow(groupPath(dev));
  ok(setContainer(p, g, c));
  ok(p.ioctl(c, VFIO_SET_IOMMU, BigInt(o.type ?? VFIO_TYPE1v2_IOMMU)));
  return { m, p, type1, unit, dev, c, g, buf: p.mmapOrThrow(64n * PAGE) };
}

/** The container's type1 state. */
function iommuOf(f: Pick<Fx, 'm'>): VfioIommu {
  const data = f.m.vfio.containers.containers().find((c) => c.iommuData instanceof VfioIommu)?.iommuData;
  assert.ok(data instanceof VfioIommu, 'the container has a type1 state');
  return data;
}

function mapDma(f: Pick<Fx, 'p' | 'c'>, vaddr: bigint, iova: bigint, size: bigint, flags = RW, argsz = 32): SysResult {
  return f.p.ioctl(f.c, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map.encode({ argsz, flags, vaddr, iova, size }));
}

interface Bitmap {
  pgsize: bigint;
  size: bigint;
  data: bigint;
}

/** UNMAP_DMA with an optional trailing vfio_bitmap; `size` is what the struct holds afterwards. */
function unmapDma(f: Pick<Fx, 'p' | 'c'>, iova: bigint, size: bigint, flags = 0, o: { argsz?: number; bitmap?: Bitmap } = {}): SysResult & { size: bigint } {
  const bytes = new Uint8Array(48);
  const dv = new DataView(bytes.buffer);
  dv.setUint32(0, o.argsz ?? (o.bitmap ? 48 : 24), true);
  dv.setUint32(4, flags, true);
  dv.setBigUint64(8, iova, true);
  dv.setBigUint64(16, size, true);
  if (o.bitmap) {
    dv.setBigUint64(24, o.bitmap.pgsize, true);
    dv.setBigUint64(32, o.bitmap.size, true);
    dv.setBigUint64(40, o.bitmap.data, true);
  }
  const r = f.p.ioctl(f.c, VFIO_IOMMU_UNMAP_DMA, bytes);
  return { ...r, size: vfio_iommu_type1_dma_unmap.decode(bytes).size };
}

interface DirtyRange extends Bitmap {
  iova: bigint;
  /** The range's size (the bitmap's is `Bitmap.size`). */
  length: bigint;
}

/** DIRTY_PAGES: START / STOP with just the header, GET_BITMAP with its range. */
function dirtyPages(f: Pick<Fx, 'p' | 'c'>, flags: number, o: { argsz?: number; range?: DirtyRange } = {}): SysResult {
  const bytes = new Uint8Array(48);
  const dv = new DataView(bytes.buffer);
  dv.setUint32(0, o.argsz ?? (o.range ? 48 : 8), true);
  dv.setUint32(4, flags, true);
  if (o.range) {
    dv.setBigUint64(8, o.range.iova, true);
    dv.setBigUint64(16, o.range.length, true);
    dv.setBigUint64(24, o.range.pgsize, true);
    dv.setBigUint64(32, o.range.size, true);
    dv.setBigUint64(40, o.range.data, true);
  }
  return f.p.ioctl(f.c, VFIO_IOMMU_DIRTY_PAGES, bytes);
}
const START = 1;
const STOP = 2;
const GET_BITMAP = 4;

/** Everything a refused call must leave as it was: type1 state, pins, locked_vm, group domains. */
function state(m: Machine): string {
  const t = type1Of(m);
  return JSON.stringify({
    iommus: t.states().map((s) => ({
      dmas: [...s.dmas].map((d) => `${hx(d.iova)}+${hx(d.size)} va ${hx(d.vaddr)} p${d.prot}${d.vaddrInvalid ? ' invalid' : ''} locked ${d.lockedVm} [${d.frames.map((fr) => fr.pfn).join(',')}]`),
      iova: s.iovaList.map((r) => `${hx(r.start)}-${hx(r.last)}`),
      domains: s.domains.map((d) => d.groups.map((g) => g.id)),
      avail: s.dmaAvail,
      invalid: s.vaddrInvalidCount,
      pgsizes: hx(s.pgsizeBitmap),
      tracking: s.dirtyPageTracking,
    })),
    pins: [...m.phys.frames()].filter((fr) => fr.pins).map((fr) => `${fr.pfn}:${fr.pins}`),
    mms: [...m.processes()].map((p) => `${p.pid}:${p.mm.lockedVm}`),
    groups: m.iommu.groups().map((g) => `${g.id}:${g.domain?.type ?? 'none'}:${(g.domain as { tag?: number } | null)?.tag ?? ''}`),
  });
}

/** Pins on every frame are exactly type1's, and the hardware translates through the groups' domains. */
function check(m: Machine): void {
  const want = new Map<number, number>();
  for (const s of type1Of(m).states()) for (const fr of s.pinnedFrames()) want.set(fr.pfn, (want.get(fr.pfn) ?? 0) + 1);
  for (const fr of m.phys.frames()) assert.equal(fr.pins, want.get(fr.pfn) ?? 0, `frame ${hx(fr.pfn)} pins`);
  assert.deepEqual(m.iommu.checkHardware(), []);
}

/** Assert `r` failed with `errno` and that nothing changed. */
function refused(m: Machine, before: string, r: SysResult, errno: number, what: string): void {
  try {
    fails(r, errno);
  } catch (e) {
    assert.fail(`${what}: ${(e as Error).message}`);
  }
  assert.equal(state(m), before, `${what}: a refusal must change nothing`);
}

function pattern(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);
}

/** capset without `cap` in the effective set. */
function dropCap(p: Process, cap: number): void {
  p.cred = { ...p.cred, caps: new Set([...p.cred.caps].filter((c) => c !== cap)) };
}

/** What the device reads at `iova` (the read must succeed). */
function dmaData(dev: PciDevice, iova: bigint, n: number): Uint8Array {
  const r = dev.dmaRead(iova, n);
  assert.ok(r.ok, `DMA read at ${hx(iova)} faulted`);
  return r.data;
}

function checkExtensions(p: Process, c: number): number[] {
  return Array.from({ length: 12 }, (_, e) => ok(p.ioctl(c, VFIO_CHECK_EXTENSION, BigInt(e))));
}

describe('type1: extensions and SET_IOMMU', () => {
  it('CHECK_EXTENSION answers for every driver before SET_IOMMU, then for type1 (oracle)', () => {
    const m = new Machine();
    type1Of(m);
    const dev = plug(m, m.addIommu(ORACLE_VTD), '0000:00:03.0');
    const p = m.spawn();
    const c = p.openOrThrow('/dev/vfio/vfio');
    assert.deepEqual(checkExtensions(p, c), [0, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0]);
    const g = p.openOrThrow(groupPath(dev));
    ok(setContainer(p, g, c));
    ok(p.ioctl(c, VFIO_SET_IOMMU, BigInt(VFIO_TYPE1v2_IOMMU)));
    assert.deepEqual(checkExtensions(p, c), [0, 1, 0, 1, 0, 0, 1, 0, 0, 1, 1, 0]);
  });

  it('DMA_CC_IOMMU is 1 when the domain enforces snooping (VT-d with snoop control)', () => {
    const f = fixture({ unit: { profile: 'vtd' } });
    assert.equal(ok(f.p.ioctl(f.c, VFIO_CHECK_EXTENSION, 4n)), 1);
    assert.equal(iommuOf(f).domains[0]!.enforceCacheCoherency, true);
  });

  it('TYPE1_NESTING is offered but cannot be set: VT-d has no enable_nesting (EINVAL), SMMUv3 domains are finalised (EPERM)', () => {
    for (const [unit, errno] of [[ORACLE_VTD, Errno.EINVAL], [{ profile: 'smmuv3' } as HwIommuOptions, Errno.EPERM]] as const) {
      const m = new Machine();
      const t = type1Of(m);
      const dev = plug(m, m.addIommu(unit), '0000:00:03.0');
      const p = m.spawn();
      const c = p.openOrThrow('/dev/vfio/vfio');
      const g = p.openOrThrow(groupPath(dev));
      ok(setContainer(p, g, c));
      const before = state(m);
      refused(m, before, p.ioctl(c, VFIO_SET_IOMMU, BigInt(VFIO_TYPE1_NESTING_IOMMU)), errno, `nesting on ${unit.profile}`);
      assert.equal(t.states().length, 0, 'the failed state is released');
      assert.equal(dev.group!.domain, dev.group!.blockingDomain);
      ok(p.ioctl(c, VFIO_SET_IOMMU, BigInt(VFIO_TYPE1v2_IOMMU)));
      check(m);
    }
  });

  it('open() takes TYPE1, TYPE1v2 and TYPE1_NESTING only', () => {
    const m = new Machine();
    const t = type1Of(m);
    const p = m.spawn();
    assert.throws(() => t.open(2n, p), (e: { errno?: number }) => e.errno === Errno.EINVAL);
    assert.equal(t.states().length, 0);
  });
});

describe('type1: GET_INFO', () => {
  it('a too small argsz only learns the size the chain needs; a large one gets the chain (oracle bytes)', () => {
    const f = fixture();
    const info = (argsz: number): string => {
      const b = new Uint8Array(200).fill(0xee);
      new DataView(b.buffer).setUint32(0, argsz, true);
      ok(f.p.ioctl(f.c, VFIO_IOMMU_GET_INFO, b));
      return Buffer.from(b.subarray(0, argsz > 160 ? 160 : argsz < 24 ? 24 : argsz + 8)).toString('hex');
    };
    const head = ['78000000', '03000000', '0010204000000000'];
    assert.equal(info(16), [...head, 'ee'.repeat(8)].join(''));
    assert.equal(info(23), [...head, '00000000000000ee'].join(''));
    assert.equal(info(40), [...head, '0000000000000000', 'ee'.repeat(24)].join(''));
    const chain = [
      ['0200010038000000', '0000000000000000', '0010000000000000', '0000001000000000'],
      ['0300010048000000', 'ffff000000000000'],
      ['0100010000000000', '0200000000000000', '0000000000000000', 'ffffdffe00000000', '0000f0fe00000000', 'ffffffff7f000000'],
    ];
    assert.equal(info(200).slice(0, 240), ['c8000000', '03000000', '0010204000000000', '1800000000000000', ...chain.flat()].join(''));
  });

  it('two domains report the common page sizes and the IOVA list minus both reserved windows', () => {
    const f = fixture();
    const smmu = f.m.addIommu({ profile: 'smmuv3' });
    const other = plug(f.m, smmu, '0000:00:04.0');
    const g2 = f.p.openOrThrow(groupPath(other));
    ok(setContainer(f.p, g2, f.c));
    const s = iommuOf(f);
    assert.equal(s.domains.length, 2);
    assert.equal(s.pgsizeBitmap, 0x40201000n);
    assert.deepEqual(
      s.iovaList.map((r) => [r.start, r.last]),
      [
        [0n, 0x7ffffffn],
        [0x8100000n, 0xfedfffffn],
        [0xfef00000n, (1n << 39n) - 1n],
      ],
    );
    const b = new Uint8Array(200);
    new DataView(b.buffer).setUint32(0, 200, true);
    ok(f.p.ioctl(f.c, VFIO_IOMMU_GET_INFO, b));
    const dv = new DataView(b.buffer);
    assert.equal(dv.getUint32(72, true), 0x00010001, 'IOVA_RANGE id 1 version 1 at 72');
    assert.equal(dv.getUint32(80, true), 3, 'nr_iovas');
    assert.equal(dv.getUint32(0, true), 200, 'a large enough argsz is left alone');
  });
});

describe('type1: MAP_DMA', () => {
  it('device DMA reaches the pinned pages; after UNMAP_DMA the same DMA faults', () => {
    const f = fixture();
    const data = pattern(5000, 3);
    ok(f.p.poke(f.buf + PAGE, data));
    ok(mapDma(f, f.buf, IOVA, 4n * PAGE));
    const rd = f.dev.dmaRead(IOVA + PAGE, data.length);
    assert.ok(rd.ok);
    assert.deepEqual(rd.data, data);
    const out = pattern(3 * 4096 - 100, 9);
    assert.ok(f.dev.dmaWrite(IOVA + 100n, out).ok);
    assert.deepEqual(f.p.peek(f.buf + 100n, out.length), out);
    check(f.m);
    const u = unmapDma(f, IOVA, 4n * PAGE);
    ok(u);
    assert.equal(u.size, 4n * PAGE);
    const faults = f.dev.faults.length;
    const mem = f.p.peek(f.buf + PAGE, 8);
    assert.equal(f.dev.dmaRead(IOVA, 4).ok, false);
    assert.equal(f.dev.dmaWrite(IOVA + PAGE, pattern(8, 1)).ok, false);
    assert.equal(f.dev.faults.length, faults + 2);
    assert.deepEqual(f.p.peek(f.buf + PAGE, 8), mem, 'memory untouched by the faulting write');
    check(f.m);
  });

  it('locked_vm counts every mapping, the same pages twice too, and unmapping gives it back (oracle)', () => {
    const f = fixture();
    ok(mapDma(f, f.buf, IOVA, 4n * PAGE));
    assert.equal(f.p.mm.lockedVm, 4);
    ok(mapDma(f, f.buf, IOVA + 16n * PAGE, 4n * PAGE));
    assert.equal(f.p.mm.lockedVm, 8);
    assert.equal(f.p.mm.pinnedVm, 0, 'type1 charges locked_vm only');
    for (let i = 0n; i < 4n; i++) assert.equal(f.p.mm.frameAt(f.buf + i * PAGE, false).pins, 2);
    ok(unmapDma(f, IOVA, 4n * PAGE));
    assert.equal(f.p.mm.lockedVm, 4);
    ok(unmapDma(f, 0n, 0n, VFIO_DMA_UNMAP_FLAG_ALL));
    assert.equal(f.p.mm.lockedVm, 0);
    check(f.m);
  });

  it('refusals in vfio_dma_do_map order change nothing (oracle errnos)', () => {
    const f = fixture();
    ok(mapDma(f, f.buf, IOVA, 4n * PAGE));
    const hole = f.p.mmapOrThrow(4n * PAGE);
    ok(f.p.munmap(hole + 2n * PAGE, 2n * PAGE));
    const cases: [string, () => SysResult, number][] = [
      ['argsz 31', () => mapDma(f, f.buf, IOVA, PAGE, RW, 31), Errno.EINVAL],
      ['unknown flag', () => mapDma(f, f.buf, IOVA, PAGE, RW | 8), Errno.EINVAL],
      ['no READ or WRITE', () => mapDma(f, f.buf, IOVA, PAGE, 0), Errno.EINVAL],
      ['READ with VADDR', () => mapDma(f, f.buf, IOVA, PAGE, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_VADDR), Errno.EINVAL],
      ['size 0', () => mapDma(f, f.buf, 0x400000n, 0n), Errno.EINVAL],
      ['unaligned iova', () => mapDma(f, f.buf, 0x400800n, PAGE), Errno.EINVAL],
      ['unaligned vaddr', () => mapDma(f, f.buf + 0x10n, 0x400000n, PAGE), Errno.EINVAL],
      ['unaligned size', () => mapDma(f, f.buf, 0x400000n, PAGE + 1n), Errno.EINVAL],
      ['iova wraps', () => mapDma(f, f.buf, 0xfffffffffffff000n, 2n * PAGE), Errno.EINVAL],
      ['vaddr wraps', () => mapDma(f, 0xfffffffffffff000n, 0x400000n, 2n * PAGE), Errno.EINVAL],
      ['same range', () => mapDma(f, f.buf, IOVA, 4n * PAGE), Errno.EEXIST],
      ['overlapping tail', () => mapDma(f, f.buf, IOVA + 3n * PAGE, 4n * PAGE), Errno.EEXIST],
      ['overlapping head', () => mapDma(f, f.buf, IOVA - PAGE, 2n * PAGE), Errno.EEXIST],
      ['the MSI window', () => mapDma(f, f.buf, 0xfee00000n, PAGE), Errno.EINVAL],
      ['the last IOVA page', () => mapDma(f, f.buf, 0xfffffffffffff000n, PAGE), Errno.EINVAL],
      ['past the 39-bit aperture', () => mapDma(f, f.buf, 1n << 39n, PAGE), Errno.EINVAL],
      ['half unmapped memory', () => mapDma(f, hole, 0x400000n, 4n * PAGE), Errno.EFAULT],
      ['unmapped memory', () => mapDma(f, hole + 2n * PAGE, 0x400000n, PAGE), Errno.EFAULT],
    ];
    for (const [what, call, errno] of cases) {
      const before = state(f.m);
      refused(f.m, before, call(), errno, what);
    }
    ok(mapDma(f, f.buf, 0xfedff000n, PAGE));
    ok(mapDma(f, f.buf, (1n << 39n) - PAGE, PAGE));
    check(f.m);
  });

  it('over RLIMIT_MEMLOCK without CAP_IPC_LOCK is ENOMEM; with it the pages are charged anyway (oracle)', () => {
    const f = fixture({ spawn: { memlock: 16n * PAGE } });
    ok(mapDma(f, f.buf, IOVA, 10n * PAGE));
    ok(mapDma(f, f.buf + 16n * PAGE, 0x500000n, 16n * PAGE));
    assert.equal(f.p.mm.lockedVm, 26, 'CAP_IPC_LOCK skips the limit, not the charge');
    dropCap(f.p, CAP_IPC_LOCK);
    let before = state(f.m);
    refused(f.m, before, mapDma(f, f.buf + 40n * PAGE, 0x600000n, PAGE), Errno.ENOMEM, 'over the limit');
    ok(unmapDma(f, 0x500000n, 16n * PAGE));
    assert.equal(f.p.mm.lockedVm, 10);
    before = state(f.m);
    refused(f.m, before, mapDma(f, f.buf + 16n * PAGE, 0x500000n, 7n * PAGE), Errno.ENOMEM, '10 + 7 > 16');
    ok(mapDma(f, f.buf + 16n * PAGE, 0x500000n, 6n * PAGE));
    assert.equal(f.p.mm.lockedVm, 16);
    check(f.m);
  });

  it('the first page that fails decides between ENOMEM and EFAULT', () => {
    const f = fixture({ spawn: { memlock: 4n * PAGE, caps: [] } });
    const va = f.p.mmapOrThrow(8n * PAGE);
    ok(f.p.munmap(va + 3n * PAGE, PAGE));
    let before = state(f.m);
    refused(f.m, before, mapDma(f, va, IOVA, 8n * PAGE), Errno.EFAULT, 'page 3 unmapped, limit reached at page 4');
    f.p.rlimits.memlock = 2n * PAGE;
    before = state(f.m);
    refused(f.m, before, mapDma(f, va, IOVA, 8n * PAGE), Errno.ENOMEM, 'limit reached at page 2, before the hole');
    assert.equal(f.p.mm.lockedVm, 0);
  });

  it('a read-only VMA maps for device reads only; device writes to it fault (oracle)', () => {
    const f = fixture();
    const ro = f.p.mmapOrThrow(2n * PAGE, PROT_READ);
    const before = state(f.m);
    refused(f.m, before, mapDma(f, ro, 0x300000n, 2n * PAGE), Errno.EFAULT, 'READ|WRITE of a read-only VMA');
    refused(f.m, before, mapDma(f, ro, 0x300000n, 2n * PAGE, VFIO_DMA_MAP_FLAG_WRITE), Errno.EFAULT, 'WRITE of a read-only VMA');
    ok(mapDma(f, ro, 0x300000n, 2n * PAGE, VFIO_DMA_MAP_FLAG_READ));
    assert.ok(f.dev.dmaRead(0x300000n, 16).ok);
    assert.equal(f.dev.dmaWrite(0x300000n, pattern(4, 0)).ok, false);
    check(f.m);
  });

  it('dma_entry_limit: ENOSPC comes after the overlap check and before the IOVA check; DMA_AVAIL counts down (oracle)', () => {
    const f = fixture({ params: { dmaEntryLimit: 2 } });
    ok(mapDma(f, f.buf, IOVA, PAGE));
    ok(mapDma(f, f.buf, IOVA + PAGE, PAGE));
    const before = state(f.m);
    refused(f.m, before, mapDma(f, f.buf, IOVA + 2n * PAGE, PAGE), Errno.ENOSPC, 'third mapping');
    refused(f.m, before, mapDma(f, f.buf, IOVA, PAGE), Errno.EEXIST, 'overlap first');
    refused(f.m, before, mapDma(f, f.buf, 0xfee00000n, PAGE), Errno.ENOSPC, 'ENOSPC before the MSI window check');
    assert.equal(iommuOf(f).dmaAvail, 0);
    ok(unmapDma(f, IOVA, PAGE));
    ok(mapDma(f, f.buf, IOVA + 2n * PAGE, PAGE));
  });

  it('huge pages go in as 2 MiB IOMMU pages, or 4 KiB ones with disable_hugepages', () => {
    for (const disableHugepages of [false, true]) {
      const f = fixture({ unit: { profile: 'vtd' }, params: { disableHugepages } });
      const huge = f.p.mmapOrThrow(2n << 20n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB);
      ok(mapDma(f, huge, 0x40000000n, 2n << 20n));
      const d = iommuOf(f).domains[0]!.domain as unknown as { pt: { translate(iova: bigint): { pageSize: bigint } | null } };
      assert.equal(d.pt.translate(0x40000000n + 0x5000n)?.pageSize, disableHugepages ? PAGE : 2n << 20n);
      ok(unmapDma(f, 0x40000000n, 2n << 20n));
      assert.equal(d.pt.translate(0x40000000n), null);
      check(f.m);
    }
  });
});

describe('type1: UNMAP_DMA', () => {
  it('TYPE1v2 refuses to cut a mapping and writes nothing back (oracle)', () => {
    const f = fixture();
    ok(mapDma(f, f.buf, IOVA, 4n * PAGE));
    ok(mapDma(f, f.buf + 4n * PAGE, IOVA + 4n * PAGE, 2n * PAGE));
    const before = state(f.m);
    for (const [iova, size] of [[IOVA + PAGE, PAGE], [IOVA, PAGE], [IOVA, 5n * PAGE]] as const) {
      const u = unmapDma(f, iova, size);
      refused(f.m, before, u, Errno.EINVAL, `[${hx(iova)}, +${hx(size)})`);
      assert.equal(u.size, size, 'size is not written back');
    }
    const gap = unmapDma(f, IOVA - 16n * PAGE, 22n * PAGE);
    ok(gap);
    assert.equal(gap.size, 6n * PAGE);
    assert.equal(f.p.mm.lockedVm, 0);
    check(f.m);
  });

  it('TYPE1 (v1) unmaps whole mappings whose first page the range covers and skips a range starting inside one (oracle)', () => {
    const f = fixture({ type: VFIO_TYPE1_IOMMU });
    ok(mapDma(f, f.buf, IOVA, 4n * PAGE));
    ok(mapDma(f, f.buf + 4n * PAGE, IOVA + 4n * PAGE, 2n * PAGE));
    const sizes = [
      [IOVA + PAGE, PAGE],
      [IOVA + 3n * PAGE, 2n * PAGE],
      [IOVA - PAGE, 2n * PAGE],
      [IOVA + 4n * PAGE, PAGE],
    ].map(([iova, size]) => {
      const u = unmapDma(f, iova!, size!);
      ok(u);
      return u.size;
    });
    assert.deepEqual(sizes, [0n, 0n, 4n * PAGE, 2n * PAGE]);
    assert.equal(f.p.mm.lockedVm, 0);
  });

  it('a range ending exactly at 2^64 passes the wrap check but unmaps nothing (oracle)', () => {
    const f = fixture();
    ok(mapDma(f, f.buf, IOVA, 4n * PAGE));
    const u = unmapDma(f, IOVA, (1n << 64n) - IOVA);
    ok(u);
    assert.equal(u.size, 0n);
    assert.equal([...iommuOf(f).dmas].length, 1);
  });

  it('argument refusals (oracle)', () => {
    const f = fixture();
    ok(mapDma(f, f.buf, IOVA, 4n * PAGE));
    const bm = f.buf + 60n * PAGE;
    const before = state(f.m);
    const cases: [string, () => SysResult, number][] = [
      ['argsz 23', () => unmapDma(f, IOVA, PAGE, 0, { argsz: 23 }), Errno.EINVAL],
      ['unknown flag', () => unmapDma(f, IOVA, 4n * PAGE, 8), Errno.EINVAL],
      ['DIRTY|ALL', () => unmapDma(f, 0n, 0n, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_ALL), Errno.EINVAL],
      ['DIRTY|VADDR', () => unmapDma(f, IOVA, 4n * PAGE, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_VADDR), Errno.EINVAL],
      ['DIRTY without room for the bitmap', () => unmapDma(f, IOVA, 4n * PAGE, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, { argsz: 24 }), Errno.EINVAL],
      ['DIRTY while not tracking', () => unmapDma(f, IOVA, 4n * PAGE, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, { bitmap: { pgsize: PAGE, size: 8n, data: bm } }), Errno.EINVAL],
      ['DIRTY into kernel memory', () => unmapDma(f, IOVA, 4n * PAGE, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, { bitmap: { pgsize: PAGE, size: 8n, data: 0xffff800000000000n } }), Errno.EINVAL],
      ['DIRTY bitmap size 0', () => unmapDma(f, IOVA, 4n * PAGE, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, { bitmap: { pgsize: PAGE, size: 0n, data: bm } }), Errno.EINVAL],
      ['DIRTY pgsize 0', () => unmapDma(f, IOVA, 4n * PAGE, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, { bitmap: { pgsize: 0n, size: 8n, data: bm } }), Errno.EINVAL],
      ['unaligned iova', () => unmapDma(f, IOVA + 1n, PAGE), Errno.EINVAL],
      ['size 0', () => unmapDma(f, IOVA, 0n), Errno.EINVAL],
      ['unaligned size', () => unmapDma(f, IOVA, PAGE + 1n), Errno.EINVAL],
      ['ALL with an iova', () => unmapDma(f, PAGE, 0n, VFIO_DMA_UNMAP_FLAG_ALL), Errno.EINVAL],
      ['ALL with a size', () => unmapDma(f, 0n, PAGE, VFIO_DMA_UNMAP_FLAG_ALL), Errno.EINVAL],
    ];
    for (const [what, call, errno] of cases) refused(f.m, before, call(), errno, what);
  });
});

describe('type1: VFIO_UPDATE_VADDR', () => {
  it('invalidated vaddrs keep the pins, block new groups (EBUSY), and are restored by MAP_DMA FLAG_VADDR', () => {
    const f = fixture();
    ok(mapDma(f, f.buf, IOVA, 4n * PAGE));
    const inv = unmapDma(f, IOVA, 4n * PAGE, VFIO_DMA_UNMAP_FLAG_VADDR);
    ok(inv);
    assert.equal(inv.size, 4n * PAGE);
    assert.equal(f.p.mm.lockedVm, 4);
    assert.ok(f.dev.dmaRead(IOVA, 4).ok, 'the device keeps its translation');
    const other = plug(f.m, f.unit, '0000:00:04.0');
    const g2 = f.p.openOrThrow(groupPath(other));
    const before = state(f.m);
    refused(f.m, before, setContainer(f.p, g2, f.c), Errno.EBUSY, 'a group joining while a vaddr is invalid');
    assert.equal(other.group!.owner, null, 'the refused group is given back');
    ok(mapDma(f, f.buf + 32n * PAGE, IOVA, 4n * PAGE, VFIO_DMA_MAP_FLAG_VADDR));
    assert.equal([...iommuOf(f).dmas][0]!.vaddr, f.buf + 32n * PAGE);
    ok(setContainer(f.p, g2, f.c));
    check(f.m);
  });

  it('another process restoring the vaddr takes over the locked_vm charge', () => {
    const f = fixture();
    ok(mapDma(f, f.buf, IOVA, 4n * PAGE));
    ok(unmapDma(f, IOVA, 4n * PAGE, VFIO_DMA_UNMAP_FLAG_VADDR));
    const q = f.m.spawn();
    const dma = [...iommuOf(f).dmas][0]!;
    iommuOf(f).map(q, IOVA, 0x10000000n, 4n * PAGE, 0, true);
    assert.equal(q.mm.lockedVm, 4);
    assert.equal(f.p.mm.lockedVm, 0);
    assert.equal(dma.mm, q.mm);
    ok(unmapDma(f, 0n, 0n, VFIO_DMA_UNMAP_FLAG_ALL));
    assert.equal(q.mm.lockedVm, 0);
    check(f.m);
  });
});

describe('type1: groups and domains', () => {
  const variants: [string, HwIommuOptions | null, number][] = [
    ['one domain', null, 1],
    ['a second group sharing the VT-d domain', ORACLE_VTD, 1],
    ['a second group in an SMMUv3 domain', { profile: 'smmuv3', verifyIotlb: true }, 2],
  ];
  for (const [name, second, domains] of variants) {
    it(`map, DMA from every device, unmap, faults: ${name}`, () => {
      const f = fixture();
      const devs = [f.dev];
      if (second) {
        const unit = second === ORACLE_VTD ? f.unit : f.m.addIommu(second);
        const d = plug(f.m, unit, '0000:00:04.0');
        ok(setContainer(f.p, f.p.openOrThrow(groupPath(d)), f.c));
        devs.push(d);
      }
      assert.equal(iommuOf(f).domains.length, domains);
      ok(f.p.poke(f.buf + 2n * PAGE, pattern(64, 7)));
      ok(mapDma(f, f.buf, IOVA, 8n * PAGE));
      for (const d of devs) assert.deepEqual(dmaData(d, IOVA + 2n * PAGE, 64), pattern(64, 7));
      assert.equal(f.p.mm.lockedVm, 8);
      check(f.m);
      ok(unmapDma(f, IOVA, 8n * PAGE));
      for (const d of devs) assert.equal(d.dmaRead(IOVA + 2n * PAGE, 4).ok, false);
      assert.equal(f.p.mm.lockedVm, 0);
      check(f.m);
    });
  }

  it('domains differing in cache-coherency enforcement are not shared; DMA_CC_IOMMU needs all of them (0)', () => {
    const f = fixture({ unit: { profile: 'vtd' } });
    assert.equal(ok(f.p.ioctl(f.c, VFIO_CHECK_EXTENSION, 4n)), 1);
    const other = plug(f.m, f.m.addIommu(ORACLE_VTD), '0000:00:04.0');
    ok(setContainer(f.p, f.p.openOrThrow(groupPath(other)), f.c));
    assert.deepEqual(iommuOf(f).domains.map((d) => d.enforceCacheCoherency), [false, true]);
    assert.equal(ok(f.p.ioctl(f.c, VFIO_CHECK_EXTENSION, 4n)), 0);
  });

  it('a second group behind the same driver shares the domain; it sees existing mappings', () => {
    const f = fixture();
    ok(mapDma(f, f.buf, IOVA, 2n * PAGE));
    const other = plug(f.m, f.unit, '0000:00:04.0');
    const g2 = f.p.openOrThrow(groupPath(other));
    ok(setContainer(f.p, g2, f.c));
    const s = iommuOf(f);
    assert.equal(s.domains.length, 1);
    assert.equal(other.group!.domain, f.dev.group!.domain);
    ok(f.p.poke(f.buf, pattern(16, 5)));
    assert.deepEqual(dmaData(other, IOVA, 16), pattern(16, 5));
    check(f.m);
  });

  it('a group of another driver gets its own domain with every mapping replayed, and leaves it again', () => {
    const f = fixture();
    ok(mapDma(f, f.buf, IOVA, 2n * PAGE));
    ok(mapDma(f, f.buf + 8n * PAGE, 0x10000000n, PAGE, VFIO_DMA_MAP_FLAG_READ));
    const other = plug(f.m, f.m.addIommu({ profile: 'smmuv3' }), '0000:00:04.0');
    const g2 = f.p.openOrThrow(groupPath(other));
    ok(setContainer(f.p, g2, f.c));
    assert.equal(iommuOf(f).domains.length, 2);
    ok(f.p.poke(f.buf + 8n * PAGE, pattern(8, 1)));
    assert.deepEqual(dmaData(other, 0x10000000n, 8), pattern(8, 1));
    assert.equal(other.dmaWrite(0x10000000n, pattern(8, 0)).ok, false, 'read-only mapping in the replayed domain too');
    assert.equal(f.p.mm.lockedVm, 3, 'replay pins nothing new');
    ok(f.p.close(g2));
    const s = iommuOf(f);
    assert.equal(s.domains.length, 1);
    assert.deepEqual(s.iovaList.map((r) => [r.start, r.last]), [[0n, 0xfedfffffn], [0xfef00000n, (1n << 39n) - 1n]]);
    assert.equal(other.dmaRead(IOVA, 4).ok, false);
    assert.ok(f.dev.dmaRead(IOVA, 4).ok);
    check(f.m);
  });

  it("a group whose reserved region covers a mapping, or whose aperture leaves one out, is refused and nothing changes", () => {
    const f = fixture({ unit: { profile: 'smmuv3', verifyIotlb: true } });
    ok(mapDma(f, f.buf, 0xfee00000n, PAGE));
    const vtd = f.m.addIommu(ORACLE_VTD);
    const a = plug(f.m, vtd, '0000:00:04.0');
    const ga = f.p.openOrThrow(groupPath(a));
    let before = state(f.m);
    refused(f.m, before, setContainer(f.p, ga, f.c), Errno.EINVAL, 'the VT-d MSI window over a mapping');
    assert.equal(a.group!.domain, a.group!.defaultDomain, 'the group is back on its default domain');
    ok(unmapDma(f, 0xfee00000n, PAGE));
    ok(mapDma(f, f.buf, 1n << 40n, PAGE));
    before = state(f.m);
    refused(f.m, before, setContainer(f.p, ga, f.c), Errno.EINVAL, "a 39-bit aperture under a mapping at 2^40");
    ok(unmapDma(f, 1n << 40n, PAGE));
    ok(setContainer(f.p, ga, f.c));
    check(f.m);
  });

  it('MSIs that are not isolated: EPERM unless allow_unsafe_interrupts', () => {
    const m = new Machine();
    const t = type1Of(m);
    const dev = plug(m, m.addIommu({ ...ORACLE_VTD, interruptRemapping: false }), '0000:00:03.0');
    const p = m.spawn();
    const c = p.openOrThrow('/dev/vfio/vfio');
    const g = p.openOrThrow(groupPath(dev));
    ok(setContainer(p, g, c));
    const before = state(m);
    refused(m, before, p.ioctl(c, VFIO_SET_IOMMU, BigInt(VFIO_TYPE1v2_IOMMU)), Errno.EPERM, 'no interrupt remapping');
    t.params.allowUnsafeInterrupts = true;
    ok(p.ioctl(c, VFIO_SET_IOMMU, BigInt(VFIO_TYPE1v2_IOMMU)));
    check(m);
  });

  it('the last group leaving unmaps and unpins everything; closing the container frees the rest', () => {
    const f = fixture();
    ok(mapDma(f, f.buf, IOVA, 4n * PAGE));
    ok(f.p.close(f.g));
    assert.equal(f.p.mm.lockedVm, 0);
    assert.equal(f.dev.group!.domain, f.dev.group!.defaultDomain);
    assert.equal(f.type1.states().length, 0, 'the container dropped its backend with its last group');
    check(f.m);
    const g = f.p.openOrThrow(groupPath(f.dev));
    ok(setContainer(f.p, g, f.c));
    ok(f.p.ioctl(f.c, VFIO_SET_IOMMU, BigInt(VFIO_TYPE1v2_IOMMU)));
    ok(mapDma(f, f.buf, IOVA, 4n * PAGE));
    ok(f.p.close(f.c));
    assert.equal(f.p.mm.lockedVm, 4, 'the group still holds the container');
    ok(f.p.close(g));
    assert.equal(f.p.mm.lockedVm, 0);
    check(f.m);
  });

  it('a process exit unpins through the container release', () => {
    const f = fixture();
    ok(mapDma(f, f.buf, IOVA, 4n * PAGE));
    f.p.exit();
    assert.equal(f.type1.states().length, 0);
    check(f.m);
  });
});

describe('type1: fault injection', () => {
  it('failing the Nth allocation of MAP_DMA or of a group attach with replay leaves everything as it was', () => {
    const f = fixture();
    ok(mapDma(f, f.buf, IOVA, 4n * PAGE));
    const other = plug(f.m, f.m.addIommu({ profile: 'smmuv3' }), '0000:00:04.0');
    const g2 = f.p.openOrThrow(groupPath(other));
    for (const [what, call] of [
      ['MAP_DMA', () => mapDma(f, f.buf + 8n * PAGE, 0x800000n, 4n * PAGE)],
      ['SET_CONTAINER', () => setContainer(f.p, g2, f.c)],
    ] as const) {
      let n = 1;
      for (;;) {
        const before = state(f.m);
        f.p.setFailNth(n);
        const r = call();
        f.p.failNth = 0;
        if (!r.errno) break;
        refused(f.m, before, r, r.errno, `${what} with fail-nth ${n}`);
        n++;
      }
      assert.ok(n > 1, `${what} has at least one fault site`);
    }
    assert.equal(iommuOf(f).domains.length, 2);
    check(f.m);
  });
});

describe('type1: ioctl table', () => {
  it('every ioctl refuses an argsz below its minimum (EINVAL); others are ENOTTY (oracle)', () => {
    const f = fixture();
    for (const [cmd, row] of TYPE1_IOCTLS) {
      const b = new Uint8Array(64);
      new DataView(b.buffer).setUint32(0, row.minsz - 1, true);
      const r = f.p.ioctl(f.c, cmd, b);
      assert.match(fails(r, Errno.EINVAL), /argsz/, row.name);
    }
    fails(f.p.ioctl(f.c, VFIO_IOMMU_ENABLE), Errno.ENOTTY);
    const v1 = fixture({ type: VFIO_TYPE1_IOMMU });
    fails(dirtyPages(v1, 0), Errno.EACCES);
  });
});

/** Verbatim output of the probe (/tmp probe; its C source mirrors `transcript` below) on Linux 6.12 under ../shared/oracle/run.sh -v. */
const ORACLE = `
==setup
nogroup CHECK_EXTENSION 0..11: 0 1 0 1 0 0 1 0 0 1 0 0
SET_CONTAINER                                ret=0 errno=0
group CHECK_EXTENSION 0..11: 0 1 0 1 0 0 1 0 0 1 0 0
GET_INFO before SET_IOMMU                    ret=-1 errno=EINVAL
SET_IOMMU 6 nesting                          ret=-1 errno=EINVAL
SET_IOMMU 99                                 ret=-1 errno=ENODEV
SET_IOMMU 2 spapr                            ret=-1 errno=ENODEV
SET_IOMMU 3                                  ret=0 errno=0
SET_IOMMU 3 again                            ret=-1 errno=EINVAL
v2 CHECK_EXTENSION 0..11: 0 1 0 1 0 0 1 0 0 1 1 0
ioctl VFIO_IOMMU_ENABLE                      ret=-1 errno=ENOTTY
ioctl 0x3b99                                 ret=-1 errno=ENOTTY
GET_INFO argsz 15                            ret=-1 errno=EINVAL
GET_INFO argsz 16                            ret=0 errno=0
  info: 7800000003000000 0010204000000000 eeeeeeeeeeeeeeee
GET_INFO argsz 24                            ret=0 errno=0
  info: 7800000003000000 0010204000000000 0000000000000000 eeeeeeeeeeeeeeee
GET_INFO argsz 40                            ret=0 errno=0
  info: 7800000003000000 0010204000000000 0000000000000000 eeeeeeeeeeeeeeee eeeeeeeeeeeeeeee eeeeeeeeeeeeeeee
GET_INFO argsz 23                            ret=0 errno=0
  info: 7800000003000000 0010204000000000 00000000000000ee
GET_INFO argsz 500                           ret=0 errno=0
  info: f401000003000000 0010204000000000 1800000000000000 0200010038000000 0000000000000000 0010000000000000 0000001000000000 0300010048000000 ffff000000000000 0100010000000000 0200000000000000 0000000000000000 ffffdffe00000000 0000f0fe00000000 ffffffff7f000000 eeeeeeeeeeeeeeee eeeeeeeeeeeeeeee eeeeeeeeeeeeeeee eeeeeeeeeeeeeeee eeeeeeeeeeeeeeee
MAP 4p                                       ret=0 errno=0
MAP 1p                                       ret=0 errno=0
GET_INFO argsz 500                           ret=0 errno=0
  info: f401000003000000 0010204000000000 1800000000000000 0200010038000000 0000000000000000 0010000000000000 0000001000000000 0300010048000000 fdff000000000000 0100010000000000 0200000000000000 0000000000000000 ffffdffe00000000 0000f0fe00000000 ffffffff7f000000 eeeeeeeeeeeeeeee eeeeeeeeeeeeeeee eeeeeeeeeeeeeeee eeeeeeeeeeeeeeee eeeeeeeeeeeeeeee
==map
SET_CONTAINER                                ret=0 errno=0
SET_IOMMU 3                                  ret=0 errno=0
VmLck 0
MAP argsz 31                                 ret=-1 errno=EINVAL
MAP flags 8                                  ret=-1 errno=EINVAL
MAP flags 0                                  ret=-1 errno=EINVAL
MAP READ|VADDR                               ret=-1 errno=EINVAL
MAP size 0                                   ret=-1 errno=EINVAL
MAP iova unaligned                           ret=-1 errno=EINVAL
MAP vaddr unaligned                          ret=-1 errno=EINVAL
MAP size unaligned                           ret=-1 errno=EINVAL
MAP iova wraps                               ret=-1 errno=EINVAL
MAP iova last page                           ret=-1 errno=EINVAL
MAP vaddr wraps                              ret=-1 errno=EINVAL
MAP msi window                               ret=-1 errno=EINVAL
MAP just below msi                           ret=0 errno=0
MAP 1<<39 - page                             ret=0 errno=0
MAP 1<<39                                    ret=-1 errno=EINVAL
MAP 1<<48 - page                             ret=-1 errno=EINVAL
MAP 1<<48                                    ret=-1 errno=EINVAL
UNMAP 0xfedff000                             ret=0 errno=0
  size 0x1000
UNMAP 1<<39 - page                           ret=0 errno=0
  size 0x1000
UNMAP 1<<48 - page                           ret=0 errno=0
  size 0x0
VmLck 0
MAP 4p                                       ret=0 errno=0
VmLck 16
MAP same                                     ret=-1 errno=EEXIST
MAP overlap tail                             ret=-1 errno=EEXIST
MAP overlap head                             ret=-1 errno=EEXIST
MAP same va other iova                       ret=0 errno=0
VmLck 32
MAP unmapped half                            ret=-1 errno=EFAULT
MAP unmapped                                 ret=-1 errno=EFAULT
VmLck 32
MAP ro vma RW                                ret=-1 errno=EFAULT
MAP ro vma READ                              ret=0 errno=0
MAP ro vma WRITE other                       ret=-1 errno=EFAULT
VmLck 40
setrlimit MEMLOCK 16 pages                   ret=0 errno=0
MAP 16p with cap                             ret=0 errno=0
VmLck 104
capset drop CAP_IPC_LOCK                     ret=0 errno=0
MAP 1p over limit                            ret=-1 errno=ENOMEM
UNMAP 0x500000 16p                           ret=0 errno=0
  size 0x10000
VmLck 40
MAP 16p no cap (6 locked)                    ret=-1 errno=ENOMEM
VmLck 40
MAP 10p no cap (6 locked)                    ret=-1 errno=ENOMEM
VmLck 40
MAP 1p same pages again                      ret=0 errno=0
VmLck 44
UNMAP ALL                                    ret=0 errno=0
  size 0xb000
VmLck 0
==unmap
SET_CONTAINER                                ret=0 errno=0
SET_IOMMU 3                                  ret=0 errno=0
MAP A 4p                                     ret=0 errno=0
MAP B 2p                                     ret=0 errno=0
MAP C 1p                                     ret=0 errno=0
UNMAP argsz 23                               ret=-1 errno=EINVAL
UNMAP flags 8                                ret=-1 errno=EINVAL
UNMAP DIRTY|ALL                              ret=-1 errno=EINVAL
UNMAP DIRTY|VADDR                            ret=-1 errno=EINVAL
UNMAP DIRTY argsz 24                         ret=-1 errno=EINVAL
UNMAP DIRTY not tracking                     ret=-1 errno=EINVAL
UNMAP DIRTY bad data ptr                     ret=-1 errno=EINVAL
UNMAP DIRTY bitmap size 0                    ret=-1 errno=EINVAL
UNMAP DIRTY pgsize 0                         ret=-1 errno=EINVAL
UNMAP iova unaligned                         ret=-1 errno=EINVAL
UNMAP size 0                                 ret=-1 errno=EINVAL
UNMAP size unaligned                         ret=-1 errno=EINVAL
UNMAP wraps                                  ret=0 errno=0
UNMAP ALL iova 1                             ret=-1 errno=EINVAL
UNMAP ALL size 1                             ret=-1 errno=EINVAL
UNMAP bisect A middle                        ret=-1 errno=EINVAL
  size 0x1000
UNMAP A head only                            ret=-1 errno=EINVAL
  size 0x1000
UNMAP A+B partially                          ret=-1 errno=EINVAL
  size 0x5000
UNMAP nothing there                          ret=0 errno=0
  size 0x0
UNMAP gap around B                           ret=0 errno=0
  size 0x6000
UNMAP ALL                                    ret=0 errno=0
  size 0x1000
UNMAP ALL empty                              ret=0 errno=0
  size 0x0
==vaddr
SET_CONTAINER                                ret=0 errno=0
SET_IOMMU 3                                  ret=0 errno=0
MAP A 4p                                     ret=0 errno=0
MAP B 2p                                     ret=0 errno=0
VmLck 24
UNMAP VADDR A                                ret=0 errno=0
  size 0x4000
VmLck 24
UNMAP VADDR A+B                              ret=-1 errno=EINVAL
  size 0x6000
UNMAP VADDR B                                ret=0 errno=0
  size 0x2000
MAP VADDR nothing there                      ret=-1 errno=ENOENT
MAP VADDR A wrong size                       ret=-1 errno=EINVAL
MAP VADDR A+8                                ret=0 errno=0
MAP VADDR A again (valid)                    ret=-1 errno=EINVAL
MAP new C while B invalid                    ret=0 errno=0
UNMAP ALL|VADDR                              ret=-1 errno=EINVAL
  size 0x0
UNMAP B (invalid vaddr)                      ret=0 errno=0
  size 0x2000
UNMAP ALL|VADDR again                        ret=0 errno=0
  size 0x5000
VmLck 20
UNMAP ALL                                    ret=0 errno=0
  size 0x5000
VmLck 0
==dirty
SET_CONTAINER                                ret=0 errno=0
SET_IOMMU 3                                  ret=0 errno=0
DIRTY flags 0                                ret=-1 errno=EINVAL
DIRTY START|STOP                             ret=-1 errno=EINVAL
DIRTY flags 8                                ret=-1 errno=EINVAL
DIRTY argsz 7                                ret=-1 errno=EINVAL
DIRTY GET_BITMAP argsz 8                     ret=-1 errno=EINVAL
MAP A 4p at IOVA+3p                          ret=0 errno=0
MAP B 2p at IOVA+70p                         ret=0 errno=0
GET_BITMAP not tracking                      ret=-1 errno=EINVAL
DIRTY START                                  ret=0 errno=0
DIRTY START again                            ret=0 errno=0
GET_BITMAP 128p                              ret=0 errno=0
  bm: faaaaaaaaaaaaaaa eaaaaaaaaaaaaaaa aaaaaaaaaaaaaaaa
GET_BITMAP again                             ret=0 errno=0
  bm: faffffffffffffff eabaaaaaaaaaaaaa aaaaaaaaaaaaaaaa
GET_BITMAP pgsize 8k                         ret=-1 errno=EINVAL
GET_BITMAP size 0                            ret=-1 errno=EINVAL
GET_BITMAP bitmap too small                  ret=-1 errno=EINVAL
GET_BITMAP bisect A                          ret=-1 errno=EINVAL
GET_BITMAP iova unaligned                    ret=-1 errno=EINVAL
GET_BITMAP size unaligned                    ret=-1 errno=EINVAL
GET_BITMAP wraps                             ret=-1 errno=EINVAL
GET_BITMAP empty range                       ret=0 errno=0
  bm: aaaaaaaaaaaaaaaa aaaaaaaaaaaaaaaa
GET_BITMAP short range                       ret=-1 errno=EINVAL
MAP C 1p at IOVA+100p while tracking         ret=0 errno=0
GET_BITMAP 128p with C                       ret=0 errno=0
  bm: fdffffffffffffff d5ffffffffffffff 5555555555555555
UNMAP DIRTY B+C                              ret=0 errno=0
  size 0x3000
  bm: d7ffffffffffffff 1111111111111111
UNMAP DIRTY pgsize 8k                        ret=-1 errno=EINVAL
DIRTY STOP                                   ret=0 errno=0
DIRTY STOP again                             ret=0 errno=0
GET_BITMAP stopped                           ret=-1 errno=EINVAL
SET_CONTAINER                                ret=0 errno=0
SET_IOMMU 1                                  ret=0 errno=0
v1 DIRTY START                               ret=-1 errno=EACCES
v1 DIRTY flags 0                             ret=-1 errno=EACCES
==v1
SET_CONTAINER                                ret=0 errno=0
SET_IOMMU 1                                  ret=0 errno=0
v1 CHECK_EXTENSION 0..11: 0 1 0 1 0 0 1 0 0 1 1 0
GET_INFO argsz 500                           ret=0 errno=0
  info: f401000003000000 0010204000000000 1800000000000000 0200010038000000 0000000000000000 0010000000000000 0000001000000000 0300010048000000 ffff000000000000 0100010000000000 0200000000000000 0000000000000000 ffffdffe00000000 0000f0fe00000000 ffffffff7f000000 eeeeeeeeeeeeeeee eeeeeeeeeeeeeeee eeeeeeeeeeeeeeee eeeeeeeeeeeeeeee eeeeeeeeeeeeeeee
MAP A 4p                                     ret=0 errno=0
MAP B 2p                                     ret=0 errno=0
UNMAP A middle                               ret=0 errno=0
  size 0x0
UNMAP A tail + B head                        ret=0 errno=0
  size 0x0
UNMAP before A to A+1                        ret=0 errno=0
  size 0x4000
UNMAP B head                                 ret=0 errno=0
  size 0x2000
VmLck 0
MAP A 4p                                     ret=0 errno=0
VmLck after group close 0
VmLck after container close 0
==limit
write dma_entry_limit 2                      ret=2 errno=0
SET_CONTAINER                                ret=0 errno=0
SET_IOMMU 3                                  ret=0 errno=0
GET_INFO argsz 500                           ret=0 errno=0
  info: f401000003000000 0010204000000000 1800000000000000 0200010038000000 0000000000000000 0010000000000000 0000001000000000 0300010048000000 0200000000000000 0100010000000000 0200000000000000 0000000000000000 ffffdffe00000000 0000f0fe00000000 ffffffff7f000000 eeeeeeeeeeeeeeee eeeeeeeeeeeeeeee eeeeeeeeeeeeeeee eeeeeeeeeeeeeeee eeeeeeeeeeeeeeee
MAP 1                                        ret=0 errno=0
MAP 2                                        ret=0 errno=0
MAP 3                                        ret=-1 errno=ENOSPC
MAP 3 overlapping                            ret=-1 errno=EEXIST
MAP 3 msi                                    ret=-1 errno=ENOSPC
GET_INFO argsz 500                           ret=0 errno=0
  info: f401000003000000 0010204000000000 1800000000000000 0200010038000000 0000000000000000 0010000000000000 0000001000000000 0300010048000000 0000000000000000 0100010000000000 0200000000000000 0000000000000000 ffffdffe00000000 0000f0fe00000000 ffffffff7f000000 eeeeeeeeeeeeeeee eeeeeeeeeeeeeeee eeeeeeeeeeeeeeee eeeeeeeeeeeeeeee eeeeeeeeeeeeeeee
UNMAP 1                                      ret=0 errno=0
MAP 3                                        ret=0 errno=0
`;

/**
 * The oracle probe's calls, replayed in-process and printed in its format. Each part opens a fresh
 * container (as each probe run did) on a machine like the oracle guest: a 39-bit VT-d without
 * snoop control, interrupt remapping on, one device in its own group.
 */
class Transcript {
  readonly lines: string[] = [];
  readonly m = new Machine();
  readonly type1 = type1Of(this.m);
  readonly dev = plug(this.m, this.m.addIommu(ORACLE_VTD), '0000:00:03.0');
  readonly p = this.m.spawn();
  readonly buf = this.p.mmapOrThrow(64n * PAGE);
  c = -1;
  g = -1;

  R(name: string, r: SysResult): void {
    this.lines.push(probeLine(name, 44, r));
  }

  out(line: string): void {
    this.lines.push(line);
  }

  vmlck(label = 'VmLck'): void {
    this.out(`${label} ${this.p.mm.lockedVm * 4}`);
  }

  checkExt(prefix: string): void {
    this.out(`${prefix} CHECK_EXTENSION 0..11: ${checkExtensions(this.p, this.c).join(' ')}`);
  }

  openV(type: number): void {
    this.c = this.p.openOrThrow('/dev/vfio/vfio');
    this.g = this.p.openOrThrow(groupPath(this.dev));
    this.R('SET_CONTAINER', setContainer(this.p, this.g, this.c));
    this.R(`SET_IOMMU ${type}`, this.p.ioctl(this.c, VFIO_SET_IOMMU, BigInt(type)));
  }

  close(): void {
    this.p.closeOrThrow(this.c);
    this.p.closeOrThrow(this.g);
  }

  getInfo(argsz: number): void {
    const b = new Uint8Array(512).fill(0xee);
    new DataView(b.buffer).setUint32(0, argsz, true);
    this.R(`GET_INFO argsz ${argsz}`, this.p.ioctl(this.c, VFIO_IOMMU_GET_INFO, b));
    this.dump('  info', b, argsz > 160 ? 160 : argsz < 24 ? 24 : argsz + 8);
  }

  dump(what: string, b: Uint8Array, n: number): void {
    let s = `${what}:`;
    for (let i = 0; i < n; i++) s += `${i % 8 ? '' : ' '}${b[i]!.toString(16).padStart(2, '0')}`;
    this.out(s);
  }

  map(name: string, va: bigint, iova: bigint, size: bigint, flags = RW): void {
    this.R(name, mapDma(this, va, iova, size, flags));
  }

  unmap(name: string, iova: bigint, size: bigint, flags = 0, o: { argsz?: number; bitmap?: Bitmap } = {}): void {
    const u = unmapDma(this, iova, size, flags, o);
    this.R(name, u);
    this.out(`  size ${hx(u.size)}`);
  }

  dirty(name: string, flags: number, o: { argsz?: number; range?: DirtyRange } = {}): void {
    this.R(name, dirtyPages(this, flags, o));
  }

  bitmap(fill: number): bigint {
    const at = this.buf + 60n * PAGE;
    ok(this.p.poke(at, new Uint8Array(32).fill(fill)));
    return at;
  }

  dumpBitmap(n: number): void {
    this.dump('  bm', this.p.peek(this.buf + 60n * PAGE, n), n);
  }
}

const transcript: Record<string, (t: Transcript) => void> = {
  setup(t) {
    t.c = t.p.openOrThrow('/dev/vfio/vfio');
    t.checkExt('nogroup');
    t.g = t.p.openOrThrow(groupPath(t.dev));
    t.R('SET_CONTAINER', setContainer(t.p, t.g, t.c));
    t.checkExt('group');
    t.R('GET_INFO before SET_IOMMU', t.p.ioctl(t.c, VFIO_IOMMU_GET_INFO, new Uint8Array(512)));
    for (const [name, type] of [['SET_IOMMU 6 nesting', 6n], ['SET_IOMMU 99', 99n], ['SET_IOMMU 2 spapr', 2n], ['SET_IOMMU 3', 3n], ['SET_IOMMU 3 again', 3n]] as const) {
      t.R(name, t.p.ioctl(t.c, VFIO_SET_IOMMU, type));
    }
    t.checkExt('v2');
    t.R('ioctl VFIO_IOMMU_ENABLE', t.p.ioctl(t.c, VFIO_IOMMU_ENABLE));
    t.R('ioctl 0x3b99', t.p.ioctl(t.c, 0x3b99));
    const b15 = new Uint8Array(512);
    b15[0] = 15;
    t.R('GET_INFO argsz 15', t.p.ioctl(t.c, VFIO_IOMMU_GET_INFO, b15));
    for (const argsz of [16, 24, 40, 23, 500]) t.getInfo(argsz);
    t.map('MAP 4p', t.buf, IOVA, 4n * PAGE);
    t.map('MAP 1p', t.buf + 8n * PAGE, 0x10000000n, PAGE, VFIO_DMA_MAP_FLAG_READ);
    t.getInfo(500);
  },

  map(t) {
    const va = t.buf;
    t.openV(3);
    t.vmlck();
    t.R('MAP argsz 31', mapDma(t, va, IOVA, PAGE, RW, 31));
    t.map('MAP flags 8', va, IOVA, PAGE, RW | 8);
    t.map('MAP flags 0', va, IOVA, PAGE, 0);
    t.map('MAP READ|VADDR', va, IOVA, PAGE, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_VADDR);
    t.map('MAP size 0', va, IOVA, 0n);
    t.map('MAP iova unaligned', va, IOVA + 0x800n, PAGE);
    t.map('MAP vaddr unaligned', va + 0x10n, IOVA, PAGE);
    t.map('MAP size unaligned', va, IOVA, PAGE + 1n);
    t.map('MAP iova wraps', va, 0xfffffffffffff000n, 2n * PAGE);
    t.map('MAP iova last page', va, 0xfffffffffffff000n, PAGE);
    t.map('MAP vaddr wraps', 0xfffffffffffff000n, IOVA, 2n * PAGE);
    t.map('MAP msi window', va, 0xfee00000n, PAGE);
    t.map('MAP just below msi', va, 0xfedff000n, PAGE);
    t.map('MAP 1<<39 - page', va, (1n << 39n) - PAGE, PAGE);
    t.map('MAP 1<<39', va, 1n << 39n, PAGE);
    t.map('MAP 1<<48 - page', va, (1n << 48n) - PAGE, PAGE);
    t.map('MAP 1<<48', va, 1n << 48n, PAGE);
    t.unmap('UNMAP 0xfedff000', 0xfedff000n, PAGE);
    t.unmap('UNMAP 1<<39 - page', (1n << 39n) - PAGE, PAGE);
    t.unmap('UNMAP 1<<48 - page', (1n << 48n) - PAGE, PAGE);
    t.vmlck();
    t.map('MAP 4p', va, IOVA, 4n * PAGE);
    t.vmlck();
    t.map('MAP same', va, IOVA, 4n * PAGE);
    t.map('MAP overlap tail', va, IOVA + 3n * PAGE, 4n * PAGE);
    t.map('MAP overlap head', va, IOVA - PAGE, 2n * PAGE);
    t.map('MAP same va other iova', va, IOVA + 16n * PAGE, 4n * PAGE);
    t.vmlck();
    const hole = t.p.mmapOrThrow(4n * PAGE);
    ok(t.p.munmap(hole + 2n * PAGE, 2n * PAGE));
    t.map('MAP unmapped half', hole, 0x200000n, 4n * PAGE);
    t.map('MAP unmapped', hole + 2n * PAGE, 0x200000n, PAGE);
    t.vmlck();
    const ro = t.p.mmapOrThrow(2n * PAGE, PROT_READ);
    t.map('MAP ro vma RW', ro, 0x300000n, 2n * PAGE);
    t.map('MAP ro vma READ', ro, 0x300000n, 2n * PAGE, VFIO_DMA_MAP_FLAG_READ);
    t.map('MAP ro vma WRITE other', ro, 0x400000n, 2n * PAGE, VFIO_DMA_MAP_FLAG_WRITE);
    t.vmlck();
    t.p.rlimits.memlock = 16n * PAGE;
    t.out(probeLine('setrlimit MEMLOCK 16 pages', 44, { ret: 0, errno: 0 }));
    t.map('MAP 16p with cap', va + 16n * PAGE, 0x500000n, 16n * PAGE);
    t.vmlck();
    dropCap(t.p, CAP_IPC_LOCK);
    t.out(probeLine('capset drop CAP_IPC_LOCK', 44, { ret: 0, errno: 0 }));
    t.map('MAP 1p over limit', va + 40n * PAGE, 0x600000n, PAGE);
    t.unmap('UNMAP 0x500000 16p', 0x500000n, 16n * PAGE);
    t.vmlck();
    t.map('MAP 16p no cap (6 locked)', va + 16n * PAGE, 0x500000n, 16n * PAGE);
    t.vmlck();
    t.map('MAP 10p no cap (6 locked)', va + 16n * PAGE, 0x500000n, 10n * PAGE);
    t.vmlck();
    t.map('MAP 1p same pages again', va, 0x700000n, PAGE);
    t.vmlck();
    t.unmap('UNMAP ALL', 0n, 0n, VFIO_DMA_UNMAP_FLAG_ALL);
    t.vmlck();
  },

  unmap(t) {
    const va = t.buf;
    t.openV(3);
    t.map('MAP A 4p', va, IOVA, 4n * PAGE);
    t.map('MAP B 2p', va + 4n * PAGE, IOVA + 4n * PAGE, 2n * PAGE);
    t.map('MAP C 1p', va + 8n * PAGE, IOVA + 8n * PAGE, PAGE);
    t.R('UNMAP argsz 23', unmapDma(t, IOVA, PAGE, 0, { argsz: 23 }));
    t.R('UNMAP flags 8', unmapDma(t, IOVA, 4n * PAGE, 8));
    t.R('UNMAP DIRTY|ALL', unmapDma(t, 0n, 0n, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_ALL));
    t.R('UNMAP DIRTY|VADDR', unmapDma(t, IOVA, 4n * PAGE, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_VADDR));
    t.R('UNMAP DIRTY argsz 24', unmapDma(t, IOVA, 4n * PAGE, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, { argsz: 24 }));
    const bm = va + 60n * PAGE;
    const dirty = (name: string, bitmap: Bitmap): void => t.R(name, unmapDma(t, IOVA, 4n * PAGE, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, { bitmap }));
    dirty('UNMAP DIRTY not tracking', { pgsize: PAGE, size: 8n, data: bm });
    dirty('UNMAP DIRTY bad data ptr', { pgsize: PAGE, size: 8n, data: 0xffff800000000000n });
    dirty('UNMAP DIRTY bitmap size 0', { pgsize: PAGE, size: 0n, data: bm });
    dirty('UNMAP DIRTY pgsize 0', { pgsize: 0n, size: 8n, data: bm });
    t.R('UNMAP iova unaligned', unmapDma(t, IOVA + 1n, PAGE));
    t.R('UNMAP size 0', unmapDma(t, IOVA, 0n));
    t.R('UNMAP size unaligned', unmapDma(t, IOVA, PAGE + 1n));
    t.R('UNMAP wraps', unmapDma(t, IOVA, 0xfffffffffff00000n));
    t.R('UNMAP ALL iova 1', unmapDma(t, PAGE, 0n, VFIO_DMA_UNMAP_FLAG_ALL));
    t.R('UNMAP ALL size 1', unmapDma(t, 0n, PAGE, VFIO_DMA_UNMAP_FLAG_ALL));
    t.unmap('UNMAP bisect A middle', IOVA + PAGE, PAGE);
    t.unmap('UNMAP A head only', IOVA, PAGE);
    t.unmap('UNMAP A+B partially', IOVA, 5n * PAGE);
    t.unmap('UNMAP nothing there', 0x40000000n, PAGE);
    t.unmap('UNMAP gap around B', IOVA - 16n * PAGE, 22n * PAGE);
    t.unmap('UNMAP ALL', 0n, 0n, VFIO_DMA_UNMAP_FLAG_ALL);
    t.unmap('UNMAP ALL empty', 0n, 0n, VFIO_DMA_UNMAP_FLAG_ALL);
  },

  vaddr(t) {
    const va = t.buf;
    const V = VFIO_DMA_UNMAP_FLAG_VADDR;
    t.openV(3);
    t.map('MAP A 4p', va, IOVA, 4n * PAGE);
    t.map('MAP B 2p', va + 4n * PAGE, IOVA + 4n * PAGE, 2n * PAGE);
    t.vmlck();
    t.unmap('UNMAP VADDR A', IOVA, 4n * PAGE, V);
    t.vmlck();
    t.unmap('UNMAP VADDR A+B', IOVA, 6n * PAGE, V);
    t.unmap('UNMAP VADDR B', IOVA + 4n * PAGE, 2n * PAGE, V);
    t.map('MAP VADDR nothing there', va, 0x40000000n, PAGE, VFIO_DMA_MAP_FLAG_VADDR);
    t.map('MAP VADDR A wrong size', va, IOVA, 2n * PAGE, VFIO_DMA_MAP_FLAG_VADDR);
    t.map('MAP VADDR A+8', va + 32n * PAGE, IOVA, 4n * PAGE, VFIO_DMA_MAP_FLAG_VADDR);
    t.map('MAP VADDR A again (valid)', va, IOVA, 4n * PAGE, VFIO_DMA_MAP_FLAG_VADDR);
    t.map('MAP new C while B invalid', va + 8n * PAGE, IOVA + 8n * PAGE, PAGE);
    t.unmap('UNMAP ALL|VADDR', 0n, 0n, VFIO_DMA_UNMAP_FLAG_ALL | V);
    t.unmap('UNMAP B (invalid vaddr)', IOVA + 4n * PAGE, 2n * PAGE);
    t.unmap('UNMAP ALL|VADDR again', 0n, 0n, VFIO_DMA_UNMAP_FLAG_ALL | V);
    t.vmlck();
    t.unmap('UNMAP ALL', 0n, 0n, VFIO_DMA_UNMAP_FLAG_ALL);
    t.vmlck();
  },

  dirty(t) {
    const va = t.buf;
    t.openV(3);
    const bm = va + 60n * PAGE;
    const get = (name: string, iova: bigint, length: bigint, pgsize: bigint, size: bigint): void => t.dirty(name, GET_BITMAP, { range: { iova, length, pgsize, size, data: bm } });
    t.dirty('DIRTY flags 0', 0);
    t.dirty('DIRTY START|STOP', START | STOP);
    t.dirty('DIRTY flags 8', 8);
    t.dirty('DIRTY argsz 7', START, { argsz: 7 });
    t.dirty('DIRTY GET_BITMAP argsz 8', GET_BITMAP);
    t.map('MAP A 4p at IOVA+3p', va, IOVA + 3n * PAGE, 4n * PAGE);
    t.map('MAP B 2p at IOVA+70p', va + 4n * PAGE, IOVA + 70n * PAGE, 2n * PAGE);
    get('GET_BITMAP not tracking', IOVA, 128n * PAGE, PAGE, 16n);
    t.dirty('DIRTY START', START);
    t.dirty('DIRTY START again', START);
    t.bitmap(0xaa);
    get('GET_BITMAP 128p', IOVA, 128n * PAGE, PAGE, 16n);
    t.dumpBitmap(24);
    t.bitmap(0xaa);
    get('GET_BITMAP again', IOVA, 128n * PAGE, PAGE, 16n);
    t.dumpBitmap(24);
    get('GET_BITMAP pgsize 8k', IOVA, 128n * PAGE, 2n * PAGE, 16n);
    get('GET_BITMAP size 0', IOVA, 0n, PAGE, 16n);
    get('GET_BITMAP bitmap too small', IOVA, 128n * PAGE, PAGE, 8n);
    get('GET_BITMAP bisect A', IOVA + 4n * PAGE, 8n * PAGE, PAGE, 8n);
    get('GET_BITMAP iova unaligned', IOVA + 1n, 8n * PAGE, PAGE, 8n);
    get('GET_BITMAP size unaligned', IOVA, 8n * PAGE + 1n, PAGE, 8n);
    get('GET_BITMAP wraps', IOVA, 0xfffffffffff00000n, PAGE, 8n);
    t.bitmap(0xaa);
    get('GET_BITMAP empty range', 0x40000000n, 8n * PAGE, PAGE, 8n);
    t.dumpBitmap(16);
    t.dirty('GET_BITMAP short range', GET_BITMAP, { argsz: 16 });
    t.map('MAP C 1p at IOVA+100p while tracking', va + 8n * PAGE, IOVA + 100n * PAGE, PAGE);
    t.bitmap(0x55);
    get('GET_BITMAP 128p with C', IOVA, 128n * PAGE, PAGE, 16n);
    t.dumpBitmap(24);
    t.bitmap(0x11);
    t.unmap('UNMAP DIRTY B+C', IOVA + 70n * PAGE, 64n * PAGE, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, { bitmap: { pgsize: PAGE, size: 8n, data: bm } });
    t.dumpBitmap(16);
    t.R('UNMAP DIRTY pgsize 8k', unmapDma(t, IOVA + 3n * PAGE, 4n * PAGE, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, { bitmap: { pgsize: 2n * PAGE, size: 8n, data: bm } }));
    t.dirty('DIRTY STOP', STOP);
    t.dirty('DIRTY STOP again', STOP);
    get('GET_BITMAP stopped', IOVA, 128n * PAGE, PAGE, 16n);
    t.close();
    t.openV(1);
    t.dirty('v1 DIRTY START', START);
    t.dirty('v1 DIRTY flags 0', 0);
  },

  v1(t) {
    const va = t.buf;
    t.openV(1);
    t.checkExt('v1');
    t.getInfo(500);
    t.map('MAP A 4p', va, IOVA, 4n * PAGE);
    t.map('MAP B 2p', va + 4n * PAGE, IOVA + 4n * PAGE, 2n * PAGE);
    t.unmap('UNMAP A middle', IOVA + PAGE, PAGE);
    t.unmap('UNMAP A tail + B head', IOVA + 3n * PAGE, 2n * PAGE);
    t.unmap('UNMAP before A to A+1', IOVA - PAGE, 2n * PAGE);
    t.unmap('UNMAP B head', IOVA + 4n * PAGE, PAGE);
    t.vmlck();
    t.map('MAP A 4p', va, IOVA, 4n * PAGE);
    t.p.closeOrThrow(t.g);
    t.vmlck('VmLck after group close');
    t.p.closeOrThrow(t.c);
    t.vmlck('VmLck after container close');
  },

  limit(t) {
    const va = t.buf;
    t.type1.params.dmaEntryLimit = 2;
    t.out(probeLine('write dma_entry_limit 2', 44, { ret: 2, errno: 0 }));
    t.openV(3);
    t.getInfo(500);
    t.map('MAP 1', va, IOVA, PAGE);
    t.map('MAP 2', va, IOVA + PAGE, PAGE);
    t.map('MAP 3', va, IOVA + 2n * PAGE, PAGE);
    t.map('MAP 3 overlapping', va, IOVA, PAGE);
    t.map('MAP 3 msi', va, 0xfee00000n, PAGE);
    t.getInfo(500);
    t.R('UNMAP 1', unmapDma(t, IOVA, PAGE));
    t.map('MAP 3', va, IOVA + 2n * PAGE, PAGE);
  },
};

function oracleParts(): Map<string, string[]> {
  const parts = new Map<string, string[]>();
  let cur: string[] = [];
  for (const line of ORACLE.trim().split('\n')) {
    if (line.startsWith('==')) parts.set(line.slice(2), (cur = []));
    else cur.push(line);
  }
  return parts;
}

describe('type1: oracle transcript (Linux 6.12, QEMU VT-d, edu)', () => {
  for (const [part, want] of oracleParts()) {
    it(`probe part "${part}" prints what the kernel printed`, () => {
      const t = new Transcript();
      transcript[part]!(t);
      assert.deepEqual(t.lines, want);
      check(t.m);
    });
  }
});

