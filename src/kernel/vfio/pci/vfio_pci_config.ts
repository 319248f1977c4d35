/**
 * vfio-pci's view of configuration space (vfio_pci_config.c): a virtual copy (`vconfig`) taken
 * when the device is opened, and per-capability permission bits deciding, bit by bit, whether a
 * read comes from the copy or the hardware ("virt") and whether a write is allowed ("write", into
 * the copy for virtualized bits, through to the hardware for the rest).
 *
 * The standard header: IDs, the capability pointer, interrupt line and pin and every BAR are
 * virtual (BAR writes size the virtual BAR: the read-back is masked with the BAR's size and gets
 * its type bits, so sizing works without touching the device); COMMAND goes to the hardware
 * except INTx disable, which vfio-pci emulates (it masks INTx itself); cache line size, latency
 * timer and BIST go straight through. The MSI capability is virtual except the mask and pending
 * bits: the message the user writes is kept, and what the hardware sends is what SET_IRQS
 * programmed; a flags write is fixed up (enable only while SET_IRQS has MSI on, the queue size at
 * most what it enabled) in both the copy and the hardware. Bytes outside every capability are read and written raw.
 *
 * Accesses are split into naturally aligned 4/2/1-byte pieces (vfio_config_do_rw); an access
 * outside [0, cfg_size) is EFAULT.
 */

import { Errno, fail } from '../../../errno.js';
import type { PciDevice } from '../../../hw/pci.js';
import {
  msiCapLength,
  PCI_BASE_ADDRESS_0,
  PCI_CACHE_LINE_SIZE,
  PCI_CAP_ID_MSI,
  PCI_CAPABILITY_LIST,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MEMORY,
  PCI_DEVICE_ID,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_LATENCY_TIMER,
  PCI_MSI_ADDRESS_HI,
  PCI_MSI_ADDRESS_LO,
  PCI_MSI_DATA_32,
  PCI_MSI_DATA_64,
  PCI_MSI_FLAGS,
  PCI_MSI_FLAGS_64BIT,
  PCI_MSI_FLAGS_ENABLE,
  PCI_MSI_FLAGS_MASKBIT,
  PCI_MSI_FLAGS_QMASK,
  PCI_MSI_FLAGS_QSIZE,
  PCI_MSI_MASK_32,
  PCI_MSI_MASK_64,
  PCI_ROM_ADDRESS,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_STD_HEADER_SIZEOF,
  PCI_VENDOR_ID,
} from '../../../hw/pci_config.js';

const CFG_SIZE = 256;
const PCI_BIST = 0x0f;

/** What a region of config space is: the header, the MSI capability, or nothing vfio knows. */
const Kind = { Basic: 0, Msi: 1, Unassigned: 2 } as const;

/** Hooks into the rest of vfio-pci: INTx masking and the MSI state. */
export interface ConfigHooks {
  /** The user changed its (virtual) INTx disable bit. */
  intxDisableChanged(disabled: boolean): void;
  /** vdev->irq_type is MSI (the hardware's MSI enable follows SET_IRQS, not the user's write). */
  msiActive(): boolean;
  /** vdev->msi_qmax: log2 of the vectors SET_IRQS enabled. */
  msiQmax(): number;
}

export class VfioPciConfig {
  readonly vconfig = new Uint8Array(CFG_SIZE);
  readonly #virt = new Uint8Array(CFG_SIZE);
  readonly #write = new Uint8Array(CFG_SIZE);
  readonly #map = new Uint8Array(CFG_SIZE).fill(Kind.Unassigned);
  readonly #pdev: PciDevice;
  readonly #hooks: ConfigHooks;
  #msiStart = 0;
  #bardirty = true;
  #virqDisabled = false;

  constructor(pdev: PciDevice, hooks: ConfigHooks) {
    this.#pdev = pdev;
    this.#hooks = hooks;
    this.#initPerms();
    this.init();
  }

  /** vfio_config_init: copy the hardware's header and capabilities. */
  init(): void {
    this.vconfig.fill(0);
    for (let i = 0; i < CFG_SIZE; i++) if (this.#map[i] !== Kind.Unassigned) this.vconfig[i] = this.#pdev.config[i]!;
    this.#bardirty = true;
    this.#virqDisabled = false;
  }

  /** Whether the user's INTx disable bit is set (vdev->virq_disabled). */
  get virqDisabled(): boolean {
    return this.#virqDisabled;
  }

  #set(at: number, size: number, virt: number, write: number): void {
    for (let i = 0; i < size; i++) {
      this.#virt[at + i] = (virt >>> (8 * i)) & 0xff;
      this.#write[at + i] = (write >>> (8 * i)) & 0xff;
    }
  }

