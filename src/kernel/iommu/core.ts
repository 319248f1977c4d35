/**
 * The IOMMU core (drivers/iommu/iommu.c as iommufd and VFIO use it): devices behind an IOMMU,
 * IOMMU groups, domains, DMA ownership, and attaching a domain to a whole group.
 *
 * - A `Device` sits behind one IOMMU driver (`IommuDriver`, struct iommu_ops) and in one group.
 * - A group has a default domain (what kernel drivers DMA through), a blocking domain (used while
 *   a user such as iommufd or VFIO owns the group and nothing else is attached), the domain
 *   currently attached, and a table of attach handles by PASID (only IOMMU_NO_PASID in 6.12).
 * - DMA ownership: kernel drivers "use the default domain" (owner_cnt with no owner); a user
 *   claims the group with an owner cookie — a group is owned as a whole, by one owner.
 *
 * Domains map through `iommuMap`/`iommuUnmap`, which split a range into the driver's page sizes
 * exactly as __iommu_map does (largest size the IOVA, the physical address and the length allow).
 */

import { Errno, KernelError, fail } from '../../errno.js';
import type { DomainMapOptions, IoptDomain } from '../iommufd/io_pagetable.js';
import { PAGE_SIZE, type Frame } from '../mm/physmem.js';
import type { Mm } from '../mm/mm.js';
import type { Process } from '../process.js';

/** enum iommu_cap. */
export const IOMMU_CAP = {
  CACHE_COHERENCY: 0,
  NOEXEC: 1,
  PRE_BOOT_PROTECTION: 2,
  ENFORCE_CACHE_COHERENCY: 3,
  DEFERRED_FLUSH: 4,
  DIRTY_TRACKING: 5,
} as const;
export type IommuCap = (typeof IOMMU_CAP)[keyof typeof IOMMU_CAP];

/** enum iommu_resv_type. */
export const IOMMU_RESV = { DIRECT: 0, DIRECT_RELAXABLE: 1, RESERVED: 2, MSI: 3, SW_MSI: 4 } as const;
export type IommuResvType = (typeof IOMMU_RESV)[keyof typeof IOMMU_RESV];

export interface ResvRegion {
  start: bigint;
  length: bigint;
  type: IommuResvType;
}

/** The kind of translation a domain gives (iommu_domain->type). */
export type DomainType = 'blocked' | 'identity' | 'unmanaged' | 'dma' | 'nested' | 'sva';

export const IOMMU_NO_PASID = 0;
export const IOMMU_DIRTY_NO_CLEAR = 1;

/** struct iommu_user_data: driver data for HWPT_ALLOC, still in user memory. */
export interface IommuUserData {
  type: number;
  uptr: bigint;
  len: number;
  task: Process;
}

/** iommu_ops: what an IOMMU driver offers the core. */
export interface IommuDriver {
  readonly name: string;
  readonly pgsizeBitmap: bigint;
  /** Whether user space manages the PASID table (ops->user_pasid_table). */
  readonly userPasidTable: boolean;
  capable(dev: Device, cap: IommuCap): boolean;
  /** ops->hw_info: the IOMMU_HW_INFO_TYPE_* and its bytes; absent means TYPE_NONE. */
  hwInfo?(dev: Device): { type: number; data: Uint8Array };
  /** ops->domain_alloc_paging; `task` is the caller, for fault injection. */
  domainAllocPaging?(dev: Device, task?: Process | null): PagingDomain;
  /** ops->domain_alloc_user; throws KernelError. */
  domainAllocUser?(dev: Device, flags: number, parent: IommuDomain | null, userData: IommuUserData | null, task?: Process | null): IommuDomain;
  /** The blocking domain the driver provides (static in most drivers). */
  blockedDomain(dev: Device): IommuDomain;
  /** The default domain a freshly probed device gets (identity, DMA or blocked). */
  defaultDomain(dev: Device): IommuDomain;
  getResvRegions(dev: Device): ResvRegion[];
  /** ops->dev_enable_feat(IOMMU_DEV_FEAT_IOPF); throws ENODEV when unsupported. */
  enableIopf?(dev: Device): void;
  disableIopf?(dev: Device): void;
  /** ops->dev_enable_feat(IOMMU_DEV_FEAT_SVA): the device may be bound to process address spaces. */
  enableSva?(dev: Device): void;
  /** ops->domain_alloc_sva: a domain translating through `mm`'s page tables. */
  domainAllocSva?(dev: Device, mm: Mm): PasidDomain;
}

