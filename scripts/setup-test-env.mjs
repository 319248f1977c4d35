#!/usr/bin/env node
// Prepares what the ABI conformance test needs: the Linux 6.12 uapi headers, extracted from
// Debian's linux-source-6.12 tarball into .cache/linux-6.12/ (include/uapi/ plus the top
// Makefile for the version). Idempotent: a stamp file records which tarball was extracted.
// Prints one line saying what it did.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const TARBALL = '/usr/src/linux-source-6.12.tar.xz';
const PACKAGE = 'linux-source-6.12';
const TOP = 'linux-source-6.12';
const MEMBERS = [`${TOP}/include/uapi`, `${TOP}/Makefile`];

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const dest = join(repo, '.cache', 'linux-6.12');
const stampPath = join(dest, '.stamp.json');

function fail(msg) {
  process.stderr.write(`setup-test-env: ${msg}\n`);
  process.exit(1);
}

function ensureTarball() {
  if (existsSync(TARBALL)) return false;
  if (process.getuid?.() !== 0) {
    fail(`${TARBALL} is missing; install it with: sudo apt-get install -y ${PACKAGE}`);
  }
  const quiet = { stdio: ['ignore', 'ignore', 'inherit'] };
  try {
    execFileSync('apt-get', ['update'], quiet);
    execFileSync('apt-get', ['install', '-y', PACKAGE], { ...quiet, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  } catch (e) {
    fail(`apt-get install ${PACKAGE} failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!existsSync(TARBALL)) fail(`${PACKAGE} is installed but ${TARBALL} is still missing`);
  return true;
}

function tarballId() {
  const st = statSync(TARBALL);
  return { tarball: TARBALL, size: st.size, mtimeMs: Math.trunc(st.mtimeMs) };
}

function readStamp() {
  try {
    return JSON.parse(readFileSync(stampPath, 'utf8'));
  } catch {
    return null;
  }
}

function kernelVersion(dir) {
  const mk = readFileSync(join(dir, 'Makefile'), 'utf8');
  const get = (k) => new RegExp(`^${k}\\s*=\\s*(\\S*)`, 'm').exec(mk)?.[1] ?? '?';
  return `${get('VERSION')}.${get('PATCHLEVEL')}.${get('SUBLEVEL')}`;
}

const installed = ensureTarball();
const id = tarballId();
const stamp = readStamp();
const headers = ['iommufd.h', 'vfio.h'].map((h) => join(dest, 'include', 'uapi', 'linux', h));
if (
  stamp &&
  stamp.size === id.size &&
  stamp.mtimeMs === id.mtimeMs &&
  headers.every((h) => existsSync(h))
) {
  console.log(`setup-test-env: Linux ${stamp.version} uapi headers already in ${dest}`);
  process.exit(0);
}

// Extract into a scratch directory, then swap it in, so an interrupted run leaves no half tree.
const scratch = `${dest}.tmp-${process.pid}`;
rmSync(scratch, { recursive: true, force: true });
mkdirSync(scratch, { recursive: true });
try {
  execFileSync('tar', ['-xJf', TARBALL, '-C', scratch, '--strip-components=1', ...MEMBERS], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
} catch (e) {
  rmSync(scratch, { recursive: true, force: true });
  fail(`extracting ${MEMBERS.join(' ')} from ${TARBALL} failed: ${e instanceof Error ? e.message : String(e)}`);
}
const version = kernelVersion(scratch);
writeFileSync(join(scratch, '.stamp.json'), `${JSON.stringify({ ...id, version, members: MEMBERS }, null, 2)}\n`);
rmSync(dest, { recursive: true, force: true });
mkdirSync(dirname(dest), { recursive: true });
renameSync(scratch, dest);
console.log(
  `setup-test-env: ${installed ? `installed ${PACKAGE}, ` : ''}extracted Linux ${version} include/uapi from ${TARBALL} into ${dest}`,
);
