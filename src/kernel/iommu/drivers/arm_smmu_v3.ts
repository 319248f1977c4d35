/**
 * The Arm SMMUv3 driver (drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c, 6.12) over simulated SMMUs
 * (hw/iommu.ts, profile 'smmuv3').
 *
 * A paging domain is finalised against one SMMU when it is allocated (a stage-1 ARM LPAE table:
 * 4 KiB, 2 MiB, 1 GiB pages, 48-bit input addresses) and can only be attached to masters of that
 * SMMU: arm_smmu_attach_dev refuses any other with EINVAL before touching the device, which is
 * what makes iommufd give a device on another SMMU its own automatic domain. Blocking and identity
 * are static domains programming abort and bypass STEs.
 *
 * As 6.12 has it: domain_alloc_user takes only IOMMU_HWPT_ALLOC_DIRTY_TRACKING (no nesting, no
 * driver data), there is no hw_info op (GET_HW_INFO reports IOMMU_HW_INFO_TYPE_NONE) and no
 * enforce_cache_coherency. Dirty tracking is HTTU's dirty-bit management: once a domain is
 * allocated with it every write marks its leaf dirty (set_dirty_tracking does nothing), and
 * read-and-clear walks the leaves of a range, refusing a hole as the LPAE walker does. MSIs are
 * isolated by the ITS (a profile option) and reach it through the software MSI window at
 * 0x8000000, which iommufd reserves in the IOAS and the domain's MSI cookie maps.
 */

import { Errno, fail } from '../../../errno.js';
import type { HwIommu } from '../../../hw/iommu.js';
import { IOMMU_HWPT_ALLOC_DIRTY_TRACKING } from '../../../uapi/iommufd.js';
import {
  BlockedDomain,
  type Device,
  type DirtyRecorder,
  type DomainType,
  IOMMU_CAP,
  IOMMU_RESV,
  IdentityDomain,
  type IommuCap,
  type IommuDomain,
  type IommuDriver,
  type IommuUserData,
  type ResvRegion,
} from '../core.js';
import type { Machine } from '../../machine.js';
import type { Process } from '../../process.js';
import { HwDriverBase, PgtableDomain } from './common.js';

const hx = (v: bigint): string => `0x${v.toString(16)}`;

class SmmuBlockedDomain extends BlockedDomain {
  declare readonly owner: ArmSmmuV3Driver;
  /** arm_smmu_attach_dev_blocked: an abort STE. */
  override attachDev(dev: Device): void {
    this.owner.blockTranslation(dev, Errno.ENOENT);
  }
}

class SmmuIdentityDomain extends IdentityDomain {
  declare readonly owner: ArmSmmuV3Driver;
  /** arm_smmu_attach_dev_identity: a bypass STE. */
  override attachDev(dev: Device): void {
    const info = this.owner.blockTranslation(dev, Errno.ENOENT);
    info.unit.setContext(info.dev.rid, { mode: 'identity' });
    info.domain = this;
  }
}

/** struct arm_smmu_domain, stage 1. */
export class SmmuDomain extends PgtableDomain {
  declare readonly owner: ArmSmmuV3Driver;
  override readonly type: DomainType;
  /** smmu_domain->smmu. */
  readonly smmu: HwIommu;

  constructor(driver: ArmSmmuV3Driver, smmu: HwIommu, type: 'unmanaged' | 'dma', dirty: boolean) {
    super(driver, driver.tags, smmu.pgsizeBitmap, smmu.addressWidth);
    this.smmu = smmu;
    this.type = type;
    this.dirtyCapable = dirty;
  }

  /** IO_PGTABLE_QUIRK_ARM_HD: the hardware manages the dirty state of every writable leaf. */
  get dirtyActive(): boolean {
    return this.dirtyCapable;
  }

  /** arm_smmu_attach_dev: a device with no SMMU fwspec is ENOENT; a domain belongs to one SMMU. */
  attachDev(dev: Device): void {
    const info = this.owner.attachInfo(dev, Errno.ENOENT);
    if (info.unit !== this.smmu) fail(Errno.EINVAL, `${dev.name} is behind ${info.unit.name}; the domain was finalised on ${this.smmu.name}`);
    this.owner.blockTranslation(dev);
    this.addDevice(info.dev);
    info.domain = this;
    info.unit.setContext(info.dev.rid, { mode: 'translate', table: this });
  }

