/**
 * The device-model API: how to write a PCI device in TypeScript.
 *
 * A model declares its identity, BARs and interrupt capabilities as data (`PciDeviceModel`), and
 * implements register reads and writes on its BARs. It talks to the rest of the machine only
 * through the `PciFunctionPort` it is given when plugged in: DMA (translated by the IOMMU in front
 * of the function, faults returned as data), the INTx line, and MSI vectors (delivered only when
 * the host enabled MSI in the function's capability and programmed an address/data pair).
 *
 * Register accesses arrive with the width the CPU (or vfio-pci's chunking of a pread/pwrite) used:
 * 1, 2, 4 or 8 bytes at `offset` within the BAR. Values are bigints so 8-byte registers are exact.
 * Everything is synchronous: a doorbell write may DMA and raise an interrupt before it returns.
 */

import type { DmaFault } from './iommu.js';

export type BarAccessSize = 1 | 2 | 4 | 8;

export interface PciBarSpec {
  /** Size in bytes, a power of two (at least 16 for memory BARs, 4 for I/O BARs). */
  readonly size: number;
  readonly type: 'mem32' | 'mem64' | 'io';
  readonly prefetchable?: boolean;
}

export interface PciMsiSpec {
  /** Vectors the function asks for (Multiple Message Capable), a power of two up to 32. */
  readonly vectors: number;
  /** 64-bit message address. */
  readonly addr64: boolean;
  /** Per-vector masking. */
  readonly perVectorMask?: boolean;
}

export type PortDmaRead = { ok: true; data: Uint8Array } | { ok: false; fault: DmaFault };
export type PortDmaWrite = { ok: true } | { ok: false; fault: DmaFault };

/** What a model may do to the machine: the function's side of the bus. */
export interface PciFunctionPort {
  /** The function's address, e.g. "0000:00:03.0" (for messages). */
  readonly bdf: string;
  /** Bus master DMA read; refused (a 'bus-error' fault) while bus mastering is off in COMMAND. */
  dmaRead(addr: bigint, length: number, pasid?: number): PortDmaRead;
  /**
   * Bus master DMA write. With `pasid` (a function with the PASID capability) the request carries
   * that PASID; a function with PRI whose request faults asks the IOMMU to make the page present
   * and, when the answer is Success, issues the request once more.
   */
  dmaWrite(addr: bigint, bytes: Uint8Array, pasid?: number): PortDmaWrite;
  /** Drive the INTx pin (level-triggered); ignored while COMMAND.INTX_DISABLE is set. */
  setIrq(level: boolean): void;
  /** MSI enabled in the function's capability by the host. */
  msiEnabled(): boolean;
  /** Send MSI vector `n` (the message the host programmed); dropped when disabled or masked. */
  msiNotify(n: number): void;
  /** Something the guest did that real hardware would choke on (QEMU's hw_error); kept in a log. */
  reportError(message: string): void;
}

export interface PciDeviceModel {
  readonly vendor: number;
  readonly device: number;
  readonly subsystemVendor: number;
  readonly subsystemId: number;
  readonly revision: number;
  /** 24-bit class code. */
  readonly classCode: number;
  /** BAR0..BAR5; a mem64 BAR takes the next slot too (leave it null). */
  readonly bars: readonly (PciBarSpec | null)[];
  /** 0 (none) or 1..4 for INTA..INTD. */
  readonly interruptPin: number;
  readonly msi?: PciMsiSpec;
  /** Function-level reset supported (FLR in a PCIe capability); without it vfio-pci cannot reset. */
  readonly flr?: boolean;
  /** Called once when the function is plugged in, before any access. */
  realize(port: PciFunctionPort): void;
  barRead(bar: number, offset: number, size: BarAccessSize): bigint;
  barWrite(bar: number, offset: number, size: BarAccessSize, value: bigint): void;
  /** Return to power-on state (FLR, or the machine's reset). */
  reset?(): void;
}
