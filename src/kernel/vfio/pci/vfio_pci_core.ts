/**
 * vfio-pci (vfio_pci_core.c, vfio_pci_rdwr.c): a PCI function given to user space.
 *
 * The device file is cut into regions at fixed offsets, index << 40: BAR0..BAR5, the expansion
 * ROM, config space, VGA. GET_REGION_INFO tells each region's size, offset and what can be done
 * with it; pread/pwrite at those offsets reach the config space through vfio-pci's virtualization
 * (vfio_pci_config.ts) and the BARs through the function's decoders, in the widest naturally
 * aligned accesses that fit (8, 4, 2, 1 bytes — exactly what the device model sees). BAR access
 * while the user has memory decoding off is EIO. Interrupts are in vfio_pci_intrs.ts.
 *
 * open_device (first open) enables the function and takes the virtual config copy; close_device
 * (last close) turns interrupts off, bus mastering off, and restores the function.
 */

import { Errno, fail } from '../../../errno.js';
import type { PciDevice } from '../../../hw/pci.js';
import { PCI_COMMAND, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY } from '../../../hw/pci_config.js';
import type { BarAccessSize } from '../../../hw/pci_model.js';
import type { Process } from '../../process.js';
import { copyFromUser, copyToUser } from '../../uaccess.js';
import {
  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
  VFIO_DEVICE_FEATURE_LOW_POWER_EXIT,
  VFIO_DEVICE_FEATURE_MASK,
  VFIO_DEVICE_FEATURE_PCI_VF_TOKEN,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_IOEVENTFD,
  VFIO_DEVICE_PCI_HOT_RESET,
  VFIO_DEVICE_RESET,
  VFIO_DEVICE_SET_IRQS,
  VFIO_IRQ_INFO_AUTOMASKED,
  VFIO_IRQ_INFO_EVENTFD,
  VFIO_IRQ_INFO_MASKABLE,
  VFIO_IRQ_INFO_NORESIZE,
  VFIO_IRQ_SET_ACTION_TYPE_MASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_IRQ_SET_DATA_TYPE_MASK,
  VFIO_PCI_BAR5_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_ERR_IRQ_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_PCI_NUM_IRQS,
  VFIO_PCI_NUM_REGIONS,
  VFIO_PCI_REQ_IRQ_INDEX,
  VFIO_PCI_ROM_REGION_INDEX,
  VFIO_PCI_VGA_REGION_INDEX,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
  vfio_device_info,
  vfio_device_ioeventfd,
  vfio_irq_info,
  vfio_irq_set,
  vfio_pci_hot_reset,
  vfio_pci_hot_reset_info,
  vfio_region_info,
} from '../../../uapi/vfio.js';
import { physicalAttachIoas, physicalBind, physicalDetachIoas, physicalUnbind } from '../iommufd.js';
import type { VfioDevice, VfioDeviceOps } from '../vfio.js';
import type { VfioModule } from '../vfio_main.js';
import { vfioCheckFeature } from '../vfio_main.js';
import { VfioPciConfig } from './vfio_pci_config.js';
import { VfioPciIrqs } from './vfio_pci_intrs.js';

export const VFIO_PCI_OFFSET_SHIFT = 40;
const OFFSET_MASK = 2 ** VFIO_PCI_OFFSET_SHIFT - 1;

export const offsetToIndex = (pos: number): number => Math.floor(pos / 2 ** VFIO_PCI_OFFSET_SHIFT);
export const indexToOffset = (index: number): bigint => BigInt(index) << BigInt(VFIO_PCI_OFFSET_SHIFT);

/** vfio_pci_core_device: the vfio-pci state of one function. */
export class VfioPciCoreDevice {
  readonly pdev: PciDevice;
  readonly config: VfioPciConfig;
  readonly irqs: VfioPciIrqs;
  vdev!: VfioDevice;
  /** A function-level reset is available (reset_works). */
  readonly resetWorks: boolean;
  /** Runtime PM engaged by the user (LOW_POWER_ENTRY). */
  pmEngaged = false;

  constructor(vfio: VfioModule, pdev: PciDevice) {
    this.pdev = pdev;
    this.resetWorks = pdev.model?.flr ?? false;
    this.irqs = new VfioPciIrqs(pdev, vfio.machine.irq, () => this.config.virqDisabled);
    this.config = new VfioPciConfig(pdev, {
      intxDisableChanged: (d) => this.irqs.virqChanged(d),
      msiActive: () => this.irqs.irqType === VFIO_PCI_MSI_IRQ_INDEX,
      msiQmax: () => this.irqs.msiQmax,
    });
  }

