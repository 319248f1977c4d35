/**
 * A simulated IOMMU unit (a VT-d DMA remapping unit or an SMMUv3), the hardware half of the
 * drivers in kernel/iommu/drivers/.
 *
 * The driver programs the unit the way real drivers program context tables, PASID tables and
 * stream table entries: per requester ID (and optionally PASID) a `ContextEntry` says "block",
 * "pass through", "translate with this page table" or "translate with this guest stage-1 table
 * nested on this stage-2". Device DMA consults only that hardware state — never the kernel's
 * idea of which domain is attached — so a driver that forgets to program or invalidate shows up
 * as wrong DMA, exactly as on a real machine.
 *
 * A DMA request is resolved page by page (4 KiB): an interrupt-window check first (VT-d routes
 * 0xfee00000-0xfeefffff to interrupt remapping whatever the translation; SMMUv3 sees MSIs at the
 * software MSI window a paging domain maps), then the context, then the IOTLB (tag = the
 * domain's ID, see hw/iotlb.ts) and on a miss a walk of the table. Permissions are checked per
 * page, the dirty bit of each written leaf is set when the table tracks dirtiness (VT-d SSADS,
 * SMMU HTTU), and the physical page must be backed by a frame. Only when every page resolves is
 * data copied, in whole-page chunks through Frame.read/Frame.write; otherwise a `DmaFault` is
 * recorded in the unit's fault log (and the device's) and returned, and memory is untouched.
 *
 * A VT-d unit's capabilities live in CAP_REG/ECAP_REG (hw/vtd_regs.ts); an SMMUv3's in a few
 * feature flags (coherent walks, HTTU dirty-bit management, MSI isolation by the ITS). Both
 * translate 48-bit input addresses with 4 KiB, 2 MiB and 1 GiB pages.
 */

import { Frame, type PhysMem } from '../kernel/mm/physmem.js';
import { IOPTE_READ, IOPTE_WRITE, type Translation } from './io_pgtable.js';
import { Iotlb, type IotlbEntry } from './iotlb.js';
import { cap, ecap, encodeCap, encodeEcap, vtdSupport } from './vtd_regs.js';

export type IommuProfile = 'vtd' | 'smmuv3';

interface CommonOptions {
  /** Unit name (default dmarN / smmuN). */
  name?: string;
  /** IOTLB entries (default 512). */
  iotlbEntries?: number;
  /** The domain a freshly probed device gets: a DMA paging domain (default) or identity. */
  defaultDomain?: 'dma' | 'identity';
  /** Compare every IOTLB hit with a fresh walk and throw on a stale one (tests). */
  verifyIotlb?: boolean;
  /** Faults and interrupts kept in the unit's logs (default 256 each). */
  logSize?: number;
  /** PASID width in bits (default 20; 0 for none). */
  pasidWidth?: number;
}

export interface VtdOptions extends CommonOptions {
  profile: 'vtd';
  addressWidth?: 39 | 48;
  /** Largest second-level page (default '1g'). */
  superpages?: '4k' | '2m' | '1g';
  /** ECAP.SC (default true): IOMMU_CAP_ENFORCE_CACHE_COHERENCY. */
  snoopControl?: boolean;
  /** ECAP.SLADS (default true): SSADS dirty tracking. */
  dirtyTracking?: boolean;
  /** ECAP.IR (default true): interrupt remapping, which isolates MSIs. */
  interruptRemapping?: boolean;
  /** ECAP.NEST (default true). */
  nesting?: boolean;
  /** ECAP.PRS (default true). */
  pageRequests?: boolean;
  supervisorRequests?: boolean;
  extendedAccessedFlag?: boolean;
}

export interface SmmuV3Options extends CommonOptions {
  profile: 'smmuv3';
  /** HTTU with dirty-bit management (ARM_SMMU_FEAT_HD); default false. */
  httu?: boolean;
  /** The ITS isolates MSIs (IRQ_DOMAIN_FLAG_ISOLATED_MSI); default true. */
  msiIsolated?: boolean;
  /** Coherent table walks (ARM_SMMU_FEAT_COHERENCY); default true. */
  coherent?: boolean;
}

