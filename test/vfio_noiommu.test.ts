/**
 * vfio's noiommu mode and the PCI functions it exists for, in-process. A function with no IOMMU
 * sits on the host bus: its DMA addresses are physical, an aligned 4-byte write into the interrupt
 * window is a compatibility MSI that nothing isolates, anything else there, a PASID-tagged request
 * or an address without memory faults. vfio-pci gives such a function a noiommu group
 * (/dev/vfio/noiommu-N, IOMMU group "vfio-noiommu", no cdev) only while
 * vfio.enable_unsafe_noiommu_mode is set; the group's legacy-container and iommufd paths answer as
 * the real 6.12 guest without VT-d did (test/oracle/vfio_noiommu.expected and .nocap.expected); a
 * driver learns physical addresses from /proc/self/pagemap and edu DMAs and signals MSIs with
 * them; the vfio and vfio_iommu_type1 module parameters parse as kstrtobool and kstrtouint do.
 * Every refusal leaves objects, fds, groups, device nodes, vfio devices and pins as they were.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  Errno,
  IOMMU_VFIO_IOAS,
  IOMMU_VFIO_IOAS_CLEAR,
  IOMMU_VFIO_IOAS_GET,
  IOMMU_VFIO_IOAS_SET,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  O_RDONLY,
  O_WRONLY,
  PROT_READ,
  PROT_WRITE,
  type Process,
  type SpawnOptions,
  type SysResult,
  VFIO_CHECK_EXTENSION,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_RESET,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_NOIOMMU_IOMMU,
  VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_SET_IOMMU,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  _IO,
  errnoName,
  iommu_vfio_ioas,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  vfio_device_detach_iommufd_pt,
  vfio_device_info,
  vfio_group_status,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_info,
} from '../src/index.js';
import { EDU_BUF_START, EDU_DMA_CMD, EDU_ID, EDU_IRQ, EDU_REG, EduDevice } from '../src/hw/edu.js';
import { createDefaultMachine } from '../src/kernel/default_machine.js';
import type { Machine } from '../src/kernel/machine.js';
import { PM_PRESENT } from '../src/kernel/mm/mm.js';
import { CAP_DAC_OVERRIDE, CAP_LAST_CAP, CAP_SYS_RAWIO } from '../src/kernel/process.js';
import { sysfsList, sysfsReadlink, sysfsText } from '../src/kernel/sysfs.js';
import { filePath } from '../src/kernel/vfs.js';
import { call, checkedMachine, fails, ioasAlloc, ok, snapshot, thrownErrno } from './helpers.js';
import { setIrqs, vcall } from './vfio_helpers.js';

const PAGE = 4096n;
const CONFIG = 7n << 40n;
const EDU = '0000:00:03.0';
const GROUP = '/dev/vfio/noiommu-0';
const SYSDEV = `/sys/bus/pci/devices/${EDU}`;
const NOIOMMU_PARAM = '/sys/module/vfio/parameters/enable_unsafe_noiommu_mode';
const TYPE1_PARAMS = '/sys/module/vfio_iommu_type1/parameters';
/** A scratch mapping every fixture process owns, touched at once so snapshots around calls agree. */
const IO_SIZE = 16n * PAGE;
const ALL_CAPS = Array.from({ length: CAP_LAST_CAP + 1 }, (_, i) => i);

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const cstr = (s: string): Uint8Array => enc(`${s}\0`);
const s32 = (v: number): Uint8Array => new Uint8Array(Int32Array.of(v).buffer);
const sorted = (xs: string[]): string[] => [...xs].sort();

interface Fx {
  m: Machine;
  p: Process;
  io: bigint;
}

/** Where every fixture process keeps its I/O buffer (MAP_FIXED, far below where mmap places things). */
const IO = 0x1000000000n;

/** A process with its scratch mappings made and touched. */
function proc(m: Machine, spawn: SpawnOptions = {}): Process {
  const p = m.spawn(spawn);
  p.mm.write(p.scratch(1), new Uint8Array(1));
  p.mm.write(p.mmapOrThrow(IO_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, IO), new Uint8Array(Number(IO_SIZE)));
  return p;
}

/** The oracle guest without VT-d (edu in /dev/vfio/noiommu-0), invariants checked after every call. */
function noiommu(spawn: SpawnOptions = {}): Fx {
  const m = checkedMachine({}, (o) => createDefaultMachine({ ...o, noiommu: true }));
  return { m, p: proc(m, spawn), io: IO };
}

/** Everything a refused call must leave as it was, VFIO's side included. */
function state(m: Machine): string {
  const containers = m.vfio.containers.containers();
  return JSON.stringify({
    base: snapshot(m),
    nodes: m.devices.paths(),
    vfioGroups: m.vfio.groups.all().map((g) => [g.name, g.minor, g.type, g.iommuGroup.id, g.openedFile?.refs ?? 0, g.container ? containers.indexOf(g.container) : -1, g.containerUsers, g.iommufd?.file.refs ?? 0, g.cdevDeviceOpenCnt, g.devices.map((d) => d.name)]),
    vfioDevices: m.vfio.devices().map((v) => [v.name, v.dev.name, v.openCount, v.registrations, v.containerRegistered, v.iommufdDevice?.id ?? 0]),
    containers: containers.map((c) => [c.groups.map((g) => g.name), c.iommuDriver?.name ?? null, c.noiommu, c.refs]),
    iommuGroups: m.iommu.groups().map((g) => [g.id, g.name, g.ownerCnt, g.devices.map((d) => d.name)]),
    ictxs: [...m.iommufd.contexts].map((c) => [c.noIommuMode, c.vfioIoas?.id ?? 0, c.file.refs]),
    fds: [...m.processes()].map((p) => [p.pid, p.openFds()]),
    pci: m.iommu.pciDevices().map((d) => [d.bdf, d.driver, d.group?.id ?? null]),
    hostFaults: m.iommu.hostBus.faults.length,
    noiommu: m.vfio.noiommu,
    type1: m.vfio.type1.params,
  });
}

/** A /dev node's major, minor and mode. */
function node(m: Machine, path: string): number[] {
  const n = m.devices.lookup(path);
  return [n.major, n.minor, n.mode];
}


/** The names in an emulated /dev or /sys directory, without "." and "..", sorted; or the errno. */
function ls(f: Pick<Fx, 'p' | 'io'>, path: string): string[] | string {
  const r = f.p.listdir(path, f.io, Number(IO_SIZE));
  if (r.errno) return errnoName(r.errno);
  const bytes = f.p.mm.read(f.io, Number(r.ret));
  const names: string[] = [];
  for (let i = 0; i < bytes.length; ) {
    const end = bytes.indexOf(0, i + 1);
    names.push(new TextDecoder().decode(bytes.subarray(i + 1, end)));
    i = end + 1;
  }
  return sorted(names.filter((n) => n !== '.' && n !== '..'));
}

/** pread of n (1..8) bytes at off, little-endian. */
function rd(f: Pick<Fx, 'p' | 'io'>, fd: number, off: bigint, n: number): bigint {
  assert.equal(ok(f.p.pread(fd, f.io, n, off)), n);
  return [...f.p.mm.read(f.io, n)].reverse().reduce((a, b) => (a << 8n) | BigInt(b), 0n);
}

