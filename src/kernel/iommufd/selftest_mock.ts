/**
 * The selftest's mock IOMMU driver (selftest.c, mock_ops): mock devices on their own bus, each in
 * its own IOMMU group, translated by paging domains over the 2 KiB mock page table
 * (hw/mock_pgtable.ts) with the [16 MiB, 2 GiB) aperture, optional dirty tracking and huge IOVA
 * pages, nested domains holding a 4-entry fake IOTLB, and a blocking domain as the default.
 *
 * One deliberate extension: MOCK_FLAGS_DEVICE_PASID (1 << 2), which the Debian 6.12 selftest's
 * mock_domain variant already asks for (a post-6.12 mock flag). Accepting it gives the device a
 * PASID width of 20 bits and lets that variant run; nothing else in 6.12 looks at it.
 */

import { Errno, KernelError, fail } from '../../errno.js';
import { MockPgtable, MOCK_HUGE_PAGE_SIZE, MOCK_IO_PAGE_SIZE } from '../../hw/mock_pgtable.js';
import {
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
} from '../../uapi/iommufd.js';
import {
  IOMMU_HW_INFO_SELFTEST_REGVAL,
  IOMMU_HW_INFO_TYPE_SELFTEST,
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
  IOMMU_TEST_INVALIDATE_FLAG_ALL,
  MOCK_APERTURE_LAST,
  MOCK_APERTURE_START,
  MOCK_FLAGS_DEVICE_HUGE_IOVA,
  MOCK_FLAGS_DEVICE_NO_DIRTY,
  MOCK_NESTED_DOMAIN_IOTLB_ID_MAX,
  MOCK_NESTED_DOMAIN_IOTLB_NUM,
  iommu_hwpt_invalidate_selftest,
  iommu_hwpt_selftest,
  iommu_test_hw_info,
} from '../../uapi/iommufd_test.js';
import {
  BlockedDomain,
  Device,
  IOMMU_CAP,
  IOMMU_DIRTY_NO_CLEAR,
  IommuDomain,
  PagingDomain,
  type DirtyRecorder,
  type IommuCap,
  type IommuDriver,
  type IommuUserData,
  type ResvRegion,
} from '../iommu/core.js';
import type { Machine } from '../machine.js';
import type { Process } from '../process.js';
import { copyStructFromUser } from '../uaccess.js';

/** Post-6.12 mock flag the Debian 6.12 selftest sets for its mock_domain variant (see above). */
export const MOCK_FLAGS_DEVICE_PASID = 1 << 2;
const MOCK_PASID_WIDTH = 20;

export class MockDevice extends Device {
  readonly flags: number;
  readonly mockId: number;

  constructor(mockId: number, flags: number) {
    super(`iommufd_mock${mockId}`, 'iommufd_mock');
    this.mockId = mockId;
    this.flags = flags;
  }
}

/** mock_domain_nop_attach: a dirty-tracking domain refuses a device that cannot track. */
function nopAttach(domain: IommuDomain, dev: Device): void {
  const dirty = domain instanceof MockDomain && domain.dirtyCapable;
  if (dirty && dev instanceof MockDevice && dev.flags & MOCK_FLAGS_DEVICE_NO_DIRTY) {
    fail(Errno.EINVAL, `${dev.name} has MOCK_FLAGS_DEVICE_NO_DIRTY and the domain tracks dirty pages`);
  }
}

class MockBlockedDomain extends BlockedDomain {
  override attachDev(dev: Device): void {
    nopAttach(this, dev);
  }
}

/** struct mock_iommu_domain. */
export class MockDomain extends PagingDomain {
  readonly pt: MockPgtable;
  dirtyTracking = false;
  readonly machine: Machine;

  constructor(driver: MockIommuDriver, hugeIova: boolean) {
    super(driver, MOCK_IO_PAGE_SIZE | (hugeIova ? MOCK_HUGE_PAGE_SIZE : 0n), MOCK_APERTURE_START, MOCK_APERTURE_LAST);
    this.machine = driver.machine;
    this.pt = new MockPgtable(hugeIova);
  }

  attachDev(dev: Device): void {
    nopAttach(this, dev);
  }

  mapPages(iova: bigint, paddr: bigint, pgsize: bigint, pgcount: bigint, prot: number): bigint {
    // The mock's own failure point (xarray allocations cannot be failed reliably).
    if (this.machine.inject.shouldFail(this.mapTask, 'iommufd')) fail(Errno.ENOENT, 'mock IOMMU map_pages: fault injected (fail-nth)');
    this.pt.mapPages(iova, paddr, pgsize, Number(pgcount), prot);
    return pgsize * pgcount;
  }

  unmapPages(iova: bigint, pgsize: bigint, pgcount: bigint): bigint {
    return this.pt.unmapPages(iova, pgsize, Number(pgcount));
  }

  iovaToPhys(iova: bigint): bigint | null {
    return this.pt.iovaToPhys(iova);
  }

