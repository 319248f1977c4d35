/**
 * The QEMU edu device model on its own, against a fake bus port: identity, the register file and
 * its access-width rules, the factorial unit, the interrupt controller over INTx and MSI, and the
 * DMA engine (both directions, the DMA mask, the buffer bounds, IOMMU faults), and reset.
 */

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  EDU_BUF_START,
  EDU_DEFAULT_DMA_MASK,
  EDU_ID,
  EDU_REG,
  EduDevice,
  type EduOptions,
} from '../src/hw/edu.js';
import type { DmaFault } from '../src/hw/iommu.js';
import type { BarAccessSize, PciFunctionPort, PortDmaRead, PortDmaWrite } from '../src/hw/pci_model.js';

const PAGE = 4096n;

/** A bus port over sparse byte-addressed RAM; pages in `faultPages` refuse every access. */
class FakePort implements PciFunctionPort {
  readonly bdf = '0000:00:04.0';
  readonly ram = new Map<bigint, number>();
  readonly faultPages = new Set<bigint>();
  readonly irqLevels: boolean[] = [];
  readonly msis: number[] = [];
  readonly errors: string[] = [];
  readonly reads: { addr: bigint; length: number }[] = [];
  readonly writes: { addr: bigint; length: number }[] = [];
  msi = false;

  dmaRead(addr: bigint, length: number): PortDmaRead {
    this.reads.push({ addr, length });
    const fault = this.fault(addr, length, false);
    if (fault) return { ok: false, fault };
    const data = new Uint8Array(length);
    for (let i = 0; i < length; i++) data[i] = this.ram.get(addr + BigInt(i)) ?? 0;
    return { ok: true, data };
  }

  dmaWrite(addr: bigint, bytes: Uint8Array): PortDmaWrite {
    this.writes.push({ addr, length: bytes.length });
    const fault = this.fault(addr, bytes.length, true);
    if (fault) return { ok: false, fault };
    bytes.forEach((b, i) => this.ram.set(addr + BigInt(i), b));
    return { ok: true };
  }

  setIrq(level: boolean): void {
    this.irqLevels.push(level);
  }

  msiEnabled(): boolean {
    return this.msi;
  }

  msiNotify(n: number): void {
    this.msis.push(n);
  }

  reportError(message: string): void {
    this.errors.push(message);
  }

  fill(addr: bigint, bytes: readonly number[]): void {
    bytes.forEach((b, i) => this.ram.set(addr + BigInt(i), b));
  }

  peek(addr: bigint, length: number): number[] {
    return Array.from({ length }, (_, i) => this.ram.get(addr + BigInt(i)) ?? 0);
  }

  private fault(addr: bigint, length: number, write: boolean): DmaFault | null {
    for (let a = addr; a < addr + BigInt(length); a++) {
      if (this.faultPages.has(a - (a % PAGE))) {
        return { unit: 'fake-iommu', bdf: this.bdf, rid: 0x20, iova: a, pasid: null, write, reason: 'not-present', detail: 'no mapping' };
      }
    }
    return null;
  }
}

function setup(options: EduOptions = {}): { dev: EduDevice; port: FakePort } {
  const dev = new EduDevice(options);
  const port = new FakePort();
  dev.realize(port);
  return { dev, port };
}

const rd = (dev: EduDevice, offset: number, size: BarAccessSize = 4): bigint => dev.barRead(0, offset, size);
const wr = (dev: EduDevice, offset: number, value: bigint | number, size: BarAccessSize = 4): void =>
  dev.barWrite(0, offset, size, BigInt(value));

/** Program and start a transfer; `cmd` includes the run bit. */
function dma(dev: EduDevice, src: bigint, dst: bigint, count: number, cmd: number): void {
  wr(dev, EDU_REG.DMA_SRC, src, 8);
  wr(dev, EDU_REG.DMA_DST, dst, 8);
  wr(dev, EDU_REG.DMA_COUNT, count, 8);
  wr(dev, EDU_REG.DMA_CMD, cmd, 8);
}

