/**
 * The selftest's mock IOMMU driven from userspace, as tools/testing/selftests/iommu drives it:
 * mock devices bound and attached through IOMMU_TEST_OP_MOCK_DOMAIN, automatic domains, the mock
 * page tables behind IOAS mappings, user HW page tables (paging and nested), cache invalidation,
 * GET_HW_INFO, dirty tracking, IO page faults, and fail-nth sweeps over the attach and allocation
 * paths. Every expectation is the kernel's (file:function cited where it decides); those the
 * emulator did not meet when they were written were fixed in the emulator.
 */

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  HPAGE_SIZE,
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_DATA_NONE,
  IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
  IOMMU_HWPT_FAULT_ID_VALID,
  IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
  IOMMU_HW_CAP_DIRTY_TRACKING,
  IOMMU_IOAS_IOVA_RANGES,
  IOMMU_VFIO_IOAS,
  IOMMU_VFIO_IOAS_SET,
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_CC_IOMMU,
  IOMMU_PGFAULT_FLAGS_LAST_PAGE,
  IOMMU_PGFAULT_FLAGS_PASID_VALID,
  IOMMU_PGFAULT_PERM_READ,
  IOMMU_PGFAULT_PERM_WRITE,
  IOMMUFD_PAGE_RESP_SUCCESS,
  MAP_ANONYMOUS,
  MAP_HUGETLB,
  MAP_POPULATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  iommu_hwpt_page_response,
  iommu_hwpt_pgfault,
  iommu_ioas_iova_ranges,
  iommu_iova_range,
  iommu_vfio_ioas,
} from '../src/index.js';
import {
  IOMMU_HW_INFO_SELFTEST_REGVAL,
  IOMMU_HW_INFO_TYPE_SELFTEST,
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID,
  IOMMU_TEST_INVALIDATE_FLAG_ALL,
  IOMMU_TEST_IOTLB_DEFAULT,
  MOCK_APERTURE_LAST,
  MOCK_APERTURE_START,
  MOCK_FLAGS_DEVICE_HUGE_IOVA,
  MOCK_FLAGS_DEVICE_NO_DIRTY,
  IOMMU_TEST_OP_DIRTY,
  iommu_hwpt_selftest,
  iommu_test_hw_info,
  test_dirty,
} from '../src/uapi/iommufd_test.js';
import { HwptNested, HwptPaging } from '../src/kernel/iommufd/hw_pagetable.js';
import { IommufdDevice } from '../src/kernel/iommufd/device.js';
import { IOMMUFD_OBJ } from '../src/kernel/iommufd/object.js';
import { MOCK_FLAGS_DEVICE_PASID, MockDevice, MockDomain, MockNestedDomain } from '../src/kernel/iommufd/selftest_mock.js';
import { SelftestObj } from '../src/kernel/iommufd/selftest.js';
import { type Fixture, PAGE, call, fails, ioasAlloc, map, ok, unmap } from './helpers.js';
import { ctxOf, fullSnapshot, ioasObj, refuse } from './iommufd_helpers.js';
import {
  Errno,
  bitsOf,
  checkIotlb,
  checkMap,
  checkRefs,
  destroy,
  faultAlloc,
  getDirtyBitmap,
  hwInfo,
  hwptAlloc,
  invalidate,
  markDirty,
  mockDomain,
  mockSetup,
  mockState,
  nestedAlloc,
  replace,
  selftestData,
  setDirtyTracking,
  sweep,
  testCmd,
  triggerIopf,
} from './mock_helpers.js';

const { EINVAL, ENOENT, EBUSY, EOPNOTSUPP, EADDRINUSE, EFAULT, EOVERFLOW, ENOMEM, ESPIPE } = Errno;
const APERTURE = MOCK_APERTURE_START;
const ULONG_MAX = (1n << 64n) - 1n;

/** The paging HWPT object `id` (asserting it is one). */
function paging(f: Fixture, id: number): HwptPaging {
  const o = ctxOf(f).peek(id);
  assert.ok(o instanceof HwptPaging, `object ${id} is not a paging HWPT`);
  return o;
}

/** The mock paging domain behind HWPT `id`. */
function mockDom(f: Fixture, id: number): MockDomain {
  const d = paging(f, id).domain;
  assert.ok(d instanceof MockDomain);
  return d;
}

function objTypes(f: Fixture): string {
  return ctxOf(f)
    .objects()
    .map((o) => `${o.id}:${o.type}`)
    .join(' ');
}

/** A mock device attached to the fixture's IOAS: the selftest's mock_domain fixture. */
function withDevice(f: Fixture, devFlags?: number): { stdev: number; idev: number; hwpt: number } {
  const d = mockDomain(f, f.ioas, devFlags);
  ok(d.r);
  return d;
}

describe('MOCK_DOMAIN on an IOAS', () => {
  test('a first mock device gets stdev 2, device 3 and automatic HWPT 4 (selftest obj, then bind, then the domain)', () => {
    const f = mockSetup();
    const d = mockDomain(f, f.ioas);
    ok(d.r);
    assert.deepEqual([d.stdev, d.idev, d.hwpt], [2, 3, 4]);
    assert.equal(objTypes(f), `1:${IOMMUFD_OBJ.IOAS} 2:${IOMMUFD_OBJ.SELFTEST} 3:${IOMMUFD_OBJ.DEVICE} 4:${IOMMUFD_OBJ.HWPT_PAGING}`);
    const hp = paging(f, 4);
    assert.ok(hp.autoDomain);
    assert.ok(hp.domain instanceof MockDomain);
    // users: the table's reference plus the attached device; the device: table + bind + attach.
    assert.equal(hp.users, 2);
    assert.equal(ctxOf(f).peek(3)!.users, 3);
    assert.equal(ioasObj(f, f.ioas).users, 2);
    const idev = ctxOf(f).peek(3) as IommufdDevice;
    assert.equal(idev.igroup.group.domain, hp.domain, 'the group translates through the automatic domain');
  });

  test('a second mock device on the same IOAS reuses the automatic domain', () => {
    const f = mockSetup();
    const a = withDevice(f);
    const b = mockDomain(f, f.ioas);
    ok(b.r);
    assert.deepEqual([b.stdev, b.idev, b.hwpt], [5, 6, a.hwpt]);
    assert.equal(paging(f, a.hwpt).users, 3);
    assert.equal(ioasObj(f, f.ioas).hwptList.length, 1);
    const ga = (ctxOf(f).peek(a.idev) as IommufdDevice).igroup.group;
    const gb = (ctxOf(f).peek(b.idev) as IommufdDevice).igroup.group;
    assert.notEqual(ga, gb, 'each mock device is alone in its own IOMMU group');
    assert.equal(ga.domain, gb.domain);
  });

  test('DESTROY of the IOAS, of the device ID or of the automatic HWPT is EBUSY while attached', () => {
    const f = mockSetup();
    const d = withDevice(f);
    refuse(f.m, EBUSY, () => destroy(f, f.ioas));
    refuse(f.m, EBUSY, () => destroy(f, d.idev));
    refuse(f.m, EBUSY, () => destroy(f, d.hwpt));
  });

  test('DESTROY of the stdev detaches and unbinds; the automatic HWPT dies with its last device and the IDs are reused', () => {
    const f = mockSetup();
    const a = withDevice(f);
    const b = withDevice(f);
    ok(destroy(f, a.stdev));
    assert.equal(objTypes(f), `1:${IOMMUFD_OBJ.IOAS} 4:${IOMMUFD_OBJ.HWPT_PAGING} 5:${IOMMUFD_OBJ.SELFTEST} 6:${IOMMUFD_OBJ.DEVICE}`);
    assert.equal(paging(f, 4).users, 2);
    ok(destroy(f, b.stdev));
    assert.equal(objTypes(f), `1:${IOMMUFD_OBJ.IOAS}`);
    assert.equal(ioasObj(f, f.ioas).users, 1);
    assert.deepEqual(f.m.iommu.groups(), [], 'the mock devices and their groups are gone');
    const c = withDevice(f);
    assert.deepEqual([c.stdev, c.idev, c.hwpt], [2, 3, 4]);
    assert.equal(((ctxOf(f).peek(3) as IommufdDevice).dev as MockDevice).name, 'iommufd_mock0', 'the mock device number is reused too');
    ok(destroy(f, c.stdev));
    ok(destroy(f, f.ioas));
  });

  test('while attached the IOAS reserves everything outside the mock aperture and aligns to 2 KiB; detaching undoes both', () => {
    const f = mockSetup();
    const iopt = ioasObj(f, f.ioas).iopt;
    assert.equal(iopt.iovaAlignment, 1n);
    const d = withDevice(f);
    assert.deepEqual(
      [...iopt.reserved].map((r) => [r.start, r.last]),
      [
        [0n, APERTURE - 1n],
        [MOCK_APERTURE_LAST + 1n, ULONG_MAX],
      ],
    );
    const arr = f.p.mmapOrThrow(PAGE);
    const { r, out } = call(f.p, f.fd, IOMMU_IOAS_IOVA_RANGES, iommu_ioas_iova_ranges, { ioas_id: f.ioas, num_iovas: 4, allowed_iovas: arr });
    ok(r);
    assert.equal(out.num_iovas, 1);
    assert.equal(out.out_iova_alignment, 2048n);
    assert.deepEqual(iommu_iova_range.decode(f.p.peek(arr, 16)), { start: APERTURE, last: MOCK_APERTURE_LAST });
    ok(destroy(f, d.stdev));
    assert.deepEqual([...iopt.reserved], []);
    assert.equal(iopt.iovaAlignment, 1n);
  });

  test('MOCK_DOMAIN_FLAGS with an unknown device flag is EINVAL and leaves nothing behind (mock_dev_create)', () => {
    const f = mockSetup();
    const before = mockState(f);
    fails(mockDomain(f, f.ioas, 1 << 3).r, EINVAL);
    assert.equal(mockState(f), before);
    assert.deepEqual(f.m.iommu.groups(), []);
    const d = withDevice(f);
    assert.deepEqual([d.stdev, d.idev, d.hwpt], [2, 3, 4], 'the failed call gave its selftest ID back');
  });

  test('MOCK_DOMAIN on a missing ID is ENOENT; on an ID that is no IOAS or HWPT EINVAL (iommufd_device_change_pt); nothing is left', () => {
    const f = mockSetup();
    const d = withDevice(f);
    const fault = faultAlloc(f);
    ok(fault.r);
    const before = mockState(f);
    fails(mockDomain(f, 99).r, ENOENT);
    // ID 6 is the one the new selftest object reserves: reserved, not published, so absent.
    fails(mockDomain(f, 6).r, ENOENT);
    for (const id of [d.idev, d.stdev, fault.id]) fails(mockDomain(f, id).r, EINVAL);
    assert.equal(mockState(f), before);
  });

  test('MOCK_DOMAIN on a user HWPT attaches to it directly, and the HWPT outlives the device', () => {
    const f = mockSetup();
    const a = withDevice(f);
    const h = hwptAlloc(f, { dev: a.idev, pt: f.ioas });
    ok(h.r);
    assert.equal(h.id, 5);
    const b = mockDomain(f, h.id);
    ok(b.r);
    assert.deepEqual([b.stdev, b.idev, b.hwpt], [6, 7, 5]);
    assert.equal(paging(f, 5).users, 2);
    assert.equal(paging(f, 5).autoDomain, false);
    refuse(f.m, EBUSY, () => destroy(f, 5));
    ok(destroy(f, b.stdev));
    assert.equal(paging(f, 5).users, 1, 'a user HWPT is not destroyed with its last device');
    ok(destroy(f, 5));
  });

  test('a HUGE_IOVA device reuses an automatic domain made for a plain one; only a domain allocated for it maps 1 MiB IO pages', () => {
    const f = mockSetup();
    const plain = withDevice(f);
    const huge = withDevice(f, MOCK_FLAGS_DEVICE_HUGE_IOVA);
    assert.equal(huge.hwpt, plain.hwpt, 'any automatic domain that takes the device is as good as another');
    const mem = f.p.mmapOrThrow(BigInt(HPAGE_SIZE), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE);
    ok(map(f, mem, BigInt(HPAGE_SIZE), APERTURE));
    assert.equal(mockDom(f, plain.hwpt).pt.isHuge(APERTURE), false);
    assert.equal(mockDom(f, plain.hwpt).pt.entries, 1024);
    const own = hwptAlloc(f, { dev: huge.idev, pt: f.ioas });
    ok(own.r);
    assert.equal(mockDom(f, own.id).pt.isHuge(APERTURE), true);
    ok(checkMap(f, own.id, APERTURE, BigInt(HPAGE_SIZE), mem));
  });

  test('VFIO_CHECK_EXTENSION(VFIO_DMA_CC_IOMMU): ENODEV without a compat IOAS, 1 with no domain, 0 once a mock domain (no coherency enforcement) is on it (oracle)', () => {
    const f = mockSetup();
    fails(f.p.ioctl(f.fd, VFIO_CHECK_EXTENSION, BigInt(VFIO_DMA_CC_IOMMU)), Errno.ENODEV);
    ok(call(f.p, f.fd, IOMMU_VFIO_IOAS, iommu_vfio_ioas, { ioas_id: f.ioas, op: IOMMU_VFIO_IOAS_SET }).r);
    assert.equal(ok(f.p.ioctl(f.fd, VFIO_CHECK_EXTENSION, BigInt(VFIO_DMA_CC_IOMMU))), 1);
    const d = withDevice(f);
    assert.equal(ok(f.p.ioctl(f.fd, VFIO_CHECK_EXTENSION, BigInt(VFIO_DMA_CC_IOMMU))), 0);
    assert.equal(paging(f, d.hwpt).enforceCacheCoherency, false);
  });

  test('closing the iommufd with attached mock devices releases devices, groups, domains and pins', () => {
    const f = mockSetup();
    ok(map(f, f.buf, 4n * PAGE, APERTURE));
    withDevice(f);
    withDevice(f, MOCK_FLAGS_DEVICE_NO_DIRTY);
    ok(checkRefs(f, f.buf, 4n * PAGE, 1));
    ok(f.p.close(f.fd));
    assert.equal(f.m.iommufd.contexts.size, 0);
    assert.deepEqual(f.m.iommu.groups(), []);
    let pins = 0;
    for (const fr of f.m.phys.frames()) pins += fr.pins;
    assert.equal(pins, 0);
    assert.equal(f.p.user.lockedVm, 0);
  });
});

