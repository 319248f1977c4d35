/**
 * The shim's answers to what the kernel's IOMMUFD selftests do beyond open/ioctl/close
 * (test/progs/shim_syscalls.c, one section per case), run through `iommufd-emu run`.
 */

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
const linux = join(root, '.cache', 'linux-6.12');
let work = '';
let prog = '';

function run(section: string, opts: string[] = []): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((done) => {
    const c = spawn(process.execPath, [cli, 'run', ...opts, '--', prog, section]);
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('exit', (code) => done({ code, out, err }));
  });
}

async function expectLines(section: string, lines: string[], opts: string[] = []): Promise<void> {
  const r = await run(section, opts);
  assert.equal(r.err, '');
  assert.equal(r.out, `${lines.join('\n')}\n`);
  assert.equal(r.code, 0);
}

before(() => {
  work = mkdtempSync(join(tmpdir(), 'iommufd-emu-shim-syscalls-'));
  mkdirSync(join(work, 'include', 'linux'), { recursive: true });
  copyFileSync(join(linux, 'include', 'uapi', 'linux', 'iommufd.h'), join(work, 'include', 'linux', 'iommufd.h'));
  prog = join(work, 'shim_syscalls');
  const testH = join(linux, 'drivers', 'iommu', 'iommufd');
  execFileSync('cc', ['-O2', '-Wall', '-D__user=', '-I', join(work, 'include'), '-I', testH, '-o', prog, join(root, 'test', 'progs', 'shim_syscalls.c')]);
});
after(() => rmSync(work, { recursive: true, force: true }));

describe('shim', () => {
  test('a file made inside an ioctl (an access fd) gets the lowest free real fd, close-on-exec; a failed call leaves none', () =>
    expectLines('spare', [
      'create_access ok',
      'access fd is the lowest free: yes',
      'access fd is close-on-exec: yes',
      'destroy ioas with access: Device or resource busy',
      'close access fd: ok',
      'destroy ioas after close: ok',
      'create_access on a missing ioas: No such file or directory',
      'no fd left behind: yes',
    ]));

  test('/sys/kernel/iommu_groups lists the machine\'s groups and devices through opendir/readdir; attributes read through fopen and open', () =>
    expectLines('sysfs', [
      'opendir iommu_groups: ok',
      // The built-in machine's groups 0-4 (as on the oracle's -v guest), then the two mock devices'.
      ...[0, 1, 2, 3, 4, 5, 6].map((g) => `group ${g} (dir)`),
      'entries after rewinddir: 9',
      'group 1 device 0000:00:01.0 (link)',
      'fopen type: DMA',
      // "0x00000000fee00000 0x00000000feefffff msi\n", the VT-d interrupt window (oracle).
      'read reserved_regions: 42 bytes',
      'opendir group 9: No such file or directory',
      'open type for writing: Permission denied',
      'opendir /tmp (the host\'s): ok',
    ]));

  test('pread and pwrite on fail-nth read and write at the offset given', () =>
    expectLines('pread', ['pwrite 1', 'pread 2 5', 'pread again 2 5', 'pwrite 0: 1']));

  test('/sys/kernel/debug is the emulated debugfs with the fault-injection attributes of the oracle kernel', () =>
    expectLines('debugfs', ['debugfs: fail_iommufd failslab', 'write failslab/ignore-gfp-wait: 1', 'fail_iommufd/times: 1']));

  test('MAP_HUGETLB takes 2 MiB-aligned huge pages from the machine\'s pool of 64; munmap returns them and refuses to split one', () =>
    expectLines('hugetlb', [
      'map 2 huge pages: ok, 2M aligned: yes',
      'IOAS_MAP of them: ok',
      'MD_CHECK_REFS (compound pages are skipped): ok',
      '63 more (62 free): Cannot allocate memory',
      'munmap half a huge page: Invalid argument',
      'munmap: ok',
      '63 after munmap (64 free): mapped',
    ]));

  test('a child the parent reaped has exited in the emulator too: its huge pages are free', () =>
    expectLines('reaped', ['child took 64 huge pages: yes', 'after reaping it, 64 are free again: yes']));

  test('the stat family answers for emulated device nodes as the real node would; other paths are the host\'s', () =>
    expectLines('stat', [
      'stat /dev/iommu: chr yes, 10:123, mode 660, uid 0, ino set',
      'fstat: chr yes, 10:123, mode 660, uid 0, ino set',
      'same inode as stat: yes',
      'lstat: chr yes, 10:123, mode 660, uid 0, ino set',
      'fstatat: chr yes, 10:123, mode 660, uid 0, ino set',
      'fstatat AT_EMPTY_PATH: chr yes, 10:123, mode 660, uid 0, ino set',
      'statx: ok, chr yes, 10:123, mode 660, mask has type|mode|ino: yes',
      'statx fd: ok, chr yes, 10:123',
      'stat /dev/vfio/nonexistent: No such file or directory',
      'statx /dev/vfio/nonexistent: No such file or directory',
      'stat of this program unchanged: yes',
      'fstatat of this program unchanged: yes',
      'statx of this program unchanged: yes',
      'fstat of emulated fail-nth (no node): ok, chr no',
      'stat /dev/null (the host\'s): 1:3',
    ]));

  test('run --root: the emulated kernel sees every capability (CAP_SYS_RESOURCE for IOMMU_OPTION_RLIMIT_MODE)', () =>
    expectLines('rlimit_mode', ['set RLIMIT_MODE: ok'], ['--root']));
});
