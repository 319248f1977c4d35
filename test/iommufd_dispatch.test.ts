/**
 * The /dev/iommu ioctl dispatcher (main.c:iommufd_fops_ioctl + copy_struct_from_user), walked row by
 * row over `iommufdIoctlOps`, then IOMMU_DESTROY and the object ID space (main.c:_iommufd_object_alloc,
 * iommufd_object_remove). Ports of the selftest's FIXTURE(iommufd) framing cases name their source.
 *
 * Kernel order for an NR inside the table: get_user(size) (EFAULT) → table slot / exact command
 * match (ENOTTY) → size < min_size (EINVAL) → trailing bytes past the known struct non-zero (E2BIG,
 * checked word by word, stopping at the first non-zero word) → the struct body (EFAULT) → handler.
 * NRs outside the table go to the VFIO compat ioctls, which never read a size word.
 */

import { IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, test_memory_limit } from '../src/uapi/iommufd_test.js';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Errno,
  IOMMUFD_TYPE,
  IOMMU_DESTROY,
  IOMMU_GET_HW_INFO,
  IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_INVALIDATE,
  IOMMU_FAULT_QUEUE_ALLOC,
  IOMMU_HWPT_GET_DIRTY_BITMAP,
  IOMMU_HWPT_SET_DIRTY_TRACKING,
  IOMMU_IOAS_ALLOC,
  IOMMU_OPTION_HUGE_PAGES,
  IOMMU_OPTION_OP_GET,
  IOMMU_VFIO_IOAS_SET,
  PROT_READ,
  VFIO_API_VERSION,
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_GET_API_VERSION,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_TYPE1v2_IOMMU,
  _IO,
  _IOC_NR,
  _IOR,
  _IOW,
  _IOWR,
  iommu_destroy,
  iommu_hw_info,
  iommu_hwpt_alloc,
  iommu_hwpt_invalidate,
  iommu_fault_alloc,
  iommu_hwpt_get_dirty_bitmap,
  iommu_hwpt_set_dirty_tracking,
  iommu_ioas_alloc,
  iommu_iova_range,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  type AnyStruct,
  type SysResult,
  errnoName,
} from '../src/index.js';
import { type IoctlOp, iommufdIoctlOps } from '../src/kernel/iommufd/main.js';
import { PAGE, RW, call, map, ok, setup } from './helpers.js';
import { type IoasFixture, ctxOf, fullSnapshot, ioasSetup, protect, refuse } from './iommufd_helpers.js';

type Fields = Record<string, number | bigint | Uint8Array>;

/** Build the bytes of an ioctl struct whose size word says `size`; bytes past the struct are `fill`. */
function frame(schema: AnyStruct, fields: Fields, size: number, fill = 0): Uint8Array {
  const full = schema.encode({ ...fields, size });
  const bytes = new Uint8Array(Math.max(size, 4));
  bytes.set(full.subarray(0, Math.min(size, full.length)));
  bytes.fill(fill, Math.min(size, full.length));
  // The size word itself, even when shorter than the struct.
  new DataView(bytes.buffer).setUint32(0, size >>> 0, true);
  return bytes;
}

/** The 6.12 IOCTL_OP table rows this emulator implements: [name, NR, offsetofend(last) = min_size, sizeof]. */
const KERNEL_ROWS: ReadonlyArray<readonly [string, number, number, number]> = [
  ['IOMMU_DESTROY', 0x80, 8, 8],
  ['IOMMU_IOAS_ALLOC', 0x81, 12, 12],
  ['IOMMU_IOAS_ALLOW_IOVAS', 0x82, 24, 24],
  ['IOMMU_IOAS_COPY', 0x83, 40, 40],
  ['IOMMU_IOAS_IOVA_RANGES', 0x84, 32, 32],
  ['IOMMU_IOAS_MAP', 0x85, 40, 40],
  ['IOMMU_IOAS_UNMAP', 0x86, 24, 24],
  ['IOMMU_OPTION', 0x87, 24, 24],
  ['IOMMU_VFIO_IOAS', 0x88, 12, 12],
  ['IOMMU_HWPT_ALLOC', 0x89, 24, 48],
  ['IOMMU_GET_HW_INFO', 0x8a, 32, 40],
  ['IOMMU_HWPT_SET_DIRTY_TRACKING', 0x8b, 16, 16],
  ['IOMMU_HWPT_GET_DIRTY_BITMAP', 0x8c, 48, 48],
  ['IOMMU_HWPT_INVALIDATE', 0x8d, 32, 32],
  ['IOMMU_FAULT_QUEUE_ALLOC', 0x8e, 16, 16],
  ['IOMMU_TEST_CMD', 0xa0, 68, 72],
];