/** The per-device IOMMU state (struct dev_iommu). */
export interface DevIommu {
  readonly driver: IommuDriver;
  maxPasids: number;
  /** Firmware asked for a 1:1 mapping (IOMMU_RESV_DIRECT): blocking is refused. */
  requireDirect: boolean;
  /** The platform isolates the device's MSIs (interrupt remapping or MSI remap). */
  msiIsolated: boolean;
  /** Whether IO page faults are enabled on the device (iopf_queue_add_device). */
  iopfEnabled: boolean;
  /** Page requests of groups whose last request has not come yet (iopf_param->partial). */
  partialFaults: IopfFault[];
}

export class Device {
  readonly name: string;
  readonly bus: string;
  iommu: DevIommu | null = null;
  group: IommuGroup | null = null;
  /** The kernel driver bound to the device, if any (driver core). */
  driver: string | null = null;
  /** A driver that manages DMA itself (vfio-pci, iommufd selftest): it does not use the default domain. */
  driverManagedDma = false;

  constructor(name: string, bus: string) {
    this.name = name;
    this.bus = bus;
  }

  /** The IOMMU driver in charge; throws for a device no IOMMU translates. */
  get ops(): IommuDriver {
    if (!this.iommu) throw new Error(`device ${this.name} has no IOMMU`);
    return this.iommu.driver;
  }

  /** device_iommu_capable. */
  capable(cap: IommuCap): boolean {
    return this.iommu ? this.iommu.driver.capable(this, cap) : false;
  }

  /**
   * really_probe's DMA half: a kernel driver that does not manage DMA itself starts using the
   * default domain (iommu_device_use_default_domain), which any DMA owner then excludes.
   */
  bindDriver(name: string, managesDma: boolean): void {
    if (this.driver) fail(Errno.EBUSY, `${this.name} is already bound to ${this.driver}`);
    if (!managesDma && this.group) this.group.useDefaultDomain();
    this.driver = name;
    this.driverManagedDma = managesDma;
  }

  unbindDriver(): void {
    if (!this.driver) return;
    if (!this.driverManagedDma && this.group) this.group.unuseDefaultDomain();
    this.driver = null;
    this.driverManagedDma = false;
  }
}

/** An attach handle (struct iommu_attach_handle) and whatever its user hangs on it. */
export interface AttachHandle {
  domain: IommuDomain | null;
}

export class IommuGroup {
  readonly id: number;
  readonly devices: Device[] = [];
  /** The domain currently translating for every device of the group. */
  domain: IommuDomain | null = null;
  defaultDomain: IommuDomain | null = null;
  blockingDomain: IommuDomain | null = null;
  owner: unknown = null;
  ownerCnt = 0;
  /** group->pasid_array: attach handles by PASID; null marks a reserved slot. */
  readonly pasidArray = new Map<number, AttachHandle | null>();
  /** iommu_group_set_name: shown as the group's `name` attribute when set. */
  name: string | null = null;

  /** Made by IommuSubsystem.allocGroup, which owns the ID space. */
  constructor(id: number) {
    this.id = id;
  }

