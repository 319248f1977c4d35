/**
 * The machine's IOMMU subsystem state: every IOMMU group (IDs from 0, as iommu_group_alloc's ida
 * hands them out, lowest free first) and the devices in them; the simulated IOMMU units and the
 * one driver instance per kind that serves them (as one struct iommu_ops serves every unit of a
 * kind); and the PCI devices behind those units, probed into groups. One instance per Machine.
 * A PCI device may also sit behind no unit: it DMAs to physical addresses on the host bus and has
 * no IOMMU group (the devices vfio's noiommu mode hands to userspace).
 */

import { IommuSva } from './sva.js';
import { HostBus } from '../../hw/host_bus.js';
import { HwIommu, type HwIommuOptions } from '../../hw/iommu.js';
import { PciDevice, type PciDeviceOptions } from '../../hw/pci.js';
import type { Machine } from '../machine.js';
import { IommuGroup } from './core.js';
import { ArmSmmuV3Driver, SmmuDomain } from './drivers/arm_smmu_v3.js';
import { PgtableDomain } from './drivers/common.js';
import { IntelIommuDriver, IntelNestedDomain, IntelSvaDomain } from './drivers/intel.js';

export interface AddPciDeviceOptions extends PciDeviceOptions {
  /** The IOMMU unit in front of the device; null for none (DMA goes straight to the host bus). */
  iommu: HwIommu | null;
  /** Share this group (or the group of this device) instead of getting a new one. */
  group?: IommuGroup | PciDevice;
}

export class IommuSubsystem {
  readonly #machine: Machine;
  readonly #groups = new Map<number, IommuGroup>();
  readonly #units: HwIommu[] = [];
  readonly #pci = new Map<string, PciDevice>();
  /** The firmware's next free 32-bit memory, 64-bit memory and I/O addresses for BARs. */
  #mem32 = 0xfea00000n;
  #mem64 = 0x8000000000n;
  #io = 0xc000n;
  #intel: IntelIommuDriver | null = null;
  /** SVA binds and the machine-wide PASID allocator. */
  readonly sva = new IommuSva();
  #smmu: ArmSmmuV3Driver | null = null;
  /** Where the DMA of devices without an IOMMU goes. */
  readonly hostBus: HostBus;

  constructor(machine: Machine) {
    this.#machine = machine;
    this.hostBus = new HostBus(machine.phys);
  }

