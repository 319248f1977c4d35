/**
 * The host's interrupt controller, as far as device drivers see it: MSI vectors and INTx lines.
 *
 * MSI: a driver asks for a vector (what pci_alloc_irq_vectors + request_irq do together) and gets
 * the message to program into the function — address 0xfee00000, data = the vector. A device that
 * sends the message does a posted write through its IOMMU; the unit recognises the interrupt
 * window and hands the message here, and the vector's handler runs. A message nobody registered is
 * counted as spurious.
 *
 * INTx: level-triggered lines shared by pin; a driver registers a handler for a function's line
 * and is called whenever the function drives it (high or low) while INTx is not disabled in its
 * COMMAND register. Masking is the driver's business (vfio-pci uses COMMAND.INTX_DISABLE, as
 * pci_check_and_mask_intx does on PCI 2.3 devices).
 */

import type { MsiMessage } from '../hw/iommu.js';
import type { PciDevice } from '../hw/pci.js';

/** x86 MSI address (the local APIC window). */
export const MSI_ADDRESS = 0xfee00000n;
/** External interrupt vectors the allocator hands out (FIRST_EXTERNAL_VECTOR..). */
const FIRST_VECTOR = 0x22;
const LAST_VECTOR = 0xeb;

export type MsiHandler = (msi: MsiMessage) => void;
export type IntxHandler = (dev: PciDevice, level: boolean) => void;

export class IrqController {
  readonly #msi = new Map<number, { name: string; handler: MsiHandler }>();
  readonly #intx = new Map<PciDevice, { name: string; handler: IntxHandler }>();
  /** Messages that matched no vector, and INTx edges with no handler. */
  spurious = 0;

  /** Allocate a vector for `name`; returns the message its function must send. */
  requestMsi(name: string, handler: MsiHandler): { address: bigint; data: number } {
    for (let v = FIRST_VECTOR; v <= LAST_VECTOR; v++) {
      if (this.#msi.has(v)) continue;
      this.#msi.set(v, { name, handler });
      return { address: MSI_ADDRESS, data: v };
    }
    throw new Error('out of interrupt vectors');
  }

  freeMsi(data: number): void {
    if (!this.#msi.delete(data)) throw new Error(`free of unallocated vector 0x${data.toString(16)}`);
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

  deliverMsi(msi: MsiMessage): void {
    const h = msi.address >> 20n === MSI_ADDRESS >> 20n ? this.#msi.get(msi.data & 0xff) : undefined;
    if (h) h.handler(msi);
    else this.spurious++;
  }

  /** Vectors in use, by name (what /proc/interrupts would list). */
  vectors(): { vector: number; name: string }[] {
    return [...this.#msi].map(([vector, h]) => ({ vector, name: h.name }));
  }
}
