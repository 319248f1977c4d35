/**
 * QEMU's `edu` device: the educational PCI function students write their first Linux driver for
 * (QEMU hw/misc/edu.c, docs/specs/edu.rst). It is small but has everything a driver must handle:
 * MMIO registers, a slow operation to poll for, an interrupt controller with INTx and MSI, and a
 * DMA engine with a limited addressing mask.
 *
 * Identity. Vendor 0x1234 (QEMU), device 0x11e8, revision 0x10, class 0x00ff00 ("other"), and the
 * subsystem IDs every QEMU PCI device gets by default (0x1af4:0x1100). One 1 MiB 32-bit memory
 * BAR, interrupt pin INTA, an MSI capability with one vector and 64-bit addresses, no per-vector
 * masking, and no FLR.
 *
 * Registers (BAR0). Offsets below 0x80 are 32-bit registers and take only 4-byte accesses; the DMA
 * registers at 0x80 and above take 4 or 8 bytes. An 8-byte access below 0x80, and any offset that
 * is not a register, reads as all-ones of the access width and ignores writes, as edu.c's own
 * checks do. Narrower or unaligned accesses never reach edu.c: edu declares 4..8-byte aligned
 * accesses valid, so QEMU's memory core refuses them and the read completes as 0 (measured on the
 * oracle through vfio-pci: 1-, 2- and 3-byte reads and a 4-byte read at +2 give 0).
 *   0x00 identification 0x010000ed (version 1.0), read-only.
 *   0x04 liveness: reads back the bitwise inverse of the last value written.
 *   0x08 factorial: a write starts computing n! of the value unless a computation is running; a
 *        read gives the result, in 32-bit wrapping arithmetic (so 34! and above read 0).
 *   0x20 status: 0x01 "computing" (read-only) and 0x80 "raise interrupt 0x1 when the factorial is
 *        done". A write sets 0x80 if the value has it and clears it otherwise.
 *   0x24 interrupt status, read-only; 0x60 raise (OR the value in, signal); 0x64 acknowledge
 *        (clear the value's bits).
 *   0x80 DMA source, 0x88 destination, 0x90 count, 0x98 command: 0x1 run, 0x2 direction (clear:
 *        RAM to EDU, set: EDU to RAM), 0x4 raise interrupt 0x100 when done. A command write
 *        without the run bit is ignored; the four DMA registers ignore writes while a transfer
 *        runs. The command keeps every bit written, so after completion it reads back without 0x1.
 * The EDU side of a transfer addresses a 4096-byte buffer at device address 0x40000; that buffer
 * is reachable only by DMA, never through BAR0.
 *
 * Interrupts. Raising ORs bits into the status and, if the status is then non-zero, sends MSI
 * vector 0 when the host enabled MSI or asserts INTx otherwise; so raising 0 while something is
 * pending signals again. Acknowledging clears bits and deasserts INTx once the status is zero,
 * and only when MSI is off (with MSI, acknowledge sends nothing).
 *
 * DMA addressing. The RAM-side address is ANDed with the DMA mask (28 bits by default, QEMU's
 * `dma_mask` property, here the `dmaMask` option); QEMU logs a guest error when that changes the
 * address and goes on with the clamped one, and so do we, logging through `reportError`. The
 * transfer is issued page by page (4 KiB), as QEMU's memory core translates it: a page the IOMMU
 * refuses reads as zeros into the buffer (QEMU's unassigned-memory value) or drops its write,
 * and the other pages still move. Real edu reports nothing; we `reportError` each faulted page.
 * The command completes either way.
 *
 * Differences from QEMU, all forced or chosen on purpose:
 * - No clock. QEMU computes the factorial in a thread and runs DMA on a 100 ms timer; here both
 *   finish inside the register write that starts them, and their interrupt is raised there. A
 *   driver polling status or the command register sees completion on its next read, and the
 *   "writes ignored while busy" rules can never be exercised.
 * - An EDU-side range outside the buffer: old QEMU called hw_error (the VM died); current QEMU
 *   logs a guest error and copies anyway, past the end of its buffer. We `reportError`, move no
 *   data, and complete the command (run bit cleared, interrupt raised if asked).
 * - QEMU's edu has no reset handler, so its registers survive a machine reset. `reset()` here
 *   returns every register and the buffer to power-on values and lowers INTx if we drove it.
 *
 * Extension for SVA, absent unless `EduOptions.pasid` (QEMU's edu has nothing at 0xa0; without
 * the option neither do we): 0xa0 DMA PASID, bit 31 enable and bits 19:0 the PASID. While
 * enabled, the RAM side of each transfer is a request tagged with that PASID — an address in the
 * bound process's address space, so the DMA mask does not apply — and, the function having PRI, a
 * page the IOMMU cannot translate is asked for (a page request) and the request retried once.
 * Create the function with the PASID capability and PRI (`pasidWidth`, `pri` of addPciDevice).
 */

