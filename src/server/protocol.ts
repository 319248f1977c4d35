/**
 * The wire protocol between the preload shim and the daemon: one request, one response, over a
 * Unix stream socket, little-endian, fixed headers. shim/protocol.h is the C side of this file.
 *
 *   request:  u32 len | u32 op | i32 fd | i32 fd2 | u64 a0 | u64 a1 | u64 a2 | payload[len-40]
 *   response: u32 len | u32 flags | i64 ret | i32 errno | u32 seq | [pins] | reason (UTF-8)
 *   note:     u32 op | u32 token | u32 seq | u32 0              (notify connections only)
 *
 * pins (with RespFlag.PINS): u32 n | i32 fd[n], eventfds of the client the call took references
 * to; the shim dups each and it becomes the client's next pin token (1, 2, ...). Notes travel on
 * the client's notify connection (Op.NOTIFY) and act on those pins; the one note the shim sends
 * back on it, FIRED, says a pin the kernel watches (IOEVENTFD) was written.
 */

export const REQ_HEADER = 40;
export const RESP_HEADER = 24;

export const Op = {
  /** a0 = client pid. ret = daemon pid (for PR_SET_PTRACER). */
  HELLO: 1,
  /** payload = path; a0 = flags; fd = the real fd to mirror. */
  OPEN: 2,
  CLOSE: 3,
  /** dup2(fd, fd2). */
  DUP2: 4,
  /**
   * a0 = cmd, a1 = arg; fd2 = a spare real fd at the client's lowest free number (-1: none) where
   * a file the call makes is installed (then the response has RespFlag.SPARE_USED).
   */
  IOCTL: 5,
  /** a0 = buf, a1 = count. */
  READ: 6,
  WRITE: 7,
  POLL: 8,
  /** Prepare the emulated half of fork; ret = token the child presents. */
  FORK_PREPARE: 9,
  /** First message of a forked child's own connection: a0 = token, a1 = child pid. */
  FORK_CHILD: 10,
  /** The real fork failed: drop the prepared child. a0 = token. */
  FORK_ABORT: 11,
  /** pread: a0 = buf, a1 = count, a2 = offset. */
  PREAD: 12,
  /** pwrite: a0 = buf, a1 = count, a2 = offset. */
  PWRITE: 13,
  /** The client reaped its child a0 (waitpid & co.): the child's emulated exit happens now. */
  REAPED: 14,
  /**
   * The shim mapped ordinary pages at [a0, a0+a1) for an anonymous MAP_HUGETLB mmap (a2 = the mmap
   * flags): charge the machine's huge page pool and treat the range as huge pages.
   */
  MMAP_HUGE: 15,
  /** [a0, a0+a1), which held emulated huge pages, was unmapped or mapped over. */
  MUNMAP: 16,
  /** payload = path: the device node's metadata (packStatNode), or ENOENT if it is no node. */
  STAT: 17,
  /** The metadata of the device node fd was opened from (packStatNode); 0: the file is no node. */
  FSTAT: 18,
  LISTDIR: 19,
  SYSFS_READ: 20,
  /**
   * a0 = pid: this connection becomes the notify connection of that client process. After the
   * response the daemon sends only notes on it.
   */
  NOTIFY: 21,
  /** payload = path, a0 = buf, a1 = size: an emulated sysfs link's target, sized like LISTDIR. */
  READLINK: 22,
  /** fd; a0 = buf, a1 = size: what /proc/PID/fd/FD shows for an emulated fd, sized like LISTDIR. */
  FD_LINK: 23,
  /** fd; a0 = F_GETFL or F_SETFL, a1 = the F_SETFL argument: the emulated file's status flags. */
  FCNTL: 24,
  /**
   * mmap of an emulated fd: a0 = length, a1 = prot | flags << 32, a2 = offset. ret = the id of
   * the mapping, whose accesses the shim traps and sends as MMIO.
   */
  MMAP: 25,
  /**
   * One access to a mapping: a0 = its id, a1 = the byte offset in it, a2 = size | write << 8,
   * payload = the u64 written. ret = the value read; a failure is SIGBUS for the program.
   */
  MMIO: 26,
  /** The mapping a0 is gone (munmap, or mapped over): its file reference is dropped. */
  MUNMAP_IO: 27,
} as const;

/** What a note asks of the shim, or (FIRED) tells the daemon. */
export const Note = {
  /** Add 1 to the eventfd pinned as `token` (eventfd_signal). */
  SIGNAL: 1,
  /** Drop the pin (the kernel put its eventfd_ctx reference). */
  PUT: 2,
  /** Watch the pinned eventfd: whenever it is readable, consume its count and send FIRED. */
  WATCH: 3,
  /** Stop watching it. */
  UNWATCH: 4,
  /** Shim to daemon, on the notify connection: the watched eventfd `token` was written. */
  FIRED: 5,
} as const;

