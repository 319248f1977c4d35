/**
 * Record and replay: a session recorded from a machine, written as JSONL and read back, replays on
 * a fresh machine with no mismatch; a trace altered in one place is caught at exactly that event;
 * and every refusal in a trace says why.
 */

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Errno,
  IOMMU_DESTROY,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_COPY,
  IOMMU_IOAS_IOVA_RANGES,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  Machine,
  MAP_ANONYMOUS,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  type TraceEvent,
  formatEvent,
  fromJsonl,
  iommu_destroy,
  iommu_ioas_alloc,
  iommu_ioas_copy,
  iommu_ioas_iova_ranges,
  replay,
  toJsonl,
} from '../src/index.js';
import { PAGE, RW, call, fails, ioasAlloc, map, ok, unmap } from './helpers.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A session touching every kind of traced call, successes and refusals alike. */
function recordSession(opts: { failedPeek?: boolean } = {}): { m: Machine; events: TraceEvent[] } {
  const m = new Machine();
  const rec = m.tracer.record();
  const p = m.spawn({ uid: 1000, memlock: 64n * PAGE });
  const fd = p.openOrThrow('/dev/iommu');
  fails(p.open('/dev/nope'), Errno.ENOENT);
  const ioas = ioasAlloc(p, fd);
  const f = { p, fd, ioas };
  const buf = p.mmapOrThrow(8n * PAGE);
  ok(p.poke(buf, enc('hello, device')));
  assert.equal(new TextDecoder().decode(p.peek(buf, 13)), 'hello, device');
  if (opts.failedPeek) assert.throws(() => p.peek(0x10n, 4));
  ok(map(f, buf, 2n * PAGE, 0x10000n));
  fails(map(f, buf, 2n * PAGE, 0x10000n), Errno.EEXIST);
  const auto = map(f, buf + 2n * PAGE, 2n * PAGE, null);
  ok(auto);
  fails(map(f, buf, 3n, 0x80000n, 0), Errno.EINVAL);
  fails(unmap(f, 0x10000n, PAGE), Errno.ENOENT);
  const dst = ioasAlloc(p, fd);
  ok(call(p, fd, IOMMU_IOAS_COPY, iommu_ioas_copy, { flags: RW | IOMMU_IOAS_MAP_FIXED_IOVA, dst_ioas_id: dst, src_ioas_id: ioas, length: 2n * PAGE, dst_iova: 0x40000n, src_iova: 0x10000n }).r);
  fails(call(p, fd, IOMMU_DESTROY, iommu_destroy, { id: 99 }).r, Errno.ENOENT);
  const ranges = p.mmapOrThrow(PAGE);
  ok(call(p, fd, IOMMU_IOAS_IOVA_RANGES, iommu_ioas_iova_ranges, { ioas_id: ioas, num_iovas: 4, allowed_iovas: ranges }).r);
  fails(p.ioctl(fd, IOMMU_IOAS_ALLOC, 0x10n), Errno.EFAULT);
  fails(p.close(42), Errno.EBADF);
  // Fault injection is part of the trace too.
  p.setFailNth(1);
  fails(call(p, fd, IOMMU_IOAS_ALLOC, iommu_ioas_alloc, {}).r, Errno.ENOMEM);
  const fd2 = ok(p.dup(fd));
  const shm = p.mmapOrThrow(PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
  ok(p.poke(shm, enc('shared')));
  const child = p.fork();
  ok(child.poke(shm, enc('SHARED')));
  assert.equal(new TextDecoder().decode(p.peek(shm, 6)), 'SHARED');
  const childIoas = ioasAlloc(child, fd2);
  ok(map({ p: child, fd: fd2, ioas: childIoas }, buf, PAGE, null));
  fails(child.poll(77), Errno.EBADF);
  ok(child.close(fd));
  child.exit();
  fails(child.close(fd2), Errno.ESRCH);
  ok(unmap(f, 0n, (1n << 64n) - 1n));
  ok(p.munmap(buf, 8n * PAGE));
  ok(p.close(fd));
  p.exit();
  rec.stop();
  return { m, events: rec.events };
}

describe('record and replay', () => {
  test('a recorded session survives JSONL and replays on a fresh machine with no mismatch', () => {
    const { events } = recordSession();
    const calls = new Set(events.map((e) => e.call));
    for (const c of ['spawn', 'open', 'ioctl', 'mmap', 'munmap', 'poke', 'peek', 'fail_nth', 'dup', 'fork', 'poll', 'close', 'exit']) {
      assert.ok(calls.has(c), `the session recorded no ${c}`);
    }
    assert.ok(events.filter((e) => e.errno).length >= 10, 'the session has its share of refusals');
    const text = toJsonl(events);
    assert.equal(text.split('\n').length, events.length + 1);
    const back = fromJsonl(text);
    assert.deepEqual(back, events);
    const { mismatches, machine } = replay(back);
    assert.deepEqual(mismatches, []);
    assert.equal([...machine.processes()].length, 0, 'every replayed process exited');
    assert.equal(machine.iommufd.contexts.size, 0);
  });

  test('a session with a failed peek replays with no mismatch', () => {
    const { events } = recordSession({ failedPeek: true });
    const failed = events.find((e) => e.call === 'peek' && e.errno)!;
    assert.equal(failed.errno, Errno.EFAULT);
    assert.deepEqual(replay(fromJsonl(toJsonl(events))).mismatches, []);
  });

  test('sequence numbers are strictly increasing and formatEvent prints every event', () => {
    const { events } = recordSession();
    for (let i = 1; i < events.length; i++) assert.ok(events[i]!.seq > events[i - 1]!.seq);
    for (const e of events) {
      const line = formatEvent(e);
      assert.ok(line.startsWith(`[${e.pid}] ${e.call}(`), line);
      if (e.errno) assert.match(line, / = -1 E[A-Z0-9]+ \(.+\)$/);
    }
    const mapLine = formatEvent(events.find((e) => e.what === 'IOMMU_IOAS_MAP' && e.errno === Errno.EEXIST)!);
    assert.match(mapLine, /IOMMU_IOAS_MAP.* = -1 EEXIST \(/);
  });

  for (const which of ['a refusal', 'a success'] as const) {
    test(`tampering with the errno of ${which} is reported at exactly that seq`, () => {
      const { events } = recordSession();
      const copy = fromJsonl(toJsonl(events));
      const victim = copy.find((e) => e.call === 'ioctl' && (which === 'a refusal' ? e.errno === Errno.EEXIST : e.errno === 0 && e.what === 'IOMMU_IOAS_COPY'))!;
      assert.ok(victim);
      const real = victim.errno;
      victim.errno = Errno.EPERM;
      const { mismatches } = replay(copy);
      assert.equal(mismatches.length, 1, JSON.stringify(mismatches));
      assert.equal(mismatches[0]!.seq, victim.seq);
      assert.equal(mismatches[0]!.expected.errno, Errno.EPERM);
      assert.equal(mismatches[0]!.got.errno, real);
    });
  }

  test('tampering with returned bytes is reported too', () => {
    const { events } = recordSession();
    const copy = fromJsonl(toJsonl(events));
    const victim = copy.find((e) => e.call === 'peek' && e.errno === 0)!;
    victim.out = victim.out!.replace(/^../, 'ff');
    const { mismatches } = replay(copy);
    assert.deepEqual(mismatches.map((x) => x.seq), [victim.seq]);
  });

  test('every refusal in a trace carries a reason', () => {
    const { events } = recordSession();
    const refusals = events.filter((e) => e.errno !== 0);
    assert.ok(refusals.length > 0);
    for (const e of refusals) {
      assert.equal(e.ret, -1, `seq ${e.seq}: a refusal returns -1`);
      assert.equal(typeof e.reason, 'string', `seq ${e.seq} (${e.call} ${e.what ?? ''}) has no reason`);
      assert.ok(e.reason!.length > 10, `seq ${e.seq} (${e.call}): reason "${e.reason}" says too little`);
    }
    for (const e of events.filter((x) => x.errno === 0)) assert.equal(e.reason, undefined, `seq ${e.seq}: a success has no reason`);
  });
});
