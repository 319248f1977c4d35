/**
 * The two VT-d registers software reads to learn what a DMA remapping unit can do: the
 * Capability Register (CAP_REG, offset 0x08) and the Extended Capability Register (ECAP_REG,
 * offset 0x10), laid out as the VT-d specification (rev 4.x) and drivers/iommu/intel/iommu.h's
 * cap_*() and ecap_*() decoders read them. A simulated unit is described by `VtdFeatures`; the
 * registers are encoded from it, and everything the driver decides (snoop control, SSADS dirty
 * tracking, nesting, PASID width, superpages) is decoded back from the registers, exactly as
 * intel/iommu.c does, so GET_HW_INFO's bytes and the driver's behaviour cannot disagree.
 *
 * CAP_REG bits set (the rest are 0):
 *   2:0   ND      6      (2^16 domain IDs)
 *   5     PLMR    1      protected low-memory region
 *   6     PHMR    1      protected high-memory region
 *   12:8  SAGAW   0x2 (39-bit, 3-level) | 0x4 (48-bit, 4-level) up to the address width
 *   21:16 MGAW    address width - 1 (47 for 48 bits)
 *   22    ZLR     1      zero-length reads
 *   33:24 FRO     0x40   fault recording registers at 0x400
 *   37:34 SLLPS   bit 0 = 2 MiB, bit 1 = 1 GiB second-level superpages
 *   39    PSI     1      page-selective invalidation
 *   47:40 NFR     7      8 fault recording registers
 *   53:48 MAMV    18     largest PSI address mask
 *   54,55 DWD/DRD 1      write and read draining
 *   56    FL1GP   1 GiB first-level pages (with 1 GiB superpages)
 *   59    PI      posted interrupts (with interrupt remapping)
 *   62,63 ESIRTPS/ESRTPS 1
 *
 * ECAP_REG bits set:
 *   0     C       1      coherent page walks
 *   1     QI      1      queued invalidation
 *   2     DT      1      device TLB (ATS)
 *   3,4   IR/EIM  interrupt remapping (and x2APIC mode) — what isolates MSIs on x86
 *   6     PT      1      pass-through (identity) translation
 *   7     SC      snoop control: IOMMU_CAP_ENFORCE_CACHE_COHERENCY
 *   17:8  IRO     0x50   IOTLB registers at 0x500
 *   23:20 MHMV    0xf
 *   25    MTS     1      memory type support
 *   26    NEST    nested translation (IOMMU_HWPT_DATA_VTD_S1)
 *   29    PRS     page requests (IOPF)
 *   31    SRS     supervisor requests (IOMMU_VTD_S1_SRE)
 *   33    NWFS    1
 *   34    EAFS    extended accessed flag (IOMMU_VTD_S1_EAFE)
 *   39:35 PSS     PASID width - 1
 *   40    PASID   PASID support
 *   43    SMTS    1      scalable mode
 *   45    SLADS   second-level accessed/dirty: with SMTS and SMPWC, IOMMU_CAP_DIRTY_TRACKING (SSADS)
 *   46,47 SLTS/FLTS 1    second- and first-level translation
 *   48    SMPWC   1      scalable-mode page-walk coherency
 */

export interface VtdFeatures {
  /** Guest address width the unit translates: 39 (3-level) or 48 (4-level). */
  addressWidth: 39 | 48;
  /** Second-level superpages: 2 MiB, and 1 GiB with it. */
  superpages2M: boolean;
  superpages1G: boolean;
  snoopControl: boolean;
  dirtyTracking: boolean;
  interruptRemapping: boolean;
  nesting: boolean;
  /** PASID width in bits; 0 for none. */
  pasidWidth: number;
  pageRequests: boolean;
  supervisorRequests: boolean;
  extendedAccessedFlag: boolean;
}

const bit = (n: number, on = true): bigint => (on ? 1n << BigInt(n) : 0n);
const field = (v: number, shift: number): bigint => BigInt(v) << BigInt(shift);
const get = (r: bigint, shift: number, width = 1): number => Number((r >> BigInt(shift)) & ((1n << BigInt(width)) - 1n));