import type { DmaFault } from './iommu.js';
import type { BarAccessSize, PciBarSpec, PciDeviceModel, PciFunctionPort, PciMsiSpec } from './pci_model.js';

/** BAR0 register offsets. */
export const EDU_REG = {
  ID: 0x00,
  LIVENESS: 0x04,
  FACTORIAL: 0x08,
  STATUS: 0x20,
  IRQ_STATUS: 0x24,
  IRQ_RAISE: 0x60,
  IRQ_ACK: 0x64,
  DMA_SRC: 0x80,
  DMA_DST: 0x88,
  DMA_COUNT: 0x90,
  DMA_CMD: 0x98,
  /** The SVA extension (EduOptions.pasid). */
  DMA_PASID: 0xa0,
} as const;

/** DMA PASID register: enable bit, PASID field. */
export const EDU_DMA_PASID_ENABLE = 0x80000000;
export const EDU_DMA_PASID_MASK = 0xfffff;

export const EDU_ID = 0x010000ed;
export const EDU_STATUS = { COMPUTING: 0x01, IRQFACT: 0x80 } as const;
export const EDU_DMA_CMD = { RUN: 0x1n, TO_RAM: 0x2n, IRQ: 0x4n } as const;
/** Interrupt status bits the device raises itself. */
export const EDU_IRQ = { FACTORIAL: 0x1, DMA: 0x100 } as const;
/** The EDU buffer in device address space: [EDU_BUF_START, EDU_BUF_START + EDU_BUF_SIZE). */
export const EDU_BUF_START = 0x40000n;
export const EDU_BUF_SIZE = 4096;
export const EDU_DEFAULT_DMA_MASK = (1n << 28n) - 1n;

const DMA_PAGE = 4096;

export interface EduOptions {
  /** RAM-side DMA address mask; default 28 bits (QEMU's `dma_mask` property). */
  readonly dmaMask?: bigint;
  /** The DMA PASID register at 0xa0 (not in QEMU; see the header). */
  readonly pasid?: boolean;
}

/** The DMA engine's registers, as 64-bit values. */
export interface EduDmaRegisters {
  readonly src: bigint;
  readonly dst: bigint;
  readonly count: bigint;
  readonly cmd: bigint;
}

/** One row of the register file; a missing side reads all-ones or ignores writes. */
interface Register {
  readonly read?: () => bigint;
  readonly write?: (value: bigint) => void;
}

const hex = (v: bigint | number): string => `0x${v.toString(16)}`;

/** n! in the device's 32-bit wrapping arithmetic; stops once the product is 0 (at most 64 steps). */
function factorialU32(n: number): number {
  let ret = 1;
  for (let v = n; v > 0 && ret !== 0; v--) ret = Math.imul(ret, v) >>> 0;
  return ret;
}

export class EduDevice implements PciDeviceModel {
  readonly vendor = 0x1234;
  readonly device = 0x11e8;
  readonly subsystemVendor = 0x1af4;
  readonly subsystemId = 0x1100;
  readonly revision = 0x10;
  readonly classCode = 0x00ff00;
  readonly bars: readonly (PciBarSpec | null)[] = [{ size: 1 << 20, type: 'mem32', prefetchable: false }, null, null, null, null, null];
  readonly interruptPin = 1;
  readonly msi: PciMsiSpec = { vectors: 1, addr64: true, perVectorMask: false };
  readonly flr = false;
  /** The RAM-side DMA address mask. */
  readonly dmaMask: bigint;

  private port: PciFunctionPort | null = null;
  private liveness = 0;
  private fact = 0;
  private statusReg = 0;
  private irqStatusReg = 0;
  private dma = { src: 0n, dst: 0n, count: 0n, cmd: 0n };
  private dmaPasid = 0;
  private readonly buf = new Uint8Array(EDU_BUF_SIZE);
  private intx = false;

