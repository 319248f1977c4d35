/**
 * Benchmark: device DMA through a simulated VT-d unit, against a plain Buffer copy of the same
 * size measured in the same run.
 *
 * A PCI device is bound to an iommufd context and attached to an IOAS (automatic domain); 1 MiB of
 * the process's memory is mapped at IOVA 0x100000. Measured:
 *   - dmaWrite / dmaRead of 4 KiB and 64 KiB (page-aligned, IOTLB warm), in MB/s, and the ratio to
 *     `Buffer.copy` of the same size between two plain buffers (how much the translation, the
 *     per-page frame lookup and the result object cost over a memcpy);
 *   - the translation rate on IOTLB hits: 4-byte reads cycling over 256 pages that all stay in
 *     the IOTLB (one translation per DMA), and on misses: the same on a unit whose IOTLB holds one
 *     entry, so every access walks the 4-level table.
 * Ratios come from one run and the machine it runs on; nothing is asserted.
 *
 *   npm run bench:dma
 *   node dist/bench/dma.js --ms 300 --rounds 5
 */

import { Machine, type Process, IOMMU_IOAS_ALLOC, IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE, iommu_ioas_alloc, iommu_ioas_map } from '../src/index.js';
import type { HwIommuOptions } from '../src/hw/iommu.js';
import type { PciDevice } from '../src/hw/pci.js';
import { deviceAttach, deviceBind } from '../src/kernel/iommufd/device.js';
import type { IommufdCtx } from '../src/kernel/iommufd/object.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}

const MS = Number(arg('ms', '250'));
const ROUNDS = Number(arg('rounds', '3'));
const IOVA = 0x100000n;
const SPAN = 1n << 20n;

interface Rig {
  m: Machine;
  p: Process;
  dev: PciDevice;
}

function rig(unit: HwIommuOptions): Rig {
  const m = new Machine();
  const p = m.spawn();
  const fd = p.openOrThrow('/dev/iommu');
  const alloc = iommu_ioas_alloc.encode({ size: iommu_ioas_alloc.size });
  p.ioctlOrThrow(fd, IOMMU_IOAS_ALLOC, alloc);
  const ioas = iommu_ioas_alloc.decode(alloc).out_ioas_id;
  const hw = m.addIommu(unit);
  const dev = m.addPciDevice({ bdf: '0000:00:03.0', iommu: hw });
  dev.bindDriver('vfio-pci', true);
  const ictx = p.fget(fd).priv as IommufdCtx;
  deviceAttach(deviceBind(ictx, p, dev), p, { id: ioas });
  const buf = p.mmapOrThrow(SPAN);
  p.ioctlOrThrow(
    fd,
    IOMMU_IOAS_MAP,
    iommu_ioas_map.encode({
      size: iommu_ioas_map.size,
      flags: IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
      ioas_id: ioas,
      user_va: buf,
      length: SPAN,
      iova: IOVA,
    }),
  );
  return { m, p, dev };
}

/** Run `fn` repeatedly for about MS milliseconds; returns operations per second (median of ROUNDS). */
function rate(fn: (i: number) => void): number {
  for (let i = 0; i < 2000; i++) fn(i);
  const runs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    let n = 0;
    const t0 = process.hrtime.bigint();
    const budget = BigInt(MS) * 1_000_000n;
    let t = t0;
    while (t - t0 < budget) {
      for (let k = 0; k < 256; k++) fn(n++);
      t = process.hrtime.bigint();
    }
    runs.push(n / (Number(t - t0) / 1e9));
  }
  return runs.sort((a, b) => a - b)[runs.length >> 1]!;
}

const out = (s: string): void => void process.stdout.write(`${s}\n`);
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const mbps = (ops: number, size: number): number => (ops * size) / 1e6;

const warm = rig({ profile: 'vtd' });
const cold = rig({ profile: 'vtd', iotlbEntries: 1 });
const pages = Number(SPAN >> 12n);

out(`DMA through a VT-d automatic domain (IOTLB 512 entries), ${ROUNDS} rounds x ${MS} ms, median`);
out('');
out(`${'transfer'.padEnd(16)} ${'DMA MB/s'.padStart(10)} ${'Buffer MB/s'.padStart(12)} ${'ratio'.padStart(7)}`);
const summary: string[] = [];
for (const size of [4096, 65536]) {
  const data = new Uint8Array(size).fill(0x5a);
  const span = Number(SPAN) / size;
  const w = rate((i) => {
    const r = warm.dev.dmaWrite(IOVA + BigInt((i % span) * size), data);
    if (!r.ok) throw new Error(`DMA write faulted: ${r.fault.detail}`);
  });
  const rd = rate((i) => {
    const r = warm.dev.dmaRead(IOVA + BigInt((i % span) * size), size);
    if (!r.ok) throw new Error(`DMA read faulted: ${r.fault.detail}`);
  });
  const dst0 = new Uint8Array(size);
  const ri = rate((i) => {
    const r = warm.dev.dmaReadInto(IOVA + BigInt((i % span) * size), dst0);
    if (!r.ok) throw new Error(`DMA read faulted: ${r.fault.detail}`);
  });
  const src = Buffer.alloc(size, 0x5a);
  const dst = Buffer.alloc(size);
  const copy = rate(() => void src.copy(dst));
  const label = size === 4096 ? '4 KiB' : '64 KiB';
  out(`${`${label} write`.padEnd(16)} ${fmt(mbps(w, size)).padStart(10)} ${fmt(mbps(copy, size)).padStart(12)} ${(copy / w).toFixed(1).padStart(7)}`);
  out(`${`${label} read`.padEnd(16)} ${fmt(mbps(rd, size)).padStart(10)} ${fmt(mbps(copy, size)).padStart(12)} ${(copy / rd).toFixed(1).padStart(7)}`);
  out(`${`${label} readInto`.padEnd(16)} ${fmt(mbps(ri, size)).padStart(10)} ${fmt(mbps(copy, size)).padStart(12)} ${(copy / ri).toFixed(1).padStart(7)}`);
  summary.push(`${label} write=${fmt(mbps(w, size))} read=${fmt(mbps(rd, size))} readInto=${fmt(mbps(ri, size))} copy=${fmt(mbps(copy, size))} MB/s (copy/DMA x${(copy / w).toFixed(1)}/x${(copy / rd).toFixed(1)}/x${(copy / ri).toFixed(1)})`);
}

const hit = rate((i) => {
  const r = warm.dev.dmaRead(IOVA + BigInt((i % 256) * 4096), 4);
  if (!r.ok) throw new Error('translation faulted');
});
const miss = rate((i) => {
  const r = cold.dev.dmaRead(IOVA + BigInt((i % 256) * 4096), 4);
  if (!r.ok) throw new Error('translation faulted');
});
const s = warm.dev.iommuUnit.iotlb.stats;
out('');
out(`translations (4-byte reads over 256 pages): IOTLB hit ${fmt(hit)}/s, miss+walk ${fmt(miss)}/s (walk costs x${(hit / miss).toFixed(1)})`);
out(`warm IOTLB: ${fmt(s.hits)} hits, ${fmt(s.misses)} misses over ${pages} mapped pages; cold IOTLB misses ${fmt(cold.dev.iommuUnit.iotlb.stats.misses)}`);
out(`dma: ${summary.join('; ')}; translate hit=${fmt(hit)}/s miss=${fmt(miss)}/s`);
