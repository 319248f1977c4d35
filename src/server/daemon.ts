/**
 * The daemon: serves emulated syscalls to shim clients over a Unix socket. Each connection is one
 * client process, emulated as a Process whose pid, credentials, RLIMIT_MEMLOCK and memory are the
 * real client's, so pointers inside ioctl structs are followed exactly as the kernel follows them.
 * Emulated fds carry the numbers of the real fds that stand in for them in the client.
 *
 * A client that goes away — exit, crash, kill -9 — closes its socket, and the daemon runs the
 * emulated process's exit: its files are released and its pins dropped. A parent that reaps a
 * child says so (REAPED), so the child's exit has run before the parent's next call, as in the
 * kernel. Other clients never see each other's fds or objects.
 *
 * Files the kernel makes inside an ioctl (an access or fault fd) get the number of the spare real
 * fd the shim offers with every ioctl: the client's lowest free fd, what get_unused_fd_flags()
 * picks. The process's `fdSource` hands it out; the response says whether it was installed.
 */

import { chmodSync, existsSync, mkdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { type Server, type Socket, createServer } from 'node:net';
import { dirname } from 'node:path';
import { Errno, KernelError, fail } from '../errno.js';
import type { EventfdCtx } from '../kernel/eventfd.js';
import type { Machine } from '../kernel/machine.js';
import { CAP_LAST_CAP, type Process, RLIM_INFINITY, type SysResult } from '../kernel/process.js';
import { type File, foreignFile, O_RDWR } from '../kernel/vfs.js';
import { NOTE_SIZE, Note, Op, type Request, RespFlag, encodeNote, encodeResponse, packStatNode, packStatSysfs, parseRequests, STAT_DEV_DIR } from './protocol.js';
import { isSysfsPath, sysfsStat } from '../kernel/sysfs.js';
import { type HugeRange, RemoteMm } from './remote_mm.js';

interface Client {
  proc: Process | null;
  mm: RemoteMm | null;
  /** The spare fd the current request offers (-1: none, or already handed out). */
  spare: number;
  /** The spare fd handed to the kernel during the current request (-1: none). */
  spareTaken: number;
  /** The client's eventfds the current request took references to: pinned by the shim. */
  pinsOut: number[];
  /** Pin tokens handed out so far (the shim numbers its pins the same way). */
  pins: number;
  /** The notify connection, once the shim opened it; notes wait in `notes` until then. */
  notify: Socket | null;
  notes: Buffer[];
  noteSeq: number;
  /** The last note emitted for this client while serving its own current request (0: none). */
  syncSeq: number;
  /** For a notify connection: the client it notifies. */
  notifyOf: Client | null;
  /** Pins the kernel watches (virqfd), by token: what a FIRED note runs. */
  watches: Map<number, () => void>;
  gone: boolean;
}

/** Notes kept for a client whose notify connection never came (its shim said why on stderr). */
const MAX_QUEUED_NOTES = 4096;

export interface DaemonOptions {
  /**
   * Whose credentials the emulated kernel sees: each client's real uid, gid and capabilities
   * (default), or uid 0 with every capability — how the oracle guest runs programs.
   */
  identity?: 'real' | 'root';
}

/** A fork in flight: the kernel half, the parent's emulated hugetlb mappings, and its memory. */
interface PreparedFork {
  kernel: ReturnType<Process['prepareFork']>;
  huge: readonly HugeRange[];
  parentMm: RemoteMm | null;
}

/** Credentials and RLIMIT_MEMLOCK of a real process, from /proc. */
function realIdentity(pid: number, identity: 'real' | 'root'): { uid: number; gid: number; caps: number[]; memlock: bigint } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): string[] => (new RegExp(`^${name}:\\s+(.*)$`, 'm').exec(status)?.[1] ?? '').split(/\s+/);
  const capEff = BigInt(`0x${field('CapEff')[0] ?? '0'}`);
  const caps: number[] = [];
  for (let c = 0; c <= CAP_LAST_CAP; c++) if ((capEff >> BigInt(c)) & 1n) caps.push(c);
  const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
  const soft = /^Max locked memory\s+(\S+)/m.exec(limits)?.[1] ?? 'unlimited';
  const memlock = soft === 'unlimited' ? RLIM_INFINITY : BigInt(soft);
  if (identity === 'root') return { uid: 0, gid: 0, caps: Array.from({ length: CAP_LAST_CAP + 1 }, (_, c) => c), memlock };
  return { uid: Number(field('Uid')[0]), gid: Number(field('Gid')[0]), caps, memlock };
}

