/**
 * The syscalls the daemon used to answer by hand, now Process methods like the rest: readAttr
 * (text and binary sysfs attributes), readlink (sysfs links, /proc/<self|pid>/fd/N), fcntl, and
 * file mappings (mmapFile, mmio, munmapFile). Each is traced, replays identically on a fresh
 * default machine, and refuses bad input with the kernel's errno; through the daemon a real
 * program's calls land in the trace too.
 */

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Errno,
  MAP_PRIVATE,
  MAP_SHARED,
  O_NONBLOCK,
  O_RDONLY,
  O_WRONLY,
  PROT_READ,
  PROT_WRITE,
  type Process,
  type SysResult,
  type TraceEvent,
  VFIO_DEVICE_BIND_IOMMUFD,
  fromJsonl,
  replay,
  toJsonl,
  vfio_device_bind_iommufd,
} from '../src/index.js';
import { shimPath } from '../src/cli/run.js';
import { createDefaultMachine } from '../src/kernel/default_machine.js';
import type { Machine } from '../src/kernel/machine.js';
import { F_GETFL, F_SETFL, O_LARGEFILE } from '../src/kernel/vfs.js';
import { Daemon } from '../src/server/daemon.js';
import { checkedMachine, fails, ok } from './helpers.js';
import { BDF, CDEV, attached, region, setCfg, vcall, vfioMachine } from './vfio_helpers.js';

const DEV = `/sys/bus/pci/devices/${BDF}`;
const PAGE = 4096n;
const text = (b: Uint8Array): string => new TextDecoder().decode(b);
/** Far below anything mmap hands out: every copy to it faults. */
const BAD = 0x10n;

/** Call a sized-answer syscall (readAttr, readlink) into a fresh page; the answer's bytes. */
function fetch(p: Process, call: (buf: bigint, size: number) => SysResult): Uint8Array {
  const buf = p.mmapOrThrow(PAGE);
  const n = ok(call(buf, Number(PAGE)));
  return p.peek(buf, n);
}

/** What the tracer recorded while `body` ran. */
function traced(m: Machine, body: () => void): TraceEvent[] {
  const rec = m.tracer.record();
  try {
    body();
  } finally {
    rec.stop();
  }
  return rec.events;
}

describe('read_attr', () => {
  test('a text attribute reads whole; a buffer too small gets the size and nothing written', () => {
    const { p } = vfioMachine();
    assert.equal(text(fetch(p, (b, n) => p.readAttr(`${DEV}/vendor`, b, n))), '0x1234\n');
    const buf = p.mmapOrThrow(PAGE);
    assert.equal(ok(p.readAttr(`${DEV}/vendor`, buf, 3)), 7);
    assert.deepEqual(p.peek(buf, 7), new Uint8Array(7));
  });

  test('config is binary: the whole config space for root, its first 64 bytes without CAP_SYS_ADMIN', () => {
    const { m, p } = vfioMachine();
    const config = m.iommu.pciDevice(BDF)!.config;
    assert.deepEqual(fetch(p, (b, n) => p.readAttr(`${DEV}/config`, b, n)), config);
    const user = m.spawn({ uid: 1000 });
    assert.deepEqual(fetch(user, (b, n) => user.readAttr(`${DEV}/config`, b, n)), config.subarray(0, 64));
  });

  test('a missing path is ENOENT, a directory EISDIR, a bad buffer EFAULT; each is traced with its reason', () => {
    const { m, p } = vfioMachine();
    const buf = p.mmapOrThrow(PAGE);
    const events = traced(m, () => {
      fails(p.readAttr(`${DEV}/nothing`, buf, 4096), Errno.ENOENT);
      fails(p.readAttr('/sys/nowhere/at/all', buf, 4096), Errno.ENOENT);
      fails(p.readAttr(DEV, buf, 4096), Errno.EISDIR);
      fails(p.readAttr(`${DEV}/vendor`, BAD, 4096), Errno.EFAULT);
    });
    assert.deepEqual(events.map((e) => [e.call, e.errno]), [
      ['read_attr', Errno.ENOENT],
      ['read_attr', Errno.ENOENT],
      ['read_attr', Errno.EISDIR],
      ['read_attr', Errno.EFAULT],
    ]);
    assert.deepEqual(events[3]!.args, { path: `${DEV}/vendor`, buf: '0x10', size: 4096 });
    assert.match(events[3]!.reason!, new RegExp(`^reading ${DEV}/vendor of 7 bytes at 0x10`));
  });
});

