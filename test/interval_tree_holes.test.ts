/**
 * The gap-augmented hole search that makes kernel-chosen IOVAs O(log n) must find exactly the
 * holes a plain span walk finds.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IntervalTree, type IntervalNode, doubleSpans } from '../src/kernel/lib/interval_tree.js';
import { rng } from './helpers.js';

test('holes() equals the hole spans of at least minSize, for random disjoint trees', () => {
  const r = rng(42);
  for (let round = 0; round < 200; round++) {
    const tree = new IntervalTree<IntervalNode>();
    const live: IntervalNode[] = [];
    let at = BigInt(Math.floor(r() * 50));
    const n = Math.floor(r() * 60);
    for (let i = 0; i < n; i++) {
      const node = { start: at, last: at + BigInt(Math.floor(r() * 20)) };
      at = node.last + 1n + BigInt(Math.floor(r() * 3) === 0 ? 0 : Math.floor(r() * 30));
      live.push(node);
    }
    // Insert in random order, then remove a random third, to exercise rebalancing.
    for (const node of [...live].sort(() => r() - 0.5)) tree.insert(node);
    for (const node of live.filter(() => r() < 0.33)) tree.remove(node);
    for (let q = 0; q < 20; q++) {
      const lo = BigInt(Math.floor(r() * 600));
      const hi = lo + BigInt(Math.floor(r() * 800));
      const minSize = BigInt(1 + Math.floor(r() * 25));
      const want = [...tree.spans(lo, hi)].filter((s) => s.isHole && s.last - s.start + 1n >= minSize);
      assert.deepEqual([...tree.holes(lo, hi, minSize)], want, `round ${round} query [${lo}, ${hi}] min ${minSize}`);
    }
  }
});

test('holes() of an empty tree is the whole range', () => {
  const tree = new IntervalTree<IntervalNode>();
  assert.deepEqual([...tree.holes(5n, 10n, 1n)], [{ isHole: true, start: 5n, last: 10n }]);
  assert.deepEqual([...tree.holes(5n, 10n, 7n)], []);
});

test('holes() cut by a second tree give the same free ranges as doubleSpans', () => {
  const r = rng(7);
  for (let round = 0; round < 100; round++) {
    const areas = new IntervalTree<IntervalNode>();
    const reserved = new IntervalTree<IntervalNode>();
    let at = 0n;
    for (let i = 0; i < 40; i++) {
      at += BigInt(Math.floor(r() * 10));
      const node = { start: at, last: at + BigInt(Math.floor(r() * 10)) };
      at = node.last + 1n;
      (r() < 0.7 ? areas : reserved).insert(node);
    }
    // Reserved ranges may overlap each other.
    for (let i = 0; i < 5; i++) {
      const s = BigInt(Math.floor(r() * 400));
      reserved.insert({ start: s, last: s + BigInt(Math.floor(r() * 15)) });
    }
    const lo = 0n;
    const hi = 500n;
    const want = [...doubleSpans(reserved, areas, lo, hi)].filter((s) => s.isHole);
    const got = [...areas.holes(lo, hi, 1n)].flatMap((h) => [...reserved.spans(h.start, h.last)].filter((s) => s.isHole));
    assert.deepEqual(got, want, `round ${round}`);
  }
});