export type HwIommuOptions = VtdOptions | SmmuV3Options;

/** The VT-d interrupt address range (IOAPIC_RANGE_START..END), IOMMU_RESV_MSI. */
export const VTD_MSI_START = 0xfee00000n;
export const VTD_MSI_LAST = 0xfeefffffn;
/** MSI_IOVA_BASE / MSI_IOVA_LENGTH of arm-smmu-v3, IOMMU_RESV_SW_MSI. */
export const SMMU_SW_MSI_START = 0x8000000n;
export const SMMU_SW_MSI_LENGTH = 0x100000n;

/** A page table as the hardware walks it (implemented by the drivers' paging domains). */
export interface HwPageTable {
  /** Cache tag: the domain ID (VT-d) or ASID (SMMU) its IOTLB entries carry. */
  readonly tag: number;
  /** The last input address the table translates. */
  readonly lastIova: bigint;
  walk(iova: bigint): Translation | null;
  /** Whether a write sets the leaf's dirty bit now (SSADS enabled, or HTTU DBM). */
  readonly dirtyActive: boolean;
  /** Set the dirty bit of the leaf whose first IOVA page is `leafPage`. */
  setDirty(leafPage: number): void;
  /**
   * Never cache its translations in the IOTLB: a table that changes without invalidations
   * reaching the unit (a process's CPU page table walked for SVA) is walked on every request.
   */
  readonly uncached?: boolean;
}

/** A guest's stage-1 table (VT-d first-level format) as a nested PASID entry describes it. */
export interface HwStage1 {
  readonly tag: number;
  /** Guest-physical (stage-2 input) address of the top-level table. */
  readonly pgtblAddr: bigint;
  /** 48 (4-level) or 57 (5-level). */
  readonly addrWidth: number;
}

export type ContextEntry =
  | { readonly mode: 'blocked' }
  | { readonly mode: 'identity' }
  | { readonly mode: 'translate'; readonly table: HwPageTable }
  | { readonly mode: 'nested'; readonly s1: HwStage1; readonly s2: HwPageTable };

export const BLOCKED_CONTEXT: ContextEntry = { mode: 'blocked' };
export const IDENTITY_CONTEXT: ContextEntry = { mode: 'identity' };

/** What the unit needs to know about a device issuing DMA. */
export interface DmaRequester {
  readonly rid: number;
  readonly bdf: string;
  /** PASIDs the device may use (0: none). */
  readonly maxPasids: number;
}

export type DmaFaultReason = 'blocked' | 'not-present' | 'permission' | 'aperture' | 'pasid' | 'msi' | 'bus-error';

export interface DmaFault {
  readonly unit: string;
  readonly bdf: string;
  readonly rid: number;
  /** The first byte that could not be accessed. */
  readonly iova: bigint;
  readonly pasid: number | null;
  readonly write: boolean;
  readonly reason: DmaFaultReason;
  readonly detail: string;
}

/** A memory write that was an interrupt (an MSI), not memory. */
export interface MsiMessage {
  readonly unit: string;
  readonly bdf: string;
  readonly rid: number;
  /** The message as the function wrote it. */
  readonly address: bigint;
  readonly data: number;
  /** Whether interrupt remapping / the ITS isolated it. */
  readonly isolated: boolean;
  /**
   * The vector interrupt remapping delivers (its IRTE's); null for a compatibility-format message,
   * whose address and data the interrupt controller decodes itself.
   */
  readonly vector: number | null;
}

/** A VT-d interrupt remapping table entry, as the kernel programs it (present entries only). */
export interface Irte {
  /** The vector delivered to the destination CPU. */
  readonly vector: number;
  /** Source validation (SVT=01, SQ=0): only this requester ID may use the entry. */
  readonly sid: number;
}