const bytes = (n: number, seed: number): number[] => Array.from({ length: n }, (_, i) => (seed + i * 7) & 0xff);

/** n! mod 2^32 by exact arithmetic. */
function factRef(n: number): bigint {
  let r = 1n;
  for (let v = BigInt(n); v > 0n; v--) r *= v;
  return r & 0xffffffffn;
}

describe('identity', () => {
  test('declares QEMU edu IDs: 1234:11e8 rev 0x10, class 0x00ff00, subsystem 1af4:1100', () => {
    const dev = new EduDevice();
    assert.deepEqual(
      [dev.vendor, dev.device, dev.revision, dev.classCode, dev.subsystemVendor, dev.subsystemId],
      [0x1234, 0x11e8, 0x10, 0x00ff00, 0x1af4, 0x1100],
    );
  });

  test('BAR0 is 1 MiB of 32-bit non-prefetchable memory; INTA; one 64-bit MSI vector; no FLR', () => {
    const dev = new EduDevice();
    assert.deepEqual(dev.bars, [{ size: 0x100000, type: 'mem32', prefetchable: false }, null, null, null, null, null]);
    assert.equal(dev.interruptPin, 1);
    assert.deepEqual(dev.msi, { vectors: 1, addr64: true, perVectorMask: false });
    assert.equal(dev.flr, false);
    assert.equal(dev.dmaMask, 0x0fffffffn);
    assert.equal(EDU_DEFAULT_DMA_MASK, 0x0fffffffn);
  });
});

describe('registers', () => {
  test('identification reads 0x010000ed and ignores writes', () => {
    const { dev } = setup();
    wr(dev, EDU_REG.ID, 0x12345678);
    assert.equal(rd(dev, EDU_REG.ID), 0x010000edn);
    assert.equal(EDU_ID, 0x010000ed);
  });

  test('liveness reads 0 at power-on, then the bitwise inverse of the last write', () => {
    const { dev } = setup();
    assert.equal(rd(dev, EDU_REG.LIVENESS), 0n);
    wr(dev, EDU_REG.LIVENESS, 0x12345678);
    assert.equal(rd(dev, EDU_REG.LIVENESS), 0xedcba987n);
    wr(dev, EDU_REG.LIVENESS, 0);
    assert.equal(rd(dev, EDU_REG.LIVENESS), 0xffffffffn);
  });

  test('offsets that are not registers read all-ones; the EDU buffer is not visible through BAR0', () => {
    const { dev } = setup();
    for (const off of [0x0c, 0x10, 0x28, 0x68, 0xa0, 0x40000]) assert.equal(rd(dev, off), 0xffffffffn, hex(off));
    assert.equal(rd(dev, 0x40000, 8), 0xffffffffffffffffn);
  });

  test('below 0x80, 8-byte reads are all-ones, 1/2-byte and unaligned reads 0 (QEMU refuses them), and such writes are ignored', () => {
    const { dev } = setup();
    wr(dev, EDU_REG.LIVENESS, 0xf0f0f0f0);
    assert.equal(rd(dev, EDU_REG.ID, 1), 0n);
    assert.equal(rd(dev, EDU_REG.ID, 2), 0n);
    assert.equal(rd(dev, EDU_REG.ID + 2, 4), 0n);
    assert.equal(rd(dev, EDU_REG.ID, 8), 0xffffffffffffffffn);
    wr(dev, EDU_REG.LIVENESS, 0, 1);
    wr(dev, EDU_REG.LIVENESS, 0, 2);
    wr(dev, EDU_REG.LIVENESS, 0, 8);
    assert.equal(rd(dev, EDU_REG.LIVENESS), 0x0f0f0f0fn);
  });

  test('DMA registers take 8-byte accesses whole and 4-byte accesses as the low half', () => {
    const { dev } = setup();
    wr(dev, EDU_REG.DMA_SRC, 0x1122334455667788n, 8);
    assert.equal(rd(dev, EDU_REG.DMA_SRC, 8), 0x1122334455667788n);
    assert.equal(rd(dev, EDU_REG.DMA_SRC, 4), 0x55667788n);
    wr(dev, EDU_REG.DMA_SRC, 0xaabbccdd, 4);
    assert.equal(rd(dev, EDU_REG.DMA_SRC, 8), 0xaabbccddn);
    wr(dev, EDU_REG.DMA_DST, 0x40000, 4);
    wr(dev, EDU_REG.DMA_COUNT, 100, 4);
    assert.deepEqual(dev.dmaRegisters, { src: 0xaabbccddn, dst: 0x40000n, count: 100n, cmd: 0n });
  });

  test('the high half of a DMA register is no register (0x84 reads all-ones, writes ignored)', () => {
    const { dev } = setup();
    wr(dev, EDU_REG.DMA_SRC, 0x1234, 8);
    wr(dev, EDU_REG.DMA_SRC + 4, 0xffff, 4);
    assert.equal(rd(dev, EDU_REG.DMA_SRC + 4), 0xffffffffn);
    assert.equal(rd(dev, EDU_REG.DMA_SRC, 8), 0x1234n);
  });

  test('1 and 2 byte accesses to DMA registers read 0 and are ignored as writes', () => {
    const { dev } = setup();
    wr(dev, EDU_REG.DMA_COUNT, 0x42, 8);
    assert.equal(rd(dev, EDU_REG.DMA_COUNT, 1), 0n);
    assert.equal(rd(dev, EDU_REG.DMA_COUNT, 2), 0n);
    wr(dev, EDU_REG.DMA_COUNT, 7, 1);
    wr(dev, EDU_REG.DMA_COUNT, 7, 2);
    assert.equal(rd(dev, EDU_REG.DMA_COUNT, 8), 0x42n);
  });

  test('a BAR other than BAR0 reads all-ones', () => {
    const { dev } = setup();
    assert.equal(dev.barRead(1, 0, 4), 0xffffffffn);
  });
});

