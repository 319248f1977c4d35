/**
 * The simulated IOMMU units and their drivers, below iommufd: VT-d registers and capabilities,
 * SMMUv3 as 6.12 has it, domain allocation check order, paging domains over the radix table,
 * the IOTLB and its invalidation, dirty bits set by device writes, interrupts, identity and
 * blocked translation, PASIDs, and the hardware agreeing with the core after every change.
 */

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Errno, Machine } from '../src/index.js';
import { IOPTE_READ, IOPTE_WRITE } from '../src/hw/io_pgtable.js';
import type { HwIommu, HwIommuOptions } from '../src/hw/iommu.js';
import type { PciDevice } from '../src/hw/pci.js';
import { IOMMU_CAP, IOMMU_DIRTY_NO_CLEAR, IOMMU_RESV, type PagingDomain } from '../src/kernel/iommu/core.js';
import { SmmuDomain } from '../src/kernel/iommu/drivers/arm_smmu_v3.js';
import { IntelPagingDomain } from '../src/kernel/iommu/drivers/intel.js';
import { cap, ecap } from '../src/hw/vtd_regs.js';
import { remappableMsiAddress } from '../src/kernel/irq.js';
import { thrownErrno } from './helpers.js';
import {
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HW_INFO_TYPE_INTEL_VTD,
  IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17,
  iommu_hw_info_vtd,
} from '../src/uapi/iommufd.js';

const K4 = 0x1000n;
const M2 = 0x200000n;
const G1 = 0x40000000n;
const RW = IOPTE_READ | IOPTE_WRITE;

interface Rig {
  m: Machine;
  unit: HwIommu;
  dev: PciDevice;
}

function rig(opts: HwIommuOptions = { profile: 'vtd' }, bdf = '0000:00:03.0'): Rig {
  const m = new Machine();
  const unit = m.addIommu({ verifyIotlb: true, ...opts });
  const dev = m.addPciDevice({ bdf, iommu: unit });
  return { m, unit, dev };
}

/** A user-owned group translating through a fresh paging domain (VFIO type1 style). */
function ownedDomain(r: Rig, flags = 0): PagingDomain {
  const g = r.dev.group!;
  g.claimDmaOwner('test');
  const d = r.dev.ops.domainAllocUser!(r.dev, flags, null, null) as PagingDomain;
  g.attachDomain(d);
  assert.deepEqual(r.m.iommu.checkHardware(), []);
  return d;
}

/** `pages` physically contiguous, naturally aligned frames; returns the physical address. */
function frames(m: Machine, pages: number): bigint {
  return BigInt(m.phys.allocContig(pages)[0]!.pfn) * K4;
}