  #initPerms(): void {
    this.#map.fill(Kind.Basic, 0, PCI_STD_HEADER_SIZEOF);
    this.#set(PCI_VENDOR_ID, 2, 0xffff, 0);
    this.#set(PCI_DEVICE_ID, 2, 0xffff, 0);
    this.#set(PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE, 0xffff);
    this.#set(PCI_STATUS, 2, PCI_STATUS_CAP_LIST, 0);
    this.#set(PCI_CACHE_LINE_SIZE, 1, 0, 0xff);
    this.#set(PCI_LATENCY_TIMER, 1, 0, 0xff);
    this.#set(PCI_BIST, 1, 0, 0xff);
    for (let i = 0; i < 6; i++) this.#set(PCI_BASE_ADDRESS_0 + 4 * i, 4, 0xffffffff, 0xffffffff);
    this.#set(PCI_ROM_ADDRESS, 4, 0xffffffff, 0xffffffff);
    this.#set(PCI_CAPABILITY_LIST, 1, 0xff, 0);
    this.#set(PCI_INTERRUPT_LINE, 1, 0xff, 0xff);
    this.#set(PCI_INTERRUPT_PIN, 1, 0xff, 0);
    // vfio_cap_init: walk the hardware's capability list.
    const cfg = this.#pdev.cfg;
    if (!(cfg.read(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST)) return;
    for (let pos = cfg.read(PCI_CAPABILITY_LIST, 1) & ~3, loops = 0; pos && loops < 48; pos = cfg.read(pos + 1, 1) & ~3, loops++) {
      if (cfg.read(pos, 1) !== PCI_CAP_ID_MSI) continue;
      const flags = cfg.read(pos + PCI_MSI_FLAGS, 2);
      const len = msiCapLength(flags);
      this.#msiStart = pos;
      this.#map.fill(Kind.Msi, pos, pos + len);
      this.#set(pos + 1, 1, 0xff, 0);
      this.#set(pos + PCI_MSI_FLAGS, 1, 0xff, 0xff);
      this.#set(pos + PCI_MSI_ADDRESS_LO, 4, 0xffffffff, 0xffffffff);
      const is64 = (flags & PCI_MSI_FLAGS_64BIT) !== 0;
      if (is64) this.#set(pos + PCI_MSI_ADDRESS_HI, 4, 0xffffffff, 0xffffffff);
      this.#set(pos + (is64 ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32), 2, 0xffff, 0xffff);
      if (flags & PCI_MSI_FLAGS_MASKBIT) {
        const m = pos + (is64 ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32);
        this.#set(m, 4, 0, 0xffffffff);
        this.#set(m + 4, 4, 0, 0xffffffff);
      }
    }
  }

