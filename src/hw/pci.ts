/**
 * PCI devices that do DMA. A `PciDevice` is a kernel `Device` (so it joins IOMMU groups, gets
 * bound to drivers and claimed by iommufd/VFIO) with a bus/device/function address, IDs, a
 * 256-byte configuration space header, and a DMA engine: `dmaRead`/`dmaWrite` issue requests with
 * its requester ID (and optionally a PASID) to the IOMMU unit it sits behind. A request either
 * completes or faults; a fault is data (logged here and in the unit), never an exception.
 *
 * A device with the PRI capability whose IOPF the driver enabled reacts to a translation fault
 * (not present, or not permitted) as an ATS/PRI device does: it sends a page request (one group
 * of one page, its PRG index the next of 512) to the IOMMU core, which routes it to the fault
 * handler of the domain (an iommufd fault queue), and remembers the answer so the device model
 * can retry once it is SUCCESS. The faulted DMA itself still returns its fault.
 */

import { KernelError } from '../errno.js';
import { Device, type IopfFault, IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE, IOMMU_FAULT_PAGE_REQUEST_PASID_VALID, IOMMU_PAGE_RESP, reportDeviceFault } from '../kernel/iommu/core.js';
import type { DmaTarget } from './host_bus.js';
import { type DmaFault, type DmaReadResult, type DmaWriteResult, HwIommu, type MsiMessage } from './iommu.js';
import { PciConfigSpace } from './pci_config.js';
import type { BarAccessSize, PciDeviceModel, PciFunctionPort } from './pci_model.js';

/** IOMMU_FAULT_PERM_READ / _WRITE. */
const PERM_READ = 1 << 0;
const PERM_WRITE = 1 << 1;
const PRG_INDEXES = 512;

/** A page request the device sent; `response` is the IOMMU_PAGE_RESP_* code once answered. */
export interface PageRequest {
  readonly grpid: number;
  readonly iova: bigint;
  readonly pasid: number | null;
  readonly write: boolean;
  response: number | null;
  /** Why the core refused to take it (no handler, IOPF not enabled), if it did. */
  refused: string | null;
}

/** A DMA result from the device: a fault may have sent a page request. */
export type PciDmaReadResult = DmaReadResult | { ok: false; fault: DmaFault; pageRequest: PageRequest };
export type PciDmaWriteResult = DmaWriteResult | { ok: false; fault: DmaFault; pageRequest: PageRequest };

export interface PciDeviceOptions {
  /** "DDDD:BB:DD.F", e.g. "0000:00:03.0". */
  bdf: string;
  /** PCI vendor ID (default 0x1b36, Red Hat / QEMU). */
  vendor?: number;
  /** PCI device ID (default 0x0005, QEMU's pci-testdev). */
  device?: number;
  /** 24-bit class code (default 0x00ff00, unclassified). */
  classCode?: number;
  /** Width of the PASID capability (default 20; 0 for no PASID capability). */
  pasidWidth?: number;
  /** ATS capability (default true). */
  ats?: boolean;
  /** PRI capability: the device can ask for IO page faults to be served (default false). */
  pri?: boolean;
  /** Faults and interrupts kept in the device's logs (default 256 each). */
  logSize?: number;
  /** The device model behind the function (its identity overrides vendor/device/classCode). */
  model?: PciDeviceModel;
}

/** Where the platform firmware placed the function: BAR addresses and the INTx line. */
export interface PciPlacement {
  /** Bus address of each BAR (0n: unimplemented or unassigned). */
  readonly bars: readonly bigint[];
  /** The host IRQ line the pin is routed to (PCI_INTERRUPT_LINE), 0 without a pin. */
  readonly irqLine: number;
}

export interface Bdf {
  segment: number;
  bus: number;
  dev: number;
  fn: number;
}