/** pwrite of n bytes of v (little-endian) at off. */
function wr(f: Pick<Fx, 'p' | 'io'>, fd: number, off: bigint, v: bigint | number, n: number): void {
  f.p.mm.write(f.io, Uint8Array.from({ length: n }, (_, i) => Number((BigInt(v) >> BigInt(8 * i)) & 0xffn)));
  assert.equal(ok(f.p.pwrite(fd, f.io, n, off)), n);
}

/** Write `text` to an open file through the scratch mapping. */
function put(f: Pick<Fx, 'p' | 'io'>, fd: number, text: string): SysResult {
  const b = enc(text);
  f.p.mm.write(f.io, b);
  return f.p.write(fd, f.io, b.length);
}

/** VFIO_CHECK_EXTENSION for extensions 1..9 (the probe's check_ext): each ret, or the errno name. */
function extensions(p: Process, fd: number): (number | string)[] {
  return Array.from({ length: 9 }, (_, i) => {
    const r = p.ioctl(fd, VFIO_CHECK_EXTENSION, BigInt(i + 1));
    return r.errno ? errnoName(r.errno) : Number(r.ret);
  });
}
/** CHECK_EXTENSION 1..9 on an empty container (oracle: type1, type1v2, nesting, noiommu, unmap-all). */
const EMPTY_EXTENSIONS = [1, 0, 1, 0, 0, 1, 0, 1, 1];
/** ...and once a noiommu group is in it: only VFIO_NOIOMMU_IOMMU (oracle). */
const NOIOMMU_EXTENSIONS = [0, 0, 0, 0, 0, 0, 0, 1, 0];

function groupFlags(p: Process, grp: number): number {
  const { r, out } = vcall(p, grp, VFIO_GROUP_GET_STATUS, vfio_group_status, { argsz: 8, flags: 0xdead });
  ok(r);
  return out.flags;
}

const getDeviceFd = (p: Process, grp: number, name = EDU): SysResult => p.ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, cstr(name));
const setIommu = (p: Process, fd: number, type: number): SysResult => p.ioctl(fd, VFIO_SET_IOMMU, BigInt(type));

/** DEVICE_GET_INFO, the vendor/device dword of config space and the edu ID register (the probe's device_info). */
function deviceInfo(f: Pick<Fx, 'p' | 'io'>, dev: number): { flags: number; regions: number; irqs: number; ids: bigint; bar0: bigint } {
  const { r, out } = vcall(f.p, dev, VFIO_DEVICE_GET_INFO, vfio_device_info, { argsz: vfio_device_info.size });
  ok(r);
  return { flags: out.flags, regions: out.num_regions, irqs: out.num_irqs, ids: rd(f, dev, CONFIG, 4), bar0: rd(f, dev, 0n, 4) };
}
const EDU_INFO = { flags: 0x2, regions: 9, irqs: 5, ids: 0x11e81234n, bar0: BigInt(EDU_ID) };

/** The noiommu group with a legacy container set to VFIO_NOIOMMU_IOMMU, and the edu device file, bus master on. */
function opened(spawn: SpawnOptions = {}) {
  const f = noiommu(spawn);
  const { p } = f;
  const c = ok(p.open('/dev/vfio/vfio'));
  const grp = ok(p.open(GROUP));
  ok(p.ioctl(grp, VFIO_GROUP_SET_CONTAINER, s32(c)));
  ok(setIommu(p, c, VFIO_NOIOMMU_IOMMU));
  const dev = ok(getDeviceFd(p, grp));
  wr(f, dev, CONFIG + 4n, 0x0106, 2);
  const pdev = f.m.iommu.pciDevice(EDU)!;
  return { ...f, c, grp, dev, pdev, edu: pdev.model as EduDevice };
}

/** The physical address of the page at `va`, as a noiommu driver learns it from its pagemap fd. */
function physOf(f: Pick<Fx, 'p' | 'io'>, pagemap: number, va: bigint): bigint {
  const e = rd(f, pagemap, (va / PAGE) * 8n, 8);
  assert.ok(e & PM_PRESENT, `0x${va.toString(16)} is not present`);
  return (e & ((1n << 55n) - 1n)) * PAGE + (va % PAGE);
}

/** One edu transfer between physical address `ram` and the EDU buffer at `bufOff`; `irq` asks for interrupt 0x100. */
function eduDma(f: Pick<Fx, 'p' | 'io'>, dev: number, ram: bigint, bufOff: bigint, length: number, toRam: boolean, irq = false): void {
  wr(f, dev, BigInt(EDU_REG.DMA_SRC), toRam ? EDU_BUF_START + bufOff : ram, 8);
  wr(f, dev, BigInt(EDU_REG.DMA_DST), toRam ? ram : EDU_BUF_START + bufOff, 8);
  wr(f, dev, BigInt(EDU_REG.DMA_COUNT), length, 8);
  wr(f, dev, BigInt(EDU_REG.DMA_CMD), EDU_DMA_CMD.RUN | (toRam ? EDU_DMA_CMD.TO_RAM : 0n) | (irq ? EDU_DMA_CMD.IRQ : 0n), 8);
  assert.equal(rd(f, dev, BigInt(EDU_REG.DMA_CMD), 8) & EDU_DMA_CMD.RUN, 0n, 'the command completed');
}

/** An eventfd's count, read (and so reset) by the process; 0 when nothing is pending. */
function drain(f: Pick<Fx, 'p' | 'io'>, efd: number): bigint {
  const r = f.p.read(efd, f.io, 8);
  return r.errno ? 0n : Buffer.from(f.p.mm.read(f.io, 8)).readBigUInt64LE(0);
}

/** A bare machine with one edu function behind no IOMMU, and a process. */
function hostBus() {
  const m = checkedMachine();
  const dev = m.addPciDevice({ bdf: '0000:00:05.0', iommu: null, model: new EduDevice() });
  const p = proc(m);
  return { m, p, io: IO, dev };
}

/** A page of `p` written with `data` at `off`, and its physical address. */
function physPage(p: Process, data: Uint8Array, off = 0n): { va: bigint; pa: bigint } {
  const va = p.mmapOrThrow(PAGE);
  p.poke(va + off, data);
  return { va, pa: BigInt(p.mm.walkUser(va)!.frame.pfn) * PAGE };
}

