/**
 * Device DMA through iommufd, end to end: PCI devices behind simulated VT-d and SMMUv3 units,
 * bound to an iommufd context and attached to IOASes (automatic domains) or HW page tables, doing
 * DMA into and out of a process's pages. Covers what attach/unmap/detach/replace do to
 * translation and the IOTLB, the bind refusals (MSI isolation, a kernel driver using the group),
 * group rules, reserved regions both ways, automatic-domain sharing across devices and units,
 * GET_HW_INFO, cache coherency enforcement, dirty tracking by device writes, and a VT-d nested
 * domain walking a guest's stage-1 table.
 */

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  Errno,
  IOMMU_GET_HW_INFO,
  IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_DATA_VTD_S1,
  IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
  IOMMU_HWPT_GET_DIRTY_BITMAP,
  IOMMU_HWPT_INVALIDATE,
  IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
  IOMMU_HWPT_SET_DIRTY_TRACKING,
  IOMMU_HW_CAP_DIRTY_TRACKING,
  IOMMU_HW_INFO_TYPE_INTEL_VTD,
  IOMMU_HW_INFO_TYPE_NONE,
  IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_FAULT_QUEUE_ALLOC,
  IOMMU_HWPT_FAULT_ID_VALID,
  IOMMU_PGFAULT_FLAGS_LAST_PAGE,
  IOMMU_PGFAULT_PERM_WRITE,
  IOMMUFD_PAGE_RESP_SUCCESS,
  iommu_fault_alloc,
  iommu_hwpt_page_response,
  iommu_hwpt_pgfault,
  type Machine,
  checkInvariants,
  iommu_hw_info,
  iommu_hw_info_vtd,
  iommu_hwpt_alloc,
  iommu_hwpt_get_dirty_bitmap,
  iommu_hwpt_invalidate,
  iommu_hwpt_set_dirty_tracking,
  iommu_hwpt_vtd_s1,
  iommu_hwpt_vtd_s1_invalidate,
} from '../src/index.js';
import type { HwIommu, HwIommuOptions } from '../src/hw/iommu.js';
import type { PciDevice } from '../src/hw/pci.js';
import type { IommuGroup } from '../src/kernel/iommu/core.js';
import type { IntelPagingDomain } from '../src/kernel/iommu/drivers/intel.js';
import { type IommufdDevice, deviceAttach, deviceBind, deviceDetach, deviceReplace, deviceUnbind } from '../src/kernel/iommufd/device.js';
import { HwptPaging } from '../src/kernel/iommufd/hw_pagetable.js';
import type { IommufdCtx } from '../src/kernel/iommufd/object.js';
import { type Fixture, PAGE, call, map, ok, fails, setup, thrownErrno, unmap } from './helpers.js';
import { ctxOf, fullSnapshot } from './iommufd_helpers.js';

const IOVA = 0x100000n;

interface DmaFixture extends Fixture {
  ictx: IommufdCtx;
  unit: HwIommu;
  dev: PciDevice;
}

/** A VFIO-style driver (managing DMA itself) bound to a fresh PCI device behind `unit`. */
function plug(m: Machine, unit: HwIommu, bdf: string, group?: IommuGroup | PciDevice, pri = false): PciDevice {
  const dev = m.addPciDevice({ bdf, iommu: unit, pri, ...(group ? { group } : {}) });
  dev.bindDriver('vfio-pci', true);
  return dev;
}

function fixture(opts: HwIommuOptions = { profile: 'vtd' }): DmaFixture {
  const f = setup();
  const unit = f.m.addIommu({ verifyIotlb: true, ...opts });
  return { ...f, ictx: ctxOf(f), unit, dev: plug(f.m, unit, '0000:00:03.0') };
}

/** Bind and attach to `ptId` (an IOAS or HWPT); returns the device and the HWPT used. */
function attach(f: DmaFixture, dev: PciDevice, ptId: number = f.ioas): { idev: IommufdDevice; hwpt: number } {
  const idev = deviceBind(f.ictx, f.p, dev);
  const pt = { id: ptId };
  deviceAttach(idev, f.p, pt);
  check(f.m);
  return { idev, hwpt: pt.id };
}

function check(m: Machine): void {
  assert.deepEqual(checkInvariants(m), []);
  assert.deepEqual(m.iommu.checkHardware(), []);
}


