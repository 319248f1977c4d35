/**
 * vfio-pci (vfio_pci_core.c): a PCI function given to user space.
 *
 * The device file is cut into regions at fixed offsets, index << 40: BAR0..BAR5, the expansion
 * ROM, config space, VGA. GET_REGION_INFO tells each region's size, offset and what can be done
 * with it; pread/pwrite and IOEVENTFD are in vfio_pci_rdwr.ts, config space virtualization in
 * vfio_pci_config.ts, interrupts in vfio_pci_intrs.ts. A memory BAR can be mapped (MAP_SHARED,
 * page ranges inside it): its accesses reach the function while the user's memory decoding is
 * on and are SIGBUS while it is off.
 *
 * open_device (first open) enables the function and takes the virtual config copy; close_device
 * (last close) drops the ioeventfds, turns interrupts off, bus mastering off, and restores the
 * function.
 */

import { Errno, fail } from '../../../errno.js';
import type { PciDevice } from '../../../hw/pci.js';
import { PCI_COMMAND, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY } from '../../../hw/pci_config.js';
import { type EventfdCtx, eventfdCtxFdget } from '../../eventfd.js';
import type { Process } from '../../process.js';
import type { IoMapping, Vma } from '../../vfs.js';
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
  vfio_device_low_power_entry_with_wakeup,
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
import { indexToOffset, type PciIoeventfd, releaseIoeventfd, VFIO_PCI_OFFSET_SHIFT, vfioPciIoeventfd, vfioPciRw } from './vfio_pci_rdwr.js';

/** vfio_pci_core_device: the vfio-pci state of one function. */
export class VfioPciCoreDevice {
  readonly pdev: PciDevice;
  readonly config: VfioPciConfig;
  readonly irqs: VfioPciIrqs;
  vdev!: VfioDevice;
  /** A function-level reset is available (reset_works). */
  readonly resetWorks: boolean;
  /** Runtime PM engaged by the user (LOW_POWER_ENTRY): mappings fault with SIGBUS. */
  pmEngaged = false;
  /** LOW_POWER_ENTRY_WITH_WAKEUP's eventfd: the next access to the device signals it and leaves low power. */
  pmWake: EventfdCtx | null = null;
  /** IOEVENTFDs (vfio_pci_rdwr.ts). */
  readonly ioeventfds: PciIoeventfd[] = [];

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

  /**
   * __vfio_pci_memory_enabled: the user's memory decoding (the virtual COMMAND) is on. (It also
   * needs the function above D3hot; no model has a PM capability, so none ever leaves D0.) BAR
   * reads/writes, IOEVENTFD writes and mmap faults need it.
   */
  memoryEnabled(): boolean {
    return (this.config.vconfig[PCI_COMMAND]! & PCI_COMMAND_MEMORY) !== 0;
  }

  /** __vfio_pci_runtime_pm_exit. */
  pmExit(): void {
    if (!this.pmEngaged) return;
    this.pmEngaged = false;
    this.pmWake?.put();
    this.pmWake = null;
  }

  /**
   * The runtime-PM get every ioctl and read/write makes (vfio_device_pm_runtime_get): resuming
   * a device that entered low power with a wakeup eventfd signals it and leaves low power.
   */
  resume(): void {
    if (!this.pmWake) return;
    this.pmWake.signal();
    this.pmExit();
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
    ioctl: (v, cmd, arg, task) => ioctl(resumed(core(v)), cmd, arg, task),
    read: (v, task, buf, count, pos) => vfioPciRw(resumed(core(v)), task, buf, count, pos, false),
    write: (v, task, buf, count, pos) => vfioPciRw(resumed(core(v)), task, buf, count, pos, true),
    mmap: (v, _task, vma) => mmap(core(v), vma),
    deviceFeature: (v, flags, arg, argsz, task) => feature(resumed(core(v)), flags, arg, argsz, task),
    match: (v, name) => match(core(v), name),
  };
}

const resumed = (c: VfioPciCoreDevice): VfioPciCoreDevice => {
  c.resume();
  return c;
};

const VF_TOKEN_ARG = 'vf_token=';
const UUID_STRING_LEN = 36;
const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}/;

/**
 * vfio_pci_core_match: the function's name, optionally followed by spaces and options; the only
 * option is a VF token, which only SR-IOV functions take (none of ours is one).
 */
