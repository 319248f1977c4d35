/**
 * iommufd devices (device.c): binding a device to an iommufd context, and attaching it to an
 * IOAS (through an automatic domain) or to a HW page table, replacing and detaching.
 *
 * Devices are grouped per IOMMU group (iommufd_group): the first device attached to a HWPT
 * attaches the whole group; every later device of the group must name the same HWPT and only
 * adds its own reserved regions. Reserved regions of each attached device are reserved in the
 * IOAS (so IOAS_MAP cannot cover them, and attach fails over an existing mapping), and the group's
 * software MSI window is set up once per paging domain (the MSI cookie).
 */

import { Errno, KernelError, fail } from '../../errno.js';
import { IOMMU_CAP, IOMMU_NO_PASID, IOMMU_RESV, type AttachHandle, type Device, type IommuGroup } from '../iommu/core.js';
import type { Process } from '../process.js';
import { HwptPaging, IommufdHwpt, hwptPagingAlloc, hwptPut } from './hw_pagetable.js';
import { IommufdIoas } from './ioas.js';
import { IOMMUFD_OBJ, type IommufdCtx, IommufdObject } from './object.js';

const PHYS_ADDR_MAX = (1n << 64n) - 1n;

/** struct iommufd_group: iommufd's per-context view of one IOMMU group. */
export class IommufdGroup {
  readonly ictx: IommufdCtx;
  readonly group: IommuGroup;
  refs = 1;
  /** The HWPT every attached device of the group translates through. */
  hwpt: IommufdHwpt | null = null;
  /** Attached devices, in attach order (igroup->device_list). */
  readonly devices: IommufdDevice[] = [];
  swMsiStart = PHYS_ADDR_MAX;

  constructor(ictx: IommufdCtx, group: IommuGroup) {
    this.ictx = ictx;
    this.group = group;
  }

  put(): void {
    if (--this.refs === 0) this.ictx.groups.delete(this.group.id);
  }
}

/** iommufd_get_group: one IommufdGroup per IOMMU group per context. */
function getGroup(ictx: IommufdCtx, task: Process | null, dev: Device): IommufdGroup {
  if (!dev.group) fail(Errno.ENODEV, `${dev.name} is in no IOMMU group`);
  const cur = ictx.groups.get(dev.group.id) as IommufdGroup | undefined;
  if (cur) {
    cur.refs++;
    return cur;
  }
  if (ictx.machine.inject.shouldFail(task, 'slab')) fail(Errno.ENOMEM, 'allocating the iommufd group: fault injected (fail-nth)');
  const g = new IommufdGroup(ictx, dev.group);
  ictx.groups.set(dev.group.id, g);
  return g;
}

/** An attach handle with the device it belongs to (iommufd_attach_handle). */
export interface IommufdAttachHandle extends AttachHandle {
  idev: IommufdDevice;
}

export class IommufdDevice extends IommufdObject {
  readonly type = IOMMUFD_OBJ.DEVICE;
  readonly dev: Device;
  readonly igroup: IommufdGroup;
  readonly enforceCacheCoherency: boolean;
  /** A selftest mock device does not pin the context (it lives inside it). */
  readonly isMock: boolean;
  /** How many attached HWPTs have a fault queue (iopf enabled while > 0). */
  iopfEnabled = 0;

  constructor(ictx: IommufdCtx, dev: Device, igroup: IommufdGroup, isMock: boolean) {
    super(ictx);
    this.dev = dev;
    this.igroup = igroup;
    this.isMock = isMock;
    this.enforceCacheCoherency = dev.capable(IOMMU_CAP.ENFORCE_CACHE_COHERENCY);
  }

  destroy(): void {
    this.igroup.group.releaseDeviceDmaOwner();
    this.igroup.put();
    if (!this.isMock) this.ictx.file.put();
  }

  get attached(): boolean {
    return this.igroup.devices.includes(this);
  }
}

export interface BindOptions {
  /** Selftest mock devices skip the MSI isolation check and do not hold the context. */
  isMock?: boolean;
}

/**
 * iommufd_device_bind: cache coherency, the group, MSI isolation, DMA ownership, then the object.
 * The caller is a user of the returned device until `unbind`.
 */