const pattern = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

function hwptAlloc(f: DmaFixture, idev: IommufdDevice, ptId: number, flags: number, data?: { type: number; uptr: bigint; len: number }, faultId = 0): number {
  const { r, out } = call(f.p, f.fd, IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, {
    flags,
    fault_id: faultId,
    dev_id: idev.id,
    pt_id: ptId,
    data_type: data?.type ?? 0,
    data_len: data?.len ?? 0,
    data_uptr: data?.uptr ?? 0n,
  });
  ok(r);
  return out.out_hwpt_id;
}

describe('DMA into an IOAS through an automatic domain', () => {
  test('device writes land in the process pages and reads see its data', () => {
    const f = fixture();
    const { hwpt } = attach(f, f.dev);
    ok(map(f, f.buf, 4n * PAGE, IOVA));
    const data = pattern(5000, 1);
    ok(f.p.poke(f.buf + PAGE, data));
    const rd = f.dev.dmaRead(IOVA + PAGE, data.length);
    assert.ok(rd.ok);
    assert.deepEqual(rd.data, data);
    const out = pattern(3 * 4096 - 100, 9);
    assert.ok(f.dev.dmaWrite(IOVA + 100n, out).ok);
    assert.deepEqual(f.p.peek(f.buf + 100n, out.length), out);
    assert.ok(f.ictx.peek(hwpt) instanceof HwptPaging);
    check(f.m);
  });

  test('after IOAS_UNMAP the same DMA faults and memory is untouched', () => {
    const f = fixture();
    attach(f, f.dev);
    ok(map(f, f.buf, 2n * PAGE, IOVA));
    assert.ok(f.dev.dmaWrite(IOVA, pattern(16, 3)).ok);
    ok(unmap(f, IOVA, 2n * PAGE));
    const before = f.p.peek(f.buf, 32);
    const w = f.dev.dmaWrite(IOVA, pattern(32, 5));
    assert.ok(!w.ok);
    assert.equal(w.fault.reason, 'not-present');
    assert.equal(w.fault.iova, IOVA);
    assert.deepEqual(f.p.peek(f.buf, 32), before);
    const r = f.dev.dmaRead(IOVA + PAGE, 4);
    assert.ok(!r.ok);
    assert.equal(f.dev.faults.length, 2);
    check(f.m);
  });

  test('after detach DMA is blocked; after unbind the device is back on its default domain', () => {
    const f = fixture();
    const { idev } = attach(f, f.dev);
    ok(map(f, f.buf, PAGE, IOVA));
    assert.ok(f.dev.dmaRead(IOVA, 4).ok);
    deviceDetach(idev);
    check(f.m);
    const r = f.dev.dmaRead(IOVA, 4);
    assert.ok(!r.ok);
    assert.equal(r.fault.reason, 'blocked');
    deviceUnbind(idev);
    check(f.m);
    assert.equal(f.dev.group!.domain, f.dev.group!.defaultDomain);
    assert.equal(f.unit.context(f.dev.rid).mode, 'translate');
    const d = f.dev.dmaRead(IOVA, 4);
    assert.ok(!d.ok);
    assert.equal(d.fault.reason, 'not-present', 'the kernel DMA domain maps nothing');
  });

  test('the IOTLB serves repeated DMA to a page and forgets it on unmap', () => {
    const f = fixture();
    attach(f, f.dev);
    ok(map(f, f.buf, 2n * PAGE, IOVA));
    f.unit.iotlb.resetStats();
    for (let i = 0; i < 10; i++) assert.ok(f.dev.dmaRead(IOVA + BigInt(i * 64), 64).ok);
    assert.ok(f.dev.dmaRead(IOVA + PAGE, 64).ok);
    assert.equal(f.unit.iotlb.stats.misses, 2);
    assert.equal(f.unit.iotlb.stats.hits, 9);
    assert.equal(f.unit.iotlb.size, 2);
    ok(unmap(f, IOVA, 2n * PAGE));
    assert.equal(f.unit.iotlb.size, 0);
  });

  test('a write to a read-only mapping faults with the permission reason', () => {
    const f = fixture();
    attach(f, f.dev);
    ok(map(f, f.buf, PAGE, IOVA, IOMMU_IOAS_MAP_READABLE));
    assert.ok(f.dev.dmaRead(IOVA, 8).ok);
    const w = f.dev.dmaWrite(IOVA, new Uint8Array(8));
    assert.ok(!w.ok);
    assert.equal(w.fault.reason, 'permission');
    assert.ok(w.fault.write);
  });

  test('replace moves translation to the new HWPT at once and drops the old one from the IOTLB', () => {
    const f = fixture();
    const { idev, hwpt } = attach(f, f.dev);
    ok(map(f, f.buf, PAGE, IOVA));
    assert.ok(f.dev.dmaRead(IOVA, 4).ok);
    const old = (f.ictx.peek(hwpt) as HwptPaging).domain as IntelPagingDomain;
    assert.equal(f.unit.iotlb.countTag(old.tag), 1);
    const other = hwptAlloc(f, idev, f.ioas, 0);
    deviceReplace(idev, f.p, { id: other });
    check(f.m);
    assert.equal(f.unit.iotlb.countTag(old.tag), 0);
    assert.equal(f.unit.context(f.dev.rid).mode, 'translate');
    assert.ok(f.dev.dmaRead(IOVA, 4).ok, 'the new HWPT maps the same IOAS');
  });
});