describe('mapping through a mock domain', () => {
  test('IOAS_MAP after attach lands in the mock page table: MD_CHECK_MAP matches the user pages 2 KiB by 2 KiB', () => {
    const f = mockSetup();
    const d = withDevice(f);
    ok(map(f, f.buf, 4n * PAGE, APERTURE));
    ok(checkMap(f, d.hwpt, APERTURE, 4n * PAGE, f.buf));
    ok(checkMap(f, d.hwpt, APERTURE + 0x1800n, 0x1000n, f.buf + 0x1800n));
    assert.equal(mockDom(f, d.hwpt).pt.entries, 8, '16 KiB is 8 mock IO pages');
  });

  test('a mapping made before attach is copied into the new domain', () => {
    const f = mockSetup();
    ok(map(f, f.buf + PAGE, 2n * PAGE, APERTURE + 0x10000n));
    const d = withDevice(f);
    ok(checkMap(f, d.hwpt, APERTURE + 0x10000n, 2n * PAGE, f.buf + PAGE));
  });

  test('MD_CHECK_MAP refuses an unmapped IOVA or the wrong uptr (EINVAL), misalignment (EINVAL), and an ID that is no paging HWPT (ENOENT)', () => {
    const f = mockSetup();
    const d = withDevice(f);
    ok(map(f, f.buf, 2n * PAGE, APERTURE));
    fails(checkMap(f, d.hwpt, APERTURE + 2n * PAGE, PAGE, f.buf), EINVAL);
    fails(checkMap(f, d.hwpt, APERTURE, 2n * PAGE, f.buf + PAGE), EINVAL);
    fails(checkMap(f, d.hwpt, APERTURE, 2n * PAGE, f.buf + 0x800n), EINVAL);
    fails(checkMap(f, d.hwpt, APERTURE + 0x400n, 0x800n, f.buf + 0x400n), EINVAL);
    fails(checkMap(f, d.hwpt, APERTURE, 0x400n, f.buf), EINVAL);
    fails(checkMap(f, f.ioas, APERTURE, PAGE, f.buf), ENOENT);
    fails(checkMap(f, d.idev, APERTURE, PAGE, f.buf), ENOENT);
    fails(checkMap(f, 99, APERTURE, PAGE, f.buf), ENOENT);
  });

  test('with the 2 KiB IO page, half-page mappings work: user offset and IOVA need only 2 KiB alignment, and each mapping pins its page (oracle)', () => {
    const f = mockSetup();
    const d = withDevice(f);
    refuse(f.m, EINVAL, () => map(f, f.buf + 0x400n, 0x800n, APERTURE));
    refuse(f.m, EINVAL, () => map(f, f.buf, 0x400n, APERTURE));
    ok(map(f, f.buf + 0x800n, 0x800n, APERTURE));
    ok(map(f, f.buf + 0x800n, 0x800n, APERTURE + 0x800n));
    ok(checkMap(f, d.hwpt, APERTURE, 0x800n, f.buf + 0x800n));
    ok(checkMap(f, d.hwpt, APERTURE + 0x800n, 0x800n, f.buf + 0x800n));
    fails(checkMap(f, d.hwpt, APERTURE, 0x800n, f.buf), EINVAL);
    const auto = map(f, f.buf + 0x1800n, 0x1000n, null);
    ok(auto);
    assert.equal(auto.iova, APERTURE + 0x1800n, 'the kernel-chosen IOVA keeps the 0x800 offset in its page');
    ok(checkMap(f, d.hwpt, auto.iova, 0x1000n, f.buf + 0x1800n));
    ok(checkRefs(f, f.buf, PAGE, 2));
    fails(checkRefs(f, f.buf, PAGE, 1), Errno.EIO);
    ok(checkRefs(f, f.buf + PAGE, PAGE, 1));
  });

  test('MD_CHECK_MAP and MD_CHECK_REFS on an unmapped uptr are EFAULT; their alignment checks come before the HWPT lookup (oracle)', () => {
    const f = mockSetup();
    const d = withDevice(f);
    ok(map(f, f.buf, PAGE, APERTURE));
    fails(checkMap(f, d.hwpt, APERTURE, 0x800n, 0x800n), EFAULT);
    fails(checkRefs(f, PAGE, PAGE, 0), EFAULT);
    fails(checkRefs(f, f.buf + 0x800n, PAGE, 0), EINVAL);
    fails(checkMap(f, 99, APERTURE + 0x400n, 0x800n, f.buf), EINVAL);
  });

  test('MD_CHECK_REFS: one pin per page once a domain exists, however many domains; unmap drops it', () => {
    const f = mockSetup();
    ok(map(f, f.buf, 4n * PAGE, APERTURE));
    ok(checkRefs(f, f.buf, 4n * PAGE, 0));
    const d = withDevice(f);
    ok(checkRefs(f, f.buf, 4n * PAGE, 1));
    fails(checkRefs(f, f.buf, 4n * PAGE, 2), Errno.EIO);
    ok(hwptAlloc(f, { dev: d.idev, pt: f.ioas }).r);
    ok(checkRefs(f, f.buf, 4n * PAGE, 1));
    assert.equal(ok(unmap(f, APERTURE, 4n * PAGE)), 0);
    ok(checkRefs(f, f.buf, 4n * PAGE, 0));
    fails(checkMap(f, d.hwpt, APERTURE, PAGE, f.buf), EINVAL);
    assert.equal(mockDom(f, d.hwpt).pt.entries, 0);
  });

  test('with a mock domain attached a fixed map outside the aperture is EINVAL (reserved, iopt_check_iova) and a kernel-chosen IOVA lands inside', () => {
    const f = mockSetup();
    withDevice(f);
    refuse(f.m, EINVAL, () => map(f, f.buf, PAGE, 0x100000n));
    refuse(f.m, EINVAL, () => map(f, f.buf, 2n * PAGE, APERTURE - PAGE));
    refuse(f.m, EINVAL, () => map(f, f.buf, 2n * PAGE, MOCK_APERTURE_LAST + 1n - PAGE));
    refuse(f.m, EINVAL, () => map(f, f.buf, PAGE, MOCK_APERTURE_LAST + 1n));
    const r = map(f, f.buf, 4n * PAGE, null);
    ok(r);
    assert.ok(r.iova >= APERTURE && r.iova + 4n * PAGE - 1n <= MOCK_APERTURE_LAST, `auto IOVA 0x${r.iova.toString(16)} is inside the aperture`);
  });

  test('attaching a mock domain to an IOAS with a mapping outside the aperture is EADDRINUSE (iopt_reserve_iova) and leaves no object behind', () => {
    const f = mockSetup();
    ok(map(f, f.buf, 2n * PAGE, 0x100000n));
    const before = mockState(f);
    fails(mockDomain(f, f.ioas).r, EADDRINUSE);
    assert.equal(mockState(f), before);
    assert.deepEqual(f.m.iommu.groups(), []);
    assert.equal(objTypes(f), `1:${IOMMUFD_OBJ.IOAS}`);
    // Once the mapping is gone the same attach works and takes the IDs the failed one gave back.
    ok(unmap(f, 0x100000n, 2n * PAGE));
    const d = withDevice(f);
    assert.deepEqual([d.stdev, d.idev, d.hwpt], [2, 3, 4]);
  });

  test('attaching a mock domain over an area not aligned to the 2 KiB IO page is EADDRINUSE (iopt_check_iova_alignment)', () => {
    const f = mockSetup();
    ok(map(f, f.buf, 0x400n, APERTURE));
    const before = mockState(f);
    fails(mockDomain(f, f.ioas).r, EADDRINUSE);
    assert.equal(mockState(f), before);
  });
});

