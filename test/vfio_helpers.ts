/**
 * Helpers for VFIO tests on the default machine (the oracle's -v guest: edu at 0000:00:03.0 in
 * group 3, cdev vfio0): argsz-first struct calls, a bound and attached cdev, config space and BAR
 * access through the device file, SET_IRQS with its data array.
 */

import assert from 'node:assert/strict';
import {
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_SET_IRQS,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  type Process,
  type SysResult,
} from '../src/index.js';
import { createDefaultMachine } from '../src/kernel/default_machine.js';
import type { Machine } from '../src/kernel/machine.js';
import type { FieldMap, StructSchema, StructValue } from '../src/uapi/schema.js';
import { checkedMachine, ioasAlloc, ok } from './helpers.js';

export const CDEV = '/dev/vfio/devices/vfio0';
export const GROUP = '/dev/vfio/3';
export const BDF = '0000:00:03.0';
export const region = (i: number): bigint => BigInt(i) << 40n;
export const CONFIG = region(7);

/**
 * An ioctl with a VFIO struct (argsz first) in a buffer of `size` bytes. With `fill`, every byte
 * the caller gives no field for is `fill` (the probes memset their structs to 0xee).
 */
export function vcall<F extends FieldMap>(p: Process, fd: number, cmd: number, schema: StructSchema<F>, v: Partial<StructValue<F>>, size = schema.size, fill?: number) {
  const bytes = new Uint8Array(Math.max(size, schema.size)).fill(fill ?? 0);
  const enc = schema.encode(v);
  for (const f of schema.fields) if (fill === undefined || f.name in v) bytes.set(enc.subarray(f.offset, f.offset + f.size), f.offset);
  const r = p.ioctl(fd, cmd, bytes);
  return { r, out: schema.decode(bytes), bytes };
}

export function vfioMachine(): { m: Machine; p: Process } {
  const m = checkedMachine({}, createDefaultMachine);
  const p = m.spawn();
  // The scratch buffer byte-array ioctls use, made now so snapshots before and after a call agree.
  p.mm.write(p.scratch(1), new Uint8Array(1));
  return { m, p };
}

/** The cdev bound to a fresh iommufd and attached to an IOAS. */
export function attached() {
  const { m, p } = vfioMachine();
  const ifd = p.openOrThrow('/dev/iommu');
  const dev = p.openOrThrow(CDEV);
  ok(vcall(p, dev, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd, { argsz: 16, iommufd: ifd }).r);
  const ioas = ioasAlloc(p, ifd);
  ok(vcall(p, dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt, { argsz: 12, pt_id: ioas }).r);
  return { m, p, ifd, dev, ioas, buf: p.mmapOrThrow(4096n) };
}

/** pread of `n` (1..8) bytes at `off`, little-endian; the call's result too. */
export function rd(p: Process, fd: number, off: bigint, n: number): { r: SysResult; v: bigint } {
  const buf = p.mmapOrThrow(4096n);
  const r = p.pread(fd, buf, n, off);
  const bytes = r.errno ? new Uint8Array(0) : p.mm.read(buf, Number(r.ret));
  const v = [...bytes].reverse().reduce((a, b) => (a << 8n) | BigInt(b), 0n);
  p.munmap(buf, 4096n);
  return { r, v };
}

/** pwrite of `n` bytes of `v` (little-endian) at `off`. */
export function wr(p: Process, fd: number, off: bigint, v: bigint, n: number): SysResult {
  const buf = p.mmapOrThrow(4096n);
  p.mm.write(buf, Uint8Array.from({ length: n }, (_, i) => Number((v >> BigInt(8 * i)) & 0xffn)));
  const r = p.pwrite(fd, buf, n, off);
  p.munmap(buf, 4096n);
  return r;
}

export const cfg = (p: Process, fd: number, off: number, n: number): number => {
  const { r, v } = rd(p, fd, CONFIG + BigInt(off), n);
  assert.equal(ok(r), n);
  return Number(v);
};
export const setCfg = (p: Process, fd: number, off: number, v: number, n: number): void => {
  assert.equal(ok(wr(p, fd, CONFIG + BigInt(off), BigInt(v), n)), n);
};

/** VFIO_DEVICE_SET_IRQS: header, then `data` (eventfds as i32, or bytes); argsz defaults to what they take. */
export function setIrqs(p: Process, fd: number, h: { flags: number; index: number; start?: number; count: number; argsz?: number }, data: Uint8Array | number[] = []): SysResult {
  const payload = data instanceof Uint8Array ? data : new Uint8Array(Int32Array.from(data).buffer);
  const bytes = new Uint8Array(20 + payload.length);
  const dv = new DataView(bytes.buffer);
  dv.setUint32(0, h.argsz ?? bytes.length, true);
  dv.setUint32(4, h.flags, true);
  dv.setUint32(8, h.index, true);
  dv.setUint32(12, h.start ?? 0, true);
  dv.setUint32(16, h.count, true);
  bytes.set(payload, 20);
  return p.ioctl(fd, VFIO_DEVICE_SET_IRQS, bytes);
}
