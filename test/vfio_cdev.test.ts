/**
 * The VFIO device cdev on the default machine (the oracle's -v guest): bind to an iommufd,
 * attach to an IOAS, vfio-pci regions and interrupts of the edu device, and its DMA through the
 * IOMMU. Expectations marked (oracle) were measured on Linux 6.12 (test/oracle/vfio_facts.md).
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  Errno,
  IOMMU_DESTROY,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_RESET,
  VFIO_DEVICE_SET_IRQS,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_PCI_MSI_IRQ_INDEX,
  iommu_destroy,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  vfio_device_detach_iommufd_pt,
  vfio_device_info,
  vfio_irq_info,
  vfio_irq_set,
  vfio_region_info,
  type Process,
} from '../src/index.js';
import { createDefaultMachine } from '../src/kernel/default_machine.js';
import { call as iommufdCall, checkedMachine, fails, ioasAlloc, map, ok, snapshot } from './helpers.js';
import type { FieldMap, StructSchema, StructValue } from '../src/uapi/schema.js';

const CDEV = '/dev/vfio/devices/vfio0';

/** An ioctl with a VFIO struct (argsz-first; no iommufd `size` field to fill in). */
function call<F extends FieldMap>(p: Process, fd: number, cmd: number, schema: StructSchema<F>, v: Partial<StructValue<F>>) {
  const bytes = schema.encode(v);
  const r = p.ioctl(fd, cmd, bytes);
  return { r, out: schema.decode(bytes) };
}
const CONFIG = 7n << 40n;

function machine() {
  const m = checkedMachine({}, createDefaultMachine);
  const p = m.spawn();
  return { m, p };
}

function bind(p: Process, dev: number, iommufd: number, v: Partial<{ argsz: number; flags: number }> = {}) {
  return call(p, dev, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd, { argsz: 16, iommufd, ...v });
}

function attach(p: Process, dev: number, ptId: number, v: Partial<{ argsz: number; flags: number }> = {}) {
  return call(p, dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt, { argsz: 12, pt_id: ptId, ...v });
}

function bound() {
  const { m, p } = machine();
  const ifd = p.openOrThrow('/dev/iommu');
  const dev = p.openOrThrow(CDEV);
  const b = bind(p, dev, ifd);
  ok(b.r);
  const ioas = ioasAlloc(p, ifd);
  return { m, p, ifd, dev, devid: b.out.out_devid, ioas };
}

function cfgRead(p: Process, dev: number, off: number, len: number): Uint8Array {
  const buf = p.mmapOrThrow(4096n);
  assert.equal(ok(p.pread(dev, buf, len, CONFIG + BigInt(off))), len);
  return p.mm.read(buf, len);
}

describe('cdev bind', () => {
  it('every device ioctl before bind is EINVAL (oracle)', () => {
    const { p } = machine();
    const dev = p.openOrThrow(CDEV);
    fails(call(p, dev, VFIO_DEVICE_GET_INFO, vfio_device_info, { argsz: 24 }).r, Errno.EINVAL);
    fails(p.ioctl(dev, VFIO_DEVICE_RESET), Errno.EINVAL);
    fails(attach(p, dev, 1).r, Errno.EINVAL);
  });

  it('binds and returns the iommufd device ID (oracle: 1)', () => {
    const { devid } = bound();
    assert.equal(devid, 1);
  });

  it('refuses bad argsz, flags, negative, closed and non-iommufd fds with nothing changed', () => {
    const { m, p } = machine();
    const ifd = p.openOrThrow('/dev/iommu');
    const dev = p.openOrThrow(CDEV);
    fails(bind(p, dev, ifd, { argsz: 15 }).r, Errno.EINVAL);
    const before = snapshot(m);
    fails(bind(p, dev, ifd, { flags: 1 }).r, Errno.EINVAL);
    fails(bind(p, dev, -1).r, Errno.EINVAL);
    fails(bind(p, dev, 77).r, Errno.EBADF);
    fails(bind(p, dev, dev).r, Errno.EBADFD);
    assert.equal(snapshot(m), before);
    ok(bind(p, dev, ifd).r);
  });

  it('a second bind on the same file and a bind through a second open are EINVAL', () => {
    const { p, ifd, dev } = bound();
    fails(bind(p, dev, ifd).r, Errno.EINVAL);
    const dev2 = p.openOrThrow(CDEV);
    fails(bind(p, dev2, ifd).r, Errno.EINVAL);
  });

  it('the group cannot be opened while a cdev is bound, and opens again after close', () => {
    const { p, dev } = bound();
    fails(p.open('/dev/vfio/3'), Errno.EBUSY);
    ok(p.close(dev));
    ok(p.close(ok(p.open('/dev/vfio/3'))));
  });
});

