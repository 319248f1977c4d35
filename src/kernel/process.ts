/**
 * A simulated process (a single-threaded task group): credentials, rlimits, an fd table of
 * refcounted files, an address space with its file mappings (device MMIO, reached through `mmio`),
 * and the syscall entry points. Each syscall is one boundary: a `KernelError` thrown anywhere
 * below becomes `{ ret: -1, errno, reason }` and is traced; any other exception is an emulator bug
 * and propagates.
 */

import { Errno, KernelError, fail } from '../errno.js';
import type { Machine, UserStruct } from './machine.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, type Mm, PROT_READ, PROT_WRITE } from './mm/mm.js';
import { eventfdFile } from './eventfd.js';
import { procOpen } from './procfs.js';
import { DT_DIR, type SysfsDirent, sysfsList, sysfsOpen, sysfsRead, sysfsReadlink } from './sysfs.js';
import { copyToUser } from './uaccess.js';
import { big, hex } from './trace.js';
import type { TraceValue } from './trace.js';
import { checkFileMode, doMmap, fcntlFlags, type File, type FileMapping, filePath, O_RDWR, POLLIN, POLLOUT } from './vfs.js';

/** Capabilities the emulated kernel checks (include/uapi/linux/capability.h). */
export const CAP_DAC_OVERRIDE = 1;
export const CAP_DAC_READ_SEARCH = 2;
export const CAP_IPC_LOCK = 14;
export const CAP_SYS_RAWIO = 17;
export const CAP_SYS_PTRACE = 19;
export const CAP_SYS_ADMIN = 21;
export const CAP_SYS_RESOURCE = 24;
export const CAP_LAST_CAP = 40;

export const RLIM_INFINITY = (1n << 64n) - 1n;

export interface Cred {
  uid: number;
  gid: number;
  caps: ReadonlySet<number>;
}

export interface Rlimits {
  /** RLIMIT_MEMLOCK in bytes. */
  memlock: bigint;
  /** RLIMIT_NOFILE. */
  nofile: number;
}

/** What a syscall returns: `ret` is -1 on failure, with the errno and the check that failed. */
export interface SysResult<T = number> {
  ret: T | -1;
  errno: number;
  reason?: string;
}

/** Return the value of a successful syscall, or throw its KernelError. */
export function must<T>(r: SysResult<T>): T {
  if (r.errno) throw new KernelError(r.errno, r.reason ?? '');
  return r.ret as T;
}

const SCRATCH_SIZE = 1n << 20n;

/** /proc/<self|thread-self|pid>/fd/N: a magic link to the file open at N (no leading zeros, as name_to_int). */
const PROC_FD_LINK = /^\/proc\/(self|thread-self|[1-9]\d*)\/fd\/(0|[1-9]\d*)$/;

/** rw_verify_area: a position whose end passes LLONG_MAX is EINVAL. */
function verifyArea(pos: bigint | null, count: number): void {
  if (pos !== null && pos + BigInt(count) > 0x7fffffffffffffffn) fail(Errno.EINVAL, `position ${pos} + ${count} bytes passes the largest file offset`);
}

export class Process {
  readonly pid: number;
  readonly machine: Machine;
  readonly parent: Process | null;
  mm: Mm;
  cred: Cred;
  rlimits: Rlimits;
  /** The task's fail-nth counter (/proc/self/task/TID/fail-nth). */
  failNth = 0;
  exited = false;
  readonly #fds: (File | null)[] = [];
  #scratch: bigint | null = null;
  /** File mappings (device MMIO) by id: each holds its file (vma->vm_file) until unmapped. */
  #fileMaps = new Map<number, FileMapping>();
  #nextFileMap = 1;

  constructor(machine: Machine, pid: number, mm: Mm, cred: Cred, rlimits: Rlimits, parent: Process | null) {
    this.machine = machine;
    this.pid = pid;
    this.mm = mm;
    this.cred = cred;
    this.rlimits = rlimits;
    this.parent = parent;
  }

  /** The user_struct this task charges locked memory to. */
  get user(): UserStruct {
    return this.machine.userFor(this.cred.uid);
  }

  capable(cap: number): boolean {
    return this.cred.caps.has(cap);
  }

