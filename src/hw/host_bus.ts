/**
 * The host bus as a PCI function with no IOMMU in front of it sees it: a DMA address is a
 * physical address. What a noiommu device (vfio's enable_unsafe_noiommu_mode) does: it reads and
 * writes whatever frames the addresses name, and the only check is that memory exists there.
 *
 * A 4-byte write to the x86 interrupt window (0xfee00000-0xfeefffff) is an MSI in compatibility
 * format, delivered as it is (nothing isolates it); any other access to the window, and any
 * access where no memory is, fails as an unsupported request ('bus-error'). PASID-tagged requests
 * have nothing to resolve them: without an IOMMU a PASID TLP prefix is an unsupported request.
 */

import type { PhysMem } from '../kernel/mm/physmem.js';
import type { DmaFault, DmaFaultReason, DmaReadResult, DmaRequester, DmaWriteResult, MsiMessage } from './iommu.js';

/** Where a PCI function's DMA goes: its IOMMU unit, or the host bus directly. */
export interface DmaTarget {
  readonly name: string;
  read(req: DmaRequester, addr: bigint, length: number, pasid: number | null): DmaReadResult;
  readInto(req: DmaRequester, addr: bigint, dst: Uint8Array, pasid: number | null): DmaWriteResult;
  write(req: DmaRequester, addr: bigint, data: Uint8Array, pasid: number | null): DmaWriteResult;
}

const PAGE = 4096;
const MSI_FIRST = 0xfee00000;
const MSI_LAST = 0xfeefffff;
const hx = (v: bigint | number): string => `0x${v.toString(16)}`;

interface Segment {
  readonly pfn: number;
  readonly offset: number;
  readonly length: number;
}

export class HostBus implements DmaTarget {
  readonly name = 'host';
  readonly #phys: PhysMem;
  /** Faults of every function on the bus, oldest first (bounded). */
  readonly faults: DmaFault[] = [];
  readonly #logSize: number;

  constructor(phys: PhysMem, logSize = 256) {
    this.#phys = phys;
    this.#logSize = logSize;
  }

  read(req: DmaRequester, addr: bigint, length: number, pasid: number | null): DmaReadResult {
    const r = this.#resolve(req, addr, length, false, pasid);
    if (!Array.isArray(r)) return { ok: false, fault: r };
    const out = new Uint8Array(length);
    this.#copyOut(r, out);
    return { ok: true, data: out };
  }

  readInto(req: DmaRequester, addr: bigint, dst: Uint8Array, pasid: number | null): DmaWriteResult {
    const r = this.#resolve(req, addr, dst.length, false, pasid);
    if (!Array.isArray(r)) return { ok: false, fault: r };
    this.#copyOut(r, dst);
    return { ok: true, msi: null };
  }

  write(req: DmaRequester, addr: bigint, data: Uint8Array, pasid: number | null): DmaWriteResult {
    const start = Number(addr);
    if (pasid === null && addr >= BigInt(MSI_FIRST) && addr <= BigInt(MSI_LAST) && data.length === 4 && start % 4 === 0) {
      const msi: MsiMessage = { unit: this.name, bdf: req.bdf, rid: req.rid, address: addr, data: new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true), isolated: false, vector: null };
      return { ok: true, msi };
    }
    const r = this.#resolve(req, addr, data.length, true, pasid);
    if (!Array.isArray(r)) return { ok: false, fault: r };
    let at = 0;
    for (const s of r) {
      this.#phys.lookup(s.pfn)!.write(s.offset, data.subarray(at, at + s.length));
      at += s.length;
    }
    return { ok: true, msi: null };
  }

  #copyOut(segs: Segment[], out: Uint8Array): void {
    let at = 0;
    for (const s of segs) {
      out.set(this.#phys.lookup(s.pfn)!.read(s.offset, s.length), at);
      at += s.length;
    }
  }

  #resolve(req: DmaRequester, addr: bigint, length: number, write: boolean, pasid: number | null): Segment[] | DmaFault {
    if (!Number.isInteger(length) || length < 0) throw new Error(`DMA length ${length} is not a byte count`);
    const fault = (at: bigint, reason: DmaFaultReason, detail: string): DmaFault => this.#fault(req, at, pasid, write, reason, detail);
    if (pasid !== null) return fault(addr, 'pasid', `a PASID-tagged request (PASID ${pasid}) from ${req.bdf}, with no IOMMU to take it`);
    if (addr < 0n || addr >= 2n ** 52n) return fault(addr, 'bus-error', `${hx(addr)} is not a physical address`);
    const start = Number(addr);
    const end = start + length;
    if (length && start <= MSI_LAST && end - 1 >= MSI_FIRST) {
      return fault(addr, 'msi', `${write ? 'a write other than one aligned 4-byte interrupt message' : 'a read'} in the interrupt window [${hx(MSI_FIRST)}, ${hx(MSI_LAST)}]`);
    }
    const segs: Segment[] = [];
    for (let a = start; a < end; ) {
      const pfn = Math.floor(a / PAGE);
      const offset = a - pfn * PAGE;
      const n = Math.min(PAGE - offset, end - a);
      if (!this.#phys.lookup(pfn)) return fault(BigInt(a), 'bus-error', `no memory at physical address ${hx(a)}`);
      segs.push({ pfn, offset, length: n });
      a += n;
    }
    return segs;
  }

  #fault(req: DmaRequester, addr: bigint, pasid: number | null, write: boolean, reason: DmaFaultReason, detail: string): DmaFault {
    const f: DmaFault = { unit: this.name, bdf: req.bdf, rid: req.rid, iova: addr, pasid, write, reason, detail };
    this.faults.push(f);
    if (this.faults.length > this.#logSize) this.faults.shift();
    return f;
  }
}
