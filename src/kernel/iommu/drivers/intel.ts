/**
 * The Intel VT-d driver (drivers/iommu/intel/iommu.c and nested.c, 6.12) over simulated DMA
 * remapping units (hw/iommu.ts, profile 'vtd').
 *
 * One driver (one struct iommu_ops) serves every VT-d unit of the machine, so a domain's owner is
 * the same for all of them and a paging domain may be attached to devices behind several units —
 * as in the kernel, where prepare_domain_attach_device decides compatibility per unit: a domain
 * forcing snoop needs ECAP.SC, a dirty-tracking domain needs SSADS, and the unit's address width
 * must cover what is already mapped. Each attach first blocks the device (device_block_translation)
 * and only then programs its new context; a refused attach leaves the device blocked and the core
 * restores the old domain.
 *
 * User domains are second-stage tables (4 KiB plus the superpages CAP.SLLPS grants, a 48-bit
 * aperture from MGAW). IOMMU_HWPT_ALLOC_NEST_PARENT needs ECAP.NEST in scalable mode; a nested
 * domain carries the guest's iommu_hwpt_vtd_s1 (checked only at attach, by the PASID entry setup)
 * and takes IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 invalidations. Unmapping from a nest parent
 * flushes every stage-1 domain built on it (parent_domain_flush). Dirty tracking programs SSADS:
 * only while it is on does a device write set dirty bits.
 *
 * Capabilities come from the unit's CAP_REG/ECAP_REG (hw/vtd_regs.ts), which GET_HW_INFO returns
 * verbatim in struct iommu_hw_info_vtd.
 */

import { Errno, KernelError, fail } from '../../../errno.js';
import type { HwIommu, HwPageTable, HwStage1 } from '../../../hw/iommu.js';
import { IOPTE_READ, IOPTE_WRITE, type Translation } from '../../../hw/io_pgtable.js';
import type { PciDevice } from '../../../hw/pci.js';
import {
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_DATA_VTD_S1,
  IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
  IOMMU_HW_INFO_TYPE_INTEL_VTD,
  IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17,
  IOMMU_VTD_INV_FLAGS_LEAF,
  IOMMU_VTD_S1_EAFE,
  IOMMU_VTD_S1_SRE,
  iommu_hw_info_vtd,
  iommu_hwpt_vtd_s1,
  iommu_hwpt_vtd_s1_invalidate,
} from '../../../uapi/iommufd.js';
import type { Machine } from '../../machine.js';
import { type Mm, TASK_SIZE } from '../../mm/mm.js';
import type { Process } from '../../process.js';
import {
  BlockedDomain,
  type Device,
  type DirtyRecorder,
  type DomainType,
  IOMMU_CAP,
  IOMMU_RESV,
  IdentityDomain,
  IommuDomain,
  type IommuCap,
  type IommuDriver,
  type IommuUserData,
  type PasidDomain,
  type ResvRegion,
} from '../core.js';
import { type DevInfo, HwDriverBase, PgtableDomain, asPci, copyStructFromUserData } from './common.js';

const U64_MAX = (1n << 64n) - 1n;
const hx = (v: bigint | number): string => `0x${v.toString(16)}`;

class IntelBlockedDomain extends BlockedDomain {
  declare readonly owner: IntelIommuDriver;
  /** blocking_domain_attach_dev. */
  override attachDev(dev: Device): void {
    this.owner.blockTranslation(dev);
  }
}

class IntelIdentityDomain extends IdentityDomain {
  declare readonly owner: IntelIommuDriver;
  /** identity_domain_attach_dev: pass-through in the PASID entry of the RID. */
  override attachDev(dev: Device): void {
    const info = this.owner.blockTranslation(dev);
    info.unit.setContext(info.dev.rid, { mode: 'identity' });
    info.domain = this;
  }
}