export function deviceBind(ictx: IommufdCtx, task: Process | null, dev: Device, opts: BindOptions = {}): IommufdDevice {
  const isMock = opts.isMock ?? false;
  if (!dev.capable(IOMMU_CAP.CACHE_COHERENCY)) fail(Errno.EINVAL, `${dev.name}: its IOMMU cannot make DMA cache-coherent (IOMMU_CAP_CACHE_COHERENCY)`);
  const igroup = getGroup(ictx, task, dev);
  try {
    if (!isMock && !hasIsolatedMsi(igroup.group) && !ictx.machine.iommufd.allowUnsafeInterrupts) {
      fail(Errno.EPERM, `${dev.name}: MSI cannot be isolated on this platform (no interrupt remapping or MSI remap) and allow_unsafe_interrupts is off`);
    }
    igroup.group.claimDeviceDmaOwner(ictx);
    let idev: IommufdDevice;
    try {
      idev = ictx.alloc(task, new IommufdDevice(ictx, dev, igroup, isMock));
    } catch (e) {
      igroup.group.releaseDeviceDmaOwner();
      throw e;
    }
    if (!isMock) ictx.file.get();
    idev.users++;
    ictx.finalize(idev);
    return idev;
  } catch (e) {
    igroup.put();
    throw e;
  }
}

/** iommu_group_has_isolated_msi: every device's MSIs are isolated by the platform. */
function hasIsolatedMsi(group: IommuGroup): boolean {
  return group.devices.every((d) => d.iommu?.msiIsolated === true);
}

/** iommufd_device_unbind. */
export function deviceUnbind(idev: IommufdDevice): void {
  idev.ictx.removeKernel(idev, true);
}

/** iommufd_group_setup_msi: a software MSI window needs the domain's MSI cookie, once. */
function groupSetupMsi(igroup: IommufdGroup, hwpt: HwptPaging): void {
  if (igroup.swMsiStart !== PHYS_ADDR_MAX && !hwpt.msiCookie) {
    hwpt.msiCookie = igroup.swMsiStart;
  }
}

/**
 * iopt_table_enforce_dev_resv_regions: reserve the device's regions in the IOAS (all or none),
 * noting the software MSI window.
 */
export function enforceDevResvRegions(ioas: IommufdIoas, task: Process | null, dev: Device, swMsi: { start: bigint } | null): void {
  if (ioas.ictx.machine.inject.shouldFail(task, 'iommufd')) fail(Errno.EINVAL, 'reserving the device regions: fault injected (fail-nth)');
  let numHwMsi = 0;
  let numSwMsi = 0;
  try {
    for (const r of dev.ops.getResvRegions(dev)) {
      if (r.type === IOMMU_RESV.DIRECT_RELAXABLE) continue;
      if (swMsi && r.type === IOMMU_RESV.MSI) numHwMsi++;
      if (swMsi && r.type === IOMMU_RESV.SW_MSI) {
        swMsi.start = r.start;
        numSwMsi++;
      }
      ioas.iopt.reserveIova(r.start, r.start + r.length - 1n, dev, task);
    }
    if ((numSwMsi && numHwMsi) || numSwMsi > 1) fail(Errno.EINVAL, `${dev.name}: the IOMMU driver reports an inconsistent set of MSI regions`);
  } catch (e) {
    ioas.iopt.removeReserved(dev);
    throw e;
  }
}

/** iommufd_device_attach_reserved_iova. */
function attachReservedIova(idev: IommufdDevice, task: Process | null, hwpt: HwptPaging): void {
  const sw = { start: idev.igroup.swMsiStart };
  enforceDevResvRegions(hwpt.ioas, task, idev.dev, sw);
  idev.igroup.swMsiStart = sw.start;
  if (!idev.igroup.devices.length) groupSetupMsi(idev.igroup, hwpt);
}

/** iommufd_hwpt_attach_device: attach the group with a handle, with IOPF if the HWPT has a fault queue. */
function hwptAttachDevice(hwpt: IommufdHwpt, idev: IommufdDevice, task: Process | null): void {
  if (idev.ictx.machine.inject.shouldFail(task, 'slab')) fail(Errno.ENOMEM, 'allocating the attach handle: fault injected (fail-nth)');
  if (hwpt.fault) iopfEnable(idev);
  const handle: IommufdAttachHandle = { domain: null, idev };
  try {
    idev.igroup.group.attachHandle(hwpt.domain, handle);
  } catch (e) {
    if (hwpt.fault) iopfDisable(idev);
    throw e;
  }
}