describe('IOMMU_HWPT_ALLOC with a mock device', () => {
  test('a paging HWPT takes the lowest free ID, holds its IOAS, is filled with its mappings and is not attached', () => {
    const f = mockSetup();
    ok(map(f, f.buf, 2n * PAGE, APERTURE));
    const d = withDevice(f);
    const h = hwptAlloc(f, { dev: d.idev, pt: f.ioas });
    ok(h.r);
    assert.equal(h.id, 5);
    const hp = paging(f, 5);
    assert.equal(hp.users, 1);
    assert.equal(hp.autoDomain, false);
    assert.equal(hp.nestParent, false);
    assert.equal(hp.domain.dirtyCapable, false);
    assert.equal(ioasObj(f, f.ioas).users, 3);
    ok(checkMap(f, 5, APERTURE, 2n * PAGE, f.buf));
    assert.notEqual((ctxOf(f).peek(d.idev) as IommufdDevice).igroup.group.domain, hp.domain);
    ok(destroy(f, 5));
    assert.equal(ioasObj(f, f.ioas).users, 2);
  });

  test('NEST_PARENT and DIRTY_TRACKING paging HWPTs', () => {
    const f = mockSetup();
    const d = withDevice(f);
    const h = hwptAlloc(f, { dev: d.idev, pt: f.ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_DIRTY_TRACKING });
    ok(h.r);
    assert.equal(paging(f, h.id).nestParent, true);
    assert.equal(paging(f, h.id).domain.dirtyCapable, true);
  });

  test('unknown flags, FAULT_ID_VALID on a paging HWPT, or a non-zero __reserved are EOPNOTSUPP (iommufd_hwpt_paging_alloc)', () => {
    const f = mockSetup();
    const d = withDevice(f);
    refuse(f.m, EOPNOTSUPP, () => hwptAlloc(f, { dev: d.idev, pt: f.ioas, flags: 1 << 3 }).r);
    refuse(f.m, EOPNOTSUPP, () => hwptAlloc(f, { dev: d.idev, pt: f.ioas, flags: IOMMU_HWPT_FAULT_ID_VALID }).r);
    refuse(f.m, EOPNOTSUPP, () => hwptAlloc(f, { dev: d.idev, pt: f.ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_FAULT_ID_VALID }).r);
    refuse(f.m, EOPNOTSUPP, () => hwptAlloc(f, { dev: d.idev, pt: f.ioas, reserved: 1 }).r);
  });

  test('DIRTY_TRACKING for a NO_DIRTY mock device is EOPNOTSUPP (selftest enforce_dirty)', () => {
    const f = mockSetup();
    const d = withDevice(f, MOCK_FLAGS_DEVICE_NO_DIRTY);
    refuse(f.m, EOPNOTSUPP, () => hwptAlloc(f, { dev: d.idev, pt: f.ioas, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING }).r);
    ok(hwptAlloc(f, { dev: d.idev, pt: f.ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT }).r);
  });

  test('a missing pt_id is EINVAL, not ENOENT; a missing or non-device dev_id ENOENT; a pt_id of another type EINVAL; data_type/data_len mismatch EINVAL', () => {
    const f = mockSetup();
    const d = withDevice(f);
    refuse(f.m, EINVAL, () => hwptAlloc(f, { dev: d.idev, pt: 99 }).r);
    refuse(f.m, ENOENT, () => hwptAlloc(f, { dev: 99, pt: f.ioas }).r);
    refuse(f.m, ENOENT, () => hwptAlloc(f, { dev: f.ioas, pt: d.idev }).r);
    refuse(f.m, ENOENT, () => hwptAlloc(f, { dev: d.stdev, pt: f.ioas }).r);
    refuse(f.m, EINVAL, () => hwptAlloc(f, { dev: d.idev, pt: d.idev }).r);
    refuse(f.m, EINVAL, () => hwptAlloc(f, { dev: d.idev, pt: d.stdev }).r);
    refuse(f.m, EINVAL, () => hwptAlloc(f, { dev: d.idev, pt: f.ioas, dataType: IOMMU_HWPT_DATA_NONE, dataLen: 4 }).r);
    refuse(f.m, EINVAL, () => hwptAlloc(f, { dev: d.idev, pt: f.ioas, dataType: IOMMU_HWPT_DATA_SELFTEST, dataLen: 0 }).r);
  });

  test('driver data on a paging HWPT is EOPNOTSUPP (mock_domain_alloc_user)', () => {
    const f = mockSetup();
    const d = withDevice(f);
    const data = selftestData(f, 1);
    refuse(f.m, EOPNOTSUPP, () => hwptAlloc(f, { dev: d.idev, pt: f.ioas, dataType: IOMMU_HWPT_DATA_SELFTEST, dataLen: 4, dataUptr: data }).r);
  });

  test('a user HWPT is never picked by the automatic-domain search', () => {
    const f = mockSetup();
    const a = withDevice(f);
    const h = hwptAlloc(f, { dev: a.idev, pt: f.ioas });
    ok(h.r);
    ok(destroy(f, a.stdev));
    const b = mockDomain(f, f.ioas);
    ok(b.r);
    assert.notEqual(b.hwpt, h.id);
    assert.equal(paging(f, b.hwpt).autoDomain, true);
    assert.deepEqual([b.stdev, b.idev, b.hwpt], [2, 3, 4]);
  });

  test('HWPT_ALLOC on an IOAS with a mapping outside the aperture is EADDRINUSE and leaves nothing behind', () => {
    const f = mockSetup();
    const other = ioasAlloc(f.p, f.fd);
    const d = mockDomain(f, other);
    ok(d.r);
    ok(map(f, f.buf, PAGE, 0x100000n));
    const before = mockState(f);
    fails(hwptAlloc(f, { dev: d.idev, pt: f.ioas }).r, EADDRINUSE);
    assert.equal(mockState(f), before);
  });
});

describe('nested HWPTs', () => {
  function parentSetup() {
    const f = mockSetup();
    const d = withDevice(f);
    const parent = hwptAlloc(f, { dev: d.idev, pt: f.ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT });
    ok(parent.r);
    return { f, d, parent: parent.id };
  }

  test('a nested HWPT on a NEST_PARENT parent holds the given IOTLB value in entries 0..3, and MD_CHECK_IOTLB checks each', () => {
    const { f, d, parent } = parentSetup();
    const n = nestedAlloc(f, d.idev, parent, IOMMU_TEST_IOTLB_DEFAULT);
    ok(n.r);
    assert.equal(n.id, parent + 1);
    const o = ctxOf(f).peek(n.id);
    assert.ok(o instanceof HwptNested && o.domain instanceof MockNestedDomain && o.parent.id === parent);
    for (let i = 0; i <= 3; i++) ok(checkIotlb(f, n.id, i, IOMMU_TEST_IOTLB_DEFAULT));
    fails(checkIotlb(f, n.id, 0, 0), EINVAL);
    fails(checkIotlb(f, n.id, 4, IOMMU_TEST_IOTLB_DEFAULT), EINVAL);
    fails(checkIotlb(f, parent, 0, IOMMU_TEST_IOTLB_DEFAULT), ENOENT);
  });

  test('the parent must be a NEST_PARENT user HWPT: a plain one, an automatic one or a nested one is EINVAL', () => {
    const { f, d, parent } = parentSetup();
    const plain = hwptAlloc(f, { dev: d.idev, pt: f.ioas });
    ok(plain.r);
    const n = nestedAlloc(f, d.idev, parent, 7);
    ok(n.r);
    const data = selftestData(f, 7);
    for (const pt of [plain.id, d.hwpt, n.id]) refuse(f.m, EINVAL, () => hwptAlloc(f, { dev: d.idev, pt, dataType: IOMMU_HWPT_DATA_SELFTEST, dataLen: 4, dataUptr: data }).r);
  });

  test('nested data errors: unknown type EOPNOTSUPP, a length other than 4 EINVAL, NULL data EFAULT, a NEST_PARENT flag EOPNOTSUPP, NONE with data EINVAL', () => {
    const { f, d, parent } = parentSetup();
    const data = selftestData(f, 5);
    const base = { dev: d.idev, pt: parent, dataType: IOMMU_HWPT_DATA_SELFTEST, dataLen: 4, dataUptr: data };
    refuse(f.m, EOPNOTSUPP, () => hwptAlloc(f, { ...base, dataType: IOMMU_HWPT_DATA_SELFTEST + 1 }).r);
    refuse(f.m, EINVAL, () => hwptAlloc(f, { ...base, dataLen: 3 }).r);
    refuse(f.m, EINVAL, () => hwptAlloc(f, { ...base, dataLen: 8 }).r);
    refuse(f.m, EFAULT, () => hwptAlloc(f, { ...base, dataUptr: 0n }).r);
    refuse(f.m, EOPNOTSUPP, () => hwptAlloc(f, { ...base, flags: IOMMU_HWPT_ALLOC_NEST_PARENT }).r);
    refuse(f.m, EINVAL, () => hwptAlloc(f, { ...base, dataType: IOMMU_HWPT_DATA_NONE }).r);
    // A paging parent with no data at all asks for a nested HWPT without driver data.
    refuse(f.m, EOPNOTSUPP, () => hwptAlloc(f, { dev: d.idev, pt: parent }).r);
    ok(hwptAlloc(f, base).r);
  });

  test('a nested HWPT holds its parent: DESTROY of the parent is EBUSY until the nested HWPT is gone', () => {
    const { f, d, parent } = parentSetup();
    const n = nestedAlloc(f, d.idev, parent, 1);
    ok(n.r);
    assert.equal(paging(f, parent).users, 2);
    refuse(f.m, EBUSY, () => destroy(f, parent));
    ok(destroy(f, n.id));
    ok(destroy(f, parent));
  });

  test('a mock device on a nested HWPT makes it busy; MOCK_DOMAIN can attach to it directly', () => {
    const { f, d, parent } = parentSetup();
    const n = nestedAlloc(f, d.idev, parent, 1);
    ok(n.r);
    const r = replace(f, d.stdev, n.id);
    ok(r.r);
    assert.equal(r.pt, n.id);
    refuse(f.m, EBUSY, () => destroy(f, n.id));
    const b = mockDomain(f, n.id);
    ok(b.r);
    assert.equal(b.hwpt, n.id);
    const grp = (ctxOf(f).peek(b.idev) as IommufdDevice).igroup.group;
    assert.ok(grp.domain instanceof MockNestedDomain);
    ok(destroy(f, b.stdev));
    ok(replace(f, d.stdev, parent).r);
    ok(destroy(f, n.id));
  });
});

