/**
 * Benchmark: one ioctl's round trip through the preload shim and the daemon (a C program timing
 * IOMMU_OPTION GET with clock_gettime), next to the same ioctl issued in-process, in one run.
 *
 *   npm run bench:shim            # 20 000 calls each
 */

import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IOMMU_IOAS_ALLOC, IOMMU_OPTION, IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, Machine, iommu_ioas_alloc, iommu_option } from '../src/index.js';

const N = Number(process.argv[2] ?? 20000);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function inProcess(): [number, number] {
  const m = new Machine();
  const p = m.spawn();
  const fd = p.openOrThrow('/dev/iommu');
  const a = iommu_ioas_alloc.encode({ size: iommu_ioas_alloc.size });
  p.ioctlOrThrow(fd, IOMMU_IOAS_ALLOC, a);
  const o = iommu_option.encode({ size: iommu_option.size, option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET, object_id: iommu_ioas_alloc.decode(a).out_ioas_id });
  const t: number[] = [];
  for (let i = 0; i < N; i++) {
    const s = process.hrtime.bigint();
    p.ioctlOrThrow(fd, IOMMU_OPTION, o);
    t.push(Number(process.hrtime.bigint() - s));
  }
  t.sort((x, y) => x - y);
  return [t[N >> 1]!, t[Math.floor((N * 99) / 100)]!];
}

async function throughShim(): Promise<[number, number]> {
  const work = mkdtempSync(join(tmpdir(), 'iommufd-emu-bench-'));
  try {
    mkdirSync(join(work, 'linux'));
    copyFileSync(join(root, '.cache', 'linux-6.12', 'include', 'uapi', 'linux', 'iommufd.h'), join(work, 'linux', 'iommufd.h'));
    const prog = join(work, 'ioctl_latency');
    execFileSync('cc', ['-O2', '-D__user=', '-I', work, '-o', prog, join(root, 'bench', 'progs', 'ioctl_latency.c')]);
    const child = spawn(process.execPath, [join(root, 'dist', 'src', 'cli', 'main.js'), 'run', '--', prog, String(N)]);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((ok) => child.on('exit', ok));
    if (code !== 0) throw new Error(`ioctl_latency exited ${code}`);
    const [p50, p99] = out.trim().split(/\s+/).map(Number);
    return [p50!, p99!];
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const [ip50, ip99] = inProcess();
const [sp50, sp99] = await throughShim();
const us = (ns: number): string => (ns / 1000).toFixed(1).padStart(8);
console.log(`IOMMU_OPTION GET round trip, ${N} calls each\n`);
console.log('                 p50 µs    p99 µs');
console.log(`in-process    ${us(ip50)}  ${us(ip99)}`);
console.log(`through shim  ${us(sp50)}  ${us(sp99)}`);
console.log(`\nshim_latency: p50 ratio shim/in-process=${(sp50 / ip50).toFixed(1)} p99 ratio=${(sp99 / ip99).toFixed(1)}`);
