/**
 * IOMMU_TEST_CMD access ops (selftest.c): in-kernel users of an IOAS driven from userspace through
 * an "[iommufd_test_staccess]" fd — pinning by IOVA, reads and writes through IOVAs, the unmap
 * notification that makes them let go, and MD_CHECK_REFS over the pin counts.
 */

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Errno, IOMMU_DESTROY, iommu_destroy } from '../src/index.js';
import {
  IOMMU_TEST_CMD,
  IOMMU_TEST_OP_ACCESS_PAGES,
  IOMMU_TEST_OP_ACCESS_REPLACE_IOAS,
  IOMMU_TEST_OP_ACCESS_RW,
  IOMMU_TEST_OP_ADD_RESERVED,
  IOMMU_TEST_OP_CREATE_ACCESS,
  IOMMU_TEST_OP_DESTROY_ACCESS_PAGES,
  IOMMU_TEST_OP_MD_CHECK_REFS,
  IOMMU_TEST_OP_MOCK_DOMAIN,
  IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
  IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT,
  MOCK_ACCESS_RW_SLOW_PATH,
  MOCK_ACCESS_RW_WRITE,
  MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES,
  MOCK_FLAGS_ACCESS_WRITE,
  iommu_test_cmd,
  test_access_pages,
  test_access_replace_ioas,
  test_access_rw,
  test_add_reserved,
  test_check_refs,
  test_create_access,
  test_destroy_access_pages,
  test_memory_limit,
  test_mock_domain_replace,
} from '../src/uapi/iommufd_test.js';
import { type Fixture, PAGE, call, fails, ioasAlloc, map, ok, setup, snapshot, unmap } from './helpers.js';

function testCmd(f: Fixture, op: number, id: number, u: Uint8Array): { r: ReturnType<typeof call>['r']; u: Uint8Array } {
  const { r, out } = call(f.p, f.fd, IOMMU_TEST_CMD, iommu_test_cmd, { op, id, u });
  return { r, u: out.u };
}

function createAccess(f: Fixture, ioas: number, flags = MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES): number {
  const { r, u } = testCmd(f, IOMMU_TEST_OP_CREATE_ACCESS, ioas, test_create_access.encode({ flags }));
  ok(r);
  return test_create_access.decode(u).out_access_fd;
}

function checkRefs(f: Fixture, uptr: bigint, length: bigint, refs: number) {
  return testCmd(f, IOMMU_TEST_OP_MD_CHECK_REFS, 0, test_check_refs.encode({ uptr, length, refs })).r;
}

function accessPages(f: Fixture, afd: number, iova: bigint, length: bigint, uptr: bigint, flags = 0) {
  const { r, u } = testCmd(f, IOMMU_TEST_OP_ACCESS_PAGES, afd, test_access_pages.encode({ flags, iova, length, uptr }));
  return { r, id: test_access_pages.decode(u).out_access_pages_id };
}