  /** vfio_pci_config_rw: `data` is read into or written from, in aligned pieces. */
  rw(pos: number, data: Uint8Array, write: boolean): number {
    if (pos < 0 || pos >= CFG_SIZE || pos + data.length > CFG_SIZE) {
      fail(Errno.EFAULT, `config space access [0x${pos.toString(16)}, +${data.length}) is outside its ${CFG_SIZE} bytes`);
    }
    let done = 0;
    while (done < data.length) {
      const at = pos + done;
      const left = data.length - done;
      const count = left >= 4 && at % 4 === 0 ? 4 : left >= 2 && at % 2 === 0 ? 2 : 1;
      const piece = data.subarray(done, done + count);
      if (write) this.#writePiece(at, count, le(piece));
      else piece.set(bytesLe(this.#readPiece(at, count), count));
      done += count;
    }
    return done;
  }

  #readPiece(pos: number, count: 1 | 2 | 4): number {
    const kind: number = this.#map[pos]!;
    if (kind === Kind.Unassigned) return this.#pdev.configRead(pos, count);
    if (kind === Kind.Basic && pos >= PCI_BASE_ADDRESS_0 && pos < PCI_BASE_ADDRESS_0 + 24) this.#barFixup();
    if (kind === Kind.Basic && pos === PCI_ROM_ADDRESS) this.#barFixup();
    if (kind === Kind.Msi && pos <= this.#msiStart + PCI_MSI_FLAGS && pos + count >= this.#msiStart + PCI_MSI_FLAGS) {
      // vfio_msi_config_read means to show the queue size SET_IRQS enabled, but 6.12 updates the
      // word at the capability's start (ID and next pointer), not the flags: the ID byte reads from
      // the hardware and the next pointer's byte is left as it was, so nothing visible changes.
      const at = this.#msiStart;
      this.vconfig[at] = (this.vconfig[at]! & ~PCI_MSI_FLAGS_QMASK) | (this.#hooks.msiQmax() << 1);
    }
    return this.#defaultRead(pos, count);
  }

  /** vfio_default_config_read: virtual bits from the copy, the rest from the hardware. */
  #defaultRead(pos: number, count: 1 | 2 | 4): number {
    const v = le(this.vconfig.subarray(pos, pos + count));
    const virt = le(this.#virt.subarray(pos, pos + count));
    const all = count === 4 ? 0xffffffff : (1 << (8 * count)) - 1;
    if (virt === all) return v;
    const phys = this.#pdev.configRead(pos, count);
    return ((phys & ~virt) | (v & virt)) >>> 0;
  }

  #writePiece(pos: number, count: 1 | 2 | 4, val: number): void {
    const kind: number = this.#map[pos]!;
    if (kind === Kind.Unassigned) {
      this.#pdev.configWrite(pos, count, val);
      return;
    }
    if (kind === Kind.Msi) {
      this.#defaultWrite(pos, count, val);
      const flagsAt = this.#msiStart + PCI_MSI_FLAGS;
      if (pos <= flagsAt && pos + count >= flagsAt) {
        // vfio_msi_config_write: the hardware's flags follow, without enable unless MSI is active.
        let flags = this.vconfig[flagsAt]! | (this.vconfig[flagsAt + 1]! << 8);
        if (!this.#hooks.msiActive()) flags &= ~PCI_MSI_FLAGS_ENABLE;
        if ((flags & PCI_MSI_FLAGS_QSIZE) >> 4 > this.#hooks.msiQmax()) flags = (flags & ~PCI_MSI_FLAGS_QSIZE) | (this.#hooks.msiQmax() << 4);
        // Back into the virtual copy too: the user reads what the hardware was given.
        this.vconfig[flagsAt] = flags & 0xff;
        this.vconfig[flagsAt + 1] = flags >> 8;
        this.#pdev.configWrite(flagsAt, 2, flags);
      }
      return;
    }
    this.#basicWrite(pos, count, val);
  }

  /** vfio_basic_config_write: COMMAND's memory/I/O bits remembered, INTx disable emulated. */
  #basicWrite(pos: number, count: 1 | 2 | 4, val: number): void {
    this.#defaultWrite(pos, count, val);
    if (pos === PCI_COMMAND) {
      const mask = PCI_COMMAND_MEMORY | PCI_COMMAND_IO;
      const cmd = this.vconfig[PCI_COMMAND]! | (this.vconfig[PCI_COMMAND + 1]! << 8);
      const next = (cmd & ~mask) | (val & mask);
      this.vconfig[PCI_COMMAND] = next & 0xff;
      this.vconfig[PCI_COMMAND + 1] = next >> 8;
    }
    if (pos >= PCI_COMMAND && pos <= PCI_COMMAND + 1) {
      const disabled = (this.vconfig[PCI_COMMAND + 1]! & (PCI_COMMAND_INTX_DISABLE >> 8)) !== 0;
      if (disabled !== this.#virqDisabled) {
        this.#virqDisabled = disabled;
        this.#hooks.intxDisableChanged(disabled);
      }
    }
    if ((pos >= PCI_BASE_ADDRESS_0 && pos < PCI_BASE_ADDRESS_0 + 24) || pos === PCI_ROM_ADDRESS) this.#bardirty = true;
  }

  /** vfio_default_config_write. */
  #defaultWrite(pos: number, count: 1 | 2 | 4, val: number): void {
    const write = le(this.#write.subarray(pos, pos + count));
    if (!write) return;
    const virt = le(this.#virt.subarray(pos, pos + count));
    if (write & virt) {
      const m = write & virt;
      const v = ((le(this.vconfig.subarray(pos, pos + count)) & ~m) | (val & m)) >>> 0;
      this.vconfig.set(bytesLe(v, count), pos);
    }
    if (write & ~virt) {
      const m = write & ~virt;
      const phys = ((this.#pdev.configRead(pos, count) & ~m) | (val & m)) >>> 0;
      this.#pdev.configWrite(pos, count, phys);
    }
  }

  /** vfio_bar_fixup: virtual BARs read back masked to their size, with their type bits. */
  #barFixup(): void {
    if (!this.#bardirty) return;
    const specs = this.#pdev.cfg.barSpecs;
    for (let i = 0; i < 6; i++) {
      const at = PCI_BASE_ADDRESS_0 + 4 * i;
      const b = specs[i];
      if (!b) {
        this.vconfig.set([0, 0, 0, 0], at);
        continue;
      }
      const size = BigInt(b.size);
      const mask = ~(size - 1n) & 0xffffffffffffffffn;
      const flags = b.type === 'io' ? 1 : (b.type === 'mem64' ? 4 : 0) | (b.prefetchable ? 8 : 0);
      const lo = (le(this.vconfig.subarray(at, at + 4)) & Number(mask & 0xffffffffn)) >>> 0;
      this.vconfig.set(bytesLe((lo | flags) >>> 0, 4), at);
      if (b.type === 'mem64') {
        const hi = (le(this.vconfig.subarray(at + 4, at + 8)) & Number(mask >> 32n)) >>> 0;
        this.vconfig.set(bytesLe(hi, 4), at + 4);
        i++;
      }
    }
    this.vconfig.set([0, 0, 0, 0], PCI_ROM_ADDRESS);
    this.#bardirty = false;
  }
}

function le(b: Uint8Array): number {
  let v = 0;
  for (let i = b.length - 1; i >= 0; i--) v = v * 256 + b[i]!;
  return v >>> 0;
}

function bytesLe(v: number, count: number): Uint8Array {
  const out = new Uint8Array(count);
  for (let i = 0; i < count; i++) out[i] = (v >>> (8 * i)) & 0xff;
  return out;
}