interface RowFixture extends IoasFixture {
  /** IOVA of a one-page area of `buffer`. */
  mapped: bigint;
}

function rowSetup(): RowFixture {
  const f = ioasSetup();
  f.p.poke(f.arr, iommu_iova_range.encode({ start: 0x10000n, last: 0x1ffffn }));
  const mapped = 0x100000n;
  ok(map(f, f.buffer, PAGE, mapped));
  return { ...f, mapped };
}

/** Fields that make each row's handler succeed on a fresh rowSetup(). */
const VALID: Readonly<Record<string, (f: RowFixture) => Fields>> = {
  IOMMU_DESTROY: (f) => ({ id: f.ioas }),
  IOMMU_IOAS_ALLOC: () => ({}),
  IOMMU_IOAS_ALLOW_IOVAS: (f) => ({ ioas_id: f.ioas, num_iovas: 1, allowed_iovas: f.arr }),
  IOMMU_IOAS_COPY: (f) => ({ flags: RW, dst_ioas_id: f.ioas, src_ioas_id: f.ioas, length: PAGE, src_iova: f.mapped }),
  IOMMU_IOAS_IOVA_RANGES: (f) => ({ ioas_id: f.ioas, num_iovas: 4, allowed_iovas: f.arr + 0x100n }),
  IOMMU_IOAS_MAP: (f) => ({ flags: RW, ioas_id: f.ioas, user_va: f.buffer, length: PAGE }),
  IOMMU_IOAS_UNMAP: (f) => ({ ioas_id: f.ioas, iova: f.mapped, length: PAGE }),
  IOMMU_OPTION: (f) => ({ option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET, object_id: f.ioas }),
  IOMMU_VFIO_IOAS: (f) => ({ ioas_id: f.ioas, op: IOMMU_VFIO_IOAS_SET }),
  IOMMU_HWPT_ALLOC: (f) => ({ dev_id: 99, pt_id: f.ioas }),
  IOMMU_GET_HW_INFO: () => ({ dev_id: 99 }),
  IOMMU_HWPT_SET_DIRTY_TRACKING: () => ({ hwpt_id: 99 }),
  IOMMU_HWPT_GET_DIRTY_BITMAP: () => ({ hwpt_id: 99 }),
  IOMMU_HWPT_INVALIDATE: () => ({ hwpt_id: 99 }),
  IOMMU_FAULT_QUEUE_ALLOC: () => ({}),
  IOMMU_TEST_CMD: () => ({ op: IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, u: test_memory_limit.encode({ limit: 65536 }) }),
};

/**
 * Rows whose best call still ends at a device or HWPT lookup (ENOENT): no device can be bound
 * until the IOMMU layer exists. For them both sizes must fail alike; every other row must succeed.
 */
const ENDS_AT_LOOKUP = new Set(['IOMMU_HWPT_ALLOC', 'IOMMU_GET_HW_INFO', 'IOMMU_HWPT_SET_DIRTY_TRACKING', 'IOMMU_HWPT_GET_DIRTY_BITMAP', 'IOMMU_HWPT_INVALIDATE']);

function sameOutcome(o: IoctlOp, ra: SysResult, rb: SysResult): void {
  if (!ENDS_AT_LOOKUP.has(o.name)) {
    ok(ra);
    ok(rb);
    return;
  }
  assert.equal(errnoName(ra.errno), 'ENOENT', ra.reason);
  assert.equal(errnoName(rb.errno), 'ENOENT', rb.reason);
}

function validFields(o: IoctlOp, f: RowFixture): Fields {
  const make = VALID[o.name];
  if (!make) assert.fail(`no valid-call fixture for table row ${o.name}: add one to VALID`);
  return make(f);
}