  /** iommu_group_add_device + probe: the device joins and gets the default domain. */
  addDevice(dev: Device, driver: IommuDriver, opts: { maxPasids?: number; requireDirect?: boolean; msiIsolated?: boolean } = {}): void {
    dev.iommu = { driver, maxPasids: opts.maxPasids ?? 0, requireDirect: opts.requireDirect ?? false, msiIsolated: opts.msiIsolated ?? false, iopfEnabled: false, partialFaults: [] };
    dev.group = this;
    this.devices.push(dev);
    if (!this.defaultDomain) {
      this.defaultDomain = driver.defaultDomain(dev);
      this.#setDomain(this.defaultDomain, true);
    } else if (this.domain) {
      this.domain.attachDev(dev);
    }
  }

  /** iommu_release_device. */
  removeDevice(dev: Device): void {
    const i = this.devices.indexOf(dev);
    if (i < 0) return;
    this.devices.splice(i, 1);
    dev.group = null;
  }

  get firstDevice(): Device {
    const d = this.devices[0];
    if (!d) throw new Error(`IOMMU group ${this.id} has no device`);
    return d;
  }

  /** __iommu_device_set_domain. */
  #setDeviceDomain(dev: Device, domain: IommuDomain, mustSucceed: boolean): void {
    if (dev.iommu?.requireDirect && (domain.type === 'blocked' || domain === this.blockingDomain)) {
      fail(Errno.EINVAL, `${dev.name} needs a 1:1 mapping (IOMMU_RESV_DIRECT) and cannot be blocked`);
    }
    try {
      domain.attachDev(dev);
    } catch (e) {
      if (mustSucceed && this.blockingDomain && this.blockingDomain !== domain) this.blockingDomain.attachDev(dev);
      throw e;
    }
  }

  /** __iommu_group_set_domain_internal: every device or none (unless it must succeed). */
  #setDomain(domain: IommuDomain, mustSucceed: boolean): void {
    if (this.domain === domain) return;
    let result: KernelError | null = null;
    for (let i = 0; i < this.devices.length; i++) {
      const dev = this.devices[i]!;
      try {
        this.#setDeviceDomain(dev, domain, mustSucceed);
      } catch (e) {
        if (!(e instanceof KernelError)) throw e;
        if (mustSucceed) {
          result = e;
          continue;
        }
        if (this.domain) for (let j = 0; j <= i; j++) this.#setDeviceDomain(this.devices[j]!, this.domain, true);
        throw e;
      }
    }
    this.domain = domain;
    if (result) throw result;
  }

  /** __iommu_group_set_core_domain: blocking while owned, default otherwise. */
  setCoreDomain(): void {
    const d = this.owner !== null ? this.blockingDomain : this.defaultDomain;
    if (d) this.#setDomain(d, true);
  }

  #allocBlockingDomain(): void {
    this.blockingDomain ??= this.firstDevice.ops.blockedDomain(this.firstDevice);
  }

  /** iommu_device_use_default_domain. */
  useDefaultDomain(): void {
    if (this.ownerCnt && (this.domain !== this.defaultDomain || this.owner !== null || this.pasidArray.size)) {
      fail(Errno.EBUSY, `IOMMU group ${this.id} is owned for user-space DMA; a kernel driver cannot use it`);
    }
    this.ownerCnt++;
  }

  /** iommu_device_unuse_default_domain. */
  unuseDefaultDomain(): void {
    if (this.ownerCnt && !this.pasidArray.size) this.ownerCnt--;
  }

  /** __iommu_take_dma_ownership. */
  #takeOwnership(owner: unknown): void {
    if ((this.domain && this.domain !== this.defaultDomain) || this.pasidArray.size) {
      fail(Errno.EBUSY, `IOMMU group ${this.id} already has a non-default domain attached`);
    }
    this.#allocBlockingDomain();
    this.#setDomain(this.blockingDomain!, false);
    this.owner = owner;
    this.ownerCnt++;
  }

  /** iommu_group_claim_dma_owner (VFIO groups): one owner, once. */
  claimDmaOwner(owner: unknown): void {
    if (this.ownerCnt) fail(Errno.EPERM, `IOMMU group ${this.id} is already in use (${this.owner === null ? 'a kernel driver uses its default domain' : 'claimed by another owner'})`);
    this.#takeOwnership(owner);
  }

  /** iommu_device_claim_dma_owner: devices of one group may share an owner. */
  claimDeviceDmaOwner(owner: unknown): void {
    if (this.ownerCnt) {
      if (this.owner !== owner) fail(Errno.EPERM, `IOMMU group ${this.id} is in use by ${this.owner === null ? 'a kernel driver' : 'another owner'}`);
      this.ownerCnt++;
      return;
    }
    this.#takeOwnership(owner);
  }

  /** __iommu_release_dma_ownership. */
  #releaseOwnership(): void {
    if (!this.ownerCnt || this.owner === null || this.pasidArray.size) return;
    this.ownerCnt = 0;
    this.owner = null;
    if (this.defaultDomain) this.#setDomain(this.defaultDomain, true);
  }

  releaseDmaOwner(): void {
    this.#releaseOwnership();
  }

  releaseDeviceDmaOwner(): void {
    if (this.ownerCnt > 1) this.ownerCnt--;
    else this.#releaseOwnership();
  }

  /** __iommu_attach_group: only over a core-owned domain, only a domain of this driver. */
  #attach(domain: IommuDomain): void {
    if (this.domain && this.domain !== this.defaultDomain && this.domain !== this.blockingDomain) {
      fail(Errno.EBUSY, `IOMMU group ${this.id} already has a domain attached`);
    }
    const dev = this.firstDevice;
    if (!dev.iommu || dev.ops !== domain.owner) fail(Errno.EINVAL, `the domain belongs to another IOMMU driver than ${dev.name}'s`);
    this.#setDomain(domain, false);
  }

  /** iommu_attach_group (VFIO type1). */
  attachDomain(domain: IommuDomain): void {
    this.#attach(domain);
  }

  /** iommu_detach_group. */
  detachDomain(): void {
    this.setCoreDomain();
  }

  /** iommu_attach_group_handle. */
  attachHandle(domain: IommuDomain, handle: AttachHandle): void {
    handle.domain = domain;
    if (this.pasidArray.has(IOMMU_NO_PASID)) fail(Errno.EBUSY, `IOMMU group ${this.id} already has an attach handle`);
    this.pasidArray.set(IOMMU_NO_PASID, handle);
    try {
      this.#attach(domain);
    } catch (e) {
      this.pasidArray.delete(IOMMU_NO_PASID);
      throw e;
    }
  }

  /** iommu_detach_group_handle. */
  detachHandle(): void {
    this.setCoreDomain();
    this.pasidArray.delete(IOMMU_NO_PASID);
  }

  /** iommu_replace_group_handle: straight from one domain to the next. */
  replaceHandle(domain: IommuDomain, handle: AttachHandle): void {
    handle.domain = domain;
    this.#setDomain(domain, false);
    this.pasidArray.set(IOMMU_NO_PASID, handle);
  }

  /** iommu_attach_handle_get. */
  handle(pasid: number): AttachHandle | null {
    return this.pasidArray.get(pasid) ?? null;
  }

  /**
   * iommu_attach_device_pasid: `domain` translates requests tagged `pasid` from every device of
   * the group that has PASIDs (devices without the capability cannot issue them). All or nothing.
   */
  attachDevicePasid(domain: PasidDomain, dev: Device, pasid: number, handle: AttachHandle): void {
    if (!dev.iommu || dev.ops !== domain.owner || pasid === IOMMU_NO_PASID) fail(Errno.EINVAL, `${dev.name}: the domain belongs to another IOMMU driver, or PASID ${pasid} is the RID's`);
    for (const d of this.devices) {
      const max = d.iommu!.maxPasids;
      if (max > 0 && pasid >= max) fail(Errno.EINVAL, `PASID ${pasid} is beyond the ${max} PASIDs ${d.name} supports`);
    }
    handle.domain = domain;
    if (this.pasidArray.has(pasid)) fail(Errno.EBUSY, `PASID ${pasid} of IOMMU group ${this.id} is already attached`);
    this.pasidArray.set(pasid, handle);
    const done: Device[] = [];
    try {
      for (const d of this.devices) {
        if (!d.iommu!.maxPasids) continue;
        domain.setDevPasid(d, pasid);
        done.push(d);
      }
    } catch (e) {
      for (const d of done) domain.removeDevPasid(d, pasid);
      this.pasidArray.delete(pasid);
      throw e;
    }
  }

  /** iommu_detach_device_pasid. */
  detachDevicePasid(domain: PasidDomain, pasid: number): void {
    for (const d of this.devices) if (d.iommu?.maxPasids) domain.removeDevPasid(d, pasid);
    this.pasidArray.delete(pasid);
  }
}

