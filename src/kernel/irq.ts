/**
 * The host's interrupt controller, as far as device drivers see it: MSI vectors and INTx lines.
 *
 * MSI: a driver asks for a block of vectors for a function (what pci_alloc_irq_vectors +
 * request_irq do together) and gets the message to program into it. Without interrupt remapping
 * that is a compatibility-format message — address 0xfee00000 (destination APIC 0), data = the
 * vector — and a block has one vector, as x86's MSI domain offers multi-message MSI only behind
 * remapping. Behind a VT-d unit with interrupt remapping (intel/irq_remapping.c) the block gets
 * IRTEs: a naturally aligned run of indexes (alloc_irte: the lowest free, the count rounded up to
 * a power of two), each programmed with its vector and the function's requester ID, and the
 * message is remappable-format: the first index as the handle, SHV set, data 0 (the subhandle the
 * function adds its vector number to). A function that sends the message does a posted write
 * through its IOMMU; the unit remaps it (or refuses it) and hands it here, and the vector's
 * handler runs. A message nobody registered is counted as spurious.
 *
 * The host's own interrupts (IOAPIC pins, the MSIs of devices bound to other kernel drivers)
 * hold IRTEs and vectors too: `hostInterrupts` takes them, so the indexes the first vfio-pci
 * vector gets are what they are on the machine being mirrored.
 *
 * INTx: level-triggered lines shared by pin; a driver registers a handler for a function's line
 * and is called whenever the function drives it (high or low) while INTx is not disabled in its
 * COMMAND register. Masking is the driver's business (vfio-pci uses COMMAND.INTX_DISABLE, as
 * pci_check_and_mask_intx does on PCI 2.3 devices).
 */

import { type HwIommu, IRTE_ENTRIES, MSI_ADDR_REMAPPABLE, MSI_ADDR_SHV, type MsiMessage } from '../hw/iommu.js';
import type { PciDevice } from '../hw/pci.js';

/** x86 MSI address (the local APIC window). */
export const MSI_ADDRESS = 0xfee00000n;
/** External interrupt vectors the allocator hands out (FIRST_EXTERNAL_VECTOR..). */
const FIRST_VECTOR = 0x22;
const LAST_VECTOR = 0xeb;

export type MsiHandler = (msi: MsiMessage) => void;
export type IntxHandler = (dev: PciDevice, level: boolean) => void;

/** Vectors granted to one function at once: vector i is sent as `data + i` to `address`. */
export interface MsiBlock {
  readonly address: bigint;
  readonly data: number;
  readonly vectors: readonly number[];
  /** The unit whose IRTEs [irteBase, irteBase + 2^order) the block holds, if remapped. */
  readonly unit: HwIommu | null;
  readonly irteBase: number;
  readonly irteCount: number;
}

/** A remappable-format MSI address for IRTE `index` with SHV set (fill_msi_msg). */
export function remappableMsiAddress(index: number): bigint {
  return MSI_ADDRESS | (BigInt(index & 0x7fff) << 5n) | MSI_ADDR_REMAPPABLE | MSI_ADDR_SHV | (BigInt((index >> 15) & 1) << 2n);
}

export class IrqController {
  readonly #msi = new Map<number, { name: string; handler: MsiHandler | null }>();
  readonly #intx = new Map<PciDevice, { name: string; handler: IntxHandler }>();
  /** Each remapping unit's IRTE allocation bitmap (ir_table->bitmap). */
  readonly #irteUsed = new Map<HwIommu, Uint8Array>();
  /** Messages that matched no vector, and INTx edges with no handler. */
  spurious = 0;

  /**
   * pci_alloc_irq_vectors + request_irq for `count` vectors of `dev`; null when the platform cannot
   * give that many as one block (multi-message MSI without remapping) or is out of vectors or IRTEs.
   */
  requestMsiBlock(dev: PciDevice, count: number, name: (i: number) => string, handler: (i: number) => MsiHandler): MsiBlock | null {
    if (!Number.isInteger(count) || count < 1) throw new Error(`an MSI block of ${count} vectors`);
    const unit = dev.unit?.interruptRemapping ? dev.unit : null;
    if (!unit && count > 1) return null;
    const vectors: number[] = [];
    for (let i = 0; i < count; i++) {
      const v = this.#allocVector(name(i), handler(i));
      if (v === null) {
        for (const w of vectors) this.#msi.delete(w);
        return null;
      }
      vectors.push(v);
    }
    if (!unit) return { address: MSI_ADDRESS, data: vectors[0]!, vectors, unit: null, irteBase: 0, irteCount: 0 };
    const irteCount = 2 ** Math.ceil(Math.log2(count));
    const base = this.#allocIrtes(unit, irteCount);
    if (base === null) {
      for (const w of vectors) this.#msi.delete(w);
      return null;
    }
    vectors.forEach((vector, i) => unit.setIrte(base + i, { vector, sid: dev.rid }));
    return { address: remappableMsiAddress(base), data: 0, vectors, unit, irteBase: base, irteCount };
  }

