/**
 * copy_from_user / copy_to_user and friends: how kernel code reads and writes the calling task's
 * memory. Faults become EFAULT; the `usercopy` fault site can fail any of them on purpose.
 */

import { Errno, KernelError, fail } from '../errno.js';
import type { Process } from './process.js';

function injected(task: Process, what: string): void {
  if (task.machine.inject.shouldFail(task, 'usercopy')) fail(Errno.EFAULT, `${what}: fault injected (fail-nth)`);
}

export function copyFromUser(task: Process, uaddr: bigint, length: number, what = 'copy_from_user'): Uint8Array {
  injected(task, what);
  if (length === 0) return new Uint8Array(0);
  try {
    return task.mm.read(uaddr, length);
  } catch (e) {
    return rethrowFault(e, what, uaddr, length);
  }
}

export function copyToUser(task: Process, uaddr: bigint, data: Uint8Array, what = 'copy_to_user'): void {
  injected(task, what);
  if (data.length === 0) return;
  try {
    task.mm.write(uaddr, data);
  } catch (e) {
    rethrowFault(e, what, uaddr, data.length);
  }
}

function rethrowFault(e: unknown, what: string, uaddr: bigint, length: number): never {
  if (e instanceof KernelError && e.errno === Errno.EFAULT) {
    fail(Errno.EFAULT, `${what} of ${length} bytes at 0x${uaddr.toString(16)}: ${e.reason}`);
  }
  throw e;
}

export function getUser32(task: Process, uaddr: bigint, what = 'get_user'): number {
  const b = copyFromUser(task, uaddr, 4, what);
  return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
}

/**
 * copy_struct_from_user: read a user struct of `usize` bytes into a kernel struct of `ksize`.
 * A shorter user struct is zero-extended; a longer one must be zero past `ksize` (else E2BIG).
 */
export function copyStructFromUser(task: Process, ksize: number, uaddr: bigint, usize: number, what: string): Uint8Array {
  const out = new Uint8Array(ksize);
  const n = Math.min(ksize, usize);
  if (usize > ksize) checkZeroedUser(task, uaddr + BigInt(ksize), usize - ksize, ksize, what);
  out.set(copyFromUser(task, uaddr, n, what));
  return out;
}

/**
 * check_zeroed_user: walk the trailing bytes a machine word at a time (from the word holding the
 * first byte), so a non-zero byte is reported (E2BIG) before a fault in a later word (EFAULT).
 */
function checkZeroedUser(task: Process, from: bigint, size: number, ksize: number, what: string): void {
  const end = from + BigInt(size);
  for (let word = from & ~7n; word < end; word += 8n) {
    const lo = word < from ? from : word;
    const hi = word + 8n < end ? word + 8n : end;
    const bytes = copyFromUser(task, lo, Number(hi - lo), what);
    const at = bytes.findIndex((b) => b !== 0);
    if (at >= 0) {
      fail(Errno.E2BIG, `${what}: byte ${ksize + Number(lo - from) + at} of the ${ksize + size}-byte struct is non-zero past the ${ksize} bytes this kernel knows`);
    }
  }
}