describe('IOMMU_TEST_CMD access objects', () => {
  test('ACCESS_PAGES pins once per page, MD_CHECK_REFS sees it, DESTROY_ACCESS_PAGES unpins', () => {
    const f = setup();
    const iova = ok(map(f, f.buf, 4n * PAGE, 0x100000n)) === 0 ? 0x100000n : 0n;
    const afd = createAccess(f, f.ioas);
    ok(checkRefs(f, f.buf, 4n * PAGE, 0));
    const a = accessPages(f, afd, iova, 4n * PAGE, f.buf);
    ok(a.r);
    ok(checkRefs(f, f.buf, 4n * PAGE, 1));
    const b = accessPages(f, afd, iova + PAGE, PAGE, f.buf + PAGE, MOCK_FLAGS_ACCESS_WRITE);
    ok(b.r);
    assert.equal(b.id, a.id + 1);
    ok(checkRefs(f, f.buf, 4n * PAGE, 1));
    fails(checkRefs(f, f.buf, 4n * PAGE, 2), Errno.EIO);
    ok(testCmd(f, IOMMU_TEST_OP_DESTROY_ACCESS_PAGES, afd, test_destroy_access_pages.encode({ access_pages_id: a.id })).r);
    ok(checkRefs(f, f.buf + PAGE, PAGE, 1));
    ok(checkRefs(f, f.buf, PAGE, 0));
    fails(testCmd(f, IOMMU_TEST_OP_DESTROY_ACCESS_PAGES, afd, test_destroy_access_pages.encode({ access_pages_id: a.id })).r, Errno.ENOENT);
    ok(f.p.close(afd));
    ok(checkRefs(f, f.buf, 4n * PAGE, 0));
  });

  test('unmapping pinned pages makes the access let go first (selftest access_pin_unmap)', () => {
    const f = setup();
    ok(map(f, f.buf, 2n * PAGE, 0x100000n));
    const afd = createAccess(f, f.ioas);
    ok(accessPages(f, afd, 0x100000n, 2n * PAGE, f.buf).r);
    const u = unmap(f, 0x100000n, 2n * PAGE);
    ok(u);
    assert.equal(u.length, 2n * PAGE);
    ok(checkRefs(f, f.buf, 2n * PAGE, 0));
    fails(accessPages(f, afd, 0x100000n, PAGE, f.buf).r, Errno.ENOENT);
  });

  test('pin refusals: read-only mapping for write is EPERM, unaligned range EINVAL, gap ENOENT, no-pin access EOPNOTSUPP', () => {
    const f = setup();
    ok(map(f, f.buf, 2n * PAGE, 0x100000n, 4 /* READABLE */));
    const afd = createAccess(f, f.ioas);
    // GUP faults pages in, and a fault is not undone when the pin fails; touch them first.
    f.p.poke(f.buf, new Uint8Array(Number(3n * PAGE)));
    const before = snapshot(f.m);
    fails(accessPages(f, afd, 0x100000n, PAGE, 0n, MOCK_FLAGS_ACCESS_WRITE).r, Errno.EPERM);
    fails(accessPages(f, afd, 0x100000n, 3n * PAGE, 0n).r, Errno.ENOENT);
    fails(accessPages(f, afd, 0x100000n, 0n, 0n).r, Errno.EINVAL);
    fails(accessPages(f, afd, 0x100000n, PAGE, 0n, 0x8).r, Errno.EOPNOTSUPP);
    assert.equal(snapshot(f.m), before);
    const nopin = createAccess(f, f.ioas, 0);
    fails(accessPages(f, nopin, 0x100000n, PAGE, 0n).r, Errno.EOPNOTSUPP);
    fails(accessPages(f, 1, 0x100000n, PAGE, 0n).r, Errno.EBADFD);
    fails(testCmd(f, IOMMU_TEST_OP_CREATE_ACCESS, f.ioas, test_create_access.encode({ flags: 2 })).r, Errno.EOPNOTSUPP);
  });

  test('ACCESS_RW reads and writes the memory behind IOVAs, across areas, fast and slow path (selftest access_rw)', () => {
    const f = setup();
    const pattern = new Uint8Array(Number(4n * PAGE)).map((_, i) => (i * 7) & 0xff);
    f.p.poke(f.buf, pattern);
    ok(map(f, f.buf, 2n * PAGE, 0x100000n));
    ok(map(f, f.buf + 2n * PAGE, 2n * PAGE, 0x102000n));
    const afd = createAccess(f, f.ioas, 0);
    const tmp = f.p.mmapOrThrow(4n * PAGE);
    for (const flags of [0, MOCK_ACCESS_RW_SLOW_PATH]) {
      ok(testCmd(f, IOMMU_TEST_OP_ACCESS_RW, afd, test_access_rw.encode({ iova: 0x100ff0n, length: 0x2020n, uptr: tmp, flags })).r);
      assert.deepEqual(f.p.peek(tmp, 0x2020), pattern.subarray(0xff0, 0xff0 + 0x2020));
    }
    f.p.poke(tmp, new Uint8Array(16).fill(0xab));
    ok(testCmd(f, IOMMU_TEST_OP_ACCESS_RW, afd, test_access_rw.encode({ iova: 0x101ff8n, length: 16n, uptr: tmp, flags: MOCK_ACCESS_RW_WRITE })).r);
    assert.deepEqual(f.p.peek(f.buf + 0x1ff8n, 16), new Uint8Array(16).fill(0xab));
    fails(testCmd(f, IOMMU_TEST_OP_ACCESS_RW, afd, test_access_rw.encode({ iova: 0x103000n, length: 0x2000n, uptr: tmp })).r, Errno.ENOENT);
    fails(testCmd(f, IOMMU_TEST_OP_ACCESS_RW, afd, test_access_rw.encode({ iova: 0x100000n, length: 0n, uptr: tmp })).r, Errno.EINVAL);
  });

  test('an IOAS with an attached access is busy; closing the access fd frees it', () => {
    const f = setup();
    const afd = createAccess(f, f.ioas);
    fails(call(f.p, f.fd, IOMMU_DESTROY, iommu_destroy, { id: f.ioas }).r, Errno.EBUSY);
    fails(call(f.p, f.fd, IOMMU_DESTROY, iommu_destroy, { id: f.ioas + 1 }).r, Errno.EBUSY);
    ok(f.p.close(afd));
    ok(call(f.p, f.fd, IOMMU_DESTROY, iommu_destroy, { id: f.ioas }).r);
  });

  test('ACCESS_REPLACE_IOAS moves the access and drops its pins (selftest access replace)', () => {
    const f = setup();
    ok(map(f, f.buf, PAGE, 0x100000n));
    const afd = createAccess(f, f.ioas);
    ok(accessPages(f, afd, 0x100000n, PAGE, f.buf).r);
    const other = ioasAlloc(f.p, f.fd);
    ok(testCmd(f, IOMMU_TEST_OP_ACCESS_REPLACE_IOAS, afd, test_access_replace_ioas.encode({ ioas_id: other })).r);
    ok(checkRefs(f, f.buf, PAGE, 0));
    ok(call(f.p, f.fd, IOMMU_DESTROY, iommu_destroy, { id: f.ioas }).r);
    fails(testCmd(f, IOMMU_TEST_OP_ACCESS_REPLACE_IOAS, afd, test_access_replace_ioas.encode({ ioas_id: 99 })).r, Errno.ENOENT);
  });

  test('closing the iommufd first keeps the context alive until the access fd closes', () => {
    const f = setup();
    const afd = createAccess(f, f.ioas);
    ok(f.p.close(f.fd));
    assert.equal(f.m.iommufd.contexts.size, 1);
    ok(f.p.close(afd));
    assert.equal(f.m.iommufd.contexts.size, 0);
  });
});