describe('IOMMU_HWPT_INVALIDATE on a mock nested HWPT', () => {
  function nestedSetup() {
    const f = mockSetup();
    const d = withDevice(f);
    const parent = hwptAlloc(f, { dev: d.idev, pt: f.ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT });
    ok(parent.r);
    const n = nestedAlloc(f, d.idev, parent.id, IOMMU_TEST_IOTLB_DEFAULT);
    ok(n.r);
    const iotlb = (): number[] => [0, 1, 2, 3].map((i) => ((ctxOf(f).peek(n.id) as HwptNested).domain as MockNestedDomain).iotlb[i]!);
    return { f, d, parent: parent.id, nested: n.id, iotlb };
  }
  const DEF = IOMMU_TEST_IOTLB_DEFAULT;

  test('invalidating entries zeroes them; entry_num comes back as the number handled', () => {
    const { f, nested, iotlb } = nestedSetup();
    let r = invalidate(f, nested, { entries: [{ flags: 0, iotlb_id: 1 }] });
    ok(r.r);
    assert.equal(r.num, 1);
    assert.deepEqual(iotlb(), [DEF, 0, DEF, DEF]);
    ok(checkIotlb(f, nested, 1, 0));
    r = invalidate(f, nested, { entries: [{ flags: 0, iotlb_id: 2 }, { flags: 0, iotlb_id: 3 }] });
    ok(r.r);
    assert.equal(r.num, 2);
    assert.deepEqual(iotlb(), [DEF, 0, 0, 0]);
  });

  test('IOMMU_TEST_INVALIDATE_FLAG_ALL zeroes every entry whatever valid iotlb_id it names; an out-of-range one is still EINVAL', () => {
    const { f, nested, iotlb } = nestedSetup();
    // The iotlb_id range check still comes first (mock_domain_cache_invalidate_user).
    const bad = invalidate(f, nested, { entries: [{ flags: IOMMU_TEST_INVALIDATE_FLAG_ALL, iotlb_id: 4 }] });
    fails(bad.r, EINVAL);
    assert.equal(bad.num, 0);
    assert.deepEqual(iotlb(), [DEF, DEF, DEF, DEF]);
    const r = invalidate(f, nested, { entries: [{ flags: IOMMU_TEST_INVALIDATE_FLAG_ALL, iotlb_id: 2 }] });
    ok(r.r);
    assert.equal(r.num, 1);
    assert.deepEqual(iotlb(), [0, 0, 0, 0]);
  });

  test('a bad entry stops the batch: earlier entries stay done and entry_num says how many (EOPNOTSUPP for flags, EINVAL for iotlb_id)', () => {
    const { f, nested, iotlb } = nestedSetup();
    let r = invalidate(f, nested, { entries: [{ flags: 0, iotlb_id: 0 }, { flags: 0xffffffff, iotlb_id: 1 }] });
    fails(r.r, EOPNOTSUPP);
    assert.equal(r.num, 1);
    assert.deepEqual(iotlb(), [0, DEF, DEF, DEF]);
    r = invalidate(f, nested, { entries: [{ flags: 0, iotlb_id: 2 }, { flags: 0, iotlb_id: 4 }, { flags: 0, iotlb_id: 3 }] });
    fails(r.r, EINVAL);
    assert.equal(r.num, 1);
    assert.deepEqual(iotlb(), [0, DEF, 0, DEF]);
  });

  test('an empty array succeeds with entry_num 0, but only with the selftest data type', () => {
    const { f, nested } = nestedSetup();
    const r = invalidate(f, nested, { entries: [] });
    ok(r.r);
    assert.equal(r.num, 0);
    const bad = invalidate(f, nested, { entries: [], dataType: IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID });
    fails(bad.r, EINVAL);
    assert.equal(bad.num, 0);
  });

  test('argument errors write entry_num back as 0 and invalidate nothing', () => {
    const { f, d, parent, nested, iotlb } = nestedSetup();
    const one = [{ flags: 0, iotlb_id: 0 }];
    const cases: [string, number, ReturnType<typeof invalidate>][] = [
      ['paging parent', ENOENT, invalidate(f, parent, { entries: one })],
      ['automatic domain', ENOENT, invalidate(f, d.hwpt, { entries: one })],
      ['missing ID', ENOENT, invalidate(f, 99, { entries: one })],
      ['invalid data type', EINVAL, invalidate(f, nested, { entries: one, dataType: IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID })],
      ['entry_len 9', EINVAL, invalidate(f, nested, { entries: one, entryLen: 9 })],
      ['entry_len 1', EINVAL, invalidate(f, nested, { entries: one, entryLen: 1 })],
      ['entry_len 0', EINVAL, invalidate(f, nested, { entries: one, entryLen: 0 })],
      ['entry_len > PAGE_SIZE', EINVAL, invalidate(f, nested, { entries: one, entryLen: 4097 })],
      ['NULL data', EINVAL, invalidate(f, nested, { entryNum: 1, dataUptr: 0n })],
      ['entry_num > 1 << 19', EINVAL, invalidate(f, nested, { entries: one, entryNum: (1 << 19) + 1 })],
      ['__reserved', EOPNOTSUPP, invalidate(f, nested, { entries: one, reserved: 1 })],
    ];
    for (const [what, errno, r] of cases) {
      fails(r.r, errno);
      assert.equal(r.num, 0, what);
    }
    assert.deepEqual(iotlb(), [DEF, DEF, DEF, DEF]);
  });
});

describe('MOCK_DOMAIN_REPLACE', () => {
  test('onto another IOAS: a new automatic domain there, pt_id written back, and the old automatic domain dies', () => {
    const f = mockSetup();
    const d = withDevice(f);
    const ioas2 = ioasAlloc(f.p, f.fd);
    assert.equal(ioas2, 5);
    ok(map({ ...f, ioas: ioas2 }, f.buf, 2n * PAGE, APERTURE));
    const r = replace(f, d.stdev, ioas2);
    ok(r.r);
    assert.equal(r.pt, 6);
    assert.equal(ctxOf(f).peek(d.hwpt), undefined, 'the old automatic HWPT is destroyed');
    assert.equal(paging(f, 6).autoDomain, true);
    assert.equal(paging(f, 6).users, 2);
    ok(checkMap(f, 6, APERTURE, 2n * PAGE, f.buf));
    assert.equal((ctxOf(f).peek(d.idev) as IommufdDevice).igroup.group.domain, paging(f, 6).domain);
    ok(destroy(f, f.ioas)); // the first IOAS is free again
  });

  test('onto a user HWPT and back to the IOAS: the automatic domain is recreated with the lowest free ID', () => {
    const f = mockSetup();
    const d = withDevice(f);
    const h = hwptAlloc(f, { dev: d.idev, pt: f.ioas });
    ok(h.r);
    let r = replace(f, d.stdev, h.id);
    ok(r.r);
    assert.equal(r.pt, h.id);
    assert.equal(ctxOf(f).peek(d.hwpt), undefined);
    assert.equal(paging(f, h.id).users, 2);
    r = replace(f, d.stdev, f.ioas);
    ok(r.r);
    assert.equal(r.pt, 4);
    assert.equal(paging(f, 4).autoDomain, true);
    assert.equal(paging(f, h.id).users, 1);
    ok(destroy(f, h.id));
  });

  test('replacing onto the HWPT already in use, directly or through its IOAS, is a successful no-op', () => {
    const f = mockSetup();
    const d = withDevice(f);
    const before = mockState(f);
    let r = replace(f, d.stdev, d.hwpt);
    ok(r.r);
    assert.equal(r.pt, d.hwpt);
    assert.equal(mockState(f), before);
    r = replace(f, d.stdev, f.ioas);
    ok(r.r);
    assert.equal(r.pt, d.hwpt);
    assert.equal(mockState(f), before);
  });

  test('a domain the device refuses (NO_DIRTY device, dirty-tracking HWPT) is EINVAL for MOCK_DOMAIN and for replace, and nothing moves', () => {
    const f = mockSetup();
    const a = withDevice(f);
    const dirty = hwptAlloc(f, { dev: a.idev, pt: f.ioas, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING });
    ok(dirty.r);
    let before = mockState(f);
    fails(mockDomain(f, dirty.id, MOCK_FLAGS_DEVICE_NO_DIRTY).r, EINVAL);
    assert.equal(mockState(f), before);
    const nd = withDevice(f, MOCK_FLAGS_DEVICE_NO_DIRTY);
    assert.equal(nd.hwpt, a.hwpt, 'the automatic domain has no dirty tracking and takes the device');
    before = mockState(f);
    fails(replace(f, nd.stdev, dirty.id).r, EINVAL);
    assert.equal(mockState(f), before);
    assert.equal((ctxOf(f).peek(nd.idev) as IommufdDevice).igroup.group.domain, paging(f, a.hwpt).domain);
  });

  test('replace refusals: an ID that is no selftest object ENOENT, a missing pt_id ENOENT, a pt_id of another type EINVAL', () => {
    const f = mockSetup();
    const d = withDevice(f);
    refuse(f.m, ENOENT, () => replace(f, d.idev, f.ioas).r);
    refuse(f.m, ENOENT, () => replace(f, d.stdev, 99).r);
    refuse(f.m, EINVAL, () => replace(f, d.stdev, d.idev).r);
    refuse(f.m, EINVAL, () => replace(f, d.stdev, d.stdev).r);
  });
});

