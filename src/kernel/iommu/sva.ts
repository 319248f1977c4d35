/**
 * Shared Virtual Addressing (drivers/iommu/iommu-sva.c, 6.12): a device's DMA tagged with a PASID
 * translates through a process's own page tables, so the device uses the process's pointers.
 *
 * Each mm gets one PASID from the machine-wide allocator the first time it is bound
 * (iommu_alloc_mm_data) and keeps it for its lifetime: the PASID goes back only once the mm is
 * gone and no SVA domain still holds it (mm_pasid_drop at the last mmdrop). A bind looks for an
 * existing bond of the same PASID on the device's group (a reference more), then tries the mm's
 * existing SVA domains, then allocates a domain from the device's IOMMU driver. IO page faults on
 * an SVA domain are served by the mm itself (iommu_sva_handle_mm): a VMA must cover the address
 * and allow the access, and then the page is made present.
 *
 * 6.12.117 as built for x86 refuses every bind with EOPNOTSUPP (a stable-series stopgap). The
 * emulation keeps SVA working, since the seed series' VFIO SVA is part of the system it builds.
 */

import { Errno, fail } from '../../errno.js';
import type { Mm } from '../mm/mm.js';
import { type AttachHandle, type Device, type IopfGroup, IOMMU_FAULT_PAGE_REQUEST_PASID_VALID, IOMMU_PAGE_RESP, type PasidDomain } from './core.js';

/** IOMMU_FAULT_PERM_* of a page request (a request without READ/WRITE is served as a read). */
const PERM_WRITE = 1 << 1;
const PERM_EXEC = 1 << 2;
/** IOMMU_FIRST_GLOBAL_PASID: PASID 0 is the RID's. */
const FIRST_GLOBAL_PASID = 1;

/** struct iommu_mm_data. */
export interface IommuMmData {
  readonly pasid: number;
  /** The process exited: the mm is only held by its SVA domains now. */
  exited: boolean;
  /** SVA domains built on this mm, newest first (the kernel's list_add). */
  readonly domains: SvaDomain[];
}

/** An SVA domain: the driver's PasidDomain plus what iommu_sva_domain_alloc sets. */
export interface SvaDomain extends PasidDomain {
  readonly type: 'sva';
  readonly mm: Mm;
  /** Devices (PASID attachments) using it. */
  users: number;
}

/** struct iommu_sva: one device's bond with one mm; `users` counts the binds. */
export interface SvaHandle extends AttachHandle {
  domain: SvaDomain;
  readonly dev: Device;
  users: number;
}

export class IommuSva {
  /** iommu_global_pasid_ida. */
  readonly #pasids = new Set<number>();
  readonly #mms = new Map<Mm, IommuMmData>();

  /** The PASID `mm` holds, if it has been bound. */
  pasidOf(mm: Mm): number | null {
    return this.#mms.get(mm)?.pasid ?? null;
  }

  /** PASIDs allocated (for the object graph and tests). */
  allocatedPasids(): number[] {
    return [...this.#pasids].sort((a, b) => a - b);
  }

  /** iommu_alloc_global_pasid: the lowest free PASID the device can issue, or null. */
  allocGlobalPasid(dev: Device): number | null {
    const max = dev.iommu?.maxPasids ?? 0;
    for (let p = FIRST_GLOBAL_PASID; p < max; p++) {
      if (!this.#pasids.has(p)) {
        this.#pasids.add(p);
        return p;
      }
    }
    return null;
  }

  freeGlobalPasid(pasid: number): void {
    this.#pasids.delete(pasid);
  }

  /** iommu_alloc_mm_data. */
  #mmData(mm: Mm, dev: Device): IommuMmData {
    const have = this.#mms.get(mm);
    if (have) {
      if (have.pasid >= dev.iommu!.maxPasids) fail(Errno.EOVERFLOW, `the mm's PASID ${have.pasid} is beyond the ${dev.iommu!.maxPasids} PASIDs ${dev.name} supports`);
      return have;
    }
    const pasid = this.allocGlobalPasid(dev);
    if (pasid === null) fail(Errno.ENOSPC, dev.iommu!.maxPasids ? `no free PASID below ${dev.iommu!.maxPasids} for ${dev.name}` : `${dev.name} has no PASID support`);
    const data: IommuMmData = { pasid, exited: false, domains: [] };
    this.#mms.set(mm, data);
    // mm_pasid_drop runs at the last mmdrop: when the process is gone and no domain holds the mm.
    mm.releaseNotifiers.add(() => {
      data.exited = true;
      this.#dropIfUnused(mm);
    });
    return data;
  }

