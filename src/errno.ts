/**
 * Linux errno values (x86-64) and the error type the emulated kernel throws.
 *
 * Deep code throws `KernelError(errno, reason)`; the syscall boundary catches it and turns it into
 * `{ ret: -1, errno, reason }`. Any other exception escaping a handler is an emulator bug.
 */

export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  ECHILD: 10,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOTTY: 25,
  ENOSPC: 28,
  ESPIPE: 29,
  EROFS: 30,
  EPIPE: 32,
  ERANGE: 34,
  EDEADLK: 35,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  EBADE: 52,
  EOVERFLOW: 75,
  EBADFD: 77,
  EMSGSIZE: 90,
  EOPNOTSUPP: 95,
  EADDRINUSE: 98,
} as const;

export type ErrnoName = keyof typeof Errno;
export type ErrnoValue = (typeof Errno)[ErrnoName];

/** The kernel's EDEADLOCK is the same number as EDEADLK on x86. */
export const EDEADLOCK = Errno.EDEADLK;

const names = new Map<number, ErrnoName>(
  (Object.entries(Errno) as [ErrnoName, number][]).map(([k, v]) => [v, k]),
);

/** `errnoName(22)` → `"EINVAL"`; unknown numbers print as `E<n>`. */
export function errnoName(errno: number): string {
  return names.get(errno) ?? `E${errno}`;
}

/** A refusal from the emulated kernel: the errno userspace sees and the check that failed. */
export class KernelError extends Error {
  readonly errno: number;
  readonly reason: string;

  constructor(errno: number, reason: string) {
    super(`${errnoName(errno)}: ${reason}`);
    this.name = 'KernelError';
    this.errno = errno;
    this.reason = reason;
  }
}

/** Throw `KernelError(errno, reason)`; typed `never` so it reads like the kernel's `return -E...`. */
export function fail(errno: number, reason: string): never {
  throw new KernelError(errno, reason);
}
