/**
 * A conventional PCI function's 256-byte configuration space as the hardware implements it: the
 * type-0 header built from a device model's identity and BARs, an MSI capability when the model
 * has one, and per-byte write masks (what software can change) applied on every write. BARs size
 * themselves the standard way (write all-ones, read back the size mask and the type bits).
 *
 * Layout of what a model gets, with QEMU's write masks (pci_init_wmask, msi_init): vendor/device,
 * COMMAND (writable: I/O, memory, bus master, SERR, INTx disable), STATUS (capability list; the
 * INTx status bit follows the pin), revision and class, cache line size (writable), latency timer
 * (read-only 0: a PCI Express-era function), BAR0..BAR5, subsystem IDs, the capability pointer,
 * interrupt line (writable) and pin, and the MSI capability at 0x40 (enable, queue size, address
 * and data writable). Device-specific space (0x40 up) that no capability claims is plain writable
 * storage, as QEMU leaves it.
 */

import type { PciPlacement } from './pci.js';
import type { PciBarSpec, PciMsiSpec } from './pci_model.js';

export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION_ID = 0x08;
export const PCI_CACHE_LINE_SIZE = 0x0c;
export const PCI_LATENCY_TIMER = 0x0d;
export const PCI_BASE_ADDRESS_0 = 0x10;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_ROM_ADDRESS = 0x30;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;
export const PCI_STD_HEADER_SIZEOF = 64;

export const PCI_COMMAND_IO = 0x1;
export const PCI_COMMAND_MEMORY = 0x2;
export const PCI_COMMAND_MASTER = 0x4;
export const PCI_COMMAND_PARITY = 0x40;
export const PCI_COMMAND_SERR = 0x100;
export const PCI_COMMAND_INTX_DISABLE = 0x400;
export const PCI_STATUS_INTERRUPT = 0x08;
export const PCI_STATUS_CAP_LIST = 0x10;

export const PCI_CAP_ID_MSI = 0x05;
export const PCI_MSI_FLAGS = 2;
export const PCI_MSI_FLAGS_ENABLE = 0x1;
export const PCI_MSI_FLAGS_QMASK = 0xe;
export const PCI_MSI_FLAGS_QSIZE = 0x70;
export const PCI_MSI_FLAGS_64BIT = 0x80;
export const PCI_MSI_FLAGS_MASKBIT = 0x100;
export const PCI_MSI_ADDRESS_LO = 4;
export const PCI_MSI_ADDRESS_HI = 8;
export const PCI_MSI_DATA_32 = 8;
export const PCI_MSI_DATA_64 = 12;
export const PCI_MSI_MASK_32 = 12;
export const PCI_MSI_MASK_64 = 16;

/** Where the MSI capability sits when a model has one. */
export const MSI_CAP_OFFSET = 0x40;

/** The identity part of a model; bare functions (DMA tests) give only the IDs. */
export interface ConfigIdentity {
  readonly vendor: number;
  readonly device: number;
  readonly classCode: number;
  readonly subsystemVendor?: number;
  readonly subsystemId?: number;
  readonly revision?: number;
  readonly bars?: readonly (PciBarSpec | null)[];
  readonly interruptPin?: number;
  readonly msi?: PciMsiSpec;
}

/** msi_cap_len: 10 bytes, +4 for 64-bit addresses, +10 for per-vector masking. */
export function msiCapLength(flags: number): number {
  return 10 + (flags & PCI_MSI_FLAGS_64BIT ? 4 : 0) + (flags & PCI_MSI_FLAGS_MASKBIT ? 10 : 0);
}

export class PciConfigSpace {
  readonly bytes = new Uint8Array(256);
  readonly #wmask = new Uint8Array(256);
  readonly #id: ConfigIdentity;
  readonly #dv: DataView;
  #placement: PciPlacement = { bars: [], irqLine: 0 };

  constructor(id: ConfigIdentity) {
    this.#id = id;
    this.#dv = new DataView(this.bytes.buffer);
    this.reset();
  }

  get barSpecs(): readonly (PciBarSpec | null)[] {
    return this.#id.bars ?? [];
  }

