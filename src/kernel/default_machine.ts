/**
 * The built-in machine: the oracle's `-v` guest (QEMU q35 with an Intel VT-d IOMMU and the edu
 * device bound to vfio-pci). The same PCI functions sit at the same addresses, so IOMMU groups get
 * the same numbers: the edu device is 0000:00:03.0 in group 3, /dev/vfio/3, and its cdev is
 * /dev/vfio/devices/vfio0. The other functions (host bridge, VGA, NIC, the ICH9 LPC/SATA/SMBus
 * trio sharing group 4) have no models; they are bound to their kernel drivers, which keeps their
 * groups out of user hands as on the real guest.
 *
 * `noiommu` gives the same guest without its VT-d unit, booted with
 * vfio.enable_unsafe_noiommu_mode=1 (test/oracle/noiommu.sh runs the real one): no function has an
 * IOMMU group, and vfio-pci puts edu in the noiommu group 0 (/dev/vfio/noiommu-0, no cdev).
 */

import { EduDevice } from '../hw/edu.js';
import { Machine, type MachineOptions } from './machine.js';

export interface DefaultMachineOptions extends MachineOptions {
  /**
   * Add an SVA-capable function (not on the oracle's guest): edu with its PASID-DMA extension, the
   * PASID capability and PRI, at 0000:00:04.0 in a group of its own, bound to vfio-pci.
   */
  sva?: boolean;
  /** No IOMMU at all, and vfio's noiommu mode on (conflicts with `sva`, which needs PASIDs). */
  noiommu?: boolean;
}

export function createDefaultMachine(opts: DefaultMachineOptions = {}): Machine {
  if (opts.noiommu && opts.sva) throw new Error('an SVA function needs an IOMMU; noiommu has none');
  const m = new Machine(opts.noiommu ? { ...opts, vfio: { ...opts.vfio, noiommu: true } } : opts);
  // QEMU 7.2's intel-iommu as the oracle runs it: 39-bit guest addresses, no snoop control.
  const iommu = opts.noiommu ? null : m.addIommu({ profile: 'vtd', addressWidth: 39, snoopControl: false });
  const fn = (bdf: string, vendor: number, device: number, classCode: number, driver: string | null, group?: Parameters<Machine['addPciDevice']>[0]['group']) => {
    const d = m.addPciDevice({ bdf, iommu, vendor, device, classCode, ...(group && iommu ? { group } : {}) });
    if (driver) d.bindDriver(driver, false);
    return d;
  };
  fn('0000:00:00.0', 0x8086, 0x29c0, 0x060000, null);
  fn('0000:00:01.0', 0x1234, 0x1111, 0x030000, 'bochs-drm');
  fn('0000:00:02.0', 0x8086, 0x10d3, 0x020000, 'e1000e');
  // Conventional PCI: no PASID capability, so no SVA (the oracle's VT-d has no PASID support either).
  const edu = m.addPciDevice({ bdf: '0000:00:03.0', iommu, model: new EduDevice(), pasidWidth: 0, ats: false });
  m.vfio.pci.bind(edu);
  const lpc = fn('0000:00:1f.0', 0x8086, 0x2918, 0x060100, 'lpc_ich');
  fn('0000:00:1f.2', 0x8086, 0x2922, 0x010601, 'ahci', lpc);
  fn('0000:00:1f.3', 0x8086, 0x2930, 0x0c0500, 'i801_smbus', lpc);
  if (iommu) {
    // What the guest's own interrupts hold of the remapping table by the time userspace runs
    // (its /proc/interrupts and msi_irqs): the 16 legacy IOAPIC pins, the PCI INTx lines of
    // i801_smbus (GSI 16) and e1000e (GSI 22), ahci's MSI and e1000e's three MSI-X vectors. So the
    // first vfio-pci MSI gets IRTE 22, as it does there (its message reads 0xfee002d8, data 0).
    const ioapic = 0xff00; // QEMU q35's IOAPIC source ID (bus 0xff, devfn 0)
    m.irq.hostInterrupts(iommu, [
      ...Array.from({ length: 16 }, (_, pin) => ({ name: `IR-IO-APIC ${pin}`, sid: ioapic })),
      { name: 'IR-IO-APIC 16-fasteoi i801_smbus', sid: ioapic },
      { name: 'IR-IO-APIC 22-fasteoi 0000:00:02.0', sid: ioapic },
      { name: 'IR-PCI-MSI-0000:00:1f.2 0-edge ahci[0000:00:1f.2]', sid: 0x00fa },
      ...[0, 1, 2].map((v) => ({ name: `IR-PCI-MSIX-0000:00:02.0 ${v}-edge`, sid: 0x0010 })),
    ]);
  }
  if (opts.sva) m.vfio.pci.bind(m.addPciDevice({ bdf: '0000:00:04.0', iommu, model: new EduDevice({ pasid: true }), pasidWidth: 20, pri: true }));
  return m;
}
