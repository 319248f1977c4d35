/**
 * Shared Virtual Addressing for the type1 container (the seed series' VFIO_IOMMU_BIND and
 * VFIO_IOMMU_UNBIND; never merged upstream, built here on 6.12's iommu-sva core).
 *
 * VFIO_IOMMU_BIND with VFIO_IOMMU_BIND_PROCESS binds an address space — the caller's, or with
 * VFIO_IOMMU_BIND_PID another process's, which the caller must be allowed to ptrace-attach
 * (mm_access) — to every device of every group in the container, and returns its PASID: one per
 * address space, machine-wide, so the same number on every device. Binding an address space that
 * is already bound returns its PASID again. Groups that join the container later get every bound
 * address space replayed onto their devices; if that fails, the join is undone. UNBIND removes a
 * bond on every device. A device with PRI gets IO page faults enabled first (its faults are
 * served by the address space); SVA itself is enabled on each device as it gets its first bond.
 *
 * When a bound process exits, its address space is never touched again: the IOMMU driver tears the
 * PASID entries down (mmu_notifier release), requests on that PASID fault without a page request,
 * and the bond stays until UNBIND — by PID no longer, so by the PASID BIND returned, which stays
 * allocated to the dead address space until its last bond goes — or until the container is closed.
 */

import { Errno, fail } from '../../errno.js';
import type { PciDevice } from '../../hw/pci.js';
import type { Device, IommuGroup } from '../iommu/core.js';
import type { SvaHandle } from '../iommu/sva.js';
import type { Machine } from '../machine.js';
import type { Mm } from '../mm/mm.js';
import type { Process } from '../process.js';
import { ptraceDenied } from '../ptrace.js';
import { copyFromUser, copyToUser } from '../uaccess.js';
import { VFIO_IOMMU_BIND_PID, VFIO_IOMMU_BIND_PROCESS, vfio_iommu_type1_bind, vfio_iommu_type1_bind_process } from '../../uapi/vfio_sva.js';

/** struct vfio_mm: one bound address space and its bond on each device. */
export class VfioMm {
  readonly mm: Mm;
  /** The PASID iommu-sva gave the address space (the same on every device). */
  pasid = 0;
  readonly bonds = new Map<Device, SvaHandle>();

  constructor(mm: Mm) {
    this.mm = mm;
  }

  /** The process exited: the address space is gone and is never touched again. */
  get exited(): boolean {
    return !this.mm.alive;
  }
}

/** A group's place in the container, as SVA needs it. */
export interface SvaGroups {
  /** Every group of the container, in domain order. */
  groups(): IommuGroup[];
}

/** The container's bound address spaces (iommu->mm_list) and the bind/unbind machinery. */
export class Type1Sva {
  readonly mms: VfioMm[] = [];
  readonly #container: SvaGroups;
  readonly #machine: Machine;
  /** Devices whose IO page faults SVA enabled (undone with their last bond). */
  readonly #iopfEnabled = new Set<Device>();

  constructor(container: SvaGroups, machine: Machine) {
    this.#container = container;
    this.#machine = machine;
  }

  /** Bind `vmm` on every device of `group` that can issue PASIDs; all or nothing. */
  bindGroup(group: IommuGroup, vmm: VfioMm): void {
    const done: Device[] = [];
    try {
      for (const dev of group.devices) {
        if (!dev.iommu?.maxPasids) continue;
        this.#enableFeatures(dev);
        const handle = this.#machine.iommu.sva.bind(dev, vmm.mm);
        vmm.pasid = this.#machine.iommu.sva.pasidOf(vmm.mm)!;
        vmm.bonds.set(dev, handle);
        done.push(dev);
      }
      if (!done.length) fail(Errno.EINVAL, `IOMMU group ${group.id} has no device that can issue PASIDs`);
    } catch (e) {
      for (const dev of done) this.#unbindDevice(vmm, dev);
      for (const dev of group.devices) if (!this.#bonded(dev)) this.#disableFeatures(dev);
      throw e;
    }
  }

  /** Remove `vmm`'s bonds on the devices of `group`. */
  unbindGroup(group: IommuGroup, vmm: VfioMm): void {
    for (const dev of group.devices) if (vmm.bonds.has(dev)) this.#unbindDevice(vmm, dev);
  }

  #unbindDevice(vmm: VfioMm, dev: Device): void {
    const handle = vmm.bonds.get(dev)!;
    vmm.bonds.delete(dev);
    this.#machine.iommu.sva.unbind(handle);
    if (!this.#bonded(dev)) this.#disableFeatures(dev);
  }

  #bonded(dev: Device): boolean {
    return this.mms.some((m) => m.bonds.has(dev));
  }