  /** arm_smmu_set_dirty_tracking: always on, nothing to do. */
  override setDirtyTracking(enable: boolean): void {
    this.dirtyTracking = enable;
  }

  /** arm_lpae_read_and_clear_dirty: the range must lie in the table and be fully mapped. */
  override readAndClearDirty(iova: bigint, size: bigint, flags: number, record: DirtyRecorder | null): void {
    this.checkRange(iova, size);
    const end = iova + size;
    for (let addr = iova; addr < end; ) {
      const r = this.testAndClearDirty(addr, flags);
      if (!r) fail(Errno.EINVAL, `nothing is mapped at ${hx(addr)} inside the dirty-bitmap range`);
      if (r.dirty) record?.(addr, r.pgsize);
      addr += r.pgsize;
    }
  }
}

/** arm_smmu_ops. */
export class ArmSmmuV3Driver extends HwDriverBase implements IommuDriver {
  readonly name = 'arm-smmu-v3';
  /** ops->pgsize_bitmap is -1 until a domain is finalised; every unit here uses the 4 KiB granule. */
  readonly pgsizeBitmap = 0x40201000n;
  readonly userPasidTable = false;
  readonly #blocked: SmmuBlockedDomain;
  readonly #identity: SmmuIdentityDomain;

  constructor(machine: Machine) {
    super(machine);
    this.#blocked = new SmmuBlockedDomain(this);
    this.#identity = new SmmuIdentityDomain(this);
  }

  /** arm_smmu_capable. */
  capable(dev: Device, cap: IommuCap): boolean {
    const unit = this.info(dev).unit;
    switch (cap) {
      case IOMMU_CAP.CACHE_COHERENCY:
        return unit.coherent;
      case IOMMU_CAP.NOEXEC:
      case IOMMU_CAP.DEFERRED_FLUSH:
        return true;
      case IOMMU_CAP.DIRTY_TRACKING:
        return unit.dirtyTracking;
      default:
        return false;
    }
  }

  /** arm_smmu_domain_alloc_paging: finalised at once on the master's SMMU. */
  domainAllocPaging(dev: Device, task: Process | null = null): SmmuDomain {
    return this.#alloc(dev, false, task);
  }

  /** arm_smmu_domain_alloc_user. */
  domainAllocUser(dev: Device, flags: number, parent: IommuDomain | null, userData: IommuUserData | null, task: Process | null = null): IommuDomain {
    if (flags & ~IOMMU_HWPT_ALLOC_DIRTY_TRACKING) fail(Errno.EOPNOTSUPP, `arm-smmu-v3 takes only IOMMU_HWPT_ALLOC_DIRTY_TRACKING, not flags 0x${flags.toString(16)}`);
    if (parent || userData) fail(Errno.EOPNOTSUPP, 'arm-smmu-v3 in 6.12 has no nested domains or driver data');
    return this.#alloc(dev, (flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING) !== 0, task);
  }

  /** arm_smmu_domain_alloc (its kzalloc is a fail-nth site) + arm_smmu_domain_finalise. */
  #alloc(dev: Device, dirty: boolean, task: Process | null): SmmuDomain {
    const unit = this.info(dev).unit;
    if (this.machine.inject.shouldFail(task, 'slab')) fail(Errno.ENOMEM, 'allocating the arm_smmu_domain: fault injected (fail-nth)');
    return new SmmuDomain(this, unit, 'unmanaged', dirty);
  }

  blockedDomain(): IommuDomain {
    return this.#blocked;
  }

  defaultDomain(dev: Device): IommuDomain {
    const unit = this.info(dev).unit;
    if (unit.defaultDomain === 'identity') return this.#identity;
    return new SmmuDomain(this, unit, 'dma', false);
  }

  /** arm_smmu_get_resv_regions: the software MSI window. */
  getResvRegions(dev: Device): ResvRegion[] {
    const unit = this.info(dev).unit;
    return [{ start: unit.msiStart, length: unit.msiLength, type: IOMMU_RESV.SW_MSI }];
  }

  /** arm_smmu_dev_enable_feature(IOPF): only stalling platform masters, never a PCI function. */
  enableIopf(dev: Device): void {
    fail(Errno.EINVAL, `${dev.name}: arm-smmu-v3 serves IO page faults only for stall-capable masters, not PCI PRI`);
  }

  disableIopf(dev: Device): void {
    dev.iommu!.iopfEnabled = false;
  }
}