  /**
   * Through the daemon: the client's real (not emulated) file at `fd`, as a foreign file (vfs.ts),
   * or null when nothing is open there. In-process there is none: every file is emulated.
   */
  foreignFile: ((fd: number) => File | null) | null = null;

  /** fget: the file behind `fd` (a foreign file for a client's real one), or EBADF. */
  fget(fd: number): File {
    const f = this.#lookupFd(fd);
    if (!f) fail(Errno.EBADF, `fd ${fd} is not open in pid ${this.pid}`);
    return f;
  }

  #lookupFd(fd: number): File | null {
    if (!Number.isInteger(fd) || fd < 0) return null;
    return this.#fds[fd] ?? this.foreignFile?.(fd) ?? null;
  }

  /** Install a file at the lowest free fd (the file's reference moves into the table). */
  installFd(file: File): number {
    let fd = 0;
    while (this.#fds[fd] || this.#reserved.has(fd)) fd++;
    if (fd >= this.rlimits.nofile) {
      fail(Errno.EMFILE, `pid ${this.pid} has RLIMIT_NOFILE=${this.rlimits.nofile} files open`);
    }
    this.#fds[fd] = file;
    return fd;
  }

  /**
   * Where new fds come from when the kernel makes files inside a call (get_unused_fd_flags). The
   * daemon sets this so the number is one that is real in its client; by default the lowest free.
   */
  fdSource: (() => number) | null = null;
  readonly #reserved = new Set<number>();

  /** get_unused_fd_flags: reserve an fd number for a file that will be installed later. */
  reserveFd(): number {
    let fd: number;
    if (this.fdSource) {
      fd = this.fdSource();
    } else {
      fd = 0;
      while (this.#fds[fd] || this.#reserved.has(fd)) fd++;
    }
    if (fd >= this.rlimits.nofile) fail(Errno.EMFILE, `no fd below RLIMIT_NOFILE ${this.rlimits.nofile} is free`);
    this.#reserved.add(fd);
    return fd;
  }

  /** put_unused_fd. */
  unreserveFd(fd: number): void {
    this.#reserved.delete(fd);
  }

  /** Install a file at exactly `fd`, closing what was there (dup2's second half). */
  installFdAt(fd: number, file: File): void {
    if (!Number.isInteger(fd) || fd < 0 || fd >= this.rlimits.nofile) fail(Errno.EBADF, `fd ${fd} is outside RLIMIT_NOFILE ${this.rlimits.nofile}`);
    this.#reserved.delete(fd);
    const old = this.#fds[fd];
    while (this.#fds.length < fd) this.#fds.push(null);
    this.#fds[fd] = file;
    old?.put();
  }

  /** Open fds, for invariant checks and teardown. */
  openFds(): number[] {
    return this.#fds.flatMap((f, i) => (f ? [i] : []));
  }

  #sys<T extends number | bigint>(
    call: string,
    args: Record<string, TraceValue>,
    body: () => T,
    extra?: { what?: string; out?: () => string | undefined },
  ): SysResult<T> {
    let res: SysResult<T>;
    if (this.exited) {
      res = { ret: -1, errno: Errno.ESRCH, reason: `pid ${this.pid} has exited` };
    } else {
      try {
        res = { ret: body(), errno: 0 };
      } catch (e) {
        if (!(e instanceof KernelError)) throw e;
        res = { ret: -1, errno: e.errno, reason: e.reason };
      }
    }
    const tr = this.machine.tracer;
    if (tr.active) {
      const out = extra?.out?.();
      tr.emit({
        pid: this.pid,
        call,
        args,
        ret: typeof res.ret === 'bigint' ? big(res.ret) : res.ret,
        errno: res.errno,
        ...(res.reason !== undefined ? { reason: res.reason } : {}),
        ...(out !== undefined ? { out } : {}),
        ...(extra?.what !== undefined ? { what: extra.what } : {}),
      });
    }
    return res;
  }

  /**
   * open. `at` installs the file at exactly that fd instead of the lowest free one: the daemon
   * mirrors the real fd number its client's backing file got.
   */
  open(path: string, flags = O_RDWR, at?: number): SysResult {
    return this.#sys('open', at === undefined ? { path, flags } : { path, flags, at }, () => {
      const file = procOpen(this, path, flags) ?? sysfsOpen(this, path, flags) ?? this.machine.devices.lookup(path).open(this, flags, path);
      if (at !== undefined) {
        this.installFdAt(at, file);
        return at;
      }
      try {
        return this.installFd(file);
      } catch (e) {
        file.put();
        throw e;
      }
    });
  }

  /**
   * List an emulated /sys directory into user memory at `buf`: per entry its d_type byte, its name
   * and a NUL. Returns the bytes the listing takes; when that is more than `size`, nothing is
   * written (ask again with a bigger buffer).
   */
  listdir(path: string, buf: bigint, size: number): SysResult {
    return this.#sys('listdir', { path, buf: big(buf), size }, () => {
      const enc = new TextEncoder();
      const parts = this.#listing(path).map((d) => Uint8Array.from([d.type, ...enc.encode(d.name), 0]));
      const out = new Uint8Array(parts.reduce((n, b) => n + b.length, 0));
      parts.reduce((off, b) => (out.set(b, off), off + b.length), 0);
      return this.#fillUser(out, buf, size, 'writing the directory listing');
    });
  }

  /** An emulated /dev directory (devtmpfs: "." and ".." first) or /sys directory. */
  #listing(path: string): SysfsDirent[] {
    if (!path.startsWith('/dev/')) return sysfsList(this.machine, path);
    const entries = this.machine.devices.list(path);
    if (!entries) fail(this.machine.devices.paths().includes(path) ? Errno.ENOTDIR : Errno.ENOENT, `${path}: no such directory on this machine`);
    return [{ name: '.', type: DT_DIR }, { name: '..', type: DT_DIR }, ...entries];
  }

  /**
   * An emulated /sys attribute's whole content into user memory, sized like `listdir`: text, or
   * binary (a PCI function's config, as much of it as this process may read).
   */
  readAttr(path: string, buf: bigint, size: number): SysResult {
    return this.#sys('read_attr', { path, buf: big(buf), size }, () => this.#fillUser(sysfsRead(this, path), buf, size, `reading ${path}`));
  }

  /**
   * readlink into user memory, sized like `listdir` (the target has no NUL): an emulated sysfs
   * link's relative target, or what /proc/<self|pid>/fd/N shows for an open fd (a node's path,
   * anon_inode:[name]). ENOENT where nothing is; EINVAL for what is not a link.
   */
  readlink(path: string, buf: bigint, size: number): SysResult {
    return this.#sys('readlink', { path, buf: big(buf), size }, () => {
      const m = PROC_FD_LINK.exec(path);
      const { target, what } = m ? this.#fdLink(path, m[1]!, Number(m[2])) : { target: this.#linkTarget(path), what: `reading link ${path}` };
      return this.#fillUser(new TextEncoder().encode(target), buf, size, what);
    });
  }

  /** proc_fd_link: the owner must be one this process could ptrace (proc_fd_access_allowed). */
  #fdLink(path: string, who: string, fd: number): { target: string; what: string } {
    const owner = who === 'self' || who === 'thread-self' ? this : this.machine.process(Number(who));
    if (!owner || owner.exited) fail(Errno.ENOENT, `${path}: no such process`);
    if (owner !== this && !(owner.cred.uid === this.cred.uid && owner.cred.gid === this.cred.gid) && !this.capable(CAP_SYS_PTRACE)) {
      fail(Errno.EACCES, `${path}: process ${this.pid} (uid ${this.cred.uid}) may not see the files of process ${owner.pid} (uid ${owner.cred.uid}) without CAP_SYS_PTRACE`);
    }
    const file = owner.#lookupFd(fd);
    if (!file) fail(Errno.ENOENT, `${path}: fd ${fd} is not open in pid ${owner.pid}`);
    return { target: filePath(file), what: `reading /proc/${owner.pid}/fd/${fd}` };
  }

  /** A device node or /dev directory is no link; anything else is what sysfs says. */
  #linkTarget(path: string): string {
    const devs = this.machine.devices;
    if (path.startsWith('/dev/') && (devs.paths().includes(path) || devs.list(path))) fail(Errno.EINVAL, `${path} is not a symbolic link`);
    return sysfsReadlink(this.machine, path);
  }

  #fillUser(bytes: Uint8Array, buf: bigint, size: number, what: string): number {
    if (bytes.length <= size) copyToUser(this, buf, bytes, what);
    return bytes.length;
  }

  /** eventfd(2): a counter file, at the lowest free fd. */
  eventfd(initval = 0, flags = 0): SysResult {
    return this.#sys('eventfd', { initval, flags }, () => {
      const file = eventfdFile(initval, flags);
      try {
        return this.installFd(file);
      } catch (e) {
        file.put();
        throw e;
      }
    });
  }

  /** dup2: `newfd` refers to `oldfd`'s file afterwards; what `newfd` held is closed. */
  dup2(oldfd: number, newfd: number): SysResult {
    return this.#sys('dup2', { oldfd, newfd }, () => {
      const f = this.fget(oldfd);
      if (oldfd === newfd) return newfd;
      this.installFdAt(newfd, f.get());
      return newfd;
    });
  }

  /** fcntl(F_GETFL / F_SETFL): the file's status flags (vfs.ts fcntlFlags); EINVAL for other commands. */
  fcntl(fd: number, cmd: number, arg = 0): SysResult {
    return this.#sys('fcntl', { fd, cmd, arg }, () => fcntlFlags(this.fget(fd), cmd, arg));
  }

  close(fd: number): SysResult {
    return this.#sys('close', { fd }, () => {
      const f = this.fget(fd);
      this.#fds[fd] = null;
      f.put();
      return 0;
    });
  }

  dup(fd: number): SysResult {
    return this.#sys('dup', { fd }, () => {
      const f = this.fget(fd);
      const newfd = this.installFd(f);
      f.get();
      return newfd;
    });
  }

  /**
   * ioctl. `arg` is a user pointer, or bytes: then the bytes are placed in this process's memory,
   * the ioctl gets their address, and the bytes are updated in place with what the kernel wrote.
   */
  ioctl(fd: number, cmd: number, arg: bigint | Uint8Array = 0n): SysResult {
    const what = this.machine.ioctlName(cmd);
    if (typeof arg === 'bigint') {
      return this.#sys('ioctl', { fd, cmd, arg: big(arg) }, () => this.#doIoctl(fd, cmd, arg), { what });
    }
    const buf = arg;
    const input = hex(buf);
    return this.#sys(
      'ioctl',
      { fd, cmd, in: input },
      () => {
        const addr = this.scratch(buf.length);
        this.mm.write(addr, buf);
        try {
          return this.#doIoctl(fd, cmd, addr);
        } finally {
          buf.set(this.mm.read(addr, buf.length));
        }
      },
      { what, out: () => hex(buf) },
    );
  }

  #doIoctl(fd: number, cmd: number, arg: bigint): number {
    const f = this.fget(fd);
    if (!f.ops.ioctl) fail(Errno.ENOTTY, `${f.ops.name} has no ioctls`);
    return f.ops.ioctl(f, cmd, arg, this);
  }

  read(fd: number, buf: bigint, count: number): SysResult {
    return this.#sys('read', { fd, buf: big(buf), count }, () => this.#vfsRead(this.fget(fd), buf, count));
  }

  write(fd: number, buf: bigint, count: number): SysResult {
    return this.#sys('write', { fd, buf: big(buf), count }, () => this.#vfsWrite(this.fget(fd), buf, count));
  }

  /** pread: read at `offset` without moving the file position; ESPIPE on unseekable files. */
  pread(fd: number, buf: bigint, count: number, offset: bigint): SysResult {
    return this.#sys('pread', { fd, buf: big(buf), count, offset: big(offset) }, () => this.#positioned(fd, offset, (f) => this.#vfsRead(f, buf, count, offset)));
  }

  /** pwrite: write at `offset` without moving the file position; ESPIPE on unseekable files. */
  pwrite(fd: number, buf: bigint, count: number, offset: bigint): SysResult {
    return this.#sys('pwrite', { fd, buf: big(buf), count, offset: big(offset) }, () => this.#positioned(fd, offset, (f) => this.#vfsWrite(f, buf, count, offset)));
  }

  /** vfs_read: open for reading (EBADF), then a file that can be read (EINVAL), then rw_verify_area. */
  #vfsRead(f: File, buf: bigint, count: number, pos: bigint | null = null): number {
    checkFileMode(f, false);
    if (!f.ops.read) fail(Errno.EINVAL, `${f.ops.name} cannot be read`);
    verifyArea(pos, count);
    return f.ops.read(f, this, buf, count);
  }

  #vfsWrite(f: File, buf: bigint, count: number, pos: bigint | null = null): number {
    checkFileMode(f, true);
    if (!f.ops.write) fail(Errno.EINVAL, `${f.ops.name} cannot be written`);
    verifyArea(pos, count);
    return f.ops.write(f, this, buf, count);
  }

  /**
   * ksys_pread64 / ksys_pwrite64: a negative offset first, then the fd, then whether it seeks.
   * Positions above 2^53 reach the file rounded (a Number): every file here ends far below that.
   */
  #positioned(fd: number, offset: bigint, io: (f: File) => number): number {
    if (offset < 0n) fail(Errno.EINVAL, `offset ${offset} is negative`);
    const f = this.fget(fd);
    if (!f.ops.seekable) fail(Errno.ESPIPE, `${f.ops.name} does not support positioned I/O`);
    const saved = f.pos;
    f.pos = Number(offset);
    try {
      return io(f);
    } finally {
      f.pos = saved;
    }
  }

  /** poll one fd: returns its revents (a file without a poll op is always ready, as in the kernel). */
  poll(fd: number): SysResult {
    return this.#sys('poll', { fd }, () => {
      const f = this.fget(fd);
      return f.ops.poll ? f.ops.poll(f, this) : POLLIN | POLLOUT;
    });
  }

  mmap(addr: bigint, length: bigint, prot: number, flags: number): SysResult<bigint> {
    return this.#sys('mmap', { addr: big(addr), length: big(length), prot, flags }, () => this.mm.mmap(addr, length, prot, flags));
  }

  munmap(addr: bigint, length: bigint): SysResult {
    return this.#sys('munmap', { addr: big(addr), length: big(length) }, () => {
      this.mm.munmap(addr, length);
      return 0;
    });
  }

  /**
   * mmap(2) of a file (a vfio-pci BAR), checked as do_mmap and the driver check it (vfs.ts
   * doMmap). Device MMIO has no page in the emulated address space, so the answer is the
   * mapping's id (from 1, never reused) for `mmio` and `munmapFile`. The mapping holds the file
   * until it is unmapped or the process exits, and fork copies it, as it copies a VM_PFNMAP vma.
   */
  mmapFile(fd: number, length: bigint, prot: number, flags: number, offset: bigint): SysResult {
    return this.#sys('mmap_file', { fd, length: big(length), prot, flags, offset: big(offset) }, () => {
      const map = doMmap(this, this.fget(fd), length, prot, flags, offset);
      const id = this.#nextFileMap++;
      this.#fileMaps.set(id, map);
      return id;
    });
  }

  /**
   * A load (the value) or store of `size` bytes at `offset` in file mapping `id`: the driver's
   * fault path, then the device's register. EFAULT ("SIGBUS") outside the mapping, for a width
   * other than 1, 2, 4 or 8, or where the driver answers SIGBUS (memory decoding off).
   */
  mmio(id: number, offset: bigint, size: number, write: boolean, value = 0n): SysResult<bigint> {
    return this.#sys('mmio', { id, offset: big(offset), size, write, value: big(value) }, () => {
      const m = this.#fileMaps.get(id);
      if (!m) fail(Errno.EFAULT, `SIGBUS: no mapping ${id}`);
      if (![1, 2, 4, 8].includes(size) || offset < 0n || offset + BigInt(size) > m.vma.length) {
        fail(Errno.EFAULT, `SIGBUS: access of ${size} bytes at 0x${offset.toString(16)} is outside mapping ${id}`);
      }
      return m.io.access(offset, size as 1 | 2 | 4 | 8, write, value);
    });
  }

  /** munmap of a whole file mapping: its file reference goes. An id that is no mapping is 0, as munmap of nothing. */
  munmapFile(id: number): SysResult {
    return this.#sys('munmap_file', { id }, () => {
      const m = this.#fileMaps.get(id);
      this.#fileMaps.delete(id);
      m?.file.put();
      return 0;
    });
  }

  /** Write this process's memory as the program itself would (traced as `poke`). */
  poke(addr: bigint, data: Uint8Array): SysResult {
    return this.#sys('poke', { addr: big(addr), data: hex(data) }, () => {
      this.mm.write(addr, data);
      return 0;
    });
  }

  /** Read this process's memory (traced as `peek`); EFAULT where unmapped. */
  peek(addr: bigint, length: number): Uint8Array {
    let out: Uint8Array | null = null;
    must(
      this.#sys('peek', { addr: big(addr), length }, () => {
        out = this.mm.read(addr, length);
        return 0;
      }, { out: () => (out ? hex(out) : undefined) }),
    );
    return out ?? new Uint8Array(0);
  }

  /** Arm fail-nth for this task, as writing /proc/self/task/TID/fail-nth does. */
  setFailNth(n: number): void {
    this.#sys('fail_nth', { n }, () => {
      this.failNth = n;
      return 0;
    });
  }

  /** A scratch buffer in this process for byte-array ioctl arguments. */
  scratch(length: number): bigint {
    if (BigInt(length) > SCRATCH_SIZE) fail(Errno.E2BIG, `ioctl argument of ${length} bytes exceeds the scratch buffer`);
    this.#scratch ??= this.mm.mmap(0n, SCRATCH_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    return this.#scratch;
  }

  /**
   * The kernel half of a fork whose child address space is not known yet (a real client forks,
   * and its child connects afterwards): the fd table and credentials are captured now, with a
   * reference on every file, and become the child's on `complete`.
   */
  prepareFork(): { complete: (mm: Mm, pid?: number) => Process; abort: () => void } {
    if (this.exited) fail(Errno.ESRCH, `pid ${this.pid} has exited`);
    const files = this.#fds.map((f) => f?.get() ?? null);
    const maps = this.#copyFileMaps();
    let done = false;
    return {
      complete: (mm, pid) => {
        if (done) throw new Error('fork completed twice');
        done = true;
        const child = this.machine.forkProcess(this, mm, pid);
        files.forEach((f, i) => (child.#fds[i] = f));
        child.#fileMaps = maps;
        child.#nextFileMap = this.#nextFileMap;
        this.machine.tracer.emit({ pid: this.pid, call: 'fork', args: {}, ret: child.pid, errno: 0 });
        return child;
      },
      abort: () => {
        if (done) return;
        done = true;
        for (const f of files) f?.put();
        for (const m of maps.values()) m.file.put();
      },
    };
  }

  /** dup_mmap's share for file mappings: the same mappings, each with its own file reference. */
  #copyFileMaps(): Map<number, FileMapping> {
    return new Map([...this.#fileMaps].map(([id, m]) => [id, { ...m, file: m.file.get() }]));
  }

  fork(): Process {
    if (this.exited) fail(Errno.ESRCH, `pid ${this.pid} has exited`);
    const child = this.machine.forkProcess(this, this.mm.fork());
    child.#scratch = this.#scratch;
    this.#fds.forEach((f, i) => {
      if (f) child.#fds[i] = f.get();
    });
    child.#fileMaps = this.#copyFileMaps();
    child.#nextFileMap = this.#nextFileMap;
    this.machine.tracer.emit({ pid: this.pid, call: 'fork', args: {}, ret: child.pid, errno: 0 });
    return child;
  }

  /** exit: drop the file mappings (exit_mm before exit_files), close every fd, tear the address space down, leave the process table. */
  exit(): void {
    if (this.exited) return;
    for (const m of this.#fileMaps.values()) m.file.put();
    this.#fileMaps.clear();
    this.#fds.forEach((f, i) => {
      if (f) {
        this.#fds[i] = null;
        f.put();
      }
    });
    this.mm.teardown();
    this.exited = true;
    this.machine.reap(this);
    this.machine.tracer.emit({ pid: this.pid, call: 'exit', args: {}, ret: 0, errno: 0 });
  }

  openOrThrow(path: string, flags = O_RDWR): number {
    return must(this.open(path, flags));
  }

  ioctlOrThrow(fd: number, cmd: number, arg: bigint | Uint8Array = 0n): number {
    return must(this.ioctl(fd, cmd, arg));
  }

  closeOrThrow(fd: number): void {
    must(this.close(fd));
  }

  mmapOrThrow(length: bigint, prot = PROT_READ | PROT_WRITE, flags = MAP_PRIVATE | MAP_ANONYMOUS, addr = 0n): bigint {
    return must(this.mmap(addr, length, prot, flags));
  }
}
