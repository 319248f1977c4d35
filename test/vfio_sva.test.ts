/**
 * Shared Virtual Addressing through the type1 container (the seed series' VFIO_IOMMU_BIND and
 * VFIO_IOMMU_UNBIND over 6.12's iommu-sva core): a process binds its own address space and the
 * edu device (with its PASID extension, PASID and PRI capabilities) DMAs to and from plain
 * pointers of that process through the PASID; a page never touched is faulted in by an IO page
 * fault the address space serves; unbind stops the DMA; a foreign process needs ptrace rights,
 * and its exit is survived. Invariants are checked after every call.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CAP_SYS_PTRACE,
  Errno,
  type Process,
  type SysResult,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_BIND,
  VFIO_IOMMU_BIND_PID,
  VFIO_IOMMU_BIND_PROCESS,
  VFIO_IOMMU_UNBIND,
  VFIO_SET_IOMMU,
  VFIO_TYPE1v2_IOMMU,
} from '../src/index.js';
import { EDU_BUF_START, EDU_DMA_CMD, EDU_DMA_PASID_ENABLE, EDU_REG, EduDevice } from '../src/hw/edu.js';
import type { HwIommu } from '../src/hw/iommu.js';
import type { PciDevice } from '../src/hw/pci.js';
import type { Machine } from '../src/kernel/machine.js';
import { checkedMachine } from './helpers.js';

const PAGE = 4096n;
const CONFIG = 7n << 40n;

function ok(r: SysResult<number | bigint>): number {
  assert.equal(r.errno, 0, r.reason);
  return Number(r.ret);
}

function refused(r: SysResult<number | bigint>, errno: number): string {
  assert.equal(r.ret, -1);
  assert.equal(r.errno, errno, r.reason);
  return r.reason ?? '';
}

/** An edu function with the SVA extension, PASIDs and PRI, bound to vfio-pci. */
function svaEdu(m: Machine, unit: HwIommu, bdf: string): PciDevice {
  const dev = m.addPciDevice({ bdf, iommu: unit, model: new EduDevice({ pasid: true }), pasidWidth: 20, pri: true });
  m.vfio.pci.bind(dev);
  return dev;
}

/** struct vfio_iommu_type1_bind + vfio_iommu_type1_bind_process. */
function bindArg(o: { argsz?: number; flags?: number; pflags?: number; pasid?: number; pid?: number } = {}): Uint8Array {
  const b = new Uint8Array(20);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, o.argsz ?? 20, true);
  dv.setUint32(4, o.flags ?? VFIO_IOMMU_BIND_PROCESS, true);
  dv.setUint32(8, o.pflags ?? 0, true);
  dv.setUint32(12, o.pasid ?? 0, true);
  dv.setInt32(16, o.pid ?? 0, true);
  return b;
}

const pasidOf = (b: Uint8Array): number => new DataView(b.buffer).getUint32(12, true);

interface Fx {
  m: Machine;
  unit: HwIommu;
  p: Process;
  dev: PciDevice;
  edu: EduDevice;
  c: number;
  g: number;
  d: number;
}

function openDevice(p: Process, g: number, bdf: string): number {
  const name = p.scratch(64);
  p.poke(name, new TextEncoder().encode(`${bdf}\0`));
  return ok(p.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, name));
}

function fixture(): Fx {
  const m = checkedMachine();
  const unit = m.addIommu({ profile: 'vtd', verifyIotlb: true });
  const dev = svaEdu(m, unit, '0000:00:04.0');
  const p = m.spawn({ uid: 1000 });
  const c = p.openOrThrow('/dev/vfio/vfio');
  const g = p.openOrThrow(`/dev/vfio/${dev.group!.id}`);
  const s32 = new Uint8Array(4);
  new DataView(s32.buffer).setInt32(0, c, true);
  ok(p.ioctl(g, VFIO_GROUP_SET_CONTAINER, s32));
  ok(p.ioctl(c, VFIO_SET_IOMMU, BigInt(VFIO_TYPE1v2_IOMMU)));
  const d = openDevice(p, g, dev.bdf);
  // Bus master on, so the function may DMA.
  const cmd = p.scratch(2);
  p.poke(cmd, new Uint8Array([0x06, 0x01]));
  ok(p.pwrite(d, cmd, 2, CONFIG + 4n));
  return { m, unit, p, dev, edu: dev.model as EduDevice, c, g, d };
}