describe('bind and attach refusals', () => {
  test('bind is EPERM when MSIs are not isolated, unless allow_unsafe_interrupts', () => {
    const f = fixture({ profile: 'vtd', interruptRemapping: false });
    const before = fullSnapshot(f.m);
    assert.equal(thrownErrno(() => deviceBind(f.ictx, f.p, f.dev)), Errno.EPERM);
    assert.equal(fullSnapshot(f.m), before);
    assert.equal(f.dev.group!.owner, null);
    f.m.iommufd.allowUnsafeInterrupts = true;
    const { idev } = attach(f, f.dev);
    assert.ok(idev.id > 0);
    const smmu = fixture({ profile: 'smmuv3', msiIsolated: false });
    assert.equal(thrownErrno(() => deviceBind(smmu.ictx, smmu.p, smmu.dev)), Errno.EPERM);
  });

  test('a device whose group a kernel driver uses cannot be bound (EPERM)', () => {
    const f = fixture();
    const sibling = f.m.addPciDevice({ bdf: '0000:00:03.1', iommu: f.unit, group: f.dev });
    sibling.bindDriver('e1000e', false);
    const before = fullSnapshot(f.m);
    assert.equal(thrownErrno(() => deviceBind(f.ictx, f.p, f.dev)), Errno.EPERM);
    assert.equal(fullSnapshot(f.m), before);
    sibling.unbindDriver();
    attach(f, f.dev);
  });

  test('a kernel driver cannot start using a group iommufd owns (EBUSY)', () => {
    const f = fixture();
    const sibling = f.m.addPciDevice({ bdf: '0000:00:03.1', iommu: f.unit, group: f.dev });
    attach(f, f.dev);
    assert.equal(thrownErrno(() => sibling.bindDriver('e1000e', false)), Errno.EBUSY);
  });

  test('two devices of one group must attach to the same HWPT (EINVAL otherwise)', () => {
    const f = fixture();
    const b = plug(f.m, f.unit, '0000:00:03.1', f.dev);
    const { idev: ia, hwpt } = attach(f, f.dev);
    const ib = deviceBind(f.ictx, f.p, b);
    const other = hwptAlloc(f, ib, f.ioas, 0);
    const before = fullSnapshot(f.m);
    assert.equal(thrownErrno(() => deviceAttach(ib, f.p, { id: other })), Errno.EINVAL);
    assert.equal(fullSnapshot(f.m), before);
    const pt = { id: f.ioas };
    deviceAttach(ib, f.p, pt);
    assert.equal(pt.id, hwpt);
    check(f.m);
    ok(map(f, f.buf, PAGE, IOVA));
    assert.ok(b.dmaWrite(IOVA, pattern(8, 2)).ok);
    const r = f.dev.dmaRead(IOVA, 8);
    assert.ok(r.ok);
    assert.deepEqual(r.data, pattern(8, 2));
    deviceDetach(ia);
    assert.ok(b.dmaRead(IOVA, 8).ok, 'the group stays attached while one device is');
    deviceDetach(ib);
    assert.ok(!b.dmaRead(IOVA, 8).ok);
    check(f.m);
  });
});