/** A domain that can translate a PASID of a device (domain->ops->set_dev_pasid / remove_dev_pasid). */
export interface PasidDomain extends IommuDomain {
  setDevPasid(dev: Device, pasid: number): void;
  removeDevPasid(dev: Device, pasid: number): void;
}

/** struct iommu_fault_page_request. */
export interface IopfFault {
  flags: number;
  pasid: number;
  grpid: number;
  perm: number;
  addr: bigint;
}

export const IOMMU_FAULT_PAGE_REQUEST_PASID_VALID = 1 << 0;
export const IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE = 1 << 1;
/** enum iommu_page_response_code. */
export const IOMMU_PAGE_RESP = { SUCCESS: 0, INVALID: 1, FAILURE: 2 } as const;

/** struct iopf_group: the faults of one page request group, answered once. */
export interface IopfGroup {
  readonly dev: Device;
  /** In the order the device raised them; the last one closed the group. */
  readonly faults: IopfFault[];
  readonly handle: AttachHandle;
  /** iopf_group_response: the first answer goes to the driver, later ones are ignored. */
  respond(code: number): void;
}

/** domain->iopf_handler: take the group (and answer it later) or throw to abort it. */
export type IopfHandler = (group: IopfGroup) => void;

/** find_fault_handler. */
function findFaultHandler(dev: Device, fault: IopfFault): AttachHandle | null {
  const group = dev.group;
  if (!group) return null;
  let handle: AttachHandle | null;
  if (fault.flags & IOMMU_FAULT_PAGE_REQUEST_PASID_VALID) {
    handle = group.handle(fault.pasid);
    if (!handle) {
      // A driver whose PASID table user space manages routes every PASID through the nested domain on the RID.
      if (!dev.ops.userPasidTable) return null;
      const rid = group.handle(IOMMU_NO_PASID);
      handle = rid?.domain?.type === 'nested' ? rid : null;
    }
  } else {
    handle = group.handle(IOMMU_NO_PASID);
  }
  if (!handle?.domain?.iopfHandler) return null;
  return handle;
}

