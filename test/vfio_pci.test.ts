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
  KernelError,
  MAP_PRIVATE,
  MAP_SHARED,
  O_RDONLY,
  PROT_READ,
  PROT_WRITE,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_IOEVENTFD,
  VFIO_DEVICE_IOEVENTFD_32,
  VFIO_DEVICE_PCI_HOT_RESET,
  VFIO_IRQ_SET_ACTION_MASK,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  vfio_device_bind_iommufd,
  vfio_device_feature,
  vfio_device_info,
  vfio_device_ioeventfd,
  vfio_pci_hot_reset,
  vfio_region_info,
} from '../src/index.js';
import type { Machine, Process } from '../src/index.js';
import { doMmap } from '../src/kernel/vfs.js';
import { fails, ok, snapshot } from './helpers.js';
import { attached, BDF, CDEV, CONFIG, cfg, rd, region, setCfg, setIrqs, vcall, vfioMachine, wr } from './vfio_helpers.js';

const phys = (p: Process, off: number, n: 1 | 2 | 4): number => p.machine.iommu.pciDevice(BDF)!.configRead(off, n);
const core = (m: Machine) => m.vfio.pci.cores()[0]!;
/** What interrupt state vfio-pci holds: kind, MSI vectors, INTx mask, signals, the physical COMMAND. */
const irqState = (m: Machine): string => {
  const c = core(m);
  return JSON.stringify([c.irqs.irqType, c.irqs.msiVectors, c.irqs.intxMasked, c.irqs.signals, c.pdev.configRead(4, 2), c.pdev.configRead(0x42, 2)]);
};
const NONE_TRIG = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
const EFD_TRIG = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
/** An eventfd's count, read (and so reset) by the process; 0 when nothing is pending. */
const drain = (p: Process, efd: number): bigint => {
  const buf = p.mmapOrThrow(4096n);
  const r = p.read(efd, buf, 8);
  const v = r.errno ? 0n : Buffer.from(p.mm.read(buf, 8)).readBigUInt64LE(0);
  p.munmap(buf, 4096n);
  return v;
};

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