describe('fault injection', () => {
  for (const profile of ['vtd', 'smmuv3'] as const) {
    test(`${profile}: failing each allocation of an IOAS attach in turn leaves nothing behind`, () => {
      const f = fixture({ profile });
      const idev = deviceBind(f.ictx, f.p, f.dev);
      // Fault the page in now: a pin that fails later legitimately leaves it faulted in.
      ok(f.p.poke(f.buf, new Uint8Array([1])));
      ok(map(f, f.buf, PAGE, IOVA));
      const domain = f.dev.group!.domain;
      let n = 1;
      for (; n < 50; n++) {
        const before = fullSnapshot(f.m);
        f.p.setFailNth(n);
        const errno = thrownErrno(() => deviceAttach(idev, f.p, { id: f.ioas }));
        f.p.setFailNth(0);
        if (!errno) break;
        assert.equal(fullSnapshot(f.m), before, `fail-nth ${n} left state behind`);
        assert.equal(f.dev.group!.domain, domain);
        check(f.m);
      }
      assert.ok(n > 2, 'the attach has several allocation sites');
      check(f.m);
      assert.ok(f.dev.dmaRead(IOVA, 4).ok);
    });
  }
});

describe('reserved regions', () => {
  test('VT-d: IOAS_MAP over the interrupt range after attach is EINVAL; kernel-chosen IOVAs avoid it', () => {
    const f = fixture();
    attach(f, f.dev);
    fails(map(f, f.buf, PAGE, 0xfee00000n), Errno.EINVAL);
    fails(map(f, f.buf, PAGE, 0xfeeff000n), Errno.EINVAL);
    ok(map(f, f.buf, PAGE, 0xfef00000n));
    check(f.m);
  });

  test('attaching while a mapping covers the interrupt range is EADDRINUSE and changes nothing', () => {
    const f = fixture();
    ok(map(f, f.buf, 2n * PAGE, 0xfedff000n));
    const idev = deviceBind(f.ictx, f.p, f.dev);
    const before = fullSnapshot(f.m);
    const domain = f.dev.group!.domain;
    assert.equal(thrownErrno(() => deviceAttach(idev, f.p, { id: f.ioas })), Errno.EADDRINUSE);
    assert.equal(fullSnapshot(f.m), before);
    assert.equal(f.dev.group!.domain, domain);
    check(f.m);
    ok(unmap(f, 0xfedff000n, 2n * PAGE));
    deviceAttach(idev, f.p, { id: f.ioas });
    check(f.m);
  });

  test('SMMUv3: the software MSI window is reserved and an MSI write there reaches the ITS', () => {
    const f = fixture({ profile: 'smmuv3' });
    const { hwpt } = attach(f, f.dev);
    fails(map(f, f.buf, PAGE, 0x8000000n), Errno.EINVAL);
    assert.equal((f.ictx.peek(hwpt) as HwptPaging).msiCookie, 0x8000000n);
    const w = f.dev.dmaWrite(0x8000040n, new Uint8Array([0x21, 0, 0, 0]));
    assert.ok(w.ok && w.msi?.data === 0x21);
  });
});