/** Two pages with the second unmapped; returns the address of the first byte past the mapped page. */
function guardPage(f: RowFixture): bigint {
  const two = f.p.mmapOrThrow(2n * PAGE);
  ok(f.p.munmap(two + PAGE, PAGE));
  f.p.poke(two, new Uint8Array(Number(PAGE)));
  return two + PAGE;
}

describe('the iommufd ioctl table (main.c iommufd_ioctl_ops)', () => {
  test('each row is _IO(IOMMUFD_TYPE, nr) with the NR, min_size and struct size of 6.12 IOCTL_OP', () => {
    assert.deepEqual(
      iommufdIoctlOps.map((o) => [o.name, _IOC_NR(o.cmd), o.minSize, o.schema.size]),
      KERNEL_ROWS.map((r) => [...r]),
    );
    for (const o of iommufdIoctlOps) {
      assert.equal(o.cmd, _IO(IOMMUFD_TYPE, _IOC_NR(o.cmd)), `${o.name} has size or direction bits`);
      assert.equal(o.schema.offsetOf('size'), 0, `${o.name}: size is not the first field`);
    }
  });

  test(
    'the other 6.12 rows (0x89-0x8e, and IOMMU_TEST_CMD at 0xa0) apply the same size checks (selftest iommufd.cmd_length covers GET_HW_INFO, HWPT_ALLOC, HWPT_INVALIDATE)',
    () => {
      // [cmd, min_size (offsetofend of the IOCTL_OP's last field), sizeof] from the 6.12 headers.
      const rows: ReadonlyArray<readonly [string, number, number, number]> = [
        ['IOMMU_HWPT_ALLOC', IOMMU_HWPT_ALLOC, iommu_hwpt_alloc.offsetEnd('__reserved'), iommu_hwpt_alloc.size],
        ['IOMMU_GET_HW_INFO', IOMMU_GET_HW_INFO, iommu_hw_info.offsetEnd('__reserved'), iommu_hw_info.size],
        ['IOMMU_HWPT_SET_DIRTY_TRACKING', IOMMU_HWPT_SET_DIRTY_TRACKING, iommu_hwpt_set_dirty_tracking.offsetEnd('__reserved'), iommu_hwpt_set_dirty_tracking.size],
        ['IOMMU_HWPT_GET_DIRTY_BITMAP', IOMMU_HWPT_GET_DIRTY_BITMAP, iommu_hwpt_get_dirty_bitmap.offsetEnd('data'), iommu_hwpt_get_dirty_bitmap.size],
        ['IOMMU_HWPT_INVALIDATE', IOMMU_HWPT_INVALIDATE, iommu_hwpt_invalidate.offsetEnd('__reserved'), iommu_hwpt_invalidate.size],
        ['IOMMU_FAULT_QUEUE_ALLOC', IOMMU_FAULT_QUEUE_ALLOC, iommu_fault_alloc.offsetEnd('out_fault_fd'), iommu_fault_alloc.size],
        ['IOMMU_TEST_CMD', _IO(IOMMUFD_TYPE, 0xa0), 68, 72],
      ];
      const f = rowSetup();
      const errs: string[] = [];
      for (const [name, cmd, min, size] of rows) {
        const short = new Uint8Array(size);
        new DataView(short.buffer).setUint32(0, min - 1, true);
        const long = new Uint8Array(size + 1);
        new DataView(long.buffer).setUint32(0, size + 1, true);
        long[size] = 0xff;
        for (const [want, bytes] of [[Errno.EINVAL, short], [Errno.E2BIG, long]] as const) {
          const before = fullSnapshot(f.m);
          const r = f.p.ioctl(f.fd, cmd, bytes);
          if (r.errno !== want) errs.push(`${name} size ${new DataView(bytes.buffer).getUint32(0, true)}: ${r.reason ?? 'ok'}`);
          assert.equal(fullSnapshot(f.m), before);
        }
      }
      assert.deepEqual(errs, []);
    },
  );

  for (const o of iommufdIoctlOps) {
    describe(o.name, () => {
      test('a size below min_size is EINVAL', () => {
        const f = rowSetup();
        refuse(f.m, Errno.EINVAL, () => f.p.ioctl(f.fd, o.cmd, frame(o.schema, validFields(o, f), o.minSize - 1, 0xff)));
      });

      test('size 0 is EINVAL', () => {
        const f = rowSetup();
        refuse(f.m, Errno.EINVAL, () => f.p.ioctl(f.fd, o.cmd, frame(o.schema, validFields(o, f), 0)));
      });

      test('one byte more than the struct, non-zero, is E2BIG', () => {
        const f = rowSetup();
        refuse(f.m, Errno.E2BIG, () => f.p.ioctl(f.fd, o.cmd, frame(o.schema, validFields(o, f), o.schema.size + 1, 0x01)));
      });

      test('a non-zero byte far past the struct is E2BIG', () => {
        const f = rowSetup();
        const bytes = frame(o.schema, validFields(o, f), o.schema.size + 64);
        bytes[o.schema.size + 63] = 0x80;
        refuse(f.m, Errno.E2BIG, () => f.p.ioctl(f.fd, o.cmd, bytes));
      });

      test('one byte more, zero, passes the size check: the same result and write-back as the exact size', () => {
        const a = rowSetup();
        const b = rowSetup();
        const exact = frame(o.schema, validFields(o, a), o.schema.size);
        const longer = frame(o.schema, validFields(o, b), o.schema.size + 1);
        const ra = a.p.ioctl(a.fd, o.cmd, exact);
        const rb = b.p.ioctl(b.fd, o.cmd, longer);
        sameOutcome(o, ra, rb);
        assert.deepEqual(longer.subarray(4, o.schema.size), exact.subarray(4), 'write-back differs');
        assert.equal(longer[o.schema.size], 0, 'the kernel wrote past its struct');
        assert.equal(fullSnapshot(b.m), fullSnapshot(a.m));
      });

      test('with all fields zero, one zero byte more gives the handler\'s own errno for the exact size', () => {
        const a = rowSetup();
        const b = rowSetup();
        const ra = a.p.ioctl(a.fd, o.cmd, frame(o.schema, {}, o.schema.size));
        const rb = b.p.ioctl(b.fd, o.cmd, frame(o.schema, {}, o.schema.size + 1));
        assert.equal(rb.errno, ra.errno, `exact size: ${ra.reason ?? 'ok'}; +1: ${rb.reason ?? 'ok'}`);
        assert.notEqual(rb.errno, Errno.E2BIG);
        assert.equal(fullSnapshot(b.m), fullSnapshot(a.m));
      });

      test('a page of zeros past the struct is accepted and left untouched', () => {
        const a = rowSetup();
        const b = rowSetup();
        const exact = frame(o.schema, validFields(o, a), o.schema.size);
        const page = frame(o.schema, validFields(o, b), Number(PAGE));
        sameOutcome(o, a.p.ioctl(a.fd, o.cmd, exact), b.p.ioctl(b.fd, o.cmd, page));
        assert.deepEqual(page.subarray(4, o.schema.size), exact.subarray(4));
        assert.ok(page.subarray(o.schema.size).every((x) => x === 0));
      });

      test('a NULL argument is EFAULT (the size word is read first)', () => {
        const f = rowSetup();
        refuse(f.m, Errno.EFAULT, () => f.p.ioctl(f.fd, o.cmd, 0n));
      });

      test('a struct whose size word is readable but whose body runs into unmapped memory is EFAULT', () => {
        const f = rowSetup();
        const end = guardPage(f);
        const bytes = frame(o.schema, validFields(o, f), o.schema.size);
        f.p.poke(end - 4n, bytes.subarray(0, 4));
        refuse(f.m, Errno.EFAULT, () => f.p.ioctl(f.fd, o.cmd, end - 4n));
      });

      test('zero trailing bytes that run into unmapped memory are EFAULT', () => {
        const f = rowSetup();
        const end = guardPage(f);
        const at = end - BigInt(o.schema.size) - 8n;
        const bytes = frame(o.schema, validFields(o, f), o.schema.size + 0x2000).subarray(0, o.schema.size + 8);
        f.p.poke(at, bytes);
        refuse(f.m, Errno.EFAULT, () => f.p.ioctl(f.fd, o.cmd, at));
      });

      test('a non-zero trailing word before unmapped memory is E2BIG: check_zeroed_user stops at it (oracle)', () => {
        const f = rowSetup();
        const end = guardPage(f);
        const at = end - BigInt(o.schema.size) - 8n;
        const bytes = frame(o.schema, validFields(o, f), o.schema.size + 0x2000).subarray(0, o.schema.size + 8);
        bytes[o.schema.size] = 1;
        f.p.poke(at, bytes);
        refuse(f.m, Errno.E2BIG, () => f.p.ioctl(f.fd, o.cmd, at));
      });

      test('size 0xffffffff with a non-zero first trailing byte is E2BIG (oracle)', () => {
        const f = rowSetup();
        const bytes = frame(o.schema, validFields(o, f), o.schema.size + 8);
        new DataView(bytes.buffer).setUint32(0, 0xffffffff, true);
        bytes[o.schema.size] = 1;
        refuse(f.m, Errno.E2BIG, () => f.p.ioctl(f.fd, o.cmd, bytes));
      });

      test('the right NR with size or direction bits, or another type byte, is ENOTTY', () => {
        const f = rowSetup();
        const nr = _IOC_NR(o.cmd);
        for (const cmd of [_IOWR(IOMMUFD_TYPE, nr, o.schema.size), _IOR(IOMMUFD_TYPE, nr, o.schema.size), _IOW(IOMMUFD_TYPE, nr, o.schema.size), _IO(IOMMUFD_TYPE + 1, nr), _IO(0x56, nr)]) {
          refuse(f.m, Errno.ENOTTY, () => f.p.ioctl(f.fd, cmd, frame(o.schema, validFields(o, f), o.schema.size)));
        }
      });

      test('a mismatching command with a NULL argument is EFAULT: the size word is read before the match', () => {
        const f = rowSetup();
        refuse(f.m, Errno.EFAULT, () => f.p.ioctl(f.fd, _IOWR(IOMMUFD_TYPE, _IOC_NR(o.cmd), o.schema.size), 0n));
      });
    });
  }
});