/**
 * iommu_report_device_fault: a page request from `dev`. Requests before the last of a group are
 * held; the last one sends the whole group to the handler of the domain it faulted in. With no
 * handler (or IOPF not enabled on the device) the request is refused (EINVAL) and answered INVALID.
 */
export function reportDeviceFault(dev: Device, fault: IopfFault, respond: (code: number) => void, allocFails: () => boolean = () => false): void {
  const handle = findFaultHandler(dev, fault);
  const iommu = dev.iommu;
  if (!handle || !iommu?.iopfEnabled) {
    respond(IOMMU_PAGE_RESP.INVALID);
    fail(Errno.EINVAL, `${dev.name}: no IO page fault handler for ${fault.flags & IOMMU_FAULT_PAGE_REQUEST_PASID_VALID ? `PASID ${fault.pasid}` : 'the RID'}`);
  }
  if (!(fault.flags & IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE)) {
    if (allocFails()) fail(Errno.ENOMEM, 'allocating the partial page request: fault injected (fail-nth)');
    iommu.partialFaults.push(fault);
    return;
  }
  // iopf_group_alloc: without memory the request is aborted (FAILURE) but counts as reported.
  if (allocFails()) {
    iommu.partialFaults = iommu.partialFaults.filter((f) => f.grpid !== fault.grpid);
    respond(IOMMU_PAGE_RESP.FAILURE);
    return;
  }
  const faults = iommu.partialFaults.filter((f) => f.grpid === fault.grpid);
  iommu.partialFaults = iommu.partialFaults.filter((f) => f.grpid !== fault.grpid);
  faults.push(fault);
  let answered = false;
  const group: IopfGroup = {
    dev,
    faults,
    handle,
    respond: (code) => {
      if (answered) return;
      answered = true;
      respond(code);
    },
  };
  try {
    handle.domain!.iopfHandler!(group);
  } catch {
    group.respond(IOMMU_PAGE_RESP.FAILURE);
  }
}

