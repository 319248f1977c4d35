/**
 * The mock IOMMU's page table (selftest.c mock_iommu_domain): 2 KiB entries, map/unmap
 * bookkeeping that catches an unmap splitting a map, iova_to_phys, dirty bits.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MOCK_HUGE_PAGE_SIZE, MOCK_IO_PAGE_SIZE, MockPgtable } from '../src/hw/mock_pgtable.js';

const P = MOCK_IO_PAGE_SIZE;

test('a map is one entry per 2 KiB, translating to the matching physical address', () => {
  const t = new MockPgtable(false);
  assert.equal(t.pgsizeBitmap, 2048n);
  t.mapPages(0x1000000n, 0x5000n, P, 4, 3);
  assert.equal(t.entries, 4);
  assert.equal(t.iovaToPhys(0x1000000n + P + 7n), 0x5000n + P + 7n);
  assert.equal(t.iovaToPhys(0x1000000n + 4n * P), null);
  assert.equal(t.protAt(0x1000000n), 3);
});

test('unmap must cover whole earlier maps: starting or ending inside one is caught', () => {
  const t = new MockPgtable(false);
  t.mapPages(0n, 0n, P, 4, 1);
  assert.throws(() => t.unmapPages(P, P, 3), /starts inside a map/);
  const u = new MockPgtable(false);
  u.mapPages(0n, 0n, P, 4, 1);
  assert.throws(() => u.unmapPages(0n, P, 2), /ends inside a map/);
  const v = new MockPgtable(false);
  v.mapPages(0n, 0n, P, 2, 1);
  v.mapPages(2n * P, 0x9000n, P, 2, 1);
  assert.equal(v.unmapPages(0n, P, 4), 4n * P, 'two whole maps in one unmap are fine');
  assert.equal(v.entries, 0);
});

test('mapping over a live entry or unaligned is an emulator bug and throws', () => {
  const t = new MockPgtable(false);
  t.mapPages(0n, 0n, P, 1, 1);
  assert.throws(() => t.mapPages(0n, 0n, P, 1, 1), /already mapped/);
  assert.throws(() => t.mapPages(0x100n, 0n, P, 1, 1), /unaligned/);
  assert.equal(t.entries, 1);
});

test('HUGE_IOVA devices add 1 MiB pages; their entries are marked huge and splits are allowed', () => {
  const t = new MockPgtable(true);
  assert.equal(t.pgsizeBitmap, P | MOCK_HUGE_PAGE_SIZE);
  t.mapPages(0n, 0n, MOCK_HUGE_PAGE_SIZE, 1, 1);
  assert.ok(t.isHuge(P * 7n));
  assert.equal(t.unmapPages(P, P, 1), P, 'no start/last check with huge pages enabled');
});

test('dirty bits: marked per entry, read and cleared by range, NO_CLEAR keeps them', () => {
  const t = new MockPgtable(false);
  t.mapPages(0n, 0n, P, 8, 3);
  assert.ok(t.markDirty(3n * P));
  assert.equal(t.markDirty(100n * P), false);
  assert.equal(t.testAndClearDirty(0n, 2n * P, false), false);
  assert.equal(t.testAndClearDirty(2n * P, 2n * P, true), true);
  assert.equal(t.testAndClearDirty(2n * P, 2n * P, false), true);
  assert.equal(t.testAndClearDirty(0n, 8n * P, false), false, 'cleared');
});
