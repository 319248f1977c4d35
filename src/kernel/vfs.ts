/**
 * Files, file operations and the device namespace: what open() finds at a path and what an fd
 * refers to. A `File` is shared by dup and fork and released with its last reference, as struct
 * file is; device modules register a `CharDevice` per path.
 */

import { Errno, fail } from '../errno.js';
import type { EventfdCtx } from './eventfd.js';
import type { Process } from './process.js';

export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_NOCTTY = 0o400;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;
export const O_NONBLOCK = 0o4000;
export const O_DSYNC = 0o10000;
export const FASYNC = 0o20000;
export const O_DIRECT = 0o40000;
export const O_LARGEFILE = 0o100000;
export const O_NOATIME = 0o1000000;
export const O_CLOEXEC = 0o2000000;

export const F_GETFL = 3;
export const F_SETFL = 4;
/** setfl: the status flags F_SETFL may change. */
const SETFL_MASK = O_APPEND | FASYNC | O_NONBLOCK | O_DIRECT | O_NOATIME;

/**
 * fcntl(F_GETFL / F_SETFL) on a file. f_flags keep what open() was given minus its creation flags
 * and O_CLOEXEC (a property of the fd, not the file), with O_LARGEFILE that every open of a path
 * gets on a 64-bit kernel; a file made inside the kernel (anon_inode_getfile) has just its access
 * mode and O_NONBLOCK.
 */
export function fcntlFlags(file: File, cmd: number, arg: number): number {
  const opened = file.path.startsWith('/');
  const shown = (file.flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC)) | (opened ? O_LARGEFILE : 0);
  if (cmd === F_GETFL) return opened ? shown : shown & (3 | O_NONBLOCK);
  if (cmd !== F_SETFL) return fail(Errno.EINVAL, `fcntl command ${cmd} is not F_GETFL or F_SETFL`);
  file.flags = (file.flags & ~SETFL_MASK) | (arg & SETFL_MASK);
  return 0;
}

/** d_path of an open file: its path, or anon_inode:[name] for a file made inside the kernel. */
export function filePath(file: File): string {
  if (file.path.startsWith('/') || file.path.startsWith('anon_inode:')) return file.path;
  return `anon_inode:${file.path.startsWith('[') ? file.path : `[${file.path}]`}`;
}

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
  /** f_op->mmap: set up the mapping `vma` describes, or refuse it. */
  mmap?(file: File, task: Process, vma: Vma): IoMapping;
  release?(file: File): void;
}

/** vfs_read / vfs_write's first check: the file must be open for it (EBADF otherwise). */
export function checkFileMode(file: File, write: boolean): void {
  const mode = file.flags & 3;
  if (write ? mode === O_RDONLY : mode === O_WRONLY) fail(Errno.EBADF, `${file.path} is not open for ${write ? 'writing' : 'reading'}`);
}

/** What a file's mmap is asked for (the parts of vm_area_struct a driver looks at). */
export interface Vma {
  /** Bytes, page aligned. */
  readonly length: bigint;
  /** vm_pgoff: the file offset in pages. */
  readonly pgoff: bigint;
  readonly prot: number;
  /** VM_SHARED: a MAP_SHARED mapping of a file opened for writing (do_mmap clears it otherwise). */
  readonly shared: boolean;
}

/**
 * A mapping whose pages are no memory the kernel backs (VM_PFNMAP: device MMIO). Every access is
 * served by the driver's fault handler: `access` reads (the value) or writes `size` bytes at byte
 * `offset` of the mapping, and throws a KernelError for an access the handler answers with
 * SIGBUS (VM_FAULT_SIGBUS).
 */
export interface IoMapping {
  access(offset: bigint, size: 1 | 2 | 4 | 8, write: boolean, value: bigint): bigint;
}

const PAGE_SHIFT = 12n;
const PAGE_MASK = (1n << PAGE_SHIFT) - 1n;
const MAP_SHARED = 0x01;
const MAP_PRIVATE = 0x02;
const MAP_SHARED_VALIDATE = 0x03;
const MAP_TYPE = 0x0f;
const PROT_WRITE = 0x2;