describe('cdev attach and detach', () => {
  it('attach to an IOAS writes back the auto HWPT; DESTROY of the IOAS is EBUSY until detach', () => {
    const { p, ifd, dev, ioas } = bound();
    const a = attach(p, dev, ioas);
    ok(a.r);
    assert.equal(a.out.pt_id, 3);
    fails(iommufdCall(p, ifd, IOMMU_DESTROY, iommu_destroy, { id: ioas }).r, Errno.EBUSY);
    ok(call(p, dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, vfio_device_detach_iommufd_pt, { argsz: 8 }).r);
    ok(call(p, dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, vfio_device_detach_iommufd_pt, { argsz: 8 }).r);
    ok(iommufdCall(p, ifd, IOMMU_DESTROY, iommu_destroy, { id: ioas }).r);
  });

  it('attach refuses short argsz and flags; pt_id 0 is ENOENT', () => {
    const { p, dev } = bound();
    fails(attach(p, dev, 2, { argsz: 11 }).r, Errno.EINVAL);
    fails(attach(p, dev, 2, { flags: 1 }).r, Errno.EINVAL);
    fails(attach(p, dev, 0).r, Errno.ENOENT);
  });

  it('closing the cdev unbinds: the IOAS can be destroyed', () => {
    const { p, ifd, dev, ioas } = bound();
    ok(attach(p, dev, ioas).r);
    ok(p.close(dev));
    ok(iommufdCall(p, ifd, IOMMU_DESTROY, iommu_destroy, { id: ioas }).r);
  });
});