describe('vfio-pci SET_IRQS validation (vfio_set_irqs_validate_and_prepare, then the handler table)', () => {
  it('argsz, index, count overflow, unknown flags, vectors beyond the index\'s count, DATA types and data room are EINVAL, in that order (oracle)', () => {
    const { m, p, dev } = attached();
    const efd = ok(p.eventfd());
    const before = irqState(m);
    const refused: [string, Parameters<typeof setIrqs>[2], number[] | Uint8Array][] = [
      ['argsz 19', { flags: NONE_TRIG, index: 0, count: 1, argsz: 19 }, []],
      ['index 5', { flags: NONE_TRIG, index: 5, count: 1 }, []],
      ['index 0xffffffff', { flags: NONE_TRIG, index: 0xffffffff, count: 1 }, []],
      ['count >= U32_MAX - start', { flags: NONE_TRIG, index: 0, start: 1, count: 0xfffffffe }, []],
      ['start 0xffffffff', { flags: NONE_TRIG, index: 0, start: 0xffffffff, count: 1 }, []],
      ['unknown flag 1<<6', { flags: NONE_TRIG | (1 << 6), index: 0, count: 1 }, []],
      ['INTx start 1 count 0 (one vector)', { flags: NONE_TRIG, index: 0, start: 1, count: 0 }, []],
      ['INTx count 2', { flags: EFD_TRIG, index: 0, count: 2 }, [efd, efd]],
      ['MSI-X: no vectors', { flags: EFD_TRIG, index: 2, count: 1 }, [efd]],
      ['ERR: not PCI Express', { flags: NONE_TRIG, index: 3, count: 0 }, []],
      ['no DATA type', { flags: VFIO_IRQ_SET_ACTION_TRIGGER, index: 0, count: 1 }, []],
      ['DATA_NONE|DATA_BOOL', { flags: NONE_TRIG | VFIO_IRQ_SET_DATA_BOOL, index: 0, count: 1 }, []],
      ['DATA_BOOL|DATA_EVENTFD', { flags: VFIO_IRQ_SET_DATA_BOOL | EFD_TRIG, index: 0, count: 1 }, [efd]],
      ['EVENTFD with no room for its fd', { flags: EFD_TRIG, index: 0, count: 1, argsz: 20 }, [efd]],
      ['BOOL with no room for its byte', { flags: VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER, index: 0, count: 1, argsz: 20 }, new Uint8Array([1])],
    ];
    for (const [what, h, data] of refused) assert.ok(fails(setIrqs(p, dev, h, data), Errno.EINVAL), what);
    assert.equal(irqState(m), before);
  });

  it('an action with no handler for the index is ENOTTY: no action, TRIGGER|MASK, MSI MASK/UNMASK, REQ MASK (oracle)', () => {
    const { m, p, dev } = attached();
    const before = irqState(m);
    fails(setIrqs(p, dev, { flags: VFIO_IRQ_SET_DATA_NONE, index: 0, count: 1 }), Errno.ENOTTY);
    fails(setIrqs(p, dev, { flags: NONE_TRIG | VFIO_IRQ_SET_ACTION_MASK, index: 0, count: 1 }), Errno.ENOTTY);
    fails(setIrqs(p, dev, { flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, index: 1, count: 1 }), Errno.ENOTTY);
    fails(setIrqs(p, dev, { flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, index: 1, count: 1 }), Errno.ENOTTY);
    fails(setIrqs(p, dev, { flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, index: 4, count: 1 }), Errno.ENOTTY);
    assert.equal(irqState(m), before);
  });

  it('INTx: MASK/UNMASK while off are EINVAL; MASK by eventfd is ENOTTY once on; a non-eventfd is EINVAL, a closed fd EBADF (oracle)', () => {
    const { m, p, dev } = attached();
    const efd = ok(p.eventfd());
    const nul = p.openOrThrow('/dev/null');
    let before = irqState(m);
    fails(setIrqs(p, dev, { flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, index: 0, count: 1 }), Errno.EINVAL);
    fails(setIrqs(p, dev, { flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, index: 0, count: 1 }), Errno.EINVAL);
    fails(setIrqs(p, dev, { flags: EFD_TRIG, index: 0, count: 1 }, [nul]), Errno.EINVAL);
    fails(setIrqs(p, dev, { flags: EFD_TRIG, index: 0, count: 1 }, [1000]), Errno.EBADF);
    fails(setIrqs(p, dev, { flags: NONE_TRIG, index: 0, count: 0 }), Errno.EINVAL);
    assert.equal(irqState(m), before);
    ok(setIrqs(p, dev, { flags: EFD_TRIG, index: 0, count: 1 }, [efd]));
    before = irqState(m);
    fails(setIrqs(p, dev, { flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_MASK, index: 0, count: 1 }, [efd]), Errno.ENOTTY);
    fails(setIrqs(p, dev, { flags: EFD_TRIG, index: 1, count: 1 }, [efd]), Errno.EINVAL);
    assert.equal(irqState(m), before);
  });

  it('INTx unmask by eventfd: each write of it unmasks, a line still high fires again; a second one is EBUSY, -1 removes it', () => {
    const { m, p, dev } = attached();
    const trig = ok(p.eventfd());
    const unmask = ok(p.eventfd());
    const other = ok(p.eventfd());
    ok(setIrqs(p, dev, { flags: EFD_TRIG, index: 0, count: 1 }, [trig]));
    ok(setIrqs(p, dev, { flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK, index: 0, count: 1 }, [unmask]));
    fails(setIrqs(p, dev, { flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK, index: 0, count: 1 }, [other]), Errno.EBUSY);
    const edu = (off: number, v: number) => ok(wr(p, dev, region(0) + BigInt(off), BigInt(v), 4));
    edu(0x60, 1); // raise: INTx fires and vfio-pci masks it
    assert.equal(drain(p, trig), 1n);
    assert.equal(core(m).irqs.intxMasked, true);
    const one = p.mmapOrThrow(4096n);
    p.mm.write(one, new Uint8Array(new BigUint64Array([1n]).buffer));
    ok(p.write(unmask, one, 8)); // the line is still high: unmasked, fires, masked again
    assert.equal(drain(p, trig), 1n);
    assert.equal(drain(p, unmask), 0n, 'the kernel consumed the unmask eventfd');
    edu(0x64, 1);
    ok(p.write(unmask, one, 8));
    assert.equal(core(m).irqs.intxMasked, false);
    ok(setIrqs(p, dev, { flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK, index: 0, count: 1 }, [-1]));
    ok(setIrqs(p, dev, { flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK, index: 0, count: 1 }, [other]));
  });
});

