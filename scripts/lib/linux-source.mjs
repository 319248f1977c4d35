// Debian's linux-source-6.12 tarball: installing it when missing, and extracting parts of it into
// .cache/ idempotently. Shared by setup-test-env.mjs (uapi headers for the ABI test) and
// conformance.mjs (the kernel's iommufd selftests).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const TARBALL = '/usr/src/linux-source-6.12.tar.xz';
export const PACKAGE = 'linux-source-6.12';
/** The directory every member of the tarball sits in. */
export const TOP = 'linux-source-6.12';

/** Install the package (root only) unless the tarball is there; `fail(msg)` must not return. */
export function ensureTarball(fail) {
  if (existsSync(TARBALL)) return false;
  if (process.getuid?.() !== 0) {
    fail(`${TARBALL} is missing; install it with: sudo apt-get install -y ${PACKAGE}`);
  }
  aptInstall([PACKAGE], fail);
  if (!existsSync(TARBALL)) fail(`${PACKAGE} is installed but ${TARBALL} is still missing`);
  return true;
}

/** apt-get install -y PACKAGES (after an update), or `fail`. */
export function aptInstall(packages, fail) {
  const quiet = { stdio: ['ignore', 'ignore', 'inherit'] };
  try {
    execFileSync('apt-get', ['update'], quiet);
    execFileSync('apt-get', ['install', '-y', ...packages], { ...quiet, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  } catch (e) {
    fail(`apt-get install ${packages.join(' ')} failed: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function tarballId() {
  const st = statSync(TARBALL);
  return { tarball: TARBALL, size: st.size, mtimeMs: Math.trunc(st.mtimeMs) };
}

/** VERSION.PATCHLEVEL.SUBLEVEL from a kernel tree's top Makefile. */
export function kernelVersion(dir) {
  const mk = readFileSync(join(dir, 'Makefile'), 'utf8');
  const get = (k) => new RegExp(`^${k}\\s*=\\s*(\\S*)`, 'm').exec(mk)?.[1] ?? '?';
  return `${get('VERSION')}.${get('PATCHLEVEL')}.${get('SUBLEVEL')}`;
}

/**
 * Make `dest` hold exactly `members` (paths inside the tree, without the top directory; the top
 * Makefile is always added for the version) of the current tarball. A stamp records the tarball
 * and the member list, so a re-run with both unchanged and `expect` files present does nothing.
 * Extracts into a scratch directory and swaps it in, so an interrupted run leaves no half tree.
 * Returns { extracted, version }.
 */
export function extractMembers(dest, members, expect, fail) {
  const all = [...new Set(['Makefile', ...members])];
  const id = tarballId();
  const stampPath = join(dest, '.stamp.json');
  let stamp = null;
  try {
    stamp = JSON.parse(readFileSync(stampPath, 'utf8'));
  } catch {
    stamp = null;
  }
  if (
    stamp &&
    stamp.size === id.size &&
    stamp.mtimeMs === id.mtimeMs &&
    JSON.stringify(stamp.members) === JSON.stringify(all.map((m) => `${TOP}/${m}`)) &&
    expect.every((f) => existsSync(join(dest, f)))
  ) {
    return { extracted: false, version: stamp.version };
  }
  const scratch = `${dest}.tmp-${process.pid}`;
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  const paths = all.map((m) => `${TOP}/${m}`);
  try {
    execFileSync('tar', ['-xJf', TARBALL, '-C', scratch, '--strip-components=1', ...paths], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  } catch (e) {
    rmSync(scratch, { recursive: true, force: true });
    fail(`extracting ${all.join(' ')} from ${TARBALL} failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  const version = kernelVersion(scratch);
  writeFileSync(join(scratch, '.stamp.json'), `${JSON.stringify({ ...id, version, members: paths }, null, 2)}\n`);
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(dirname(dest), { recursive: true });
  renameSync(scratch, dest);
  return { extracted: true, version };
}