function match(c: VfioPciCoreDevice, buf: string): boolean {
  const name = c.pdev.bdf;
  if (!buf.startsWith(name)) return false;
  let rest = buf.slice(name.length);
  if (!rest) return true;
  if (rest[0] !== ' ') return false;
  let vfToken = false;
  while (rest) {
    if (rest[0] === ' ') {
      rest = rest.slice(1);
      continue;
    }
    if (vfToken || !rest.startsWith(VF_TOKEN_ARG)) fail(Errno.EINVAL, `"${buf}": unknown or repeated option at "${rest}"`);
    rest = rest.slice(VF_TOKEN_ARG.length);
    if (rest.length < UUID_STRING_LEN || !UUID_RE.test(rest)) fail(Errno.EINVAL, `"${buf}": the vf_token is not a UUID`);
    vfToken = true;
    rest = rest.slice(UUID_STRING_LEN);
  }
  // vfio_pci_validate_vf_token: neither a PF with VFs nor a VF.
  if (vfToken) fail(Errno.EINVAL, `${name} is neither an SR-IOV PF nor a VF: a vf_token is refused`);
  return true;
}

/** vfio_pci_core_enable: the function in D0 with its decoders on, and a fresh virtual config. */
function openDevice(c: VfioPciCoreDevice): void {
  const cmd = c.pdev.configRead(PCI_COMMAND, 2);
  if (c.pdev.cfg.barSpecs.some((b) => b && b.type !== 'io')) c.pdev.configWrite(PCI_COMMAND, 2, cmd | PCI_COMMAND_MEMORY);
  c.config.init();
}

/** vfio_pci_core_disable: interrupts off, bus mastering off, the function reset when it can be. */
function closeDevice(c: VfioPciCoreDevice): void {
  for (const e of c.ioeventfds.splice(0)) releaseIoeventfd(e);
  c.irqs.disableAll();
  const cmd = c.pdev.configRead(PCI_COMMAND, 2);
  c.pdev.configWrite(PCI_COMMAND, 2, cmd & ~PCI_COMMAND_MASTER);
  if (c.resetWorks) c.pdev.flr();
  c.pmExit();
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
      return vfioPciIoeventfd(c, arg, task);
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
  // The whole struct (cap_offset and pad zero: nothing reported) as far as argsz reaches.
  const out = vfio_device_info.encode({ ...info, cap_offset: 0, pad: 0 });
  copyToUser(task, arg, out.subarray(0, Math.min(info.argsz, out.length)), 'writing vfio_device_info');
  return 0;
}

function getRegionInfo(c: VfioPciCoreDevice, arg: bigint, task: Process): number {
  const minsz = vfio_region_info.offsetEnd('offset');
  const info = vfio_region_info.decode(copyFromUser(task, arg, minsz, 'reading vfio_region_info'));
  if (info.argsz < minsz) fail(Errno.EINVAL, `vfio_region_info.argsz ${info.argsz} is below ${minsz}`);
  const index = info.index;
  info.offset = indexToOffset(index);
  // No region has capabilities: cap_offset stays what the user passed (the kernel copied it in).
  info.flags = 0;
  info.size = 0n;
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
  // The group fds array is for group-opened devices; a cdev-opened one gives none (its iommufd decides).
  if ((hdr.count !== 0) === c.vdev.cdevOpened) {
    fail(Errno.EINVAL, c.vdev.cdevOpened ? `vfio_pci_hot_reset.count ${hdr.count}: a cdev-opened device passes no group fds` : 'vfio_pci_hot_reset.count 0: a group-opened device must pass the group fds');
  }
  return fail(Errno.ENODEV, `${c.pdev.bdf} is on the root bus: neither a slot nor a bus reset can reach it`);
}