export function parseBdf(bdf: string): Bdf {
  const m = /^([0-9a-fA-F]{4}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/.exec(bdf);
  if (!m) throw new Error(`"${bdf}" is not a PCI address (DDDD:BB:DD.F)`);
  const dev = parseInt(m[3]!, 16);
  if (dev > 0x1f) throw new Error(`"${bdf}": device number 0x${dev.toString(16)} is above 0x1f`);
  return { segment: parseInt(m[1]!, 16), bus: parseInt(m[2]!, 16), dev, fn: parseInt(m[4]!, 10) };
}

export class PciDevice extends Device {
  readonly bdf: string;
  readonly segment: number;
  readonly busNr: number;
  readonly devfn: number;
  /** Requester ID: bus << 8 | devfn. */
  readonly rid: number;
  readonly vendor: number;
  readonly deviceId: number;
  readonly classCode: number;
  /** The IOMMU unit in front of the device; null when there is none (DMA addresses are physical). */
  readonly unit: HwIommu | null;
  /** Where the function's requests go: `unit`, or the host bus when there is no IOMMU. */
  readonly dmaTarget: DmaTarget;
  readonly pasidWidth: number;
  readonly ats: boolean;
  readonly pri: boolean;
  /** Configuration space (256 bytes: a conventional PCI function), with the hardware's write rules. */
  readonly cfg: PciConfigSpace;
  /** The device model, if the function has one (DMA tests may drive a bare function). */
  readonly model: PciDeviceModel | null;
  /** Errors the model reported (what real hardware would hang or abort on), oldest first. */
  readonly modelErrors: string[] = [];
  /** The INTx level the function drives. */
  intxLevel = false;
  /** The host side of the INTx line and of MSI delivery (the machine's interrupt controller). */
  onIntx: ((dev: PciDevice, level: boolean) => void) | null = null;
  onMsi: ((dev: PciDevice, msi: MsiMessage) => void) | null = null;
  readonly faults: DmaFault[] = [];
  readonly msis: MsiMessage[] = [];
  /** Page requests sent, oldest first (bounded like the logs). */
  readonly pageRequests: PageRequest[] = [];
  readonly #logSize: number;
  #nextPrg = 0;

  constructor(opts: PciDeviceOptions, target: DmaTarget) {
    const a = parseBdf(opts.bdf);
    super(opts.bdf.toLowerCase(), 'pci');
    this.bdf = opts.bdf.toLowerCase();
    this.segment = a.segment;
    this.busNr = a.bus;
    this.devfn = (a.dev << 3) | a.fn;
    this.rid = (a.bus << 8) | this.devfn;
    this.vendor = opts.model?.vendor ?? opts.vendor ?? 0x1b36;
    this.deviceId = opts.model?.device ?? opts.device ?? 0x0005;
    this.classCode = opts.model?.classCode ?? opts.classCode ?? 0x00ff00;
    this.unit = target instanceof HwIommu ? target : null;
    this.dmaTarget = target;
    this.pasidWidth = opts.pasidWidth ?? 20;
    this.ats = opts.ats ?? true;
    this.pri = opts.pri ?? false;
    this.#logSize = opts.logSize ?? 256;
    this.model = opts.model ?? null;
    this.cfg = new PciConfigSpace(this.model ?? { vendor: this.vendor, device: this.deviceId, classCode: this.classCode });
  }

  /** The IOMMU unit, for code that only runs for devices behind one (IOMMU drivers). */
  get iommuUnit(): HwIommu {
    if (!this.unit) throw new Error(`${this.bdf} is not behind an IOMMU`);
    return this.unit;
  }

  /** Configuration space bytes (the hardware's current values). */
  get config(): Uint8Array {
    return this.cfg.bytes;
  }

  /** The platform firmware's placement (BAR addresses, IRQ line), then the model's realize. */
  place(p: PciPlacement): void {
    this.cfg.place(p);
    this.model?.realize(this.#port());
  }

  /** A memory access to BAR `bar` at `offset`: all-ones when memory decoding is off or nothing decodes it. */
  barRead(bar: number, offset: number, size: BarAccessSize): bigint {
    const all = (1n << BigInt(size * 8)) - 1n;
    if (!this.model || !this.cfg.barDecodes(bar, offset, size)) return all;
    return this.model.barRead(bar, offset, size) & all;
  }

  barWrite(bar: number, offset: number, size: BarAccessSize, value: bigint): void {
    if (!this.model || !this.cfg.barDecodes(bar, offset, size)) return;
    this.model.barWrite(bar, offset, size, value & ((1n << BigInt(size * 8)) - 1n));
  }

  /** A configuration write with the hardware's rules; MSI and INTx-disable changes take effect. */
  configWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    const wasDisabled = this.cfg.intxDisabled;
    this.cfg.write(offset, size, value);
    if (wasDisabled && !this.cfg.intxDisabled && this.intxLevel) this.onIntx?.(this, true);
  }

  configRead(offset: number, size: 1 | 2 | 4): number {
    return this.cfg.read(offset, size);
  }

  /** Function-level reset, when the model has it: config back to power-on, model reset. */
  flr(): void {
    this.cfg.reset();
    this.intxLevel = false;
    this.model?.reset?.();
  }

  #port(): PciFunctionPort {
    const busError = (addr: bigint, write: boolean): DmaFault => ({
      unit: this.dmaTarget.name, bdf: this.bdf, rid: this.rid, iova: addr, pasid: null, write, reason: 'bus-error',
      detail: 'bus mastering is disabled in the COMMAND register',
    });
    return {
      bdf: this.bdf,
      dmaRead: (addr, length, pasid) => {
        if (!this.cfg.busMaster) return { ok: false, fault: this.#logged(busError(addr, false)) };
        const r = this.#withPri(() => this.dmaRead(addr, length, pasid));
        return r.ok ? r : { ok: false, fault: r.fault };
      },
      dmaWrite: (addr, bytes, pasid) => {
        if (!this.cfg.busMaster) return { ok: false, fault: this.#logged(busError(addr, true)) };
        const r = this.#withPri(() => this.dmaWrite(addr, bytes, pasid));
        return r.ok ? { ok: true } : { ok: false, fault: r.fault };
      },
      setIrq: (level) => {
        if (!this.cfg.interruptPin) return;
        this.intxLevel = level;
        this.cfg.setInterruptStatus(level);
        if (!this.cfg.intxDisabled) this.onIntx?.(this, level);
      },
      msiEnabled: () => this.cfg.msiEnabled,
      msiNotify: (n) => {
        const m = this.cfg.msiMessage(n);
        if (!m) return;
        const data = new Uint8Array(4);
        new DataView(data.buffer).setUint32(0, m.data, true);
        // An MSI is a posted memory write: it goes through the IOMMU like any DMA (and needs bus mastering).
        if (!this.cfg.busMaster) return;
        this.dmaWrite(m.address, data);
      },
      reportError: (message) => {
        this.modelErrors.push(message);
        if (this.modelErrors.length > this.#logSize) this.modelErrors.shift();
      },
    };
  }

  /** A request, and once more if it faulted and its page request was answered Success (PRI). */
  #withPri<T extends PciDmaReadResult | PciDmaWriteResult>(request: () => T): T {
    const r = request();
    if (!r.ok && 'pageRequest' in r && r.pageRequest.response === IOMMU_PAGE_RESP.SUCCESS) return request();
    return r;
  }

  #logged(f: DmaFault): DmaFault {
    this.#logFault(f);
    return f;
  }

  /** PASIDs the device may use: its capability and its IOMMU's, whichever is smaller (0 before probe). */
  get maxPasids(): number {
    return this.iommu?.maxPasids ?? 0;
  }

  /** Read `length` bytes at `iova` (through the IOMMU); a fault is returned, not thrown. */
  dmaRead(iova: bigint, length: number, pasid?: number): PciDmaReadResult {
    const r = this.dmaTarget.read(this, iova, length, pasid ?? null);
    return r.ok ? r : this.#faulted(r.fault);
  }

  /** Read into `dst` without allocating (device models with their own buffers); `dst` is untouched on a fault. */
  dmaReadInto(iova: bigint, dst: Uint8Array, pasid?: number): PciDmaWriteResult {
    const r = this.dmaTarget.readInto(this, iova, dst, pasid ?? null);
    return r.ok ? r : this.#faulted(r.fault);
  }

  /** Write `bytes` at `iova`; a write to the MSI window is an interrupt (`msi` in the result). */
  dmaWrite(iova: bigint, bytes: Uint8Array, pasid?: number): PciDmaWriteResult {
    const r = this.dmaTarget.write(this, iova, bytes, pasid ?? null);
    if (!r.ok) return this.#faulted(r.fault);
    if (r.msi) {
      this.msis.push(r.msi);
      if (this.msis.length > this.#logSize) this.msis.shift();
      this.onMsi?.(this, r.msi);
    }
    return r;
  }

  #faulted(fault: DmaFault): { ok: false; fault: DmaFault } | { ok: false; fault: DmaFault; pageRequest: PageRequest } {
    this.#logFault(fault);
    const pr = this.#pageRequest(fault);
    return pr ? { ok: false, fault, pageRequest: pr } : { ok: false, fault };
  }

  /** PRI: ask the IOMMU core to make the faulting page present (iommu_report_device_fault). */
  #pageRequest(f: DmaFault): PageRequest | null {
    if (!this.pri || !this.iommu?.iopfEnabled || (f.reason !== 'not-present' && f.reason !== 'permission')) return null;
    const grpid = this.#nextPrg;
    this.#nextPrg = (grpid + 1) % PRG_INDEXES;
    const req: PageRequest = { grpid, iova: f.iova & ~0xfffn, pasid: f.pasid, write: f.write, response: null, refused: null };
    const fault: IopfFault = {
      flags: IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE | (f.pasid !== null ? IOMMU_FAULT_PAGE_REQUEST_PASID_VALID : 0),
      pasid: f.pasid ?? 0,
      grpid,
      perm: f.write ? PERM_WRITE : PERM_READ,
      addr: req.iova,
    };
    this.pageRequests.push(req);
    if (this.pageRequests.length > this.#logSize) this.pageRequests.shift();
    try {
      reportDeviceFault(this, fault, (code) => {
        req.response = code;
      });
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      req.refused = e.reason;
    }
    return req;
  }

  #logFault(f: DmaFault): void {
    this.faults.push(f);
    if (this.faults.length > this.#logSize) this.faults.shift();
  }
}