  /** Firmware placement: BAR addresses, the IRQ line, decoding on (COMMAND = I/O | memory | SERR). */
  place(p: PciPlacement): void {
    this.#placement = p;
    this.reset();
  }

  /** Power-on state plus the firmware's placement (what an FLR followed by a config restore gives). */
  reset(): void {
    const id = this.#id;
    const dv = this.#dv;
    this.bytes.fill(0);
    this.#wmask.fill(0);
    dv.setUint16(PCI_VENDOR_ID, id.vendor, true);
    dv.setUint16(PCI_DEVICE_ID, id.device, true);
    dv.setUint8(PCI_REVISION_ID, id.revision ?? 0);
    dv.setUint8(0x09, id.classCode & 0xff);
    dv.setUint16(0x0a, id.classCode >> 8, true);
    dv.setUint16(PCI_SUBSYSTEM_VENDOR_ID, id.subsystemVendor ?? 0, true);
    dv.setUint16(PCI_SUBSYSTEM_ID, id.subsystemId ?? 0, true);
    this.#setMask(PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
    this.#setMask(PCI_CACHE_LINE_SIZE, 1, 0xff);
    this.#setMask(PCI_INTERRUPT_LINE, 1, 0xff);
    this.#wmask.fill(0xff, PCI_STD_HEADER_SIZEOF);
    const bars = id.bars ?? [];
    for (let i = 0; i < 6; i++) {
      const b = bars[i];
      if (!b) continue;
      const at = PCI_BASE_ADDRESS_0 + 4 * i;
      const addr = this.#placement.bars[i] ?? 0n;
      const size = BigInt(b.size);
      if (b.type === 'io') {
        dv.setUint32(at, (Number(addr) & ~3) | 1, true);
        this.#setMask(at, 4, ~(b.size - 1) & 0xfffffffc);
        continue;
      }
      const flags = (b.type === 'mem64' ? 0x4 : 0) | (b.prefetchable ? 0x8 : 0);
      const mask = ~(size - 1n) & ((1n << 64n) - 1n);
      dv.setUint32(at, (Number(addr & 0xfffffff0n) | flags) >>> 0, true);
      this.#setMask(at, 4, Number(mask & 0xfffffff0n));
      if (b.type === 'mem64') {
        dv.setUint32(at + 4, Number(addr >> 32n), true);
        this.#setMask(at + 4, 4, Number(mask >> 32n));
        i++;
      }
    }
    const pin = id.interruptPin ?? 0;
    dv.setUint8(PCI_INTERRUPT_PIN, pin);
    dv.setUint8(PCI_INTERRUPT_LINE, pin ? this.#placement.irqLine : 0);
    if (id.msi) {
      const m = id.msi;
      const at = MSI_CAP_OFFSET;
      dv.setUint16(PCI_STATUS, PCI_STATUS_CAP_LIST, true);
      dv.setUint8(PCI_CAPABILITY_LIST, at);
      dv.setUint8(at, PCI_CAP_ID_MSI);
      const flags = (Math.log2(m.vectors) << 1) | (m.addr64 ? PCI_MSI_FLAGS_64BIT : 0) | (m.perVectorMask ? PCI_MSI_FLAGS_MASKBIT : 0);
      dv.setUint16(at + PCI_MSI_FLAGS, flags, true);
      this.#wmask.fill(0, at, at + msiCapLength(flags));
      this.#setMask(at + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
      this.#setMask(at + PCI_MSI_ADDRESS_LO, 4, 0xfffffffc);
      if (m.addr64) this.#setMask(at + PCI_MSI_ADDRESS_HI, 4, 0xffffffff);
      const dataAt = at + (m.addr64 ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32);
      this.#setMask(dataAt, 2, 0xffff);
      if (m.perVectorMask) this.#setMask(at + (m.addr64 ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32), 4, m.vectors === 32 ? 0xffffffff : (1 << m.vectors) - 1);
    }
    if (this.#placement.bars.some((a) => a !== 0n)) dv.setUint16(PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_SERR, true);
  }

  #setMask(at: number, size: number, mask: number): void {
    for (let i = 0; i < size; i++) this.#wmask[at + i] = (mask >>> (8 * i)) & 0xff;
  }

  read(offset: number, size: 1 | 2 | 4): number {
    if (offset < 0 || offset + size > 256) return size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + this.bytes[offset + i]!;
    return v;
  }

  /** A write: only the writable bits of each byte change. */
  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset < 0 || offset + size > 256) return;
    for (let i = 0; i < size; i++) {
      const m = this.#wmask[offset + i]!;
      const b = (value >>> (8 * i)) & 0xff;
      this.bytes[offset + i] = (this.bytes[offset + i]! & ~m) | (b & m);
    }
  }

  get command(): number {
    return this.#dv.getUint16(PCI_COMMAND, true);
  }

  get busMaster(): boolean {
    return (this.command & PCI_COMMAND_MASTER) !== 0;
  }

  get intxDisabled(): boolean {
    return (this.command & PCI_COMMAND_INTX_DISABLE) !== 0;
  }

  get interruptPin(): number {
    return this.bytes[PCI_INTERRUPT_PIN]!;
  }

  /** The INTx status bit (PCI 2.3): the pin's level, whatever INTx disable says. */
  setInterruptStatus(level: boolean): void {
    const s = this.#dv.getUint16(PCI_STATUS, true);
    this.#dv.setUint16(PCI_STATUS, level ? s | PCI_STATUS_INTERRUPT : s & ~PCI_STATUS_INTERRUPT, true);
  }

  get msiFlags(): number {
    return this.#id.msi ? this.#dv.getUint16(MSI_CAP_OFFSET + PCI_MSI_FLAGS, true) : 0;
  }

  get msiEnabled(): boolean {
    return (this.msiFlags & PCI_MSI_FLAGS_ENABLE) !== 0;
  }

  /** The message vector `n` sends, or null when MSI is off, `n` is beyond the enabled count, or masked. */
  msiMessage(n: number): { address: bigint; data: number } | null {
    const f = this.msiFlags;
    if (!(f & PCI_MSI_FLAGS_ENABLE)) return null;
    const enabled = 1 << ((f & PCI_MSI_FLAGS_QSIZE) >> 4);
    if (n < 0 || n >= enabled) return null;
    const at = MSI_CAP_OFFSET;
    const is64 = (f & PCI_MSI_FLAGS_64BIT) !== 0;
    if (f & PCI_MSI_FLAGS_MASKBIT) {
      const mask = this.#dv.getUint32(at + (is64 ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32), true);
      if (mask & (1 << n)) return null;
    }
    const lo = BigInt(this.#dv.getUint32(at + PCI_MSI_ADDRESS_LO, true));
    const hi = is64 ? BigInt(this.#dv.getUint32(at + PCI_MSI_ADDRESS_HI, true)) : 0n;
    const data = this.#dv.getUint16(at + (is64 ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32), true);
    return { address: (hi << 32n) | lo, data: (data & ~(enabled - 1)) | n };
  }

  /** The bus address a BAR decodes at, or null when it is unimplemented or not decoding. */
  barBase(bar: number): bigint | null {
    const b = this.barSpecs[bar];
    if (!b) return null;
    const at = PCI_BASE_ADDRESS_0 + 4 * bar;
    if (b.type === 'io') return this.command & PCI_COMMAND_IO ? BigInt(this.#dv.getUint32(at, true) & ~3) : null;
    if (!(this.command & PCI_COMMAND_MEMORY)) return null;
    const lo = BigInt(this.#dv.getUint32(at, true) & ~0xf);
    return b.type === 'mem64' ? lo | (BigInt(this.#dv.getUint32(at + 4, true)) << 32n) : lo;
  }

  /** Whether an access to [offset, offset+size) of `bar` is decoded by the function. */
  barDecodes(bar: number, offset: number, size: number): boolean {
    const b = this.barSpecs[bar];
    return !!b && this.barBase(bar) !== null && offset >= 0 && offset + size <= b.size;
  }
}