  /** iommu_group_alloc. */
  allocGroup(): IommuGroup {
    let id = 0;
    while (this.#groups.has(id)) id++;
    const g = new IommuGroup(id);
    this.#groups.set(id, g);
    return g;
  }

  /** The group's last device left: its ID becomes free. */
  releaseGroup(g: IommuGroup): void {
    if (g.devices.length) throw new Error(`IOMMU group ${g.id} still has devices`);
    this.#groups.delete(g.id);
  }

  group(id: number): IommuGroup | undefined {
    return this.#groups.get(id);
  }

  groups(): IommuGroup[] {
    return [...this.#groups.values()].sort((a, b) => a.id - b.id);
  }

  /** A new IOMMU unit; named dmarN / smmuN by default. */
  addIommu(opts: HwIommuOptions): HwIommu {
    const n = this.#units.filter((u) => u.profile === opts.profile).length;
    const unit = new HwIommu(opts, `${opts.profile === 'vtd' ? 'dmar' : 'smmu'}${n}`, this.#machine.phys);
    if (this.#units.some((u) => u.name === unit.name)) throw new Error(`an IOMMU named ${unit.name} already exists`);
    this.#units.push(unit);
    return unit;
  }

  units(): readonly HwIommu[] {
    return this.#units;
  }

  /** The driver instance serving a unit's kind. */
  driverFor(unit: HwIommu): IntelIommuDriver | ArmSmmuV3Driver {
    if (unit.profile === 'vtd') return (this.#intel ??= new IntelIommuDriver(this.#machine));
    return (this.#smmu ??= new ArmSmmuV3Driver(this.#machine));
  }

  /**
   * Plug in a PCI device behind `opts.iommu` and probe it: the driver takes it, it joins its own
   * new group (or the one given) and gets the group's default domain. No kernel driver is bound.
   * Without an IOMMU the device is only placed: no driver probes it and it gets no group.
   */
  addPciDevice(opts: AddPciDeviceOptions): PciDevice {
    const unit = opts.iommu;
    if (!unit) {
      if (opts.group) throw new Error(`${opts.bdf}: a device without an IOMMU has no IOMMU group to share`);
      const dev = new PciDevice(opts, this.hostBus);
      if (this.#pci.has(dev.bdf)) throw new Error(`a PCI device ${dev.bdf} already exists`);
      this.#pci.set(dev.bdf, dev);
      this.#place(dev);
      return dev;
    }
    if (!this.#units.includes(unit)) throw new Error(`IOMMU ${unit.name} is not part of this machine`);
    const dev = new PciDevice(opts, unit);
    if (this.#pci.has(dev.bdf)) throw new Error(`a PCI device ${dev.bdf} already exists`);
    for (const other of this.#pci.values()) {
      if (other.unit === unit && other.rid === dev.rid) throw new Error(`${dev.bdf} has the requester ID of ${other.bdf} on ${unit.name}`);
    }
    let group: IommuGroup;
    if (opts.group) {
      group = opts.group instanceof PciDevice ? opts.group.group! : opts.group;
      if (!group) throw new Error(`${opts.group instanceof PciDevice ? opts.group.bdf : 'the group'} has no IOMMU group`);
      const first = group.devices[0];
      if (first && (!(first instanceof PciDevice) || first.unit !== unit)) throw new Error(`IOMMU group ${group.id} is not behind ${unit.name}`);
    } else {
      group = this.allocGroup();
    }
    const driver = this.driverFor(unit);
    driver.probe(dev);
    // dev_iommu_get_max_pasids: the device's PASID capability, capped by the unit.
    const maxPasids = dev.pasidWidth ? Math.min(2 ** dev.pasidWidth, unit.maxPasids) : 0;
    group.addDevice(dev, driver, { maxPasids, msiIsolated: unit.msiIsolated });
    this.#pci.set(dev.bdf, dev);
    this.#place(dev);
    return dev;
  }

  /** What the firmware does before the OS boots: BAR addresses, the INTx line, the interrupt controller. */
  #place(dev: PciDevice): void {
    const bars: bigint[] = [];
    for (const b of dev.cfg.barSpecs) {
      if (!b) {
        bars.push(0n);
        continue;
      }
      const size = BigInt(b.size);
      const align = (v: bigint): bigint => ((v + size - 1n) / size) * size;
      if (b.type === 'io') {
        this.#io = align(this.#io);
        bars.push(this.#io);
        this.#io += size;
      } else if (b.type === 'mem64') {
        this.#mem64 = align(this.#mem64);
        bars.push(this.#mem64);
        this.#mem64 += size;
      } else {
        this.#mem32 = align(this.#mem32);
        bars.push(this.#mem32);
        this.#mem32 += size;
      }
    }
    // QEMU's q35 routes the PCI INTx pins of the devices the oracle has to IRQ 10/11; every device gets 11 here.
    dev.place({ bars, irqLine: 11 });
    this.#machine.irq.connect(dev);
  }

  pciDevice(bdf: string): PciDevice | undefined {
    return this.#pci.get(bdf.toLowerCase());
  }

  pciDevices(): PciDevice[] {
    return [...this.#pci.values()];
  }

  /**
   * The hardware agrees with the core: each PCI device's programmed context is its group's
   * domain (blocked, pass-through, its page table, or its nested stage 1). Returns violations.
   */
  checkHardware(): string[] {
    const errs: string[] = [];
    for (const dev of this.#pci.values()) {
      const d = dev.group?.domain ?? null;
      const unit = dev.unit;
      if (!unit) {
        if (d) errs.push(`${dev.bdf} has no IOMMU but its group has a ${d.type} domain`);
        continue;
      }
      const ctx = unit.context(dev.rid);
      const where = `${dev.bdf} on ${unit.name}`;
      if (!d || d.type === 'blocked') {
        if (ctx.mode !== 'blocked') errs.push(`${where}: the group is blocked but the context is ${ctx.mode}`);
      } else if (d.type === 'identity') {
        if (ctx.mode !== 'identity') errs.push(`${where}: the group passes through but the context is ${ctx.mode}`);
      } else if (d instanceof IntelNestedDomain) {
        if (ctx.mode !== 'nested' || ctx.s1 !== d) errs.push(`${where}: the group's nested domain is not what the context holds (${ctx.mode})`);
      } else if (d instanceof PgtableDomain || d instanceof SmmuDomain) {
        if (ctx.mode !== 'translate' || ctx.table !== d) errs.push(`${where}: the group's paging domain ${d.tag} is not the context's table (${ctx.mode})`);
        if (!d.attached.get(unit)?.has(dev)) errs.push(`${where}: paging domain ${d.tag} does not list the device`);
      }
      // SVA bonds: each PASID of the group is the mm's table while the mm lives, torn down after.
      if (!dev.iommu?.maxPasids) continue;
      for (const [pasid, handle] of dev.group?.pasidArray ?? []) {
        const sva = handle?.domain;
        if (pasid === 0 || !(sva instanceof IntelSvaDomain)) continue;
        const pctx = unit.context(dev.rid, pasid);
        if (sva.mm.alive && (pctx.mode !== 'translate' || pctx.table !== sva)) errs.push(`${where}: PASID ${pasid} is bound to an address space but its entry is ${pctx.mode}`);
        if (!sva.mm.alive && pctx.mode !== 'blocked') errs.push(`${where}: PASID ${pasid}'s address space is gone but its entry is ${pctx.mode}`);
      }
    }
    const live = new Set<number>();
    for (const g of this.#groups.values()) for (const [pasid, h] of g.pasidArray) if (pasid && h?.domain?.type === 'sva') live.add(pasid);
    for (const pasid of live) if (!this.sva.allocatedPasids().includes(pasid)) errs.push(`PASID ${pasid} is bound but not allocated`);
    return errs;
  }
}
