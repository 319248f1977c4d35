/**
 * IOMMU_FAULT_QUEUE_ALLOC and the fault fd (fault.c) with an empty queue: the object and fd
 * lifetimes, and the read/write/poll framing rules.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Errno, IOMMU_DESTROY, IOMMU_FAULT_QUEUE_ALLOC, iommu_destroy, iommu_fault_alloc, iommu_hwpt_page_response, iommu_hwpt_pgfault } from '../src/index.js';
import { call, fails, ok, setup, snapshot } from './helpers.js';

function faultAlloc(f: ReturnType<typeof setup>, flags = 0) {
  const { r, out } = call(f.p, f.fd, IOMMU_FAULT_QUEUE_ALLOC, iommu_fault_alloc, { flags });
  return { r, id: out.out_fault_id, fd: out.out_fault_fd };
}

test('a fault queue is an object with an fd; DESTROY is EBUSY until the fd closes', () => {
  const f = setup();
  const q = faultAlloc(f);
  ok(q.r);
  assert.equal(q.id, f.ioas + 1);
  assert.ok(q.fd > f.fd, 'a new fd');
  fails(call(f.p, f.fd, IOMMU_DESTROY, iommu_destroy, { id: q.id }).r, Errno.EBUSY);
  ok(f.p.close(q.fd));
  ok(call(f.p, f.fd, IOMMU_DESTROY, iommu_destroy, { id: q.id }).r);
});

test('unknown flags are EOPNOTSUPP and leave nothing behind', () => {
  const f = setup();
  const before = snapshot(f.m);
  fails(faultAlloc(f, 1).r, Errno.EOPNOTSUPP);
  assert.equal(snapshot(f.m), before);
});

test('an empty queue reads 0 bytes, refuses odd sizes with ESPIPE, and polls writable only', () => {
  const f = setup();
  const q = faultAlloc(f);
  const buf = f.p.mmapOrThrow(4096n);
  assert.equal(ok(f.p.read(q.fd, buf, iommu_hwpt_pgfault.size * 2)), 0);
  fails(f.p.read(q.fd, buf, iommu_hwpt_pgfault.size + 1), Errno.ESPIPE);
  assert.equal(ok(f.p.poll(q.fd)), 0x4);
});

test('a response for a cookie never delivered is EINVAL; a bad code is EINVAL; odd sizes ESPIPE', () => {
  const f = setup();
  const q = faultAlloc(f);
  const buf = f.p.mmapOrThrow(4096n);
  f.p.poke(buf, iommu_hwpt_page_response.encode({ cookie: 1, code: 0 }));
  fails(f.p.write(q.fd, buf, iommu_hwpt_page_response.size), Errno.EINVAL);
  f.p.poke(buf, iommu_hwpt_page_response.encode({ cookie: 1, code: 7 }));
  fails(f.p.write(q.fd, buf, iommu_hwpt_page_response.size), Errno.EINVAL);
  fails(f.p.write(q.fd, buf, 3), Errno.ESPIPE);
});

test('the fault fd keeps the iommufd context alive after the iommufd fd closes', () => {
  const f = setup();
  const q = faultAlloc(f);
  ok(f.p.close(f.fd));
  assert.equal(f.m.iommufd.contexts.size, 1);
  ok(f.p.close(q.fd));
  assert.equal(f.m.iommufd.contexts.size, 0);
});

test('FAULT_QUEUE_ALLOC with a full fd table is EMFILE and leaves nothing behind', () => {
  const f = setup({ nofile: 4 });
  const before = snapshot(f.m);
  fails(faultAlloc(f).r, Errno.EMFILE);
  assert.equal(snapshot(f.m), before);
});
