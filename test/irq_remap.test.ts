/**
 * MSI through interrupt remapping (intel/irq_remapping.c's allocation, VT-d's remapping) and
 * without it, as vfio-pci's SET_IRQS sees them: IRTE blocks, remappable messages, vectors
 * reaching their eventfds, and x86's one-vector limit for multi-message MSI without remapping.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  Errno,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_PCI_MSI_IRQ_INDEX,
  vfio_device_bind_iommufd,
  type Machine,
  type Process,
} from '../src/index.js';
import type { HwIommu, VtdOptions } from '../src/hw/iommu.js';
import type { PciDevice } from '../src/hw/pci.js';
import type { BarAccessSize, PciDeviceModel, PciFunctionPort } from '../src/hw/pci_model.js';
import { MSI_CAP_OFFSET } from '../src/hw/pci_config.js';
import { createDefaultMachine } from '../src/kernel/default_machine.js';
import { remappableMsiAddress } from '../src/kernel/irq.js';
import { checkedMachine, fails, ok, snapshot } from './helpers.js';
import { CONFIG, setIrqs, vcall, wr } from './vfio_helpers.js';

const EFD_TRIG = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;

/** A function with a 4-vector, 64-bit MSI capability; writing N to BAR0 sends vector N. */
class MultiMsi implements PciDeviceModel {
  readonly vendor = 0x1b36;
  readonly device = 0x00ee;
  readonly subsystemVendor = 0x1af4;
  readonly subsystemId = 0x1100;
  readonly revision = 1;
  readonly classCode = 0x00ff00;
  readonly bars = [{ size: 4096, type: 'mem32' as const }];
  readonly interruptPin = 1;
  readonly msi = { vectors: 4, addr64: true };
  #port: PciFunctionPort | null = null;
  realize(port: PciFunctionPort): void {
    this.#port = port;
  }
  barRead(): bigint {
    return 0n;
  }
  barWrite(_bar: number, _offset: number, _size: BarAccessSize, value: bigint): void {
    this.#port!.msiNotify(Number(value));
  }
}

interface Rig {
  m: Machine;
  p: Process;
  unit: HwIommu;
  pdev: PciDevice;
  dev: number;
  efds: number[];
}

/** A VT-d machine with the multi-MSI function bound to vfio-pci, its cdev bound, bus mastering on. */
function rig(vtd: Partial<VtdOptions> = {}, hostIrtes = 0): Rig {
  const m = checkedMachine();
  const unit = m.addIommu({ profile: 'vtd', ...vtd });
  // Without remapping MSIs are not isolated: iommufd binds only with its allow_unsafe_interrupts.
  m.iommufd.allowUnsafeInterrupts = !unit.interruptRemapping;
  if (hostIrtes) m.irq.hostInterrupts(unit, Array.from({ length: hostIrtes }, (_, i) => ({ name: `IR-IO-APIC ${i}`, sid: 0xff00 })));
  const pdev = m.addPciDevice({ bdf: '0000:00:05.0', iommu: unit, model: new MultiMsi() });
  m.vfio.pci.bind(pdev);
  const p = m.spawn();
  p.mm.write(p.scratch(1), new Uint8Array(1));
  const ifd = p.openOrThrow('/dev/iommu');
  const dev = p.openOrThrow('/dev/vfio/devices/vfio0');
  ok(vcall(p, dev, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd, { argsz: 16, iommufd: ifd }).r);
  ok(wr(p, dev, CONFIG + 4n, 0x6n, 2));
  const efds = [0, 1, 2, 3].map(() => ok(p.eventfd()));
  return { m, p, unit, pdev, dev, efds };
}

/** An eventfd's count, read (and so reset); 0 when nothing is pending. */
function drain(p: Process, efd: number): bigint {
  const buf = p.mmapOrThrow(4096n);
  const r = p.read(efd, buf, 8);
  const v = r.errno ? 0n : Buffer.from(p.mm.read(buf, 8)).readBigUInt64LE(0);
  p.munmap(buf, 4096n);
  return v;
}

const msiAddress = (pdev: PciDevice): bigint => (BigInt(pdev.configRead(MSI_CAP_OFFSET + 8, 4)) << 32n) | BigInt(pdev.configRead(MSI_CAP_OFFSET + 4, 4));

