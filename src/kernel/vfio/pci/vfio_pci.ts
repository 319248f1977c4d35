/**
 * The vfio-pci driver (vfio_pci.c): binding a PCI function hands it to VFIO. The function must
 * have no other driver; it is registered as a VFIO device whose device set is the function itself
 * (a function on the root bus resets alone, if at all).
 */

import { Errno, fail } from '../../../errno.js';
import type { PciDevice } from '../../../hw/pci.js';
import type { VfioDevice } from '../vfio.js';
import type { VfioModule } from '../vfio_main.js';
import { VfioPciCoreDevice, vfioPciOps } from './vfio_pci_core.js';

export class VfioPciDriver {
  readonly #vfio: VfioModule;
  readonly #cores = new Map<VfioDevice, VfioPciCoreDevice>();

  constructor(vfio: VfioModule) {
    this.#vfio = vfio;
  }

  /** vfio_pci_probe: `driver_override=vfio-pci` + drivers_probe. */
  bind(pdev: PciDevice): VfioDevice {
    if (pdev.driver) fail(Errno.EBUSY, `${pdev.bdf} is already bound to ${pdev.driver}`);
    const core = new VfioPciCoreDevice(this.#vfio, pdev);
    pdev.bindDriver('vfio-pci', true);
    try {
      const vdev = this.#vfio.registerGroupDev(pdev, vfioPciOps(this.#vfio));
      core.vdev = vdev;
      this.#cores.set(vdev, core);
      return vdev;
    } catch (e) {
      pdev.unbindDriver();
      throw e;
    }
  }

  /** vfio_pci_remove (only while nobody has the device open). */
  unbind(vdev: VfioDevice): void {
    this.#vfio.unregisterGroupDev(vdev);
    this.#cores.delete(vdev);
    vdev.dev.unbindDriver();
  }

  core(vdev: VfioDevice): VfioPciCoreDevice {
    const c = this.#cores.get(vdev);
    if (!c) throw new Error(`${vdev.name} is not a vfio-pci device`);
    return c;
  }

  cores(): VfioPciCoreDevice[] {
    return [...this.#cores.values()];
  }
}
