/**
 * Shared test fixtures: a machine whose invariants are checked after every traced call, a process
 * with /dev/iommu open and an IOAS, typed ioctl helpers that assert success or an exact errno,
 * and a snapshot of everything a failed call must leave unchanged.
 */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Errno,
  KernelError,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_IOAS_UNMAP,
  Machine,
  type MachineOptions,
  type Process,
  type SpawnOptions,
  type SysResult,
  checkInvariants,
  errnoName,
  iommu_ioas_alloc,
  iommu_ioas_map,
  iommu_ioas_unmap,
} from '../src/index.js';
import type { AnyStruct, StructSchema, StructValue, FieldMap } from '../src/uapi/schema.js';

export const PAGE = 4096n;

/** A seeded xorshift32 generator in [0, 1): randomized tests that replay the same way every run. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

/** The errno a kernel-side call threw as a KernelError (0 when it returned); anything else is rethrown. */
export function thrownErrno(f: () => unknown): number {
  try {
    f();
  } catch (e) {
    if (e instanceof KernelError) return e.errno;
    throw e;
  }
  return 0;
}

/** A machine that fails the test the moment any call leaves it inconsistent. */
export function checkedMachine(opts: MachineOptions = {}, make: (opts: MachineOptions) => Machine = (o) => new Machine(o)): Machine {
  const m = make(opts);
  m.tracer.subscribe((e) => {
    const errs = checkInvariants(m);
    if (errs.length) assert.fail(`invariants broken after ${e.call}${e.what ? ` ${e.what}` : ''} (seq ${e.seq}):\n${errs.join('\n')}`);
  });
  return m;
}

export interface Fixture {
  m: Machine;
  p: Process;
  fd: number;
  ioas: number;
  /** 16 pages of anonymous read-write memory. */
  buf: bigint;
  bufSize: bigint;
}

export function setup(spawn: SpawnOptions = {}, opts: MachineOptions = {}): Fixture {
  const m = checkedMachine(opts);
  const p = m.spawn(spawn);
  const fd = p.openOrThrow('/dev/iommu');
  const ioas = ioasAlloc(p, fd);
  const bufSize = 16n * PAGE;
  const buf = p.mmapOrThrow(bufSize);
  return { m, p, fd, ioas, buf, bufSize };
}

/** Assert a syscall succeeded; returns its value. */
export function ok<T>(r: SysResult<T>): T {
  if (r.errno) assert.fail(`expected success, got ${errnoName(r.errno)}: ${r.reason}`);
  return r.ret as T;
}

/** Assert a syscall failed with exactly `errno`, and that it said why. */
export function fails(r: SysResult<unknown>, errno: number): string {
  assert.equal(r.ret, -1, `expected ${errnoName(errno)}, the call succeeded`);
  assert.equal(errnoName(r.errno), errnoName(errno), `expected ${errnoName(errno)}, got ${errnoName(r.errno)}: ${r.reason}`);
  assert.ok(r.reason && r.reason.length > 0, 'a refusal must carry a reason');
  return r.reason;
}

/** Run an ioctl with a struct; returns the result and the struct as the kernel left it. */
export function call<F extends FieldMap>(
  p: Process,
  fd: number,
  cmd: number,
  schema: StructSchema<F>,
  v: Partial<StructValue<F>>,
  size: number = schema.size,
): { r: SysResult; out: StructValue<F>; bytes: Uint8Array } {
  const full = schema.encode({ ...v, ...('size' in schema.zero() ? { size } : {}) });
  const bytes = new Uint8Array(Math.max(size, 4));
  bytes.set(full.subarray(0, Math.min(size, full.length)));
  const r = p.ioctl(fd, cmd, bytes);
  return { r, out: schema.decode(bytes), bytes };
}

export function ioasAlloc(p: Process, fd: number): number {
  const { r, out } = call(p, fd, IOMMU_IOAS_ALLOC, iommu_ioas_alloc, {});
  ok(r);
  return out.out_ioas_id;
}

export const RW = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;

/** IOAS_MAP at a fixed IOVA (or a kernel-chosen one when iova is null); returns the IOVA. */
export function map(f: Pick<Fixture, 'p' | 'fd' | 'ioas'>, userVa: bigint, length: bigint, iova: bigint | null, flags = RW): SysResult & { iova: bigint } {
  const { r, out } = call(f.p, f.fd, IOMMU_IOAS_MAP, iommu_ioas_map, {
    flags: flags | (iova === null ? 0 : IOMMU_IOAS_MAP_FIXED_IOVA),
    ioas_id: f.ioas,
    user_va: userVa,
    length,
    iova: iova ?? 0n,
  });
  return { ...r, iova: out.iova };
}

export function unmap(f: Pick<Fixture, 'p' | 'fd' | 'ioas'>, iova: bigint, length: bigint): SysResult & { length: bigint } {
  const { r, out } = call(f.p, f.fd, IOMMU_IOAS_UNMAP, iommu_ioas_unmap, { ioas_id: f.ioas, iova, length });
  return { ...r, length: out.length };
}

/** Everything a failed call must leave as it was: objects, IDs, users, areas, pins, accounting. */
export function snapshot(m: Machine): string {
  const ctxs = [...m.iommufd.contexts].map((c) =>
    c.objects().map((o) => {
      const iopt = (o as { iopt?: { areas: Iterable<{ start: bigint; last: bigint; iommuProt: number }>; reserved: Iterable<{ start: bigint; last: bigint }>; allowed: Iterable<{ start: bigint; last: bigint }>; iovaAlignment: bigint } }).iopt;
      return {
        id: o.id,
        type: o.type,
        users: o.users,
        areas: iopt ? [...iopt.areas].map((a) => `${a.start}-${a.last}/${a.iommuProt}`) : [],
        reserved: iopt ? [...iopt.reserved].map((a) => `${a.start}-${a.last}`) : [],
        allowed: iopt ? [...iopt.allowed].map((a) => `${a.start}-${a.last}`) : [],
        align: iopt ? String(iopt.iovaAlignment) : '',
      };
    }),
  );
  const frames = [...m.phys.frames()].map((f) => `${f.pfn}:${f.refs}:${f.pins}`).sort();
  const users = [...m.users()].map((u) => `${u.uid}:${u.lockedVm}`);
  const mms = [...m.processes()].map((p) => `${p.pid}:${p.mm.lockedVm}:${p.mm.pinnedVm}`);
  return JSON.stringify({ ctxs, frames, users, mms });
}

export { Errno };
export type { AnyStruct };

/** The lines a probe in test/oracle/ printed on the real 6.12 kernel (test/oracle/NAME.expected). */
export function oracleLines(name: string): string[] {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  return readFileSync(join(root, 'test', 'oracle', `${name}.expected`), 'utf8').trimEnd().split('\n');
}

/** One result line in the oracle probes' format: `NAME<padding> ret=R errno=ENAME|0`. */
export function probeLine(name: string, width: number, r: SysResult): string {
  return `${name.padEnd(width)} ret=${r.ret} errno=${r.errno ? errnoName(r.errno) : '0'}`;
}
