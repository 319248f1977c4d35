/**
 * `iommufd-emu demo`: a scripted session against /dev/iommu on the built-in machine. Each call is
 * printed from the trace as it happens — successes with their result, refusals with the errno and
 * the check that failed — so a reader sees both what the kernel answers and why.
 */

import { Machine } from '../kernel/machine.js';
import { PROT_READ, MAP_ANONYMOUS, MAP_PRIVATE } from '../kernel/mm/mm.js';
import { formatEvent } from '../kernel/trace.js';
import {
  IOMMU_DESTROY,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_ALLOW_IOVAS,
  IOMMU_IOAS_COPY,
  IOMMU_IOAS_IOVA_RANGES,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_IOAS_UNMAP,
  IOMMU_OPTION,
  IOMMU_OPTION_HUGE_PAGES,
  IOMMU_OPTION_OP_GET,
  iommu_destroy,
  iommu_ioas_alloc,
  iommu_ioas_allow_iovas,
  iommu_ioas_copy,
  iommu_ioas_iova_ranges,
  iommu_ioas_map,
  iommu_ioas_unmap,
  iommu_iova_range,
  iommu_option,
} from '../uapi/iommufd.js';

export function runDemo(write: (line: string) => void): number {
  const m = new Machine();
  m.tracer.subscribe((e) => {
    if (e.call !== 'spawn') write(formatEvent(e));
  });
  const p = m.spawn();
  write(`# pid ${p.pid} (root) on the built-in machine`);

  const note = (s: string): void => write(`\n# ${s}`);
  const RW = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;

  note('open /dev/iommu and allocate two IO address spaces');
  const fd = p.openOrThrow('/dev/iommu');
  const a1 = iommu_ioas_alloc.encode({ size: iommu_ioas_alloc.size });
  p.ioctlOrThrow(fd, IOMMU_IOAS_ALLOC, a1);
  const ioas = iommu_ioas_alloc.decode(a1).out_ioas_id;
  const a2 = iommu_ioas_alloc.encode({ size: iommu_ioas_alloc.size });
  p.ioctlOrThrow(fd, IOMMU_IOAS_ALLOC, a2);
  const ioas2 = iommu_ioas_alloc.decode(a2).out_ioas_id;
  write(`#   -> IOAS ids ${ioas} and ${ioas2}`);

  note('map 64 KiB of anonymous memory at a kernel-chosen IOVA, then at a fixed one');
  const buf = p.mmapOrThrow(1n << 20n);
  const map = (iova: bigint | null, length: bigint, flags = RW, va = buf): bigint | null => {
    const b = iommu_ioas_map.encode({
      size: iommu_ioas_map.size,
      flags: flags | (iova === null ? 0 : IOMMU_IOAS_MAP_FIXED_IOVA),
      ioas_id: ioas,
      user_va: va,
      length,
      iova: iova ?? 0n,
    });
    const r = p.ioctl(fd, IOMMU_IOAS_MAP, b);
    return r.errno ? null : iommu_ioas_map.decode(b).iova;
  };
  const auto = map(null, 0x10000n);
  write(`#   -> kernel chose IOVA 0x${auto?.toString(16)}`);
  map(0x100000n, 0x10000n);

  note('refusals: overlap, no access flags, unknown flags, zero length');
  map(0x100000n, 0x1000n);
  map(0x200000n, 0x1000n, 0);
  map(0x200000n, 0x1000n, RW | 0x8);
  map(0x200000n, 0n);

  note('copy a mapping into the second IOAS without pinning again');
  const cp = iommu_ioas_copy.encode({
    size: iommu_ioas_copy.size,
    flags: RW | IOMMU_IOAS_MAP_FIXED_IOVA,
    dst_ioas_id: ioas2,
    src_ioas_id: ioas,
    length: 0x10000n,
    dst_iova: 0x400000n,
    src_iova: 0x100000n,
  });
  p.ioctl(fd, IOMMU_IOAS_COPY, cp);

  note('restrict kernel-chosen IOVAs, then read the usable ranges back');
  const scratch = p.mmapOrThrow(0x1000n, PROT_READ | 2, MAP_PRIVATE | MAP_ANONYMOUS);
  p.poke(scratch, iommu_iova_range.encode({ start: 0x10000000n, last: 0x1fffffffn }));
  p.ioctl(fd, IOMMU_IOAS_ALLOW_IOVAS, iommu_ioas_allow_iovas.encode({ size: iommu_ioas_allow_iovas.size, ioas_id: ioas, num_iovas: 1, allowed_iovas: scratch }));
  write(`#   -> next kernel-chosen IOVA 0x${map(null, 0x1000n)?.toString(16)}`);
  const rr = iommu_ioas_iova_ranges.encode({ size: iommu_ioas_iova_ranges.size, ioas_id: ioas, num_iovas: 4, allowed_iovas: scratch + 0x100n });
  p.ioctl(fd, IOMMU_IOAS_IOVA_RANGES, rr);
  const ranges = iommu_ioas_iova_ranges.decode(rr);
  for (let i = 0; i < ranges.num_iovas; i++) {
    const r = iommu_iova_range.decode(p.peek(scratch + 0x100n + BigInt(16 * i), 16));
    write(`#   -> usable [0x${r.start.toString(16)}, 0x${r.last.toString(16)}], alignment ${ranges.out_iova_alignment}`);
  }

  note('options: huge pages are on by default');
  p.ioctl(fd, IOMMU_OPTION, iommu_option.encode({ size: iommu_option.size, option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET, object_id: ioas }));

  note('unmap: a range that cuts a mapping in half is refused; the whole range works');
  const unmap = (iova: bigint, length: bigint): void => {
    p.ioctl(fd, IOMMU_IOAS_UNMAP, iommu_ioas_unmap.encode({ size: iommu_ioas_unmap.size, ioas_id: ioas, iova, length }));
  };
  unmap(0x100000n, 0x8000n);
  unmap(0x100000n, 0x10000n);

  note('destroy: the IOAS still holding mappings goes; a missing ID is ENOENT');
  p.ioctl(fd, IOMMU_DESTROY, iommu_destroy.encode({ size: iommu_destroy.size, id: ioas2 }));
  p.ioctl(fd, IOMMU_DESTROY, iommu_destroy.encode({ size: iommu_destroy.size, id: 99 }));

  note('close tears down what is left');
  p.closeOrThrow(fd);
  return 0;
}