  barSize(bar: number): number {
    return this.pdev.cfg.barSpecs[bar]?.size ?? 0;
  }

  /** vfio_pci_probe_mmaps: memory BARs of at least a page (smaller ones get a dummy page: still mmapable). */
  barMmapable(bar: number): boolean {
    const b = this.pdev.cfg.barSpecs[bar];
    return !!b && b.type !== 'io';
  }
}

/** vfio-pci's vfio_device_ops. */
export function vfioPciOps(vfio: VfioModule): VfioDeviceOps {
  const core = (v: VfioDevice): VfioPciCoreDevice => vfio.pci.core(v);
  return {
    name: 'vfio-pci',
    bindIommufd: (v, ictx, task) => physicalBind(v, ictx, task),
    unbindIommufd: (v) => physicalUnbind(v),
    attachIoas: (v, task, pt) => physicalAttachIoas(v, task, pt),
    detachIoas: (v) => physicalDetachIoas(v),
    openDevice: (v) => openDevice(core(v)),
    closeDevice: (v) => closeDevice(core(v)),
    ioctl: (v, cmd, arg, task) => ioctl(core(v), cmd, arg, task),
    read: (v, task, buf, count, pos) => rw(core(v), task, buf, count, pos, false),
    write: (v, task, buf, count, pos) => rw(core(v), task, buf, count, pos, true),
    deviceFeature: (v, flags, arg, argsz, task) => feature(core(v), flags, arg, argsz, task),
  };
}

/** vfio_pci_core_enable: the function in D0 with its decoders on, and a fresh virtual config. */
function openDevice(c: VfioPciCoreDevice): void {
  const cmd = c.pdev.configRead(PCI_COMMAND, 2);
  if (c.pdev.cfg.barSpecs.some((b) => b && b.type !== 'io')) c.pdev.configWrite(PCI_COMMAND, 2, cmd | PCI_COMMAND_MEMORY);
  c.config.init();
}

/** vfio_pci_core_disable: interrupts off, bus mastering off, the function reset when it can be. */
function closeDevice(c: VfioPciCoreDevice): void {
  c.irqs.disableAll();
  const cmd = c.pdev.configRead(PCI_COMMAND, 2);
  c.pdev.configWrite(PCI_COMMAND, 2, cmd & ~PCI_COMMAND_MASTER);
  if (c.resetWorks) c.pdev.flr();
  c.pmEngaged = false;
}

function ioctl(c: VfioPciCoreDevice, cmd: number, arg: bigint, task: Process): number {
  switch (cmd) {
    case VFIO_DEVICE_GET_INFO:
      return getInfo(c, arg, task);
    case VFIO_DEVICE_GET_REGION_INFO:
      return getRegionInfo(c, arg, task);
    case VFIO_DEVICE_GET_IRQ_INFO:
      return getIrqInfo(c, arg, task);
    case VFIO_DEVICE_SET_IRQS:
      return setIrqs(c, arg, task);
    case VFIO_DEVICE_RESET:
      if (!c.resetWorks) fail(Errno.EINVAL, `${c.pdev.bdf} cannot be reset (no function-level reset)`);
      c.irqs.disableAll();
      c.pdev.flr();
      c.config.init();
      return 0;
    case VFIO_DEVICE_GET_PCI_HOT_RESET_INFO:
      return hotResetInfo(c, arg, task);
    case VFIO_DEVICE_PCI_HOT_RESET:
      return hotReset(c, arg, task);
    case VFIO_DEVICE_IOEVENTFD:
      return ioeventfd(c, arg, task);
    default:
      return fail(Errno.ENOTTY, `0x${cmd.toString(16)} is not a vfio-pci ioctl`);
  }
}