describe('MSI behind interrupt remapping', () => {
  it('a 3-vector block takes the next naturally aligned run of 4 IRTEs; the function gets a remappable message with data 0', () => {
    const r = rig({}, 1);
    assert.equal(r.m.irq.irtesInUse(r.unit), 1);
    ok(setIrqs(r.p, r.dev, { flags: EFD_TRIG, index: VFIO_PCI_MSI_IRQ_INDEX, count: 3 }, r.efds.slice(0, 3)));
    // IRTE 0 is the host's; 1..3 cannot hold an aligned block of 4, so 4..7.
    assert.equal(r.m.irq.irtesInUse(r.unit), 5);
    assert.equal(msiAddress(r.pdev), remappableMsiAddress(4));
    assert.equal(msiAddress(r.pdev), 0xfee00098n);
    assert.equal(r.pdev.configRead(MSI_CAP_OFFSET + 12, 2), 0);
    // QSIZE: fls(3 * 2 - 1) - 1 = 2, four vectors enabled; MSI enable set.
    assert.equal(r.pdev.configRead(MSI_CAP_OFFSET + 2, 2) & 0x71, 0x21);
    assert.deepEqual([4, 5, 6, 7].map((i) => r.unit.irte(i)?.sid), [r.pdev.rid, r.pdev.rid, r.pdev.rid, undefined]);
  });

  it('each vector the function sends is remapped to its own handler: only its eventfd counts', () => {
    const r = rig();
    ok(setIrqs(r.p, r.dev, { flags: EFD_TRIG, index: VFIO_PCI_MSI_IRQ_INDEX, count: 3 }, r.efds.slice(0, 3)));
    r.pdev.barWrite(0, 0, 4, 2n);
    r.pdev.barWrite(0, 0, 4, 0n);
    r.pdev.barWrite(0, 0, 4, 2n);
    assert.deepEqual(r.efds.slice(0, 3).map((e) => drain(r.p, e)), [1n, 0n, 2n]);
    assert.equal(r.unit.interrupts.at(-1)?.vector, r.unit.irte(2)!.vector);
    assert.equal(r.m.irq.spurious, 0);
    assert.equal(r.unit.faults.length, 0);
  });

  it('a vector beyond the enabled block is not sent; DATA_NONE triggers reach the eventfds without the hardware', () => {
    const r = rig();
    ok(setIrqs(r.p, r.dev, { flags: EFD_TRIG, index: VFIO_PCI_MSI_IRQ_INDEX, count: 2 }, r.efds.slice(0, 2)));
    r.pdev.barWrite(0, 0, 4, 3n);
    assert.equal(r.unit.interrupts.length, 0);
    ok(setIrqs(r.p, r.dev, { flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, index: VFIO_PCI_MSI_IRQ_INDEX, start: 1, count: 1 }));
    assert.deepEqual(r.efds.slice(0, 2).map((e) => drain(r.p, e)), [0n, 1n]);
  });

  it('disabling MSI clears and frees the block\'s IRTEs; the next block reuses the lowest', () => {
    const r = rig();
    ok(setIrqs(r.p, r.dev, { flags: EFD_TRIG, index: VFIO_PCI_MSI_IRQ_INDEX, count: 3 }, r.efds.slice(0, 3)));
    assert.equal(r.m.irq.irtesInUse(r.unit), 4);
    ok(setIrqs(r.p, r.dev, { flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, index: VFIO_PCI_MSI_IRQ_INDEX, count: 0 }));
    assert.equal(r.m.irq.irtesInUse(r.unit), 0);
    assert.deepEqual([0, 1, 2].map((i) => r.unit.irte(i)), [null, null, null]);
    ok(setIrqs(r.p, r.dev, { flags: EFD_TRIG, index: VFIO_PCI_MSI_IRQ_INDEX, count: 1 }, [r.efds[0]!]));
    assert.equal(msiAddress(r.pdev), remappableMsiAddress(0));
    r.pdev.barWrite(0, 0, 4, 0n);
    assert.equal(drain(r.p, r.efds[0]!), 1n);
  });

  it('closing the device frees its IRTEs and vectors', () => {
    const r = rig();
    const vectors = r.m.irq.vectors().length;
    ok(setIrqs(r.p, r.dev, { flags: EFD_TRIG, index: VFIO_PCI_MSI_IRQ_INDEX, count: 2 }, r.efds.slice(0, 2)));
    assert.equal(r.m.irq.vectors().length, vectors + 2);
    ok(r.p.close(r.dev));
    assert.equal(r.m.irq.irtesInUse(r.unit), 0);
    assert.equal(r.m.irq.vectors().length, vectors);
  });
});