describe('vfio-pci on edu', () => {
  it('GET_INFO: PCI, 9 regions, 5 irqs (oracle)', () => {
    const { p, dev } = bound();
    const { r, out } = call(p, dev, VFIO_DEVICE_GET_INFO, vfio_device_info, { argsz: 24 });
    ok(r);
    assert.deepEqual([out.flags, out.num_regions, out.num_irqs, out.cap_offset], [2, 9, 5, 0]);
  });

  it('GET_REGION_INFO matches the oracle for every index', () => {
    const { p, dev } = bound();
    const want = [
      [7, 0x100000n],
      [0, 0n],
      [0, 0n],
      [0, 0n],
      [0, 0n],
      [0, 0n],
      [0, 0n],
      [3, 0x100n],
    ] as const;
    want.forEach(([flags, size], index) => {
      const { r, out } = call(p, dev, VFIO_DEVICE_GET_REGION_INFO, vfio_region_info, { argsz: 32, index });
      ok(r);
      assert.deepEqual([out.flags, out.size, out.offset], [flags, size, BigInt(index) << 40n], `region ${index}`);
    });
    fails(call(p, dev, VFIO_DEVICE_GET_REGION_INFO, vfio_region_info, { argsz: 32, index: 8 }).r, Errno.EINVAL);
  });

  it('GET_IRQ_INFO matches the oracle', () => {
    const { p, dev } = bound();
    const want: Record<number, [number, number] | null> = { 0: [7, 1], 1: [9, 1], 2: [9, 0], 3: null, 4: [9, 1], 5: null };
    for (const [i, w] of Object.entries(want)) {
      const { r, out } = call(p, dev, VFIO_DEVICE_GET_IRQ_INFO, vfio_irq_info, { argsz: 16, index: Number(i) });
      if (w) assert.deepEqual([ok(r), out.flags, out.count], [0, ...w], `irq ${i}`);
      else fails(r, Errno.EINVAL);
    }
  });

  it('config space reads as on the oracle', () => {
    const { p, dev } = bound();
    const hex = Buffer.from(cfgRead(p, dev, 0, 0x50)).toString('hex');
    assert.equal(
      hex,
      '3412e81103011000' + '1000ff0000000000' + '0000a0fe00000000' + '0000000000000000' + '0000000000000000' + '00000000f41a0011' + '0000000040000000' + '000000000b010000' + '0500800000000000' + '0000000000000000',
    );
  });

  it('BAR0: identification with a 4-byte read, all ones with an 8-byte read (oracle)', () => {
    const { p, dev } = bound();
    const buf = p.mmapOrThrow(4096n);
    assert.equal(ok(p.pread(dev, buf, 4, 0n)), 4);
    assert.equal(Buffer.from(p.mm.read(buf, 4)).readUInt32LE(0), 0x010000ed);
    assert.equal(ok(p.pread(dev, buf, 32, 0n)), 32);
    assert.equal(Buffer.from(p.mm.read(buf, 32)).toString('hex'), 'ff'.repeat(32));
  });

  it('RESET is EINVAL: edu has no function reset (oracle)', () => {
    const { p, dev } = bound();
    fails(p.ioctl(dev, VFIO_DEVICE_RESET), Errno.EINVAL);
  });

  it('edu DMA through the IOMMU, completion by MSI to an eventfd', () => {
    const { m, p, ifd, dev, ioas } = bound();
    ok(attach(p, dev, ioas).r);
    const buf = p.mmapOrThrow(8192n);
    p.mm.write(buf, Uint8Array.from({ length: 64 }, (_, i) => i + 1));
    ok(map({ p, fd: ifd, ioas }, buf, 8192n, 0x100000n));
    const efd = ok(p.eventfd());
    const set = vfio_irq_set.encode({ argsz: 24, flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, index: VFIO_PCI_MSI_IRQ_INDEX, start: 0, count: 1 });
    const bytes = new Uint8Array(24);
    bytes.set(set.subarray(0, 20));
    new DataView(bytes.buffer).setInt32(20, efd, true);
    ok(p.ioctl(dev, VFIO_DEVICE_SET_IRQS, bytes));
    const w = p.mmapOrThrow(4096n);
    const put = (off: number, v: bigint, size: 2 | 8, base = 0n) => {
      const b = Buffer.alloc(size);
      if (size === 8) b.writeBigUInt64LE(v);
      else b.writeUInt16LE(Number(v));
      p.mm.write(w, b);
      ok(p.pwrite(dev, w, size, base + BigInt(off)));
    };
    put(4, 0x0106n, 2, CONFIG); // COMMAND: memory, bus master, SERR
    put(0x80, 0x100000n, 8);
    put(0x88, 0x40000n, 8);
    put(0x90, 64n, 8);
    put(0x98, 0x5n, 8);
    put(0x80, 0x40000n, 8);
    put(0x88, 0x101000n, 8);
    put(0x90, 64n, 8);
    put(0x98, 0x7n, 8);
    assert.deepEqual([...p.mm.read(buf + 4096n, 64)], Array.from({ length: 64 }, (_, i) => i + 1));
    assert.equal(m.irq.spurious, 0);
    assert.equal(ok(p.read(efd, w, 8)), 8);
    assert.equal(Buffer.from(p.mm.read(w, 8)).readBigUInt64LE(0), 2n);
  });
});