describe('VT-d unit', () => {
  test('capabilities are read back from CAP_REG/ECAP_REG and match the profile', () => {
    const { unit, dev } = rig();
    assert.equal(cap.mgaw(unit.capReg), 48);
    assert.equal(cap.superPageVal(unit.capReg), 0x3);
    assert.ok(ecap.sc(unit.ecapReg) && ecap.ir(unit.ecapReg) && ecap.nest(unit.ecapReg) && ecap.slads(unit.ecapReg) && ecap.smts(unit.ecapReg));
    assert.equal(ecap.pss(unit.ecapReg), 19);
    assert.equal(unit.pgsizeBitmap, K4 | M2 | G1);
    assert.equal(unit.maxPasids, 1 << 20);
    assert.equal(dev.iommu!.maxPasids, 1 << 20);
    assert.ok(dev.iommu!.msiIsolated);
    for (const c of [IOMMU_CAP.CACHE_COHERENCY, IOMMU_CAP.ENFORCE_CACHE_COHERENCY, IOMMU_CAP.DIRTY_TRACKING, IOMMU_CAP.DEFERRED_FLUSH]) assert.ok(dev.capable(c), `cap ${c}`);
    assert.ok(!dev.capable(IOMMU_CAP.NOEXEC));
    const plain = rig({ profile: 'vtd', snoopControl: false, dirtyTracking: false, interruptRemapping: false, superpages: '2m', pasidWidth: 0 });
    assert.ok(!plain.dev.capable(IOMMU_CAP.ENFORCE_CACHE_COHERENCY));
    assert.ok(!plain.dev.capable(IOMMU_CAP.DIRTY_TRACKING));
    assert.ok(!plain.dev.iommu!.msiIsolated);
    assert.equal(plain.unit.pgsizeBitmap, K4 | M2);
    assert.equal(plain.dev.iommu!.maxPasids, 0);
    assert.ok(!ecap.sc(plain.unit.ecapReg) && !ecap.slads(plain.unit.ecapReg) && !ecap.ir(plain.unit.ecapReg));
  });

  test('hw_info is IOMMU_HW_INFO_TYPE_INTEL_VTD with the erratum flag and the raw registers', () => {
    const { unit, dev } = rig();
    const info = dev.ops.hwInfo!(dev);
    assert.equal(info.type, IOMMU_HW_INFO_TYPE_INTEL_VTD);
    assert.equal(info.data.length, 24);
    assert.deepEqual(iommu_hw_info_vtd.decode(info.data), { flags: IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17, __reserved: 0, cap_reg: unit.capReg, ecap_reg: unit.ecapReg });
  });

  test('the reserved region is the interrupt range, IOMMU_RESV_MSI', () => {
    const { dev } = rig();
    assert.deepEqual(dev.ops.getResvRegions(dev), [{ start: 0xfee00000n, length: 0x100000n, type: IOMMU_RESV.MSI }]);
  });

  test('domain_alloc_user refuses in intel_iommu_domain_alloc_user order', () => {
    const { dev } = rig();
    const noNest = rig({ profile: 'vtd', nesting: false, dirtyTracking: false }, '0000:00:04.0');
    const ops = dev.ops;
    assert.equal(thrownErrno(() => ops.domainAllocUser!(dev, 1 << 5, null, null)), Errno.EOPNOTSUPP);
    assert.equal(thrownErrno(() => noNest.dev.ops.domainAllocUser!(noNest.dev, IOMMU_HWPT_ALLOC_NEST_PARENT, null, null)), Errno.EOPNOTSUPP);
    assert.equal(thrownErrno(() => noNest.dev.ops.domainAllocUser!(noNest.dev, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, null, null)), Errno.EOPNOTSUPP);
    const p = new Machine().spawn();
    assert.equal(thrownErrno(() => ops.domainAllocUser!(dev, 0, null, { type: 1, uptr: 0n, len: 24, task: p })), Errno.EOPNOTSUPP);
    const parent = ops.domainAllocUser!(dev, IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_DIRTY_TRACKING, null, null) as IntelPagingDomain;
    assert.ok(parent instanceof IntelPagingDomain && parent.nestedParent && parent.dirtyCapable);
    assert.equal(parent.type, 'unmanaged');
    assert.equal(thrownErrno(() => ops.domainAllocUser!(dev, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, parent, { type: 1, uptr: 0n, len: 24, task: p })), Errno.EOPNOTSUPP);
    assert.equal(thrownErrno(() => ops.domainAllocUser!(dev, 0, parent, { type: 0, uptr: 0n, len: 24, task: p })), Errno.EOPNOTSUPP);
    const notParent = ops.domainAllocUser!(dev, 0, null, null);
    assert.equal(thrownErrno(() => ops.domainAllocUser!(dev, 0, notParent, { type: 1, uptr: 0n, len: 24, task: p })), Errno.EINVAL);
    parent.free();
    notParent.free();
  });

  test('a paging domain has the unit aperture and page sizes', () => {
    const { dev } = rig();
    const d = dev.ops.domainAllocUser!(dev, 0, null, null) as PagingDomain;
    assert.equal(d.apertureStart, 0n);
    assert.equal(d.apertureEnd, (1n << 48n) - 1n);
    assert.equal(d.pgsizeBitmap, K4 | M2 | G1);
    const narrow = rig({ profile: 'vtd', addressWidth: 39, superpages: '4k' }, '0000:00:05.0');
    const n = narrow.dev.ops.domainAllocUser!(narrow.dev, 0, null, null) as PagingDomain;
    assert.equal(n.apertureEnd, (1n << 39n) - 1n);
    assert.equal(n.pgsizeBitmap, K4);
  });

  test('the default domain is a DMA paging domain, or identity when asked for', () => {
    const dma = rig();
    assert.equal(dma.dev.group!.domain!.type, 'dma');
    assert.equal(dma.unit.context(dma.dev.rid).mode, 'translate');
    const pt = rig({ profile: 'vtd', defaultDomain: 'identity' });
    assert.equal(pt.dev.group!.domain!.type, 'identity');
    assert.equal(pt.unit.context(pt.dev.rid).mode, 'identity');
    assert.deepEqual(pt.m.iommu.checkHardware(), []);
  });
});