export const NOTE_SIZE = 16;

export function encodeNote(op: number, token: number, seq: number): Buffer {
  const out = Buffer.alloc(NOTE_SIZE);
  out.writeUInt32LE(op, 0);
  out.writeUInt32LE(token, 4);
  out.writeUInt32LE(seq >>> 0, 8);
  return out;
}

/** Set in a STAT/FSTAT answer that describes a device node. */
export const STAT_NODE = 1n << 62n;
/** Set (with STAT_NODE) when the path is an emulated /dev directory rather than a device node. */
export const STAT_DIR = 1n << 61n;

/**
 * A device node's metadata as a STAT/FSTAT answer's ret (shim/protocol.h unpacks it): bits 0-11
 * the permission bits, 12-31 the minor, 32-43 the major, and STAT_NODE.
 */
export function packStatNode(dev: { major: number; minor: number; mode: number }): bigint {
  return STAT_NODE | (BigInt(dev.major & 0xfff) << 32n) | (BigInt(dev.minor & 0xfffff) << 12n) | BigInt(dev.mode & 0o7777);
}

/** Set (with STAT_NODE) for an emulated sysfs attribute; STAT_LNK for a sysfs link. */
export const STAT_REG = 1n << 60n;
export const STAT_LNK = 1n << 59n;

/** A devtmpfs directory (mode 0755) as a STAT answer's ret. */
export const STAT_DEV_DIR = STAT_NODE | STAT_DIR | 0o755n;

/** An emulated sysfs entry as a STAT answer's ret: its type bit, mode in bits 0-11, st_size in bits 12-43. */
export function packStatSysfs(st: { type: 'dir' | 'reg' | 'lnk'; mode: number; size: number }): bigint {
  const type = st.type === 'dir' ? STAT_DIR : st.type === 'reg' ? STAT_REG : STAT_LNK;
  return STAT_NODE | type | (BigInt(st.size & 0xffffffff) << 12n) | BigInt(st.mode & 0o7777);
}

/** Bits of a response's flags word. */
export const RespFlag = {
  /** The call installed a new file at the spare fd the request offered. */
  SPARE_USED: 1 << 0,
  /** The payload starts with the eventfds to pin (see the header comment). */
  PINS: 1 << 1,
  /** The call emitted notes for this client: the shim applies those up to `seq` before returning. */
  SYNC: 1 << 2,
} as const;

export interface Request {
  op: number;
  fd: number;
  fd2: number;
  a0: bigint;
  a1: bigint;
  a2: bigint;
  payload: Buffer;
}

/** Split complete requests off the front of `buf`; returns them and the unconsumed rest. */
export function parseRequests(buf: Buffer): { reqs: Request[]; rest: Buffer } {
  const reqs: Request[] = [];
  let off = 0;
  while (buf.length - off >= REQ_HEADER) {
    const len = buf.readUInt32LE(off);
    if (len < REQ_HEADER) throw new Error(`bad request length ${len}`);
    if (buf.length - off < len) break;
    reqs.push({
      op: buf.readUInt32LE(off + 4),
      fd: buf.readInt32LE(off + 8),
      fd2: buf.readInt32LE(off + 12),
      a0: buf.readBigUInt64LE(off + 16),
      a1: buf.readBigUInt64LE(off + 24),
      a2: buf.readBigUInt64LE(off + 32),
      payload: buf.subarray(off + REQ_HEADER, off + len),
    });
    off += len;
  }
  return { reqs, rest: buf.subarray(off) };
}

export interface ResponseExtras {
  /** Eventfds to pin (sets RespFlag.PINS when non-empty). */
  pins?: readonly number[];
  /** Notes to apply before returning (sets RespFlag.SYNC when > 0). */
  seq?: number;
}

export function encodeResponse(ret: bigint | number, errno: number, reason = '', flags = 0, extras: ResponseExtras = {}): Buffer {
  const r = Buffer.from(reason, 'utf8');
  const pins = extras.pins ?? [];
  const pinBytes = pins.length ? 4 + 4 * pins.length : 0;
  const out = Buffer.alloc(RESP_HEADER + pinBytes + r.length);
  if (pins.length) {
    flags |= RespFlag.PINS;
    out.writeUInt32LE(pins.length, RESP_HEADER);
    pins.forEach((fd, i) => out.writeInt32LE(fd, RESP_HEADER + 4 + 4 * i));
  }
  if (extras.seq) flags |= RespFlag.SYNC;
  out.writeUInt32LE(out.length, 0);
  out.writeUInt32LE(flags, 4);
  out.writeBigInt64LE(BigInt(ret), 8);
  out.writeInt32LE(errno, 16);
  out.writeUInt32LE((extras.seq ?? 0) >>> 0, 20);
  r.copy(out, RESP_HEADER + pinBytes);
  return out;
}