describe('MSI without interrupt remapping', () => {
  it('x86 offers one vector for multi-message MSI: SET_IRQS for 3 returns 1 and changes nothing (vfio_msi_enable)', () => {
    const r = rig({ interruptRemapping: false });
    const before = snapshot(r.m);
    const flags = r.pdev.configRead(MSI_CAP_OFFSET + 2, 2);
    const res = setIrqs(r.p, r.dev, { flags: EFD_TRIG, index: VFIO_PCI_MSI_IRQ_INDEX, count: 3 }, r.efds.slice(0, 3));
    assert.deepEqual([res.ret, res.errno], [1, 0]);
    assert.equal(snapshot(r.m), before);
    assert.equal(r.pdev.configRead(MSI_CAP_OFFSET + 2, 2), flags);
    assert.equal(r.m.vfio.pci.cores()[0]!.irqs.irqType, -1);
  });

  it('one vector gets a compatibility-format message (address 0xfee00000, data the vector) delivered by the controller', () => {
    const r = rig({ interruptRemapping: false });
    ok(setIrqs(r.p, r.dev, { flags: EFD_TRIG, index: VFIO_PCI_MSI_IRQ_INDEX, count: 1 }, [r.efds[0]!]));
    assert.equal(msiAddress(r.pdev), 0xfee00000n);
    const data = r.pdev.configRead(MSI_CAP_OFFSET + 12, 2);
    assert.ok(r.m.irq.vectors().some((v) => v.vector === data && v.name === 'vfio-msi[0](0000:00:05.0)'));
    r.pdev.barWrite(0, 0, 4, 0n);
    assert.equal(drain(r.p, r.efds[0]!), 1n);
    assert.equal(r.unit.interrupts.at(-1)?.vector, null);
    assert.equal(r.unit.interrupts.at(-1)?.isolated, false);
  });
});

describe('the default machine (the oracle\'s VT-d guest)', () => {
  it('its own interrupts hold IRTEs 0-21; edu\'s MSI takes IRTE 22 (0xfee002d8, data 0, as the oracle\'s config space shows) and gives it back', () => {
    const m = checkedMachine({}, createDefaultMachine);
    const unit = m.iommu.units()[0]!;
    assert.equal(m.irq.irtesInUse(unit), 22);
    const p = m.spawn();
    p.mm.write(p.scratch(1), new Uint8Array(1));
    const ifd = p.openOrThrow('/dev/iommu');
    const dev = p.openOrThrow('/dev/vfio/devices/vfio0');
    ok(vcall(p, dev, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd, { argsz: 16, iommufd: ifd }).r);
    const efd = ok(p.eventfd());
    ok(setIrqs(p, dev, { flags: EFD_TRIG, index: VFIO_PCI_MSI_IRQ_INDEX, count: 1 }, [efd]));
    const edu = m.iommu.pciDevice('0000:00:03.0')!;
    assert.equal(edu.configRead(MSI_CAP_OFFSET + 4, 4), 0xfee002d8);
    assert.equal(edu.configRead(MSI_CAP_OFFSET + 12, 2), 0);
    assert.equal(unit.irte(22)?.sid, edu.rid);
    // The edu MSI is single-vector: asking for 2 is EINVAL before any allocation (the capability's count).
    ok(setIrqs(p, dev, { flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, index: VFIO_PCI_MSI_IRQ_INDEX, count: 0 }));
    assert.equal(m.irq.irtesInUse(unit), 22);
    fails(setIrqs(p, dev, { flags: EFD_TRIG, index: VFIO_PCI_MSI_IRQ_INDEX, count: 2 }, [efd, efd]), Errno.EINVAL);
    assert.equal(m.irq.irtesInUse(unit), 22);
  });
});