describe('readlink', () => {
  test('a sysfs link gives its relative target, links earlier in the path followed', () => {
    const { p } = vfioMachine();
    assert.equal(text(fetch(p, (b, n) => p.readlink(DEV, b, n))), `../../../devices/pci0000:00/${BDF}`);
    assert.equal(text(fetch(p, (b, n) => p.readlink(`${DEV}/iommu_group`, b, n))), '../../../kernel/iommu_groups/3');
    assert.equal(text(fetch(p, (b, n) => p.readlink('/sys/class/vfio-dev/vfio0/device', b, n))), `../../../${BDF}`);
  });

  test('/proc/self/fd/N, /proc/thread-self/fd/N and /proc/PID/fd/N show the open file: a node\'s path, anon_inode:[name]', () => {
    const { p } = vfioMachine();
    const dev = p.openOrThrow(CDEV);
    const efd = ok(p.eventfd());
    for (const who of ['self', 'thread-self', String(p.pid)]) {
      assert.equal(text(fetch(p, (b, n) => p.readlink(`/proc/${who}/fd/${dev}`, b, n))), CDEV);
      assert.equal(text(fetch(p, (b, n) => p.readlink(`/proc/${who}/fd/${efd}`, b, n))), 'anon_inode:[eventfd]');
    }
    assert.equal(text(fetch(p, (b, n) => p.readlink('/proc/self/fd/0', b, n))), '/dev/null');
  });

  test('another process\'s fd links: same uid, or CAP_SYS_PTRACE; otherwise EACCES', () => {
    const { m, p } = vfioMachine();
    const other = m.spawn({ uid: 1000 });
    const dev = other.openOrThrow('/dev/iommu');
    assert.equal(text(fetch(p, (b, n) => p.readlink(`/proc/${other.pid}/fd/${dev}`, b, n))), '/dev/iommu', 'root has CAP_SYS_PTRACE');
    const peer = m.spawn({ uid: 1000 });
    assert.equal(text(fetch(peer, (b, n) => peer.readlink(`/proc/${other.pid}/fd/${dev}`, b, n))), '/dev/iommu');
    const stranger = m.spawn({ uid: 1001 });
    fails(stranger.readlink(`/proc/${other.pid}/fd/${dev}`, stranger.mmapOrThrow(PAGE), 4096), Errno.EACCES);
  });

  test('the target is not NUL-terminated; a buffer too small gets its length and nothing written', () => {
    const { p } = vfioMachine();
    const buf = p.mmapOrThrow(PAGE);
    p.poke(buf, new Uint8Array(64).fill(0xee));
    assert.equal(ok(p.readlink(`${DEV}/driver`, buf, 64)), 33);
    assert.equal(text(p.peek(buf, 33)), '../../../bus/pci/drivers/vfio-pci');
    assert.equal(p.peek(buf, 34)[33], 0xee);
    const fresh = p.mmapOrThrow(PAGE);
    assert.equal(ok(p.readlink(`${DEV}/driver`, fresh, 32)), 33);
    assert.deepEqual(p.peek(fresh, 33), new Uint8Array(33));
  });

  test('ENOENT where nothing is: a missing sysfs path, a closed fd, an fd number with a leading zero, a gone process', () => {
    const { m, p } = vfioMachine();
    const buf = p.mmapOrThrow(PAGE);
    fails(p.readlink(`${DEV}/nothing`, buf, 4096), Errno.ENOENT);
    fails(p.readlink('/sys/nowhere', buf, 4096), Errno.ENOENT);
    fails(p.readlink('relative/path', buf, 4096), Errno.ENOENT);
    const dev = p.openOrThrow(CDEV);
    ok(p.close(dev));
    assert.match(fails(p.readlink(`/proc/self/fd/${dev}`, buf, 4096), Errno.ENOENT), /is not open/);
    fails(p.readlink('/proc/self/fd/00', buf, 4096), Errno.ENOENT);
    const gone = m.spawn();
    gone.exit();
    fails(p.readlink(`/proc/${gone.pid}/fd/0`, buf, 4096), Errno.ENOENT);
  });

  test('EINVAL for what is there but no link: an attribute, a directory, a device node, a /dev directory', () => {
    const { p } = vfioMachine();
    const buf = p.mmapOrThrow(PAGE);
    for (const path of [`${DEV}/vendor`, `${DEV}/vfio-dev`, '/sys/kernel/iommu_groups/3', '/dev/iommu', CDEV, '/dev/vfio']) {
      fails(p.readlink(path, buf, 4096), Errno.EINVAL);
    }
  });

  test('a bad buffer is EFAULT, for a sysfs link and an fd link alike', () => {
    const { p } = vfioMachine();
    assert.match(fails(p.readlink(`${DEV}/driver`, BAD, 4096), Errno.EFAULT), new RegExp(`^reading link ${DEV}/driver`));
    assert.match(fails(p.readlink('/proc/self/fd/0', BAD, 4096), Errno.EFAULT), new RegExp(`^reading /proc/${p.pid}/fd/0`));
  });
});