function getInfo(c: VfioPciCoreDevice, arg: bigint, task: Process): number {
  const minsz = vfio_device_info.offsetEnd('num_irqs');
  const info = vfio_device_info.decode(copyFromUser(task, arg, minsz, 'reading vfio_device_info'));
  if (info.argsz < minsz) fail(Errno.EINVAL, `vfio_device_info.argsz ${info.argsz} is below ${minsz}`);
  info.flags = VFIO_DEVICE_FLAGS_PCI | (c.resetWorks ? VFIO_DEVICE_FLAGS_RESET : 0);
  info.num_regions = VFIO_PCI_NUM_REGIONS;
  info.num_irqs = VFIO_PCI_NUM_IRQS;
  copyToUser(task, arg, vfio_device_info.encode(info).subarray(0, minsz), 'writing vfio_device_info');
  return 0;
}

function getRegionInfo(c: VfioPciCoreDevice, arg: bigint, task: Process): number {
  const minsz = vfio_region_info.offsetEnd('offset');
  const info = vfio_region_info.decode(copyFromUser(task, arg, minsz, 'reading vfio_region_info'));
  if (info.argsz < minsz) fail(Errno.EINVAL, `vfio_region_info.argsz ${info.argsz} is below ${minsz}`);
  const index = info.index;
  info.offset = indexToOffset(index);
  info.flags = 0;
  info.size = 0n;
  info.cap_offset = 0;
  if (index === VFIO_PCI_CONFIG_REGION_INDEX) {
    info.size = 256n;
    info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
  } else if (index <= VFIO_PCI_BAR5_REGION_INDEX) {
    const size = c.barSize(index);
    if (size) {
      info.size = BigInt(size);
      info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | (c.barMmapable(index) ? VFIO_REGION_INFO_FLAG_MMAP : 0);
    }
  } else if (index === VFIO_PCI_ROM_REGION_INDEX) {
    // No model has an option ROM: size 0, no flags.
  } else if (index === VFIO_PCI_VGA_REGION_INDEX) {
    fail(Errno.EINVAL, `${c.pdev.bdf} is not a VGA device (region ${index})`);
  } else {
    fail(Errno.EINVAL, `region index ${index} is beyond the ${VFIO_PCI_NUM_REGIONS} regions`);
  }
  copyToUser(task, arg, vfio_region_info.encode(info).subarray(0, minsz), 'writing vfio_region_info');
  return 0;
}

/** vfio_pci_get_irq_count. */
function irqCount(c: VfioPciCoreDevice, index: number): number {
  switch (index) {
    case VFIO_PCI_INTX_IRQ_INDEX:
      return c.config.vconfig[0x3d] ? 1 : 0;
    case VFIO_PCI_MSI_IRQ_INDEX:
      return c.pdev.model?.msi ? 1 << ((c.pdev.cfg.msiFlags & 0xe) >> 1) : 0;
    case VFIO_PCI_REQ_IRQ_INDEX:
      return 1;
    default:
      return 0;
  }
}

function getIrqInfo(c: VfioPciCoreDevice, arg: bigint, task: Process): number {
  const minsz = vfio_irq_info.offsetEnd('count');
  const info = vfio_irq_info.decode(copyFromUser(task, arg, minsz, 'reading vfio_irq_info'));
  if (info.argsz < minsz) fail(Errno.EINVAL, `vfio_irq_info.argsz ${info.argsz} is below ${minsz}`);
  if (info.index >= VFIO_PCI_NUM_IRQS) fail(Errno.EINVAL, `irq index ${info.index} is beyond the ${VFIO_PCI_NUM_IRQS} indexes`);
  if (info.index === VFIO_PCI_ERR_IRQ_INDEX) fail(Errno.EINVAL, `${c.pdev.bdf} is not PCI Express: no ERR interrupt`);
  info.flags = VFIO_IRQ_INFO_EVENTFD;
  info.count = irqCount(c, info.index);
  if (info.index === VFIO_PCI_INTX_IRQ_INDEX) info.flags |= VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
  else info.flags |= VFIO_IRQ_INFO_NORESIZE;
  copyToUser(task, arg, vfio_irq_info.encode(info), 'writing vfio_irq_info');
  return 0;
}

