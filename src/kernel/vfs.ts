/**
 * Files, file operations and the device namespace: what open() finds at a path and what an fd
 * refers to. A `File` is shared by dup and fork and released with its last reference, as struct
 * file is; device modules register a `CharDevice` per path.
 */

import { Errno, fail } from '../errno.js';
import type { Process } from './process.js';

export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;

export const POLLIN = 0x1;
export const POLLOUT = 0x4;
export const POLLERR = 0x8;

/** What a file does; every member optional, missing ones answer as the kernel's defaults do. */
export interface FileOperations {
  readonly name: string;
  /** Positioned reads and writes (pread/pwrite) make sense; anon-inode files answer ESPIPE. */
  readonly seekable?: boolean;
  ioctl?(file: File, cmd: number, arg: bigint, task: Process): number;
  read?(file: File, task: Process, buf: bigint, count: number): number;
  write?(file: File, task: Process, buf: bigint, count: number): number;
  poll?(file: File, task: Process): number;
  /** mmap of the file at byte `offset`; returns the user address of the new mapping. */
  mmap?(file: File, task: Process, addr: bigint, length: bigint, prot: number, flags: number, offset: bigint): bigint;
  release?(file: File): void;
}

export class File {
  readonly ops: FileOperations;
  readonly path: string;
  flags: number;
  /** The file position, for files read as a stream. */
  pos = 0;
  refs = 1;
  /** The subsystem's state for this open file (private_data). */
  priv: unknown;

  constructor(ops: FileOperations, path: string, flags: number, priv: unknown) {
    this.ops = ops;
    this.path = path;
    this.flags = flags;
    this.priv = priv;
  }

  get(): File {
    if (this.refs <= 0) throw new Error(`get of released file ${this.path}`);
    this.refs++;
    return this;
  }

  /** fput: release with the last reference. */
  put(): void {
    if (this.refs <= 0) throw new Error(`put of released file ${this.path}`);
    if (--this.refs === 0) this.ops.release?.(this);
  }
}

export interface CharDevice {
  readonly major: number;
  readonly minor: number;
  /** Mode bits of the node (e.g. 0o660). */
  readonly mode: number;
  open(task: Process, flags: number, path: string): File;
}

/** The device nodes of a machine, by absolute path. */
export class DeviceRegistry {
  #nodes = new Map<string, CharDevice>();

  register(path: string, dev: CharDevice): void {
    if (this.#nodes.has(path)) throw new Error(`${path} registered twice`);
    this.#nodes.set(path, dev);
  }

  unregister(path: string): void {
    this.#nodes.delete(path);
  }

  lookup(path: string): CharDevice {
    const dev = this.#nodes.get(path);
    if (!dev) fail(Errno.ENOENT, `${path} does not exist on this machine`);
    return dev;
  }

  paths(): string[] {
    return [...this.#nodes.keys()].sort();
  }
}