  #dropIfUnused(mm: Mm): void {
    const data = this.#mms.get(mm);
    if (!data || !data.exited || data.domains.length) return;
    this.#mms.delete(mm);
    this.freeGlobalPasid(data.pasid);
  }

  /** iommu_sva_bind_device. */
  bind(dev: Device, mm: Mm): SvaHandle {
    const group = dev.group;
    if (!group || !dev.iommu) fail(Errno.ENODEV, `${dev.name} has no IOMMU group`);
    if (!mm.alive) fail(Errno.EINVAL, 'the address space is gone');
    const data = this.#mmData(mm, dev);
    const existing = group.handle(data.pasid);
    if (existing) {
      if (existing.domain?.type !== 'sva') fail(Errno.EBUSY, `PASID ${data.pasid} of IOMMU group ${group.id} is attached to a ${existing.domain?.type ?? 'reserved'} domain`);
      const h = existing as SvaHandle;
      if (h.domain.mm !== mm) fail(Errno.EBUSY, `PASID ${data.pasid} of IOMMU group ${group.id} is bound to another address space`);
      h.users++;
      return h;
    }
    const handle = { domain: null as unknown as SvaDomain, dev, users: 1 } as SvaHandle;
    for (const domain of data.domains) {
      try {
        group.attachDevicePasid(domain, dev, data.pasid, handle);
        domain.users++;
        return handle;
      } catch {
        // Incompatible with this device: try the next domain, then a new one.
      }
    }
    const ops = dev.ops;
    if (!ops.domainAllocSva) fail(Errno.EOPNOTSUPP, `${ops.name} has no SVA domains`);
    const domain = ops.domainAllocSva(dev, mm) as SvaDomain;
    domain.iopfHandler = (g) => this.#handleIopf(g, mm);
    try {
      group.attachDevicePasid(domain, dev, data.pasid, handle);
    } catch (e) {
      domain.free();
      throw e;
    }
    domain.users = 1;
    data.domains.unshift(domain);
    return handle;
  }

  /** iommu_sva_unbind_device. */
  unbind(handle: SvaHandle): void {
    if (--handle.users > 0) return;
    const domain = handle.domain;
    const data = this.#mms.get(domain.mm)!;
    handle.dev.group!.detachDevicePasid(domain, data.pasid);
    if (--domain.users === 0) {
      data.domains.splice(data.domains.indexOf(domain), 1);
      domain.free();
      this.#dropIfUnused(domain.mm);
    }
  }

  /** iommu_sva_handle_iopf: the faults in order; the first that fails answers the group. */
  #handleIopf(group: IopfGroup, mm: Mm): void {
    let status: number = IOMMU_PAGE_RESP.SUCCESS;
    for (const f of group.faults) {
      if (status !== IOMMU_PAGE_RESP.SUCCESS) break;
      status = IOMMU_PAGE_RESP.INVALID;
      if (!(f.flags & IOMMU_FAULT_PAGE_REQUEST_PASID_VALID)) continue;
      // An exec request needs VM_EXEC; the emulated mm does not execute, so it is refused.
      if (f.perm & PERM_EXEC) continue;
      if (mm.handleDeviceFault(f.addr, (f.perm & PERM_WRITE) !== 0)) status = IOMMU_PAGE_RESP.SUCCESS;
    }
    group.respond(status);
  }
}