describe('NRs without a row', () => {
  test('an empty slot inside the table (0x8f, 0x99, 0x9f) is ENOTTY', () => {
    const f = rowSetup();
    for (const nr of [0x8f, 0x90, 0x99, 0x9f]) {
      refuse(f.m, Errno.ENOTTY, () => f.p.ioctl(f.fd, _IO(IOMMUFD_TYPE, nr), frame(iommu_destroy, {}, 8)));
    }
  });

  test('an empty slot inside the table reads the size word first: NULL is EFAULT', () => {
    const f = rowSetup();
    refuse(f.m, Errno.EFAULT, () => f.p.ioctl(f.fd, _IO(IOMMUFD_TYPE, 0x8f), 0n));
  });

  test('NRs outside the table (0x7f, 0xa1, 0xff) go to the VFIO compat path: ENOTTY without reading the argument', () => {
    const f = rowSetup();
    for (const nr of [0x7f, 0xa1, 0xff]) {
      refuse(f.m, Errno.ENOTTY, () => f.p.ioctl(f.fd, _IO(IOMMUFD_TYPE, nr), frame(iommu_destroy, {}, 8)));
      refuse(f.m, Errno.ENOTTY, () => f.p.ioctl(f.fd, _IO(IOMMUFD_TYPE, nr), 0n));
    }
  });
});