describe('automatic domains across devices and units', () => {
  test('two devices on one unit share the automatic domain', () => {
    const f = fixture();
    const b = plug(f.m, f.unit, '0000:00:04.0');
    const a1 = attach(f, f.dev);
    const b1 = attach(f, b);
    assert.equal(a1.hwpt, b1.hwpt);
    assert.notEqual(f.dev.group, b.group);
  });

  test('a device behind another SMMU gets its own automatic domain (the domain belongs to one SMMU)', () => {
    const f = fixture({ profile: 'smmuv3' });
    const other = f.m.addIommu({ profile: 'smmuv3', verifyIotlb: true });
    const b = plug(f.m, other, '0000:01:00.0');
    const a1 = attach(f, f.dev);
    const b1 = attach(f, b);
    assert.notEqual(a1.hwpt, b1.hwpt);
    ok(map(f, f.buf, PAGE, IOVA));
    assert.ok(f.dev.dmaWrite(IOVA, pattern(4, 1)).ok);
    const r = b.dmaRead(IOVA, 4);
    assert.ok(r.ok);
    assert.deepEqual(r.data, pattern(4, 1));
  });

  test('a device behind a different kind of IOMMU gets its own domain (domain owner mismatch)', () => {
    const f = fixture();
    const smmu = f.m.addIommu({ profile: 'smmuv3' });
    const b = plug(f.m, smmu, '0000:01:00.0');
    assert.notEqual(attach(f, f.dev).hwpt, attach(f, b).hwpt);
  });

  test('replace onto another driver\'s HWPT is refused by that driver, and (as in 6.12) drops the group\'s reserved regions', () => {
    const f = fixture();
    const smmu = f.m.addIommu({ profile: 'smmuv3' });
    const b = plug(f.m, smmu, '0000:01:00.0');
    const { idev } = attach(f, f.dev);
    const other = attach(f, b).hwpt;
    ok(map(f, f.buf, PAGE, IOVA));
    const before = fullSnapshot(f.m);
    assert.equal(thrownErrno(() => deviceReplace(idev, f.p, { id: other })), Errno.ENOENT);
    check(f.m);
    assert.ok(f.dev.dmaRead(IOVA, 4).ok, 'still translating through its own HWPT');
    // As in 6.12's iommufd_device_do_replace, the error path removes the group's reserved
    // regions from the (same) IOAS although the old attachment put them there: the interrupt
    // range is no longer reserved. Everything else is as it was.
    assert.equal(fullSnapshot(f.m), before.replace('"4276092928-4277141503",', ''));
    ok(map(f, f.buf, PAGE, 0xfee00000n));
  });

  test('VT-d units share a compatible domain, as intel-iommu does, and unmap invalidates both IOTLBs', () => {
    const f = fixture();
    const other = f.m.addIommu({ profile: 'vtd', verifyIotlb: true });
    const b = plug(f.m, other, '0000:80:00.0');
    const a1 = attach(f, f.dev);
    const b1 = attach(f, b);
    assert.equal(a1.hwpt, b1.hwpt);
    ok(map(f, f.buf, PAGE, IOVA));
    assert.ok(f.dev.dmaRead(IOVA, 4).ok && b.dmaRead(IOVA, 4).ok);
    assert.equal(f.unit.iotlb.size + other.iotlb.size, 2);
    ok(unmap(f, IOVA, PAGE));
    assert.equal(f.unit.iotlb.size + other.iotlb.size, 0);
    assert.ok(!b.dmaRead(IOVA, 4).ok);
  });

  test('a VT-d unit without snoop control cannot join a snoop-forcing domain and gets its own', () => {
    const f = fixture();
    const nosc = f.m.addIommu({ profile: 'vtd', snoopControl: false });
    const b = plug(f.m, nosc, '0000:80:00.0');
    const a1 = attach(f, f.dev);
    const b1 = attach(f, b);
    assert.notEqual(a1.hwpt, b1.hwpt);
    assert.equal((f.ictx.peek(a1.hwpt) as HwptPaging).enforceCacheCoherency, true);
    assert.equal((f.ictx.peek(b1.hwpt) as HwptPaging).enforceCacheCoherency, false);
  });
});

