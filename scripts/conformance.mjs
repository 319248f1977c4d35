#!/usr/bin/env node
// The kernel's own IOMMUFD selftests as the emulator's conformance suite.
//
// 1. Extract tools/testing/selftests/iommu/ and what it includes from Debian's linux-source-6.12
//    into .cache/conformance/linux-6.12 (once per tarball), and install the two uapi headers it
//    needs as `make headers_install` would (.cache/conformance/include/linux/).
// 2. Build `iommufd` and `iommufd_fail_nth` from the UNMODIFIED sources with the selftest
//    Makefile's flags, plus `-include test/conformance/compat.h` (the post-6.12 symbols the
//    backported tests use; see that file). Rebuilt only when an input changes.
// 3. Run each under `iommufd-emu run --root` (the oracle guest runs them as root), parse the
//    kselftest TAP into per-case results FIXTURE[.VARIANT].TEST -> pass/fail/skip, and print them
//    beside the real 6.12 kernel's (test/conformance/oracle-6.12.txt) with a per-fixture/variant
//    table and a last line `conformance: N of M cases pass; floor ...`.
// 4. Floor: every case in test/conformance/floor.txt must still pass (exit 1 otherwise). New
//    passes are listed; --update-floor adds them to the file.
//
// --record-oracle rebuilds the binaries statically and runs them on the real kernel
// (../shared/oracle/run.sh) to rewrite oracle-6.12.txt. --verbose echoes the binaries' output.
// --timeout=SECONDS bounds one test case (default 90; the harness's own limit is 30 s).

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { aptInstall, ensureTarball, extractMembers } from './lib/linux-source.mjs';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const cache = join(repo, '.cache', 'conformance');
const tree = join(cache, 'linux-6.12');
const includeDir = join(cache, 'include');
const compat = join(repo, 'test', 'conformance', 'compat.h');
const floorPath = join(repo, 'test', 'conformance', 'floor.txt');
const oraclePath = join(repo, 'test', 'conformance', 'oracle-6.12.txt');
const cli = join(repo, 'dist', 'src', 'cli', 'main.js');
const oracleRun = join(repo, '..', 'shared', 'oracle', 'run.sh');

const SELFTESTS = 'tools/testing/selftests';
const MEMBERS = [
  `${SELFTESTS}/iommu`,
  `${SELFTESTS}/kselftest.h`,
  `${SELFTESTS}/kselftest_harness.h`,
  'drivers/iommu/iommufd/iommufd_test.h',
  'include/uapi/linux/iommufd.h',
  'include/uapi/linux/vfio.h',
];
const UAPI_HEADERS = ['iommufd.h', 'vfio.h'];
const BINARIES = ['iommufd', 'iommufd_fail_nth'];
/** Timed-out cases after which a binary's remaining cases are given up (keeps CI bounded). */
const MAX_KILLS = 3;
// tools/testing/selftests/iommu/Makefile (CFLAGS), lib.mk (-D_GNU_SOURCE=, KHDR_INCLUDES).
const CFLAGS = ['-Wall', '-O2', '-Wno-unused-function', '-D_GNU_SOURCE='];

const opts = {
  updateFloor: process.argv.includes('--update-floor'),
  recordOracle: process.argv.includes('--record-oracle'),
  verbose: process.argv.includes('--verbose'),
  timeout: Number(process.argv.find((a) => a.startsWith('--timeout='))?.slice(10) ?? 90),
};
for (const a of process.argv.slice(2)) {
  if (!['--update-floor', '--record-oracle', '--verbose'].includes(a) && !a.startsWith('--timeout=')) {
    fail(`unknown option ${a}\nusage: node scripts/conformance.mjs [--update-floor] [--record-oracle] [--verbose] [--timeout=SECONDS]`);
  }
}

function fail(msg) {
  process.stderr.write(`conformance: ${msg}\n`);
  process.exit(2);
}

const log = (line = '') => process.stdout.write(`${line}\n`);