  private readonly regs: Map<number, Register> = new Map<number, Register>([
    [EDU_REG.ID, { read: () => BigInt(EDU_ID) }],
    [EDU_REG.LIVENESS, { read: () => BigInt(this.liveness), write: (v) => { this.liveness = ~Number(v) >>> 0; } }],
    [EDU_REG.FACTORIAL, { read: () => BigInt(this.fact), write: (v) => this.startFactorial(Number(v)) }],
    [EDU_REG.STATUS, { read: () => BigInt(this.statusReg), write: (v) => this.writeStatus(Number(v)) }],
    [EDU_REG.IRQ_STATUS, { read: () => BigInt(this.irqStatusReg) }],
    [EDU_REG.IRQ_RAISE, { write: (v) => this.raiseIrq(Number(v)) }],
    [EDU_REG.IRQ_ACK, { write: (v) => this.lowerIrq(Number(v)) }],
    [EDU_REG.DMA_SRC, { read: () => this.dma.src, write: (v) => this.writeDma('src', v) }],
    [EDU_REG.DMA_DST, { read: () => this.dma.dst, write: (v) => this.writeDma('dst', v) }],
    [EDU_REG.DMA_COUNT, { read: () => this.dma.count, write: (v) => this.writeDma('count', v) }],
    [EDU_REG.DMA_CMD, { read: () => this.dma.cmd, write: (v) => this.writeCommand(v) }],
  ]);

  constructor(options: EduOptions = {}) {
    this.dmaMask = BigInt.asUintN(64, options.dmaMask ?? EDU_DEFAULT_DMA_MASK);
    if (options.pasid) {
      this.regs.set(EDU_REG.DMA_PASID, {
        read: () => BigInt(this.dmaPasid),
        write: (v) => {
          if (!(this.dma.cmd & EDU_DMA_CMD.RUN)) this.dmaPasid = Number(v & BigInt(EDU_DMA_PASID_ENABLE | EDU_DMA_PASID_MASK));
        },
      });
    }
  }

  /** A copy of the 4096-byte EDU buffer. */
  get buffer(): Uint8Array {
    return this.buf.slice();
  }

  /** The interrupt status register (0x24). */
  get irqStatus(): number {
    return this.irqStatusReg;
  }

  /** The status register (0x20). */
  get status(): number {
    return this.statusReg;
  }

  /** The level this model last drove on INTx. */
  get intxLevel(): boolean {
    return this.intx;
  }

  get dmaRegisters(): EduDmaRegisters {
    return { ...this.dma };
  }

  realize(port: PciFunctionPort): void {
    this.port = port;
  }

  barRead(bar: number, offset: number, size: BarAccessSize): bigint {
    const ones = (1n << BigInt(size * 8)) - 1n;
    if (bar !== 0) return ones;
    if (size < 4 || offset % size) return 0n;
    if (!sizeAllowed(offset, size)) return ones;
    const read = this.regs.get(offset)?.read;
    return read ? read() & ones : ones;
  }

  barWrite(bar: number, offset: number, size: BarAccessSize, value: bigint): void {
    if (bar !== 0 || !sizeAllowed(offset, size)) return;
    this.regs.get(offset)?.write?.(BigInt.asUintN(size * 8, value));
  }

  reset(): void {
    this.liveness = 0;
    this.fact = 0;
    this.statusReg = 0;
    this.irqStatusReg = 0;
    this.dma = { src: 0n, dst: 0n, count: 0n, cmd: 0n };
    this.dmaPasid = 0;
    this.buf.fill(0);
    if (this.intx) this.setIntx(false);
  }

  private get bus(): PciFunctionPort {
    if (!this.port) throw new Error('edu: register access before realize()');
    return this.port;
  }

  private startFactorial(n: number): void {
    if (this.statusReg & EDU_STATUS.COMPUTING) return;
    this.fact = n;
    this.statusReg |= EDU_STATUS.COMPUTING;
    // QEMU's worker thread, run to completion right here.
    this.fact = factorialU32(this.fact);
    this.statusReg &= ~EDU_STATUS.COMPUTING;
    if (this.statusReg & EDU_STATUS.IRQFACT) this.raiseIrq(EDU_IRQ.FACTORIAL);
  }

  private writeStatus(v: number): void {
    if (v & EDU_STATUS.IRQFACT) this.statusReg |= EDU_STATUS.IRQFACT;
    else this.statusReg &= ~EDU_STATUS.IRQFACT;
  }