describe('vfio-pci DEVICE_FEATURE', () => {
  const feat = (p: Process, dev: number, flags: number, argsz = 16) => vcall(p, dev, VFIO_DEVICE_FEATURE, vfio_device_feature, { argsz, flags }, 16).r;
  const { PROBE, GET, SET } = { PROBE: VFIO_DEVICE_FEATURE_PROBE, GET: VFIO_DEVICE_FEATURE_GET, SET: VFIO_DEVICE_FEATURE_SET };

  it('argsz below 8, unknown flag bits, GET|SET without PROBE are EINVAL before any feature is looked at (oracle)', () => {
    const { p, dev } = attached();
    fails(feat(p, dev, PROBE | 3, 7), Errno.EINVAL);
    fails(feat(p, dev, 1 << 19), Errno.EINVAL);
    fails(feat(p, dev, GET | SET | 3), Errno.EINVAL);
    fails(feat(p, dev, GET | SET | 0xffff), Errno.EINVAL);
  });

  it('features edu lacks are ENOTTY for every flag combination: VF token, migration, DMA logging, unknown (oracle)', () => {
    const { p, dev } = attached();
    for (const id of [0, 1, 2, 6, 7, 8, 9, 10, 0xffff]) {
      for (const f of [PROBE, PROBE | GET, PROBE | SET, PROBE | GET | SET, GET]) fails(feat(p, dev, f | id), Errno.ENOTTY);
    }
  });

  it('low power: PROBE and PROBE|SET succeed, anything with GET and no GET/SET/PROBE are EINVAL, EXIT when not in low power is 0 (oracle)', () => {
    const { m, p, dev } = attached();
    for (const id of [3, 4, 5]) {
      ok(feat(p, dev, PROBE | id));
      ok(feat(p, dev, PROBE | SET | id));
      fails(feat(p, dev, PROBE | GET | id), Errno.EINVAL);
      fails(feat(p, dev, PROBE | GET | SET | id), Errno.EINVAL);
      fails(feat(p, dev, id), Errno.EINVAL);
    }
    fails(feat(p, dev, GET | 5, 8), Errno.EINVAL);
    ok(feat(p, dev, SET | 5, 8));
    assert.equal(core(m).pmEngaged, false);
  });

  it('LOW_POWER_ENTRY: mappings fault (SIGBUS) until EXIT; entering twice is EINVAL', () => {
    const { m, p, dev } = attached();
    const map = doMmap(p, p.fget(dev), 4096n, PROT_READ, MAP_SHARED, 0n);
    ok(feat(p, dev, SET | 3, 8));
    fails(feat(p, dev, SET | 3, 8), Errno.EINVAL);
    assert.throws(() => map.io.access(0n, 4, false, 0n), /SIGBUS/);
    ok(feat(p, dev, SET | 5, 8));
    assert.equal(map.io.access(0n, 4, false, 0n), 0x010000edn);
    assert.equal(core(m).pmEngaged, false);
    map.file.put();
  });

  it('LOW_POWER_ENTRY_WITH_WAKEUP: the next ioctl signals the eventfd and leaves low power; a negative or non-eventfd fd is refused', () => {
    const { m, p, dev } = attached();
    const efd = ok(p.eventfd());
    const nul = p.openOrThrow('/dev/null');
    const entry = (fd: number) => {
      const bytes = new Uint8Array(16);
      const dv = new DataView(bytes.buffer);
      dv.setUint32(0, 16, true);
      dv.setUint32(4, SET | 4, true);
      dv.setInt32(8, fd, true);
      return p.ioctl(dev, VFIO_DEVICE_FEATURE, bytes);
    };
    fails(entry(-1), Errno.EINVAL);
    fails(entry(nul), Errno.EINVAL);
    fails(entry(1000), Errno.EBADF);
    assert.equal(core(m).pmEngaged, false);
    ok(entry(efd));
    assert.equal(core(m).pmEngaged, true);
    assert.equal(drain(p, efd), 0n);
    ok(vcall(p, dev, VFIO_DEVICE_GET_INFO, vfio_device_info, { argsz: 24 }).r);
    assert.equal(drain(p, efd), 1n);
    assert.equal(core(m).pmEngaged, false);
  });
});

