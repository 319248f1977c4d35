/**
 * An interval tree over inclusive [start, last] bigint ranges, the structure io_pagetable keeps its
 * areas, reserved ranges and allowed ranges in.
 *
 * Design: a treap ordered by (start, insertion sequence) and augmented with the largest `last` in
 * each subtree, so overlap queries prune whole subtrees. Insert, remove, first-overlap and
 * next-overlap are O(log n) expected; walking k overlapping nodes costs O(k log n). Intervals may
 * overlap each other (reserved ranges of different owners do); areas never do, but the tree does
 * not rely on it. Priorities come from a per-tree xorshift generator, so a run is reproducible and
 * no state is shared between trees.
 */

export interface IntervalNode {
  start: bigint;
  last: bigint;
}

interface TreapNode<T extends IntervalNode> {
  item: T;
  seq: number;
  prio: number;
  maxLast: bigint;
  /** The smallest start in the subtree. */
  minStart: bigint;
  /** The widest gap between neighbours inside the subtree (meaningful for disjoint trees). */
  maxGap: bigint;
  left: TreapNode<T> | null;
  right: TreapNode<T> | null;
}

/** A span of the address space: either covered by at least one node or a hole between them. */
export interface Span {
  isHole: boolean;
  start: bigint;
  last: bigint;
}

export class IntervalTree<T extends IntervalNode> {
  #root: TreapNode<T> | null = null;
  #nodes = new Map<T, TreapNode<T>>();
  #seq = 0;
  #rng = 0x9e3779b9;

  get size(): number {
    return this.#nodes.size;
  }

  isEmpty(): boolean {
    return this.#root === null;
  }

  has(item: T): boolean {
    return this.#nodes.has(item);
  }