  private raiseIrq(bits: number): void {
    this.irqStatusReg = (this.irqStatusReg | bits) >>> 0;
    if (this.irqStatusReg === 0) return;
    if (this.bus.msiEnabled()) this.bus.msiNotify(0);
    else this.setIntx(true);
  }

  private lowerIrq(bits: number): void {
    this.irqStatusReg = (this.irqStatusReg & ~bits) >>> 0;
    if (this.irqStatusReg === 0 && !this.bus.msiEnabled()) this.setIntx(false);
  }

  private setIntx(level: boolean): void {
    this.intx = level;
    this.bus.setIrq(level);
  }

  private writeDma(reg: 'src' | 'dst' | 'count', v: bigint): void {
    if (this.dma.cmd & EDU_DMA_CMD.RUN) return;
    this.dma[reg] = v;
  }

  private writeCommand(v: bigint): void {
    if (!(v & EDU_DMA_CMD.RUN) || this.dma.cmd & EDU_DMA_CMD.RUN) return;
    this.dma.cmd = v;
    // QEMU's 100 ms timer, fired right here.
    this.runDma();
  }

  private runDma(): void {
    const { src, dst, count, cmd } = this.dma;
    const toRam = (cmd & EDU_DMA_CMD.TO_RAM) !== 0n;
    const eduAddr = toRam ? src : dst;
    const eduEnd = eduAddr + count;
    if (eduAddr >= EDU_BUF_START && eduEnd <= EDU_BUF_START + BigInt(EDU_BUF_SIZE)) {
      const ram = toRam ? dst : src;
      const ramAddr = this.dmaPasid & EDU_DMA_PASID_ENABLE ? ram : this.clamp(ram);
      this.transfer(ramAddr, Number(eduAddr - EDU_BUF_START), Number(count), toRam);
    } else {
      this.bus.reportError(`edu: DMA of ${count} bytes at EDU address ${hex(eduAddr)} is outside the buffer ` +
        `[${hex(EDU_BUF_START)}, ${hex(EDU_BUF_START + BigInt(EDU_BUF_SIZE))}); nothing transferred`);
    }
    this.dma.cmd &= ~EDU_DMA_CMD.RUN;
    if (this.dma.cmd & EDU_DMA_CMD.IRQ) this.raiseIrq(EDU_IRQ.DMA);
  }

  private clamp(addr: bigint): bigint {
    const res = addr & this.dmaMask;
    if (res !== addr) this.bus.reportError(`edu: DMA address ${hex(addr)} clamped to ${hex(res)} by the DMA mask ${hex(this.dmaMask)}`);
    return res;
  }

  /** Move `length` bytes between RAM at `ram` and the buffer at `off`, one RAM page at a time. */
  private transfer(ram: bigint, off: number, length: number, toRam: boolean): void {
    for (let done = 0; done < length;) {
      const addr = ram + BigInt(done);
      const n = Math.min(length - done, DMA_PAGE - Number(addr % BigInt(DMA_PAGE)));
      const at = off + done;
      const pasid = this.dmaPasid & EDU_DMA_PASID_ENABLE ? this.dmaPasid & EDU_DMA_PASID_MASK : undefined;
      if (toRam) {
        const r = this.bus.dmaWrite(addr, this.buf.slice(at, at + n), pasid);
        if (!r.ok) this.reportFault(r.fault, 'write', addr, n, 'write dropped');
      } else {
        const r = this.bus.dmaRead(addr, n, pasid);
        if (r.ok) {
          this.buf.set(r.data.subarray(0, n), at);
        } else {
          this.buf.fill(0, at, at + n);
          this.reportFault(r.fault, 'read', addr, n, 'buffer bytes read as zero');
        }
      }
      done += n;
    }
  }

  private reportFault(f: DmaFault, dir: 'read' | 'write', addr: bigint, n: number, outcome: string): void {
    this.bus.reportError(`edu: DMA ${dir} of ${n} bytes at ${hex(addr)} faulted ` +
      `(${f.reason} at ${hex(f.iova)}: ${f.detail}); ${outcome}`);
  }
}

/** edu.c's width rule: 4 bytes below 0x80, 4 or 8 bytes from 0x80 up. */
function sizeAllowed(offset: number, size: BarAccessSize): boolean {
  return offset < 0x80 ? size === 4 : size === 4 || size === 8;
}