describe('GET_HW_INFO and capabilities', () => {
  test('VT-d reports its registers, 20 PASID bits and dirty tracking', () => {
    const f = fixture();
    const { idev } = attach(f, f.dev);
    const buf = f.p.mmapOrThrow(PAGE);
    const { r, out } = call(f.p, f.fd, IOMMU_GET_HW_INFO, iommu_hw_info, { dev_id: idev.id, data_len: 64, data_uptr: buf });
    ok(r);
    assert.equal(out.out_data_type, IOMMU_HW_INFO_TYPE_INTEL_VTD);
    assert.equal(out.data_len, iommu_hw_info_vtd.size);
    assert.equal(out.out_max_pasid_log2, 20);
    assert.equal(out.out_capabilities, BigInt(IOMMU_HW_CAP_DIRTY_TRACKING));
    const info = iommu_hw_info_vtd.decode(f.p.peek(buf, iommu_hw_info_vtd.size));
    assert.deepEqual(info, { flags: IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17, __reserved: 0, cap_reg: f.unit.capReg, ecap_reg: f.unit.ecapReg });
    assert.deepEqual([...f.p.peek(buf + 24n, 40)], new Array<number>(40).fill(0));
  });

  test('SMMUv3 (6.12) reports IOMMU_HW_INFO_TYPE_NONE', () => {
    const f = fixture({ profile: 'smmuv3', httu: true });
    const idev = deviceBind(f.ictx, f.p, f.dev);
    const { r, out } = call(f.p, f.fd, IOMMU_GET_HW_INFO, iommu_hw_info, { dev_id: idev.id });
    ok(r);
    assert.equal(out.out_data_type, IOMMU_HW_INFO_TYPE_NONE);
    assert.equal(out.out_capabilities, BigInt(IOMMU_HW_CAP_DIRTY_TRACKING));
  });

  test('the VT-d automatic HWPT enforces cache coherency; the SMMUv3 one cannot', () => {
    const f = fixture();
    const { hwpt, idev } = attach(f, f.dev);
    assert.ok(idev.enforceCacheCoherency);
    assert.equal((f.ictx.peek(hwpt) as HwptPaging).enforceCacheCoherency, true);
    const s = fixture({ profile: 'smmuv3' });
    const sa = attach(s, s.dev);
    assert.ok(!sa.idev.enforceCacheCoherency);
    assert.equal((s.ictx.peek(sa.hwpt) as HwptPaging).enforceCacheCoherency, false);
  });
});

describe('dirty tracking through iommufd', () => {
  for (const profile of ['vtd', 'smmuv3'] as const) {
    test(`${profile}: device writes show up in IOMMU_HWPT_GET_DIRTY_BITMAP`, () => {
      const f = fixture(profile === 'vtd' ? { profile } : { profile, httu: true });
      const idev = deviceBind(f.ictx, f.p, f.dev);
      const hwpt = hwptAlloc(f, idev, f.ioas, IOMMU_HWPT_ALLOC_DIRTY_TRACKING);
      deviceAttach(idev, f.p, { id: hwpt });
      ok(map(f, f.buf, 8n * PAGE, IOVA));
      ok(call(f.p, f.fd, IOMMU_HWPT_SET_DIRTY_TRACKING, iommu_hwpt_set_dirty_tracking, { hwpt_id: hwpt, flags: IOMMU_HWPT_DIRTY_TRACKING_ENABLE }).r);
      assert.ok(f.dev.dmaWrite(IOVA + PAGE + 8n, pattern(8, 0)).ok);
      assert.ok(f.dev.dmaWrite(IOVA + 6n * PAGE, pattern(8, 0)).ok);
      assert.ok(f.dev.dmaRead(IOVA + 3n * PAGE, 8).ok);
      const bitmap = f.p.mmapOrThrow(PAGE);
      ok(call(f.p, f.fd, IOMMU_HWPT_GET_DIRTY_BITMAP, iommu_hwpt_get_dirty_bitmap, { hwpt_id: hwpt, iova: IOVA, length: 8n * PAGE, page_size: PAGE, data: bitmap }).r);
      assert.equal(f.p.peek(bitmap, 1)[0], 0b0100_0010);
      ok(f.p.poke(bitmap, new Uint8Array(1)));
      ok(call(f.p, f.fd, IOMMU_HWPT_GET_DIRTY_BITMAP, iommu_hwpt_get_dirty_bitmap, { hwpt_id: hwpt, iova: IOVA, length: 8n * PAGE, page_size: PAGE, data: bitmap }).r);
      assert.equal(f.p.peek(bitmap, 1)[0], 0, 'the first read cleared the bits');
      check(f.m);
    });
  }
});