  /** mock_domain_set_dirty_tracking. */
  override setDirtyTracking(enable: boolean): void {
    if (enable && !this.dirtyCapable) fail(Errno.EINVAL, 'the mock domain was not allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING');
    this.dirtyTracking = enable;
  }

  /** mock_domain_read_and_clear_dirty: dirty entries reported at their page size (huge or 2 KiB). */
  override readAndClearDirty(iova: bigint, size: bigint, flags: number, record: DirtyRecorder | null): void {
    if (!this.dirtyTracking && record) fail(Errno.EINVAL, 'dirty tracking is not enabled on the mock domain');
    const end = iova + size;
    do {
      let pgsize = MOCK_IO_PAGE_SIZE;
      if (this.pt.iovaToPhys(iova) === null) {
        iova += pgsize;
        continue;
      }
      if (this.pt.isHuge(iova)) pgsize = MOCK_HUGE_PAGE_SIZE;
      const head = iova & ~(pgsize - 1n);
      if (this.pt.testAndClearDirty(head, pgsize, (flags & IOMMU_DIRTY_NO_CLEAR) !== 0)) {
        record?.(iova, pgsize);
      }
      iova += pgsize;
    } while (iova < end);
  }

  override free(): void {
    if (this.pt.entries) throw new Error(`mock IOMMU: domain freed with ${this.pt.entries} entries still mapped`);
  }
}

/** struct mock_iommu_domain_nested. */
export class MockNestedDomain extends IommuDomain {
  readonly type = 'nested';
  readonly parent: MockDomain;
  readonly iotlb: number[];

  constructor(driver: MockIommuDriver, parent: MockDomain, iotlb: number) {
    super(driver);
    this.parent = parent;
    this.iotlb = new Array<number>(MOCK_NESTED_DOMAIN_IOTLB_NUM).fill(iotlb);
  }

  attachDev(dev: Device): void {
    nopAttach(this, dev);
  }

  /**
   * mock_domain_cache_invalidate_user: entries handled in order; the count of those handled is
   * reported even when one fails.
   */
  cacheInvalidateUser(task: Process, arr: { type: number; uptr: bigint; entryLen: number; entryNum: number }): { done: number; error: KernelError | null } {
    let done = 0;
    try {
      if (arr.type !== IOMMU_HWPT_INVALIDATE_DATA_SELFTEST) fail(Errno.EINVAL, `invalidation data type 0x${arr.type.toString(16)} is not IOMMU_HWPT_INVALIDATE_DATA_SELFTEST`);
      for (let i = 0; i < arr.entryNum; i++) {
        const raw = copyFromUserData(task, { type: arr.type, uptr: arr.uptr + BigInt(arr.entryLen * i), len: arr.entryLen, task }, IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, iommu_hwpt_invalidate_selftest.size, iommu_hwpt_invalidate_selftest.size, 'iommu_hwpt_invalidate_selftest');
        const inv = iommu_hwpt_invalidate_selftest.decode(raw);
        if (inv.flags & ~IOMMU_TEST_INVALIDATE_FLAG_ALL) fail(Errno.EOPNOTSUPP, `entry ${i}: unknown invalidation flags 0x${inv.flags.toString(16)}`);
        if (inv.iotlb_id > MOCK_NESTED_DOMAIN_IOTLB_ID_MAX) fail(Errno.EINVAL, `entry ${i}: iotlb_id ${inv.iotlb_id} is above ${MOCK_NESTED_DOMAIN_IOTLB_ID_MAX}`);
        if (inv.flags & IOMMU_TEST_INVALIDATE_FLAG_ALL) this.iotlb.fill(0);
        else this.iotlb[inv.iotlb_id] = 0;
        done++;
      }
      return { done, error: null };
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      return { done, error: e };
    }
  }
}

/**
 * __iommu_copy_struct_from_user: the data type must match, the user length must reach the last
 * mandatory field and not exceed what the kernel knows; then copy_struct_from_user.
 */
export function copyFromUserData(task: Process, ud: IommuUserData, type: number, ksize: number, minLen: number, what: string): Uint8Array {
  if (ud.type !== type) fail(Errno.EINVAL, `${what}: data type 0x${ud.type.toString(16)} is not 0x${type.toString(16)}`);
  if (ud.len < minLen || ksize < ud.len) fail(Errno.EINVAL, `${what}: data length ${ud.len} is outside ${minLen}..${ksize}`);
  return copyStructFromUser(task, ksize, ud.uptr, ud.len, what);
}

/** mock_ops. */
export class MockIommuDriver implements IommuDriver {
  readonly name = 'iommufd_mock';
  readonly pgsizeBitmap = MOCK_IO_PAGE_SIZE;
  readonly userPasidTable = true;
  readonly machine: Machine;
  readonly #blocked = new MockBlockedDomain(this);
  /** mock_dev_ida: the lowest free mock device number. */
  readonly #ids = new Set<number>();
  /** Whether the mock IOPF queue exists (it always does once the module is loaded). */
  iopfQueue = true;