describe('SMMUv3 unit', () => {
  test('capabilities: coherency, no snoop enforcement, dirty tracking only with HTTU', () => {
    const { dev } = rig({ profile: 'smmuv3' });
    assert.ok(dev.capable(IOMMU_CAP.CACHE_COHERENCY));
    assert.ok(dev.capable(IOMMU_CAP.NOEXEC));
    assert.ok(!dev.capable(IOMMU_CAP.ENFORCE_CACHE_COHERENCY));
    assert.ok(!dev.capable(IOMMU_CAP.DIRTY_TRACKING));
    assert.ok(rig({ profile: 'smmuv3', httu: true }).dev.capable(IOMMU_CAP.DIRTY_TRACKING));
    assert.ok(!rig({ profile: 'smmuv3', httu: true, coherent: false }).dev.capable(IOMMU_CAP.DIRTY_TRACKING));
    assert.ok(dev.iommu!.msiIsolated);
    assert.ok(!rig({ profile: 'smmuv3', msiIsolated: false }).dev.iommu!.msiIsolated);
  });

  test('6.12 has no hw_info op, and the software MSI window is reserved', () => {
    const { dev } = rig({ profile: 'smmuv3' });
    assert.ok(!('hwInfo' in dev.ops));
    assert.deepEqual(dev.ops.getResvRegions(dev), [{ start: 0x8000000n, length: 0x100000n, type: IOMMU_RESV.SW_MSI }]);
  });

  test('domain_alloc_user takes only DIRTY_TRACKING: no nest parents, no driver data', () => {
    const { dev } = rig({ profile: 'smmuv3', httu: true });
    assert.equal(thrownErrno(() => dev.ops.domainAllocUser!(dev, IOMMU_HWPT_ALLOC_NEST_PARENT, null, null)), Errno.EOPNOTSUPP);
    const d = dev.ops.domainAllocUser!(dev, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, null, null);
    assert.ok(d instanceof SmmuDomain && d.dirtyCapable);
    assert.equal(thrownErrno(() => dev.ops.domainAllocUser!(dev, 0, d, null)), Errno.EOPNOTSUPP);
    d.free();
  });

  test('a domain finalised on one SMMU cannot be attached behind another, and the device keeps its domain', () => {
    const m = new Machine();
    const a = m.addIommu({ profile: 'smmuv3' });
    const b = m.addIommu({ profile: 'smmuv3' });
    const da = m.addPciDevice({ bdf: '0000:00:01.0', iommu: a });
    const db = m.addPciDevice({ bdf: '0000:00:01.0'.replace('00:01', '01:01'), iommu: b });
    const d = da.ops.domainAllocUser!(da, 0, null, null);
    const before = db.group!.domain;
    db.group!.claimDmaOwner('x');
    assert.equal(thrownErrno(() => db.group!.attachDomain(d)), Errno.EINVAL);
    assert.notEqual(db.group!.domain, before, 'the group stays on its blocking domain');
    assert.equal(db.group!.domain, db.group!.blockingDomain);
    assert.deepEqual(m.iommu.checkHardware(), []);
    d.free();
  });

  test('IOPF cannot be enabled for a PCI function', () => {
    const { dev } = rig({ profile: 'smmuv3' });
    assert.equal(thrownErrno(() => dev.ops.enableIopf!(dev)), Errno.EINVAL);
  });
});