/** vfio_pci_core_ioctl_feature: runtime PM and the VF token. */
function feature(c: VfioPciCoreDevice, flags: number, arg: bigint, argsz: number, task: Process): number {
  const f = flags & VFIO_DEVICE_FEATURE_MASK;
  switch (f) {
    case VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY:
      if (vfioCheckFeature(flags, argsz, VFIO_DEVICE_FEATURE_SET, 0, 'LOW_POWER_ENTRY') === 0) return 0;
      pmEntry(c, null);
      return 0;
    case VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP: {
      const size = vfio_device_low_power_entry_with_wakeup.size;
      if (vfioCheckFeature(flags, argsz, VFIO_DEVICE_FEATURE_SET, size, 'LOW_POWER_ENTRY_WITH_WAKEUP') === 0) return 0;
      const entry = vfio_device_low_power_entry_with_wakeup.decode(copyFromUser(task, arg, size, 'reading vfio_device_low_power_entry_with_wakeup'));
      if (entry.wakeup_eventfd < 0) fail(Errno.EINVAL, `wakeup_eventfd ${entry.wakeup_eventfd} is negative`);
      const ctx = eventfdCtxFdget(task, entry.wakeup_eventfd);
      try {
        pmEntry(c, ctx);
      } catch (e) {
        ctx.put();
        throw e;
      }
      return 0;
    }
    case VFIO_DEVICE_FEATURE_LOW_POWER_EXIT:
      if (vfioCheckFeature(flags, argsz, VFIO_DEVICE_FEATURE_SET, 0, 'LOW_POWER_EXIT') === 0) return 0;
      c.pmExit();
      return 0;
    case VFIO_DEVICE_FEATURE_PCI_VF_TOKEN:
      return fail(Errno.ENOTTY, `${c.pdev.bdf} is not an SR-IOV physical function: no VF token`);
    default:
      return fail(Errno.ENOTTY, `vfio-pci has no device feature ${f}`);
  }
}

/** vfio_pci_runtime_pm_entry. */
function pmEntry(c: VfioPciCoreDevice, wake: EventfdCtx | null): void {
  if (c.pmEngaged) fail(Errno.EINVAL, `${c.pdev.bdf} is already in low power`);
  c.pmEngaged = true;
  c.pmWake = wake;
}

const PAGE_SHIFT = 12n;
const PAGE_SIZE = 1n << PAGE_SHIFT;

/**
 * vfio_pci_core_mmap: a shared mapping of a page range of a memory BAR. Its accesses go to the
 * function as long as the user's memory decoding is on; with it off (or the function powered
 * down) they are SIGBUS (vfio_pci_mmap_fault after the zap).
 */
function mmap(c: VfioPciCoreDevice, vma: Vma): IoMapping {
  const index = Number(vma.pgoff >> (BigInt(VFIO_PCI_OFFSET_SHIFT) - PAGE_SHIFT));
  if (index >= VFIO_PCI_NUM_REGIONS) fail(Errno.EINVAL, `mmap of region ${index}: there are ${VFIO_PCI_NUM_REGIONS}`);
  if (!vma.shared) fail(Errno.EINVAL, 'vfio-pci maps only MAP_SHARED, on a file open for writing');
  if (index >= VFIO_PCI_ROM_REGION_INDEX) fail(Errno.EINVAL, `region ${index} (ROM, config, VGA) cannot be mapped`);
  if (!c.barMmapable(index)) fail(Errno.EINVAL, `BAR${index} of ${c.pdev.bdf} is not a memory BAR that can be mapped`);
  const physLen = (BigInt(c.barSize(index)) + PAGE_SIZE - 1n) & ~(PAGE_SIZE - 1n);
  const start = (vma.pgoff & ((1n << (BigInt(VFIO_PCI_OFFSET_SHIFT) - PAGE_SHIFT)) - 1n)) << PAGE_SHIFT;
  if (start + vma.length > physLen) {
    fail(Errno.EINVAL, `[0x${start.toString(16)}, +0x${vma.length.toString(16)}) is beyond BAR${index} (0x${physLen.toString(16)} bytes)`);
  }
  return {
    access: (offset, size, write, value) => {
      // vfio_pci_mmap_huge_fault: no resume here; low power or decoding off is SIGBUS.
      if (c.pmEngaged) fail(Errno.EFAULT, `SIGBUS: BAR${index} is mapped but ${c.pdev.bdf} is in low power (LOW_POWER_ENTRY)`);
      if (!c.memoryEnabled()) fail(Errno.EFAULT, `SIGBUS: BAR${index} is mapped but memory decoding is off (COMMAND.MEMORY clear)`);
      const at = Number(start + offset);
      if (write) {
        c.pdev.barWrite(index, at, size, value);
        return 0n;
      }
      return c.pdev.barRead(index, at, size);
    },
  };
}
