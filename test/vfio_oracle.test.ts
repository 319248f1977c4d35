/**
 * The VFIO oracle probes (test/oracle/vfio_{cdev,group,pci,noiommu}.c) and test/progs/vfio_sysfs.c,
 * built unmodified and run under `iommufd-emu run`, print what they printed on the real 6.12
 * kernel, line for line: the device cdev and its bind rules, the group/container door, vfio-pci on
 * edu — config space in vfio's view and the hardware's (through the emulated sysfs; the MSI
 * message in interrupt remapping's format), BAR access by pread and by mmap (SIGBUS with memory
 * decoding off), interrupts to the program's eventfds, IOEVENTFD, DMA — and the noiommu door.
 */

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
let work = '';

/** Compile a probe against the 6.12 uapi headers (strerrorname_np needs _GNU_SOURCE). */
function cc(name: string, dir = join(root, 'test', 'oracle')): string {
  const inc = join(work, 'include', 'linux');
  mkdirSync(inc, { recursive: true });
  for (const h of ['iommufd.h', 'vfio.h']) copyFileSync(join(root, '.cache', 'linux-6.12', 'include', 'uapi', 'linux', h), join(inc, h));
  const out = join(work, name);
  execFileSync('cc', ['-O1', '-D_GNU_SOURCE', '-D__user=', '-I', join(work, 'include'), '-o', out, join(dir, `${name}.c`)]);
  return out;
}

function run(prog: string, opts: readonly string[] = [], args: readonly string[] = []): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((done) => {
    const c = spawn(process.execPath, [cli, 'run', ...opts, '--', prog, ...args]);
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('exit', (code) => done({ code, out, err }));
  });
}

/** Lines where `got` differs from `want` (same line count expected), as [want, got] pairs. */
function differing(got: string, want: string): [string, string][] {
  const g = got.split('\n');
  const w = want.split('\n');
  assert.equal(g.length, w.length, `line count: got ${g.length}, the oracle printed ${w.length}`);
  return w.flatMap((line, i) => (line === g[i] ? [] : [[line, g[i]!] as [string, string]]));
}

before(() => {
  work = mkdtempSync(join(tmpdir(), 'iommufd-emu-vfio-oracle-'));
});
after(() => rmSync(work, { recursive: true, force: true }));

describe('VFIO oracle probes under iommufd-emu run', () => {
  for (const name of ['vfio_cdev', 'vfio_group', 'vfio_pci'] as const) {
    test(`test/oracle/${name}.c prints its 6.12 output`, async () => {
      const r = await run(cc(name));
      assert.equal(r.code, 0, r.err);
      assert.equal(r.err, '');
      assert.deepEqual(differing(r.out, readFileSync(join(root, 'test', 'oracle', `${name}.expected`), 'utf8')), []);
    });
  }

  test(`test/oracle/vfio_noiommu.c (test/oracle/noiommu.sh: no IOMMU, noiommu mode) prints its 6.12 output under run --noiommu`, async () => {
    const r = await run(cc('vfio_noiommu'), ['--noiommu']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '');
    assert.deepEqual(differing(r.out, readFileSync(join(root, 'test', 'oracle', 'vfio_noiommu.expected'), 'utf8')), []);
  });

  test('vfio_noiommu.c nocap: without CAP_SYS_RAWIO the noiommu group does not open, and iommufd\'s compat answers stay as on 6.12', async () => {
    const r = await run(cc('vfio_noiommu'), ['--noiommu'], ['nocap']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(differing(r.out, readFileSync(join(root, 'test', 'oracle', 'vfio_noiommu.nocap.expected'), 'utf8')), []);
  });

  test('test/progs/vfio_sysfs.c finds the device through sysfs links, reads its cdev\'s fd link and flags, and uses a mapped BAR exactly as on 6.12', async () => {
    const r = await run(cc('vfio_sysfs', join(root, 'test', 'progs')));
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '');
    assert.equal(r.out, readFileSync(join(root, 'test', 'progs', 'vfio_sysfs.expected'), 'utf8'));
  });

  test('test/progs/sysfs_stat.c stats and lstats the emulated sysfs (modes, sizes, links, ".." through links, ENOTDIR, ENOENT) exactly as on 6.12', async () => {
    const r = await run(cc('sysfs_stat', join(root, 'test', 'progs')));
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '');
    assert.equal(r.out, readFileSync(join(root, 'test', 'progs', 'sysfs_stat.expected'), 'utf8'));
  });

  test('test/progs/dev_vfio_dir.c lists and stats /dev/vfio as devtmpfs has it (".", "..", a node named as a directory, no xattrs) exactly as on 6.12', async () => {
    const r = await run(cc('dev_vfio_dir', join(root, 'test', 'progs')));
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '');
    assert.equal(r.out, readFileSync(join(root, 'test', 'progs', 'dev_vfio_dir.expected'), 'utf8'));
  });
});
