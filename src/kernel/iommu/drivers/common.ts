/**
 * What the VT-d and SMMUv3 drivers share.
 *
 * `PgtableDomain` is a paging domain over hw/io_pgtable.ts that the simulated hardware walks
 * directly (it is the unit's `HwPageTable`). Dirty bits live beside the table, one per leaf, set
 * by the hardware when a device writes through a leaf while the domain tracks dirtiness, and
 * cleared by unmap and by read-and-clear. The domain knows which devices on which units
 * translate through it, so every unmap invalidates the IOTLB of each of those units (the
 * iotlb_sync of the real drivers' cache tags), and the last device of a unit leaving invalidates
 * the whole domain there (the domain-selective flush on context teardown).
 *
 * `HwDriverBase` holds the per-device state both drivers keep (struct device_domain_info /
 * arm_smmu_master: the unit and the domain currently programmed) and `blockTranslation`, which
 * every attach starts with, as intel_iommu_attach_device and arm_smmu_attach_dev do.
 */

import { Errno, fail } from '../../../errno.js';
import { IoPgtable, type Translation } from '../../../hw/io_pgtable.js';
import type { HwIommu, HwPageTable } from '../../../hw/iommu.js';
import { IOTLB_TAG_BITS } from '../../../hw/iotlb.js';
import { PciDevice } from '../../../hw/pci.js';
import type { Machine } from '../../machine.js';
import type { Process } from '../../process.js';
import { copyStructFromUser } from '../../uaccess.js';
import { type Device, IOMMU_DIRTY_NO_CLEAR, type IommuDomain, type IommuDriver, PagingDomain } from '../core.js';

/** IOMMU_READ | IOMMU_WRITE: the prot bits a leaf keeps (the same values as IOPTE_READ/WRITE). */
const PROT_RW = 1 | 2;
const hx = (v: bigint): string => `0x${v.toString(16)}`;

/** Domain IDs / ASIDs: the lowest free one from 1, as the drivers' IDAs hand them out. */
export class TagAllocator {
  readonly #used = new Set<number>();
  #next = 1;

  alloc(): number {
    let t = this.#next;
    while (this.#used.has(t)) t++;
    if (t >= 2 ** IOTLB_TAG_BITS) fail(Errno.ENOSPC, 'no free domain ID');
    this.#used.add(t);
    this.#next = t + 1;
    return t;
  }

  free(t: number): void {
    this.#used.delete(t);
    if (t < this.#next) this.#next = t;
  }
}

export abstract class PgtableDomain extends PagingDomain implements HwPageTable {
  readonly pt: IoPgtable;
  readonly tag: number;
  /** Leaves whose dirty bit is set, by their first IOVA page. */
  readonly dirtyLeaves = new Set<number>();
  /** Dirty tracking is switched on (VT-d programs SSADS into each PASID entry). */
  dirtyTracking = false;
  /** Devices translating through the domain, by unit. */
  readonly attached = new Map<HwIommu, Set<PciDevice>>();
  /** The end of the highest mapping made (dmar_domain->max_addr). */
  maxAddr = 0n;
  /** Something was ever mapped (dmar_domain->has_mappings). */
  hasMappings = false;
  readonly #tags: TagAllocator;

  constructor(owner: IommuDriver, tags: TagAllocator, pgsizeBitmap: bigint, ias: number) {
    super(owner, pgsizeBitmap, 0n, (1n << BigInt(ias)) - 1n);
    this.pt = new IoPgtable({ pgsizeBitmap, ias });
    this.#tags = tags;
    this.tag = tags.alloc();
  }

  get lastIova(): bigint {
    return this.apertureEnd;
  }

  abstract get dirtyActive(): boolean;

  walk(iova: bigint): Translation | null {
    return this.pt.translate(iova);
  }

  setDirty(leafPage: number): void {
    this.dirtyLeaves.add(leafPage);
  }

  mapPages(iova: bigint, paddr: bigint, pgsize: bigint, pgcount: bigint, prot: number): bigint {
    const size = pgsize * pgcount;
    this.pt.map(iova, paddr, size, prot & PROT_RW);
    if (iova + size > this.maxAddr) this.maxAddr = iova + size;
    this.hasMappings = true;
    return size;
  }

  unmapPages(iova: bigint, pgsize: bigint, pgcount: bigint): bigint {
    const n = this.pt.unmap(iova, pgsize * pgcount);
    if (n) {
      this.#clearDirty(iova, n);
      this.flush(iova, n);
    }
    return n;
  }

  iovaToPhys(iova: bigint): bigint | null {
    return this.pt.translate(iova)?.paddr ?? null;
  }

  /** iotlb_sync: invalidate [iova, iova + length) on every unit that may cache it. */
  flush(iova: bigint, length: bigint): void {
    for (const unit of this.attached.keys()) unit.invalidateRange(this.tag, iova, length);
  }

  #clearDirty(iova: bigint, length: bigint): void {
    if (!this.dirtyLeaves.size) return;
    const first = Number(iova >> 12n);
    const last = Number((iova + length - 1n) >> 12n);
    if (last - first + 1 > this.dirtyLeaves.size) {
      for (const p of [...this.dirtyLeaves]) if (p >= first && p <= last) this.dirtyLeaves.delete(p);
    } else {
      for (let p = first; p <= last; p++) this.dirtyLeaves.delete(p);
    }
  }

  /** Test-and-clear the dirty bit of the leaf holding `iova`; null where nothing is mapped. */
  protected testAndClearDirty(iova: bigint, flags: number): { pgsize: bigint; dirty: boolean } | null {
    const t = this.pt.translate(iova);
    if (!t) return null;
    const leaf = Number((iova & ~(t.pageSize - 1n)) >> 12n);
    const dirty = this.dirtyLeaves.has(leaf);
    if (dirty && !(flags & IOMMU_DIRTY_NO_CLEAR)) this.dirtyLeaves.delete(leaf);
    return { pgsize: t.pageSize, dirty };
  }

  /** A device now translates through this domain. */
  addDevice(dev: PciDevice): void {
    let set = this.attached.get(dev.iommuUnit);
    if (!set) this.attached.set(dev.iommuUnit, (set = new Set()));
    set.add(dev);
  }

  /** A device stopped translating through this domain; its unit forgets the domain with the last one. */
  removeDevice(dev: PciDevice): void {
    const set = this.attached.get(dev.iommuUnit);
    if (!set?.delete(dev)) return;
    if (!set.size) {
      this.attached.delete(dev.iommuUnit);
      dev.iommuUnit.iotlb.invalidateTag(this.tag);
    }
  }

  override free(): void {
    if (this.attached.size) throw new Error(`${this.owner.name}: domain ${this.tag} freed while devices still translate through it`);
    if (this.pt.mapped) throw new Error(`${this.owner.name}: domain ${this.tag} freed with 0x${this.pt.mapped.toString(16)} bytes still mapped`);
    this.#tags.free(this.tag);
  }

  /** The IO page table rejects a range beyond its input width; say so as the drivers' checks would. */
  protected checkRange(iova: bigint, size: bigint): void {
    if (!size || (iova + size - 1n) >> BigInt(this.pt.ias)) fail(Errno.EINVAL, `[${hx(iova)}, +${hx(size)}) is outside the ${this.pt.ias}-bit page table`);
  }
}

/** struct device_domain_info / arm_smmu_master: the unit and what is programmed for the device. */
export interface DevInfo {
  readonly dev: PciDevice;
  readonly unit: HwIommu;
  /** The domain programmed for the RID (null: blocked). */
  domain: IommuDomain | null;
  iopfEnabled: boolean;
}

export abstract class HwDriverBase {
  readonly machine: Machine;
  readonly tags = new TagAllocator();
  readonly #infos = new Map<Device, DevInfo>();