/** A remappable-format MSI address (VT-d 5.1.2.2): bit 4 Interrupt Format, bit 3 SHV, handle 15:0 in bits 19:5 and 2. */
export const MSI_ADDR_REMAPPABLE = 1n << 4n;
export const MSI_ADDR_SHV = 1n << 3n;
/** The number of entries of an interrupt remapping table (INTR_REMAP_TABLE_ENTRIES). */
export const IRTE_ENTRIES = 65536;

export type DmaReadResult = { ok: true; data: Uint8Array } | { ok: false; fault: DmaFault };
export type DmaWriteResult = { ok: true; msi: MsiMessage | null } | { ok: false; fault: DmaFault };

interface Segment {
  frame: Frame;
  offset: number;
  length: number;
}

/** Why a page did not translate (turned into a DmaFault at the faulting byte). */
interface WalkFault {
  readonly reason: DmaFaultReason;
  readonly detail: string;
}

/** A read never resolves to an interrupt: the window check turns reads into faults. */
function asFault(r: DmaFault | MsiMessage): DmaFault {
  if ('reason' in r) return r;
  throw new Error('a DMA read resolved to an interrupt');
}

const walkFault = (reason: DmaFaultReason, detail: string): WalkFault => ({ reason, detail });

const PAGE = 4096;
const MAX_NUMBER_ADDR = 2n ** 52n;
const PASID_SPAN = 2 ** 20;
const hx = (v: bigint | number): string => `0x${v.toString(16)}`;

export class HwIommu {
  readonly profile: IommuProfile;
  readonly name: string;
  readonly phys: PhysMem;
  readonly iotlb: Iotlb;
  readonly defaultDomain: 'dma' | 'identity';
  verifyIotlb: boolean;
  /** VT-d CAP_REG / ECAP_REG (0 on an SMMU). */
  readonly capReg: bigint;
  readonly ecapReg: bigint;
  readonly pgsizeBitmap: bigint;
  /** Input address bits translated. */
  readonly addressWidth: number;
  readonly maxPasids: number;
  /** IOMMU_CAP_CACHE_COHERENCY. */
  readonly coherent: boolean;
  /** Snoop control: IOMMU_CAP_ENFORCE_CACHE_COHERENCY. */
  readonly snoopControl: boolean;
  /** IOMMU_CAP_DIRTY_TRACKING (VT-d SSADS, SMMU HTTU with coherency). */
  readonly dirtyTracking: boolean;
  readonly nesting: boolean;
  readonly pageRequests: boolean;
  readonly supervisorRequests: boolean;
  readonly extendedAccessedFlag: boolean;
  readonly fl5lp: boolean;
  /** Device TLBs (ATS) can be used (VT-d ECAP.DT). */
  readonly deviceTlb: boolean;
  /** Pass-through translation (VT-d ECAP.PT): identity domains. */
  readonly passThrough: boolean;
  /** MSIs are isolated (interrupt remapping / ITS). */
  readonly msiIsolated: boolean;
  /**
   * VT-d interrupt remapping is on (ECAP.IR; Linux enables it whenever the unit has it): interrupt
   * requests must be remappable-format messages whose handle names a present IRTE programmed for
   * the requester; compatibility-format ones are blocked, as Linux clears GCMD.CFI.
   */
  readonly interruptRemapping: boolean;
  /** The MSI window: IOMMU_RESV_MSI on VT-d, IOMMU_RESV_SW_MSI on SMMUv3. */
  readonly msiStart: bigint;
  readonly msiLength: bigint;
  readonly faults: DmaFault[] = [];
  readonly interrupts: MsiMessage[] = [];
  readonly stats = { reads: 0, writes: 0, bytesRead: 0, bytesWritten: 0, faults: 0, interrupts: 0 };
  /** Called for every fault and interrupt (after logging). */
  onFault: ((f: DmaFault) => void) | null = null;
  onMsi: ((m: MsiMessage) => void) | null = null;
  readonly #logSize: number;
  readonly #msiFirst: number;
  readonly #msiLast: number;
  readonly #rid = new Map<number, ContextEntry>();
  readonly #pasid = new Map<number, ContextEntry>();
  readonly #irte = new Map<number, Irte>();