describe('VT-d nested translation', () => {
  /** A guest stage-1 table in the process buffer (GPA = IOVA of the buffer): IOVA 0x5000 → GPA of page `data`. */
  function guestTables(f: DmaFixture, gpa: bigint, data: bigint): void {
    const entry = (addr: bigint): Uint8Array => {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, addr | 0x7n, true);
      return b;
    };
    ok(f.p.poke(f.buf, entry(gpa + PAGE)));
    ok(f.p.poke(f.buf + PAGE, entry(gpa + 2n * PAGE)));
    ok(f.p.poke(f.buf + 2n * PAGE, entry(gpa + 3n * PAGE)));
    ok(f.p.poke(f.buf + 3n * PAGE + 5n * 8n, entry(gpa + data * PAGE)));
  }

  /** A nest parent over `gpa` holding the guest tables, and the vtd_s1 config in user memory. */
  function nestedSetup(f: DmaFixture, idev: IommufdDevice): { parent: number; gpa: bigint; cfg: bigint } {
    const parent = hwptAlloc(f, idev, f.ioas, IOMMU_HWPT_ALLOC_NEST_PARENT);
    const gpa = 0x40000000n;
    ok(map(f, f.buf, 16n * PAGE, gpa));
    guestTables(f, gpa, 8n);
    const cfg = f.p.mmapOrThrow(PAGE);
    ok(f.p.poke(cfg, iommu_hwpt_vtd_s1.encode({ flags: 0n, pgtbl_addr: gpa, addr_width: 48 })));
    return { parent, gpa, cfg };
  }

  test('a PRI device faulting through a nested HWPT with a fault queue sends a page request and retries after SUCCESS', () => {
    const f = fixture();
    const dev = plug(f.m, f.unit, '0000:00:05.0', undefined, true);
    const idev = deviceBind(f.ictx, f.p, dev);
    const { parent, gpa, cfg } = nestedSetup(f, idev);
    const q = call(f.p, f.fd, IOMMU_FAULT_QUEUE_ALLOC, iommu_fault_alloc, {});
    ok(q.r);
    const nested = hwptAlloc(f, idev, parent, IOMMU_HWPT_FAULT_ID_VALID, { type: IOMMU_HWPT_DATA_VTD_S1, uptr: cfg, len: iommu_hwpt_vtd_s1.size }, q.out.out_fault_id);
    deviceAttach(idev, f.p, { id: nested });
    check(f.m);
    const miss = dev.dmaWrite(0x6010n, pattern(4, 1));
    assert.ok(!miss.ok && 'pageRequest' in miss);
    const pr = miss.pageRequest;
    assert.equal(pr.iova, 0x6000n);
    assert.equal(pr.response, null);
    assert.equal(pr.refused, null);
    const buf = f.p.mmapOrThrow(PAGE);
    assert.equal(ok(f.p.read(q.out.out_fault_fd, buf, iommu_hwpt_pgfault.size)), iommu_hwpt_pgfault.size);
    const pf = iommu_hwpt_pgfault.decode(f.p.peek(buf, iommu_hwpt_pgfault.size));
    assert.equal(pf.dev_id, idev.id);
    assert.equal(pf.addr, 0x6000n);
    assert.equal(pf.grpid, pr.grpid);
    assert.equal(pf.perm, IOMMU_PGFAULT_PERM_WRITE);
    assert.equal(pf.flags, IOMMU_PGFAULT_FLAGS_LAST_PAGE);
    // The VMM lets the guest map the page, then answers.
    const pte = new Uint8Array(8);
    new DataView(pte.buffer).setBigUint64(0, (gpa + 10n * PAGE) | 0x7n, true);
    ok(f.p.poke(f.buf + 3n * PAGE + 6n * 8n, pte));
    ok(f.p.poke(buf, iommu_hwpt_page_response.encode({ cookie: pf.cookie, code: IOMMUFD_PAGE_RESP_SUCCESS })));
    ok(f.p.write(q.out.out_fault_fd, buf, iommu_hwpt_page_response.size));
    assert.equal(pr.response, IOMMUFD_PAGE_RESP_SUCCESS);
    assert.ok(dev.dmaWrite(0x6010n, pattern(4, 1)).ok);
    assert.deepEqual(f.p.peek(f.buf + 10n * PAGE + 0x10n, 4), pattern(4, 1));
    check(f.m);
  });

  test('a device without PRI cannot attach to a HWPT with a fault queue (ENODEV)', () => {
    const f = fixture();
    const idev = deviceBind(f.ictx, f.p, f.dev);
    const { parent, cfg } = nestedSetup(f, idev);
    const q = call(f.p, f.fd, IOMMU_FAULT_QUEUE_ALLOC, iommu_fault_alloc, {});
    const nested = hwptAlloc(f, idev, parent, IOMMU_HWPT_FAULT_ID_VALID, { type: IOMMU_HWPT_DATA_VTD_S1, uptr: cfg, len: iommu_hwpt_vtd_s1.size }, q.out.out_fault_id);
    assert.equal(thrownErrno(() => deviceAttach(idev, f.p, { id: nested })), Errno.ENODEV);
    check(f.m);
    const r = f.dev.dmaRead(0x6000n, 4);
    assert.ok(!r.ok && !('pageRequest' in r));
  });

  test('DMA walks the guest stage-1 table through stage 2; a changed entry is stale until HWPT_INVALIDATE', () => {
    const f = fixture();
    const idev = deviceBind(f.ictx, f.p, f.dev);
    const parent = hwptAlloc(f, idev, f.ioas, IOMMU_HWPT_ALLOC_NEST_PARENT);
    const gpa = 0x40000000n;
    ok(map(f, f.buf, 16n * PAGE, gpa));
    guestTables(f, gpa, 8n);
    ok(f.p.poke(f.buf + 8n * PAGE, pattern(16, 8)));
    ok(f.p.poke(f.buf + 9n * PAGE, pattern(16, 9)));
    const cfg = f.p.mmapOrThrow(PAGE);
    ok(f.p.poke(cfg, iommu_hwpt_vtd_s1.encode({ flags: 0n, pgtbl_addr: gpa, addr_width: 48 })));
    const nested = hwptAlloc(f, idev, parent, 0, { type: IOMMU_HWPT_DATA_VTD_S1, uptr: cfg, len: iommu_hwpt_vtd_s1.size });
    deviceAttach(idev, f.p, { id: nested });
    check(f.m);
    const r1 = f.dev.dmaRead(0x5000n, 16);
    assert.ok(r1.ok);
    assert.deepEqual(r1.data, pattern(16, 8));
    // The guest points IOVA 0x5000 at another page but has not invalidated yet.
    guestTables(f, gpa, 9n);
    const stale = f.dev.dmaRead(0x5000n, 16);
    assert.ok(stale.ok);
    assert.deepEqual(stale.data, pattern(16, 8));
    ok(f.p.poke(cfg, iommu_hwpt_vtd_s1_invalidate.encode({ addr: 0x5000n, npages: 1n, flags: 0 })));
    const { r, out } = call(f.p, f.fd, IOMMU_HWPT_INVALIDATE, iommu_hwpt_invalidate, {
      hwpt_id: nested,
      data_uptr: cfg,
      data_type: IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
      entry_len: iommu_hwpt_vtd_s1_invalidate.size,
      entry_num: 1,
    });
    ok(r);
    assert.equal(out.entry_num, 1);
    const fresh = f.dev.dmaRead(0x5000n, 16);
    assert.ok(fresh.ok);
    assert.deepEqual(fresh.data, pattern(16, 9));
    const unmapped = f.dev.dmaRead(0x6000n, 4);
    assert.ok(!unmapped.ok);
    assert.equal(unmapped.fault.reason, 'not-present');
    // Unmapping stage 2 invalidates the stage-1 translations built on it.
    ok(unmap(f, gpa, 16n * PAGE));
    assert.equal(f.unit.iotlb.size, 0);
    assert.ok(!f.dev.dmaRead(0x5000n, 16).ok);
    check(f.m);
  });

  test('nested attach refuses stage-1 features the unit lacks (EINVAL) and leaves the device blocked', () => {
    const f = fixture();
    const idev = deviceBind(f.ictx, f.p, f.dev);
    const parent = hwptAlloc(f, idev, f.ioas, IOMMU_HWPT_ALLOC_NEST_PARENT);
    const cfg = f.p.mmapOrThrow(PAGE);
    ok(f.p.poke(cfg, iommu_hwpt_vtd_s1.encode({ flags: 1n /* IOMMU_VTD_S1_SRE */, pgtbl_addr: 0n, addr_width: 48 })));
    const nested = hwptAlloc(f, idev, parent, 0, { type: IOMMU_HWPT_DATA_VTD_S1, uptr: cfg, len: iommu_hwpt_vtd_s1.size });
    assert.equal(thrownErrno(() => deviceAttach(idev, f.p, { id: nested })), Errno.EINVAL);
    check(f.m);
    assert.equal(f.unit.context(f.dev.rid).mode, 'blocked');
  });
});
