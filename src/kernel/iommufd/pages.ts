/**
 * iopt_pages: a run of user memory that one IOAS_MAP named, and the pins held on it.
 *
 * An iopt_pages is created when userspace maps memory but pins nothing by itself: pages are pinned
 * when something needs their frames — a domain (when the IOAS has one) or an in-kernel access.
 * Each page index is pinned at most once per iopt_pages however many users need it; `users`
 * counts them, and the last one to go unpins. IOAS_COPY shares the same iopt_pages (no re-pin).
 *
 * Accounting follows pages.c: pinned pages are charged to the mapping task's user (per-user
 * locked_vm against RLIMIT_MEMLOCK), to its mm (RLIMIT_MODE=1, or /dev/vfio/vfio), or not at all
 * with CAP_IPC_LOCK; mm->pinned_vm always moves. Going over the limit is ENOMEM and leaves
 * nothing pinned or charged.
 */

import { Errno, fail } from '../../errno.js';
import type { UserStruct } from '../machine.js';
import { type Mm, unpinFrame } from '../mm/mm.js';
import { type Frame, PAGE_SHIFT, PAGE_SIZE_N } from '../mm/physmem.js';
import { CAP_IPC_LOCK, type Process } from '../process.js';
import { type AccountMode, IOPT_PAGES_ACCOUNT } from './object.js';

const ULONG_MAX = (1n << 64n) - 1n;

interface PinnedPage {
  frame: Frame;
  users: number;
}

export class IoptPages {
  /** kref: areas and in-flight copy lists holding this run. */
  refs = 1;
  readonly sourceMm: Mm;
  readonly sourceTask: Process;
  readonly sourceUser: UserStruct;
  /** Page-aligned start of the run. */
  readonly uptr: bigint;
  readonly npages: number;
  readonly writable: boolean;
  accountMode: AccountMode;
  /** Pages pinned now, and the count last charged to the accounting. */
  npinned = 0;
  lastNpinned = 0;
  readonly #pinned = new Map<number, PinnedPage>();

  private constructor(task: Process, uptr: bigint, npages: number, writable: boolean) {
    this.sourceMm = task.mm;
    this.sourceTask = task;
    this.sourceUser = task.user;
    this.uptr = uptr;
    this.npages = npages;
    this.writable = writable;
    this.accountMode = task.capable(CAP_IPC_LOCK) ? IOPT_PAGES_ACCOUNT.NONE : IOPT_PAGES_ACCOUNT.USER;
  }

  /** iopt_alloc_pages. */
  static alloc(task: Process, uptr: bigint, length: bigint, writable: boolean): IoptPages {
    if (length === 0n) fail(Errno.EINVAL, 'length is 0');
    if (length > ULONG_MAX - PAGE_SIZE_N) fail(Errno.EINVAL, `length 0x${length.toString(16)} is too large`);
    if (uptr + length > ULONG_MAX) fail(Errno.EOVERFLOW, `user_va 0x${uptr.toString(16)} + length overflows`);
    if (task.machine.inject.shouldFail(task, 'slab')) fail(Errno.ENOMEM, 'allocating iopt_pages: fault injected (fail-nth)');
    const start = uptr & ~(PAGE_SIZE_N - 1n);
    const npages = Number((length + (uptr - start) + PAGE_SIZE_N - 1n) >> BigInt(PAGE_SHIFT));
    return new IoptPages(task, start, npages, writable);
  }

  get(): this {
    this.refs++;
    return this;
  }