describe('paging domains and the radix table', () => {
  test('aligned contiguous runs are mapped with 2 MiB and 1 GiB leaves', () => {
    const r = rig();
    const d = ownedDomain(r) as IntelPagingDomain;
    d.iommuMap(G1 - K4, 0x100000000n - K4, K4 + G1 + M2, RW);
    assert.equal(d.pt.translate(G1 - K4)!.pageSize, K4);
    assert.equal(d.pt.translate(G1)!.pageSize, G1);
    assert.equal(d.pt.translate(2n * G1)!.pageSize, M2);
    assert.equal(d.iovaToPhys(2n * G1 + 0x1234n), 0x100000000n + G1 + 0x1234n);
    // Misaligned physical addresses fall back to 4 KiB.
    d.iommuMap(4n * G1, 0x300001000n, M2, RW);
    assert.equal(d.pt.translate(4n * G1)!.pageSize, K4);
    assert.equal(d.iommuUnmap(G1 - K4, K4 + G1 + M2), K4 + G1 + M2);
    assert.equal(d.iommuUnmap(4n * G1, M2), M2);
    assert.equal(d.pt.mapped, 0n);
  });

  test('a 2 MiB-only unit never builds 1 GiB leaves', () => {
    const r = rig({ profile: 'smmuv3' });
    const d = ownedDomain(r) as SmmuDomain;
    d.iommuMap(0n, 0n, G1, RW);
    assert.equal(d.pt.translate(0n)!.pageSize, G1);
    const r2 = rig({ profile: 'vtd', superpages: '2m' });
    const d2 = ownedDomain(r2) as IntelPagingDomain;
    d2.iommuMap(0n, 0n, G1, RW);
    assert.equal(d2.pt.translate(0n)!.pageSize, M2);
  });
});

