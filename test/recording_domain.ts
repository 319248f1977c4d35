/**
 * A test-only IO page table for the io_pagetable engine: it records every 4 KiB IOVA page the
 * engine maps into a Map and checks itself, as the kernel's mock domain does — a map over a page
 * that is already mapped, or an unmap of a page that is not, fails the test at once. Adding one to
 * an IOAS makes IOAS_MAP pin and charge pages, which is what the sweeps and accounting tests need.
 */

import assert from 'node:assert/strict';
import type { IommufdIoas } from '../src/kernel/iommufd/ioas.js';
import { IOMMUFD_OBJ, type IommufdCtx } from '../src/kernel/iommufd/object.js';
import { type IoptDomain, ULONG_MAX } from '../src/kernel/iommufd/io_pagetable.js';
import type { Frame } from '../src/kernel/mm/physmem.js';
import { Errno, KernelError, type Process } from '../src/index.js';

const PG = 4096n;

export interface DomainEntry {
  frame: Frame;
  prot: number;
}

/**
 * A fail-nth counter shared by several domains: the Nth `map` call among them fails with ENOMEM,
 * as iommu_map does when it cannot allocate a page-table level.
 */
export class MapFault {
  n = 0;
}

export class RecordingDomain implements IoptDomain {
  readonly pgsizeBitmap = PG;
  readonly apertureStart = 0n;
  readonly apertureEnd = ULONG_MAX;
  /** IOVA page → what it points at. */
  readonly pt = new Map<bigint, DomainEntry>();
  maps = 0;
  unmaps = 0;
  readonly fault: MapFault | null;

  constructor(fault: MapFault | null = null) {
    this.fault = fault;
  }

  map(iova: bigint, frames: readonly Frame[], pageOffset: number, length: bigint, prot: number): void {
    assert.equal(iova % PG, 0n, `map at unaligned iova 0x${iova.toString(16)}`);
    assert.equal(pageOffset, 0, 'map with a sub-page offset into a 4 KiB-only domain');
    assert.ok(length > 0n && length % PG === 0n, `map of bad length 0x${length.toString(16)}`);
    const n = Number(length / PG);
    assert.equal(frames.length, n, `map of ${n} pages was handed ${frames.length} frames`);
    if (this.fault && this.fault.n && --this.fault.n === 0) throw new KernelError(Errno.ENOMEM, 'iommu_map: page-table allocation failed (test domain)');
    for (let k = 0; k < n; k++) {
      const at = iova + BigInt(k) * PG;
      assert.ok(!this.pt.has(at), `double map of iova 0x${at.toString(16)}`);
      const frame = frames[k]!;
      assert.ok(frame.pins > 0, `iova 0x${at.toString(16)} mapped onto unpinned frame pfn ${frame.pfn}`);
      this.pt.set(at, { frame, prot });
    }
    this.maps++;
  }

  unmap(iova: bigint, length: bigint): void {
    for (let at = iova; at < iova + length; at += PG) {
      assert.ok(this.pt.has(at), `unmap of unmapped iova 0x${at.toString(16)}`);
      this.pt.delete(at);
    }
    this.unmaps++;
  }

  /** The frame at `iova`, or undefined. */
  frameAt(iova: bigint): Frame | undefined {
    return this.pt.get(iova - (iova % PG))?.frame;
  }
}

/** The iommufd context behind `fd` of `p`. */
export function ctxOf(p: Process, fd: number): IommufdCtx {
  return p.fget(fd).priv as IommufdCtx;
}

/** The IOAS object `id` of the iommufd behind `fd`, straight from the object table. */
export function ioasObj(p: Process, fd: number, id: number): IommufdIoas {
  const obj = ctxOf(p, fd).peek(id);
  assert.ok(obj && obj.type === IOMMUFD_OBJ.IOAS, `object ${id} is not a published IOAS`);
  return obj as IommufdIoas;
}

/** Attach `count` fresh recording domains to an IOAS through the engine; returns them. */
export function addDomains(p: Process, fd: number, id: number, count: number, fault: MapFault | null = null): RecordingDomain[] {
  const out: RecordingDomain[] = [];
  for (let i = 0; i < count; i++) {
    const d = new RecordingDomain(fault);
    ioasObj(p, fd, id).iopt.addDomain(p, d);
    out.push(d);
  }
  return out;
}

/** Fixture variants, like the kernel selftest's no_domain / mock_domain / two_mock_domain. */
export const DOMAIN_VARIANTS = [
  { name: 'no domain', domains: 0 },
  { name: 'one domain', domains: 1 },
  { name: 'two domains', domains: 2 },
] as const;