export abstract class IommuDomain {
  abstract readonly type: DomainType;
  /** domain->owner: the driver that allocated it. */
  readonly owner: IommuDriver;
  iopfHandler: IopfHandler | null = null;

  constructor(owner: IommuDriver) {
    this.owner = owner;
  }

  /** ops->attach_dev; throws (EINVAL: incompatible, try another domain). */
  abstract attachDev(dev: Device): void;

  /** iommu_domain_free. */
  free(): void {}
}

/** A domain that translates nothing: every DMA is blocked. */
export class BlockedDomain extends IommuDomain {
  readonly type = 'blocked';
  attachDev(dev: Device): void {
    void dev;
  }
}

/** A domain that passes DMA addresses through untranslated. */
export class IdentityDomain extends IommuDomain {
  readonly type = 'identity';
  attachDev(dev: Device): void {
    void dev;
  }
}

/** iommu_dirty_bitmap_record's target. */
export type DirtyRecorder = (iova: bigint, length: bigint) => void;

/**
 * A paging domain: an IO page table behind an aperture. Drivers implement the page-granular ops;
 * the IoptDomain face (map a run of frames, unmap a range) is the generic iommu_map/iommu_unmap.
 */
export abstract class PagingDomain extends IommuDomain implements IoptDomain {
  readonly type: DomainType = 'unmanaged';
  pgsizeBitmap: bigint;
  apertureStart: bigint;
  apertureEnd: bigint;
  /** domain->dirty_ops is set: the domain can track dirty IOVAs. */
  dirtyCapable = false;
  /** The fail-nth task of the call that is mapping (drivers with injection points read it). */
  protected mapTask: Process | null = null;

  constructor(owner: IommuDriver, pgsizeBitmap: bigint, apertureStart: bigint, apertureEnd: bigint) {
    super(owner);
    this.pgsizeBitmap = pgsizeBitmap;
    this.apertureStart = apertureStart;
    this.apertureEnd = apertureEnd;
  }

  /** ops->map_pages: `pgcount` pages of `pgsize`; returns the bytes mapped, throws after undoing them. */
  abstract mapPages(iova: bigint, paddr: bigint, pgsize: bigint, pgcount: bigint, prot: number): bigint;
  /** ops->unmap_pages: returns the bytes unmapped. */
  abstract unmapPages(iova: bigint, pgsize: bigint, pgcount: bigint): bigint;
  /** ops->iova_to_phys; null where nothing is mapped. */
  abstract iovaToPhys(iova: bigint): bigint | null;

  /** ops->enforce_cache_coherency: whether the domain can now force snooping on every mapping. */
  enforceCacheCoherency(): boolean {
    return false;
  }

  /** dirty_ops->set_dirty_tracking. */
  setDirtyTracking(enable: boolean): void {
    void enable;
    fail(Errno.EOPNOTSUPP, 'this domain has no dirty tracking');
  }

  /** dirty_ops->read_and_clear_dirty. */
  readAndClearDirty(iova: bigint, size: bigint, flags: number, record: DirtyRecorder | null): void {
    void iova;
    void size;
    void flags;
    void record;
    fail(Errno.EOPNOTSUPP, 'this domain has no dirty tracking');
  }