/** A BAR0 register write through the device file. */
function wr(f: Pick<Fx, 'p' | 'd'>, off: number, v: bigint | number, size: 4 | 8 = 8): void {
  const at = f.p.scratch(8);
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
  f.p.poke(at, b.subarray(0, size));
  ok(f.p.pwrite(f.d, at, size, BigInt(off)));
}

/** One edu transfer through PASID `pasid` (0: untagged): RAM `ram` <-> EDU buffer. */
function dma(f: Pick<Fx, 'p' | 'd'>, pasid: number, ram: bigint, length: number, toRam: boolean): void {
  wr(f, EDU_REG.DMA_PASID, pasid ? EDU_DMA_PASID_ENABLE | pasid : 0, 4);
  wr(f, EDU_REG.DMA_SRC, toRam ? EDU_BUF_START : ram);
  wr(f, EDU_REG.DMA_DST, toRam ? ram : EDU_BUF_START);
  wr(f, EDU_REG.DMA_COUNT, length);
  wr(f, EDU_REG.DMA_CMD, EDU_DMA_CMD.RUN | (toRam ? EDU_DMA_CMD.TO_RAM : 0n));
}

describe('VFIO type1 SVA: binding a process address space', () => {
  it('a process binds itself: the device DMAs from and to its pointers through the PASID, an untouched page is faulted in', () => {
    const f = fixture();
    const arg = bindArg();
    ok(f.p.ioctl(f.c, VFIO_IOMMU_BIND, arg));
    const pasid = pasidOf(arg);
    assert.equal(pasid, 1, 'the first global PASID');
    assert.deepEqual(f.m.iommu.sva.allocatedPasids(), [1]);
    assert.equal(f.dev.iommu!.iopfEnabled, true, 'PRI enabled for the bond');

    // "malloc": two pages, the first written by the CPU, the second never touched.
    const src = f.p.mmapOrThrow(2n * PAGE);
    const dst = src + PAGE;
    const data = Uint8Array.from({ length: 256 }, (_, i) => (i * 13 + 7) & 0xff);
    f.p.poke(src + 0x80n, data);
    assert.equal(f.p.mm.walkUser(dst), null, 'the destination page is not present yet');

    dma(f, pasid, src + 0x80n, 256, false);
    assert.deepEqual(f.edu.buffer.subarray(0, 256), data, 'the device read the process memory at its virtual address');
    const before = f.dev.pageRequests.length;
    dma(f, pasid, dst + 0x10n, 256, true);
    assert.deepEqual(f.p.peek(dst + 0x10n, 256), data, 'the device wrote the untouched page');
    assert.equal(f.dev.pageRequests.length, before + 1, 'one page request');
    assert.equal(f.dev.pageRequests.at(-1)!.response, 0, 'answered Success');
    assert.equal(f.dev.pageRequests.at(-1)!.pasid, pasid);
    assert.deepEqual(f.dev.modelErrors, []);

    // Binding the same address space again answers the same PASID.
    const again = bindArg();
    ok(f.p.ioctl(f.c, VFIO_IOMMU_BIND, again));
    assert.equal(pasidOf(again), pasid);
  });

  it('a page outside any mapping, or a write to a read-only one, is answered Invalid and the DMA faults', () => {
    const f = fixture();
    const arg = bindArg();
    ok(f.p.ioctl(f.c, VFIO_IOMMU_BIND, arg));
    const pasid = pasidOf(arg);
    const ro = f.p.mmapOrThrow(PAGE, 1 /* PROT_READ */);
    dma(f, pasid, ro, 64, true);
    assert.equal(f.dev.pageRequests.at(-1)!.response, 1, 'Invalid: the VMA does not allow writes');
    assert.match(f.dev.modelErrors.at(-1)!, /faulted/);
    dma(f, pasid, 0x1000n, 64, false);
    assert.equal(f.dev.pageRequests.at(-1)!.response, 1, 'Invalid: nothing is mapped there');
  });

  it('unbind stops further DMA through the PASID and gives the PASID back once the mm is gone', () => {
    const f = fixture();
    const arg = bindArg();
    ok(f.p.ioctl(f.c, VFIO_IOMMU_BIND, arg));
    const pasid = pasidOf(arg);
    const buf = f.p.mmapOrThrow(PAGE);
    f.p.poke(buf, new Uint8Array(64).fill(0x5a));
    ok(f.p.ioctl(f.c, VFIO_IOMMU_UNBIND, bindArg()));
    assert.equal(f.dev.iommu!.iopfEnabled, false, 'PRI disabled with the last bond');
    const faults = f.dev.faults.length;
    dma(f, pasid, buf, 64, false);
    assert.equal(f.dev.faults.length, faults + 1);
    assert.equal(f.dev.faults.at(-1)!.reason, 'pasid', f.dev.faults.at(-1)!.detail);
    refused(f.p.ioctl(f.c, VFIO_IOMMU_UNBIND, bindArg()), Errno.ESRCH);
    // The PASID stays with the live mm (mm->iommu_mm) and is rebound to the same number.
    const again = bindArg();
    ok(f.p.ioctl(f.c, VFIO_IOMMU_BIND, again));
    assert.equal(pasidOf(again), pasid);
  });

  it('refusals: argsz, flags, unknown process flags, a missing pid, a foreign pid without ptrace rights; nothing changes', () => {
    const f = fixture();
    const other = f.m.spawn({ uid: 1001 });
    const cases: [Uint8Array, number][] = [
      [bindArg({ argsz: 7 }), Errno.EINVAL],
      [bindArg({ flags: 0 }), Errno.EINVAL],
      [bindArg({ flags: 3 }), Errno.EINVAL],
      [bindArg({ argsz: 19 }), Errno.EINVAL],
      [bindArg({ pflags: 2 }), Errno.EINVAL],
      [bindArg({ pflags: VFIO_IOMMU_BIND_PID, pid: 99999 }), Errno.ESRCH],
      [bindArg({ pflags: VFIO_IOMMU_BIND_PID, pid: other.pid }), Errno.EACCES],
    ];
    for (const [arg, errno] of cases) {
      const reason = refused(f.p.ioctl(f.c, VFIO_IOMMU_BIND, arg), errno);
      assert.ok(reason.length > 10, reason);
      assert.deepEqual(f.m.iommu.sva.allocatedPasids(), [], 'no PASID allocated');
      assert.equal(f.dev.iommu!.iopfEnabled, false, 'PRI left alone');
      assert.equal(f.dev.group!.pasidArray.size, 0);
    }
    refused(f.p.ioctl(f.c, VFIO_IOMMU_UNBIND, bindArg({ argsz: 7 })), Errno.EINVAL);
  });

  it('CAP_SYS_PTRACE binds a process of another user', () => {
    const f = fixture();
    const other = f.m.spawn({ uid: 1001 });
    const tracer = f.p.fork();
    tracer.cred = { ...tracer.cred, caps: new Set([...tracer.cred.caps, CAP_SYS_PTRACE]) };
    const arg = bindArg({ pflags: VFIO_IOMMU_BIND_PID, pid: other.pid });
    ok(tracer.ioctl(f.c, VFIO_IOMMU_BIND, arg));
    assert.equal(pasidOf(arg), 1);
  });

  it('a device without the PASID capability cannot be bound (EINVAL) and the container is unchanged', () => {
    const m = checkedMachine();
    const unit = m.addIommu({ profile: 'vtd' });
    const dev = m.addPciDevice({ bdf: '0000:00:05.0', iommu: unit, model: new EduDevice(), pasidWidth: 0 });
    m.vfio.pci.bind(dev);
    const p = m.spawn();
    const c = p.openOrThrow('/dev/vfio/vfio');
    const g = p.openOrThrow(`/dev/vfio/${dev.group!.id}`);
    const s32 = new Uint8Array(4);
    new DataView(s32.buffer).setInt32(0, c, true);
    ok(p.ioctl(g, VFIO_GROUP_SET_CONTAINER, s32));
    ok(p.ioctl(c, VFIO_SET_IOMMU, BigInt(VFIO_TYPE1v2_IOMMU)));
    refused(p.ioctl(c, VFIO_IOMMU_BIND, bindArg()), Errno.EINVAL);
    assert.deepEqual(m.iommu.sva.allocatedPasids(), []);
  });

  it('a bound address space is replayed onto a group that joins later; a join whose replay fails is undone', () => {
    const f = fixture();
    const arg = bindArg();
    ok(f.p.ioctl(f.c, VFIO_IOMMU_BIND, arg));
    const pasid = pasidOf(arg);
    const dev2 = svaEdu(f.m, f.unit, '0000:00:06.0');
    const g2 = f.p.openOrThrow(`/dev/vfio/${dev2.group!.id}`);
    const s32 = new Uint8Array(4);
    new DataView(s32.buffer).setInt32(0, f.c, true);
    ok(f.p.ioctl(g2, VFIO_GROUP_SET_CONTAINER, s32));
    assert.ok(dev2.group!.handle(pasid), 'the new group got the bond');
    const d2 = openDevice(f.p, g2, dev2.bdf);
    const cmd = f.p.scratch(2);
    f.p.poke(cmd, new Uint8Array([0x06, 0x01]));
    ok(f.p.pwrite(d2, cmd, 2, CONFIG + 4n));
    const buf = f.p.mmapOrThrow(PAGE);
    f.p.poke(buf, Uint8Array.of(1, 2, 3, 4));
    dma({ p: f.p, d: d2 }, pasid, buf, 4, false);
    assert.deepEqual((dev2.model as EduDevice).buffer.subarray(0, 4), Uint8Array.of(1, 2, 3, 4));

    // A group whose device cannot take the PASID: the join is refused and leaves nothing behind.
    const plain = f.m.addPciDevice({ bdf: '0000:00:07.0', iommu: f.unit, model: new EduDevice(), pasidWidth: 0 });
    f.m.vfio.pci.bind(plain);
    const g3 = f.p.openOrThrow(`/dev/vfio/${plain.group!.id}`);
    const domainBefore = plain.group!.domain;
    const reason = refused(f.p.ioctl(g3, VFIO_GROUP_SET_CONTAINER, s32), Errno.EINVAL);
    assert.match(reason, /PASID/);
    assert.equal(plain.group!.domain, domainBefore, 'the group translates as before the join');
    assert.equal(plain.group!.pasidArray.size, 0);
    assert.equal(f.m.vfio.type1.states()[0]!.domains.flatMap((d) => d.groups).includes(plain.group!), false, 'not in the container');
  });

  it('a foreign process is bound with its pid, and its exit is survived: DMA on its PASID faults, the bond is removed by PASID', () => {
    const f = fixture();
    const q = f.m.spawn({ uid: 1000 });
    const arg = bindArg({ pflags: VFIO_IOMMU_BIND_PID, pid: q.pid });
    ok(f.p.ioctl(f.c, VFIO_IOMMU_BIND, arg));
    const pasid = pasidOf(arg);
    const qbuf = q.mmapOrThrow(PAGE);
    q.poke(qbuf, Uint8Array.of(9, 8, 7, 6));
    dma(f, pasid, qbuf, 4, false);
    assert.deepEqual(f.edu.buffer.subarray(0, 4), Uint8Array.of(9, 8, 7, 6), 'DMA from the other process');

    q.exit();
    const requests = f.dev.pageRequests.length;
    const faults = f.dev.faults.length;
    dma(f, pasid, qbuf, 4, true);
    assert.equal(f.dev.faults.length, faults + 1);
    assert.equal(f.dev.faults.at(-1)!.reason, 'pasid', 'the PASID entry was torn down at exit');
    assert.equal(f.dev.pageRequests.length, requests, 'no page request for a dead address space');
    assert.deepEqual(f.m.iommu.sva.allocatedPasids(), [pasid], 'the PASID stays allocated while bound');

    refused(f.p.ioctl(f.c, VFIO_IOMMU_UNBIND, bindArg({ pflags: VFIO_IOMMU_BIND_PID, pid: q.pid, pasid: pasid + 1 })), Errno.ESRCH);
    ok(f.p.ioctl(f.c, VFIO_IOMMU_UNBIND, bindArg({ pflags: VFIO_IOMMU_BIND_PID, pid: q.pid, pasid })));
    assert.deepEqual(f.m.iommu.sva.allocatedPasids(), [], 'the PASID is free once the dead mm has no bond');
    assert.equal(f.dev.group!.pasidArray.size, 0);
  });

  it('closing the container removes every bond', () => {
    const f = fixture();
    ok(f.p.ioctl(f.c, VFIO_IOMMU_BIND, bindArg()));
    f.p.closeOrThrow(f.d);
    f.p.closeOrThrow(f.g);
    f.p.closeOrThrow(f.c);
    assert.equal(f.dev.group!.pasidArray.size, 0);
    assert.equal(f.dev.iommu!.iopfEnabled, false);
    f.p.exit();
    assert.deepEqual(f.m.iommu.sva.allocatedPasids(), []);
  });
});
