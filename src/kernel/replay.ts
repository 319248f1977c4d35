/**
 * Replay a recorded trace on a fresh machine and report every call whose result differs.
 * Everything a process did that reaches the kernel — spawn, fork, exit, syscalls, and its own
 * memory reads and writes (`poke`/`peek`) — is in the trace, so a deterministic kernel must
 * reproduce each result, errno, reason and output byte.
 */

import { Machine, type MachineOptions } from './machine.js';
import type { Process, SysResult } from './process.js';
import { type TraceEvent, hex, unhex } from './trace.js';

export interface ReplayMismatch {
  seq: number;
  call: string;
  expected: { ret: string | number; errno: number; reason?: string; out?: string };
  got: { ret: string | number; errno: number; reason?: string; out?: string };
}

const str = (v: unknown): string => String(v);
const num = (v: unknown): number => Number(v);
const bigOf = (v: unknown): bigint => BigInt(String(v));

/**
 * Re-run `events` on a new machine (`make(opts)`: a plain Machine unless the recording ran on
 * another kind, e.g. createDefaultMachine); returns the mismatches (empty when the replay is identical).
 */
export function replay(
  events: readonly TraceEvent[],
  opts: MachineOptions = {},
  make: (opts: MachineOptions) => Machine = (o) => new Machine(o),
): { machine: Machine; mismatches: ReplayMismatch[] } {
  const machine = make(opts);
  const procs = new Map<number, Process>();
  const mismatches: ReplayMismatch[] = [];
  const proc = (pid: number): Process => {
    const p = procs.get(pid);
    if (!p) throw new Error(`trace refers to pid ${pid} before it was spawned`);
    return p;
  };
  for (const e of events) {
    const a = e.args;
    let got: { ret: string | number; errno: number; reason?: string; out?: string };
    const fromSys = (r: SysResult<number | bigint>, out?: string): typeof got => ({
      ret: typeof r.ret === 'bigint' ? `0x${r.ret.toString(16)}` : r.ret,
      errno: r.errno,
      ...(r.reason !== undefined ? { reason: r.reason } : {}),
      ...(out !== undefined ? { out } : {}),
    });
    switch (e.call) {
      case 'spawn': {
        const p = machine.spawn({ uid: num(a.uid), gid: num(a.gid), caps: (a.caps as number[]) ?? [], memlock: bigOf(a.memlock), nofile: num(a.nofile) });
        procs.set(e.ret as number, p);
        got = { ret: p.pid, errno: 0 };
        break;
      }
      case 'fork': {
        const child = proc(e.pid).fork();
        procs.set(e.ret as number, child);
        got = { ret: child.pid, errno: 0 };
        break;
      }
      case 'exit':
        proc(e.pid).exit();
        got = { ret: 0, errno: 0 };
        break;
      case 'open':
        got = fromSys(proc(e.pid).open(str(a.path), num(a.flags), a.at === undefined ? undefined : num(a.at)));
        break;
      case 'dup2':
        got = fromSys(proc(e.pid).dup2(num(a.oldfd), num(a.newfd)));
        break;
      case 'close':
        got = fromSys(proc(e.pid).close(num(a.fd)));
        break;
      case 'dup':
        got = fromSys(proc(e.pid).dup(num(a.fd)));
        break;
      case 'eventfd':
        got = fromSys(proc(e.pid).eventfd(num(a.initval), num(a.flags)));
        break;
      case 'fcntl':
        got = fromSys(proc(e.pid).fcntl(num(a.fd), num(a.cmd), num(a.arg)));
        break;
      case 'listdir':
        got = fromSys(proc(e.pid).listdir(str(a.path), bigOf(a.buf), num(a.size)));
        break;
      case 'read_attr':
        got = fromSys(proc(e.pid).readAttr(str(a.path), bigOf(a.buf), num(a.size)));
        break;
      case 'readlink':
        got = fromSys(proc(e.pid).readlink(str(a.path), bigOf(a.buf), num(a.size)));
        break;
      case 'ioctl': {
        if (a.in !== undefined) {
          const buf = unhex(str(a.in));
          got = fromSys(proc(e.pid).ioctl(num(a.fd), num(a.cmd), buf), hex(buf));
        } else {
          got = fromSys(proc(e.pid).ioctl(num(a.fd), num(a.cmd), bigOf(a.arg)));
        }
        break;
      }
      case 'read':
        got = fromSys(proc(e.pid).read(num(a.fd), bigOf(a.buf), num(a.count)));
        break;
      case 'write':
        got = fromSys(proc(e.pid).write(num(a.fd), bigOf(a.buf), num(a.count)));
        break;
      case 'pread':
        got = fromSys(proc(e.pid).pread(num(a.fd), bigOf(a.buf), num(a.count), bigOf(a.offset)));
        break;
      case 'pwrite':
        got = fromSys(proc(e.pid).pwrite(num(a.fd), bigOf(a.buf), num(a.count), bigOf(a.offset)));
        break;
      case 'poll':
        got = fromSys(proc(e.pid).poll(num(a.fd)));
        break;
      case 'mmap':
        got = fromSys(proc(e.pid).mmap(bigOf(a.addr), bigOf(a.length), num(a.prot), num(a.flags)));
        break;
      case 'munmap':
        got = fromSys(proc(e.pid).munmap(bigOf(a.addr), bigOf(a.length)));
        break;
      case 'mmap_file':
        got = fromSys(proc(e.pid).mmapFile(num(a.fd), bigOf(a.length), num(a.prot), num(a.flags), bigOf(a.offset)));
        break;
      case 'mmio':
        got = fromSys(proc(e.pid).mmio(num(a.id), bigOf(a.offset), num(a.size), a.write === true, bigOf(a.value)));
        break;
      case 'munmap_file':
        got = fromSys(proc(e.pid).munmapFile(num(a.id)));
        break;
      case 'poke':
        got = fromSys(proc(e.pid).poke(bigOf(a.addr), unhex(str(a.data))));
        break;
      case 'peek': {
        try {
          got = { ret: 0, errno: 0, out: hex(proc(e.pid).peek(bigOf(a.addr), num(a.length))) };
        } catch (err) {
          const k = err as { errno?: number; reason?: string };
          if (k.errno === undefined) throw err;
          got = { ret: -1, errno: k.errno, ...(k.reason !== undefined ? { reason: k.reason } : {}) };
        }
        break;
      }
      case 'fail_nth':
        proc(e.pid).setFailNth(num(a.n));
        got = { ret: 0, errno: 0 };
        break;
      default:
        throw new Error(`cannot replay call '${e.call}'`);
    }
    const expected = { ret: e.ret, errno: e.errno, ...(e.reason !== undefined ? { reason: e.reason } : {}), ...(e.out !== undefined ? { out: e.out } : {}) };
    if (got.ret !== expected.ret || got.errno !== expected.errno || got.reason !== expected.reason || (expected.out !== undefined && got.out !== expected.out)) {
      mismatches.push({ seq: e.seq, call: e.call, expected, got });
    }
  }
  return { machine, mismatches };
}