/** struct dmar_domain as a second-stage paging domain. */
export class IntelPagingDomain extends PgtableDomain {
  declare readonly owner: IntelIommuDriver;
  override readonly type: DomainType;
  nestedParent = false;
  forceSnooping = false;
  /** Every PTE gets the SNP bit (second-stage force snooping). */
  setPteSnp = false;
  readonly s1Domains = new Set<IntelNestedDomain>();

  constructor(driver: IntelIommuDriver, unit: HwIommu, type: 'unmanaged' | 'dma') {
    super(driver, driver.tags, unit.pgsizeBitmap, unit.addressWidth);
    this.type = type;
  }

  get dirtyActive(): boolean {
    return this.dirtyTracking;
  }

  /** intel_iommu_attach_device. */
  attachDev(dev: Device): void {
    const info = this.owner.blockTranslation(dev);
    this.owner.prepareAttach(this, info);
    this.addDevice(info.dev);
    info.domain = this;
    info.unit.setContext(info.dev.rid, { mode: 'translate', table: this });
  }

  /** intel_iommu_tlb_sync, and parent_domain_flush for the stage-1 domains nested on it. */
  override flush(iova: bigint, length: bigint): void {
    super.flush(iova, length);
    for (const s1 of this.s1Domains) s1.flushAll();
  }

  /** intel_iommu_enforce_cache_coherency: every unit must snoop-control, and nothing be mapped yet. */
  override enforceCacheCoherency(): boolean {
    if (this.forceSnooping) return true;
    for (const unit of this.attached.keys()) if (!unit.snoopControl) return false;
    if (this.hasMappings) return false;
    this.setPteSnp = true;
    this.forceSnooping = true;
    return true;
  }

  /** intel_iommu_set_dirty_tracking: SSADS in every attached device's PASID entry. */
  override setDirtyTracking(enable: boolean): void {
    if (!this.dirtyCapable) fail(Errno.EOPNOTSUPP, 'the domain was not allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING');
    this.dirtyTracking = enable;
  }

  /**
   * intel_iommu_read_and_clear_dirty: leaf by leaf from `iova`, each step the size of the leaf
   * (or 4 KiB over a hole); a bitmap while tracking is off is EINVAL (a clean-up call has none).
   */
  override readAndClearDirty(iova: bigint, size: bigint, flags: number, record: DirtyRecorder | null): void {
    if (!this.dirtyTracking && record) fail(Errno.EINVAL, 'dirty tracking is not enabled on the domain');
    const end = iova + size - 1n;
    do {
      const r = this.testAndClearDirty(iova, flags);
      if (!r) {
        iova += 0x1000n;
        continue;
      }
      if (r.dirty) record?.(iova, r.pgsize);
      iova += r.pgsize;
    } while (iova < end);
  }

  override free(): void {
    if (this.s1Domains.size) throw new Error(`intel-iommu: nest parent ${this.tag} freed under ${this.s1Domains.size} stage-1 domains`);
    super.free();
  }
}

/** A stage-1 domain nested on an IntelPagingDomain (intel/nested.c). */
export class IntelNestedDomain extends IommuDomain implements HwStage1 {
  declare readonly owner: IntelIommuDriver;
  readonly type = 'nested';
  readonly s2: IntelPagingDomain;
  readonly tag: number;
  readonly flags: bigint;
  readonly pgtblAddr: bigint;
  readonly addrWidth: number;
  readonly attached = new Map<HwIommu, Set<PciDevice>>();

  constructor(driver: IntelIommuDriver, s2: IntelPagingDomain, cfg: { flags: bigint; pgtbl_addr: bigint; addr_width: number }) {
    super(driver);
    this.s2 = s2;
    this.flags = cfg.flags;
    this.pgtblAddr = cfg.pgtbl_addr;
    this.addrWidth = cfg.addr_width;
    this.tag = driver.tags.alloc();
    s2.s1Domains.add(this);
  }