  /** iommu_dev_enable_feature(IOPF) for a PRI device, then (SVA). */
  #enableFeatures(dev: Device): void {
    const ops = dev.ops;
    if ((dev as PciDevice).pri && !dev.iommu!.iopfEnabled && ops.enableIopf) {
      ops.enableIopf(dev);
      this.#iopfEnabled.add(dev);
    }
    if (!ops.enableSva) {
      if (this.#iopfEnabled.delete(dev)) ops.disableIopf?.(dev);
      fail(Errno.ENODEV, `${ops.name} cannot bind address spaces (no IOMMU_DEV_FEAT_SVA)`);
    }
    try {
      ops.enableSva(dev);
    } catch (e) {
      if (this.#iopfEnabled.delete(dev)) ops.disableIopf?.(dev);
      throw e;
    }
  }

  #disableFeatures(dev: Device): void {
    if (this.#iopfEnabled.delete(dev)) dev.ops.disableIopf?.(dev);
  }

  /** A group joined the container: every bound address space onto it, or none (the join is then undone by the caller). */
  replay(group: IommuGroup): void {
    const done: VfioMm[] = [];
    try {
      for (const vmm of this.mms) {
        if (vmm.exited) continue;
        this.bindGroup(group, vmm);
        done.push(vmm);
      }
    } catch (e) {
      for (const vmm of done) this.unbindGroup(group, vmm);
      throw e;
    }
  }

  /** Container release: every bond goes. */
  unbindAll(): void {
    for (const vmm of this.mms.splice(0)) {
      for (const dev of [...vmm.bonds.keys()]) this.#unbindDevice(vmm, dev);
    }
  }

  /** VFIO_IOMMU_BIND. */
  bindIoctl(arg: bigint, task: Process): number {
    const { params, at } = readBind(arg, task, 'VFIO_IOMMU_BIND');
    const mm = params.flags & VFIO_IOMMU_BIND_PID ? mmOfPid(task, params.pid) : task.mm;
    const have = this.mms.find((m) => m.mm === mm);
    if (have) {
      copyToUser(task, at, vfio_iommu_type1_bind_process.encode({ ...params, pasid: have.pasid }), 'writing back vfio_iommu_type1_bind_process');
      return 0;
    }
    const vmm = new VfioMm(mm);
    const done: IommuGroup[] = [];
    try {
      for (const group of this.#container.groups()) {
        this.bindGroup(group, vmm);
        done.push(group);
      }
      this.mms.push(vmm);
      copyToUser(task, at, vfio_iommu_type1_bind_process.encode({ ...params, pasid: vmm.pasid }), 'writing back vfio_iommu_type1_bind_process');
    } catch (e) {
      const i = this.mms.indexOf(vmm);
      if (i >= 0) this.mms.splice(i, 1);
      for (const group of done) this.unbindGroup(group, vmm);
      throw e;
    }
    return 0;
  }

  /** VFIO_IOMMU_UNBIND: by the caller's or `pid`'s address space; an exited process's bond by its PASID. */
  unbindIoctl(arg: bigint, task: Process): number {
    const { params } = readBind(arg, task, 'VFIO_IOMMU_UNBIND');
    let vmm: VfioMm | undefined;
    if (params.flags & VFIO_IOMMU_BIND_PID) {
      const target = task.machine.process(params.pid);
      if (target && !target.exited) {
        const mm = mmOfPid(task, params.pid);
        vmm = this.mms.find((m) => m.mm === mm);
      } else {
        vmm = this.mms.find((m) => m.exited && m.pasid === params.pasid);
        if (!vmm) fail(Errno.ESRCH, `no process ${params.pid}, and no exited address space is bound with PASID ${params.pasid}`);
      }
    } else {
      vmm = this.mms.find((m) => m.mm === task.mm);
    }
    if (!vmm) fail(Errno.ESRCH, `the address space of process ${params.flags & VFIO_IOMMU_BIND_PID ? params.pid : task.pid} is not bound to this container`);
    this.mms.splice(this.mms.indexOf(vmm), 1);
    for (const dev of [...vmm.bonds.keys()]) this.#unbindDevice(vmm, dev);
    return 0;
  }
}

/** The header checks shared by BIND and UNBIND, then the process parameters. */
function readBind(arg: bigint, task: Process, what: string): { params: { flags: number; pasid: number; pid: number }; at: bigint } {
  const minsz = vfio_iommu_type1_bind.offsetEnd('flags');
  const bind = vfio_iommu_type1_bind.decode(copyFromUser(task, arg, minsz, `reading vfio_iommu_type1_bind (${what})`));
  if (bind.argsz < minsz) fail(Errno.EINVAL, `vfio_iommu_type1_bind.argsz ${bind.argsz} is below ${minsz}`);
  if (bind.flags !== VFIO_IOMMU_BIND_PROCESS) fail(Errno.EINVAL, `vfio_iommu_type1_bind.flags ${bind.flags} is not VFIO_IOMMU_BIND_PROCESS`);
  const size = vfio_iommu_type1_bind_process.size;
  if (bind.argsz < minsz + size) fail(Errno.EINVAL, `vfio_iommu_type1_bind.argsz ${bind.argsz} has no room for a vfio_iommu_type1_bind_process (${minsz + size})`);
  const at = arg + BigInt(minsz);
  const params = vfio_iommu_type1_bind_process.decode(copyFromUser(task, at, size, 'reading vfio_iommu_type1_bind_process'));
  if (params.flags & ~VFIO_IOMMU_BIND_PID) fail(Errno.EINVAL, `vfio_iommu_type1_bind_process.flags has unknown bits 0x${(params.flags & ~VFIO_IOMMU_BIND_PID).toString(16)}`);
  return { params, at };
}

/**
 * mm_access(task, PTRACE_MODE_ATTACH_REALCREDS): the address space of process `pid`, if the caller
 * could ptrace-attach to it (ptrace.ts).
 */
function mmOfPid(task: Process, pid: number): Mm {
  const target = task.machine.process(pid);
  if (!target || target.exited || !target.mm.alive) fail(Errno.ESRCH, `no process ${pid} with an address space`);
  const denied = ptraceDenied(task, target);
  if (denied) fail(Errno.EACCES, `may not ptrace-attach: ${denied}`);
  return target.mm;
}