describe('factorial', () => {
  test('5! is 120 and 12! is 479001600, readable right after the write', () => {
    const { dev } = setup();
    wr(dev, EDU_REG.FACTORIAL, 5);
    assert.equal(rd(dev, EDU_REG.STATUS) & 0x1n, 0n);
    assert.equal(rd(dev, EDU_REG.FACTORIAL), 120n);
    wr(dev, EDU_REG.FACTORIAL, 12);
    assert.equal(rd(dev, EDU_REG.FACTORIAL), 479001600n);
  });

  test('0! and 1! are 1', () => {
    const { dev } = setup();
    wr(dev, EDU_REG.FACTORIAL, 0);
    assert.equal(rd(dev, EDU_REG.FACTORIAL), 1n);
    wr(dev, EDU_REG.FACTORIAL, 1);
    assert.equal(rd(dev, EDU_REG.FACTORIAL), 1n);
  });

  test('wraps as 32-bit arithmetic: 13! = 1932053504, 33! = 2^31, 34! and above = 0', () => {
    const { dev } = setup();
    const expected = new Map<number, bigint>([[13, 1932053504n], [33, 0x80000000n], [34, 0n], [1000, 0n], [0xffffffff, 0n]]);
    for (const [n, want] of expected) {
      wr(dev, EDU_REG.FACTORIAL, n);
      assert.equal(rd(dev, EDU_REG.FACTORIAL), want, `${n}!`);
    }
    for (let n = 0; n <= 40; n++) {
      wr(dev, EDU_REG.FACTORIAL, n);
      assert.equal(rd(dev, EDU_REG.FACTORIAL), factRef(n), `${n}!`);
    }
  });

  test('status 0x80 is set by a write with it and cleared by any write without it; 0x01 is read-only', () => {
    const { dev } = setup();
    wr(dev, EDU_REG.STATUS, 0x01);
    assert.equal(rd(dev, EDU_REG.STATUS), 0n);
    wr(dev, EDU_REG.STATUS, 0xff);
    assert.equal(rd(dev, EDU_REG.STATUS), 0x80n);
    wr(dev, EDU_REG.STATUS, 0x80);
    assert.equal(dev.status, 0x80);
    wr(dev, EDU_REG.STATUS, 0x7f);
    assert.equal(rd(dev, EDU_REG.STATUS), 0n);
  });

  test('with status 0x80 a finished factorial raises interrupt 0x1 on INTx', () => {
    const { dev, port } = setup();
    wr(dev, EDU_REG.STATUS, 0x80);
    wr(dev, EDU_REG.FACTORIAL, 4);
    assert.equal(rd(dev, EDU_REG.FACTORIAL), 24n);
    assert.equal(rd(dev, EDU_REG.IRQ_STATUS), 0x1n);
    assert.deepEqual(port.irqLevels, [true]);
    assert.equal(dev.intxLevel, true);
  });

  test('without status 0x80 a finished factorial raises nothing', () => {
    const { dev, port } = setup();
    wr(dev, EDU_REG.FACTORIAL, 4);
    assert.equal(dev.irqStatus, 0);
    assert.deepEqual(port.irqLevels, []);
    assert.deepEqual(port.msis, []);
  });
});

