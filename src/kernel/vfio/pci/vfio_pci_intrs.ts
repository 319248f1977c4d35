/**
 * vfio-pci interrupts (vfio_pci_intrs.c): VFIO_DEVICE_SET_IRQS for INTx, MSI, MSI-X and the
 * device request (REQ) and error (ERR) notifiers, each routed to an eventfd.
 *
 * INTx is level-triggered and "automasked": when the line rises, vfio-pci masks it (the
 * hardware's COMMAND.INTX_DISABLE, as pci_check_and_mask_intx does), signals the eventfd, and the
 * user unmasks after servicing the device (an UNMASK ioctl, or a write of the unmask eventfd it
 * gave); if the line is still high then, it fires again. MSI
 * enable allocates host vectors, programs the function's capability with their messages, and
 * each vector's handler signals its eventfd. Only one of INTx, MSI and MSI-X is active at a time.
 */

import { Errno, fail } from '../../../errno.js';
import type { PciDevice } from '../../../hw/pci.js';
import { MSI_CAP_OFFSET, PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, PCI_MSI_ADDRESS_HI, PCI_MSI_ADDRESS_LO, PCI_MSI_DATA_32, PCI_MSI_DATA_64, PCI_MSI_FLAGS, PCI_MSI_FLAGS_64BIT, PCI_MSI_FLAGS_ENABLE, PCI_MSI_FLAGS_QSIZE } from '../../../hw/pci_config.js';
import { type EventfdCtx, eventfdCtxFdget } from '../../eventfd.js';
import type { IrqController, MsiBlock } from '../../irq.js';
import type { Process } from '../../process.js';
import {
  VFIO_IRQ_SET_ACTION_MASK,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_TYPE_MASK,
  VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_PCI_ERR_IRQ_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_REQ_IRQ_INDEX,
} from '../../../uapi/vfio.js';

const NONE = -1;

interface MsiVector {
  trigger: EventfdCtx | null;
}

export class VfioPciIrqs {
  readonly #pdev: PciDevice;
  readonly #irq: IrqController;
  /** vdev->irq_type: NONE, or the index of the active kind. */
  irqType = NONE;
  /** INTx: its eventfd, whether vfio masked it, whether the user's INTx disable holds it. */
  #intxEventfd: EventfdCtx | null = null;
  intxMasked = false;
  #virqDisabled = () => false;
  /** MSI: vectors by index, and log2 of how many were enabled (vdev->msi_qmax). */
  #msi: MsiVector[] = [];
  /** The host vectors (and IRTEs) behind them. */
  #msiBlock: MsiBlock | null = null;
  msiQmax = 0;
  #reqTrigger: EventfdCtx | null = null;
  /** INTx's unmask eventfd (ctx->unmask): written, it unmasks. */
  #unmaskVirqfd: { ctx: EventfdCtx; unwatch: () => void } | null = null;
  /** Signals sent, per index (for tests and the object graph). */
  readonly signals = [0, 0, 0, 0, 0];

  constructor(pdev: PciDevice, irq: IrqController, virqDisabled: () => boolean) {
    this.#pdev = pdev;
    this.#irq = irq;
    this.#virqDisabled = virqDisabled;
  }

  get msiVectors(): number {
    return this.#msi.length;
  }

  /** vfio_pci_set_irqs_ioctl: route by index and action. `data` holds the validated payload. */
  set(flags: number, index: number, start: number, count: number, data: Uint8Array, task: Process): number {
    const action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
    const what = `SET_IRQS index ${index} action 0x${action.toString(16)}`;
    switch (index) {
      case VFIO_PCI_INTX_IRQ_INDEX:
        if (action === VFIO_IRQ_SET_ACTION_MASK) return this.#intxMask(start, count, flags, data);
        if (action === VFIO_IRQ_SET_ACTION_UNMASK) return this.#intxUnmask(start, count, flags, data, task);
        if (action === VFIO_IRQ_SET_ACTION_TRIGGER) return this.#intxTrigger(start, count, flags, data, task);
        break;
      case VFIO_PCI_MSI_IRQ_INDEX:
      case VFIO_PCI_MSIX_IRQ_INDEX:
        if (action === VFIO_IRQ_SET_ACTION_TRIGGER) return this.#msiTrigger(index, start, count, flags, data, task);
        break;
      case VFIO_PCI_REQ_IRQ_INDEX:
        if (action === VFIO_IRQ_SET_ACTION_TRIGGER) return this.#reqTriggerSet(start, count, flags, data, task);
        break;
      case VFIO_PCI_ERR_IRQ_INDEX:
        break;
    }
    return fail(Errno.ENOTTY, `${what} is not supported for this device`);
  }