  /** intel_nested_attach_dev. */
  attachDev(dev: Device): void {
    const info = this.owner.blockTranslation(dev);
    const unit = info.unit;
    if (unit.addressWidth < this.s2.pt.ias) fail(Errno.ENODEV, `${dev.name}: ${unit.name}'s ${unit.addressWidth}-bit address width is below the stage-2 domain's`);
    this.owner.prepareAttach(this.s2, info);
    // intel_pasid_setup_nested
    if (this.addrWidth === 57 && !unit.fl5lp) fail(Errno.EINVAL, `${unit.name} has no 5-level first-stage paging (CAP.FL5LP)`);
    if (this.addrWidth !== 48 && this.addrWidth !== 57) fail(Errno.EINVAL, `stage-1 addr_width ${this.addrWidth} is neither 48 nor 57`);
    if (this.flags & BigInt(IOMMU_VTD_S1_SRE) && !unit.supervisorRequests) fail(Errno.EINVAL, `${unit.name} has no supervisor request support (ECAP.SRS) for IOMMU_VTD_S1_SRE`);
    if (this.flags & BigInt(IOMMU_VTD_S1_EAFE) && !unit.extendedAccessedFlag) fail(Errno.EINVAL, `${unit.name} has no extended access flag support (ECAP.EAFS) for IOMMU_VTD_S1_EAFE`);
    let set = this.attached.get(unit);
    if (!set) this.attached.set(unit, (set = new Set()));
    set.add(info.dev);
    info.domain = this;
    unit.setContext(info.dev.rid, { mode: 'nested', s1: this, s2: this.s2 });
  }

  removeDevice(dev: PciDevice): void {
    const set = this.attached.get(dev.iommuUnit);
    if (!set?.delete(dev)) return;
    if (!set.size) {
      this.attached.delete(dev.iommuUnit);
      dev.iommuUnit.iotlb.invalidateTag(this.tag);
    }
  }

  flushAll(): void {
    for (const unit of this.attached.keys()) unit.iotlb.invalidateTag(this.tag);
  }

  /**
   * intel_nested_cache_invalidate_user: the data type, then entry by entry — copied with
   * iommu_copy_struct_from_user_array semantics, unknown flags or __reserved (EOPNOTSUPP), an
   * unaligned address or a "whole space" count with an address (EINVAL) — each one flushing its
   * range. The count handled is reported even when an entry fails.
   */
  cacheInvalidateUser(task: Process, arr: { type: number; uptr: bigint; entryLen: number; entryNum: number }): { done: number; error: unknown } {
    let done = 0;
    try {
      if (arr.type !== IOMMU_HWPT_INVALIDATE_DATA_VTD_S1) fail(Errno.EINVAL, `invalidation data type ${arr.type} is not IOMMU_HWPT_INVALIDATE_DATA_VTD_S1`);
      const size = iommu_hwpt_vtd_s1_invalidate.size;
      for (let i = 0; i < arr.entryNum; i++) {
        const raw = copyStructFromUserData(task, { type: arr.type, uptr: arr.uptr + BigInt(arr.entryLen) * BigInt(i), len: arr.entryLen }, IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, size, size, `iommu_hwpt_vtd_s1_invalidate[${i}]`);
        const inv = iommu_hwpt_vtd_s1_invalidate.decode(raw);
        if (inv.flags & ~IOMMU_VTD_INV_FLAGS_LEAF || inv.__reserved) fail(Errno.EOPNOTSUPP, `entry ${i}: unknown flags 0x${inv.flags.toString(16)} or non-zero __reserved`);
        if (inv.addr & 0xfffn || (inv.npages === U64_MAX && inv.addr)) fail(Errno.EINVAL, `entry ${i}: addr ${hx(inv.addr)} is not 4 KiB aligned, or npages U64_MAX ("everything") comes with an address`);
        this.#flush(inv.addr, inv.npages);
        done++;
      }
      return { done, error: null };
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      return { done, error: e };
    }
  }