describe('PCI functions without an IOMMU (the host bus)', () => {
  it('have no IOMMU group, no iommu or iommu_group link, no IOMMU unit, and DMA to physical addresses both ways', () => {
    const { m, p, dev } = hostBus();
    assert.equal(dev.group, null);
    assert.equal(dev.unit, null);
    assert.equal(dev.dmaTarget, m.iommu.hostBus);
    assert.deepEqual(m.iommu.groups(), []);
    const names = sysfsList(m, '/sys/bus/pci/devices/0000:00:05.0').map((e) => e.name);
    assert.ok(!names.includes('iommu') && !names.includes('iommu_group') && !names.includes('driver'), names.join(' '));
    assert.ok(names.includes('config') && names.includes('vendor'));
    assert.deepEqual(sysfsList(m, '/sys/class/iommu').slice(2), []);

    const data = Uint8Array.from({ length: 64 }, (_, i) => (i * 7 + 3) & 0xff);
    const { va, pa } = physPage(p, data, 0x300n);
    const r = dev.dmaRead(pa + 0x300n, 64);
    assert.ok(r.ok);
    assert.deepEqual(r.data, data, 'the device read the process\'s bytes at their physical address');
    const w = dev.dmaWrite(pa + 0xffcn, Uint8Array.of(0xde, 0xad, 0xbe, 0xef));
    assert.ok(w.ok);
    assert.equal(w.msi, null);
    assert.deepEqual(p.peek(va + 0xffcn, 4), Uint8Array.of(0xde, 0xad, 0xbe, 0xef));
    assert.deepEqual(p.peek(va + 0x300n, 64), data, 'nothing else changed');
    assert.deepEqual(dev.faults, []);
    assert.deepEqual(m.iommu.hostBus.faults, []);
  });

  it('a transfer crosses into the physically next frame, whoever owns it: nothing isolates the device', () => {
    const { m, dev } = hostBus();
    const a = proc(m);
    const b = proc(m);
    const pa = physPage(a, new Uint8Array(16).fill(0xaa), PAGE - 16n);
    const pb = physPage(b, new Uint8Array(16).fill(0xbb));
    assert.equal(pb.pa, pa.pa + PAGE, 'precondition: the two processes\' pages are physically adjacent');
    const r = dev.dmaRead(pa.pa + PAGE - 16n, 32);
    assert.ok(r.ok);
    assert.deepEqual([...r.data], [...new Uint8Array(16).fill(0xaa), ...new Uint8Array(16).fill(0xbb)]);
    assert.ok(dev.dmaWrite(pa.pa + PAGE - 4n, new Uint8Array(8).fill(0x11)).ok);
    assert.deepEqual([...b.peek(pb.va, 8)], [0x11, 0x11, 0x11, 0x11, 0xbb, 0xbb, 0xbb, 0xbb], 'the write landed in the other process');
  });

  it('a PASID-tagged request faults "pasid" and moves nothing, even in the interrupt window', () => {
    const { m, p, dev } = hostBus();
    const { va, pa } = physPage(p, new Uint8Array(8).fill(0x5a));
    const before = snapshot(m);
    const cases = [
      { r: dev.dmaRead(pa, 8, 1), iova: pa, write: false },
      { r: dev.dmaWrite(pa, new Uint8Array(8), 7), iova: pa, write: true },
      { r: dev.dmaWrite(0xfee00000n, new Uint8Array(4), 1), iova: 0xfee00000n, write: true },
    ];
    for (const [i, c] of cases.entries()) {
      assert.equal(c.r.ok, false, `case ${i}`);
      if (c.r.ok) continue;
      assert.equal(c.r.fault.reason, 'pasid', c.r.fault.detail);
      assert.deepEqual([c.r.fault.unit, c.r.fault.iova, c.r.fault.write, c.r.fault.pasid], ['host', c.iova, c.write, [1, 7, 1][i]]);
    }
    assert.deepEqual(dev.faults.map((f) => f.reason), ['pasid', 'pasid', 'pasid']);
    assert.equal(m.iommu.hostBus.faults.length, 3);
    assert.deepEqual(dev.msis, [], 'a tagged write to the window is no interrupt');
    assert.deepEqual(p.peek(va, 8), new Uint8Array(8).fill(0x5a));
    assert.equal(snapshot(m), before);
  });

  it('an address without memory faults "bus-error" at the first missing byte; a read fills nothing, a write writes nothing', () => {
    const { m, dev } = hostBus();
    // Low physical memory is empty (the allocator starts at PFN 0x1000), and nothing lies past the highest frame.
    const top = Math.max(...[...m.phys.frames()].map((f) => f.pfn));
    const last = m.phys.lookup(top)!;
    const lastBytes = last.read(0, 4096);
    const dst = new Uint8Array(16).fill(0xcc);
    const edge = BigInt(top) * PAGE + PAGE - 8n;
    const cases = [
      { r: dev.dmaRead(0n, 8), at: 0n, write: false },
      { r: dev.dmaRead(0xfff000n, 4), at: 0xfff000n, write: false },
      { r: dev.dmaRead(1n << 52n, 4), at: 1n << 52n, write: false },
      { r: dev.dmaReadInto(edge, dst), at: BigInt(top + 1) * PAGE, write: false },
      { r: dev.dmaWrite(edge, new Uint8Array(16).fill(0x77)), at: BigInt(top + 1) * PAGE, write: true },
    ];
    for (const [i, c] of cases.entries()) {
      assert.equal(c.r.ok, false, `case ${i}`);
      if (c.r.ok) continue;
      assert.equal(c.r.fault.reason, 'bus-error', c.r.fault.detail);
      assert.deepEqual([c.r.fault.iova, c.r.fault.write, c.r.fault.pasid], [c.at, c.write, null], `case ${i}`);
    }
    assert.deepEqual(dst, new Uint8Array(16).fill(0xcc), 'readInto left its destination alone');
    assert.deepEqual(last.read(0, 4096), lastBytes, 'the straddling write did not write its first half');
    assert.deepEqual(m.iommu.hostBus.faults.map((f) => f.reason), Array(5).fill('bus-error'));
  });

  it('the interrupt window takes only aligned 4-byte writes, as compatibility MSIs nothing isolates; reads and other writes fault "msi"', () => {
    const { m, dev } = hostBus();
    const msg = Uint8Array.of(0x22, 0, 0, 0);
    const w = dev.dmaWrite(0xfee00000n, msg);
    assert.ok(w.ok);
    assert.deepEqual(w.msi && [w.msi.unit, w.msi.bdf, w.msi.address, w.msi.data, w.msi.isolated], ['host', '0000:00:05.0', 0xfee00000n, 0x22, false]);
    // Anywhere in the window; a message no driver asked for is spurious, not a fault.
    const top = dev.dmaWrite(0xfeeffffcn, Uint8Array.of(0x23, 0, 0, 0));
    assert.deepEqual(top.ok && top.msi && [top.msi.address, top.msi.data], [0xfeeffffcn, 0x23]);
    assert.equal(m.irq.spurious, 2);
    assert.deepEqual(dev.faults, []);

    const cases = [
      dev.dmaRead(0xfee00000n, 4),
      dev.dmaRead(0xfedffffcn, 8),
      dev.dmaReadInto(0xfeeffffen, new Uint8Array(4)),
      dev.dmaWrite(0xfee00000n, new Uint8Array(8)),
      dev.dmaWrite(0xfee00002n, new Uint8Array(4)),
      dev.dmaWrite(0xfee00000n, new Uint8Array(2)),
      dev.dmaWrite(0xfedffffen, new Uint8Array(4)),
    ];
    const at = [0xfee00000n, 0xfedffffcn, 0xfeeffffen, 0xfee00000n, 0xfee00002n, 0xfee00000n, 0xfedffffen];
    for (const [i, r] of cases.entries()) {
      assert.equal(r.ok, false, `case ${i}`);
      if (r.ok) continue;
      assert.equal(r.fault.reason, 'msi', r.fault.detail);
      assert.equal(r.fault.iova, at[i], `case ${i}: the fault names the request's address`);
    }
    assert.equal(m.irq.spurious, 2, 'no refused access was an interrupt');
    assert.equal(dev.msis.length, 2);
    assert.equal(dev.faults.length, cases.length);
  });
});