  constructor(opts: HwIommuOptions, name: string, phys: PhysMem) {
    this.profile = opts.profile;
    this.name = opts.name ?? name;
    this.phys = phys;
    this.iotlb = new Iotlb(opts.iotlbEntries ?? 512);
    this.defaultDomain = opts.defaultDomain ?? 'dma';
    this.verifyIotlb = opts.verifyIotlb ?? false;
    this.#logSize = opts.logSize ?? 256;
    const pasidWidth = opts.pasidWidth ?? 20;
    if (opts.profile === 'vtd') {
      const sp = opts.superpages ?? '1g';
      const width = opts.addressWidth ?? 48;
      const f = {
        addressWidth: width,
        superpages2M: sp !== '4k',
        superpages1G: sp === '1g',
        snoopControl: opts.snoopControl ?? true,
        dirtyTracking: opts.dirtyTracking ?? true,
        interruptRemapping: opts.interruptRemapping ?? true,
        nesting: opts.nesting ?? true,
        pasidWidth,
        pageRequests: opts.pageRequests ?? true,
        supervisorRequests: opts.supervisorRequests ?? false,
        extendedAccessedFlag: opts.extendedAccessedFlag ?? false,
      };
      this.capReg = encodeCap(f);
      this.ecapReg = encodeEcap(f);
      // Everything below is read back from the registers, as intel/iommu.c does.
      const c = this.capReg;
      const e = this.ecapReg;
      const s = vtdSupport(c, e);
      this.pgsizeBitmap = 0x1000n | (s.superpages >= 1 ? 0x200000n : 0n) | (s.superpages >= 2 ? 0x40000000n : 0n);
      this.addressWidth = cap.mgaw(c);
      this.maxPasids = s.maxPasids;
      this.coherent = ecap.coherent(e);
      this.snoopControl = ecap.sc(e);
      this.dirtyTracking = s.ssads;
      this.nesting = s.nested;
      this.pageRequests = ecap.prs(e);
      this.supervisorRequests = ecap.srs(e);
      this.extendedAccessedFlag = ecap.eafs(e);
      this.fl5lp = cap.fl5lp(c);
      this.deviceTlb = ecap.dt(e);
      this.passThrough = ecap.passThrough(e);
      this.msiIsolated = ecap.ir(e);
      this.interruptRemapping = ecap.ir(e);
      this.msiStart = VTD_MSI_START;
      this.msiLength = VTD_MSI_LAST - VTD_MSI_START + 1n;
    } else {
      this.capReg = 0n;
      this.ecapReg = 0n;
      this.pgsizeBitmap = 0x40201000n;
      this.addressWidth = 48;
      this.maxPasids = pasidWidth ? 2 ** pasidWidth : 0;
      this.coherent = opts.coherent ?? true;
      this.snoopControl = false;
      // arm_smmu_dbm_capable: FEAT_HD and FEAT_COHERENCY.
      this.dirtyTracking = (opts.httu ?? false) && this.coherent;
      this.nesting = false;
      this.pageRequests = false;
      this.supervisorRequests = false;
      this.extendedAccessedFlag = false;
      this.fl5lp = false;
      this.deviceTlb = true;
      this.passThrough = true;
      this.msiIsolated = opts.msiIsolated ?? true;
      this.interruptRemapping = false;
      this.msiStart = SMMU_SW_MSI_START;
      this.msiLength = SMMU_SW_MSI_LENGTH;
    }
    this.#msiFirst = Number(this.msiStart);
    this.#msiLast = Number(this.msiStart + this.msiLength - 1n);
  }