describe('IOMMU_GET_HW_INFO on a mock device', () => {
  test('the selftest type 0xfeedbeef, test_reg 0xdeadbeef, data_len 8, dirty tracking, no PASID', () => {
    const f = mockSetup();
    const d = withDevice(f);
    const data = f.p.mmapOrThrow(PAGE);
    const { r, out } = hwInfo(f, d.idev, { data_len: 8, data_uptr: data });
    ok(r);
    assert.equal(out.out_data_type, IOMMU_HW_INFO_TYPE_SELFTEST);
    assert.equal(out.data_len, 8);
    assert.deepEqual(iommu_test_hw_info.decode(f.p.peek(data, 8)), { flags: 0, test_reg: IOMMU_HW_INFO_SELFTEST_REGVAL });
    assert.equal(out.out_capabilities, BigInt(IOMMU_HW_CAP_DIRTY_TRACKING));
    assert.equal(out.out_max_pasid_log2, 0);
  });

  test('a larger user buffer has its tail zeroed; a smaller one gets what fits; data_len comes back as the kernel size', () => {
    const f = mockSetup();
    const d = withDevice(f);
    const data = f.p.mmapOrThrow(PAGE);
    f.p.poke(data, new Uint8Array(32).fill(0xcc));
    let { r, out } = hwInfo(f, d.idev, { data_len: 16, data_uptr: data });
    ok(r);
    assert.equal(out.data_len, 8);
    assert.deepEqual([...f.p.peek(data, 20)], [0, 0, 0, 0, 0xef, 0xbe, 0xad, 0xde, 0, 0, 0, 0, 0, 0, 0, 0, 0xcc, 0xcc, 0xcc, 0xcc]);
    f.p.poke(data, new Uint8Array(32).fill(0xcc));
    ({ r, out } = hwInfo(f, d.idev, { data_len: 6, data_uptr: data }));
    ok(r);
    assert.equal(out.data_len, 8);
    assert.deepEqual([...f.p.peek(data, 8)], [0, 0, 0, 0, 0xef, 0xbe, 0xcc, 0xcc]);
    ({ r, out } = hwInfo(f, d.idev, { data_len: 0, data_uptr: 0n }));
    ok(r);
    assert.equal(out.data_len, 8);
    assert.equal(out.out_data_type, IOMMU_HW_INFO_TYPE_SELFTEST);
  });

  test('a NO_DIRTY device reports no dirty tracking; a PASID-capable one (the mock PASID extension) a 20-bit PASID space', () => {
    const f = mockSetup();
    const nd = withDevice(f, MOCK_FLAGS_DEVICE_NO_DIRTY);
    let { r, out } = hwInfo(f, nd.idev);
    ok(r);
    assert.equal(out.out_capabilities, 0n);
    const pd = withDevice(f, MOCK_FLAGS_DEVICE_PASID);
    ({ r, out } = hwInfo(f, pd.idev));
    ok(r);
    assert.equal(out.out_max_pasid_log2, 20);
    assert.equal(out.out_capabilities, BigInt(IOMMU_HW_CAP_DIRTY_TRACKING));
  });

  test('non-zero flags or __reserved are EOPNOTSUPP, an ID that is no device ENOENT, an unwritable buffer EFAULT', () => {
    const f = mockSetup();
    const d = withDevice(f);
    refuse(f.m, EOPNOTSUPP, () => hwInfo(f, d.idev, { flags: 1 }).r);
    refuse(f.m, EOPNOTSUPP, () => hwInfo(f, d.idev, { __reserved: [0, 1, 0] }).r);
    refuse(f.m, ENOENT, () => hwInfo(f, d.stdev).r);
    refuse(f.m, ENOENT, () => hwInfo(f, d.hwpt).r);
    refuse(f.m, EFAULT, () => hwInfo(f, d.idev, { data_len: 8, data_uptr: 0n }).r);
  });
});

