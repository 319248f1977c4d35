/**
 * eventfd: a 64-bit counter file that interrupt sources signal and userspace reads. VFIO's
 * SET_IRQS takes eventfd numbers and keeps a reference to each (eventfd_ctx_fdget); an interrupt
 * adds 1 to the counter (eventfd_signal).
 *
 * In-process, `Process.eventfd()` makes an emulated eventfd. Through the daemon the client's
 * eventfds are real files in the client: fget finds them as foreign files (vfs.ts) that know how
 * to pin and signal them in the client.
 */

import { Errno, fail } from '../errno.js';
import type { Process } from './process.js';
import { copyFromUser, copyToUser } from './uaccess.js';
import { File, FOREIGN_FOPS, type FileOperations, type ForeignFile, O_NONBLOCK, POLLIN, POLLOUT } from './vfs.js';

export const EFD_SEMAPHORE = 1;
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;

const ULLONG_MAX = (1n << 64n) - 1n;

/** What an interrupt source holds: a way to add to the counter, and its reference to drop. */
export interface EventfdCtx {
  readonly label: string;
  signal(): void;
  put(): void;
  /**
   * The kernel as a reader (virqfd: IOEVENTFD, INTx unmask by eventfd): `fn` runs each time the
   * eventfd is written, and the count it added is consumed (eventfd_ctx_do_read in the wait
   * queue callback); a count already pending runs `fn` once at once and stays (vfio_virqfd_enable).
   * Returns the way to stop watching.
   */
  watch(fn: () => void): () => void;
}

export class Eventfd {
  count = 0n;
  /** Total signals delivered (for tests and the object graph). */
  signals = 0;
  readonly semaphore: boolean;
  /** Kernel readers woken by every write (virqfd). */
  readonly watchers = new Set<() => void>();

  constructor(initval: bigint, semaphore: boolean) {
    this.count = initval;
    this.semaphore = semaphore;
  }

  /** The count went up: wake the wait queue; a kernel reader takes the count (eventfd_ctx_do_read). */
  wake(): void {
    if (!this.watchers.size) return;
    this.count -= this.semaphore ? 1n : this.count;
    for (const fn of [...this.watchers]) fn();
  }
}

export const EVENTFD_FOPS: FileOperations = {
  name: 'eventfd',
  read(file, task, buf, count) {
    const e = file.priv as Eventfd;
    if (count < 8) fail(Errno.EINVAL, `eventfd reads need 8 bytes, got ${count}`);
    if (e.count === 0n) fail(Errno.EAGAIN, 'the eventfd counter is 0 (an emulated read never blocks)');
    const v = e.semaphore ? 1n : e.count;
    const out = new Uint8Array(8);
    new DataView(out.buffer).setBigUint64(0, v, true);
    copyToUser(task, buf, out, 'eventfd read');
    e.count -= v;
    return 8;
  },
  write(file, task, buf, count) {
    const e = file.priv as Eventfd;
    if (count < 8) fail(Errno.EINVAL, `eventfd writes need 8 bytes, got ${count}`);
    const v = new DataView(copyFromUser(task, buf, 8, 'eventfd write').buffer).getBigUint64(0, true);
    if (v === ULLONG_MAX) fail(Errno.EINVAL, 'an eventfd cannot be written 0xffffffffffffffff');
    if (e.count + v >= ULLONG_MAX) fail(Errno.EAGAIN, 'the eventfd counter would overflow (an emulated write never blocks)');
    e.count += v;
    if (v) e.wake();
    return 8;
  },
  poll(file) {
    const e = file.priv as Eventfd;
    return (e.count > 0n ? POLLIN : 0) | (e.count < ULLONG_MAX - 1n ? POLLOUT : 0);
  },
};

export function eventfdFile(initval: number, flags: number): File {
  if (flags & ~(EFD_SEMAPHORE | EFD_CLOEXEC | EFD_NONBLOCK)) fail(Errno.EINVAL, `eventfd flags 0x${flags.toString(16)} has unknown bits`);
  return new File(EVENTFD_FOPS, 'anon_inode:[eventfd]', (flags & EFD_NONBLOCK ? O_NONBLOCK : 0) | 2, new Eventfd(BigInt(initval >>> 0), (flags & EFD_SEMAPHORE) !== 0));
}

/** eventfd_ctx_fdget: EBADF for no file, EINVAL for a file that is not an eventfd. */
export function eventfdCtxFdget(task: Process, fd: number): EventfdCtx {
  const f = task.fget(fd);
  if (f.ops === FOREIGN_FOPS) {
    const remote = (f.priv as ForeignFile).eventfd;
    if (!remote) fail(Errno.EINVAL, `fd ${fd} is ${f.path}, not an eventfd`);
    return remote();
  }
  if (f.ops !== EVENTFD_FOPS) fail(Errno.EINVAL, `fd ${fd} is ${f.ops.name}, not an eventfd`);
  const e = f.priv as Eventfd;
  f.get();
  return {
    label: `eventfd (fd ${fd} of pid ${task.pid})`,
    signal: () => {
      e.signals++;
      if (e.count < ULLONG_MAX - 1n) e.count++;
      e.wake();
    },
    put: () => f.put(),
    watch: (fn) => {
      // A private wrapper per watch, so one function watching twice unhooks once each.
      const w = (): void => fn();
      e.watchers.add(w);
      if (e.count > 0n) fn();
      return () => e.watchers.delete(w);
    },
  };
}