  /** Drop a reference; the last one requires every pin to be gone already. */
  put(): void {
    if (--this.refs === 0 && this.#pinned.size) throw new Error('iopt_pages released with pages still pinned');
  }

  /** The frame pinned at `index`, if any user holds it. */
  frameAt(index: number): Frame | undefined {
    return this.#pinned.get(index)?.frame;
  }

  pinnedIndexes(): IterableIterator<number> {
    return this.#pinned.keys();
  }

  usersAt(index: number): number {
    return this.#pinned.get(index)?.users ?? 0;
  }

  /**
   * Add one user to every page in [start, last], pinning (and charging) those that had none.
   * All or nothing.
   */
  pin(task: Process | null, start: number, last: number): Frame[] {
    if (last < start || last >= this.npages) throw new Error(`pin of [${start}, ${last}] outside ${this.npages} pages`);
    const inject = this.sourceTask.machine.inject;
    if (inject.shouldFail(task, 'slab')) fail(Errno.ENOMEM, 'allocating the pin batch: fault injected (fail-nth)');
    // Runs of indexes nobody holds yet are pinned from the source mm in one go each.
    const fresh: [number, Frame[]][] = [];
    const undo = (): void => {
      for (const [, frames] of fresh) for (const f of frames) unpinFrame(this.sourceMm.phys, f);
      this.npinned -= fresh.reduce((n, [, fr]) => n + fr.length, 0);
    };
    try {
      let i = start;
      while (i <= last) {
        if (this.#pinned.has(i)) {
          i++;
          continue;
        }
        let j = i;
        while (j + 1 <= last && !this.#pinned.has(j + 1)) j++;
        if (!this.sourceMm.alive) fail(Errno.EFAULT, 'the mapping process has exited: its memory can no longer be pinned');
        if (inject.shouldFail(task, 'iommufd')) fail(Errno.EFAULT, 'pinning user pages: fault injected (fail-nth)');
        const frames = this.sourceMm.pinPages(this.uptr + BigInt(i) * PAGE_SIZE_N, j - i + 1, this.writable);
        fresh.push([i, frames]);
        this.npinned += frames.length;
        i = j + 1;
      }
      if (this.npinned > this.lastNpinned && inject.shouldFail(task, 'iommufd')) {
        fail(Errno.ENOMEM, 'charging pinned pages: fault injected (fail-nth)');
      }
      this.#updatePinned();
    } catch (e) {
      undo();
      throw e;
    }
    for (const [first, frames] of fresh) frames.forEach((f, k) => this.#pinned.set(first + k, { frame: f, users: 0 }));
    const out: Frame[] = [];
    for (let i = start; i <= last; i++) {
      const p = this.#pinned.get(i)!;
      p.users++;
      out.push(p.frame);
    }
    return out;
  }

  /** Drop one user from every page in [start, last]; pages left with none are unpinned. */
  unpin(start: number, last: number): void {
    for (let i = start; i <= last; i++) {
      const p = this.#pinned.get(i);
      if (!p) throw new Error(`unpin of index ${i} that is not pinned`);
      if (--p.users === 0) {
        this.#pinned.delete(i);
        unpinFrame(this.sourceMm.phys, p.frame);
        this.npinned--;
      }
    }
    this.#updatePinned();
  }

  /** do_update_pinned: charge or refund the difference since the last update. */
  #updatePinned(): void {
    if (this.npinned === this.lastNpinned) return;
    const inc = this.npinned > this.lastNpinned;
    const n = Math.abs(this.npinned - this.lastNpinned);
    const limitPages = this.sourceTask.rlimits.memlock >> BigInt(PAGE_SHIFT);
    switch (this.accountMode) {
      case IOPT_PAGES_ACCOUNT.NONE:
        break;
      case IOPT_PAGES_ACCOUNT.USER:
        if (inc) {
          if (BigInt(this.sourceUser.lockedVm + n) > limitPages) {
            fail(Errno.ENOMEM, `pinning ${n} pages would raise uid ${this.sourceUser.uid}'s locked memory to ${this.sourceUser.lockedVm + n} pages, over RLIMIT_MEMLOCK (${limitPages} pages)`);
          }
          this.sourceUser.lockedVm += n;
        } else {
          this.sourceUser.lockedVm -= n;
        }
        break;
      case IOPT_PAGES_ACCOUNT.MM:
        if (inc) {
          if (!this.sourceMm.alive) fail(Errno.EINVAL, 'the mapping process has exited: its mm cannot be charged');
          if (BigInt(this.sourceMm.lockedVm + n) > limitPages) {
            fail(Errno.ENOMEM, `pinning ${n} pages would raise the process's locked_vm to ${this.sourceMm.lockedVm + n} pages, over RLIMIT_MEMLOCK (${limitPages} pages)`);
          }
          this.sourceMm.lockedVm += n;
        } else {
          this.sourceMm.lockedVm -= n;
        }
        break;
    }
    this.sourceMm.pinnedVm += inc ? n : -n;
    this.lastNpinned = this.npinned;
  }
}