describe('fcntl', () => {
  test('F_GETFL: an opened node shows O_LARGEFILE, an anon-inode file its access mode and O_NONBLOCK only', () => {
    const { p } = vfioMachine();
    const dev = p.openOrThrow(CDEV);
    assert.equal(ok(p.fcntl(dev, F_GETFL)), 2 | O_LARGEFILE);
    const efd = ok(p.eventfd(0, O_NONBLOCK));
    assert.equal(ok(p.fcntl(efd, F_GETFL)), 2 | O_NONBLOCK);
  });

  test('F_SETFL changes O_NONBLOCK, never the access mode', () => {
    const { p } = vfioMachine();
    const dev = p.openOrThrow(CDEV);
    assert.equal(ok(p.fcntl(dev, F_SETFL, O_NONBLOCK | O_WRONLY)), 0);
    assert.equal(ok(p.fcntl(dev, F_GETFL)), 2 | O_LARGEFILE | O_NONBLOCK);
    ok(p.fcntl(dev, F_SETFL, 0));
    assert.equal(ok(p.fcntl(dev, F_GETFL)), 2 | O_LARGEFILE);
  });

  test('a closed fd is EBADF, a command other than F_GETFL/F_SETFL EINVAL', () => {
    const { p } = vfioMachine();
    const dev = p.openOrThrow(CDEV);
    fails(p.fcntl(99, F_GETFL), Errno.EBADF);
    fails(p.fcntl(-1, F_GETFL), Errno.EBADF);
    fails(p.fcntl(dev, 1024), Errno.EINVAL);
    ok(p.close(dev));
    fails(p.fcntl(dev, F_SETFL, O_NONBLOCK), Errno.EBADF);
  });
});