function hwptDetachDevice(hwpt: IommufdHwpt, idev: IommufdDevice): void {
  const handle = idev.igroup.group.handle(IOMMU_NO_PASID) as IommufdAttachHandle | null;
  idev.igroup.group.detachHandle();
  if (hwpt.fault) {
    hwpt.fault.autoRespond(handle);
    iopfDisable(idev);
  }
}

/** iommufd_fault_iopf_enable. */
function iopfEnable(idev: IommufdDevice): void {
  if (idev.iopfEnabled === 0) {
    const ops = idev.dev.ops;
    if (!ops.enableIopf) fail(Errno.ENODEV, `${idev.dev.name}: its IOMMU cannot deliver IO page faults`);
    ops.enableIopf(idev.dev);
  }
  idev.iopfEnabled++;
}

function iopfDisable(idev: IommufdDevice): void {
  if (--idev.iopfEnabled === 0) idev.dev.ops.disableIopf?.(idev.dev);
}

/** iommufd_hw_pagetable_attach. */
export function hwptAttach(hwpt: IommufdHwpt, idev: IommufdDevice, task: Process | null): void {
  const igroup = idev.igroup;
  if (igroup.hwpt !== null && igroup.hwpt !== hwpt) fail(Errno.EINVAL, `the device's IOMMU group is attached to HWPT ${igroup.hwpt.id}; every device of a group must use the same one`);
  const paging = hwpt.paging;
  if (paging) attachReservedIova(idev, task, paging);
  try {
    if (!igroup.devices.length) {
      hwptAttachDevice(hwpt, idev, task);
      igroup.hwpt = hwpt;
    }
  } catch (e) {
    if (paging) paging.ioas.iopt.removeReserved(idev.dev);
    throw e;
  }
  hwpt.users++;
  igroup.devices.push(idev);
}

/** iommufd_hw_pagetable_detach: the caller puts the returned HWPT. */
export function hwptDetach(idev: IommufdDevice): IommufdHwpt {
  const igroup = idev.igroup;
  const hwpt = igroup.hwpt;
  if (!hwpt) throw new Error(`${idev.dev.name} is not attached`);
  igroup.devices.splice(igroup.devices.indexOf(idev), 1);
  if (!igroup.devices.length) {
    hwptDetachDevice(hwpt, idev);
    igroup.hwpt = null;
  }
  hwpt.paging?.ioas.iopt.removeReserved(idev.dev);
  return hwpt;
}

type AttachFn = (idev: IommufdDevice, hwpt: IommufdHwpt, task: Process | null) => IommufdHwpt | null;

const doAttach: AttachFn = (idev, hwpt, task) => {
  hwptAttach(hwpt, idev, task);
  return null;
};

function removeGroupReserved(igroup: IommufdGroup, hwpt: HwptPaging): void {
  for (const cur of igroup.devices) hwpt.ioas.iopt.removeReserved(cur.dev);
}

/** iommufd_group_do_replace_reserved_iova. */
function groupReplaceReserved(igroup: IommufdGroup, task: Process | null, hwpt: HwptPaging): void {
  const old = igroup.hwpt?.paging ?? null;
  try {
    if (!old || hwpt.ioas !== old.ioas) {
      for (const cur of igroup.devices) enforceDevResvRegions(hwpt.ioas, task, cur.dev, null);
    }
    groupSetupMsi(igroup, hwpt);
  } catch (e) {
    removeGroupReserved(igroup, hwpt);
    throw e;
  }
}

/** iommufd_hwpt_replace_device. */
function hwptReplaceDevice(idev: IommufdDevice, task: Process | null, hwpt: IommufdHwpt, old: IommufdHwpt): void {
  const group = idev.igroup.group;
  const oldHandle = group.handle(IOMMU_NO_PASID) as IommufdAttachHandle | null;
  if (idev.ictx.machine.inject.shouldFail(task, 'slab')) fail(Errno.ENOMEM, 'allocating the attach handle: fault injected (fail-nth)');
  if (hwpt.fault && !old.fault) iopfEnable(idev);
  try {
    group.replaceHandle(hwpt.domain, { domain: null, idev } as IommufdAttachHandle);
  } catch (e) {
    if (hwpt.fault && !old.fault) iopfDisable(idev);
    throw e;
  }
  if (old.fault) {
    old.fault.autoRespond(oldHandle);
    if (!hwpt.fault) iopfDisable(idev);
  }
}