  // ---- programming (the driver's side) ----

  /** Program the context (RID) or PASID entry of a requester; `null` clears it (blocked). */
  setContext(rid: number, entry: ContextEntry | null, pasid: number | null = null): void {
    if (pasid === null || pasid === 0) {
      if (entry) this.#rid.set(rid, entry);
      else this.#rid.delete(rid);
    } else {
      const k = rid * PASID_SPAN + pasid;
      if (entry) this.#pasid.set(k, entry);
      else this.#pasid.delete(k);
    }
  }

  /** Program (or, with null, clear) interrupt remapping table entry `index`, and flush its cache entry. */
  setIrte(index: number, entry: Irte | null): void {
    if (!this.interruptRemapping) throw new Error(`${this.name} has no interrupt remapping`);
    if (!Number.isInteger(index) || index < 0 || index >= IRTE_ENTRIES) throw new Error(`IRTE index ${index} is outside the table`);
    if (entry) this.#irte.set(index, entry);
    else this.#irte.delete(index);
  }

  irte(index: number): Irte | null {
    return this.#irte.get(index) ?? null;
  }

  context(rid: number, pasid: number | null = null): ContextEntry {
    const e = pasid === null || pasid === 0 ? this.#rid.get(rid) : this.#pasid.get(rid * PASID_SPAN + pasid);
    return e ?? BLOCKED_CONTEXT;
  }

  /** Invalidate the IOTLB entries of `tag` covering [iova, iova + length). */
  invalidateRange(tag: number, iova: bigint, length: bigint): void {
    if (length <= 0n) return;
    const first = Number(iova >> 12n);
    const last = Number((iova + length - 1n) >> 12n);
    this.iotlb.invalidateRange(tag, first, Math.min(last, 2 ** 36 - 1));
  }

  // ---- DMA (the device's side) ----

  /** Read `length` bytes at `iova` into a new buffer. */
  read(req: DmaRequester, iova: bigint, length: number, pasid: number | null = null): DmaReadResult {
    const r = this.#resolve(req, iova, length, false, pasid);
    if (!Array.isArray(r)) return { ok: false, fault: asFault(r) };
    // One segment: the frame's own copy is the result.
    const out = r.length === 1 ? r[0]!.frame.read(r[0]!.offset, r[0]!.length) : this.#gather(r, new Uint8Array(length));
    this.stats.reads++;
    this.stats.bytesRead += length;
    return { ok: true, data: out };
  }

  /** Read `dst.length` bytes at `iova` into `dst` (no allocation; `dst` is untouched on a fault). */
  readInto(req: DmaRequester, iova: bigint, dst: Uint8Array, pasid: number | null = null): DmaWriteResult {
    const r = this.#resolve(req, iova, dst.length, false, pasid);
    if (!Array.isArray(r)) return { ok: false, fault: asFault(r) };
    this.#gather(r, dst);
    this.stats.reads++;
    this.stats.bytesRead += dst.length;
    return { ok: true, msi: null };
  }

