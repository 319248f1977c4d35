/**
 * Differential test against the real kernel: test/oracle/vfio_compat.c ran on the oracle (Linux
 * 6.12.117) and printed vfio_compat.expected. The same program against the in-process API must
 * print the same lines, capability-chain bytes included.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  IOMMU_IOAS_ALLOC,
  IOMMU_VFIO_IOAS,
  IOMMU_VFIO_IOAS_SET,
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_CC_IOMMU,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_GET_API_VERSION,
  VFIO_IOMMU_DIRTY_PAGES,
  VFIO_IOMMU_ENABLE,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_SET_IOMMU,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  iommu_ioas_alloc,
  iommu_vfio_ioas,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info,
  type SysResult,
} from '../src/index.js';
import { checkedMachine, oracleLines, probeLine } from './helpers.js';

function dump(what: string, b: Uint8Array, n: number): string {
  let s = `${what}:`;
  for (let i = 0; i < n; i++) s += `${i % 8 ? '' : ' '}${b[i]!.toString(16).padStart(2, '0')}`;
  return s;
}

function run(): string[] {
  const out: string[] = [];
  const m = checkedMachine();
  const p = m.spawn();
  const R = (name: string, r: SysResult): void => {
    out.push(probeLine(name, 30, r));
  };
  const fd = p.openOrThrow('/dev/iommu');
  R('api version', p.ioctl(fd, VFIO_GET_API_VERSION));
  for (let e = 0n; e <= 10n; e++) R(`check ext ${e}`, p.ioctl(fd, VFIO_CHECK_EXTENSION, e));
  const info = vfio_iommu_type1_info.encode({ argsz: vfio_iommu_type1_info.size });
  R('get_info no ioas', p.ioctl(fd, VFIO_IOMMU_GET_INFO, info));
  R('set_iommu no ioas', p.ioctl(fd, VFIO_SET_IOMMU, BigInt(VFIO_TYPE1v2_IOMMU)));
  R('set_iommu bad type', p.ioctl(fd, VFIO_SET_IOMMU, 7n));
  const a = iommu_ioas_alloc.encode({ size: iommu_ioas_alloc.size });
  R('alloc', p.ioctl(fd, IOMMU_IOAS_ALLOC, a));
  const ioas = iommu_ioas_alloc.decode(a).out_ioas_id;
  R('vfio_ioas set', p.ioctl(fd, IOMMU_VFIO_IOAS, iommu_vfio_ioas.encode({ size: iommu_vfio_ioas.size, ioas_id: ioas, op: IOMMU_VFIO_IOAS_SET })));
  R('check ext DMA_CC', p.ioctl(fd, VFIO_CHECK_EXTENSION, BigInt(VFIO_DMA_CC_IOMMU)));
  R('set_iommu v2', p.ioctl(fd, VFIO_SET_IOMMU, BigInt(VFIO_TYPE1v2_IOMMU)));
  R('get_info argsz 15', p.ioctl(fd, VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info.encode({ argsz: 15 })));
  const getInfo = (argsz: number): [SysResult, Uint8Array] => {
    const buf = new Uint8Array(256).fill(0xee);
    new DataView(buf.buffer).setUint32(0, argsz, true);
    return [p.ioctl(fd, VFIO_IOMMU_GET_INFO, buf), buf];
  };
  for (const [argsz, n, name] of [[16, 32, 'info16'], [40, 80, 'info40'], [256, 80, 'info256']] as const) {
    const [r, buf] = getInfo(argsz);
    R(`get_info argsz ${argsz}`, r);
    out.push(dump(name, buf, n));
  }
  const mem = p.mmapOrThrow(1n << 20n);
  const dm = { argsz: vfio_iommu_type1_dma_map.size, flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE, vaddr: mem, iova: 0x100000n, size: 0x4000n };
  const mapDma = (name: string): void => R(name, p.ioctl(fd, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map.encode(dm)));
  mapDma('map_dma');
  mapDma('map_dma overlap');
  dm.flags = 4;
  mapDma('map_dma vaddr flag');
  Object.assign(dm, { flags: 0, iova: 0x200000n });
  mapDma('map_dma no prot');
  Object.assign(dm, { argsz: 31, iova: 0x300000n });
  mapDma('map_dma argsz 31');
  const du = { argsz: vfio_iommu_type1_dma_unmap.size, flags: 0, iova: 0x101000n, size: 0x1000n };
  const unmapDma = (name: string, showSize = true): void => {
    const b = vfio_iommu_type1_dma_unmap.encode(du);
    R(name, p.ioctl(fd, VFIO_IOMMU_UNMAP_DMA, b));
    du.size = vfio_iommu_type1_dma_unmap.decode(b).size;
    if (showSize) out.push(`size=0x${du.size.toString(16)}`);
  };
  unmapDma('unmap_dma middle v2');
  Object.assign(du, { iova: 0x900000n, size: 0x1000n });
  unmapDma('unmap_dma nothing');
  Object.assign(du, { iova: 0x100000n, size: 0x4000n });
  unmapDma('unmap_dma whole');
  Object.assign(du, { iova: 0x100000n, size: 0n });
  unmapDma('unmap_dma size 0');
  Object.assign(du, { flags: VFIO_DMA_UNMAP_FLAG_ALL, iova: 1n, size: 0n });
  unmapDma('unmap_all iova 1', false);
  du.iova = 0n;
  unmapDma('unmap_all');
  du.flags = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
  unmapDma('unmap dirty flag', false);
  R('set_iommu v1', p.ioctl(fd, VFIO_SET_IOMMU, BigInt(VFIO_TYPE1_IOMMU)));
  Object.assign(dm, { argsz: vfio_iommu_type1_dma_map.size, flags: VFIO_DMA_MAP_FLAG_READ, iova: 0x100000n, size: 0x4000n });
  mapDma('map_dma v1');
  Object.assign(du, { flags: 0, iova: 0x101000n, size: 0x1000n });
  unmapDma('unmap_dma middle v1');
  Object.assign(du, { iova: 0x100000n, size: 0x4000n });
  unmapDma('unmap_dma rest v1');
  R('dirty pages', p.ioctl(fd, VFIO_IOMMU_DIRTY_PAGES, vfio_iommu_type1_dma_unmap.encode(du)));
  R('enable (spapr)', p.ioctl(fd, VFIO_IOMMU_ENABLE));
  const [r, buf] = getInfo(256);
  R('get_info v1', r);
  out.push(dump('infov1', buf, 24));
  return out;
}

test('VFIO container ioctls on an iommufd answer exactly as the 6.12 kernel did (oracle-measured)', () => {
  assert.deepEqual(run(), oracleLines('vfio_compat'));
});