describe('file mappings: mmap_file, mmio, munmap_file', () => {
  const RW = PROT_READ | PROT_WRITE;

  test('BAR0 mapped shared: loads and stores reach edu; ids count from 1', () => {
    const { p, dev } = attached();
    const id = ok(p.mmapFile(dev, PAGE, RW, MAP_SHARED, region(0)));
    assert.equal(id, 1);
    assert.equal(ok(p.mmio(id, 0n, 4, false)), 0x010000edn);
    ok(p.mmio(id, 4n, 4, true, 0x12345678n));
    assert.equal(ok(p.mmio(id, 4n, 4, false)), 0xedcba987n);
    assert.equal(ok(p.mmapFile(dev, PAGE, PROT_READ, MAP_SHARED, region(0) + PAGE)), 2);
    assert.equal(ok(p.munmapFile(id)), 0);
    assert.equal(ok(p.mmapFile(dev, PAGE, PROT_READ, MAP_SHARED, region(0))), 3, 'an id is never reused');
  });

  test('mmap refusals: EBADF, then EINVAL for an unaligned offset or no length, EACCES, ENODEV, and vfio-pci\'s EINVAL', () => {
    const { p, dev, ifd } = attached();
    fails(p.mmapFile(77, PAGE, RW, MAP_SHARED, 0n), Errno.EBADF);
    fails(p.mmapFile(dev, PAGE, RW, MAP_SHARED, 0x800n), Errno.EINVAL);
    fails(p.mmapFile(dev, 0n, RW, MAP_SHARED, 0n), Errno.EINVAL);
    fails(p.mmapFile(dev, PAGE, RW, 0, 0n), Errno.EINVAL);
    fails(p.mmapFile(dev, PAGE, RW, MAP_PRIVATE, 0n), Errno.EINVAL);
    fails(p.mmapFile(dev, PAGE, PROT_READ, MAP_SHARED, region(1)), Errno.EINVAL);
    fails(p.mmapFile(ifd, PAGE, RW, MAP_SHARED, 0n), Errno.ENODEV);
    const ro = p.openOrThrow(CDEV, O_RDONLY);
    fails(p.mmapFile(ro, PAGE, RW, MAP_SHARED, 0n), Errno.EACCES);
    const wo = p.openOrThrow('/dev/null', O_WRONLY);
    fails(p.mmapFile(wo, PAGE, PROT_READ, MAP_SHARED, 0n), Errno.EACCES);
  });

  test('mmio refusals are EFAULT (the shim raises SIGBUS): no such mapping, an odd width, outside the mapping, memory decoding off', () => {
    const { p, dev } = attached();
    const id = ok(p.mmapFile(dev, PAGE, RW, MAP_SHARED, region(0)));
    assert.equal(fails(p.mmio(9, 0n, 4, false), Errno.EFAULT), 'SIGBUS: no mapping 9');
    assert.match(fails(p.mmio(id, 0n, 3, false), Errno.EFAULT), /^SIGBUS: access of 3 bytes at 0x0 is outside mapping 1$/);
    fails(p.mmio(id, PAGE - 2n, 4, false), Errno.EFAULT);
    fails(p.mmio(id, -4n, 4, false), Errno.EFAULT);
    ok(p.mmio(id, PAGE - 4n, 4, false));
    setCfg(p, dev, 4, 0, 2);
    assert.match(fails(p.mmio(id, 0n, 4, false), Errno.EFAULT), /SIGBUS/);
    setCfg(p, dev, 4, 2, 2);
    assert.equal(ok(p.mmio(id, 0n, 4, false)), 0x010000edn);
    ok(p.munmapFile(id));
    fails(p.mmio(id, 0n, 4, false), Errno.EFAULT);
    assert.equal(ok(p.munmapFile(id)), 0, 'unmapping nothing is 0');
  });

  test('a mapping holds the device file: closing the fd leaves it open until the mapping goes, and exit drops it', () => {
    const { m, p, dev } = attached();
    const vdev = m.vfio.devices()[0]!;
    const id = ok(p.mmapFile(dev, PAGE, PROT_READ, MAP_SHARED, 0n));
    ok(p.close(dev));
    assert.equal(vdev.openCount, 1);
    assert.equal(ok(p.mmio(id, 0n, 4, false)), 0x010000edn);
    ok(p.munmapFile(id));
    assert.equal(vdev.openCount, 0);
    const again = attached();
    ok(again.p.mmapFile(again.dev, PAGE, PROT_READ, MAP_SHARED, 0n));
    ok(again.p.close(again.dev));
    again.p.exit();
    assert.equal(again.m.vfio.devices()[0]!.openCount, 0);
  });

  test('fork copies the mappings under the same ids: each side unmaps its own', () => {
    const { m, p, dev } = attached();
    const id = ok(p.mmapFile(dev, PAGE, RW, MAP_SHARED, 0n));
    const child = p.fork();
    ok(p.munmapFile(id));
    ok(p.close(dev));
    ok(child.mmio(id, 4n, 4, true, 0x0f0f0f0fn));
    assert.equal(ok(child.mmio(id, 4n, 4, false)), 0xf0f0f0f0n);
    assert.equal(ok(child.mmapFile(dev, PAGE, PROT_READ, MAP_SHARED, 0n)), 2, 'the child\'s next id follows the parent\'s');
    ok(child.close(dev));
    child.exit();
    assert.equal(m.vfio.devices()[0]!.openCount, 0);
  });

  test('a daemon-style fork (prepareFork) copies them too, and an aborted one gives the references back', () => {
    const { m, p, dev } = attached();
    const vdev = m.vfio.devices()[0]!;
    const id = ok(p.mmapFile(dev, PAGE, PROT_READ, MAP_SHARED, 0n));
    p.prepareFork().abort();
    ok(p.close(dev));
    ok(p.munmapFile(id));
    assert.equal(vdev.openCount, 0, 'the aborted fork held nothing');
    const again = attached();
    const id2 = ok(again.p.mmapFile(again.dev, PAGE, PROT_READ, MAP_SHARED, 0n));
    const child = again.p.prepareFork().complete(again.p.mm.fork());
    ok(again.p.close(again.dev));
    again.p.exit();
    assert.equal(ok(child.mmio(id2, 0n, 4, false)), 0x010000edn);
    child.exit();
    assert.equal(again.m.vfio.devices()[0]!.openCount, 0);
  });
});