describe('vfio-pci binding a function without an IOMMU', () => {
  it('with noiommu mode off it is EINVAL and leaves no group, node, driver or vfio device behind; with the mode on it binds', () => {
    const m = checkedMachine();
    const f = { m, p: proc(m), io: IO };
    const pdev = m.addPciDevice({ bdf: '0000:00:05.0', iommu: null, model: new EduDevice() });
    const before = state(m);
    assert.equal(thrownErrno(() => m.vfio.pci.bind(pdev)), Errno.EINVAL);
    assert.equal(state(m), before);
    assert.equal(pdev.driver, null);
    assert.deepEqual(m.vfio.devices(), []);
    assert.deepEqual(ls(f, '/dev/vfio'), ['vfio']);
    assert.deepEqual(sysfsList(m, '/sys/class/vfio').slice(2), []);

    m.vfio.noiommu = true;
    const vdev = m.vfio.pci.bind(pdev);
    assert.deepEqual([vdev.name, vdev.group.name, vdev.group.type, vdev.hasCdev], ['vfio0', 'noiommu-0', 'noiommu', false]);
    assert.deepEqual(ls(f, '/dev/vfio'), ['noiommu-0', 'vfio']);
    assert.equal(ls(f, '/dev/vfio/devices'), 'ENOENT');
  });

  it('toggling enable_unsafe_noiommu_mode in sysfs affects only devices bound afterwards; a noiommu group goes with its last device', () => {
    const f = noiommu();
    const { m, p } = f;
    const pdev = m.addPciDevice({ bdf: '0000:00:05.0', iommu: null, model: new EduDevice() });
    const param = ok(p.open(NOIOMMU_PARAM, O_WRONLY));
    assert.equal(ok(put(f, param, 'N\n')), 2);
    assert.equal(m.vfio.noiommu, false);
    assert.equal(sysfsText(m, NOIOMMU_PARAM), 'N\n');

    const before = state(m);
    assert.equal(thrownErrno(() => m.vfio.pci.bind(pdev)), Errno.EINVAL);
    assert.equal(state(m), before);
    assert.deepEqual(ls(f, '/dev/vfio'), ['noiommu-0', 'vfio'], 'edu\'s group stayed');
    ok(p.close(ok(p.open(GROUP))));

    assert.equal(ok(put(f, param, '1')), 1);
    assert.equal(m.vfio.noiommu, true);
    const vdev = m.vfio.pci.bind(pdev);
    assert.deepEqual([vdev.name, vdev.group.name, vdev.group.minor, vdev.group.iommuGroup.id], ['vfio1', 'noiommu-1', 1, 1]);
    assert.deepEqual(ls(f, '/dev/vfio'), ['noiommu-0', 'noiommu-1', 'vfio']);
    assert.deepEqual(node(m, '/dev/vfio/noiommu-1'), [249, 1, 0o600]);
    assert.equal(ls(f, '/dev/vfio/devices'), 'ENOENT');
    assert.equal(sysfsText(m, '/sys/kernel/iommu_groups/1/name'), 'vfio-noiommu\n');
    assert.equal(sysfsReadlink(m, '/sys/bus/pci/devices/0000:00:05.0/iommu_group'), '../../../kernel/iommu_groups/1');
    assert.deepEqual(ls(f, '/sys/class/vfio'), ['noiommu-0', 'noiommu-1']);
    assert.deepEqual(ls(f, '/sys/class/vfio-dev'), ['vfio0', 'vfio1']);
    assert.equal(sysfsText(m, '/sys/class/vfio/noiommu-1/dev'), '249:1\n');

    // The new device works through its own group.
    const c = ok(p.open('/dev/vfio/vfio'));
    const grp = ok(p.open('/dev/vfio/noiommu-1'));
    ok(p.ioctl(grp, VFIO_GROUP_SET_CONTAINER, s32(c)));
    ok(setIommu(p, c, VFIO_NOIOMMU_IOMMU));
    const dev = ok(getDeviceFd(p, grp, '0000:00:05.0'));
    assert.deepEqual(deviceInfo(f, dev), EDU_INFO);
    for (const fd of [dev, grp, c, param]) ok(p.close(fd));

    m.vfio.pci.unbind(vdev);
    assert.deepEqual(ls(f, '/dev/vfio'), ['noiommu-0', 'vfio']);
    assert.deepEqual(ls(f, '/sys/kernel/iommu_groups'), ['0']);
    assert.deepEqual([pdev.group, pdev.driver], [null, null]);
    assert.equal(m.vfio.pci.bind(pdev).group.name, 'noiommu-1', 'the group ID is free again');
  });

  it('with the parameter off, an existing noiommu group stays usable but the container no longer offers VFIO_NOIOMMU_IOMMU', () => {
    const f = noiommu();
    const { m, p } = f;
    const c = ok(p.open('/dev/vfio/vfio'));
    const grp = ok(p.open(GROUP));
    ok(p.ioctl(grp, VFIO_GROUP_SET_CONTAINER, s32(c)));
    m.vfio.noiommu = false;
    assert.deepEqual(extensions(p, c), [0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const before = state(m);
    fails(setIommu(p, c, VFIO_NOIOMMU_IOMMU), Errno.ENODEV);
    fails(getDeviceFd(p, grp), Errno.EINVAL);
    assert.equal(state(m), before);
    m.vfio.noiommu = true;
    ok(setIommu(p, c, VFIO_NOIOMMU_IOMMU));
    ok(getDeviceFd(p, grp));
  });
});

describe('the noiommu group on the guest without VT-d (oracle vfio_noiommu.expected)', () => {
  it('nodes and sysfs: /dev/vfio/noiommu-0 without a cdev, IOMMU group 0 named vfio-noiommu of type unknown, vfio0 without dev', () => {
    const f = noiommu();
    const { m, p } = f;
    assert.deepEqual(ls(f, '/dev/vfio'), ['noiommu-0', 'vfio']);
    assert.equal(ls(f, '/dev/vfio/devices'), 'ENOENT');
    assert.deepEqual(node(m, GROUP), [249, 0, 0o600]);
    assert.equal(sysfsReadlink(m, `${SYSDEV}/iommu_group`), '../../../kernel/iommu_groups/0');
    assert.equal(thrownErrno(() => sysfsReadlink(m, `${SYSDEV}/iommu`)), Errno.ENOENT);
    assert.deepEqual(ls(f, '/sys/kernel/iommu_groups'), ['0']);
    assert.deepEqual(ls(f, '/sys/kernel/iommu_groups/0'), ['devices', 'name', 'reserved_regions', 'type']);
    assert.deepEqual(ls(f, '/sys/kernel/iommu_groups/0/devices'), [EDU]);
    assert.equal(sysfsText(m, '/sys/kernel/iommu_groups/0/name'), 'vfio-noiommu\n');
    assert.equal(sysfsText(m, '/sys/kernel/iommu_groups/0/type'), 'unknown\n');
    assert.equal(sysfsText(m, '/sys/kernel/iommu_groups/0/reserved_regions'), '');
    assert.deepEqual(ls(f, `${SYSDEV}/vfio-dev`), ['vfio0']);
    assert.deepEqual(ls(f, `${SYSDEV}/vfio-dev/vfio0`), ['device', 'power', 'subsystem', 'uevent']);
    assert.equal(thrownErrno(() => sysfsText(m, `${SYSDEV}/vfio-dev/vfio0/dev`)), Errno.ENOENT);
    assert.equal(sysfsText(m, `${SYSDEV}/vfio-dev/vfio0/uevent`), '');
    assert.deepEqual(ls(f, '/sys/class/vfio'), ['noiommu-0']);
    assert.deepEqual(ls(f, '/sys/class/vfio-dev'), ['vfio0']);
    assert.equal(sysfsText(m, '/sys/class/vfio/noiommu-0/dev'), '249:0\n');
    assert.equal(sysfsReadlink(m, '/sys/class/vfio/noiommu-0'), '../../devices/virtual/vfio/noiommu-0');
    assert.equal(sysfsText(m, NOIOMMU_PARAM), 'Y\n');
    assert.equal(sysfsReadlink(m, `${SYSDEV}/driver`), '../../../bus/pci/drivers/vfio-pci');
    // No function of this guest has an IOMMU: none but edu has a group.
    assert.deepEqual(m.iommu.pciDevices().filter((d) => d.group).map((d) => d.bdf), [EDU]);
    const before = state(m);
    fails(p.open('/dev/vfio/0'), Errno.ENOENT);
    fails(p.open('/dev/vfio/devices/vfio0'), Errno.ENOENT);
    assert.equal(state(m), before);
  });

  it('the group: one opener at a time, viable, and no device before a container (oracle)', () => {
    const f = noiommu();
    const { m, p } = f;
    const grp = ok(p.open(GROUP));
    const before = state(m);
    fails(p.open(GROUP), Errno.EBUSY);
    assert.equal(groupFlags(p, grp), 0x1);
    fails(getDeviceFd(p, grp), Errno.EINVAL);
    fails(p.ioctl(grp, VFIO_GROUP_UNSET_CONTAINER), Errno.EINVAL);
    assert.equal(state(m), before);
  });

  it('the legacy container: extensions narrow to NOIOMMU with the group in, type1 is ENODEV, NOIOMMU is set once, and the backend has no ioctls (oracle)', () => {
    const f = noiommu();
    const { m, p } = f;
    const grp = ok(p.open(GROUP));
    const c = ok(p.open('/dev/vfio/vfio'));
    assert.deepEqual(extensions(p, c), EMPTY_EXTENSIONS);
    let before = state(m);
    fails(setIommu(p, c, VFIO_NOIOMMU_IOMMU), Errno.EINVAL);
    assert.equal(state(m), before);

    ok(p.ioctl(grp, VFIO_GROUP_SET_CONTAINER, s32(c)));
    assert.equal(groupFlags(p, grp), 0x3);
    assert.deepEqual(extensions(p, c), NOIOMMU_EXTENSIONS);
    before = state(m);
    fails(getDeviceFd(p, grp), Errno.EINVAL);
    fails(setIommu(p, c, VFIO_TYPE1v2_IOMMU), Errno.ENODEV);
    fails(setIommu(p, c, VFIO_TYPE1_IOMMU), Errno.ENODEV);
    assert.equal(state(m), before);

    ok(setIommu(p, c, VFIO_NOIOMMU_IOMMU));
    before = state(m);
    fails(setIommu(p, c, VFIO_NOIOMMU_IOMMU), Errno.EINVAL);
    assert.deepEqual(extensions(p, c), NOIOMMU_EXTENSIONS);
    assert.equal(groupFlags(p, grp), 0x3);
    fails(vcall(p, c, VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, { argsz: vfio_iommu_type1_info.size }).r, Errno.ENOTTY);
    fails(vcall(p, c, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, { argsz: 32, flags: 3, vaddr: f.io, iova: 0x100000n, size: PAGE }).r, Errno.ENOTTY);
    fails(p.ioctl(c, _IO(0x3b, 200)), Errno.ENOTTY);
    assert.equal(state(m), before);
    // A second container cannot take the group while the first has it.
    const c2 = ok(p.open('/dev/vfio/vfio'));
    before = state(m);
    fails(p.ioctl(grp, VFIO_GROUP_SET_CONTAINER, s32(c2)), Errno.EINVAL);
    assert.equal(state(m), before);
  });

  it('a device from the group: vfio-pci serves it; BIND is EINVAL, ATTACH and DETACH ENOTTY, RESET EINVAL; UNSET_CONTAINER waits for it (oracle)', () => {
    const f = noiommu();
    const { m, p } = f;
    const c = ok(p.open('/dev/vfio/vfio'));
    const grp = ok(p.open(GROUP));
    ok(p.ioctl(grp, VFIO_GROUP_SET_CONTAINER, s32(c)));
    ok(setIommu(p, c, VFIO_NOIOMMU_IOMMU));
    const dev = ok(getDeviceFd(p, grp));
    assert.equal(filePath(p.fget(dev)), 'anon_inode:[vfio-device]');
    assert.deepEqual(deviceInfo(f, dev), EDU_INFO);
    const vdev = m.vfio.devices()[0]!;
    assert.deepEqual([vdev.openCount, vdev.containerRegistered, vdev.iommufdDevice], [1, true, null]);
    assert.equal(sysfsText(m, `${SYSDEV}/enable`), '1\n');

    const ifd = ok(p.open('/dev/iommu'));
    const ioas = ioasAlloc(p, ifd);
    const before = state(m);
    fails(vcall(p, dev, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd, { argsz: 16, iommufd: ifd }).r, Errno.EINVAL);
    fails(vcall(p, dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt, { argsz: 12, pt_id: ioas }).r, Errno.ENOTTY);
    fails(vcall(p, dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, vfio_device_detach_iommufd_pt, { argsz: 8 }).r, Errno.ENOTTY);
    fails(p.ioctl(dev, VFIO_DEVICE_RESET), Errno.EINVAL);
    fails(p.ioctl(grp, VFIO_GROUP_UNSET_CONTAINER), Errno.EBUSY);
    assert.equal(state(m), before);

    ok(p.close(dev));
    assert.equal(sysfsText(m, `${SYSDEV}/enable`), '0\n');
    ok(p.ioctl(grp, VFIO_GROUP_UNSET_CONTAINER));
    assert.deepEqual(extensions(p, c), EMPTY_EXTENSIONS, 'the container is empty again and forgot its backend');
    fails(vcall(p, c, VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, { argsz: vfio_iommu_type1_info.size }).r, Errno.EINVAL);
    assert.deepEqual(m.vfio.containers.containers().map((x) => [x.groups.length, x.iommuDriver, x.refs]), [[0, null, 1]]);
  });

  it('an iommufd as the container: no-IOMMU compat mode, no compat IOAS, no iommufd device (oracle)', () => {
    const f = noiommu();
    const { m, p } = f;
    const grp = ok(p.open(GROUP));
    const ifd = ok(p.open('/dev/iommu'));
    const ictx = m.iommufd.ctxFromFile(p.fget(ifd));
    ok(p.ioctl(grp, VFIO_GROUP_SET_CONTAINER, s32(ifd)));
    assert.equal(groupFlags(p, grp), 0x3);
    assert.deepEqual([ictx.noIommuMode, ictx.vfioIoas, ictx.objects().length], [true, null, 0]);
    assert.deepEqual(extensions(p, ifd), [0, 0, 0, 'ENODEV', 0, 0, 0, 1, 0]);
    let before = state(m);
    fails(vcall(p, ifd, VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, { argsz: vfio_iommu_type1_info.size }).r, Errno.ENODEV);
    fails(vcall(p, ifd, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, { argsz: 32, flags: 3, vaddr: f.io, iova: 0x100000n, size: PAGE }).r, Errno.ENODEV);
    fails(setIommu(p, ifd, VFIO_TYPE1v2_IOMMU), Errno.EINVAL);
    const get = call(p, ifd, IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_GET });
    fails(get.r, Errno.ENODEV);
    assert.equal(get.out.ioas_id, 0);
    assert.equal(state(m), before);
    ok(setIommu(p, ifd, VFIO_NOIOMMU_IOMMU));

    const dev = ok(getDeviceFd(p, grp));
    assert.deepEqual(deviceInfo(f, dev), EDU_INFO);
    assert.equal(ictx.objects().length, 0, 'a noiommu device is not bound to the iommufd');
    before = state(m);
    fails(vcall(p, dev, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd, { argsz: 16, iommufd: ifd }).r, Errno.EINVAL);
    fails(vcall(p, dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt, { argsz: 12, pt_id: 1 }).r, Errno.ENOTTY);
    assert.equal(state(m), before);
    const ioas = ioasAlloc(p, ifd);
    assert.equal(ioas, 1);
    before = state(m);
    fails(vcall(p, dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt, { argsz: 12, pt_id: ioas }).r, Errno.ENOTTY);
    assert.equal(state(m), before);
    ok(p.close(dev));
    ok(p.ioctl(grp, VFIO_GROUP_UNSET_CONTAINER));
    assert.equal(ictx.file.refs, 1, 'the group gave its reference on the iommufd back');
  });

  it('an iommufd that already has a compat IOAS cannot take the noiommu group: EINVAL, and the group stays without a container (oracle)', () => {
    const f = noiommu();
    const { m, p } = f;
    const grp = ok(p.open(GROUP));
    const ifd = ok(p.open('/dev/iommu'));
    const ioas = ioasAlloc(p, ifd);
    ok(call(p, ifd, IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_SET, ioas_id: ioas }).r);
    const before = state(m);
    fails(p.ioctl(grp, VFIO_GROUP_SET_CONTAINER, s32(ifd)), Errno.EINVAL);
    fails(getDeviceFd(p, grp), Errno.EINVAL);
    fails(p.ioctl(grp, VFIO_GROUP_UNSET_CONTAINER), Errno.EINVAL);
    assert.equal(state(m), before);
    assert.equal(m.iommufd.ctxFromFile(p.fget(ifd)).noIommuMode, false);
    assert.equal(groupFlags(p, grp), 0x1);
  });

  it('a compat IOAS set on the iommufd after it took the group keeps the device closed (EPERM) until it is cleared', () => {
    const f = noiommu();
    const { m, p } = f;
    const grp = ok(p.open(GROUP));
    const ifd = ok(p.open('/dev/iommu'));
    ok(p.ioctl(grp, VFIO_GROUP_SET_CONTAINER, s32(ifd)));
    const ioas = ioasAlloc(p, ifd);
    ok(call(p, ifd, IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_SET, ioas_id: ioas }).r);
    const before = state(m);
    fails(getDeviceFd(p, grp), Errno.EPERM);
    assert.equal(state(m), before);
    ok(call(p, ifd, IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_CLEAR }).r);
    const dev = ok(getDeviceFd(p, grp));
    assert.deepEqual(deviceInfo(f, dev), EDU_INFO);
  });

  it('closing the group with a device open keeps the device working; the group then reopens viable (oracle)', () => {
    const f = noiommu();
    const { m, p } = f;
    const c = ok(p.open('/dev/vfio/vfio'));
    const grp = ok(p.open(GROUP));
    ok(p.ioctl(grp, VFIO_GROUP_SET_CONTAINER, s32(c)));
    ok(setIommu(p, c, VFIO_NOIOMMU_IOMMU));
    const dev = ok(getDeviceFd(p, grp));
    ok(p.close(grp));
    fails(p.open(GROUP), Errno.EBUSY);
    assert.deepEqual(deviceInfo(f, dev), EDU_INFO);
    ok(p.close(dev));
    const again = ok(p.open(GROUP));
    assert.equal(groupFlags(p, again), 0x1);
    assert.deepEqual(m.vfio.containers.containers().map((x) => [x.groups.length, x.iommuDriver, x.refs]), [[0, null, 1]]);
  });
});