describe('DMA through a paging domain', () => {
  test('writes and reads land in the mapped frames; unmap then DMA faults and memory is untouched', () => {
    const r = rig();
    const d = ownedDomain(r);
    const pa = frames(r.m, 4);
    d.iommuMap(0x10000n, pa, 4n * K4, RW);
    const data = Uint8Array.from({ length: 6000 }, (_, i) => i & 0xff);
    assert.deepEqual(r.dev.dmaWrite(0x10800n, data), { ok: true, msi: null });
    const back = r.dev.dmaRead(0x10800n, 6000);
    assert.ok(back.ok);
    assert.deepEqual(back.data, data);
    const f0 = r.m.phys.lookup(Number(pa / K4))!;
    assert.equal(f0.read(0x800, 1)[0], 0);
    d.iommuUnmap(0x10000n, 4n * K4);
    const w = r.dev.dmaWrite(0x10800n, new Uint8Array([0xee]));
    assert.ok(!w.ok);
    assert.equal(w.fault.reason, 'not-present');
    assert.equal(w.fault.iova, 0x10800n);
    assert.equal(f0.read(0x800, 1)[0], 0, 'the fault touched no memory');
    assert.equal(r.dev.faults.length, 1);
    assert.equal(r.unit.faults.at(-1), w.fault);
  });

  test('the IOTLB counts hits and misses, and unmap invalidates so no hit is stale', () => {
    const r = rig();
    const d = ownedDomain(r);
    const pa = frames(r.m, 2);
    d.iommuMap(0x200000n, pa, 2n * K4, RW);
    r.unit.iotlb.resetStats();
    assert.ok(r.dev.dmaRead(0x200000n, 16).ok);
    assert.ok(r.dev.dmaRead(0x200010n, 16).ok);
    assert.ok(r.dev.dmaRead(0x200ff0n, 0x20).ok);
    assert.equal(r.unit.iotlb.stats.misses, 2);
    assert.equal(r.unit.iotlb.stats.hits, 2);
    d.iommuUnmap(0x200000n, 2n * K4);
    assert.equal(r.unit.iotlb.size, 0);
    const pb = frames(r.m, 2);
    d.iommuMap(0x200000n, pb, 2n * K4, IOPTE_READ);
    const rd = r.dev.dmaRead(0x200000n, 4);
    assert.ok(rd.ok);
    assert.equal(r.unit.iotlb.peek((d as IntelPagingDomain).tag, 0x200)!.ppn, Number(pb / K4));
    const wr = r.dev.dmaWrite(0x200000n, new Uint8Array(4));
    assert.ok(!wr.ok);
    assert.equal(wr.fault.reason, 'permission');
  });

  test('attaching another domain or blocking invalidates the old domain on the unit', () => {
    const r = rig();
    const d = ownedDomain(r) as IntelPagingDomain;
    d.iommuMap(0n, frames(r.m, 1), K4, RW);
    assert.ok(r.dev.dmaRead(0n, 8).ok);
    assert.equal(r.unit.iotlb.countTag(d.tag), 1);
    r.dev.group!.detachDomain();
    assert.equal(r.unit.iotlb.countTag(d.tag), 0);
    const blocked = r.dev.dmaRead(0n, 8);
    assert.ok(!blocked.ok);
    assert.equal(blocked.fault.reason, 'blocked');
    assert.deepEqual(r.m.iommu.checkHardware(), []);
    d.iommuUnmap(0n, K4);
    d.free();
  });

  test('an IOVA beyond the aperture faults as such', () => {
    const r = rig();
    ownedDomain(r);
    for (const iova of [1n << 48n, 1n << 60n, (1n << 64n) - 2n]) {
      const f = r.dev.dmaRead(iova, 4);
      assert.ok(!f.ok);
      assert.equal(f.fault.reason, 'aperture');
      assert.equal(f.fault.iova, iova);
    }
  });

  test('identity translation: the IOVA is the physical address', () => {
    const r = rig({ profile: 'vtd', defaultDomain: 'identity' });
    const pa = frames(r.m, 1);
    assert.ok(r.dev.dmaWrite(pa + 8n, new Uint8Array([1, 2, 3])).ok);
    assert.deepEqual([...r.m.phys.lookup(Number(pa / K4))!.read(8, 3)], [1, 2, 3]);
    const nowhere = r.dev.dmaRead(0x10n, 4);
    assert.ok(!nowhere.ok);
    assert.equal(nowhere.fault.reason, 'bus-error');
  });

  test('a DMA default domain with nothing mapped faults', () => {
    const r = rig();
    const f = r.dev.dmaRead(0x1000n, 4);
    assert.ok(!f.ok);
    assert.equal(f.fault.reason, 'not-present');
  });
});