/** A session on the default machine using every syscall above, successes and refusals. */
function session(): { m: Machine; events: TraceEvent[] } {
  const m = checkedMachine({}, createDefaultMachine);
  const rec = m.tracer.record();
  const p = m.spawn();
  const buf = p.mmapOrThrow(4n * PAGE);
  ok(p.readAttr(`${DEV}/vendor`, buf, 4096));
  ok(p.readAttr(`${DEV}/config`, buf, 4096));
  fails(p.readAttr(`${DEV}/nothing`, buf, 4096), Errno.ENOENT);
  ok(p.listdir(`${DEV}/vfio-dev`, buf, 4096));
  ok(p.readlink(`${DEV}/iommu_group`, buf, 4096));
  fails(p.readlink(`${DEV}/vendor`, buf, 4096), Errno.EINVAL);
  const ifd = p.openOrThrow('/dev/iommu');
  const dev = p.openOrThrow(CDEV);
  ok(p.readlink(`/proc/self/fd/${dev}`, buf, 4096));
  fails(p.readlink('/proc/self/fd/99', buf, 4096), Errno.ENOENT);
  fails(p.readlink(`${DEV}/driver`, BAD, 4096), Errno.EFAULT);
  ok(p.fcntl(dev, F_SETFL, O_NONBLOCK));
  ok(p.fcntl(dev, F_GETFL));
  fails(p.fcntl(99, F_GETFL), Errno.EBADF);
  const efd = ok(p.eventfd(3, O_NONBLOCK));
  ok(p.fcntl(efd, F_GETFL));
  ok(vcall(p, dev, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd, { argsz: 16, iommufd: ifd }).r);
  const id = ok(p.mmapFile(dev, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, 0n));
  fails(p.mmapFile(dev, PAGE, PROT_READ, MAP_SHARED, 0x800n), Errno.EINVAL);
  ok(p.mmio(id, 0n, 4, false));
  ok(p.mmio(id, 4n, 4, true, 0x12345678n));
  ok(p.mmio(id, 4n, 4, false));
  ok(p.mmio(id, 0x80n, 8, true, 0x1122334455667788n));
  fails(p.mmio(id, 0n, 3, false), Errno.EFAULT);
  const child = p.fork();
  ok(child.mmio(id, 0x80n, 8, false));
  child.exit();
  ok(p.munmapFile(id));
  fails(p.mmio(id, 0n, 4, false), Errno.EFAULT);
  ok(p.close(dev));
  p.exit();
  rec.stop();
  return { m, events: rec.events };
}