  /** cache_tag_flush_range of [addr, addr + npages pages). */
  #flush(addr: bigint, npages: bigint): void {
    const length = BigInt.asUintN(64, npages << 12n);
    if (npages === U64_MAX || !length || addr + length > 1n << 64n) {
      this.flushAll();
      return;
    }
    for (const unit of this.attached.keys()) unit.invalidateRange(this.tag, addr, length);
  }

  override free(): void {
    if (this.attached.size) throw new Error(`intel-iommu: nested domain ${this.tag} freed while devices use it`);
    this.s2.s1Domains.delete(this);
    this.owner.tags.free(this.tag);
  }
}

/** intel_iommu_ops. */
/**
 * An SVA domain (intel/svm.c): the PASID entries it programs point the unit's first-level walk at
 * the process's own page table, so the unit reads the mm's present pages and the VMA's access.
 * When the process exits (the mmu_notifier release), every PASID entry is torn down before the
 * pages go; a request then faults as having no PASID entry, until the bond is removed.
 */
export class IntelSvaDomain extends IommuDomain implements PasidDomain, HwPageTable {
  declare readonly owner: IntelIommuDriver;
  readonly type = 'sva';
  readonly mm: Mm;
  users = 0;
  readonly tag: number;
  readonly lastIova = TASK_SIZE - 1n;
  readonly dirtyActive = false;
  readonly uncached = true;
  /** dmar_domain->dev_pasids. */
  readonly devPasids = new Set<{ dev: PciDevice; pasid: number }>();
  readonly #release = (): void => {
    for (const dp of this.devPasids) dp.dev.iommuUnit.setContext(dp.dev.rid, null, dp.pasid);
  };

  constructor(driver: IntelIommuDriver, mm: Mm) {
    super(driver);
    this.mm = mm;
    this.tag = driver.tags.alloc();
    mm.releaseNotifiers.add(this.#release);
  }

  attachDev(dev: Device): void {
    fail(Errno.EINVAL, `${dev.name}: an SVA domain serves PASIDs only, not the RID`);
  }

  /** intel_svm_set_dev_pasid: a first-level PASID entry over the mm's page table. */
  setDevPasid(dev: Device, pasid: number): void {
    const info = this.owner.info(dev);
    if (!info.unit.maxPasids) fail(Errno.EINVAL, `${info.unit.name} has no PASID support (ECAP.PASID)`);
    this.devPasids.add({ dev: info.dev, pasid });
    // A PASID entry for an exited mm would point at freed tables: it stays cleared.
    if (this.mm.alive) info.unit.setContext(info.dev.rid, { mode: 'translate', table: this }, pasid);
  }

  /** intel_svm_remove_dev_pasid: clear the entry (the drain of pending requests is instant here). */
  removeDevPasid(dev: Device, pasid: number): void {
    for (const dp of this.devPasids) {
      if (dp.dev !== dev || dp.pasid !== pasid) continue;
      this.devPasids.delete(dp);
      dp.dev.iommuUnit.setContext(dp.dev.rid, null, pasid);
    }
  }

  walk(iova: bigint): Translation | null {
    const w = this.mm.walkUser(iova);
    if (!w) return null;
    return { paddr: BigInt(w.frame.pfn) << 12n, perm: (w.read ? IOPTE_READ : 0) | (w.write ? IOPTE_WRITE : 0), pageSize: 4096n };
  }

  setDirty(): void {}

  override free(): void {
    if (this.devPasids.size) throw new Error(`${this.owner.name}: SVA domain ${this.tag} freed while PASIDs still use it`);
    this.mm.releaseNotifiers.delete(this.#release);
    this.owner.tags.free(this.tag);
  }
}

export class IntelIommuDriver extends HwDriverBase implements IommuDriver {
  readonly name = 'intel-iommu';
  /** ops->pgsize_bitmap; each domain widens it with the unit's superpages. */
  readonly pgsizeBitmap = 0x1000n;
  readonly userPasidTable = false;
  readonly #blocked: IntelBlockedDomain;
  readonly #identity: IntelIdentityDomain;

  constructor(machine: Machine) {
    super(machine);
    this.#blocked = new IntelBlockedDomain(this);
    this.#identity = new IntelIdentityDomain(this);
  }

  /** intel_iommu_capable. */
  capable(dev: Device, cap: IommuCap): boolean {
    const unit = this.info(dev).unit;
    switch (cap) {
      case IOMMU_CAP.CACHE_COHERENCY:
      case IOMMU_CAP.DEFERRED_FLUSH:
        return true;
      case IOMMU_CAP.ENFORCE_CACHE_COHERENCY:
        return unit.snoopControl;
      case IOMMU_CAP.DIRTY_TRACKING:
        return unit.dirtyTracking;
      default:
        return false;
    }
  }

  /** intel_iommu_hw_info: the erratum flag and the raw registers. */
  hwInfo(dev: Device): { type: number; data: Uint8Array } {
    const unit = this.info(dev).unit;
    return {
      type: IOMMU_HW_INFO_TYPE_INTEL_VTD,
      data: iommu_hw_info_vtd.encode({ flags: IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17, __reserved: 0, cap_reg: unit.capReg, ecap_reg: unit.ecapReg }),
    };
  }

  /** paging_domain_alloc(dev, false): a second-stage table sized by the device's unit (its kzalloc is a fail-nth site). */
  domainAllocPaging(dev: Device, task: Process | null = null): IntelPagingDomain {
    const unit = this.info(dev).unit;
    if (this.machine.inject.shouldFail(task, 'slab')) fail(Errno.ENOMEM, 'allocating the dmar_domain: fault injected (fail-nth)');
    return new IntelPagingDomain(this, unit, 'unmanaged');
  }

  /** intel_iommu_domain_alloc_user, in its check order. */
  domainAllocUser(dev: Device, flags: number, parent: IommuDomain | null, userData: IommuUserData | null, task: Process | null = null): IommuDomain {
    const unit = this.info(dev).unit;
    const dirty = (flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING) !== 0;
    const nestParent = (flags & IOMMU_HWPT_ALLOC_NEST_PARENT) !== 0;
    if (parent) {
      if (!unit.nesting || flags) fail(Errno.EOPNOTSUPP, unit.nesting ? `a nested domain takes no flags (got 0x${flags.toString(16)})` : `${unit.name} has no nested translation (ECAP.NEST)`);
      return this.#nestedAlloc(parent, userData);
    }
    if (flags & ~(IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_DIRTY_TRACKING)) fail(Errno.EOPNOTSUPP, `intel-iommu does not know HWPT flags 0x${flags.toString(16)}`);
    if (nestParent && !unit.nesting) fail(Errno.EOPNOTSUPP, `${unit.name} has no nested translation (ECAP.NEST) for IOMMU_HWPT_ALLOC_NEST_PARENT`);
    if (userData) fail(Errno.EOPNOTSUPP, 'a VT-d paging domain takes no driver data');
    if (dirty && !unit.dirtyTracking) fail(Errno.EOPNOTSUPP, `${unit.name} has no second-stage dirty tracking (SSADS)`);
    const d = this.domainAllocPaging(dev, task);
    d.nestedParent = nestParent;
    d.dirtyCapable = dirty;
    return d;
  }

  /** intel_nested_domain_alloc. */
  #nestedAlloc(parent: IommuDomain, userData: IommuUserData | null): IntelNestedDomain {
    if (!userData || userData.type !== IOMMU_HWPT_DATA_VTD_S1) fail(Errno.EOPNOTSUPP, 'a VT-d nested domain needs IOMMU_HWPT_DATA_VTD_S1 data');
    if (!(parent instanceof IntelPagingDomain) || !parent.nestedParent) fail(Errno.EINVAL, 'the parent is not a VT-d domain allocated with IOMMU_HWPT_ALLOC_NEST_PARENT');
    const size = iommu_hwpt_vtd_s1.size;
    const raw = copyStructFromUserData(userData.task, userData, IOMMU_HWPT_DATA_VTD_S1, size, size, 'iommu_hwpt_vtd_s1');
    if (this.machine.inject.shouldFail(userData.task, 'slab')) fail(Errno.ENOMEM, 'allocating the nested dmar_domain: fault injected (fail-nth)');
    return new IntelNestedDomain(this, parent, iommu_hwpt_vtd_s1.decode(raw));
  }

  blockedDomain(): IommuDomain {
    return this.#blocked;
  }

  /** The core's default domain: identity if the unit is set up for pass-through (ECAP.PT), else DMA. */
  defaultDomain(dev: Device): IommuDomain {
    const unit = this.info(dev).unit;
    if (unit.defaultDomain === 'identity' && unit.passThrough) return this.#identity;
    return new IntelPagingDomain(this, unit, 'dma');
  }

  /** intel_iommu_get_resv_regions: no RMRRs here, only the interrupt range. */
  getResvRegions(): ResvRegion[] {
    return [{ start: 0xfee00000n, length: 0x100000n, type: IOMMU_RESV.MSI }];
  }

  /** prepare_domain_attach_device. */
  prepareAttach(domain: IntelPagingDomain, info: DevInfo): void {
    const unit = info.unit;
    if (domain.forceSnooping && !unit.snoopControl) fail(Errno.EINVAL, `${info.dev.name}: the domain forces snooping and ${unit.name} has no snoop control (ECAP.SC)`);
    if (domain.dirtyCapable && !unit.dirtyTracking) fail(Errno.EINVAL, `${info.dev.name}: the domain tracks dirty pages and ${unit.name} has no SSADS`);
    if (domain.maxAddr > 1n << BigInt(unit.addressWidth)) fail(Errno.EINVAL, `${info.dev.name}: the domain maps up to ${hx(domain.maxAddr)}, beyond ${unit.name}'s ${unit.addressWidth}-bit width`);
  }

  protected override leave(domain: IommuDomain, dev: PciDevice): void {
    if (domain instanceof IntelNestedDomain) domain.removeDevice(dev);
    else super.leave(domain, dev);
  }

  /** intel_iommu_enable_iopf: needs ATS and PRI (device capability and ECAP.PRS). */
  enableIopf(dev: Device): void {
    const info = this.info(dev);
    const pci = asPci(dev);
    if (!pci.ats || !info.unit.deviceTlb || !pci.pri || !info.unit.pageRequests) fail(Errno.ENODEV, `${dev.name}: IO page faults need ATS and PRI on the device and page requests (ECAP.PRS) on ${info.unit.name}`);
    if (info.iopfEnabled) fail(Errno.EBUSY, `${dev.name}: PRI is already enabled`);
    info.iopfEnabled = true;
    dev.iommu!.iopfEnabled = true;
  }

  disableIopf(dev: Device): void {
    this.info(dev).iopfEnabled = false;
    dev.iommu!.iopfEnabled = false;
    dev.iommu!.partialFaults = [];
  }

  /** intel_iommu_enable_sva: PASIDs on the unit and the device, ATS, and PRI enabled where the device has it. */
  enableSva(dev: Device): void {
    const info = this.info(dev);
    const pci = asPci(dev);
    if (!info.unit.maxPasids) fail(Errno.ENODEV, `${info.unit.name} cannot do SVA: no PASID support (ECAP.PASID)`);
    if (!dev.iommu?.maxPasids || !pci.ats || !info.unit.deviceTlb) fail(Errno.EINVAL, `${dev.name}: SVA needs PASID and ATS enabled on the device`);
    if (pci.pri && !info.iopfEnabled) fail(Errno.EINVAL, `${dev.name} has PRI, which must be enabled (IOMMU_DEV_FEAT_IOPF) before SVA`);
  }

  /** intel_svm_domain_alloc. */
  domainAllocSva(_dev: Device, mm: Mm): IntelSvaDomain {
    return new IntelSvaDomain(this, mm);
  }
}