describe('selftest FIXTURE(iommufd)', () => {
  test('opening and closing /dev/iommu leaves nothing behind (simple_close)', () => {
    const f = setup();
    ok(f.p.close(f.fd));
    assert.equal(f.m.iommufd.contexts.size, 0);
    assert.ok([...f.m.phys.frames()].every((fr) => fr.pins === 0));
  });

  test('DESTROY of 0 is ENOENT, NULL is EFAULT, NR BASE-1 is ENOTTY (cmd_fail)', () => {
    const f = setup();
    refuse(f.m, Errno.ENOENT, () => call(f.p, f.fd, IOMMU_DESTROY, iommu_destroy, { id: 0 }).r);
    refuse(f.m, Errno.EFAULT, () => f.p.ioctl(f.fd, IOMMU_DESTROY, 0n));
    refuse(f.m, Errno.ENOTTY, () => f.p.ioctl(f.fd, _IO(IOMMUFD_TYPE, 0x80 - 1), iommu_destroy.encode({ size: 8 })));
  });

  test('min_size - 1 is EINVAL, sizeof + 1 with 0xff is E2BIG, sizeof + 1 with 0 answers as sizeof (cmd_length)', () => {
    const f = setup();
    for (const o of iommufdIoctlOps) {
      // struct { struct _struct cmd; uint8_t extra; } with .size = min_size - 1, .extra = UINT8_MAX
      const cmd = frame(o.schema, {}, o.minSize - 1);
      const buf = new Uint8Array(o.schema.size + 1);
      buf.set(cmd.subarray(0, Math.min(cmd.length, o.schema.size)));
      new DataView(buf.buffer).setUint32(0, o.minSize - 1, true);
      buf[o.schema.size] = 0xff;
      refuse(f.m, Errno.EINVAL, () => f.p.ioctl(f.fd, o.cmd, buf));
      new DataView(buf.buffer).setUint32(0, o.schema.size + 1, true);
      refuse(f.m, Errno.E2BIG, () => f.p.ioctl(f.fd, o.cmd, buf));
      new DataView(buf.buffer).setUint32(0, o.schema.size, true);
      const rc = f.p.ioctl(f.fd, o.cmd, buf);
      new DataView(buf.buffer).setUint32(0, o.schema.size + 1, true);
      buf[o.schema.size] = 0;
      const rc2 = f.p.ioctl(f.fd, o.cmd, buf);
      if (rc.errno) assert.equal(rc2.errno, rc.errno, `${o.name}: ${rc2.reason ?? 'ok'}`);
      else ok(rc2);
    }
  });

  test('a longer DESTROY with zero future bytes is ENOENT, non-zero E2BIG, short EINVAL (cmd_ex_fail)', () => {
    const f = setup();
    const cmd = new Uint8Array(16);
    new DataView(cmd.buffer).setUint32(0, 16, true);
    refuse(f.m, Errno.ENOENT, () => f.p.ioctl(f.fd, IOMMU_DESTROY, cmd));
    cmd[8] = 1;
    refuse(f.m, Errno.E2BIG, () => f.p.ioctl(f.fd, IOMMU_DESTROY, cmd));
    new DataView(cmd.buffer).setUint32(0, 8, true);
    refuse(f.m, Errno.ENOENT, () => f.p.ioctl(f.fd, IOMMU_DESTROY, cmd));
    new DataView(cmd.buffer).setUint32(0, 7, true);
    refuse(f.m, Errno.EINVAL, () => f.p.ioctl(f.fd, IOMMU_DESTROY, cmd));
  });

  test(
    'VFIO_GET_API_VERSION is 0 and VFIO_CHECK_EXTENSION(TYPE1v2) is 1 on an iommufd (simple_ioctls)',
    () => {
      const f = setup();
      assert.equal(ok(f.p.ioctl(f.fd, VFIO_GET_API_VERSION)), VFIO_API_VERSION);
      assert.equal(ok(f.p.ioctl(f.fd, VFIO_CHECK_EXTENSION, BigInt(VFIO_TYPE1v2_IOMMU))), 1);
      assert.equal(ok(f.p.ioctl(f.fd, VFIO_CHECK_EXTENSION, 99n)), 0);
    },
  );

  test(
    'VFIO_IOMMU_UNMAP_DMA: argsz 1 or unknown flags EINVAL, no compat IOAS ENODEV (unmap_cmd)',
    () => {
      const f = setup();
      const v = { iova: 1n << 24n, size: PAGE };
      refuse(f.m, Errno.EINVAL, () => f.p.ioctl(f.fd, VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap.encode({ ...v, argsz: 1 })));
      refuse(f.m, Errno.EINVAL, () => f.p.ioctl(f.fd, VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap.encode({ ...v, argsz: vfio_iommu_type1_dma_unmap.size, flags: 1 << 31 })));
      refuse(f.m, Errno.ENODEV, () => f.p.ioctl(f.fd, VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap.encode({ ...v, argsz: vfio_iommu_type1_dma_unmap.size })));
    },
  );

  test(
    'VFIO_IOMMU_MAP_DMA: argsz 1 or unknown flags EINVAL, no compat IOAS ENODEV (map_cmd)',
    () => {
      const f = setup();
      const v = { iova: 1n << 24n, size: PAGE, vaddr: f.buf };
      refuse(f.m, Errno.EINVAL, () => f.p.ioctl(f.fd, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map.encode({ ...v, argsz: 1 })));
      refuse(f.m, Errno.EINVAL, () => f.p.ioctl(f.fd, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map.encode({ ...v, argsz: vfio_iommu_type1_dma_map.size, flags: 1 << 31 })));
      const flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
      refuse(f.m, Errno.ENODEV, () => f.p.ioctl(f.fd, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map.encode({ ...v, argsz: vfio_iommu_type1_dma_map.size, flags })));
    },
  );
});