  /** iommu_pgsize: the largest page size for the next chunk of [iova, iova + size) → paddr, and how many. */
  pgsize(iova: bigint, paddr: bigint, size: bigint): { pgsize: bigint; count: bigint } {
    const addrMerge = iova | paddr;
    let pgsizes = this.pgsizeBitmap & ((1n << BigInt(bitLength(size))) - 1n);
    if (addrMerge) pgsizes &= (addrMerge & -addrMerge) * 2n - 1n;
    if (!pgsizes) throw new Error(`no page size fits 0x${iova.toString(16)}+0x${size.toString(16)}`);
    const idx = BigInt(bitLength(pgsizes) - 1);
    const pgsize = 1n << idx;
    const larger = this.pgsizeBitmap & ~((pgsize << 1n) - 1n);
    if (larger) {
      const next = larger & -larger;
      // A bigger page is only worth reaching when IOVA and PA sit alike inside it.
      if (!((iova ^ paddr) & (next - 1n))) {
        const offset = next - (addrMerge & (next - 1n));
        if (offset + next <= size) size = offset;
      }
    }
    return { pgsize, count: size >> idx };
  }

  /** __iommu_map: the whole range or nothing. */
  iommuMap(iova: bigint, paddr: bigint, size: bigint, prot: number): void {
    const min = this.pgsizeBitmap & -this.pgsizeBitmap;
    if ((iova | paddr | size) & (min - 1n)) fail(Errno.EINVAL, `unaligned map: iova 0x${iova.toString(16)} pa 0x${paddr.toString(16)} size 0x${size.toString(16)} (min page 0x${min.toString(16)})`);
    let mapped = 0n;
    try {
      while (mapped < size) {
        const { pgsize, count } = this.pgsize(iova + mapped, paddr + mapped, size - mapped);
        mapped += this.mapPages(iova + mapped, paddr + mapped, pgsize, count, prot);
      }
    } catch (e) {
      if (mapped) this.iommuUnmap(iova, mapped);
      throw e;
    }
  }

  /** __iommu_unmap: returns what was unmapped. */
  iommuUnmap(iova: bigint, size: bigint): bigint {
    let unmapped = 0n;
    while (unmapped < size) {
      const { pgsize, count } = this.pgsize(iova + unmapped, iova + unmapped, size - unmapped);
      const n = this.unmapPages(iova + unmapped, pgsize, count);
      if (!n) break;
      unmapped += n;
    }
    return unmapped;
  }

  /**
   * IoptDomain: map `length` bytes at `iova`; each physically contiguous run is one iommu_map
   * (batch_to_domain), or every page its own with `small` (batch_iommu_map_small).
   */
  map(iova: bigint, frames: readonly Frame[], pageOffset: number, length: bigint, prot: number, opts?: DomainMapOptions): void {
    this.mapTask = opts?.task ?? null;
    const small = opts?.small ?? false;
    let done = 0n;
    try {
      let i = 0;
      let offset = BigInt(pageOffset);
      while (done < length) {
        let j = i + 1;
        if (!small) while (j < frames.length && frames[j]!.pfn === frames[j - 1]!.pfn + 1) j++;
        const runBytes = BigInt(j - i) * PG - offset;
        const size = runBytes < length - done ? runBytes : length - done;
        this.iommuMap(iova + done, BigInt(frames[i]!.pfn) * PG + offset, size, prot);
        done += size;
        offset = 0n;
        i = j;
      }
    } catch (e) {
      if (done) this.iommuUnmap(iova, done);
      throw e;
    } finally {
      this.mapTask = null;
    }
  }

  /** IoptDomain: unmap [iova, iova + length). */
  unmap(iova: bigint, length: bigint): void {
    this.iommuUnmap(iova, length);
  }
}

const PG = BigInt(PAGE_SIZE);

function bitLength(v: bigint): number {
  return v.toString(2).length;
}
