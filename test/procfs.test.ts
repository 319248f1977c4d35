import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Errno, IOMMU_IOAS_ALLOC, iommu_ioas_alloc } from '../src/index.js';
import { checkedMachine, fails, ok } from './helpers.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

test('writing N to /proc/self/task/TID/fail-nth fails the Nth fault site, then reads back 0', () => {
  const m = checkedMachine();
  const p = m.spawn();
  const iommufd = p.openOrThrow('/dev/iommu');
  const fd = ok(p.open(`/proc/self/task/${p.pid}/fail-nth`));
  const buf = p.mmapOrThrow(4096n);
  p.poke(buf, enc('1\n'));
  assert.equal(ok(p.write(fd, buf, 2)), 2);
  assert.equal(p.failNth, 1);
  const r = p.ioctl(iommufd, IOMMU_IOAS_ALLOC, iommu_ioas_alloc.encode({ size: iommu_ioas_alloc.size }));
  assert.match(fails(r, Errno.ENOMEM), /fault injected/);
  const rd = ok(p.open(`/proc/${p.pid}/task/${p.pid}/fail-nth`));
  assert.equal(ok(p.read(rd, buf, 16)), 2);
  assert.equal(new TextDecoder().decode(p.peek(buf, 2)), '0\n');
  assert.equal(ok(p.read(rd, buf, 16)), 0, 'a second read is at end of file');
});

test('fail-nth accepts hex and octal like kstrtouint and refuses junk with EINVAL', () => {
  const m = checkedMachine();
  const p = m.spawn();
  const fd = ok(p.open(`/proc/self/task/${p.pid}/fail-nth`));
  const buf = p.mmapOrThrow(4096n);
  for (const [text, want] of [['0x10', 16], ['010', 8], ['7', 7], ['0', 0]] as const) {
    p.poke(buf, enc(text));
    ok(p.write(fd, buf, text.length));
    assert.equal(p.failNth, want, text);
  }
  p.poke(buf, enc('-1'));
  fails(p.write(fd, buf, 2), Errno.EINVAL);
  p.poke(buf, enc('9999999999'));
  fails(p.write(fd, buf, 10), Errno.ERANGE);
  assert.equal(p.failNth, 0);
});

test('fail-nth of another pid or a tid that is not the task is ENOENT', () => {
  const m = checkedMachine();
  const p = m.spawn();
  fails(p.open('/proc/99999/task/99999/fail-nth'), Errno.ENOENT);
  fails(p.open(`/proc/self/task/${p.pid + 1}/fail-nth`), Errno.ENOENT);
});

test('pread of fail-nth reads at the offset and leaves the position; /dev/null preads nothing; an eventfd (an anon-inode file: no FMODE_PREAD) is ESPIPE', () => {
  const m = checkedMachine();
  const p = m.spawn();
  const fd = ok(p.open(`/proc/self/task/${p.pid}/fail-nth`));
  const buf = p.mmapOrThrow(4096n);
  p.failNth = 42;
  assert.equal(ok(p.pread(fd, buf, 16, 1n)), 2);
  assert.equal(new TextDecoder().decode(p.peek(buf, 2)), '2\n');
  assert.equal(ok(p.read(fd, buf, 16)), 3, 'the file position was not moved');
  fails(p.pread(fd, buf, 16, -1n), Errno.EINVAL);
  assert.equal(ok(p.pread(0, buf, 16, 0n)), 0);
  fails(p.pread(ok(p.eventfd()), buf, 8, 0n), Errno.ESPIPE);
});