  constructor(machine: Machine) {
    this.machine = machine;
  }

  /** probe_device: the driver takes the device. */
  probe(dev: PciDevice): void {
    this.#infos.set(dev, { dev, unit: dev.iommuUnit, domain: null, iopfEnabled: false });
  }

  release(dev: PciDevice): void {
    this.blockTranslation(dev);
    this.#infos.delete(dev);
  }

  info(dev: Device): DevInfo {
    const i = this.#infos.get(dev);
    if (!i) throw new Error(`${dev.name} was not probed by this IOMMU driver`);
    return i;
  }

  /**
   * The state of a device a domain of this driver is asked to attach. The core checks the
   * domain's owner on attach but not on replace (iommu_replace_group_handle), so a device of
   * another driver can arrive here; the drivers refuse it with their own errno.
   */
  attachInfo(dev: Device, errno: number): DevInfo {
    const i = this.#infos.get(dev);
    if (!i) fail(errno, `${dev.name} is not behind an IOMMU of this driver; the domain cannot translate for it`);
    return i;
  }

  /** device_block_translation: clear the device's context and leave its old domain. */
  blockTranslation(dev: Device, errno: number = Errno.EINVAL): DevInfo {
    const info = this.attachInfo(dev, errno);
    const old = info.domain;
    info.unit.setContext(info.dev.rid, null);
    info.domain = null;
    if (old) this.leave(old, info.dev);
    return info;
  }

  /** The device no longer uses `domain` (drivers with nested domains extend this). */
  protected leave(domain: IommuDomain, dev: PciDevice): void {
    if (domain instanceof PgtableDomain) domain.removeDevice(dev);
  }
}

export function asPci(dev: Device): PciDevice {
  if (!(dev instanceof PciDevice)) throw new Error(`${dev.name} is not a PCI device`);
  return dev;
}

/**
 * __iommu_copy_struct_from_user: the data type must match, the user length must reach the last
 * mandatory field (`minLen`) and not exceed what the kernel knows (`ksize`); then
 * copy_struct_from_user (E2BIG for non-zero bytes past ksize, EFAULT for unreadable memory).
 */
export function copyStructFromUserData(task: Process, ud: { type: number; uptr: bigint; len: number }, type: number, ksize: number, minLen: number, what: string): Uint8Array {
  if (ud.type !== type) fail(Errno.EINVAL, `${what}: data type ${ud.type} is not ${type}`);
  if (ud.len < minLen || ksize < ud.len) fail(Errno.EINVAL, `${what}: data length ${ud.len} is outside ${minLen}..${ksize}`);
  return copyStructFromUser(task, ksize, ud.uptr, ud.len, what);
}