/** vfio_pci_ioctl_set_irqs + vfio_set_irqs_validate_and_prepare. */
function setIrqs(c: VfioPciCoreDevice, arg: bigint, task: Process): number {
  const minsz = vfio_irq_set.offsetEnd('count');
  const hdr = vfio_irq_set.decode(copyFromUser(task, arg, minsz, 'reading vfio_irq_set'));
  const max = irqCount(c, hdr.index);
  const known = VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK;
  if (hdr.argsz < minsz) fail(Errno.EINVAL, `vfio_irq_set.argsz ${hdr.argsz} is below ${minsz}`);
  if (hdr.index >= VFIO_PCI_NUM_IRQS) fail(Errno.EINVAL, `irq index ${hdr.index} is beyond the ${VFIO_PCI_NUM_IRQS} indexes`);
  if (hdr.count >= 0xffffffff - hdr.start) fail(Errno.EINVAL, `vfio_irq_set start ${hdr.start} + count ${hdr.count} overflows`);
  if (hdr.flags & ~known) fail(Errno.EINVAL, `vfio_irq_set.flags has unknown bits 0x${((hdr.flags & ~known) >>> 0).toString(16)}`);
  if (hdr.start >= max || hdr.start + hdr.count > max) fail(Errno.EINVAL, `vectors ${hdr.start}..${hdr.start + hdr.count - 1} of index ${hdr.index}: it has ${max}`);
  let size: number;
  switch (hdr.flags & VFIO_IRQ_SET_DATA_TYPE_MASK) {
    case VFIO_IRQ_SET_DATA_NONE:
      size = 0;
      break;
    case VFIO_IRQ_SET_DATA_BOOL:
      size = 1;
      break;
    case VFIO_IRQ_SET_DATA_EVENTFD:
      size = 4;
      break;
    default:
      return fail(Errno.EINVAL, 'vfio_irq_set.flags needs exactly one DATA_ type');
  }
  if (size && hdr.argsz - minsz < hdr.count * size) fail(Errno.EINVAL, `vfio_irq_set.argsz ${hdr.argsz} leaves no room for ${hdr.count} ${size}-byte data items`);
  const data = size ? copyFromUser(task, arg + BigInt(minsz), hdr.count * size, 'reading vfio_irq_set.data') : new Uint8Array(0);
  return c.irqs.set(hdr.flags, hdr.index, hdr.start, hdr.count, data, task);
}

/** Functions on the root bus have no slot or bus reset: hot reset is not available (ENODEV). */
function hotResetInfo(c: VfioPciCoreDevice, arg: bigint, task: Process): number {
  const minsz = vfio_pci_hot_reset_info.offsetEnd('count');
  const hdr = vfio_pci_hot_reset_info.decode(copyFromUser(task, arg, minsz, 'reading vfio_pci_hot_reset_info'));
  if (hdr.argsz < minsz) fail(Errno.EINVAL, `vfio_pci_hot_reset_info.argsz ${hdr.argsz} is below ${minsz}`);
  return fail(Errno.ENODEV, `${c.pdev.bdf} is on the root bus: neither a slot nor a bus reset can reach it`);
}

function hotReset(c: VfioPciCoreDevice, arg: bigint, task: Process): number {
  const minsz = vfio_pci_hot_reset.offsetEnd('count');
  const hdr = vfio_pci_hot_reset.decode(copyFromUser(task, arg, minsz, 'reading vfio_pci_hot_reset'));
  if (hdr.argsz < minsz || hdr.flags) fail(Errno.EINVAL, hdr.argsz < minsz ? `vfio_pci_hot_reset.argsz ${hdr.argsz} is below ${minsz}` : 'vfio_pci_hot_reset.flags must be 0');
  return fail(Errno.ENODEV, `${c.pdev.bdf} is on the root bus: neither a slot nor a bus reset can reach it`);
}

function ioeventfd(_c: VfioPciCoreDevice, arg: bigint, task: Process): number {
  const minsz = vfio_device_ioeventfd.offsetEnd('fd');
  const io = vfio_device_ioeventfd.decode(copyFromUser(task, arg, minsz, 'reading vfio_device_ioeventfd'));
  if (io.argsz < minsz) fail(Errno.EINVAL, `vfio_device_ioeventfd.argsz ${io.argsz} is below ${minsz}`);
  return fail(Errno.EOPNOTSUPP, 'VFIO_DEVICE_IOEVENTFD: the emulator has no eventfd-triggered register writes yet');
}