describe('IOMMU_TEST_CMD other ops', () => {
  test('ADD_RESERVED reserves a range; over a mapping it is EADDRINUSE; length 0 EINVAL', () => {
    const f = setup();
    ok(testCmd(f, IOMMU_TEST_OP_ADD_RESERVED, f.ioas, test_add_reserved.encode({ start: 0x10000n, length: 0x1000n })).r);
    fails(map(f, f.buf, PAGE, 0x10000n), Errno.EINVAL);
    ok(map(f, f.buf, PAGE, 0x20000n));
    fails(testCmd(f, IOMMU_TEST_OP_ADD_RESERVED, f.ioas, test_add_reserved.encode({ start: 0x20000n, length: 1n })).r, Errno.EADDRINUSE);
    fails(testCmd(f, IOMMU_TEST_OP_ADD_RESERVED, f.ioas, test_add_reserved.encode({ start: 0x30000n, length: 0n })).r, Errno.EINVAL);
  });

  test('SET_TEMP_MEMORY_LIMIT below 12 bytes is EINVAL; unknown ops are EOPNOTSUPP', () => {
    const f = setup();
    fails(testCmd(f, IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, 0, test_memory_limit.encode({ limit: 11 })).r, Errno.EINVAL);
    ok(testCmd(f, IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, 0, test_memory_limit.encode({ limit: 12 })).r);
    fails(testCmd(f, 99, 0, new Uint8Array(0)).r, Errno.EOPNOTSUPP);
    assert.ok(IOMMU_TEST_OP_MOCK_DOMAIN);
  });
});

describe('IOMMU_TEST_CMD details the fidelity review caught', () => {
  test('CREATE_ACCESS takes its fd first: a full fd table is ENOMEM even for a missing IOAS', () => {
    const f = setup({ nofile: 4 });
    const before = snapshot(f.m);
    fails(testCmd(f, IOMMU_TEST_OP_CREATE_ACCESS, 99, test_create_access.encode({ flags: 0 })).r, Errno.ENOMEM);
    assert.equal(snapshot(f.m), before);
  });

  test('CREATE_ACCESS writes back only out_access_fd: the rest of the union comes back as sent', () => {
    const f = setup();
    const u = new Uint8Array(48).fill(0xcc);
    u.set(test_create_access.encode({ flags: 0 }));
    const { r, u: back } = testCmd(f, IOMMU_TEST_OP_CREATE_ACCESS, f.ioas, u);
    ok(r);
    assert.ok(back.subarray(8).every((b) => b === 0xcc));
  });

  test('ACCESS_RW from the mapping process copies from its current memory: after munmap it is EFAULT', () => {
    const f = setup();
    ok(map(f, f.buf, 2n * PAGE, 0x100000n));
    const afd = createAccess(f, f.ioas);
    ok(accessPages(f, afd, 0x100000n, 2n * PAGE, f.buf).r);
    ok(f.p.munmap(f.buf, 2n * PAGE));
    const tmp = f.p.mmapOrThrow(PAGE);
    fails(testCmd(f, IOMMU_TEST_OP_ACCESS_RW, afd, test_access_rw.encode({ iova: 0x100000n, length: 4n, uptr: tmp })).r, Errno.EFAULT);
    // The slow path over more than one page reads the pages the access still holds pinned.
    ok(testCmd(f, IOMMU_TEST_OP_ACCESS_RW, afd, test_access_rw.encode({ iova: 0x100ff0n, length: 0x20n, uptr: tmp, flags: MOCK_ACCESS_RW_SLOW_PATH })).r);
  });
});

test('MOCK_DOMAIN_REPLACE of an ID that is no selftest device is ENOENT (selftest alloc_hwpt_nested, no_domain)', () => {
  const f = setup();
  fails(testCmd(f, IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, 0, test_mock_domain_replace.encode({ pt_id: 0 })).r, Errno.ENOENT);
  fails(testCmd(f, IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, f.ioas, test_mock_domain_replace.encode({ pt_id: f.ioas })).r, Errno.ENOENT);
});