describe('noiommu without CAP_SYS_RAWIO', () => {
  const noRawio = { uid: 0, caps: ALL_CAPS.filter((c) => c !== CAP_SYS_RAWIO) };

  it('the group does not open (EPERM); the container still answers CHECK_EXTENSION and refuses SET_IOMMU without groups; iommufd\'s compat GET_INFO is ENODEV (oracle nocap)', () => {
    const f = noiommu(noRawio);
    const { m, p } = f;
    let before = state(m);
    fails(p.open(GROUP), Errno.EPERM);
    assert.equal(state(m), before);
    const c = ok(p.open('/dev/vfio/vfio'));
    assert.equal(ok(p.ioctl(c, VFIO_CHECK_EXTENSION, BigInt(VFIO_NOIOMMU_IOMMU))), 1);
    before = state(m);
    fails(setIommu(p, c, VFIO_NOIOMMU_IOMMU), Errno.EINVAL);
    assert.equal(state(m), before);
    const ifd = ok(p.open('/dev/iommu'));
    before = state(m);
    fails(vcall(p, ifd, VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, { argsz: vfio_iommu_type1_info.size }).r, Errno.ENODEV);
    assert.equal(state(m), before);
  });

  it('a group file handed to a task without CAP_SYS_RAWIO: SET_CONTAINER, SET_IOMMU NOIOMMU and GET_DEVICE_FD are each EPERM, and change nothing', () => {
    const f = noiommu();
    const { m, p } = f;
    const grp = ok(p.open(GROUP));
    const c = ok(p.open('/dev/vfio/vfio'));
    const ifd = ok(p.open('/dev/iommu'));
    const child = p.fork();
    child.cred = { ...child.cred, caps: new Set(noRawio.caps) };
    // The scratch page the ioctl arguments are written to is shared copy-on-write after fork: take it now.
    child.mm.write(child.scratch(1), new Uint8Array(1));
    const cf = { p: child, io: f.io };
    let before = state(m);
    fails(child.ioctl(grp, VFIO_GROUP_SET_CONTAINER, s32(c)), Errno.EPERM);
    assert.equal(state(m), before);

    // The legacy container, attached by the parent: the child may not pick the backend, nor open the device.
    ok(p.ioctl(grp, VFIO_GROUP_SET_CONTAINER, s32(c)));
    before = state(m);
    fails(setIommu(child, c, VFIO_NOIOMMU_IOMMU), Errno.EPERM);
    assert.equal(state(m), before);
    ok(setIommu(p, c, VFIO_NOIOMMU_IOMMU));
    before = state(m);
    fails(getDeviceFd(child, grp), Errno.EPERM);
    assert.equal(state(m), before);
    ok(p.ioctl(grp, VFIO_GROUP_UNSET_CONTAINER));

    // An iommufd container: setting it needs no capability, the first device open does.
    ok(child.ioctl(grp, VFIO_GROUP_SET_CONTAINER, s32(ifd)));
    before = state(m);
    fails(setIommu(child, ifd, VFIO_NOIOMMU_IOMMU), Errno.EPERM);
    fails(getDeviceFd(child, grp), Errno.EPERM);
    assert.equal(state(m), before);
    const dev = ok(getDeviceFd(p, grp));
    // The device is open now; a further open from the child is not a first open.
    const dev2 = ok(getDeviceFd(child, grp));
    assert.deepEqual(deviceInfo(cf, dev2), EDU_INFO);
    assert.equal(m.vfio.devices()[0]!.openCount, 2);
    ok(p.close(dev));
  });
});

