/**
 * The radix IO page table beneath the VT-d and SMMU profiles: page-size selection, walks,
 * refusals that map nothing, unmap of whole leaves, and freeing of emptied tables.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IOPTE_READ, IOPTE_WRITE, IoPgtable, IoPgtableError } from '../src/hw/io_pgtable.js';

const K4 = 0x1000n;
const M2 = 0x200000n;
const G1 = 0x40000000n;
const ALL = K4 | M2 | G1;

test('a 4-level 48-bit table maps 4 KiB pages and walks them back', () => {
  const t = new IoPgtable({ pgsizeBitmap: ALL, ias: 48 });
  assert.equal(t.levels, 4);
  t.map(0x10000n, 0x7000n, 2n * K4, IOPTE_READ);
  assert.deepEqual(t.translate(0x10123n), { paddr: 0x7123n, perm: IOPTE_READ, pageSize: K4 });
  assert.deepEqual(t.translate(0x11fffn), { paddr: 0x8fffn, perm: IOPTE_READ, pageSize: K4 });
  assert.equal(t.translate(0x12000n), null);
  assert.equal(t.mapped, 2n * K4);
});

test('physical address 0 with no permissions is still a mapping', () => {
  const t = new IoPgtable({ pgsizeBitmap: K4, ias: 39 });
  t.map(0n, 0n, K4, 0);
  assert.deepEqual(t.translate(0x10n), { paddr: 0x10n, perm: 0, pageSize: K4 });
});

test('aligned contiguous runs become 2 MiB and 1 GiB leaves, as iommu_pgsize picks', () => {
  const t = new IoPgtable({ pgsizeBitmap: ALL, ias: 48 });
  t.map(G1 - K4, 0x100000000n - K4, K4 + G1 + M2, IOPTE_READ | IOPTE_WRITE);
  assert.equal(t.translate(G1 - K4)!.pageSize, K4);
  assert.equal(t.translate(G1)!.pageSize, G1);
  assert.equal(t.translate(2n * G1)!.pageSize, M2);
  assert.equal(t.translate(2n * G1 + 5n)!.paddr, 0x100000000n + G1 + 5n);
  const only4k = new IoPgtable({ pgsizeBitmap: K4, ias: 48 });
  only4k.map(0n, 0n, M2, IOPTE_READ);
  assert.equal(only4k.translate(0n)!.pageSize, K4);
});

test('mapping over an existing entry is refused and maps nothing new', () => {
  const t = new IoPgtable({ pgsizeBitmap: ALL, ias: 48 });
  t.map(0x3000n, 0x3000n, K4, IOPTE_READ);
  const tables = t.tableCount;
  assert.throws(() => t.map(0x1000n, 0x1000n, 3n * K4, IOPTE_READ), IoPgtableError);
  assert.equal(t.translate(0x1000n), null, 'the pages before the clash were rolled back');
  assert.equal(t.mapped, K4);
  assert.equal(t.tableCount, tables);
  t.map(2n * M2, 0n, 2n * M2, IOPTE_READ);
  assert.throws(() => t.map(3n * M2 + 3n * K4, 0n, K4, IOPTE_READ), /inside a larger mapping/);
});

test('an IOVA beyond the aperture and a size no page fits are refused', () => {
  const t = new IoPgtable({ pgsizeBitmap: ALL, ias: 39 });
  assert.throws(() => t.map(1n << 39n, 0n, K4, IOPTE_READ), /aperture/);
  assert.throws(() => t.map(0x800n, 0n, K4, IOPTE_READ), /no supported page size/);
});

test('unmap removes whole leaves, stops at a hole, refuses to split, and frees emptied tables', () => {
  const t = new IoPgtable({ pgsizeBitmap: ALL, ias: 48 });
  const root = t.tableCount;
  t.map(0n, 0n, M2 + 2n * K4, IOPTE_READ);
  assert.throws(() => t.unmap(0n, K4), /split/);
  assert.equal(t.unmap(0n, M2 + K4), M2 + K4);
  assert.equal(t.translate(M2 + K4)!.paddr, M2 + K4);
  assert.equal(t.unmap(M2 + K4, 4n * K4), K4, 'stops at the first hole');
  assert.equal(t.mapped, 0n);
  assert.equal(t.tableCount, root, 'every table but the root was freed');
});