describe('interrupts', () => {
  test('INTx: raise ORs into status and asserts; ack clears bits and deasserts only at zero', () => {
    const { dev, port } = setup();
    wr(dev, EDU_REG.IRQ_RAISE, 0x5);
    wr(dev, EDU_REG.IRQ_RAISE, 0x30);
    assert.equal(rd(dev, EDU_REG.IRQ_STATUS), 0x35n);
    assert.deepEqual(port.irqLevels, [true, true]);
    wr(dev, EDU_REG.IRQ_ACK, 0x21);
    assert.equal(rd(dev, EDU_REG.IRQ_STATUS), 0x14n);
    assert.deepEqual(port.irqLevels, [true, true]);
    wr(dev, EDU_REG.IRQ_ACK, 0xffffffff);
    assert.equal(rd(dev, EDU_REG.IRQ_STATUS), 0n);
    assert.deepEqual(port.irqLevels, [true, true, false]);
    assert.equal(dev.intxLevel, false);
  });

  test('raising 0 does nothing when nothing is pending but signals again when something is', () => {
    const { dev, port } = setup();
    wr(dev, EDU_REG.IRQ_RAISE, 0);
    assert.deepEqual(port.irqLevels, []);
    wr(dev, EDU_REG.IRQ_RAISE, 0x2);
    wr(dev, EDU_REG.IRQ_RAISE, 0);
    assert.deepEqual(port.irqLevels, [true, true]);
  });

  test('acknowledging with nothing pending still drives INTx low', () => {
    const { dev, port } = setup();
    wr(dev, EDU_REG.IRQ_ACK, 0x1);
    assert.deepEqual(port.irqLevels, [false]);
  });

  test('MSI: every raise sends vector 0, and acknowledge never touches INTx', () => {
    const { dev, port } = setup();
    port.msi = true;
    wr(dev, EDU_REG.IRQ_RAISE, 0x1);
    wr(dev, EDU_REG.IRQ_RAISE, 0x2);
    assert.deepEqual(port.msis, [0, 0]);
    wr(dev, EDU_REG.IRQ_ACK, 0x3);
    assert.equal(dev.irqStatus, 0);
    assert.deepEqual(port.irqLevels, []);
    assert.deepEqual(port.msis, [0, 0]);
  });

  test('interrupt status is read-only; raise and ack registers read all-ones', () => {
    const { dev } = setup();
    wr(dev, EDU_REG.IRQ_STATUS, 0xff);
    assert.equal(rd(dev, EDU_REG.IRQ_STATUS), 0n);
    assert.equal(rd(dev, EDU_REG.IRQ_RAISE), 0xffffffffn);
    assert.equal(rd(dev, EDU_REG.IRQ_ACK), 0xffffffffn);
  });
});

