/**
 * Benchmark: the cost of one IOMMU_IOAS_MAP + IOMMU_IOAS_UNMAP pair (one 4 KiB page at a
 * kernel-chosen IOVA) through the in-process ioctl path, in an IOAS already holding 1 000, 100 000
 * and 1 000 000 mappings. DESIGN.md asks for flat per-operation costs from 1 k to 1 M mappings;
 * the final ratio (1M / 1k) says how close we are.
 *
 * The IOAS has no domain, so nothing is pinned: this measures the IOVA allocator, the area tree
 * and the ioctl path, not page pinning. No tracer is subscribed, so no trace events are built.
 *
 * The existing mappings are made through the io_pagetable engine (`iopt.mapUserPages`), exactly
 * what the ioctl handler calls after decoding its struct: building a million through the ioctl
 * path would add ~10 s of struct encoding to every run and measure nothing extra. Pass `--build
 * ioctl` to build them through ioctls anyway. The measured operations always go through ioctls.
 *
 *   npm run bench                      # 1k, 100k, 1M
 *   node dist/bench/map_unmap.js --sizes 1000,100000 --ops 5000
 */

import {
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_IOAS_UNMAP,
  Machine,
  type Process,
  iommu_ioas_alloc,
  iommu_ioas_map,
  iommu_ioas_unmap,
} from '../src/index.js';
import type { IommufdIoas } from '../src/kernel/iommufd/ioas.js';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE } from '../src/kernel/iommufd/io_pagetable.js';
import type { IommufdCtx } from '../src/kernel/iommufd/object.js';
import { IoptPages } from '../src/kernel/iommufd/pages.js';

const PAGE = 4096n;

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}

const SIZES = arg('sizes', '1000,100000,1000000').split(',').map(Number);
const OPS = Number(arg('ops', '20000'));
const ROUNDS = Number(arg('rounds', '3'));
const BUILD = arg('build', 'engine');

interface Bench {
  p: Process;
  fd: number;
  ioas: IommufdIoas;
  buf: bigint;
  mapBytes: Uint8Array;
  unmapBytes: Uint8Array;
  mapped: number;
}

function setup(): Bench {
  const m = new Machine();
  const p = m.spawn();
  const fd = p.openOrThrow('/dev/iommu');
  const alloc = iommu_ioas_alloc.encode({ size: iommu_ioas_alloc.size });
  p.ioctlOrThrow(fd, IOMMU_IOAS_ALLOC, alloc);
  const id = iommu_ioas_alloc.decode(alloc).out_ioas_id;
  const ioas = (p.fget(fd).priv as IommufdCtx).peek(id) as IommufdIoas;
  const buf = p.mmapOrThrow(PAGE);
  const mapBytes = iommu_ioas_map.encode({
    size: iommu_ioas_map.size,
    flags: IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
    ioas_id: id,
    user_va: buf,
    length: PAGE,
  });
  const unmapBytes = iommu_ioas_unmap.encode({ size: iommu_ioas_unmap.size, ioas_id: id, length: PAGE });
  return { p, fd, ioas, buf, mapBytes, unmapBytes, mapped: 0 };
}

/** Grow the IOAS to `n` mappings of the same page at kernel-chosen IOVAs. */
function grow(b: Bench, n: number): void {
  const prot = IOMMU_CACHE | IOMMU_READ | IOMMU_WRITE;
  for (; b.mapped < n; b.mapped++) {
    if (BUILD === 'ioctl') b.p.ioctlOrThrow(b.fd, IOMMU_IOAS_MAP, b.mapBytes);
    else b.ioas.iopt.mapUserPages(b.p, IoptPages.alloc(b.p, b.buf, PAGE, true), b.buf, PAGE, null, prot);
  }
  if (b.ioas.iopt.areas.size !== n) throw new Error(`expected ${n} areas, have ${b.ioas.iopt.areas.size}`);
}

const IOVA_AT = iommu_ioas_map.offsetOf('iova');
const UNMAP_IOVA_AT = iommu_ioas_unmap.offsetOf('iova');

/** `ops` MAP+UNMAP pairs through the ioctl path; returns mean ns per pair, per MAP, per UNMAP. */
function measure(b: Bench, ops: number): { pair: number; map: number; unmap: number } {
  const mv = new DataView(b.mapBytes.buffer, b.mapBytes.byteOffset, b.mapBytes.byteLength);
  const uv = new DataView(b.unmapBytes.buffer, b.unmapBytes.byteOffset, b.unmapBytes.byteLength);
  let mapNs = 0n;
  let unmapNs = 0n;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) {
    const a = process.hrtime.bigint();
    if (b.p.ioctl(b.fd, IOMMU_IOAS_MAP, b.mapBytes).errno) throw new Error('IOAS_MAP failed');
    const m = process.hrtime.bigint();
    uv.setBigUint64(UNMAP_IOVA_AT, mv.getBigUint64(IOVA_AT, true), true);
    const u = process.hrtime.bigint();
    if (b.p.ioctl(b.fd, IOMMU_IOAS_UNMAP, b.unmapBytes).errno) throw new Error('IOAS_UNMAP failed');
    const e = process.hrtime.bigint();
    mapNs += m - a;
    unmapNs += e - u;
  }
  const total = process.hrtime.bigint() - t0;
  return { pair: Number(total) / ops, map: Number(mapNs) / ops, unmap: Number(unmapNs) / ops };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

const b = setup();
const rows: { size: number; pair: number; map: number; unmap: number; buildMs: number }[] = [];
for (const size of SIZES) {
  const t = performance.now();
  grow(b, size);
  const buildMs = performance.now() - t;
  measure(b, Math.min(OPS, 2000)); // warm up at this size
  const runs = Array.from({ length: ROUNDS }, () => measure(b, OPS));
  rows.push({ size, buildMs, pair: median(runs.map((r) => r.pair)), map: median(runs.map((r) => r.map)), unmap: median(runs.map((r) => r.unmap)) });
  if (b.ioas.iopt.areas.size !== size) throw new Error('the measured operations leaked areas');
}

const out = (s: string): void => void process.stdout.write(`${s}\n`);
out(`IOAS_MAP + IOAS_UNMAP of one 4 KiB page, auto IOVA, no domain; ${OPS} ops x ${ROUNDS} rounds (median), build via ${BUILD}`);
out('');
out(`${'mappings'.padStart(10)}  ${'ns/op (pair)'.padStart(12)}  ${'MAP ns'.padStart(8)}  ${'UNMAP ns'.padStart(8)}  ${'build ms'.padStart(9)}`);
for (const r of rows) out(`${fmt(r.size).padStart(10)}  ${fmt(r.pair).padStart(12)}  ${fmt(r.map).padStart(8)}  ${fmt(r.unmap).padStart(8)}  ${fmt(r.buildMs).padStart(9)}`);
const first = rows[0]!;
const last = rows[rows.length - 1]!;
const ratio = last.pair / first.pair;
out('');
out(`heap used: ${fmt(process.memoryUsage().heapUsed / 2 ** 20)} MiB`);
out(`map_unmap: ${rows.map((r) => `${fmt(r.size)}=${fmt(r.pair)}ns`).join(' ')} ratio ${fmt(last.size)}/${fmt(first.size)}=${ratio.toFixed(2)}`);