  #intxMask(start: number, count: number, flags: number, data: Uint8Array): number {
    if (this.irqType !== VFIO_PCI_INTX_IRQ_INDEX || start !== 0 || count !== 1) fail(Errno.EINVAL, 'INTx MASK needs INTx enabled and start 0, count 1');
    if (flags & VFIO_IRQ_SET_DATA_NONE || (flags & VFIO_IRQ_SET_DATA_BOOL && data[0])) this.#mask();
    else if (flags & VFIO_IRQ_SET_DATA_EVENTFD) fail(Errno.ENOTTY, 'INTx MASK by eventfd is not implemented by vfio-pci');
    return 0;
  }

  #intxUnmask(start: number, count: number, flags: number, data: Uint8Array, task: Process): number {
    if (this.irqType !== VFIO_PCI_INTX_IRQ_INDEX || start !== 0 || count !== 1) fail(Errno.EINVAL, 'INTx UNMASK needs INTx enabled and start 0, count 1');
    if (flags & VFIO_IRQ_SET_DATA_NONE || (flags & VFIO_IRQ_SET_DATA_BOOL && data[0])) this.unmask();
    else if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
      const fd = new DataView(data.buffer, data.byteOffset).getInt32(0, true);
      if (fd < 0) {
        this.#unmaskVirqfdDisable();
        return 0;
      }
      // vfio_virqfd_enable: every write of the eventfd unmasks, as an UNMASK ioctl would.
      const ctx = eventfdCtxFdget(task, fd);
      if (this.#unmaskVirqfd) {
        ctx.put();
        fail(Errno.EBUSY, 'INTx already has an unmask eventfd (set -1 to remove it first)');
      }
      this.#unmaskVirqfd = { ctx, unwatch: () => {} };
      this.#unmaskVirqfd.unwatch = ctx.watch(() => this.unmask());
    }
    return 0;
  }

  #unmaskVirqfdDisable(): void {
    const v = this.#unmaskVirqfd;
    if (!v) return;
    this.#unmaskVirqfd = null;
    v.unwatch();
    v.ctx.put();
  }

  #intxTrigger(start: number, count: number, flags: number, data: Uint8Array, task: Process): number {
    const isIntx = this.irqType === VFIO_PCI_INTX_IRQ_INDEX;
    if (isIntx && !count && flags & VFIO_IRQ_SET_DATA_NONE) {
      this.#intxDisable();
      return 0;
    }
    if (!(isIntx || this.irqType === NONE) || start !== 0 || count !== 1) fail(Errno.EINVAL, `INTx TRIGGER needs start 0, count 1 and no other interrupt kind enabled (now ${this.irqType})`);
    if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
      const fd = new DataView(data.buffer, data.byteOffset).getInt32(0, true);
      const trigger = fd >= 0 ? eventfdCtxFdget(task, fd) : null;
      if (isIntx) {
        this.#intxEventfd?.put();
        this.#intxEventfd = trigger;
      } else {
        try {
          this.#intxEnable(trigger);
        } catch (e) {
          trigger?.put();
          throw e;
        }
      }
      return 0;
    }
    if (!isIntx) fail(Errno.EINVAL, 'INTx is not enabled');
    if (flags & VFIO_IRQ_SET_DATA_NONE || (flags & VFIO_IRQ_SET_DATA_BOOL && data[0])) this.#sendIntx();
    return 0;
  }

  /** vfio_intx_enable. */
  #intxEnable(trigger: EventfdCtx | null): void {
    if (!this.#pdev.cfg.interruptPin) fail(Errno.ENODEV, `${this.#pdev.bdf} has no INTx pin`);
    this.#intxEventfd = trigger;
    this.intxMasked = this.#virqDisabled();
    if (this.intxMasked) this.#setHwIntxDisable(true);
    this.#irq.requestIntx(this.#pdev, `vfio-intx(${this.#pdev.bdf})`, (_d, level) => this.#intxHandler(level));
    this.irqType = VFIO_PCI_INTX_IRQ_INDEX;
    if (this.#pdev.intxLevel && !this.intxMasked) this.#intxHandler(true);
  }

  #intxDisable(): void {
    this.#unmaskVirqfdDisable();
    this.#irq.freeIntx(this.#pdev);
    this.#setHwIntxDisable(false);
    this.intxMasked = false;
    this.#intxEventfd?.put();
    this.#intxEventfd = null;
    this.irqType = NONE;
  }

  /** vfio_intx_handler: mask at the device, then tell the user. */
  #intxHandler(level: boolean): void {
    if (!level || this.intxMasked) return;
    this.intxMasked = true;
    this.#setHwIntxDisable(true);
    this.#sendIntx();
  }

  #sendIntx(): void {
    if (!this.#intxEventfd) return;
    this.signals[VFIO_PCI_INTX_IRQ_INDEX]!++;
    this.#intxEventfd.signal();
  }

  #mask(): void {
    if (this.intxMasked) return;
    this.intxMasked = true;
    this.#setHwIntxDisable(true);
  }

  /** __vfio_pci_intx_unmask: a line still high fires again at once. */
  unmask(): void {
    if (!this.intxMasked || this.#virqDisabled()) return;
    this.intxMasked = false;
    this.#setHwIntxDisable(false);
  }

  /** The user's virtual INTx disable bit changed. */
  virqChanged(disabled: boolean): void {
    // Without INTx in use the physical bit just follows the virtual one (__vfio_pci_intx_mask).
    if (this.irqType !== VFIO_PCI_INTX_IRQ_INDEX) {
      this.#setHwIntxDisable(disabled);
      return;
    }
    if (disabled) this.#mask();
    else this.unmask();
  }

  #setHwIntxDisable(on: boolean): void {
    const cmd = this.#pdev.configRead(PCI_COMMAND, 2);
    this.#pdev.configWrite(PCI_COMMAND, 2, on ? cmd | PCI_COMMAND_INTX_DISABLE : cmd & ~PCI_COMMAND_INTX_DISABLE);
  }

  #msiTrigger(index: number, start: number, count: number, flags: number, data: Uint8Array, task: Process): number {
    const isThis = this.irqType === index;
    if (isThis && !count && flags & VFIO_IRQ_SET_DATA_NONE) {
      this.#msiDisable();
      return 0;
    }
    if (!(isThis || this.irqType === NONE)) fail(Errno.EINVAL, `MSI${index === VFIO_PCI_MSIX_IRQ_INDEX ? '-X' : ''} TRIGGER while interrupt kind ${this.irqType} is enabled`);
    if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
      const dv = new DataView(data.buffer, data.byteOffset);
      const fds = Array.from({ length: count }, (_, i) => dv.getInt32(4 * i, true));
      if (isThis) return this.#msiSetBlock(start, fds, task);
      if (index === VFIO_PCI_MSIX_IRQ_INDEX) fail(Errno.EINVAL, `${this.#pdev.bdf} has no MSI-X capability`);
      // Fewer vectors than asked for: the count the platform offers comes back, nothing enabled.
      const short = this.#msiEnable(start + count);
      if (short) return short;
      try {
        this.#msiSetBlock(start, fds, task);
      } catch (e) {
        this.#msiDisable();
        throw e;
      }
      return 0;
    }
    if (!isThis) fail(Errno.EINVAL, `interrupt kind ${index} is not enabled`);
    for (let i = start; i < start + count; i++) {
      const v = this.#msi[i];
      if (!v?.trigger) continue;
      if (flags & VFIO_IRQ_SET_DATA_NONE || (flags & VFIO_IRQ_SET_DATA_BOOL && data[i - start])) this.#sendMsi(v);
    }
    return 0;
  }

  /**
   * vfio_msi_enable: host vectors, the function's capability programmed and enabled; 0, or (as
   * pci_alloc_irq_vectors(1, nvec) reports) the number of vectors there would be when short.
   */
  #msiEnable(nvec: number): number {
    const cfg = this.#pdev.cfg;
    const log2 = Math.ceil(Math.log2(nvec));
    const msi: MsiVector[] = Array.from({ length: nvec }, () => ({ trigger: null }));
    const block = this.#irq.requestMsiBlock(this.#pdev, nvec, (i) => `vfio-msi[${i}](${this.#pdev.bdf})`, (i) => () => this.#sendMsi(msi[i]!));
    if (!block) {
      // x86 gives multi-message MSI only behind interrupt remapping: one vector, so say 1.
      if (nvec > 1 && !this.#pdev.unit?.interruptRemapping) return 1;
      return fail(Errno.ENOSPC, `no ${nvec} interrupt vectors${this.#pdev.unit?.interruptRemapping ? ' (or interrupt remapping entries)' : ''} left for ${this.#pdev.bdf}`);
    }
    this.#msi = msi;
    this.#msiBlock = block;
    // The block's first message: a multi-message function ORs the vector number into the data.
    const is64 = (cfg.msiFlags & PCI_MSI_FLAGS_64BIT) !== 0;
    this.#pdev.configWrite(MSI_CAP_OFFSET + PCI_MSI_ADDRESS_LO, 4, Number(block.address & 0xffffffffn));
    if (is64) this.#pdev.configWrite(MSI_CAP_OFFSET + PCI_MSI_ADDRESS_HI, 4, Number(block.address >> 32n));
    this.#pdev.configWrite(MSI_CAP_OFFSET + (is64 ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32), 2, block.data);
    const flags = (cfg.msiFlags & ~PCI_MSI_FLAGS_QSIZE) | (log2 << 4) | PCI_MSI_FLAGS_ENABLE;
    this.#pdev.configWrite(MSI_CAP_OFFSET + PCI_MSI_FLAGS, 2, flags);
    this.msiQmax = log2;
    this.irqType = VFIO_PCI_MSI_IRQ_INDEX;
    return 0;
  }

  #msiDisable(): void {
    for (const v of this.#msi) v.trigger?.put();
    if (this.#msiBlock) this.#irq.freeMsiBlock(this.#msiBlock);
    this.#msiBlock = null;
    this.#msi = [];
    const flags = this.#pdev.cfg.msiFlags;
    this.#pdev.configWrite(MSI_CAP_OFFSET + PCI_MSI_FLAGS, 2, flags & ~(PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE));
    this.irqType = NONE;
  }

  /** vfio_msi_set_block: each vector's eventfd set (fd >= 0) or dropped (-1), undone on failure. */
  #msiSetBlock(start: number, fds: number[], task: Process): number {
    if (start + fds.length > this.#msi.length) fail(Errno.EINVAL, `vectors ${start}..${start + fds.length - 1} are beyond the ${this.#msi.length} enabled`);
    const old = fds.map((_, i) => this.#msi[start + i]!.trigger);
    const fresh: (EventfdCtx | null)[] = [];
    try {
      for (const fd of fds) fresh.push(fd >= 0 ? eventfdCtxFdget(task, fd) : null);
    } catch (e) {
      for (const t of fresh) t?.put();
      throw e;
    }
    fresh.forEach((t, i) => {
      old[i]?.put();
      this.#msi[start + i]!.trigger = t;
    });
    return 0;
  }

  #sendMsi(v: MsiVector): void {
    if (!v.trigger) return;
    this.signals[this.irqType === VFIO_PCI_MSIX_IRQ_INDEX ? VFIO_PCI_MSIX_IRQ_INDEX : VFIO_PCI_MSI_IRQ_INDEX]!++;
    v.trigger.signal();
  }

  /** vfio_pci_set_req_trigger via vfio_pci_set_ctx_trigger_single. */
  #reqTriggerSet(start: number, count: number, flags: number, data: Uint8Array, task: Process): number {
    if (start !== 0 || count > 1) fail(Errno.EINVAL, 'REQ TRIGGER needs start 0 and count 0 or 1');
    if (flags & VFIO_IRQ_SET_DATA_NONE) {
      if (!this.#reqTrigger) fail(Errno.EINVAL, 'no REQ eventfd is set');
      if (count) {
        this.#reqTrigger.signal();
        return 0;
      }
      this.#reqTrigger.put();
      this.#reqTrigger = null;
      return 0;
    }
    if (flags & VFIO_IRQ_SET_DATA_BOOL) {
      if (!count) fail(Errno.EINVAL, 'REQ TRIGGER with DATA_BOOL needs count 1');
      if (data[0]) this.#reqTrigger?.signal();
      return 0;
    }
    if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
      if (!count) fail(Errno.EINVAL, 'REQ TRIGGER with DATA_EVENTFD needs count 1');
      const fd = new DataView(data.buffer, data.byteOffset).getInt32(0, true);
      if (fd === -1) {
        this.#reqTrigger?.put();
        this.#reqTrigger = null;
        return 0;
      }
      if (fd >= 0) {
        const t = eventfdCtxFdget(task, fd);
        this.#reqTrigger?.put();
        this.#reqTrigger = t;
        return 0;
      }
    }
    return fail(Errno.EINVAL, 'REQ TRIGGER: a negative fd other than -1');
  }

  /** Everything off (close_device, reset). */
  disableAll(): void {
    if (this.irqType === VFIO_PCI_INTX_IRQ_INDEX) this.#intxDisable();
    else if (this.irqType === VFIO_PCI_MSI_IRQ_INDEX) this.#msiDisable();
    this.#reqTrigger?.put();
    this.#reqTrigger = null;
  }
}