export class Daemon {
  readonly machine: Machine;
  #server: Server | null = null;
  #socketPath = '';
  readonly #forks = new Map<number, PreparedFork>();
  #nextToken = 1;
  readonly #sockets = new Set<Socket>();
  readonly #identity: 'real' | 'root';
  readonly #clients = new Set<Client>();
  /** The client whose request is being served. */
  #current: Client | null = null;

  constructor(machine: Machine, opts: DaemonOptions = {}) {
    this.machine = machine;
    this.#identity = opts.identity ?? 'real';
  }

  /** Listen on `path` (its directory is created 0700, the socket made 0600). */
  listen(path: string): Promise<void> {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    rmSync(path, { force: true });
    this.#socketPath = path;
    this.#server = createServer((sock) => this.#accept(sock));
    return new Promise((resolve, reject) => {
      this.#server!.once('error', reject);
      this.#server!.listen(path, () => {
        chmodSync(path, 0o600);
        resolve();
      });
    });
  }

  close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    return new Promise((resolve) => {
      if (!this.#server) return resolve();
      this.#server.close(() => {
        rmSync(this.#socketPath, { force: true });
        resolve();
      });
    });
  }

  #accept(sock: Socket): void {
    this.#sockets.add(sock);
    const client: Client = { proc: null, mm: null, spare: -1, spareTaken: -1, pinsOut: [], pins: 0, notify: null, notes: [], noteSeq: 0, syncSeq: 0, notifyOf: null, watches: new Map(), gone: false };
    this.#clients.add(client);
    let pending: Buffer = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      if (client.notifyOf) {
        // A notify connection carries FIRED notes up, nothing else.
        for (; pending.length >= NOTE_SIZE; pending = pending.subarray(NOTE_SIZE)) {
          if (pending.readUInt32LE(0) !== Note.FIRED) {
            sock.destroy();
            return;
          }
          this.#fired(client.notifyOf, pending.readUInt32LE(4));
        }
        return;
      }
      let parsed;
      try {
        parsed = parseRequests(pending);
      } catch {
        sock.destroy();
        return;
      }
      pending = parsed.rest;
      for (const req of parsed.reqs) {
        if (req.op === Op.NOTIFY) {
          this.#notifyConnection(client, sock, req);
          return;
        }
        const r = this.#handle(client, req);
        const flags = r.spareUsed ? RespFlag.SPARE_USED : 0;
        sock.write(encodeResponse(r.ret, r.errno, r.reason ?? '', flags, { pins: client.pinsOut, seq: client.syncSeq }));
        client.pinsOut = [];
        client.syncSeq = 0;
      }
    });
    const gone = (): void => {
      this.#sockets.delete(sock);
      this.#clients.delete(client);
      if (client.notifyOf) {
        if (client.notifyOf.notify === sock) client.notifyOf.notify = null;
        return;
      }
      client.gone = true;
      client.notify?.destroy();
      client.notes = [];
      if (client.proc && !client.proc.exited) client.proc.exit();
    };
    sock.on('close', gone);
    sock.on('error', () => sock.destroy());
  }

  /**
   * Op.NOTIFY: `sock` becomes the notify connection of the client process a0 (a connection
   * that has not said HELLO itself). Queued notes follow the response.
   */
  #notifyConnection(self: Client, sock: Socket, req: Request): void {
    const pid = Number(req.a0);
    const target = self.proc ? undefined : [...this.#clients].find((c) => c.proc?.pid === pid && !c.gone && !c.notifyOf);
    if (!target || target.notify) {
      const why = self.proc ? 'this connection already has a process' : target ? `pid ${pid} already has a notify connection` : `no client process ${pid}`;
      sock.write(encodeResponse(-1, Errno.EINVAL, why));
      return;
    }
    self.notifyOf = target;
    target.notify = sock;
    sock.write(encodeResponse(0, 0));
    for (const n of target.notes) sock.write(n);
    target.notes = [];
  }

  /** Send a note to the client's shim (now, or when its notify connection comes). */
  #note(client: Client, op: number, token: number): void {
    if (client.gone) return;
    const seq = ++client.noteSeq;
    const note = encodeNote(op, token, seq);
    if (client.notify) client.notify.write(note);
    else if (client.notes.length < MAX_QUEUED_NOTES) client.notes.push(note);
    if (this.#current === client) client.syncSeq = seq;
  }

  /**
   * fget of a fd the client has open for real (not an emulated file): /proc/PID/fd says whether it
   * is open and what it is. An eventfd among them can be taken by interrupt sources: the shim pins
   * it (the reference) and signals it when told.
   */
  #foreignFile(client: Client, pid: number, fd: number): File | null {
    // The spare the shim offers is its own pipe at a number the program has free.
    if (fd === client.spare || fd === client.spareTaken) return null;
    let link: string;
    try {
      link = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return null;
    }
    // The file's f_flags (fdinfo, octal): its access mode decides what mmap and write may do.
    let flags = O_RDWR;
    try {
      const m = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      if (m) flags = parseInt(m[1]!, 8);
    } catch {
      // Closed in between: keep the default.
    }
    const eventfd = link === 'anon_inode:[eventfd]' ? (): EventfdCtx => this.#pinEventfd(client, pid, fd) : null;
    return foreignFile(link, flags, { eventfd });
  }

  /** A watched pin was written: the kernel's reader runs now, between the client's calls. */
  #fired(client: Client, token: number): void {
    const fn = client.watches.get(token);
    if (!fn || client.gone) return;
    try {
      fn();
    } catch (e) {
      // A refusal has nobody to go to (the kernel's handler returns nothing); a bug must still show.
      if (!(e instanceof KernelError)) throw e;
    }
  }

  /** eventfd_ctx_fileget of a client's real eventfd: pinned by the shim until put. */
  #pinEventfd(client: Client, pid: number, fd: number): EventfdCtx {
    client.pinsOut.push(fd);
    const token = ++client.pins;
    let held = true;
    return {
      label: `eventfd (fd ${fd} of pid ${pid}, pin ${token})`,
      signal: () => {
        if (held) this.#note(client, Note.SIGNAL, token);
      },
      put: () => {
        if (!held) return;
        held = false;
        if (client.watches.delete(token)) this.#note(client, Note.UNWATCH, token);
        this.#note(client, Note.PUT, token);
      },
      watch: (fn) => {
        if (!held || client.watches.has(token)) throw new Error(`eventfd pin ${token} watched twice or after put`);
        client.watches.set(token, fn);
        this.#note(client, Note.WATCH, token);
        return () => {
          if (client.watches.delete(token)) this.#note(client, Note.UNWATCH, token);
        };
      },
    };
  }

  #handle(client: Client, req: Request): SysResult<number | bigint> & { spareUsed?: boolean } {
    client.spare = req.op === Op.IOCTL ? req.fd2 : -1;
    client.spareTaken = -1;
    this.#current = client;
    try {
      client.mm?.invalidate();
      const r = this.#dispatch(client, req);
      const taken = client.spareTaken;
      return taken >= 0 && client.proc?.openFds().includes(taken) ? { ...r, spareUsed: true } : r;
    } catch (e) {
      if (e instanceof KernelError) return { ret: -1, errno: e.errno, reason: e.reason };
      // An emulator bug: tell the client loudly rather than hang it.
      return { ret: -1, errno: 5, reason: `emulator bug: ${e instanceof Error ? e.stack ?? e.message : String(e)}` };
    } finally {
      client.spare = -1;
      this.#current = null;
    }
  }

  /**
   * The fd number for a file the kernel makes during the current request: the client's spare.
   * An emulated fd still recorded at that number was closed behind the shim's back (the real fd
   * is free), so it is dropped first.
   */
  #takeSpare(client: Client, p: Process): number {
    const fd = client.spare;
    if (fd < 0) fail(Errno.EMFILE, 'the client offered no spare fd for a file made in this call');
    client.spare = -1;
    client.spareTaken = fd;
    if (p.openFds().includes(fd)) p.close(fd);
    return fd;
  }

  /** The client's process, with its fd numbers coming from the client's spares. */
  #attach(client: Client, p: Process): Process {
    client.proc = p;
    client.mm = p.mm as RemoteMm;
    p.fdSource = () => this.#takeSpare(client, p);
    p.foreignFile = (fd) => this.#foreignFile(client, p.pid, fd);
    return p;
  }

  #dispatch(client: Client, req: Request): SysResult<number | bigint> {
    const { op } = req;
    if (op === Op.HELLO || op === Op.FORK_CHILD) {
      if (client.proc) return { ret: -1, errno: 22, reason: 'this connection already has a process' };
      const pid = Number(op === Op.HELLO ? req.a0 : req.a1);
      const mm = (m: Machine): RemoteMm => new RemoteMm(m.phys, m.hugePool, pid);
      if (op === Op.HELLO) {
        const id = realIdentity(pid, this.#identity);
        this.#attach(client, this.machine.spawn({ ...id, pid, stdio: false, mm: () => mm(this.machine) }));
      } else {
        const prepared = this.#forks.get(Number(req.a0));
        if (!prepared) return { ret: -1, errno: 3, reason: `no fork is pending with token ${req.a0}` };
        this.#forks.delete(Number(req.a0));
        const childMm = mm(this.machine);
        childMm.inheritHuge(prepared.huge);
        childMm.parent = prepared.parentMm;
        this.#attach(client, prepared.kernel.complete(childMm, pid));
      }
      return { ret: process.pid, errno: 0 };
    }
    const p = client.proc;
    if (!p) return { ret: -1, errno: 22, reason: 'say HELLO first' };
    switch (op) {
      case Op.OPEN:
        return p.open(req.payload.toString('utf8'), Number(req.a0), req.fd);
      case Op.CLOSE:
        return p.close(req.fd);
      case Op.DUP2:
        return p.dup2(req.fd, req.fd2);
      case Op.IOCTL:
        return p.ioctl(req.fd, Number(req.a0), req.a1);
      case Op.READ:
        return p.read(req.fd, req.a0, Number(req.a1));
      case Op.WRITE:
        return p.write(req.fd, req.a0, Number(req.a1));
      case Op.PREAD:
        return p.pread(req.fd, req.a0, Number(req.a1), BigInt.asIntN(64, req.a2));
      case Op.PWRITE:
        return p.pwrite(req.fd, req.a0, Number(req.a1), BigInt.asIntN(64, req.a2));
      case Op.MMAP_HUGE:
        client.mm?.mapHuge(req.a0, req.a1, Number(req.a2));
        return { ret: 0, errno: 0 };
      case Op.MUNMAP:
        client.mm?.unmapRange(req.a0, req.a1);
        return { ret: 0, errno: 0 };
      case Op.REAPED: {
        // Only a process whose real counterpart is gone: the reaper just waited for it.
        const pid = Number(req.a0);
        const child = this.machine.process(pid);
        if (child && child !== p && !existsSync(`/proc/${pid}`)) child.exit();
        return { ret: 0, errno: 0 };
      }
      case Op.POLL:
        return p.poll(req.fd);
      case Op.STAT: {
        const path = req.payload.toString('utf8');
        if (isSysfsPath(path)) return { ret: packStatSysfs(sysfsStat(this.machine, path, req.a0 === 1n)), errno: 0 };
        if (this.machine.devices.list(path.replace(/(.)\/+$/, '$1'))) return { ret: STAT_DEV_DIR, errno: 0 };
        return { ret: packStatNode(this.machine.devices.lookup(path)), errno: 0 };
      }
      case Op.FSTAT: {
        // A file opened from a node carries the node's path; anon-inode and procfs files do not.
        const path = p.fget(req.fd).path;
        const node = this.machine.devices.paths().includes(path) ? this.machine.devices.lookup(path) : null;
        return { ret: node ? packStatNode(node) : 0, errno: 0 };
      }
      case Op.LISTDIR:
        return p.listdir(req.payload.toString('utf8'), req.a0, Number(req.a1));
      case Op.SYSFS_READ:
        return p.readAttr(req.payload.toString('utf8'), req.a0, Number(req.a1));
      case Op.READLINK:
        return p.readlink(req.payload.toString('utf8'), req.a0, Number(req.a1));
      case Op.FD_LINK:
        return p.readlink(`/proc/self/fd/${req.fd}`, req.a0, Number(req.a1));
      case Op.MMAP:
        return p.mmapFile(req.fd, req.a0, Number(req.a1 & 0xffffffffn), Number(req.a1 >> 32n), req.a2);
      case Op.MMIO: {
        // A forked child has its parent's mappings (fork copies them) under the same ids.
        const write = (req.a2 & 0x100n) !== 0n;
        const value = write && req.payload.length >= 8 ? req.payload.readBigUInt64LE(0) : 0n;
        const r = p.mmio(Number(req.a0), req.a1, Number(req.a2 & 0xffn), write, value);
        return typeof r.ret === 'bigint' ? { ret: BigInt.asIntN(64, r.ret), errno: 0 } : r;
      }
      case Op.MUNMAP_IO:
        return p.munmapFile(Number(req.a0));
      case Op.FCNTL:
        return p.fcntl(req.fd, Number(req.a0), Number(req.a1));
      case Op.FORK_PREPARE: {
        const token = this.#nextToken++;
        this.#forks.set(token, { kernel: p.prepareFork(), huge: client.mm?.hugeRanges() ?? [], parentMm: client.mm ?? null });
        return { ret: token, errno: 0 };
      }
      case Op.FORK_ABORT:
        this.#forks.get(Number(req.a0))?.kernel.abort();
        this.#forks.delete(Number(req.a0));
        return { ret: 0, errno: 0 };
      default:
        return { ret: -1, errno: 38, reason: `unknown request op ${op}` };
    }
  }
}

/** Where the daemon listens by default: $XDG_RUNTIME_DIR/iommufd-emu/sock, else /tmp/iommufd-emu-UID/sock. */
export function defaultSocketPath(): string {
  const base = process.env.XDG_RUNTIME_DIR ? `${process.env.XDG_RUNTIME_DIR}/iommufd-emu` : `/tmp/iommufd-emu-${process.getuid?.() ?? 0}`;
  return `${base}/sock`;
}