/** vfio_pci_core_ioctl_feature: runtime PM and the VF token. */
function feature(c: VfioPciCoreDevice, flags: number, _arg: bigint, argsz: number, _task: Process): number {
  const f = flags & VFIO_DEVICE_FEATURE_MASK;
  switch (f) {
    case VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY:
    case VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP:
      if (vfioCheckFeature(flags, argsz, VFIO_DEVICE_FEATURE_SET, f === VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY ? 0 : 8, 'LOW_POWER_ENTRY') === 0) return 0;
      if (c.pmEngaged) fail(Errno.EINVAL, `${c.pdev.bdf} is already in low power`);
      c.pmEngaged = true;
      return 0;
    case VFIO_DEVICE_FEATURE_LOW_POWER_EXIT:
      if (vfioCheckFeature(flags, argsz, VFIO_DEVICE_FEATURE_SET, 0, 'LOW_POWER_EXIT') === 0) return 0;
      c.pmEngaged = false;
      return 0;
    case VFIO_DEVICE_FEATURE_PCI_VF_TOKEN:
      return fail(Errno.ENOTTY, `${c.pdev.bdf} is not an SR-IOV physical function: no VF token`);
    default:
      return fail(Errno.ENOTTY, `vfio-pci has no device feature ${f}`);
  }
}

/** vfio_pci_rw: by region. */
function rw(c: VfioPciCoreDevice, task: Process, buf: bigint, count: number, pos: number, write: boolean): number {
  const index = offsetToIndex(pos);
  const off = pos % 2 ** VFIO_PCI_OFFSET_SHIFT;
  if (index >= VFIO_PCI_NUM_REGIONS) fail(Errno.EINVAL, `offset 0x${pos.toString(16)} is in region ${index}; there are ${VFIO_PCI_NUM_REGIONS}`);
  if (index === VFIO_PCI_CONFIG_REGION_INDEX) {
    const data = write ? copyFromUser(task, buf, count, 'reading the config write') : new Uint8Array(count);
    const n = c.config.rw(off, data, write);
    if (!write) copyToUser(task, buf, data, 'writing the config read');
    return n;
  }
  if (index === VFIO_PCI_ROM_REGION_INDEX) {
    if (write) fail(Errno.EINVAL, 'the ROM region is read-only');
    fail(Errno.EINVAL, `${c.pdev.bdf} has no expansion ROM`);
  }
  if (index === VFIO_PCI_VGA_REGION_INDEX) fail(Errno.EINVAL, `${c.pdev.bdf} is not a VGA device`);
  return barRw(c, task, buf, count, index, off & OFFSET_MASK, write);
}

/** vfio_pci_bar_rw + vfio_pci_core_do_io_rw. */
function barRw(c: VfioPciCoreDevice, task: Process, buf: bigint, count: number, bar: number, pos: number, write: boolean): number {
  const end = c.barSize(bar);
  if (!end) fail(Errno.EINVAL, `BAR${bar} of ${c.pdev.bdf} is not implemented`);
  if (pos >= end) fail(Errno.EINVAL, `offset 0x${pos.toString(16)} is past the end of BAR${bar} (0x${end.toString(16)} bytes)`);
  const n = Math.min(count, end - pos);
  const data = write ? copyFromUser(task, buf, n, `reading the BAR${bar} write`) : new Uint8Array(n);
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const isMem = c.pdev.cfg.barSpecs[bar]?.type !== 'io';
  let done = 0;
  while (done < n) {
    const off = pos + done;
    const left = n - done;
    const w: BarAccessSize = left >= 8 && off % 8 === 0 ? 8 : left >= 4 && off % 4 === 0 ? 4 : left >= 2 && off % 2 === 0 ? 2 : 1;
    // __vfio_pci_memory_enabled: the user's memory enable, read back from the hardware.
    if (isMem && !(c.pdev.configRead(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY)) {
      if (done) break;
      fail(Errno.EIO, `BAR${bar} access with memory decoding off in COMMAND`);
    }
    if (write) {
      const v = w === 8 ? dv.getBigUint64(done, true) : BigInt(w === 4 ? dv.getUint32(done, true) : w === 2 ? dv.getUint16(done, true) : dv.getUint8(done));
      c.pdev.barWrite(bar, off, w, v);
    } else {
      const v = c.pdev.barRead(bar, off, w);
      if (w === 8) dv.setBigUint64(done, v, true);
      else if (w === 4) dv.setUint32(done, Number(v), true);
      else if (w === 2) dv.setUint16(done, Number(v), true);
      else dv.setUint8(done, Number(v));
    }
    done += w;
  }
  if (!write) copyToUser(task, buf, data.subarray(0, done), `writing the BAR${bar} read`);
  return done;
}