describe('tracing and replay', () => {
  test('every new syscall is traced under its name with its arguments', () => {
    const { events } = session();
    const calls = new Set(events.map((e) => e.call));
    for (const c of ['read_attr', 'readlink', 'listdir', 'fcntl', 'eventfd', 'mmap_file', 'mmio', 'munmap_file']) assert.ok(calls.has(c), `no ${c} in the trace`);
    const mmio = events.find((e) => e.call === 'mmio' && e.args.write === true)!;
    assert.deepEqual(mmio.args, { id: 1, offset: '0x4', size: 4, write: true, value: '0x12345678' });
    const read = events.find((e) => e.call === 'mmio' && e.args.offset === '0x4' && e.args.write === false)!;
    assert.equal(read.ret, '0xedcba987');
    const link = events.find((e) => e.call === 'readlink' && e.errno === 0 && typeof e.args.path === 'string' && e.args.path.startsWith('/proc/'))!;
    assert.equal(link.ret, CDEV.length);
    for (const e of events.filter((x) => x.errno)) assert.ok(e.reason && e.reason.length > 10, `seq ${e.seq} (${e.call}) says why`);
  });

  test('the session survives JSONL and replays on a fresh default machine with no mismatch', () => {
    const { events } = session();
    const { machine, mismatches } = replay(fromJsonl(toJsonl(events)), {}, createDefaultMachine);
    assert.deepEqual(mismatches, []);
    assert.equal([...machine.processes()].length, 0);
    assert.equal(machine.vfio.devices()[0]!.openCount, 0);
  });

  for (const call of ['readlink', 'read_attr', 'fcntl', 'mmio', 'mmap_file'] as const) {
    test(`a ${call} whose recorded result is altered is reported at exactly that seq`, () => {
      const copy = fromJsonl(toJsonl(session().events));
      const victim = copy.find((e) => e.call === call && e.errno === 0)!;
      victim.ret = typeof victim.ret === 'string' ? '0xbad' : victim.ret + 1;
      const { mismatches } = replay(copy, {}, createDefaultMachine);
      assert.deepEqual(mismatches.map((x) => x.seq), [victim.seq]);
    });
  }

  test('a replay on the wrong machine is caught: a plain Machine has no edu behind the same paths', () => {
    const { mismatches } = replay(session().events);
    assert.ok(mismatches.some((x) => x.call === 'read_attr' || x.call === 'readlink'));
  });
});

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
let work = '';

before(() => {
  work = mkdtempSync(join(tmpdir(), 'iommufd-emu-traced-'));
});
after(() => rmSync(work, { recursive: true, force: true }));

describe('through the daemon', () => {
  test('test/progs/vfio_sysfs.c prints its 6.12 output, and its sysfs reads, readlinks, fcntls and BAR accesses are in the trace', async () => {
    const inc = join(work, 'include', 'linux');
    mkdirSync(inc, { recursive: true });
    for (const h of ['iommufd.h', 'vfio.h']) copyFileSync(join(root, '.cache', 'linux-6.12', 'include', 'uapi', 'linux', h), join(inc, h));
    const prog = join(work, 'vfio_sysfs');
    execFileSync('cc', ['-O1', '-D_GNU_SOURCE', '-D__user=', '-I', join(work, 'include'), '-o', prog, join(root, 'test', 'progs', 'vfio_sysfs.c')]);
    const machine = createDefaultMachine();
    const daemon = new Daemon(machine);
    const sock = join(work, 'd.sock');
    await daemon.listen(sock);
    const rec = machine.tracer.record();
    try {
      // Not execFileSync: the daemon lives in this process, and blocking the loop would deadlock.
      const child = spawn(prog, [], { env: { ...process.env, LD_PRELOAD: shimPath(), IOMMUFD_EMU_SOCKET: sock } });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const code = await new Promise((done) => child.on('exit', done));
      assert.equal(code, 0, err);
      assert.equal(out, readFileSync(join(root, 'test', 'progs', 'vfio_sysfs.expected'), 'utf8'));
      const mine = rec.events.filter((e) => e.pid === child.pid);
      const count = (call: string): number => mine.filter((e) => e.call === call && e.errno === 0).length;
      assert.ok(count('read_attr') >= 5, 'vendor, class, dev, dev, config');
      assert.ok(mine.some((e) => e.call === 'read_attr' && e.args.path === `${DEV}/config`));
      assert.ok(count('readlink') >= 5, 'three sysfs links, the fd link twice');
      assert.ok(mine.some((e) => e.call === 'readlink' && typeof e.args.path === 'string' && /^\/proc\/self\/fd\/\d+$/.test(e.args.path)));
      assert.equal(count('fcntl'), 3);
      assert.equal(count('mmap_file'), 1);
      assert.ok(count('mmio') >= 8);
      assert.equal(count('munmap_file'), 1);
    } finally {
      rec.stop();
      await daemon.close();
    }
  });
});