  #nextPrio(): number {
    let x = this.#rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#rng = x >>> 0;
    return this.#rng;
  }

  static #fix<T extends IntervalNode>(n: TreapNode<T>): void {
    let m = n.item.last;
    let g = -1n;
    const { left, right } = n;
    if (left) {
      if (left.maxLast > m) m = left.maxLast;
      const edge = n.item.start - left.maxLast - 1n;
      g = left.maxGap > edge ? left.maxGap : edge;
    }
    if (right) {
      if (right.maxLast > m) m = right.maxLast;
      const edge = right.minStart - n.item.last - 1n;
      if (edge > g) g = edge;
      if (right.maxGap > g) g = right.maxGap;
    }
    n.maxLast = m;
    n.minStart = left ? left.minStart : n.item.start;
    n.maxGap = g;
  }

  static #less<T extends IntervalNode>(a: TreapNode<T>, b: TreapNode<T>): boolean {
    return a.item.start < b.item.start || (a.item.start === b.item.start && a.seq < b.seq);
  }

  /** Split into (< key) and (>= key). */
  #split(n: TreapNode<T> | null, key: TreapNode<T>): [TreapNode<T> | null, TreapNode<T> | null] {
    if (!n) return [null, null];
    if (IntervalTree.#less(n, key)) {
      const [l, r] = this.#split(n.right, key);
      n.right = l;
      IntervalTree.#fix(n);
      return [n, r];
    }
    const [l, r] = this.#split(n.left, key);
    n.left = r;
    IntervalTree.#fix(n);
    return [l, n];
  }

  #merge(a: TreapNode<T> | null, b: TreapNode<T> | null): TreapNode<T> | null {
    if (!a) return b;
    if (!b) return a;
    if (a.prio > b.prio) {
      a.right = this.#merge(a.right, b);
      IntervalTree.#fix(a);
      return a;
    }
    b.left = this.#merge(a, b.left);
    IntervalTree.#fix(b);
    return b;
  }

  insert(item: T): void {
    if (this.#nodes.has(item)) throw new Error('interval already in the tree');
    if (item.last < item.start) throw new Error(`bad interval [${item.start}, ${item.last}]`);
    const node: TreapNode<T> = {
      item,
      seq: this.#seq++,
      prio: this.#nextPrio(),
      maxLast: item.last,
      minStart: item.start,
      maxGap: -1n,
      left: null,
      right: null,
    };
    const [l, r] = this.#split(this.#root, node);
    this.#root = this.#merge(this.#merge(l, node), r);
    this.#nodes.set(item, node);
  }

  remove(item: T): void {
    const node = this.#nodes.get(item);
    if (!node) throw new Error('interval not in the tree');
    this.#root = this.#removeNode(this.#root, node);
    this.#nodes.delete(item);
  }

  #removeNode(n: TreapNode<T> | null, target: TreapNode<T>): TreapNode<T> | null {
    if (!n) throw new Error('interval tree corrupted');
    if (n === target) return this.#merge(n.left, n.right);
    if (IntervalTree.#less(target, n)) n.left = this.#removeNode(n.left, target);
    else n.right = this.#removeNode(n.right, target);
    IntervalTree.#fix(n);
    return n;
  }

  /** The lowest-ordered node overlapping [start, last], optionally only nodes ordered after `after`. */
  #first(n: TreapNode<T> | null, start: bigint, last: bigint, after: TreapNode<T> | null): TreapNode<T> | null {
    while (n) {
      if (n.maxLast < start) return null;
      const inRange = !after || IntervalTree.#less(after, n);
      if (inRange) {
        const l = this.#first(n.left, start, last, after);
        if (l) return l;
        if (n.item.start > last) return null;
        if (n.item.last >= start) return n;
      } else if (n.item.start > last) {
        return null;
      }
      n = n.right;
    }
    return null;
  }

  /** interval_tree_iter_first: the node with the lowest start overlapping [start, last]. */
  iterFirst(start: bigint, last: bigint): T | null {
    return this.#first(this.#root, start, last, null)?.item ?? null;
  }

  /** interval_tree_iter_next: the next node after `item` overlapping [start, last]. */
  iterNext(item: T, start: bigint, last: bigint): T | null {
    const node = this.#nodes.get(item);
    if (!node) throw new Error('interval not in the tree');
    return this.#first(this.#root, start, last, node)?.item ?? null;
  }

  /** Every node overlapping [start, last], in order. */
  *overlapping(start: bigint, last: bigint): Generator<T> {
    for (let it = this.iterFirst(start, last); it; it = this.iterNext(it, start, last)) yield it;
  }

  /** Every node in order. */
  *[Symbol.iterator](): Generator<T> {
    const stack: TreapNode<T>[] = [];
    let n = this.#root;
    while (n || stack.length) {
      while (n) {
        stack.push(n);
        n = n.left;
      }
      const top = stack.pop()!;
      yield top.item;
      n = top.right;
    }
  }

  /**
   * The holes of [lo, hi] no node covers, in order, skipping every subtree whose inner gaps are
   * all narrower than `minSize` — so finding the first hole that can hold `minSize` bytes costs
   * O(log n) however many nodes sit below it. Only for trees whose nodes are disjoint (areas);
   * holes narrower than `minSize` may still be reported at subtree edges.
   */
  *holes(lo: bigint, hi: bigint, minSize: bigint): Generator<Span> {
    let prev = lo - 1n;
    function* hole(nextStart: bigint): Generator<Span> {
      const end = nextStart - 1n < hi ? nextStart - 1n : hi;
      if (end > prev && end - prev >= minSize) yield { isHole: true, start: prev + 1n, last: end };
    }
    function* walk(n: TreapNode<T> | null): Generator<Span> {
      if (!n || n.maxLast < lo || n.minStart > hi || prev >= hi) return;
      if (n.left) {
        if (n.left.maxGap >= minSize) yield* walk(n.left);
        else if (n.left.maxLast >= lo && n.left.minStart <= hi) {
          yield* hole(n.left.minStart);
          if (n.left.maxLast > prev) prev = n.left.maxLast;
        }
      }
      if (prev >= hi || n.item.start > hi) return;
      yield* hole(n.item.start);
      if (n.item.last > prev) prev = n.item.last;
      if (n.right) {
        if (n.right.maxGap >= minSize) yield* walk(n.right);
        else if (n.right.maxLast >= lo && n.right.minStart <= hi) {
          yield* hole(n.right.minStart);
          if (n.right.maxLast > prev) prev = n.right.maxLast;
        }
      }
    }
    yield* walk(this.#root);
    if (prev < hi && hi - prev >= minSize) yield { isHole: true, start: prev + 1n, last: hi };
  }

  /**
   * interval_tree_span_iter: split [start, last] into alternating used spans (the union of
   * overlapping or touching nodes) and holes.
   */
  *spans(start: bigint, last: bigint): Generator<Span> {
    let cur = start;
    let it = this.iterFirst(start, last);
    while (it) {
      if (it.start > cur) {
        yield { isHole: true, start: cur, last: it.start - 1n };
        cur = it.start;
      }
      let usedLast = it.last;
      let next = this.iterNext(it, start, last);
      while (next && (next.start <= usedLast || next.start === usedLast + 1n)) {
        if (next.last > usedLast) usedLast = next.last;
        next = this.iterNext(next, start, last);
      }
      if (usedLast >= last) {
        yield { isHole: false, start: cur, last };
        return;
      }
      yield { isHole: false, start: cur, last: usedLast };
      cur = usedLast + 1n;
      it = next;
    }
    yield { isHole: true, start: cur, last };
  }
}

/**
 * interval_tree_double_span_iter: spans of [start, last] that are holes in both trees, or used by
 * either.
 */
export function* doubleSpans<A extends IntervalNode, B extends IntervalNode>(
  a: IntervalTree<A>,
  b: IntervalTree<B>,
  start: bigint,
  last: bigint,
): Generator<Span> {
  let cur = start;
  for (;;) {
    const na = a.iterFirst(cur, last);
    const nb = b.iterFirst(cur, last);
    if (!na && !nb) {
      yield { isHole: true, start: cur, last };
      return;
    }
    const firstStart = na && nb ? (na.start < nb.start ? na.start : nb.start) : (na ?? nb)!.start;
    if (firstStart > cur) {
      yield { isHole: true, start: cur, last: firstStart - 1n };
      cur = firstStart;
    }
    // Extend the used span while either tree covers the next address; ranges may overlap within
    // a tree, so take the furthest `last` of every node covering the probe.
    let usedLast = cur - 1n;
    while (usedLast < last) {
      const probe = usedLast + 1n;
      let ext = usedLast;
      for (const n of a.overlapping(probe, probe)) if (n.last > ext) ext = n.last;
      for (const n of b.overlapping(probe, probe)) if (n.last > ext) ext = n.last;
      if (ext === usedLast) break;
      usedLast = ext;
    }
    if (usedLast >= last) {
      yield { isHole: false, start: cur, last };
      return;
    }
    yield { isHole: false, start: cur, last: usedLast };
    cur = usedLast + 1n;
  }
}