describe('noiommu DMA and interrupts through vfio-pci', () => {
  it('edu DMAs both ways at physical addresses learned from /proc/self/pagemap, moving exactly the right bytes of the process', () => {
    const f = opened();
    const { m, p, dev, pdev } = f;
    const pagemap = ok(p.open('/proc/self/pagemap', O_RDONLY));
    const LEN = 2048;
    const src = p.mmapOrThrow(PAGE);
    const dst = p.mmapOrThrow(PAGE);
    const data = Uint8Array.from({ length: LEN }, (_, i) => (i * 5 + 1) & 0xff);
    p.poke(src, new Uint8Array(4096).fill(0xee));
    p.poke(src + 0x100n, data);
    p.poke(dst, new Uint8Array(4096));
    const pa = physOf(f, pagemap, src + 0x100n);
    const pb = physOf(f, pagemap, dst + 0x80n);
    assert.equal(pa, BigInt(p.mm.walkUser(src)!.frame.pfn) * PAGE + 0x100n);
    assert.ok(pa < 1n << 28n && pb < 1n << 28n, 'both within edu\'s 28-bit DMA mask');

    eduDma(f, dev, pa, 0n, LEN, false);
    assert.deepEqual(f.edu.buffer.subarray(0, LEN), data, 'the device read the source');
    eduDma(f, dev, pb, 0n, LEN, true);
    const out = p.peek(dst, 4096);
    assert.deepEqual(out.subarray(0x80, 0x80 + LEN), data, 'the device wrote the destination');
    assert.deepEqual(out.subarray(0, 0x80), new Uint8Array(0x80), 'nothing before it');
    assert.deepEqual(out.subarray(0x80 + LEN), new Uint8Array(4096 - 0x80 - LEN), 'nothing after it');
    assert.deepEqual(p.peek(src, 0x100), new Uint8Array(0x100).fill(0xee), 'the source page is untouched');
    assert.deepEqual([pdev.faults, pdev.modelErrors, m.iommu.hostBus.faults], [[], [], []]);
    assert.deepEqual([...m.phys.frames()].filter((fr) => fr.pins).map((fr) => fr.pfn), [], 'noiommu pins nothing');
  });

  it('a DMA to a physical address without memory is dropped and reported; the command still completes and no process memory changes', () => {
    const f = opened();
    const { m, p, dev, pdev } = f;
    const canary = p.mmapOrThrow(PAGE);
    p.poke(canary, new Uint8Array(4096).fill(0x5a));
    const before = snapshot(m);
    eduDma(f, dev, 0x100000n, 0n, 64, true);
    assert.equal(pdev.faults.length, 1);
    assert.deepEqual([pdev.faults[0]!.reason, pdev.faults[0]!.iova, pdev.faults[0]!.write, pdev.faults[0]!.unit], ['bus-error', 0x100000n, true, 'host']);
    assert.match(pdev.modelErrors.at(-1)!, /faulted/);
    eduDma(f, dev, 0x100000n, 0n, 64, false);
    assert.deepEqual(f.edu.buffer.subarray(0, 64), new Uint8Array(64), 'a faulted read fills the buffer with zeros');
    assert.equal(pdev.faults.length, 2);
    assert.equal(snapshot(m), before, 'no frame was made, freed or pinned');
    assert.deepEqual(p.peek(canary, 4096), new Uint8Array(4096).fill(0x5a));
  });

  it('the device\'s MSI reaches the eventfd given to SET_IRQS: compatibility format, not isolated (examples/edu_noiommu)', () => {
    const f = opened();
    const { m, p, dev, pdev } = f;
    const efd = ok(p.eventfd());
    ok(setIrqs(p, dev, { flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, index: VFIO_PCI_MSI_IRQ_INDEX, count: 1 }, [efd]));
    const pagemap = ok(p.open('/proc/self/pagemap', O_RDONLY));
    const buf = p.mmapOrThrow(PAGE);
    p.poke(buf, new Uint8Array(64).fill(0x42));
    eduDma(f, dev, physOf(f, pagemap, buf), 0n, 64, false, true);
    assert.equal(drain(f, efd), 1n, 'one MSI for the DMA completion');
    assert.equal(rd(f, dev, BigInt(EDU_REG.IRQ_STATUS), 4), BigInt(EDU_IRQ.DMA));
    const msi = pdev.msis.at(-1)!;
    assert.deepEqual([msi.unit, msi.address >> 20n, msi.isolated], ['host', 0xfeen, false]);
    assert.equal(m.irq.spurious, 0);
    wr(f, dev, BigInt(EDU_REG.IRQ_ACK), EDU_IRQ.DMA, 4);
    assert.equal(drain(f, efd), 0n, 'acknowledging sends nothing');
    wr(f, dev, BigInt(EDU_REG.IRQ_RAISE), 0x8, 4);
    assert.equal(drain(f, efd), 1n);
    assert.deepEqual(pdev.faults, []);
  });
});

