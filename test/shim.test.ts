/**
 * Unmodified C programs against the emulator through the preload shim and the daemon: the example
 * prints what it printed on the real 6.12 kernel, fork shares the iommufd, and a client killed
 * with SIGKILL is cleaned up while the daemon keeps serving others.
 */

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Machine } from '../src/index.js';
import { Daemon } from '../src/server/daemon.js';
import { shimPath } from '../src/cli/run.js';
import { checkInvariants } from '../src/kernel/invariants.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
let work = '';

/** Compile a C program against the 6.12 uapi headers the test set-up extracted. */
function cc(src: string, name: string): string {
  const inc = join(work, 'include', 'linux');
  mkdirSync(inc, { recursive: true });
  for (const h of ['iommufd.h', 'vfio.h']) copyFileSync(join(root, '.cache', 'linux-6.12', 'include', 'uapi', 'linux', h), join(inc, h));
  const out = join(work, name);
  execFileSync('cc', ['-O2', '-D__user=', '-I', join(work, 'include'), '-o', out, src]);
  return out;
}

function run(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((done) => {
    const c = spawn(process.execPath, [cli, ...args], { env });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('exit', (code) => done({ code, out, err }));
  });
}

before(() => {
  work = mkdtempSync(join(tmpdir(), 'iommufd-emu-shim-'));
});
after(() => rmSync(work, { recursive: true, force: true }));

describe('iommufd-emu run', () => {
  test('examples/ioas_basic.c prints exactly what it printed on the oracle kernel', async () => {
    const prog = cc(join(root, 'examples', 'ioas_basic.c'), 'ioas_basic');
    const r = await run(['run', '--', prog]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, readFileSync(join(root, 'examples', 'ioas_basic.expected'), 'utf8'));
  });

  test('examples/edu_driver.c drives the edu device (bind, attach, DMA both ways, MSI on an eventfd) exactly as on the oracle', async () => {
    const prog = cc(join(root, 'examples', 'edu_driver.c'), 'edu_driver');
    const r = await run(['run', '--', prog]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, readFileSync(join(root, 'examples', 'edu_driver.expected'), 'utf8'));
  });

  test('examples/edu_noiommu.c drives edu with no IOMMU (noiommu group, physical addresses from /proc/self/pagemap, DMA both ways, MSI) exactly as on the oracle without VT-d', async () => {
    const prog = cc(join(root, 'examples', 'edu_noiommu.c'), 'edu_noiommu');
    const r = await run(['run', '--noiommu', '--', prog]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '');
    assert.equal(r.out, readFileSync(join(root, 'examples', 'edu_noiommu.expected'), 'utf8'));
  });

  test('examples/sva_self.c: a bound process\'s malloc\'ed memory is DMAed through its PASID, an absent page faulted in, nothing after unbind (--sva)', async () => {
    const prog = cc(join(root, 'examples', 'sva_self.c'), 'sva_self');
    const r = await run(['run', '--sva', '--', prog]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '');
    assert.equal(r.out, readFileSync(join(root, 'examples', 'sva_self.expected'), 'utf8'));
  });

  test('MSIs reach the program\'s own eventfds: EBADF/EINVAL refusals, at once after the BAR write, from a forked child, references dropped on disable and close', async () => {
    const prog = cc(join(root, 'test', 'progs', 'edu_irqs.c'), 'edu_irqs');
    const r = await run(['run', '--', prog]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '');
    assert.equal(r.out, readFileSync(join(root, 'test', 'progs', 'edu_irqs.expected'), 'utf8'));
  });

  test('a forked child shares the iommufd: objects it makes are the parent\'s too', async () => {
    const prog = cc(join(root, 'test', 'progs', 'forked.c'), 'forked');
    const r = await run(['run', '--', prog]);
    assert.equal(r.err, '');
    assert.equal(
      r.out,
      ['parent ioas 1', 'child alloc ok ioas 2', 'child destroy via dup ok', "parent destroy child's ioas ok", 'parent destroy own ioas No such file or directory', ''].join('\n'),
    );
    assert.equal(r.code, 0);
  });

  test('the program\'s exit status is forwarded', async () => {
    assert.equal((await run(['run', '--', '/bin/sh', '-c', 'exit 7'])).code, 7);
    assert.equal((await run(['run', '--', '/bin/sh', '-c', 'kill -TERM $$'])).code, 128 + 15);
  });
});

describe('daemon', () => {
  test('kill -9 of a client drops its process, files and objects; the daemon keeps serving', async () => {
    const machine = new Machine();
    const daemon = new Daemon(machine);
    const sock = join(work, 'd.sock');
    await daemon.listen(sock);
    try {
      const hold = cc(join(root, 'test', 'progs', 'hold.c'), 'hold');
      const env = { ...process.env, LD_PRELOAD: shimPath(), IOMMUFD_EMU_SOCKET: sock };
      const child = spawn(hold, [], { env });
      const pid = await new Promise<number>((ok, bad) => {
        child.stdout.on('data', (d: Buffer) => {
          const m = /ready (\d+)/.exec(d.toString());
          if (m) ok(Number(m[1]));
        });
        child.on('exit', (code) => bad(new Error(`hold exited ${code}`)));
      });
      const p = machine.process(pid);
      assert.ok(p, 'the client is an emulated process with its real pid');
      assert.equal([...machine.iommufd.contexts].length, 1);
      assert.equal([...machine.iommufd.contexts][0]!.objectCount, 1);
      const closed = new Promise((ok) => child.on('exit', ok));
      child.kill('SIGKILL');
      await closed;
      for (let i = 0; i < 100 && machine.process(pid); i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(machine.process(pid), undefined, 'the killed client is reaped');
      assert.equal(machine.iommufd.contexts.size, 0, 'its iommufd was released');
      assert.deepEqual(checkInvariants(machine), []);
      const prog = cc(join(root, 'examples', 'ioas_basic.c'), 'ioas_basic2');
      // Not execFileSync: the daemon lives in this process, and blocking the loop would deadlock.
      const second = spawn(prog, [], { env });
      let out = '';
      second.stdout.on('data', (d: Buffer) => (out += d.toString()));
      await new Promise((ok) => second.on('exit', ok));
      assert.equal(out, readFileSync(join(root, 'examples', 'ioas_basic.expected'), 'utf8'), 'another client is served as before');
    } finally {
      await daemon.close();
    }
  });
});