/** A file mapping: the mapping, and the file reference it holds (vma->vm_file) until unmapped. */
export interface FileMapping {
  readonly file: File;
  readonly vma: Vma;
  readonly io: IoMapping;
}

/**
 * mmap(2) of a file, up to the driver (ksys_mmap_pgoff + do_mmap's file checks): the offset
 * page aligned, a length, a mapping type, a readable file, a writable one for a shared writable
 * mapping, an mmap method; a shared mapping of a file not open for writing loses VM_SHARED.
 * The mapping takes a reference on the file: closing the fd does not release it.
 */
export function doMmap(task: Process, file: File, length: bigint, prot: number, flags: number, offset: bigint): FileMapping {
  if (offset & PAGE_MASK) fail(Errno.EINVAL, `mmap offset 0x${offset.toString(16)} is not page aligned`);
  if (length <= 0n) fail(Errno.EINVAL, 'mmap of 0 bytes');
  const len = (length + PAGE_MASK) & ~PAGE_MASK;
  const mode = file.flags & 3;
  const readable = mode === O_RDONLY || mode === O_RDWR;
  const writable = mode === O_WRONLY || mode === O_RDWR;
  let shared = false;
  switch (flags & MAP_TYPE) {
    case MAP_SHARED:
    case MAP_SHARED_VALIDATE:
      if (prot & PROT_WRITE && !writable) fail(Errno.EACCES, `${file.path} is not open for writing: no shared writable mapping`);
      shared = writable;
      if (!readable) fail(Errno.EACCES, `${file.path} is not open for reading: it cannot be mapped`);
      break;
    case MAP_PRIVATE:
      if (!readable) fail(Errno.EACCES, `${file.path} is not open for reading: it cannot be mapped`);
      break;
    default:
      fail(Errno.EINVAL, `mmap flags 0x${flags.toString(16)}: neither MAP_SHARED nor MAP_PRIVATE`);
  }
  if (!file.ops.mmap) fail(Errno.ENODEV, `${file.ops.name} files cannot be mapped`);
  const vma: Vma = { length: len, pgoff: offset >> PAGE_SHIFT, prot, shared };
  const io = file.ops.mmap(file, task, vma);
  return { file: file.get(), vma, io };
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

/**
 * A file the emulated kernel does not implement: a daemon client's real file (/dev/null, a pipe,
 * a socket) passed where the kernel expects one of its own. It is an open file all the same, so a
 * type check on it fails as the kernel's does (EBADFD, EINVAL...), not with EBADF. `path` is what
 * /proc/PID/fd shows for it.
 */
export const FOREIGN_FOPS: FileOperations = { name: 'foreign' };

/** What a foreign file can still be to the kernel: a real eventfd gets signalled in its process. */
export interface ForeignFile {
  /** eventfd_ctx_fileget, for a client's real eventfd (null for any other file). */
  readonly eventfd: (() => EventfdCtx) | null;
}

export function foreignFile(path: string, flags: number, priv: ForeignFile): File {
  return new File(FOREIGN_FOPS, path, flags, priv);
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

  /**
   * The entries of a /dev directory as devtmpfs has it: a directory exists while a node lives
   * below it (devtmpfs makes the parents of a node and removes them with their last node). Null
   * when `dir` is no such directory. Types are d_type values: 2 (DT_CHR) for nodes, 4 for directories.
   */
  list(dir: string): { name: string; type: number }[] | null {
    const prefix = dir.endsWith('/') ? dir : `${dir}/`;
    const out = new Map<string, number>();
    for (const path of this.#nodes.keys()) {
      if (!path.startsWith(prefix)) continue;
      const rest = path.slice(prefix.length);
      const slash = rest.indexOf('/');
      out.set(slash < 0 ? rest : rest.slice(0, slash), slash < 0 ? 2 : 4);
    }
    if (!out.size) return null;
    return [...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, type]) => ({ name, type }));
  }
}