describe('interrupts', () => {
  test('VT-d without interrupt remapping: a 4-byte write to 0xfee00000 is a compatibility-format MSI whatever the translation; reads and odd sizes fault', () => {
    const r = rig({ profile: 'vtd', interruptRemapping: false });
    r.dev.group!.claimDmaOwner('x');
    const w = r.dev.dmaWrite(0xfee00004n, new Uint8Array([0x31, 0, 0, 0]));
    assert.ok(w.ok && w.msi);
    assert.equal(w.msi.data, 0x31);
    assert.equal(w.msi.address, 0xfee00004n);
    assert.equal(w.msi.vector, null);
    assert.equal(w.msi.isolated, false);
    assert.equal(r.dev.msis.length, 1);
    assert.equal(r.unit.interrupts.length, 1);
    const rd = r.dev.dmaRead(0xfee00000n, 4);
    assert.ok(!rd.ok);
    assert.equal(rd.fault.reason, 'msi');
    const big = r.dev.dmaWrite(0xfee00000n, new Uint8Array(8));
    assert.ok(!big.ok);
    assert.equal(big.fault.reason, 'msi');
  });

  test('VT-d with interrupt remapping: a remappable message is delivered as its IRTE\'s vector (handle + subhandle with SHV); compatibility format, absent entries and another requester\'s entry fault', () => {
    const r = rig();
    r.dev.group!.claimDmaOwner('x');
    const le = (v: number): Uint8Array => new Uint8Array(new Uint32Array([v]).buffer);
    const compat = r.dev.dmaWrite(0xfee00000n, le(0x31));
    assert.ok(!compat.ok);
    assert.equal(compat.fault.reason, 'msi');
    assert.match(compat.fault.detail, /compatibility-format interrupt .* is blocked/);
    // IRTE 0x8005 (handle bit 15 in address bit 2) + subhandle 1 from the data -> 0x8006.
    r.unit.setIrte(0x8006, { vector: 0x41, sid: r.dev.rid });
    const addr = remappableMsiAddress(0x8005);
    assert.equal(addr, 0xfee00000n | (0x0005n << 5n) | 0x10n | 0x08n | 0x04n);
    const w = r.dev.dmaWrite(addr, le(1));
    assert.ok(w.ok && w.msi);
    assert.equal(w.msi.vector, 0x41);
    assert.equal(w.msi.isolated, true);
    const absent = r.dev.dmaWrite(addr, le(0));
    assert.ok(!absent.ok);
    assert.equal(absent.fault.detail, 'interrupt remapping: IRTE 32773 is not present');
    r.unit.setIrte(0x8005, { vector: 0x42, sid: 0x0010 });
    const other = r.dev.dmaWrite(addr, le(0));
    assert.ok(!other.ok);
    assert.match(other.fault.detail, /IRTE 32773 is for requester 0x10, not 0000:00:03.0 \(0x18\)/);
    assert.equal(r.unit.interrupts.length, 1);
    assert.equal(r.unit.faults.length, 3);
  });

  test('SMMUv3: the software MSI window is an interrupt only through a paging domain', () => {
    const r = rig({ profile: 'smmuv3' });
    const blocked = r.dev.group!;
    blocked.claimDmaOwner('x');
    const f = r.dev.dmaWrite(0x8000040n, new Uint8Array([7, 0, 0, 0]));
    assert.ok(!f.ok);
    assert.equal(f.fault.reason, 'blocked');
    const d = r.dev.ops.domainAllocUser!(r.dev, 0, null, null);
    blocked.attachDomain(d);
    const w = r.dev.dmaWrite(0x8000040n, new Uint8Array([7, 0, 0, 0]));
    assert.ok(w.ok && w.msi?.data === 7);
  });
});