/** iommufd_device_do_replace: the caller puts the returned old HWPT. */
const doReplace: AttachFn = (idev, hwpt, task) => {
  const igroup = idev.igroup;
  if (igroup.hwpt === null) fail(Errno.EINVAL, `${idev.dev.name} is not attached; replace needs an attachment`);
  if (!idev.attached) fail(Errno.EINVAL, `${idev.dev.name} itself is not attached (another device of its group is)`);
  if (hwpt === igroup.hwpt) return null;
  const old = igroup.hwpt;
  const paging = hwpt.paging;
  if (paging) groupReplaceReserved(igroup, task, paging);
  try {
    hwptReplaceDevice(idev, task, hwpt, old);
  } catch (e) {
    if (paging) removeGroupReserved(igroup, paging);
    throw e;
  }
  const oldPaging = old.paging;
  if (oldPaging && (!paging || paging.ioas !== oldPaging.ioas)) removeGroupReserved(igroup, oldPaging);
  igroup.hwpt = hwpt;
  const n = igroup.devices.length;
  // The device list's references move to the new HWPT; one stays for the caller to put.
  hwpt.users += n;
  if (n > 1) old.users -= n - 1;
  return old;
};

/**
 * iommufd_device_auto_get_domain: reuse an automatic domain of the IOAS that accepts the device
 * (EINVAL means incompatible: try the next), else allocate one.
 */
function autoGetDomain(idev: IommufdDevice, task: Process | null, ioas: IommufdIoas, ptId: { id: number }, attach: AttachFn): IommufdHwpt | null {
  const immediate = attach === doAttach;
  for (const hp of [...ioas.hwptList]) {
    if (!(hp instanceof HwptPaging) || !hp.autoDomain || hp.users <= 0) continue;
    try {
      const destroy = attach(idev, hp, task);
      ptId.id = hp.id;
      return destroy;
    } catch (e) {
      if (e instanceof KernelError && e.errno === Errno.EINVAL) continue;
      throw e;
    }
  }
  const hp = hwptPagingAlloc(idev.ictx, task, ioas, idev, 0, immediate, null);
  let destroy: IommufdHwpt | null = null;
  if (!immediate) {
    try {
      destroy = attach(idev, hp, task);
    } catch (e) {
      idev.ictx.abortAndDestroy(hp);
      throw e;
    }
  }
  hp.autoDomain = true;
  ptId.id = hp.id;
  idev.ictx.finalize(hp);
  return destroy;
}

/** iommufd_device_change_pt. */
function changePt(idev: IommufdDevice, task: Process | null, ptId: { id: number }, attach: AttachFn): void {
  const obj = idev.ictx.get(task, ptId.id, IOMMUFD_OBJ.ANY);
  let destroy: IommufdHwpt | null;
  if (obj instanceof IommufdHwpt) destroy = attach(idev, obj, task);
  else if (obj instanceof IommufdIoas) destroy = autoGetDomain(idev, task, obj, ptId, attach);
  else fail(Errno.EINVAL, `object ${ptId.id} is a ${obj.constructor.name}; a device attaches to an IOAS or a HWPT`);
  if (destroy) hwptPut(idev.ictx, destroy);
}

/** iommufd_device_attach: `ptId` in is an IOAS or HWPT, out the HWPT used. */
export function deviceAttach(idev: IommufdDevice, task: Process | null, ptId: { id: number }): void {
  changePt(idev, task, ptId, doAttach);
  idev.users++;
}

/** iommufd_device_replace. */
export function deviceReplace(idev: IommufdDevice, task: Process | null, ptId: { id: number }): void {
  changePt(idev, task, ptId, doReplace);
}

/** iommufd_device_detach: the device goes back to blocked DMA; an automatic domain dies with its last device. */
export function deviceDetach(idev: IommufdDevice): void {
  const hwpt = hwptDetach(idev);
  hwptPut(idev.ictx, hwpt);
  idev.users--;
}