describe('dirty tracking on a mock domain', () => {
  /** IOAS with a mock device, a DIRTY_TRACKING HWPT with a second device, 8 pages mapped at the aperture start. */
  function dirtySetup() {
    const f = mockSetup();
    const a = withDevice(f);
    const h = hwptAlloc(f, { dev: a.idev, pt: f.ioas, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING });
    ok(h.r);
    const b = mockDomain(f, h.id);
    ok(b.r);
    ok(map(f, f.buf, 8n * PAGE, APERTURE));
    const bitmap = f.p.mmapOrThrow(PAGE);
    const read = (len = 2): number[] => bitsOf(f.p.peek(bitmap, len));
    return { f, a, hwpt: h.id, bitmap, read };
  }
  const LEN = 8n * PAGE;
  const IO = 2048n;

  test('SET_DIRTY_TRACKING on a HWPT without DIRTY_TRACKING is EOPNOTSUPP, unknown flags EOPNOTSUPP, a nested or missing ID ENOENT', () => {
    const { f, a, hwpt } = dirtySetup();
    refuse(f.m, EOPNOTSUPP, () => setDirtyTracking(f, a.hwpt, IOMMU_HWPT_DIRTY_TRACKING_ENABLE));
    refuse(f.m, EOPNOTSUPP, () => setDirtyTracking(f, hwpt, 2));
    refuse(f.m, ENOENT, () => setDirtyTracking(f, 99, IOMMU_HWPT_DIRTY_TRACKING_ENABLE));
    refuse(f.m, ENOENT, () => setDirtyTracking(f, f.ioas, IOMMU_HWPT_DIRTY_TRACKING_ENABLE));
    ok(setDirtyTracking(f, hwpt, IOMMU_HWPT_DIRTY_TRACKING_ENABLE));
    ok(setDirtyTracking(f, hwpt, IOMMU_HWPT_DIRTY_TRACKING_ENABLE));
    ok(setDirtyTracking(f, hwpt, 0));
    ok(setDirtyTracking(f, hwpt, 0));
  });

  test('IOMMU_TEST_OP_DIRTY needs tracking on (EINVAL), then marks mapped entries only and counts them', () => {
    const { f, hwpt } = dirtySetup();
    fails(markDirty(f, hwpt, APERTURE, LEN, IO, [0]).r, EINVAL);
    ok(setDirtyTracking(f, hwpt, IOMMU_HWPT_DIRTY_TRACKING_ENABLE));
    const r = markDirty(f, hwpt, APERTURE, 2n * LEN, IO, [0, 3, 15, 16, 20]);
    ok(r.r);
    assert.equal(r.nr, 3n, 'bits 16 and 20 fall past the mapping');
    fails(markDirty(f, hwpt, APERTURE, 0n, IO, []).r, EINVAL);
    fails(markDirty(f, hwpt, APERTURE + 0x400n, LEN, IO, []).r, EINVAL);
  });

  test('IOMMU_TEST_OP_DIRTY argument checks: NULL bitmap or page_size 0 EINVAL, more than 128 Mi bits EOVERFLOW before the lookup, then ENOENT, then EINVAL without tracking (oracle)', () => {
    const { f, a, hwpt } = dirtySetup();
    const bm = f.p.mmapOrThrow(PAGE);
    f.p.poke(bm, new Uint8Array([1]));
    const dirtyOp = (id: number, v: { uptr?: bigint; length?: bigint; pageSize?: bigint }) =>
      testCmd(f, IOMMU_TEST_OP_DIRTY, id, test_dirty.encode({ iova: APERTURE, length: v.length ?? PAGE, page_size: v.pageSize ?? IO, uptr: v.uptr ?? bm })).r;
    fails(dirtyOp(hwpt, { uptr: 0n }), EINVAL);
    fails(dirtyOp(hwpt, { pageSize: 0n }), EINVAL);
    fails(dirtyOp(hwpt, { length: 1n << 40n }), EOVERFLOW);
    fails(dirtyOp(99, { length: 1n << 40n }), EOVERFLOW);
    fails(dirtyOp(99, {}), ENOENT);
    fails(dirtyOp(f.ioas, {}), ENOENT);
    fails(dirtyOp(a.hwpt, {}), EINVAL);
    fails(dirtyOp(hwpt, {}), EINVAL);
  });

  test('GET_DIRTY_BITMAP reports exactly the dirty 2 KiB pages and clears them', () => {
    const { f, hwpt, bitmap, read } = dirtySetup();
    ok(setDirtyTracking(f, hwpt, IOMMU_HWPT_DIRTY_TRACKING_ENABLE));
    ok(markDirty(f, hwpt, APERTURE, LEN, IO, [0, 3, 15]).r);
    ok(getDirtyBitmap(f, hwpt, { iova: APERTURE, length: LEN, pageSize: IO, data: bitmap }));
    assert.deepEqual([...f.p.peek(bitmap, 3)], [0x09, 0x80, 0x00]);
    f.p.poke(bitmap, new Uint8Array(2));
    ok(getDirtyBitmap(f, hwpt, { iova: APERTURE, length: LEN, pageSize: IO, data: bitmap }));
    assert.deepEqual(read(), [], 'the first read cleared them');
  });

  test('NO_CLEAR reports the same bits again; the next clearing read still sees them, and then they are gone', () => {
    const { f, hwpt, bitmap, read } = dirtySetup();
    ok(setDirtyTracking(f, hwpt, IOMMU_HWPT_DIRTY_TRACKING_ENABLE));
    ok(markDirty(f, hwpt, APERTURE, LEN, IO, [1, 8]).r);
    for (let i = 0; i < 2; i++) {
      f.p.poke(bitmap, new Uint8Array(2));
      ok(getDirtyBitmap(f, hwpt, { iova: APERTURE, length: LEN, pageSize: IO, data: bitmap, flags: IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR }));
      assert.deepEqual(read(), [1, 8]);
    }
    f.p.poke(bitmap, new Uint8Array(2));
    ok(getDirtyBitmap(f, hwpt, { iova: APERTURE, length: LEN, pageSize: IO, data: bitmap }));
    assert.deepEqual(read(), [1, 8]);
    f.p.poke(bitmap, new Uint8Array(2));
    ok(getDirtyBitmap(f, hwpt, { iova: APERTURE, length: LEN, pageSize: IO, data: bitmap }));
    assert.deepEqual(read(), []);
  });

  test('the user bitmap is only OR-ed into: bits userspace left set stay set', () => {
    const { f, hwpt, bitmap } = dirtySetup();
    ok(setDirtyTracking(f, hwpt, IOMMU_HWPT_DIRTY_TRACKING_ENABLE));
    ok(markDirty(f, hwpt, APERTURE, LEN, IO, [2]).r);
    f.p.poke(bitmap, new Uint8Array([0x40, 0x01]));
    ok(getDirtyBitmap(f, hwpt, { iova: APERTURE, length: LEN, pageSize: IO, data: bitmap }));
    assert.deepEqual([...f.p.peek(bitmap, 2)], [0x44, 0x01]);
  });

  test('with a 4 KiB bitmap granule each dirty 2 KiB IO page sets the bit of its 4 KiB page', () => {
    const { f, hwpt, bitmap } = dirtySetup();
    ok(setDirtyTracking(f, hwpt, IOMMU_HWPT_DIRTY_TRACKING_ENABLE));
    ok(markDirty(f, hwpt, APERTURE, LEN, IO, [0, 3, 15]).r);
    ok(getDirtyBitmap(f, hwpt, { iova: APERTURE, length: LEN, pageSize: PAGE, data: bitmap }));
    assert.deepEqual([...f.p.peek(bitmap, 2)], [0x83, 0x00]);
  });

  test('a page_size that is not a power of two but passes the alignment masks counts bits by its lowest set bit (iova_bitmap_alloc: pgshift = __ffs)', () => {
    const { f, hwpt, bitmap } = dirtySetup();
    ok(setDirtyTracking(f, hwpt, IOMMU_HWPT_DIRTY_TRACKING_ENABLE));
    ok(markDirty(f, hwpt, APERTURE, LEN, IO, [0, 3, 15]).r);
    // 0x3000: iova & 0x2fff and (last + 1) & 0x2fff are both 0, so the range is accepted (oracle: bytes 83 00).
    ok(getDirtyBitmap(f, hwpt, { iova: APERTURE, length: LEN, pageSize: 0x3000n, data: bitmap }));
    assert.deepEqual([...f.p.peek(bitmap, 2)], [0x83, 0x00]);
  });

  test('an unwritable bitmap still returns 0 and the dirty bits are read and cleared all the same: 6.12 pins the bitmap only when a bit is set (iova_bitmap_set)', () => {
    const { f, hwpt, bitmap, read } = dirtySetup();
    ok(setDirtyTracking(f, hwpt, IOMMU_HWPT_DIRTY_TRACKING_ENABLE));
    const ro = f.p.mmapOrThrow(PAGE, PROT_READ);
    for (const data of [0n, ro]) {
      ok(markDirty(f, hwpt, APERTURE, LEN, IO, [0, 2]).r);
      ok(getDirtyBitmap(f, hwpt, { iova: APERTURE, length: LEN, pageSize: IO, data }));
      f.p.poke(bitmap, new Uint8Array(2));
      ok(getDirtyBitmap(f, hwpt, { iova: APERTURE, length: LEN, pageSize: IO, data: bitmap }));
      assert.deepEqual(read(), [], `the read through ${data ? 'a read-only' : 'a NULL'} bitmap cleared the bits (oracle)`);
    }
    // With NO_CLEAR nothing is lost.
    ok(markDirty(f, hwpt, APERTURE, LEN, IO, [0, 2]).r);
    ok(getDirtyBitmap(f, hwpt, { iova: APERTURE, length: LEN, pageSize: IO, data: 0n, flags: IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR }));
    ok(getDirtyBitmap(f, hwpt, { iova: APERTURE, length: LEN, pageSize: IO, data: bitmap }));
    assert.deepEqual(read(), [0, 2]);
  });

  test('enabling tracking starts from a clean slate: bits marked before a disable and re-enable are gone', () => {
    const { f, hwpt, bitmap, read } = dirtySetup();
    ok(setDirtyTracking(f, hwpt, IOMMU_HWPT_DIRTY_TRACKING_ENABLE));
    ok(markDirty(f, hwpt, APERTURE, LEN, IO, [4, 5]).r);
    ok(setDirtyTracking(f, hwpt, 0));
    ok(setDirtyTracking(f, hwpt, IOMMU_HWPT_DIRTY_TRACKING_ENABLE));
    ok(getDirtyBitmap(f, hwpt, { iova: APERTURE, length: LEN, pageSize: IO, data: bitmap }));
    assert.deepEqual(read(), []);
  });

  test('with tracking off GET_DIRTY_BITMAP returns 0 and sets nothing: 6.12 drops the driver EINVAL (iommu_read_and_clear_dirty)', () => {
    const { f, hwpt, bitmap, read } = dirtySetup();
    ok(setDirtyTracking(f, hwpt, IOMMU_HWPT_DIRTY_TRACKING_ENABLE));
    ok(markDirty(f, hwpt, APERTURE, LEN, IO, [6]).r);
    ok(setDirtyTracking(f, hwpt, 0));
    ok(getDirtyBitmap(f, hwpt, { iova: APERTURE, length: LEN, pageSize: IO, data: bitmap }));
    assert.deepEqual(read(), []);
  });

  test('GET_DIRTY_BITMAP range checks (iommufd_check_iova_range) come before the EOPNOTSUPP of a HWPT without dirty tracking', () => {
    const { f, a, hwpt, bitmap } = dirtySetup();
    ok(setDirtyTracking(f, hwpt, IOMMU_HWPT_DIRTY_TRACKING_ENABLE));
    const g = (v: Partial<Parameters<typeof getDirtyBitmap>[2]>, id = hwpt) => () => getDirtyBitmap(f, id, { iova: APERTURE, length: LEN, pageSize: IO, data: bitmap, ...v });
    refuse(f.m, EINVAL, g({ length: 0n }));
    refuse(f.m, EINVAL, g({ iova: APERTURE + 0x400n }));
    refuse(f.m, EINVAL, g({ length: LEN + 0x400n }));
    refuse(f.m, EINVAL, g({ pageSize: 0n }));
    refuse(f.m, EINVAL, g({ pageSize: 0x10000n }));
    refuse(f.m, EOVERFLOW, g({ iova: ULONG_MAX - 0x7ffn, length: 0x1000n }));
    refuse(f.m, EOPNOTSUPP, g({ flags: 2 }));
    refuse(f.m, EINVAL, g({ length: 0n }, a.hwpt));
    refuse(f.m, EOPNOTSUPP, g({}, a.hwpt));
    refuse(f.m, ENOENT, g({}, f.ioas));
  });

  test('a hole in the range ends the walk with the ioctl still returning 0: areas past it keep their dirty bits; a range starting in a hole reads nothing', () => {
    const f = mockSetup();
    const a = withDevice(f);
    const h = hwptAlloc(f, { dev: a.idev, pt: f.ioas, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING });
    ok(h.r);
    ok(map(f, f.buf, 2n * PAGE, APERTURE));
    ok(map(f, f.buf + 4n * PAGE, 2n * PAGE, APERTURE + 4n * PAGE));
    ok(setDirtyTracking(f, h.id, IOMMU_HWPT_DIRTY_TRACKING_ENABLE));
    const m = markDirty(f, h.id, APERTURE, 6n * PAGE, IO, [0, 3, 8, 11]);
    ok(m.r);
    assert.equal(m.nr, 4n);
    const bitmap = f.p.mmapOrThrow(PAGE);
    ok(getDirtyBitmap(f, h.id, { iova: APERTURE, length: 6n * PAGE, pageSize: IO, data: bitmap }));
    assert.deepEqual(bitsOf(f.p.peek(bitmap, 2)), [0, 3], 'only the area before the hole was read');
    f.p.poke(bitmap, new Uint8Array(2));
    ok(getDirtyBitmap(f, h.id, { iova: APERTURE + 2n * PAGE, length: 4n * PAGE, pageSize: IO, data: bitmap }));
    assert.deepEqual(bitsOf(f.p.peek(bitmap, 2)), [], 'a range that starts in the hole reads nothing');
    ok(getDirtyBitmap(f, h.id, { iova: APERTURE + 4n * PAGE, length: 2n * PAGE, pageSize: IO, data: bitmap }));
    assert.deepEqual(bitsOf(f.p.peek(bitmap, 2)), [0, 3], 'the second area kept its bits');
  });

  test('IOMMU_TEST_OP_DIRTY looks entries up at cur / page_size in the 2 KiB-indexed table: 4 KiB pages at 32 MiB mark 16 MiB (6.12 mock)', () => {
    const { f, hwpt, bitmap, read } = dirtySetup();
    ok(setDirtyTracking(f, hwpt, IOMMU_HWPT_DIRTY_TRACKING_ENABLE));
    const at16 = markDirty(f, hwpt, APERTURE, LEN, PAGE, [0, 1]);
    ok(at16.r);
    assert.equal(at16.nr, 0n, 'index 4096 is IOVA 8 MiB: nothing mapped there');
    const at32 = markDirty(f, hwpt, 2n * APERTURE, LEN, PAGE, [0, 1]);
    ok(at32.r);
    assert.equal(at32.nr, 2n);
    ok(getDirtyBitmap(f, hwpt, { iova: APERTURE, length: LEN, pageSize: IO, data: bitmap }));
    assert.deepEqual(read(), [0, 1]);
  });

  test('a huge IOVA page is reported dirty when only its last 2 KiB entry is (mock_test_and_clear_dirty walks all 512)', () => {
    const f = mockSetup();
    const a = withDevice(f, MOCK_FLAGS_DEVICE_HUGE_IOVA);
    const h = hwptAlloc(f, { dev: a.idev, pt: f.ioas, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING });
    ok(h.r);
    const huge = f.p.mmapOrThrow(BigInt(HPAGE_SIZE), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE);
    ok(map(f, huge, BigInt(HPAGE_SIZE), APERTURE));
    const dom = mockDom(f, h.id);
    assert.ok(dom.pt.isHuge(APERTURE) && dom.pt.isHuge(APERTURE + 0x100000n), 'both MiB of the mapping are huge IO pages');
    ok(setDirtyTracking(f, h.id, IOMMU_HWPT_DIRTY_TRACKING_ENABLE));
    const last = 511;
    const r = markDirty(f, h.id, APERTURE, BigInt(HPAGE_SIZE), 2048n, [last]);
    ok(r.r);
    assert.equal(r.nr, 1n);
    const bitmap = f.p.mmapOrThrow(PAGE);
    ok(getDirtyBitmap(f, h.id, { iova: APERTURE, length: BigInt(HPAGE_SIZE), pageSize: 2048n, data: bitmap }));
    const bits = bitsOf(f.p.peek(bitmap, 128));
    assert.equal(bits.length, 512, 'the whole first huge page reads dirty');
    assert.equal(bits[0], 0);
    assert.equal(bits[511], 511);
  });
});