describe('dirty tracking by device writes', () => {
  test('VT-d: writes set leaf dirty bits only while SSADS is on; read-and-clear reports leaf sizes', () => {
    const r = rig();
    const d = ownedDomain(r, IOMMU_HWPT_ALLOC_DIRTY_TRACKING) as IntelPagingDomain;
    const pa = frames(r.m, 1024);
    d.iommuMap(0n, pa, 2n * M2, RW);
    d.iommuMap(4n * M2, pa, K4, RW);
    assert.ok(r.dev.dmaWrite(0x1000n, new Uint8Array(4)).ok);
    assert.equal(d.dirtyLeaves.size, 0, 'tracking is off');
    const seen: [bigint, bigint][] = [];
    assert.equal(thrownErrno(() => d.readAndClearDirty(0n, 2n * M2, 0, (i, l) => seen.push([i, l]))), Errno.EINVAL);
    d.setDirtyTracking(true);
    assert.ok(r.dev.dmaWrite(M2 + 0x10n, new Uint8Array(4)).ok);
    assert.ok(r.dev.dmaWrite(4n * M2, new Uint8Array(4)).ok);
    assert.ok(r.dev.dmaRead(0n, 4).ok);
    d.readAndClearDirty(0n, 5n * M2, IOMMU_DIRTY_NO_CLEAR, (i, l) => seen.push([i, l]));
    assert.deepEqual(seen, [
      [M2, M2],
      [4n * M2, K4],
    ]);
    seen.length = 0;
    d.readAndClearDirty(0n, 5n * M2, 0, (i, l) => seen.push([i, l]));
    assert.equal(seen.length, 2);
    seen.length = 0;
    d.readAndClearDirty(0n, 5n * M2, 0, (i, l) => seen.push([i, l]));
    assert.deepEqual(seen, []);
  });

  test('SMMUv3 with HTTU: every write marks its leaf; a hole in the range is EINVAL', () => {
    const r = rig({ profile: 'smmuv3', httu: true });
    const d = ownedDomain(r, IOMMU_HWPT_ALLOC_DIRTY_TRACKING) as SmmuDomain;
    const pa = frames(r.m, 2);
    d.iommuMap(0x4000n, pa, 2n * K4, RW);
    assert.ok(r.dev.dmaWrite(0x5000n, new Uint8Array(4)).ok);
    const seen: bigint[] = [];
    d.readAndClearDirty(0x4000n, 2n * K4, 0, (i) => seen.push(i));
    assert.deepEqual(seen, [0x5000n]);
    assert.equal(thrownErrno(() => d.readAndClearDirty(0x4000n, 3n * K4, 0, null)), Errno.EINVAL);
  });
});

describe('PASIDs', () => {
  test('a PASID beyond the device width or without an entry faults as a PASID fault', () => {
    const m = new Machine();
    const unit = m.addIommu({ profile: 'vtd' });
    const dev = m.addPciDevice({ bdf: '0000:00:03.0', iommu: unit, pasidWidth: 4 });
    assert.equal(dev.maxPasids, 16);
    const beyond = dev.dmaRead(0n, 4, 16);
    assert.ok(!beyond.ok);
    assert.equal(beyond.fault.reason, 'pasid');
    const none = dev.dmaRead(0n, 4, 3);
    assert.ok(!none.ok);
    assert.equal(none.fault.pasid, 3);
    assert.equal(none.fault.reason, 'pasid');
  });
});

describe('machine wiring', () => {
  test('devices get their own group by default or share one; BDFs are unique', () => {
    const m = new Machine();
    const unit = m.addIommu({ profile: 'vtd' });
    assert.equal(unit.name, 'dmar0');
    const a = m.addPciDevice({ bdf: '0000:00:03.0', iommu: unit });
    const b = m.addPciDevice({ bdf: '0000:00:03.1', iommu: unit, group: a });
    const c = m.addPciDevice({ bdf: '0000:00:04.0', iommu: unit, vendor: 0x8086, device: 0x1234 });
    assert.equal(a.group, b.group);
    assert.notEqual(a.group, c.group);
    assert.equal(b.group!.domain, a.group!.domain);
    assert.equal(c.rid, 0x20);
    assert.equal(new DataView(c.config.buffer).getUint16(0, true), 0x8086);
    assert.equal(m.iommu.pciDevice('0000:00:03.1'), b);
    assert.throws(() => m.addPciDevice({ bdf: '0000:00:03.0', iommu: unit }), /already exists/);
    const other = m.addIommu({ profile: 'smmuv3' });
    assert.throws(() => m.addPciDevice({ bdf: '0000:01:00.0', iommu: other, group: a }), /not behind/);
    assert.deepEqual(m.iommu.checkHardware(), []);
  });
});