describe('IOMMU_DESTROY and object IDs', () => {
  const alloc = (f: { p: IoasFixture['p']; fd: number }): number => {
    const { r, out } = call(f.p, f.fd, IOMMU_IOAS_ALLOC, iommu_ioas_alloc, {});
    ok(r);
    return out.out_ioas_id;
  };
  const destroy = (f: { p: IoasFixture['p']; fd: number }, id: number): SysResult => call(f.p, f.fd, IOMMU_DESTROY, iommu_destroy, { id }).r;

  test('DESTROY of ID 0 is ENOENT', () => {
    const f = setup();
    refuse(f.m, Errno.ENOENT, () => destroy(f, 0));
  });

  test('DESTROY of an ID never allocated, or of the largest u32, is ENOENT', () => {
    const f = setup();
    refuse(f.m, Errno.ENOENT, () => destroy(f, f.ioas + 1));
    refuse(f.m, Errno.ENOENT, () => destroy(f, 0xffffffff));
  });

  test('DESTROY of an already destroyed ID is ENOENT', () => {
    const f = setup();
    ok(destroy(f, f.ioas));
    refuse(f.m, Errno.ENOENT, () => destroy(f, f.ioas));
  });

  test('IDs start at 1 and count up', () => {
    const f = setup();
    assert.equal(f.ioas, 1);
    assert.deepEqual([alloc(f), alloc(f), alloc(f)], [2, 3, 4]);
  });

  test('the lowest freed ID is reused first', () => {
    const f = setup();
    const ids = [f.ioas, alloc(f), alloc(f), alloc(f), alloc(f)];
    assert.deepEqual(ids, [1, 2, 3, 4, 5]);
    ok(destroy(f, 4));
    ok(destroy(f, 2));
    ok(destroy(f, 3));
    assert.deepEqual([alloc(f), alloc(f), alloc(f), alloc(f)], [2, 3, 4, 6]);
  });

  test('an ID freed by DESTROY is reused by the next allocation', () => {
    const f = setup();
    ok(destroy(f, f.ioas));
    assert.equal(alloc(f), 1);
  });

  test('a failed IOAS_ALLOC does not consume an ID', () => {
    const f = setup();
    refuse(f.m, Errno.EOPNOTSUPP, () => call(f.p, f.fd, IOMMU_IOAS_ALLOC, iommu_ioas_alloc, { flags: 1 }).r);
    assert.equal(alloc(f), 2);
  });

  test('IOAS_ALLOC whose write-back faults is EFAULT, and the aborted object gives its ID back', () => {
    const f = setup();
    const page = f.p.mmapOrThrow(PAGE);
    f.p.poke(page, iommu_ioas_alloc.encode({ size: iommu_ioas_alloc.size }));
    protect(f, page, PROT_READ);
    refuse(f.m, Errno.EFAULT, () => f.p.ioctl(f.fd, IOMMU_IOAS_ALLOC, page));
    assert.equal(alloc(f), 2);
  });

  test('each open /dev/iommu has its own ID space', () => {
    const f = setup();
    const fd2 = f.p.openOrThrow('/dev/iommu');
    const g = { p: f.p, fd: fd2 };
    assert.equal(alloc(g), 1);
    ok(destroy(g, 1));
    refuse(f.m, Errno.ENOENT, () => destroy(g, 1));
    assert.ok(ctxOf(f).peek(1), 'the first fd still has its IOAS 1');
    assert.equal(alloc(f), 2);
  });

  test('DESTROY refused with ENOENT leaves other objects alone', () => {
    const f = setup();
    const ids = [f.ioas, alloc(f)];
    refuse(f.m, Errno.ENOENT, () => destroy(f, 3));
    assert.deepEqual(ctxOf(f).objects().map((o) => o.id), ids);
  });
});