describe('IO page faults from a mock device', () => {
  /** The selftest's alloc_hwpt_nested IOPF half: fault queue, NEST_PARENT parent, nested HWPT with the queue, device on it. */
  function iopfSetup() {
    const f = mockSetup();
    const d = withDevice(f);
    const q = faultAlloc(f);
    ok(q.r);
    assert.equal(q.id, 5);
    const parent = hwptAlloc(f, { dev: d.idev, pt: f.ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT });
    ok(parent.r);
    const iopf = nestedAlloc(f, d.idev, parent.id, IOMMU_TEST_IOTLB_DEFAULT, { flags: IOMMU_HWPT_FAULT_ID_VALID, faultId: q.id });
    ok(iopf.r);
    const r = replace(f, d.stdev, iopf.id);
    ok(r.r);
    assert.equal(r.pt, iopf.id);
    const buf = f.p.mmapOrThrow(PAGE);
    const read = (count = 40) => {
      const res = f.p.read(q.fd, buf, count);
      const n = res.errno ? 0 : Number(res.ret);
      const faults = Array.from({ length: n / 40 }, (_, i) => iommu_hwpt_pgfault.decode(f.p.peek(buf + BigInt(40 * i), 40)));
      return { res, faults };
    };
    const respond = (cookie: number, code = IOMMUFD_PAGE_RESP_SUCCESS) => {
      f.p.poke(buf + 0x800n, iommu_hwpt_page_response.encode({ cookie, code }));
      return f.p.write(q.fd, buf + 0x800n, 8);
    };
    return { f, d, q, parent: parent.id, iopf: iopf.id, read, respond };
  }

  test('TRIGGER_IOPF reads back as one iommu_hwpt_pgfault stamped with the device ID; its cookie is answered once', () => {
    const { f, d, read, respond } = iopfSetup();
    const perm = IOMMU_PGFAULT_PERM_READ | IOMMU_PGFAULT_PERM_WRITE;
    ok(triggerIopf(f, d.idev, { pasid: 1, grpid: 2, perm, addr: 0xdeadbeafn }));
    const { res, faults } = read(80);
    assert.equal(ok(res), 40, 'one fault group of one fault');
    assert.deepEqual(faults[0], {
      flags: IOMMU_PGFAULT_FLAGS_PASID_VALID | IOMMU_PGFAULT_FLAGS_LAST_PAGE,
      dev_id: d.idev,
      pasid: 1,
      grpid: 2,
      perm,
      __reserved: 0,
      addr: 0xdeadbeafn,
      length: 0,
      cookie: 1,
    });
    assert.equal(ok(read().res), 0, 'nothing more to read');
    assert.equal(ok(respond(1)), 8);
    fails(respond(1), EINVAL);
  });

  test('a fault without a PASID carries only LAST_PAGE; cookies are the lowest free from 1', () => {
    const { f, d, read, respond } = iopfSetup();
    ok(triggerIopf(f, d.idev, { pasid: 0, addr: 0x1000n }));
    ok(triggerIopf(f, d.idev, { pasid: 0, addr: 0x2000n }));
    const both = read(80);
    assert.equal(ok(both.res), 80);
    assert.deepEqual(
      both.faults.map((x) => [x.flags, x.pasid, x.addr, x.cookie]),
      [
        [IOMMU_PGFAULT_FLAGS_LAST_PAGE, 0, 0x1000n, 1],
        [IOMMU_PGFAULT_FLAGS_LAST_PAGE, 0, 0x2000n, 2],
      ],
    );
    ok(respond(1));
    ok(triggerIopf(f, d.idev, { pasid: 0, addr: 0x3000n }));
    assert.equal(read().faults[0]!.cookie, 1);
  });

  test('reads must be a multiple of 40 bytes (ESPIPE); a zero-byte read with a fault pending is EINVAL; responses must be 8-byte multiples with a known code', () => {
    const { f, d, read, respond } = iopfSetup();
    fails(read(41).res, ESPIPE);
    ok(triggerIopf(f, d.idev));
    fails(read(0).res, EINVAL);
    fails(read(20).res, ESPIPE);
    assert.equal(read().faults[0]!.cookie, 1);
    fails(respond(1, 2), EINVAL);
    fails(respond(2), EINVAL);
    ok(respond(1));
  });

  test('DESTROY of the fault object is EBUSY while its fd is open or a HWPT uses it', () => {
    const { f, d, q, parent, iopf } = iopfSetup();
    refuse(f.m, EBUSY, () => destroy(f, q.id));
    ok(f.p.close(q.fd));
    refuse(f.m, EBUSY, () => destroy(f, q.id));
    refuse(f.m, EBUSY, () => destroy(f, iopf));
    ok(replace(f, d.stdev, parent).r);
    ok(destroy(f, iopf));
    ok(destroy(f, q.id));
  });

  test('FAULT_ID_VALID with a missing fault ID or the ID of another object is ENOENT, and nothing is left', () => {
    const { f, d, parent } = iopfSetup();
    const data = selftestData(f, 1);
    const args = { dev: d.idev, pt: parent, flags: IOMMU_HWPT_FAULT_ID_VALID, dataType: IOMMU_HWPT_DATA_SELFTEST, dataLen: 4, dataUptr: data };
    const before = mockState(f);
    fails(hwptAlloc(f, { ...args, faultId: 0xffffffff }).r, ENOENT);
    fails(hwptAlloc(f, { ...args, faultId: f.ioas }).r, ENOENT);
    fails(hwptAlloc(f, { ...args, faultId: parent }).r, ENOENT);
    assert.equal(mockState(f), before);
  });

  test('a device on a HWPT without a fault queue raises faults into nothing: TRIGGER_IOPF still returns 0', () => {
    const { f, d, parent, read } = iopfSetup();
    ok(replace(f, d.stdev, parent).r);
    ok(triggerIopf(f, d.idev));
    assert.equal(ok(read().res), 0);
  });

  test('faults the device left behind are answered INVALID when it leaves the HWPT: queued ones vanish, delivered cookies die', () => {
    const { f, d, parent, iopf, read, respond } = iopfSetup();
    ok(triggerIopf(f, d.idev, { addr: 0x1000n }));
    assert.equal(read().faults[0]!.cookie, 1);
    ok(triggerIopf(f, d.idev, { addr: 0x2000n }));
    ok(replace(f, d.stdev, parent).r);
    fails(respond(1), EINVAL);
    assert.equal(ok(read().res), 0, 'the undelivered fault was dropped');
    ok(replace(f, d.stdev, iopf).r);
    ok(triggerIopf(f, d.idev, { addr: 0x3000n }));
    const again = read();
    assert.equal(again.faults[0]!.addr, 0x3000n);
    assert.equal(again.faults[0]!.cookie, 1);
  });

  test('destroying the stdev answers its outstanding faults: the delivered cookie dies and the queue empties', () => {
    const { f, d, read, respond } = iopfSetup();
    ok(triggerIopf(f, d.idev, { addr: 0x1000n }));
    assert.equal(read().faults[0]!.cookie, 1);
    ok(triggerIopf(f, d.idev, { addr: 0x2000n }));
    ok(destroy(f, d.stdev));
    fails(respond(1), EINVAL);
    assert.equal(ok(read().res), 0);
  });

  test('MOCK_DOMAIN straight onto an IOPF-capable HWPT turns IOPF on for the new device', () => {
    const { f, d, iopf, read } = iopfSetup();
    const b = mockDomain(f, iopf);
    ok(b.r);
    assert.equal(b.hwpt, iopf);
    assert.equal((ctxOf(f).peek(b.idev) as IommufdDevice).iopfEnabled, 1);
    ok(triggerIopf(f, b.idev, { pasid: 0, addr: 0x7000n }));
    ok(triggerIopf(f, d.idev, { pasid: 0, addr: 0x8000n }));
    const got = read(80);
    assert.deepEqual(
      got.faults.map((x) => [x.dev_id, x.addr, x.cookie]),
      [
        [b.idev, 0x7000n, 1],
        [d.idev, 0x8000n, 2],
      ],
    );
  });

  test('poll on the fault fd: POLLOUT while empty, POLLIN | POLLRDNORM | POLLOUT while a fault waits to be read (oracle)', () => {
    const { f, d, q, read } = iopfSetup();
    assert.equal(ok(f.p.poll(q.fd)), 0x4);
    ok(triggerIopf(f, d.idev));
    assert.equal(ok(f.p.poll(q.fd)), 0x45);
    assert.equal(ok(read().res), 40);
    assert.equal(ok(f.p.poll(q.fd)), 0x4, 'a delivered fault awaiting its response no longer makes the fd readable');
  });

  test('a read whose buffer faults after the first group returns that group; a fault on the first group is EFAULT and keeps it queued (oracle)', () => {
    const { f, d, q } = iopfSetup();
    ok(triggerIopf(f, d.idev, { pasid: 0, addr: 0x1000n }));
    ok(triggerIopf(f, d.idev, { pasid: 0, addr: 0x2000n }));
    const two = f.p.mmapOrThrow(2n * PAGE);
    ok(f.p.munmap(two + PAGE, PAGE));
    const edge = two + PAGE - 40n;
    fails(f.p.read(q.fd, two + PAGE, 40), EFAULT);
    assert.equal(ok(f.p.read(q.fd, edge, 80)), 40, 'the first group fits before the hole');
    assert.deepEqual([iommu_hwpt_pgfault.decode(f.p.peek(edge, 40)).addr, iommu_hwpt_pgfault.decode(f.p.peek(edge, 40)).cookie], [0x1000n, 1]);
    assert.equal(ok(f.p.read(q.fd, two, 80)), 40);
    assert.deepEqual([iommu_hwpt_pgfault.decode(f.p.peek(two, 40)).addr, iommu_hwpt_pgfault.decode(f.p.peek(two, 40)).cookie], [0x2000n, 2]);
  });

  test('fail-nth over TRIGGER_IOPF: the device lookup fails ENOENT; a failed iopf_group allocation still returns 0 and delivers nothing (oracle)', () => {
    const { f, d, read, respond } = iopfSetup();
    const res = sweep(f.p, () => mockState(f), () => triggerIopf(f, d.idev, { pasid: 0 }), [ENOENT], () => assert.equal(ok(read().res), 0, 'the aborted fault was never queued'));
    assert.deepEqual([...res.failing], [[1, 'ENOENT']]);
    assert.deepEqual(res.tolerated, [2]);
    assert.equal(res.finalN, 3);
    const got = read();
    assert.equal(got.faults.length, 1);
    ok(respond(got.faults[0]!.cookie));
  });

  test('TRIGGER_IOPF on an ID that is no device is ENOENT', () => {
    const { f, d, q } = iopfSetup();
    fails(triggerIopf(f, d.stdev), ENOENT);
    fails(triggerIopf(f, q.id), ENOENT);
    fails(triggerIopf(f, 99), ENOENT);
  });
});

