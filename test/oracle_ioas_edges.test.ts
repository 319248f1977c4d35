/**
 * Differential test against the real kernel: test/oracle/ioas_edges.c was run on the oracle
 * (Linux 6.12.117, ../shared/oracle/run.sh) and its output saved as ioas_edges.expected. This is
 * the same program written against the in-process API; its output must match line for line.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  IOMMU_DESTROY,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_ALLOW_IOVAS,
  IOMMU_IOAS_COPY,
  IOMMU_IOAS_IOVA_RANGES,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_IOAS_UNMAP,
  IOMMU_OPTION,
  IOMMU_OPTION_OP_GET,
  IOMMU_OPTION_OP_SET,
  IOMMU_OPTION_RLIMIT_MODE,
  _IO,
  iommu_destroy,
  iommu_ioas_alloc,
  iommu_ioas_allow_iovas,
  iommu_ioas_copy,
  iommu_ioas_iova_ranges,
  iommu_ioas_map,
  iommu_ioas_unmap,
  iommu_iova_range,
  iommu_option,
  type SysResult,
} from '../src/index.js';
import { checkedMachine, oracleLines, probeLine } from './helpers.js';

function run(): string[] {
  const out: string[] = [];
  const m = checkedMachine();
  const p = m.spawn();
  const R = (name: string, r: SysResult): void => {
    out.push(probeLine(name, 28, r));
  };
  const x = (v: bigint): string => `0x${v.toString(16)}`;
  const fd = p.openOrThrow('/dev/iommu');
  out.push(`fd=${fd}`);
  const a = iommu_ioas_alloc.encode({ size: iommu_ioas_alloc.size });
  R('alloc', p.ioctl(fd, IOMMU_IOAS_ALLOC, a));
  const ioas = iommu_ioas_alloc.decode(a).out_ioas_id;
  out.push(`ioas=${ioas}`);
  const mp = { size: iommu_ioas_map.size, flags: IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE, ioas_id: ioas, user_va: 0x12345000n, length: 0x2000n };
  const doMap = (name: string): void => {
    const b = iommu_ioas_map.encode(mp);
    R(name, p.ioctl(fd, IOMMU_IOAS_MAP, b));
    out.push(`iova=${x(iommu_ioas_map.decode(b).iova)}`);
  };
  doMap('map unmapped va auto');
  const buf = p.mmapOrThrow(1n << 20n);
  Object.assign(mp, { user_va: buf + 0x800n, length: 0x1000n });
  doMap('map offset 0x800 auto');
  Object.assign(mp, { user_va: buf, length: 0x10000n });
  doMap('map 64k auto');
  Object.assign(mp, { user_va: buf + 0x3000n, length: 0x3000n });
  doMap('map 12k at +0x3000 auto');
  const u = iommu_ioas_unmap.encode({ size: iommu_ioas_unmap.size, ioas_id: ioas, iova: 0x800000n, length: 0x1000n });
  R('unmap nothing', p.ioctl(fd, IOMMU_IOAS_UNMAP, u));
  const r = iommu_ioas_iova_ranges.encode({ size: iommu_ioas_iova_ranges.size, ioas_id: ioas });
  R('iova_ranges num0', p.ioctl(fd, IOMMU_IOAS_IOVA_RANGES, r));
  const rv = iommu_ioas_iova_ranges.decode(r);
  out.push(`num=${rv.num_iovas} align=${rv.out_iova_alignment}`);
  const o = iommu_option.encode({ size: iommu_option.size, option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 1n });
  R('rlimit set busy', p.ioctl(fd, IOMMU_OPTION, o));
  const og = iommu_option.encode({ size: iommu_option.size, option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET, val64: 77n });
  R('rlimit get', p.ioctl(fd, IOMMU_OPTION, og));
  out.push(`val=${iommu_option.decode(og).val64}`);
  const big = new Uint8Array(48);
  big.set(a);
  new DataView(big.buffer).setUint32(0, 13, true);
  big[12] = 1;
  R('alloc size13 nonzero', p.ioctl(fd, IOMMU_IOAS_ALLOC, big));
  big[12] = 0;
  R('alloc size13 zero', p.ioctl(fd, IOMMU_IOAS_ALLOC, big));
  const id2 = iommu_ioas_alloc.decode(big).out_ioas_id;
  out.push(`id=${id2}`);
  R('nr 0x8f', p.ioctl(fd, _IO(0x3b, 0x8f), a));
  R('nr 0xa1', p.ioctl(fd, _IO(0x3b, 0xa1), a));
  R('nr 0x7f', p.ioctl(fd, _IO(0x3b, 0x7f), a));
  R('bad ptr 0x85', p.ioctl(fd, IOMMU_IOAS_MAP, 8n));
  R('bad ptr 0x8f', p.ioctl(fd, _IO(0x3b, 0x8f), 8n));
  const c = iommu_ioas_copy.encode({ size: iommu_ioas_copy.size, flags: IOMMU_IOAS_MAP_READABLE, dst_ioas_id: id2, src_ioas_id: ioas, length: 0x1000n, src_iova: 0x3000n });
  R('copy subrange', p.ioctl(fd, IOMMU_IOAS_COPY, c));
  out.push(`dst_iova=${x(iommu_ioas_copy.decode(c).dst_iova)}`);
  const ranges = p.mmapOrThrow(0x1000n);
  p.poke(ranges, iommu_iova_range.encode({ start: 0x10000n, last: 0x10000n }));
  R('allow start==last', p.ioctl(fd, IOMMU_IOAS_ALLOW_IOVAS, iommu_ioas_allow_iovas.encode({ size: iommu_ioas_allow_iovas.size, ioas_id: ioas, num_iovas: 1, allowed_iovas: ranges })));
  R('destroy busy ioas w/ maps', p.ioctl(fd, IOMMU_DESTROY, iommu_destroy.encode({ size: iommu_destroy.size, id: ioas })));
  R('destroy 0', p.ioctl(fd, IOMMU_DESTROY, iommu_destroy.encode({ size: iommu_destroy.size, id: 0 })));
  const ua = iommu_ioas_unmap.encode({ size: iommu_ioas_unmap.size, ioas_id: 2, iova: 0n, length: (1n << 64n) - 1n });
  R('unmap all ioas2', p.ioctl(fd, IOMMU_IOAS_UNMAP, ua));
  out.push(`len=${x(iommu_ioas_unmap.decode(ua).length)}`);
  R('unmap all ioas2 again', p.ioctl(fd, IOMMU_IOAS_UNMAP, ua));
  out.push(`len=${x(iommu_ioas_unmap.decode(ua).length)}`);
  const a3 = iommu_ioas_alloc.encode({ size: iommu_ioas_alloc.size });
  R('alloc after destroy', p.ioctl(fd, IOMMU_IOAS_ALLOC, a3));
  out.push(`id=${iommu_ioas_alloc.decode(a3).out_ioas_id}`);
  return out;
}

test('IOAS edge cases answer exactly as the 6.12 kernel did (oracle-measured)', () => {
  assert.deepEqual(run(), oracleLines('ioas_edges'));
});

test('kernel-chosen IOVAs keep sub-page offsets exactly as 6.12 places them (oracle-measured, test/oracle/auto_iova.c)', () => {
  const m = checkedMachine();
  const p = m.spawn();
  const fd = p.openOrThrow('/dev/iommu');
  const a = iommu_ioas_alloc.encode({ size: iommu_ioas_alloc.size });
  p.ioctlOrThrow(fd, IOMMU_IOAS_ALLOC, a);
  const buf = p.mmapOrThrow(1n << 20n);
  const got: bigint[] = [];
  for (const [off, length] of [[0n, 0x100n], [0x200n, 0x100n], [0x10n, 0x30n], [0x800n, 0x900n], [0x1f00n, 0x200n]] as const) {
    const b = iommu_ioas_map.encode({ size: iommu_ioas_map.size, flags: IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE, ioas_id: iommu_ioas_alloc.decode(a).out_ioas_id, user_va: buf + off, length });
    p.ioctlOrThrow(fd, IOMMU_IOAS_MAP, b);
    got.push(iommu_ioas_map.decode(b).iova);
  }
  assert.deepEqual(got, [0x1000n, 0x1200n, 0x1110n, 0x1800n, 0x2f00n]);
});