  #gather(segs: Segment[], out: Uint8Array): Uint8Array {
    let at = 0;
    for (const s of segs) {
      // A plain Frame keeps its bytes here; subclasses (remote memory) must be read through read().
      out.set(s.frame.constructor === Frame ? s.frame.data.subarray(s.offset, s.offset + s.length) : s.frame.read(s.offset, s.length), at);
      at += s.length;
    }
    return out;
  }

  write(req: DmaRequester, iova: bigint, data: Uint8Array, pasid: number | null = null): DmaWriteResult {
    const r = this.#resolve(req, iova, data.length, true, pasid, data);
    if (!Array.isArray(r)) {
      if ('reason' in r) return { ok: false, fault: r };
      return { ok: true, msi: r };
    }
    let at = 0;
    for (const s of r) {
      s.frame.write(s.offset, data.subarray(at, at + s.length));
      at += s.length;
    }
    this.stats.writes++;
    this.stats.bytesWritten += data.length;
    return { ok: true, msi: null };
  }

  /** Translate [iova, iova + length) page by page; a fault, an interrupt, or the segments to copy. */
  #resolve(req: DmaRequester, iova: bigint, length: number, write: boolean, pasid: number | null, data: Uint8Array | null = null): Segment[] | DmaFault | MsiMessage {
    const fault = (at: bigint, reason: DmaFaultReason, detail: string): DmaFault => this.#fault(req, at, pasid, write, reason, detail);
    if (!Number.isInteger(length) || length < 0) throw new Error(`DMA length ${length} is not a byte count`);
    if (iova < 0n) return fault(iova, 'aperture', `${hx(iova)} is not a bus address`);
    let ctx: ContextEntry;
    if (pasid !== null && pasid !== 0) {
      if (pasid >= req.maxPasids) return fault(iova, 'pasid', `PASID ${pasid} is beyond the ${req.maxPasids} PASIDs ${req.bdf} may use`);
      ctx = this.#pasid.get(req.rid * PASID_SPAN + pasid) ?? BLOCKED_CONTEXT;
      if (ctx.mode === 'blocked') return fault(iova, 'pasid', `no PASID table entry for PASID ${pasid} of ${req.bdf}`);
    } else {
      ctx = this.#rid.get(req.rid) ?? BLOCKED_CONTEXT;
    }
    // Addresses are exact doubles below 2^52; anything above is beyond every aperture and memory.
    const start = iova < MAX_NUMBER_ADDR ? Number(iova) : Infinity;
    const last = start + length - 1;
    // Interrupt requests: VT-d whatever the translation; SMMUv3 where a paging domain maps the doorbell.
    if (length && start <= this.#msiLast && last >= this.#msiFirst && (this.profile === 'vtd' || ctx.mode === 'translate' || ctx.mode === 'nested')) {
      const window = `[${hx(this.msiStart)}, ${hx(this.msiStart + this.msiLength - 1n)}]`;
      if (!write || !data) return fault(iova, 'msi', `a read of the interrupt window ${window} is an unsupported request`);
      if (length !== 4 || start % 4 || start < this.#msiFirst || last > this.#msiLast) return fault(iova, 'msi', `an interrupt request must be one aligned 4-byte write inside ${window}`);
      const value = new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true);
      let vector: number | null = null;
      if (this.interruptRemapping) {
        const r = this.#remap(req, iova, value);
        if (typeof r === 'string') return fault(iova, 'msi', r);
        vector = r;
      }
      const msg: MsiMessage = { unit: this.name, bdf: req.bdf, rid: req.rid, address: iova, data: value, isolated: this.msiIsolated, vector };
      this.#logMsi(msg);
      return msg;
    }
    if (ctx.mode === 'blocked') return fault(iova, 'blocked', `${req.bdf}${pasid ? ` PASID ${pasid}` : ''} is blocked (no translation programmed)`);
    if (!length) return [];
    if (last >= Number(MAX_NUMBER_ADDR)) {
      return fault(iova, ctx.mode === 'identity' ? 'bus-error' : 'aperture', `[${hx(iova)}, +${hx(length)}) is beyond the ${this.addressWidth}-bit input address width`);
    }
    const segs: Segment[] = [];
    const dirty: number[] = [];
    let a = start;
    const end = start + length;
    const table = ctx.mode === 'translate' ? ctx.table : ctx.mode === 'nested' ? ctx.s2 : null;
    while (a < end) {
      const page = Math.floor(a / PAGE);
      const offset = a - page * PAGE;
      const n = Math.min(PAGE - offset, end - a);
      let ppn = page;
      if (ctx.mode !== 'identity') {
        const e = this.#translatePage(ctx, page);
        if ('reason' in e) return fault(BigInt(a), e.reason, e.detail);
        if (!(e.perm & (write ? IOPTE_WRITE : IOPTE_READ))) {
          return fault(BigInt(a), 'permission', `${hx(page * PAGE)} is mapped ${e.perm & IOPTE_WRITE ? 'write-only' : e.perm & IOPTE_READ ? 'read-only' : 'with no access'}; the DMA ${write ? 'writes' : 'reads'}`);
        }
        ppn = e.ppn;
        if (write && table!.dirtyActive) dirty.push(e.leafPage);
      }
      const frame = this.phys.lookup(ppn);
      if (!frame) return fault(BigInt(a), 'bus-error', `no memory at physical address ${hx(ppn * PAGE + offset)}`);
      segs.push({ frame, offset, length: n });
      a += n;
    }
    for (const p of dirty) table!.setDirty(p);
    return segs;
  }

  /** One page through the IOTLB, walking on a miss. */
  #translatePage(ctx: ContextEntry & { mode: 'translate' | 'nested' }, page: number): IotlbEntry | WalkFault {
    const tag = ctx.mode === 'translate' ? ctx.table.tag : ctx.s1.tag;
    const cacheable = page < 2 ** 36 && !(ctx.mode === 'translate' && ctx.table.uncached);
    if (cacheable) {
      const hit = this.iotlb.lookup(tag, page);
      if (hit) {
        // A guest may legitimately leave a stale stage-1 entry until it invalidates; only stage 2 is checked.
        if (this.verifyIotlb && ctx.mode === 'translate') this.#verify(ctx.table, page, hit);
        return hit;
      }
    }
    const e = ctx.mode === 'translate' ? this.#walk(ctx.table, page) : this.#walkNested(ctx, page);
    if (!('reason' in e) && cacheable) this.iotlb.fill(tag, page, e);
    return e;
  }

  #walk(table: HwPageTable, page: number): IotlbEntry | WalkFault {
    const iova = BigInt(page) * 4096n;
    if (iova > table.lastIova) return walkFault('aperture', `${hx(iova)} is beyond the domain's last IOVA ${hx(table.lastIova)}`);
    const t = table.walk(iova);
    if (!t) return walkFault('not-present', `nothing is mapped at IOVA ${hx(iova)}`);
    return { ppn: Number(t.paddr >> 12n), perm: t.perm, leafPage: Number((iova & ~(t.pageSize - 1n)) >> 12n) };
  }

  #verify(table: HwPageTable, page: number, hit: IotlbEntry): void {
    const t = table.walk(BigInt(page) * 4096n);
    if (!t || Number(t.paddr >> 12n) !== hit.ppn || t.perm !== hit.perm) {
      throw new Error(`${this.name}: IOTLB hit for tag ${table.tag} page ${hx(page * PAGE)} is stale (cached ppn ${hx(hit.ppn)} perm ${hit.perm}, table says ${t ? `ppn ${hx(t.paddr >> 12n)} perm ${t.perm}` : 'not mapped'})`);
    }
  }

  /**
   * The nested walk: the guest's first-level table (x86-64 4/5-level format: P bit 0, R/W bit 1,
   * U/S bit 2, PS bit 7, address bits 51:12) read through stage 2, then the output address
   * through stage 2. Requests without PASID are user requests, so U/S must be set at every level.
   * The hardware's accessed/dirty updates of first-level entries are not emulated.
   */
  #walkNested(ctx: ContextEntry & { mode: 'nested' }, page: number): IotlbEntry | WalkFault {
    const iova = BigInt(page) * 4096n;
    const levels = ctx.s1.addrWidth === 57 ? 5 : 4;
    if (iova >= 1n << BigInt(ctx.s1.addrWidth - 1)) return walkFault('aperture', `${hx(iova)} is not a canonical lower-half stage-1 address`);
    let table = ctx.s1.pgtblAddr & ~0xfffn;
    let perm = IOPTE_READ | IOPTE_WRITE;
    let gpa = 0n;
    for (let lvl = levels - 1; lvl >= 0; lvl--) {
      const shift = BigInt(12 + 9 * lvl);
      const entryGpa = table + ((iova >> shift) & 511n) * 8n;
      const s2 = ctx.s2.walk(entryGpa);
      if (!s2 || !(s2.perm & IOPTE_READ)) return walkFault('not-present', `stage 2 does not map the stage-1 table entry at GPA ${hx(entryGpa)} (level ${lvl + 1})`);
      const frame = this.phys.lookup(Number(s2.paddr >> 12n));
      if (!frame) return walkFault('bus-error', `no memory behind the stage-1 table at GPA ${hx(entryGpa)}`);
      const raw = frame.read(Number(s2.paddr & 0xfffn), 8);
      const pte = new DataView(raw.buffer, raw.byteOffset, 8).getBigUint64(0, true);
      if (!(pte & 1n)) return walkFault('not-present', `stage-1 entry at GPA ${hx(entryGpa)} (level ${lvl + 1}) is not present`);
      if (!(pte & 4n)) return walkFault('permission', `stage-1 entry at GPA ${hx(entryGpa)} (level ${lvl + 1}) is supervisor-only (U/S clear)`);
      if (!(pte & 2n)) perm &= ~IOPTE_WRITE;
      const addr = pte & 0x000ffffffffff000n;
      const large = lvl > 0 && (pte & 0x80n) !== 0n;
      if (large && lvl > 2) return walkFault('not-present', `stage-1 entry at GPA ${hx(entryGpa)} sets PS at level ${lvl + 1}`);
      if (lvl === 0 || large) {
        const size = 1n << shift;
        gpa = (addr & ~(size - 1n)) + (iova & (size - 1n));
        break;
      }
      table = addr;
    }
    if (gpa > ctx.s2.lastIova) return walkFault('aperture', `stage-1 output ${hx(gpa)} is beyond stage 2`);
    const s2 = ctx.s2.walk(gpa);
    if (!s2) return walkFault('not-present', `stage 2 does not map GPA ${hx(gpa)} (stage-1 output of ${hx(iova)})`);
    return { ppn: Number(s2.paddr >> 12n), perm: perm & s2.perm, leafPage: Number((gpa & ~(s2.pageSize - 1n)) >> 12n) };
  }

  /** The interrupt remapping of a message: the IRTE's vector, or why it faulted. */
  #remap(req: DmaRequester, address: bigint, data: number): number | string {
    if (!(address & MSI_ADDR_REMAPPABLE)) return `a compatibility-format interrupt (address ${hx(address)}) is blocked: interrupt remapping is on and GCMD.CFI is clear`;
    let handle = Number((address >> 5n) & 0x7fffn) | (Number((address >> 2n) & 1n) << 15);
    if (address & MSI_ADDR_SHV) handle += data & 0xffff;
    const e = handle < IRTE_ENTRIES ? this.#irte.get(handle) : undefined;
    if (!e) return `interrupt remapping: IRTE ${handle} is not present`;
    if (e.sid !== req.rid) return `interrupt remapping: IRTE ${handle} is for requester ${hx(e.sid)}, not ${req.bdf} (${hx(req.rid)})`;
    return e.vector;
  }

  #fault(req: DmaRequester, iova: bigint, pasid: number | null, write: boolean, reason: DmaFaultReason, detail: string): DmaFault {
    const f: DmaFault = { unit: this.name, bdf: req.bdf, rid: req.rid, iova, pasid, write, reason, detail };
    this.faults.push(f);
    if (this.faults.length > this.#logSize) this.faults.shift();
    this.stats.faults++;
    this.onFault?.(f);
    return f;
  }

  #logMsi(m: MsiMessage): void {
    this.interrupts.push(m);
    if (this.interrupts.length > this.#logSize) this.interrupts.shift();
    this.stats.interrupts++;
    this.onMsi?.(m);
  }
}