describe('fail-nth sweeps over mock attach and HWPT allocation', () => {
  /** An IOAS with two mappings inside the aperture. */
  function mapped(): Fixture {
    const f = mockSetup();
    ok(map(f, f.buf, 2n * PAGE, APERTURE));
    ok(map(f, f.buf + 4n * PAGE, 4n * PAGE, APERTURE + 0x100000n));
    return f;
  }

  test('MOCK_DOMAIN on an IOAS with mappings fails cleanly at every fault site and then attaches with IDs 2, 3, 4', () => {
    const f = mapped();
    let last = { stdev: 0, idev: 0, hwpt: 0 };
    const res = sweep(
      f.p,
      () => mockState(f),
      () => {
        const d = mockDomain(f, f.ioas);
        last = d;
        return d.r;
      },
      [ENOMEM, ENOENT, EINVAL, EFAULT],
    );
    const seen = new Set(res.failing.values());
    for (const e of ['ENOMEM', 'ENOENT', 'EINVAL']) assert.ok(seen.has(e), `no N failed with ${e}: ${[...res.failing].join(' ')}`);
    assert.ok(res.failing.size >= 6, `only ${res.failing.size} fault sites`);
    assert.deepEqual([last.stdev, last.idev, last.hwpt], [2, 3, 4]);
    ok(checkMap(f, 4, APERTURE, 2n * PAGE, f.buf));
    ok(checkMap(f, 4, APERTURE + 0x100000n, 4n * PAGE, f.buf + 4n * PAGE));
    ok(checkRefs(f, f.buf, 2n * PAGE, 1));
  });

  test('MOCK_DOMAIN with the copy-back failing too (usercopy) undoes the attach', () => {
    const f = mapped();
    f.m.inject.enabled.add('usercopy');
    const res = sweep(f.p, () => mockState(f), () => mockDomain(f, f.ioas).r, [ENOMEM, ENOENT, EINVAL, EFAULT]);
    assert.ok(new Set(res.failing.values()).has('EFAULT'));
  });

  test('a second MOCK_DOMAIN reusing the automatic domain fails cleanly; an injected reserved-region EINVAL makes it take a new domain, as in the kernel', () => {
    const f = mapped();
    withDevice(f);
    let last = { stdev: 0, idev: 0, hwpt: 0 };
    const res = sweep(
      f.p,
      () => mockState(f),
      () => {
        const d = mockDomain(f, f.ioas);
        last = d;
        return d.r;
      },
      [ENOMEM, ENOENT, EINVAL, EFAULT],
      () => {
        // iommufd_device_auto_get_domain reads EINVAL as "incompatible domain, try the next one".
        assert.equal(last.hwpt, 7, 'the tolerated fault allocated a second automatic domain');
        ok(destroy(f, last.stdev));
      },
    );
    assert.ok(res.tolerated.length >= 1, 'the EINVAL from iopt_table_enforce_dev_resv_regions is tolerated');
    assert.deepEqual([last.stdev, last.idev, last.hwpt], [5, 6, 4]);
  });

  test('IOMMU_HWPT_ALLOC of a paging HWPT over mappings fails cleanly at every fault site, copy-back included', () => {
    const f = mapped();
    const d = withDevice(f);
    f.m.inject.enabled.add('usercopy');
    let id = 0;
    const res = sweep(
      f.p,
      () => mockState(f),
      () => {
        const h = hwptAlloc(f, { dev: d.idev, pt: f.ioas, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING });
        id = h.id;
        return h.r;
      },
      [ENOMEM, ENOENT, EINVAL, EFAULT],
    );
    const seen = new Set(res.failing.values());
    for (const e of ['ENOMEM', 'ENOENT', 'EFAULT']) assert.ok(seen.has(e), `no N failed with ${e}`);
    assert.equal(id, 5);
    ok(checkMap(f, 5, APERTURE + 0x100000n, 4n * PAGE, f.buf + 4n * PAGE));
  });

  test('IOMMU_HWPT_ALLOC of a nested HWPT with a fault queue fails cleanly at every fault site', () => {
    const f = mapped();
    const d = withDevice(f);
    const parent = hwptAlloc(f, { dev: d.idev, pt: f.ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT });
    ok(parent.r);
    const q = faultAlloc(f);
    ok(q.r);
    const data = selftestData(f, 0x1234);
    f.m.inject.enabled.add('usercopy');
    let id = 0;
    const res = sweep(
      f.p,
      () => mockState(f),
      () => {
        const h = hwptAlloc(f, { dev: d.idev, pt: parent.id, flags: IOMMU_HWPT_FAULT_ID_VALID, faultId: q.id, dataType: IOMMU_HWPT_DATA_SELFTEST, dataLen: iommu_hwpt_selftest.size, dataUptr: data });
        id = h.id;
        return h.r;
      },
      [ENOMEM, ENOENT, EINVAL, EFAULT],
    );
    const seen = new Set(res.failing.values());
    for (const e of ['ENOMEM', 'ENOENT', 'EFAULT']) assert.ok(seen.has(e), `no N failed with ${e}`);
    assert.equal(id, 7);
    ok(checkIotlb(f, 7, 3, 0x1234));
    assert.equal(ctxOf(f).peek(q.id)!.users, 3, 'table + fd + the new HWPT');
  });

  test('MOCK_DOMAIN_REPLACE onto another IOAS fails cleanly at every fault site, leaving the device on its old domain', () => {
    const f = mapped();
    const d = withDevice(f);
    const ioas2 = ioasAlloc(f.p, f.fd);
    ok(map({ ...f, ioas: ioas2 }, f.buf, 2n * PAGE, APERTURE));
    let pt = 0;
    const res = sweep(
      f.p,
      () => mockState(f),
      () => {
        const r = replace(f, d.stdev, ioas2);
        pt = r.pt;
        return r.r;
      },
      [ENOMEM, ENOENT, EINVAL, EFAULT],
    );
    assert.ok(res.failing.size >= 3);
    assert.equal(pt, 6);
    assert.equal(ctxOf(f).peek(d.hwpt), undefined);
  });

  test('IOMMU_HWPT_ALLOC of a nested HWPT visits exactly the kernel fault sites: device, parent (as EINVAL), object, mock nested domain, fault object (oracle)', () => {
    const f = mapped();
    const d = withDevice(f);
    const parent = hwptAlloc(f, { dev: d.idev, pt: f.ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT });
    ok(parent.r);
    const q = faultAlloc(f);
    ok(q.r);
    const data = selftestData(f, 7);
    const res = sweep(
      f.p,
      () => mockState(f),
      () => hwptAlloc(f, { dev: d.idev, pt: parent.id, flags: IOMMU_HWPT_FAULT_ID_VALID, faultId: q.id, dataType: IOMMU_HWPT_DATA_SELFTEST, dataLen: 4, dataUptr: data }).r,
      [ENOMEM, ENOENT, EINVAL],
    );
    assert.deepEqual([...res.failing.values()], ['ENOENT', 'EINVAL', 'ENOMEM', 'ENOMEM', 'ENOENT']);
    assert.equal(res.finalN, 6);
  });

  test('IOMMU_HWPT_ALLOC of a paging HWPT: the mock domain and the two aperture reservations are allocation fault sites too (oracle: 6 ENOMEM sites before the first map)', () => {
    const f = mapped();
    const d = withDevice(f);
    const res = sweep(
      f.p,
      () => mockState(f),
      () => {
        const h = hwptAlloc(f, { dev: d.idev, pt: f.ioas });
        return h.r;
      },
      [ENOMEM, ENOENT, EINVAL],
      () => {},
    );
    const enomem = [...res.failing.values()].filter((e) => e === 'ENOMEM').length;
    assert.ok(enomem >= 4, `only ${enomem} ENOMEM sites: ${[...res.failing].join(' ')}`);
  });

  /** A device, a NEST_PARENT parent (5) and a nested HWPT (6) on it. */
  function nestedFixture() {
    const f = mapped();
    const d = withDevice(f);
    const parent = hwptAlloc(f, { dev: d.idev, pt: f.ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT });
    ok(parent.r);
    const n = nestedAlloc(f, d.idev, parent.id, 1);
    ok(n.r);
    return { f, d, parent: parent.id, nested: n.id };
  }

  test('replacing a nested HWPT by its parent keeps the IOAS: its fault sites are exactly the two lookups and the attach handle (oracle)', () => {
    const { f, d, parent, nested } = nestedFixture();
    ok(replace(f, d.stdev, nested).r);
    const res = sweep(f.p, () => mockState(f), () => replace(f, d.stdev, parent).r, [ENOMEM, ENOENT, EINVAL], () => ok(replace(f, d.stdev, nested).r));
    assert.deepEqual([...res.failing.values()], ['ENOENT', 'ENOENT', 'ENOMEM']);
    assert.equal(res.finalN, 4);
  });

  test('replacing a parent by a nested HWPT on it has the same three fault sites (oracle)', () => {
    const { f, d, parent, nested } = nestedFixture();
    ok(replace(f, d.stdev, parent).r);
    const res = sweep(f.p, () => mockState(f), () => replace(f, d.stdev, nested).r, [ENOMEM, ENOENT, EINVAL], () => ok(replace(f, d.stdev, parent).r));
    assert.deepEqual([...res.failing.values()], ['ENOENT', 'ENOENT', 'ENOMEM']);
    assert.equal(res.finalN, 4);
  });

  test('MOCK_DOMAIN on a nested HWPT reserves the device regions in the parent IOAS: that fault site fails it with EINVAL, cleanly', () => {
    const { f, nested } = nestedFixture();
    let stdev = 0;
    const res = sweep(
      f.p,
      () => mockState(f),
      () => {
        const r = mockDomain(f, nested);
        stdev = r.stdev;
        return r.r;
      },
      [ENOMEM, ENOENT, EINVAL, EFAULT],
    );
    assert.ok([...res.reasons.values()].some((why) => /reserving the device regions/.test(why)), `sites: ${[...res.failing].join(' ')}`);
    ok(destroy(f, stdev));
  });
});

describe('refusals leave the whole machine as it was', () => {
  test('a failed MOCK_DOMAIN on a dirty HWPT leaves IDs, groups, mock device numbers and the fd table untouched', () => {
    const f = mockSetup();
    const a = withDevice(f);
    const h = hwptAlloc(f, { dev: a.idev, pt: f.ioas, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING });
    ok(h.r);
    const before = fullSnapshot(f.m);
    fails(mockDomain(f, h.id, MOCK_FLAGS_DEVICE_NO_DIRTY).r, EINVAL);
    assert.equal(fullSnapshot(f.m), before);
    const b = withDevice(f);
    assert.deepEqual([b.stdev, b.idev], [6, 7]);
    assert.equal(((ctxOf(f).peek(7) as IommufdDevice).dev as MockDevice).name, 'iommufd_mock1');
    assert.ok(ctxOf(f).peek(6) instanceof SelftestObj);
  });
});