export function encodeCap(f: VtdFeatures): bigint {
  const sagaw = f.addressWidth === 48 ? 0x6 : 0x2;
  const sllps = (f.superpages2M ? 1 : 0) | (f.superpages2M && f.superpages1G ? 2 : 0);
  return (
    field(6, 0) |
    bit(5) |
    bit(6) |
    field(sagaw, 8) |
    field(f.addressWidth - 1, 16) |
    bit(22) |
    field(0x40, 24) |
    field(sllps, 34) |
    bit(39) |
    field(7, 40) |
    field(18, 48) |
    bit(54) |
    bit(55) |
    bit(56, (sllps & 2) !== 0) |
    bit(59, f.interruptRemapping) |
    bit(62) |
    bit(63)
  );
}

export function encodeEcap(f: VtdFeatures): bigint {
  return (
    bit(0) |
    bit(1) |
    bit(2) |
    bit(3, f.interruptRemapping) |
    bit(4, f.interruptRemapping) |
    bit(6) |
    bit(7, f.snoopControl) |
    field(0x50, 8) |
    field(0xf, 20) |
    bit(25) |
    bit(26, f.nesting) |
    bit(29, f.pageRequests) |
    bit(31, f.supervisorRequests) |
    bit(33) |
    bit(34, f.extendedAccessedFlag) |
    field(f.pasidWidth ? f.pasidWidth - 1 : 0, 35) |
    bit(40, f.pasidWidth > 0) |
    bit(43) |
    bit(45, f.dirtyTracking) |
    bit(46) |
    bit(47) |
    bit(48)
  );
}

/** The cap_*() decoders intel/iommu.h uses. */
export const cap = {
  mgaw: (c: bigint): number => get(c, 16, 6) + 1,
  superPageVal: (c: bigint): number => get(c, 34, 4),
  fl1gp: (c: bigint): boolean => get(c, 56) === 1,
  fl5lp: (c: bigint): boolean => get(c, 60) === 1,
};

/** The ecap_*() decoders. */
export const ecap = {
  coherent: (e: bigint): boolean => get(e, 0) === 1,
  dt: (e: bigint): boolean => get(e, 2) === 1,
  ir: (e: bigint): boolean => get(e, 3) === 1,
  passThrough: (e: bigint): boolean => get(e, 6) === 1,
  sc: (e: bigint): boolean => get(e, 7) === 1,
  nest: (e: bigint): boolean => get(e, 26) === 1,
  prs: (e: bigint): boolean => get(e, 29) === 1,
  srs: (e: bigint): boolean => get(e, 31) === 1,
  eafs: (e: bigint): boolean => get(e, 34) === 1,
  pss: (e: bigint): number => get(e, 35, 5),
  pasid: (e: bigint): boolean => get(e, 40) === 1,
  smts: (e: bigint): boolean => get(e, 43) === 1,
  slads: (e: bigint): boolean => get(e, 45) === 1,
  smpwc: (e: bigint): boolean => get(e, 48) === 1,
};

/** sm_supported / ssads_supported / nested_supported / pasid_supported of intel/iommu.h. */
export function vtdSupport(capReg: bigint, ecapReg: bigint): { sm: boolean; ssads: boolean; nested: boolean; pasid: boolean; maxPasids: number; superpages: number } {
  const sm = ecap.smts(ecapReg);
  const pasid = sm && ecap.pasid(ecapReg);
  return {
    sm,
    ssads: sm && ecap.slads(ecapReg) && ecap.smpwc(ecapReg),
    nested: sm && ecap.nest(ecapReg),
    pasid,
    // iommu->iommu.max_pasids = 2UL << ecap_pss(iommu->ecap)
    maxPasids: pasid ? 2 << ecap.pss(ecapReg) : 0,
    // iommu_superpage_capability(iommu, false): fls(cap_super_page_val)
    superpages: 32 - Math.clz32(cap.superPageVal(capReg)),
  };
}