  /** free_irq + pci_free_irq_vectors: the block's IRTEs cleared and freed, its vectors free. */
  freeMsiBlock(block: MsiBlock): void {
    for (const v of block.vectors) {
      if (!this.#msi.delete(v)) throw new Error(`free of unallocated vector 0x${v.toString(16)}`);
    }
    if (!block.unit) return;
    const used = this.#irteUsed.get(block.unit)!;
    for (let i = 0; i < block.irteCount; i++) {
      if (i < block.vectors.length) block.unit.setIrte(block.irteBase + i, null);
      used[block.irteBase + i] = 0;
    }
  }

  /**
   * Interrupts of the host itself behind `unit` (IOAPIC pins, other drivers' MSIs), in the order
   * it set them up: one vector and one IRTE each, programmed for requester `sid`. They never fire here.
   */
  hostInterrupts(unit: HwIommu, interrupts: readonly { name: string; sid: number }[]): void {
    for (const { name, sid } of interrupts) {
      const vector = this.#allocVector(name, null);
      const index = this.#allocIrtes(unit, 1);
      if (vector === null || index === null) throw new Error(`no vector or IRTE left for ${name}`);
      unit.setIrte(index, { vector, sid });
    }
  }

  /** IRTEs in use on `unit`. */
  irtesInUse(unit: HwIommu): number {
    return this.#irteUsed.get(unit)?.reduce((n, b) => n + b, 0) ?? 0;
  }

  #allocVector(name: string, handler: MsiHandler | null): number | null {
    for (let v = FIRST_VECTOR; v <= LAST_VECTOR; v++) {
      if (this.#msi.has(v)) continue;
      this.#msi.set(v, { name, handler });
      return v;
    }
    return null;
  }

  /** bitmap_find_free_region: the first free run of `count` (a power of two) aligned to `count`. */
  #allocIrtes(unit: HwIommu, count: number): number | null {
    let used = this.#irteUsed.get(unit);
    if (!used) this.#irteUsed.set(unit, (used = new Uint8Array(IRTE_ENTRIES)));
    for (let base = 0; base + count <= IRTE_ENTRIES; base += count) {
      if (used.subarray(base, base + count).some((b) => b)) continue;
      used.fill(1, base, base + count);
      return base;
    }
    return null;
  }

  /** A function's INTx line: the driver's handler is called on every level change. */
  requestIntx(dev: PciDevice, name: string, handler: IntxHandler): void {
    if (this.#intx.has(dev)) throw new Error(`${dev.bdf}: INTx already requested`);
    this.#intx.set(dev, { name, handler });
  }

  freeIntx(dev: PciDevice): void {
    this.#intx.delete(dev);
  }

  /** Wire a PCI function to this controller. */
  connect(dev: PciDevice): void {
    dev.onMsi = (_d, msi) => this.deliverMsi(msi);
    dev.onIntx = (d, level) => {
      const h = this.#intx.get(d);
      if (h) h.handler(d, level);
      else if (level) this.spurious++;
    };
  }

  /** A remapped message carries its vector; a compatibility-format one is decoded (data bits 7:0). */
  deliverMsi(msi: MsiMessage): void {
    const vector = msi.vector ?? (msi.address >> 20n === MSI_ADDRESS >> 20n ? msi.data & 0xff : null);
    const h = vector === null ? undefined : this.#msi.get(vector)?.handler;
    if (h) h(msi);
    else this.spurious++;
  }

  /** Vectors in use, by name (what /proc/interrupts would list). */
  vectors(): { vector: number; name: string }[] {
    return [...this.#msi].map(([vector, h]) => ({ vector, name: h.name }));
  }
}