describe('module parameters in /sys/module', () => {
  it('read by anyone: the noiommu mode, and type1\'s allow_unsafe_interrupts, disable_hugepages and dma_entry_limit defaults', () => {
    const f = noiommu({ uid: 1000 });
    const { m, p } = f;
    assert.deepEqual(ls(f, '/sys/module/vfio/parameters'), ['enable_unsafe_noiommu_mode']);
    assert.deepEqual(ls(f, TYPE1_PARAMS), ['allow_unsafe_interrupts', 'disable_hugepages', 'dma_entry_limit']);
    const read = (path: string): string => {
      const fd = ok(p.open(path, O_RDONLY));
      const n = ok(p.read(fd, f.io, 64));
      ok(p.close(fd));
      return new TextDecoder().decode(p.mm.read(f.io, n));
    };
    assert.deepEqual(
      [NOIOMMU_PARAM, `${TYPE1_PARAMS}/allow_unsafe_interrupts`, `${TYPE1_PARAMS}/disable_hugepages`, `${TYPE1_PARAMS}/dma_entry_limit`].map(read),
      ['Y\n', 'N\n', 'N\n', '65535\n'],
    );
    assert.equal(sysfsText(checkedMachine(), NOIOMMU_PARAM), 'N\n', 'off unless the machine turns it on');
    assert.equal(m.vfio.noiommu, true);
  });

  it('booleans parse like kstrtobool\'s y/Y/1/on, n/N/0/off (first characters decide); anything else is EINVAL and changes nothing', () => {
    const f = noiommu();
    const { m, p } = f;
    const fd = ok(p.open(`${TYPE1_PARAMS}/allow_unsafe_interrupts`, O_WRONLY));
    const t1 = m.vfio.type1.params;
    const cases: [string, boolean][] = [
      ['Y', true], ['n', false], ['y\n', true], ['N\n', false], ['1', true], ['0', false],
      ['on', true], ['OFF\n', false], ['On', true], ['oFf', false], ['yes', true], ['no', false], ['10', true], ['nonsense', false],
    ];
    for (const [text, want] of cases) {
      t1.allowUnsafeInterrupts = !want;
      assert.equal(ok(put(f, fd, text)), text.length, JSON.stringify(text));
      assert.equal(t1.allowUnsafeInterrupts, want, JSON.stringify(text));
      assert.equal(sysfsText(m, `${TYPE1_PARAMS}/allow_unsafe_interrupts`), want ? 'Y\n' : 'N\n');
    }
    const before = state(m);
    for (const text of ['x', '2', ' y', '\n', 'o', 'o\n', '-1', 'Q']) fails(put(f, fd, text), Errno.EINVAL);
    assert.equal(state(m), before);
  });

  it('booleans also take kstrtobool\'s t/T/f/F and any string whose first two characters are on/off', () => {
    const f = noiommu();
    const { m, p } = f;
    const fd = ok(p.open(`${TYPE1_PARAMS}/disable_hugepages`, O_WRONLY));
    for (const [text, want] of [['true', true], ['F', false], ['T\n', true], ['false', false], ['onion', true], ['of', false]] as const) {
      m.vfio.type1.params.disableHugepages = !want;
      assert.equal(ok(put(f, fd, text)), text.length, text);
      assert.equal(m.vfio.type1.params.disableHugepages, want, text);
    }
  });

  it('a write that carries its NUL terminator parses up to the NUL, as C strings end there (write(fd, "1", sizeof "1"))', () => {
    const f = noiommu();
    const { m, p } = f;
    const fd = ok(p.open(`${TYPE1_PARAMS}/dma_entry_limit`, O_WRONLY));
    assert.equal(ok(put(f, fd, '5\0')), 2);
    assert.equal(m.vfio.type1.params.dmaEntryLimit, 5);
    const b = ok(p.open(NOIOMMU_PARAM, O_WRONLY));
    assert.equal(ok(put(f, b, 'on\0')), 3);
    assert.equal(m.vfio.noiommu, true);
  });

  it('an empty write stores nothing and returns 0 (sysfs_kf_write)', () => {
    const f = noiommu();
    const { m, p } = f;
    const fd = ok(p.open(`${TYPE1_PARAMS}/dma_entry_limit`, O_WRONLY));
    const before = state(m);
    assert.equal(ok(p.write(fd, f.io, 0)), 0);
    assert.equal(state(m), before);
  });

  it('a write longer than a page is cut to one page (4096 bytes, kernfs_fop_write_iter) and that is what it returns', () => {
    const f = noiommu();
    const { m, p } = f;
    const fd = ok(p.open(NOIOMMU_PARAM, O_WRONLY));
    p.mm.write(f.io, new Uint8Array(8192).fill(0x30));
    assert.equal(ok(p.write(fd, f.io, 8192)), 4096);
    assert.equal(m.vfio.noiommu, false);
  });

  it('dma_entry_limit parses like kstrtouint base 0: decimal, 0x hex, 0 octal, a leading +, one newline; EINVAL for junk, ERANGE above 32 bits', () => {
    const f = noiommu();
    const { m, p } = f;
    const fd = ok(p.open(`${TYPE1_PARAMS}/dma_entry_limit`, O_WRONLY));
    const t1 = m.vfio.type1.params;
    for (const [text, want] of [['100', 100], ['0x10', 16], ['0X1f\n', 31], ['010', 8], ['0', 0], ['+5\n', 5], ['4294967295', 4294967295]] as const) {
      assert.equal(ok(put(f, fd, text)), text.length, text);
      assert.equal(t1.dmaEntryLimit, want, text);
    }
    assert.equal(sysfsText(m, `${TYPE1_PARAMS}/dma_entry_limit`), '4294967295\n');
    const before = state(m);
    for (const text of ['-1', '0x', '08', '1 ', ' 1', '12abc', '5\n\n', '1.5', '0x1g', '++1']) fails(put(f, fd, text), Errno.EINVAL);
    for (const text of ['4294967296', '0x100000000', '99999999999999999999999']) fails(put(f, fd, text), Errno.ERANGE);
    assert.equal(state(m), before);
  });

  it('a new type1 container takes dma_entry_limit when its backend is set; one set before keeps its own count', () => {
    const m = checkedMachine({}, createDefaultMachine);
    const f = { m, p: proc(m), io: IO };
    const { p } = f;
    const buf = p.mmapOrThrow(4n * PAGE);
    p.poke(buf, new Uint8Array(Number(4n * PAGE)));
    const mapDma = (c: number, i: bigint): SysResult =>
      vcall(p, c, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, { argsz: 32, flags: 3, vaddr: buf + i * PAGE, iova: 0x100000n + i * PAGE, size: PAGE }).r;
    const container = (): { c: number; grp: number } => {
      const c = ok(p.open('/dev/vfio/vfio'));
      const grp = ok(p.open('/dev/vfio/3'));
      ok(p.ioctl(grp, VFIO_GROUP_SET_CONTAINER, s32(c)));
      ok(setIommu(p, c, VFIO_TYPE1v2_IOMMU));
      return { c, grp };
    };
    const param = ok(p.open(`${TYPE1_PARAMS}/dma_entry_limit`, O_WRONLY));
    const first = container();
    ok(put(f, param, '1'));
    ok(mapDma(first.c, 0n));
    ok(mapDma(first.c, 1n));
    ok(p.close(first.grp));
    ok(p.close(first.c));
    const second = container();
    ok(mapDma(second.c, 0n));
    const before = state(m);
    fails(mapDma(second.c, 1n), Errno.ENOSPC);
    assert.equal(state(m), before);
  });

  it('only root or CAP_DAC_OVERRIDE opens a parameter for writing (EACCES, no fd made); other attributes are read-only to root too', () => {
    const f = noiommu({ uid: 1000 });
    const { m, p } = f;
    const before = state(m);
    for (const path of [NOIOMMU_PARAM, `${TYPE1_PARAMS}/dma_entry_limit`]) {
      fails(p.open(path, O_WRONLY), Errno.EACCES);
      fails(p.open(path), Errno.EACCES);
    }
    assert.equal(state(m), before);
    const ro = ok(p.open(NOIOMMU_PARAM, O_RDONLY));
    fails(put(f, ro, 'N'), Errno.EBADF);
    assert.equal(m.vfio.noiommu, true);
    ok(p.close(ro));

    const admin = proc(m, { uid: 1000, caps: [CAP_DAC_OVERRIDE] });
    const fd = ok(admin.open(NOIOMMU_PARAM, O_WRONLY));
    assert.equal(ok(put({ p: admin, io: f.io }, fd, 'n')), 1);
    assert.equal(m.vfio.noiommu, false);

    const root = proc(m);
    const rootBefore = state(m);
    // sysfs refuses a write open of a file without a write bit even to root (KERNFS_ROOT_EXTRA_OPEN_PERM_CHECK).
    for (const path of ['/sys/kernel/iommu_groups/0/name', `${SYSDEV}/vendor`, '/sys/class/vfio/noiommu-0/dev']) fails(root.open(path, O_WRONLY), Errno.EACCES);
    fails(root.open('/sys/module/vfio/parameters', O_WRONLY), Errno.EISDIR);
    assert.equal(state(m), rootBefore);
  });
});