describe('DMA', () => {
  test('RAM to EDU copies the exact bytes into the buffer and clears the run bit', () => {
    const { dev, port } = setup();
    port.fill(0x10000n, bytes(16, 3));
    dma(dev, 0x10000n, EDU_BUF_START + 8n, 16, 0x1);
    assert.deepEqual(port.reads, [{ addr: 0x10000n, length: 16 }]);
    assert.deepEqual(Array.from(dev.buffer.subarray(8, 24)), bytes(16, 3));
    assert.deepEqual(Array.from(dev.buffer.subarray(0, 8)), [0, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(rd(dev, EDU_REG.DMA_CMD), 0n);
    assert.deepEqual(port.errors, []);
  });

  test('EDU to RAM writes the buffer bytes to RAM', () => {
    const { dev, port } = setup();
    port.fill(0x2000n, bytes(32, 9));
    dma(dev, 0x2000n, EDU_BUF_START, 32, 0x1);
    dma(dev, EDU_BUF_START + 4n, 0x5000n, 20, 0x3);
    assert.deepEqual(port.writes, [{ addr: 0x5000n, length: 20 }]);
    assert.deepEqual(port.peek(0x5000n, 20), bytes(32, 9).slice(4, 24));
    assert.equal(port.ram.get(0x5000n + 20n), undefined);
    assert.equal(rd(dev, EDU_REG.DMA_CMD), 0x2n);
  });

  test('the edu.rst example: 100 bytes to the buffer and back to addr+100', () => {
    const { dev, port } = setup();
    const addr = 0x123000n;
    port.fill(addr, bytes(100, 1));
    dma(dev, addr, 0x40000n, 100, 1);
    assert.equal(rd(dev, EDU_REG.DMA_CMD) & 1n, 0n);
    dma(dev, 0x40000n, addr + 100n, 100, 3);
    assert.equal(rd(dev, EDU_REG.DMA_CMD) & 1n, 0n);
    assert.deepEqual(port.peek(addr + 100n, 100), bytes(100, 1));
  });

  test('command bit 0x4 raises interrupt 0x100 when done; the command reads back without 0x1', () => {
    const { dev, port } = setup();
    dma(dev, 0x1000n, EDU_BUF_START, 4, 0x5);
    assert.equal(rd(dev, EDU_REG.IRQ_STATUS), 0x100n);
    assert.equal(rd(dev, EDU_REG.DMA_CMD), 0x4n);
    assert.deepEqual(port.irqLevels, [true]);
    wr(dev, EDU_REG.IRQ_ACK, 0x100);
    assert.deepEqual(port.irqLevels, [true, false]);
    port.msi = true;
    dma(dev, EDU_BUF_START, 0x1000n, 4, 0x7);
    assert.deepEqual(port.msis, [0]);
    assert.equal(dev.irqStatus, 0x100);
  });

  test('without bit 0x4 a transfer raises nothing', () => {
    const { dev, port } = setup();
    dma(dev, 0x1000n, EDU_BUF_START, 4, 0x1);
    assert.equal(dev.irqStatus, 0);
    assert.deepEqual(port.irqLevels, []);
  });

  test('a command write without the run bit is ignored', () => {
    const { dev, port } = setup();
    dma(dev, 0x1000n, EDU_BUF_START, 4, 0x6);
    assert.equal(rd(dev, EDU_REG.DMA_CMD), 0n);
    assert.deepEqual(port.reads, []);
    assert.equal(dev.irqStatus, 0);
  });

  test('the command register keeps every bit written', () => {
    const { dev } = setup();
    dma(dev, 0x1000n, EDU_BUF_START, 4, 0xf1);
    assert.equal(rd(dev, EDU_REG.DMA_CMD), 0xf0n);
  });

  test('a transfer of the whole 4096-byte buffer is allowed', () => {
    const { dev, port } = setup();
    port.fill(0x8000n, bytes(4096, 5));
    dma(dev, 0x8000n, EDU_BUF_START, 4096, 0x1);
    assert.deepEqual(Array.from(dev.buffer), bytes(4096, 5));
    assert.deepEqual(port.errors, []);
  });

  test('a transfer crossing a RAM page boundary is issued one page at a time', () => {
    const { dev, port } = setup();
    port.fill(0x1ff0n, bytes(32, 2));
    dma(dev, 0x1ff0n, EDU_BUF_START, 32, 0x1);
    assert.deepEqual(port.reads, [{ addr: 0x1ff0n, length: 16 }, { addr: 0x2000n, length: 16 }]);
    assert.deepEqual(Array.from(dev.buffer.subarray(0, 32)), bytes(32, 2));
  });

  test('a zero-length transfer moves nothing and still completes', () => {
    const { dev, port } = setup();
    dma(dev, 0x1000n, EDU_BUF_START, 0, 0x5);
    assert.deepEqual(port.reads, []);
    assert.equal(dev.irqStatus, 0x100);
  });

  test('a RAM address above the 28-bit mask is clamped, reported, and the clamped DMA done', () => {
    const { dev, port } = setup();
    port.fill(0x2345000n, bytes(8, 4));
    dma(dev, 0x102345000n, EDU_BUF_START, 8, 0x1);
    assert.deepEqual(port.reads, [{ addr: 0x2345000n, length: 8 }]);
    assert.deepEqual(Array.from(dev.buffer.subarray(0, 8)), bytes(8, 4));
    assert.deepEqual(port.errors, ['edu: DMA address 0x102345000 clamped to 0x2345000 by the DMA mask 0xfffffff']);
    dma(dev, EDU_BUF_START, 0x7fff0000n, 8, 0x3);
    assert.deepEqual(port.writes, [{ addr: 0xfff0000n, length: 8 }]);
    assert.equal(port.errors.length, 2);
  });

  test('the dmaMask option sets the mask', () => {
    const { dev, port } = setup({ dmaMask: (1n << 64n) - 1n });
    dma(dev, 0x102345000n, EDU_BUF_START, 8, 0x1);
    assert.deepEqual(port.reads, [{ addr: 0x102345000n, length: 8 }]);
    assert.deepEqual(port.errors, []);
    const narrow = setup({ dmaMask: 0xfffn });
    dma(narrow.dev, 0x3456n, EDU_BUF_START, 8, 0x1);
    assert.deepEqual(narrow.port.reads, [{ addr: 0x456n, length: 8 }]);
  });

  test('an EDU-side range outside the buffer is reported, moves nothing, and completes the command', () => {
    const cases: [src: bigint, dst: bigint, count: number, cmd: number][] = [
      [0x1000n, EDU_BUF_START + 0xf00n, 0x101, 0x5],
      [0x1000n, EDU_BUF_START - 1n, 4, 0x5],
      [0x1000n, EDU_BUF_START, 4097, 0x5],
      [EDU_BUF_START + 4096n, 0x1000n, 1, 0x7],
      [0xffffffffffffff00n, 0x1000n, 0x200, 0x7],
    ];
    for (const [src, dst, count, cmd] of cases) {
      const { dev, port } = setup();
      dma(dev, src, dst, count, cmd);
      assert.deepEqual(port.reads, []);
      assert.deepEqual(port.writes, []);
      assert.equal(port.errors.length, 1);
      assert.match(port.errors[0] ?? '', /^edu: DMA of \d+ bytes at EDU address 0x[0-9a-f]+ is outside the buffer \[0x40000, 0x41000\); nothing transferred$/);
      assert.equal(rd(dev, EDU_REG.DMA_CMD) & 1n, 0n);
      assert.equal(dev.irqStatus, 0x100);
    }
  });

  test('a faulting DMA read is reported, reads as zeros into the buffer, and completes with its interrupt', () => {
    const { dev, port } = setup();
    port.fill(0x3000n, bytes(64, 8));
    dma(dev, 0x3000n, EDU_BUF_START, 64, 0x1);
    port.faultPages.add(0x3000n);
    dma(dev, 0x3010n, EDU_BUF_START + 8n, 16, 0x5);
    assert.deepEqual(Array.from(dev.buffer.subarray(0, 40)), [...bytes(8, 8), ...new Array<number>(16).fill(0), ...bytes(64, 8).slice(24, 40)]);
    assert.deepEqual(port.errors, ['edu: DMA read of 16 bytes at 0x3010 faulted (not-present at 0x3010: no mapping); buffer bytes read as zero']);
    assert.equal(rd(dev, EDU_REG.DMA_CMD), 0x4n);
    assert.equal(dev.irqStatus, 0x100);
  });

  test('only the faulting page of a page-crossing read is lost', () => {
    const { dev, port } = setup();
    port.fill(0x4ff8n, bytes(16, 6));
    port.faultPages.add(0x4000n);
    dma(dev, 0x4ff8n, EDU_BUF_START, 16, 0x1);
    assert.deepEqual(Array.from(dev.buffer.subarray(0, 16)), [...new Array<number>(8).fill(0), ...bytes(16, 6).slice(8)]);
    assert.equal(port.errors.length, 1);
  });

  test('a faulting DMA write is reported, leaves RAM untouched, and completes', () => {
    const { dev, port } = setup();
    port.fill(0x1000n, bytes(8, 1));
    dma(dev, 0x1000n, EDU_BUF_START, 8, 0x1);
    port.faultPages.add(0x6000n);
    dma(dev, EDU_BUF_START, 0x6000n, 8, 0x7);
    assert.deepEqual(port.peek(0x6000n, 8), [0, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(port.errors, ['edu: DMA write of 8 bytes at 0x6000 faulted (not-present at 0x6000: no mapping); write dropped']);
    assert.equal(rd(dev, EDU_REG.DMA_CMD), 0x6n);
    assert.equal(dev.irqStatus, 0x100);
  });
});

describe('reset', () => {
  test('reset returns registers and the buffer to power-on values and lowers INTx', () => {
    const { dev, port } = setup();
    port.fill(0x1000n, bytes(8, 1));
    wr(dev, EDU_REG.LIVENESS, 1);
    wr(dev, EDU_REG.STATUS, 0x80);
    wr(dev, EDU_REG.FACTORIAL, 6);
    dma(dev, 0x1000n, EDU_BUF_START, 8, 0x5);
    assert.equal(dev.irqStatus, 0x101);
    dev.reset();
    assert.deepEqual(port.irqLevels, [true, true, false]);
    assert.deepEqual(
      [EDU_REG.LIVENESS, EDU_REG.FACTORIAL, EDU_REG.STATUS, EDU_REG.IRQ_STATUS].map((r) => rd(dev, r)),
      [0n, 0n, 0n, 0n],
    );
    assert.deepEqual(dev.dmaRegisters, { src: 0n, dst: 0n, count: 0n, cmd: 0n });
    assert.deepEqual(dev.buffer, new Uint8Array(4096));
    assert.equal(rd(dev, EDU_REG.ID), 0x010000edn);
  });

  test('reset with INTx low drives nothing', () => {
    const { dev, port } = setup();
    dev.reset();
    assert.deepEqual(port.irqLevels, []);
  });
});

function hex(v: number): string {
  return `0x${v.toString(16)}`;
}