describe('vfio-pci BAR access', () => {
  it('with the user\'s memory decoding off, pread and pwrite of BAR0 are EIO and the device sees nothing; config still works (oracle)', () => {
    const { m, p, dev } = attached();
    setCfg(p, dev, 4, 0, 2);
    fails(rd(p, dev, region(0), 4).r, Errno.EIO);
    fails(rd(p, dev, region(0), 32).r, Errno.EIO);
    fails(wr(p, dev, region(0) + 4n, 0x12345678n, 4), Errno.EIO);
    assert.equal(cfg(p, dev, 0, 4), 0x11e81234);
    setCfg(p, dev, 4, 2, 2);
    assert.equal(rd(p, dev, region(0) + 4n, 4).v, 0n, 'the liveness write never reached edu');
    assert.equal(rd(p, dev, region(0), 4).v, 0x010000edn);
    assert.equal(core(m).pdev.configRead(4, 2) & 2, 2);
  });

  it('BAR reads clip at the BAR\'s end; past it, absent BARs, the ROM, VGA and region 9 are EINVAL (oracle)', () => {
    const { p, dev } = attached();
    assert.equal(ok(rd(p, dev, region(0) + 0xffffcn, 8).r), 4);
    fails(rd(p, dev, region(0) + 0x100000n, 4).r, Errno.EINVAL);
    for (const i of [1, 5, 6, 8, 9]) fails(rd(p, dev, region(i), 4).r, Errno.EINVAL);
    fails(wr(p, dev, region(6), 0n, 4), Errno.EINVAL);
  });

  it('a read-only cdev reads but cannot write: pwrite is EBADF before vfio looks at it (oracle)', () => {
    const { p } = vfioMachine();
    const ifd = p.openOrThrow('/dev/iommu');
    const ro = p.openOrThrow(CDEV, O_RDONLY);
    ok(vcall(p, ro, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd, { argsz: 16, iommufd: ifd }).r);
    assert.equal(ok(rd(p, ro, CONFIG, 4).r), 4);
    fails(wr(p, ro, CONFIG + 0x3cn, 0n, 1), Errno.EBADF);
    fails({ ret: -1, ...mmapErr(p, ro, PROT_READ, MAP_SHARED, 0n) }, Errno.EINVAL);
    fails({ ret: -1, ...mmapErr(p, ro, PROT_READ | PROT_WRITE, MAP_SHARED, 0n) }, Errno.EACCES);
  });
});

/** doMmap's refusal as a syscall result (errno and reason), or errno 0 when it mapped. */
function mmapErr(p: Process, fd: number, prot: number, flags: number, offset: bigint, length = 4096n): { errno: number; reason: string } {
  try {
    doMmap(p, p.fget(fd), length, prot, flags, offset).file.put();
    return { errno: 0, reason: '' };
  } catch (e) {
    if (!(e instanceof KernelError)) throw e;
    return { errno: e.errno, reason: e.reason };
  }
}

describe('vfio-pci mmap', () => {
  const RW = PROT_READ | PROT_WRITE;

  it('only MAP_SHARED page ranges inside a memory BAR map; everything else is EINVAL (oracle)', () => {
    const { m, p, dev } = attached();
    const before = snapshot(m);
    const refused: [string, number, bigint, bigint][] = [
      ['MAP_PRIVATE', MAP_PRIVATE, region(0), 4096n],
      ['8K at +0xff000 (past the end)', MAP_SHARED, region(0) + 0xff000n, 8192n],
      ['2M', MAP_SHARED, region(0), 2n << 20n],
      ['offset 0x800', MAP_SHARED, region(0) + 0x800n, 4096n],
      ['config', MAP_SHARED, CONFIG, 4096n],
      ['BAR1 (absent)', MAP_SHARED, region(1), 4096n],
      ['ROM', MAP_SHARED, region(6), 4096n],
      ['index 9', MAP_SHARED, region(9), 4096n],
    ];
    for (const [what, flags, off, len] of refused) assert.equal(mmapErr(p, dev, PROT_READ, flags, off, len).errno, Errno.EINVAL, what);
    for (const off of [0n, 0x1000n, 0xff000n]) assert.equal(mmapErr(p, dev, PROT_READ, MAP_SHARED, region(0) + off).errno, 0, `4K at +0x${off.toString(16)}`);
    assert.equal(snapshot(m), before);
    const fresh = vfioMachine();
    const unbound = fresh.p.openOrThrow(CDEV);
    assert.equal(mmapErr(fresh.p, unbound, RW, MAP_SHARED, 0n).errno, Errno.EINVAL, 'before bind');
  });

  it('accesses reach edu while memory decoding is on and are SIGBUS while it is off (oracle)', () => {
    const { p, dev } = attached();
    const map = doMmap(p, p.fget(dev), 1n << 20n, RW, MAP_SHARED, region(0));
    assert.equal(map.io.access(0n, 4, false, 0n), 0x010000edn);
    map.io.access(4n, 4, true, 0xa5a5a5a5n);
    assert.equal(rd(p, dev, region(0) + 4n, 4).v, 0x5a5a5a5an);
    setCfg(p, dev, 4, 0, 2);
    assert.throws(() => map.io.access(0n, 4, false, 0n), (e: unknown) => e instanceof KernelError && /SIGBUS/.test(e.reason));
    setCfg(p, dev, 4, 2, 2);
    assert.equal(map.io.access(0n, 4, false, 0n), 0x010000edn);
    map.file.put();
  });

  it('a mapping keeps the device file: closing the fd leaves the device open until the mapping goes', () => {
    const { m, p, dev } = attached();
    const map = doMmap(p, p.fget(dev), 4096n, PROT_READ, MAP_SHARED, 0n);
    ok(p.close(dev));
    const vdev = m.vfio.devices()[0]!;
    assert.equal(vdev.openCount, 1);
    assert.equal(map.io.access(0n, 4, false, 0n), 0x010000edn);
    map.file.put();
    assert.equal(vdev.openCount, 0);
  });
});