  constructor(machine: Machine) {
    this.machine = machine;
  }

  /** mock_dev_create: a new device in a new group, its default domain the blocking one. */
  createDevice(task: Process, flags: number): MockDevice {
    const known = MOCK_FLAGS_DEVICE_NO_DIRTY | MOCK_FLAGS_DEVICE_HUGE_IOVA | MOCK_FLAGS_DEVICE_PASID;
    if (flags & ~known) fail(Errno.EINVAL, `unknown mock device flags 0x${(flags & ~known).toString(16)}`);
    if (this.machine.inject.shouldFail(task, 'slab')) fail(Errno.ENOMEM, 'allocating the mock device: fault injected (fail-nth)');
    let id = 0;
    while (this.#ids.has(id)) id++;
    this.#ids.add(id);
    const dev = new MockDevice(id, flags);
    this.machine.iommu.allocGroup().addDevice(dev, this, { maxPasids: flags & MOCK_FLAGS_DEVICE_PASID ? 1 << MOCK_PASID_WIDTH : 0 });
    // The selftest "driver" manages DMA itself.
    dev.bindDriver('iommufd_selftest', true);
    return dev;
  }

  /** mock_dev_destroy. */
  destroyDevice(dev: MockDevice): void {
    dev.unbindDriver();
    const g = dev.group;
    g?.removeDevice(dev);
    if (g && !g.devices.length) this.machine.iommu.releaseGroup(g);
    this.#ids.delete(dev.mockId);
  }

  capable(dev: Device, cap: IommuCap): boolean {
    if (cap === IOMMU_CAP.CACHE_COHERENCY) return true;
    if (cap === IOMMU_CAP.DIRTY_TRACKING) return !(dev instanceof MockDevice && dev.flags & MOCK_FLAGS_DEVICE_NO_DIRTY);
    return false;
  }

  hwInfo(): { type: number; data: Uint8Array } {
    return { type: IOMMU_HW_INFO_TYPE_SELFTEST, data: iommu_test_hw_info.encode({ flags: 0, test_reg: IOMMU_HW_INFO_SELFTEST_REGVAL }) };
  }

  domainAllocPaging(dev: Device, task: Process | null = null): MockDomain {
    if (this.machine.inject.shouldFail(task, 'slab')) fail(Errno.ENOMEM, 'allocating the mock domain: fault injected (fail-nth)');
    return new MockDomain(this, dev instanceof MockDevice && (dev.flags & MOCK_FLAGS_DEVICE_HUGE_IOVA) !== 0);
  }

  domainAllocUser(dev: Device, flags: number, parent: IommuDomain | null, userData: IommuUserData | null, task: Process | null = null): IommuDomain {
    if (!parent) {
      const hasDirty = (flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING) !== 0;
      const noDirty = dev instanceof MockDevice && (dev.flags & MOCK_FLAGS_DEVICE_NO_DIRTY) !== 0;
      if (flags & ~(IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_DIRTY_TRACKING)) fail(Errno.EOPNOTSUPP, `the mock driver does not know HWPT flags 0x${flags.toString(16)}`);
      if (userData) fail(Errno.EOPNOTSUPP, 'a mock paging domain takes no driver data');
      if (hasDirty && noDirty) fail(Errno.EOPNOTSUPP, `${dev.name} cannot track dirty pages (MOCK_FLAGS_DEVICE_NO_DIRTY)`);
      const d = this.domainAllocPaging(dev, task);
      d.dirtyCapable = hasDirty;
      return d;
    }
    if (!userData || userData.type !== IOMMU_HWPT_DATA_SELFTEST || flags) fail(Errno.EOPNOTSUPP, 'a mock nested domain needs IOMMU_HWPT_DATA_SELFTEST data and no flags');
    if (!(parent instanceof MockDomain)) fail(Errno.EINVAL, 'the parent of a mock nested domain must be a mock paging domain');
    const raw = copyFromUserData(userData.task, userData, IOMMU_HWPT_DATA_SELFTEST, iommu_hwpt_selftest.size, iommu_hwpt_selftest.size, 'iommu_hwpt_selftest');
    if (this.machine.inject.shouldFail(userData.task, 'slab')) fail(Errno.ENOMEM, 'allocating the mock nested domain: fault injected (fail-nth)');
    return new MockNestedDomain(this, parent, iommu_hwpt_selftest.decode(raw).iotlb);
  }

  blockedDomain(): IommuDomain {
    return this.#blocked;
  }

  defaultDomain(): IommuDomain {
    return this.#blocked;
  }

  getResvRegions(): ResvRegion[] {
    return [];
  }

  enableIopf(dev: Device): void {
    if (!this.iopfQueue) fail(Errno.ENODEV, 'the mock IOMMU has no IOPF queue');
    dev.iommu!.iopfEnabled = true;
  }

  disableIopf(dev: Device): void {
    dev.iommu!.iopfEnabled = false;
    dev.iommu!.partialFaults = [];
  }
}