// ---------------------------------------------------------------------------------------------
// Sources and build

/** headers_install's sed (scripts/headers_install.sh): strip the kernel-only annotations. */
function headersInstall(text) {
  return text
    .replace(/([\s(])(__user|__force|__iomem)[ \t]/g, '$1')
    .replace(/__attribute_const__([ \t]|$)/gm, '$1')
    .replace(/^#include <linux\/compiler(|_types)\.h>/gm, '')
    .replace(/(^|[^a-zA-Z0-9])__packed([^a-zA-Z0-9_]|$)/gm, '$1__attribute__((packed))$2')
    .replace(/(^|[\s(])(inline|asm|volatile)([\s(]|$)/gm, '$1__$2__$3')
    .replace(/#(ifndef|define|endif[ \t]*\/[*])[ \t]*_UAPI/g, '#$1 ');
}

function prepareSources() {
  ensureTarball(fail);
  const expect = [...MEMBERS.slice(1), `${SELFTESTS}/iommu/iommufd.c`, `${SELFTESTS}/iommu/iommufd_fail_nth.c`];
  const { extracted, version } = extractMembers(tree, MEMBERS, expect, fail);
  mkdirSync(join(includeDir, 'linux'), { recursive: true });
  for (const h of UAPI_HEADERS) {
    const out = headersInstall(readFileSync(join(tree, 'include', 'uapi', 'linux', h), 'utf8'));
    const dest = join(includeDir, 'linux', h);
    if (!existsSync(dest) || readFileSync(dest, 'utf8') !== out) writeFileSync(dest, out);
  }
  log(`conformance: Linux ${version} selftests ${extracted ? 'extracted into' : 'already in'} ${tree}`);
}

/** Build one selftest binary unless its inputs are unchanged; returns its path. */
function build(name, { statik = false } = {}) {
  const dir = join(tree, SELFTESTS, 'iommu');
  const src = join(dir, `${name}.c`);
  const out = join(cache, statik ? 'static' : 'bin', name);
  // Compiled from its directory, as the selftest Makefile does, so assertions name `iommufd.c:LINE`.
  const args = [...CFLAGS, ...(statik ? ['-static'] : []), '-isystem', includeDir, '-include', compat, '-o', out, `${name}.c`];
  const inputs = [
    src,
    join(dir, 'iommufd_utils.h'),
    join(tree, SELFTESTS, 'kselftest.h'),
    join(tree, SELFTESTS, 'kselftest_harness.h'),
    join(tree, 'drivers', 'iommu', 'iommufd', 'iommufd_test.h'),
    ...UAPI_HEADERS.map((h) => join(includeDir, 'linux', h)),
    compat,
  ];
  const hash = createHash('sha256').update(args.join('\0'));
  for (const f of inputs) hash.update(readFileSync(f));
  const digest = hash.digest('hex');
  const stamp = `${out}.stamp`;
  if (existsSync(out) && existsSync(stamp) && readFileSync(stamp, 'utf8') === digest) return out;
  mkdirSync(dirname(out), { recursive: true });
  try {
    const warnings = execFileSync('gcc', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    if (warnings) process.stderr.write(warnings);
  } catch (e) {
    fail(`gcc ${args.join(' ')} failed:\n${e.stderr ?? e.message}`);
  }
  writeFileSync(stamp, digest);
  log(`conformance: built ${out}`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// kselftest output

/**
 * Results from kselftest_harness.h TAP: `ok N NAME`, `ok N NAME # SKIP why`, `not ok N NAME`
 * (ksft_test_result_code; XFAIL counts as a pass, XPASS as a failure). A case's complaint is the
 * first `# FILE:LINE:TEST:...` assertion after its ` RUN ` line, else the harness's last
 * `# TEST: ...` note (e.g. `Test terminated by timeout`), else the TAP line.
 */
function parseKselftest(text) {
  const results = new Map();
  let assertion = null;
  let note = null;
  for (const line of text.split('\n')) {
    if (/^# +RUN +\S+ \.\.\.$/.test(line)) {
      assertion = note = null;
    } else if (/^# \S+:\d+:/.test(line)) {
      assertion ??= line.slice(2);
    } else if (/^# \S+: /.test(line)) {
      note = line.slice(2);
    }
    const m = /^(ok|not ok) \d+ (\S+)(?: # (\w+))?/.exec(line);
    if (!m) continue;
    const [, code, name, directive] = m;
    const result = code === 'not ok' || directive === 'XPASS' ? 'fail' : directive === 'SKIP' ? 'skip' : 'pass';
    results.set(name, { result, detail: result === 'pass' ? '' : assertion ?? note ?? line });
    assertion = note = null;
  }
  return results;
}

/**
 * Case names from `BINARY -l` (kselftest_harness.h test_harness_list_tests): per fixture, rows of
 * `%-20s %-25s %s` zipping the fixture name (first row only), its variants and its tests; the
 * cases are variants x tests, or the tests alone for a fixture without variants.
 */
function parseListing(text) {
  const fixtures = [];
  for (const line of text.split('\n')) {
    if (!line.trim() || line.startsWith('# FIXTURE') || line.startsWith('----')) continue;
    const f = line.startsWith(' ') ? '' : line.split(' ')[0];
    let rest = line.slice(Math.max(20, f.length) + 1);
    const v = rest.startsWith(' ') ? '' : rest.split(' ')[0];
    rest = rest.slice(Math.max(25, v.length) + 1);
    const t = rest.trim();
    if (f) fixtures.push({ name: f, variants: [], tests: [] });
    const cur = fixtures.at(-1);
    if (!cur) continue;
    if (v) cur.variants.push(v);
    if (t) cur.tests.push(t);
  }
  return fixtures.flatMap((f) =>
    (f.variants.length ? f.variants : ['']).flatMap((v) => f.tests.map((t) => (v ? `${f.name}.${v}.${t}` : `${f.name}.${t}`))),
  );
}

/** FIXTURE.VARIANT (or FIXTURE) of a case. */
const group = (name) => name.split('.').slice(0, -1).join('.');

// ---------------------------------------------------------------------------------------------
// Running under the emulator

/** Pids of every descendant of `pid` (from /proc), each after its parent. */
function descendants(pid) {
  const children = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  const out = [];
  const walk = (p) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

/**
 * One run of `bin` (restricted to `only` when given) under the emulator. A test case that runs
 * longer than the timeout has the whole run killed — the launcher and everything it started,
 * by pid — and is reported as failed.
 */
function runOnce(bin, only) {
  const args = [cli, 'run', '--root', '--', bin, ...(only ?? []).flatMap((c) => ['-r', c])];
  return new Promise((resolve) => {
    // One pipe for both streams: the harness reports on stdout, the assertions on stderr.
    const child = spawn('/bin/sh', ['-c', 'exec "$@" 2>&1', 'sh', process.execPath, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
      cwd: dirname(bin),
    });
    let out = '';
    let current = null;
    let timedOut = null;
    let killed = false;
    const kill = () => {
      killed = true;
      timedOut = current;
      for (const p of [child.pid, ...descendants(child.pid)]) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    };
    let timer = setTimeout(kill, opts.timeout * 1000);
    child.stdout.on('data', (d) => {
      const s = d.toString();
      out += s;
      if (opts.verbose) process.stdout.write(s);
      for (const m of s.matchAll(/^# +RUN +(\S+) \.\.\.$/gm)) {
        current = m[1];
        clearTimeout(timer);
        timer = setTimeout(kill, opts.timeout * 1000);
      }
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      appendFileSync(logPath(bin), `$ ${args.slice(1).join(' ')}\n${out}\n[exit ${code ?? signal}]\n`);
      const results = parseKselftest(out);
      if (timedOut && !results.has(timedOut)) {
        results.set(timedOut, { result: 'fail', detail: `no result within ${opts.timeout} s (killed)` });
      }
      resolve({ results, code, signal, killed, tail: out.trim().split('\n').slice(-2).join(' | ') });
    });
  });
}

/** Where the binary's output under the emulator is kept (the last run's). */
const logPath = (bin) => join(cache, 'logs', `${basename(bin)}.log`);

/** Every case of `bin` under the emulator; a run that dies part-way is resumed after its last case. */
async function runEmulated(bin) {
  mkdirSync(dirname(logPath(bin)), { recursive: true });
  rmSync(logPath(bin), { force: true });
  // `-l` lists to stderr and exits with KSFT_SKIP.
  const cases = parseListing(spawnSync(bin, ['-l'], { encoding: 'utf8' }).stderr ?? '');
  if (!cases.length) fail(`${bin} -l listed no test cases`);
  const results = new Map();
  const t0 = Date.now();
  let only = null;
  let kills = 0;
  for (;;) {
    const r = await runOnce(bin, only);
    if (r.killed) kills++;
    let progress = 0;
    for (const [c, v] of r.results) {
      if (results.has(c)) continue;
      results.set(c, v);
      progress++;
    }
    const left = cases.filter((c) => !results.has(c));
    if (!left.length) break;
    if (!progress || kills === MAX_KILLS) {
      const why = kills === MAX_KILLS ? `${kills} cases timed out, the rest were not run` : r.tail || `exit ${r.code ?? r.signal}`;
      for (const c of left) results.set(c, { result: 'fail', detail: `not run: ${why}` });
      break;
    }
    only = left;
  }
  return { cases, results, seconds: (Date.now() - t0) / 1000 };
}

const have = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

// ---------------------------------------------------------------------------------------------
// The oracle

function recordOracle() {
  if (!existsSync(oracleRun)) fail(`${oracleRun} is missing`);
  if (!have('qemu-system-x86_64') || !have('cpio') || !existsSync('/bin/busybox')) {
    if (process.getuid?.() !== 0) fail('the oracle needs: apt-get install -y qemu-system-x86 busybox-static cpio');
    aptInstall(['qemu-system-x86', 'busybox-static', 'cpio'], fail);
  }
  const lines = [];
  const summary = [];
  for (const name of BINARIES) {
    const bin = build(name, { statik: true });
    log(`conformance: running ${name} on the real 6.12 kernel (${oracleRun})`);
    let out;
    try {
      out = execFileSync(oracleRun, ['-t', '900', bin, '--', name], { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'inherit'] });
    } catch (e) {
      // The binary exits non-zero when a case fails; the output is what counts.
      out = e.stdout?.toString() ?? '';
    }
    const results = parseKselftest(out);
    if (!results.size) fail(`no results from ${name} on the oracle:\n${out}`);
    const pass = [...results.values()].filter((r) => r.result === 'pass').length;
    summary.push(`${name}: ${pass}/${results.size} pass`);
    for (const [c, r] of results) lines.push(`${c} ${r.result}`);
  }
  writeFileSync(
    oraclePath,
    [
      '# Per-case results of the Debian linux-source-6.12 IOMMUFD selftests (tools/testing/selftests/iommu,',
      '# built statically with test/conformance/compat.h) on the real Linux 6.12 kernel of',
      '# ../shared/oracle (run.sh: QEMU, IOMMUFD_TEST mock, failslab + fail_iommufd, 64 huge pages).',
      '# Rewritten by: npm run build && node scripts/conformance.mjs --record-oracle',
      `# ${summary.join('; ')}`,
      ...lines,
      '',
    ].join('\n'),
  );
  log(`conformance: wrote ${oraclePath} (${summary.join('; ')})`);
}

function readCaseFile(path) {
  if (!existsSync(path)) return new Map();
  const out = new Map();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const s = line.trim();
    if (!s || s.startsWith('#')) continue;
    const [name, result = 'pass'] = s.split(/\s+/);
    out.set(name, result);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const t0 = Date.now();
  prepareSources();
  if (opts.recordOracle) recordOracle();
  if (!existsSync(cli)) fail(`${cli} is missing; run npm run build first`);
  const oracle = readCaseFile(oraclePath);
  const floor = new Set(readCaseFile(floorPath).keys());

  const all = [];
  const results = new Map();
  for (const name of BINARIES) {
    const bin = build(name);
    const r = await runEmulated(bin);
    log(`\n${name}: ${r.cases.length} cases in ${r.seconds.toFixed(1)} s, output in ${logPath(bin)}`);
    log('  emulator, real 6.12, = when they agree');
    for (const c of r.cases) {
      if (results.has(c)) fail(`case ${c} appears in two binaries`);
      const res = r.results.get(c) ?? { result: 'fail', detail: 'no result' };
      results.set(c, res);
      all.push(c);
      const o = oracle.get(c) ?? '?';
      const same = o === res.result ? '=' : ' ';
      const detail = res.result === 'pass' ? '' : `  ${res.detail.length > 110 ? `${res.detail.slice(0, 109)}…` : res.detail}`;
      log(`  ${res.result.padEnd(4)} ${o.padEnd(4)} ${same} ${c}${detail}`);
    }
  }

  log('\nper fixture.variant: emulator passes/cases, real 6.12 passes, same result as 6.12');
  const groups = new Map();
  for (const c of all) {
    const g = groups.get(group(c)) ?? { cases: 0, pass: 0, oracle: 0, same: 0 };
    g.cases++;
    if (results.get(c).result === 'pass') g.pass++;
    if (oracle.get(c) === 'pass') g.oracle++;
    if (oracle.get(c) === results.get(c).result) g.same++;
    groups.set(group(c), g);
  }
  const width = Math.max(...[...groups.keys()].map((g) => g.length + 9));
  for (const [name, g] of groups) {
    log(`${`${name}: ${g.pass}/${g.cases}`.padEnd(width)}  6.12: ${g.oracle}/${g.cases}  same: ${g.same}/${g.cases}`);
  }

  const passed = all.filter((c) => results.get(c).result === 'pass');
  const skipped = all.filter((c) => results.get(c).result === 'skip');
  const same = all.filter((c) => oracle.get(c) === results.get(c).result);
  log(`\noracle: ${same.length}/${all.length} cases give the real 6.12 kernel's result${oracle.size ? '' : ` (no ${oraclePath})`}`);
  if (skipped.length) log(`skipped (counted as not passed): ${skipped.join(' ')}`);

  const regressed = [...floor].filter((c) => results.get(c)?.result !== 'pass');
  const fresh = passed.filter((c) => !floor.has(c));
  if (regressed.length) {
    log(`\nFLOOR BROKEN: ${regressed.length} case(s) in ${floorPath} no longer pass:`);
    for (const c of regressed) log(`  ${c}: ${results.get(c)?.detail ?? 'not run'}`);
  } else {
    log(`floor: all ${floor.size} cases of ${basename(floorPath)} pass`);
  }
  if (fresh.length) {
    if (opts.updateFloor) {
      const next = [...new Set([...floor, ...fresh])].sort();
      writeFileSync(floorPath, `${next.join('\n')}\n`);
      log(`floor: added ${fresh.length} new pass(es) to ${floorPath}`);
    } else {
      log(`new passes not in the floor (record them with --update-floor): ${fresh.join(' ')}`);
    }
  }
  log(`time: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  // Not the 'N passed, N failed' shape: cases the emulator cannot run yet are expected to fail,
  // and CI judges this step by the floor (the exit code), not by that count.
  log(`conformance: ${passed.length} of ${all.length} cases pass; floor ${regressed.length ? 'BROKEN' : `of ${floor.size} held`}`);
  return regressed.length ? 1 : 0;
}

process.exitCode = await main();