describe('vfio-pci IOEVENTFD', () => {
  const ioev = (p: Process, dev: number, v: Partial<{ argsz: number; flags: number; offset: bigint; data: bigint; fd: number }>) =>
    vcall(p, dev, VFIO_DEVICE_IOEVENTFD, vfio_device_ioeventfd, { argsz: 32, flags: VFIO_DEVICE_IOEVENTFD_32, offset: region(0) + 4n, data: 0x11111111n, ...v }).r;
  const kick = (p: Process, efd: number) => {
    const one = p.mmapOrThrow(4096n);
    p.mm.write(one, new Uint8Array(new BigUint64Array([1n]).buffer));
    ok(p.write(efd, one, 8));
    p.munmap(one, 4096n);
  };

  it('refuses argsz, size flags, fd < -1, non-BAR regions, ranges past the BAR and non-eventfds; removing none is ENODEV (oracle)', () => {
    const { m, p, dev } = attached();
    const efd = ok(p.eventfd());
    const nul = p.openOrThrow('/dev/null');
    fails(ioev(p, dev, { argsz: 27, fd: efd }), Errno.EINVAL);
    for (const flags of [3, 0x10, 0]) fails(ioev(p, dev, { flags, fd: efd }), Errno.EINVAL);
    fails(ioev(p, dev, { fd: -2 }), Errno.EINVAL);
    fails(ioev(p, dev, { fd: -1 }), Errno.ENODEV);
    fails(ioev(p, dev, { offset: CONFIG + 4n, fd: efd }), Errno.EINVAL);
    fails(ioev(p, dev, { offset: region(0) + 0x100000n, fd: efd }), Errno.EINVAL);
    fails(ioev(p, dev, { offset: region(1), fd: efd }), Errno.EINVAL);
    fails(ioev(p, dev, { fd: nul }), Errno.EINVAL);
    fails(ioev(p, dev, { fd: 1000 }), Errno.EBADF);
    assert.equal(core(m).ioeventfds.length, 0);
  });

  it('each write of the eventfd writes data to the register (consuming the count); the same triple is EEXIST; -1 removes it once (oracle)', () => {
    const { m, p, dev } = attached();
    const efd = ok(p.eventfd());
    ok(ioev(p, dev, { fd: efd }));
    fails(ioev(p, dev, { fd: efd }), Errno.EEXIST);
    kick(p, efd);
    assert.equal(rd(p, dev, region(0) + 4n, 4).v, 0xeeeeeeeen, 'liveness reads back ~0x11111111');
    assert.equal(drain(p, efd), 0n);
    ok(ioev(p, dev, { fd: -1 }));
    fails(ioev(p, dev, { fd: -1 }), Errno.ENODEV);
    kick(p, efd);
    assert.equal(drain(p, efd), 1n, 'nobody reads the eventfd once the ioeventfd is gone');
    assert.equal(core(m).ioeventfds.length, 0);
  });

  it('with memory decoding off the write is skipped; closing the device drops every ioeventfd and its eventfd reference', () => {
    const { m, p, dev } = attached();
    const efd = ok(p.eventfd());
    ok(ioev(p, dev, { fd: efd }));
    setCfg(p, dev, 4, 0, 2);
    kick(p, efd);
    setCfg(p, dev, 4, 2, 2);
    assert.equal(rd(p, dev, region(0) + 4n, 4).v, 0n);
    const file = p.fget(efd);
    assert.equal(file.refs, 2);
    ok(p.close(dev));
    assert.equal(core(m).ioeventfds.length, 0);
    assert.equal(file.refs, 1);
  });
});
