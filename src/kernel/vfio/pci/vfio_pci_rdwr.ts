/**
 * vfio-pci's data paths (vfio_pci_rdwr.c): pread/pwrite of the device file by region, and
 * IOEVENTFD, the register write the kernel makes whenever an eventfd is written.
 *
 * Regions sit at index << 40 in the file. Config space goes through vfio-pci's virtualization
 * (vfio_pci_config.ts). A BAR access is cut into the widest naturally aligned pieces that fit
 * (8, 4, 2, 1 bytes — exactly what the device model sees); each piece of a memory BAR first checks
 * that the user's memory decoding is on (the virtual COMMAND, and the function not powered
 * down), and the whole call is EIO if one is not. The ROM region of a function without a ROM,
 * VGA and regions past the last are EINVAL.
 *
 * IOEVENTFD (vfio_pci_ioeventfd): an (offset, size, data) triple in a BAR and an eventfd; each
 * write of the eventfd writes `data` there (when memory decoding is on), so a VMM can turn a
 * guest doorbell into a register write without a round trip. The same triple twice is EEXIST,
 * fd -1 removes it, at most 1000 per device; closing the device drops them all.
 */

import { Errno, fail } from '../../../errno.js';
import type { BarAccessSize } from '../../../hw/pci_model.js';
import { type EventfdCtx, eventfdCtxFdget } from '../../eventfd.js';
import type { Process } from '../../process.js';
import { copyFromUser, copyToUser } from '../../uaccess.js';
import {
  VFIO_DEVICE_IOEVENTFD_SIZE_MASK,
  VFIO_PCI_BAR5_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_NUM_REGIONS,
  VFIO_PCI_ROM_REGION_INDEX,
  VFIO_PCI_VGA_REGION_INDEX,
  vfio_device_ioeventfd,
} from '../../../uapi/vfio.js';
import type { VfioPciCoreDevice } from './vfio_pci_core.js';

export const VFIO_PCI_OFFSET_SHIFT = 40;
const OFFSET_SPAN = 2 ** VFIO_PCI_OFFSET_SHIFT;

export const offsetToIndex = (pos: number): number => Math.floor(pos / OFFSET_SPAN);
export const indexToOffset = (index: number): bigint => BigInt(index) << BigInt(VFIO_PCI_OFFSET_SHIFT);

/** VFIO_PCI_IOEVENTFD_MAX. */
const IOEVENTFD_MAX = 1000;

/** One registered IOEVENTFD. */
export interface PciIoeventfd {
  readonly bar: number;
  readonly pos: number;
  readonly count: BarAccessSize;
  readonly data: bigint;
  readonly trigger: EventfdCtx;
  readonly unwatch: () => void;
}

/** vfio_pci_rw: by region. */
export function vfioPciRw(c: VfioPciCoreDevice, task: Process, buf: bigint, count: number, pos: number, write: boolean): number {
  const index = offsetToIndex(pos);
  const off = pos % OFFSET_SPAN;
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
  return barRw(c, task, buf, count, index, off, write);
}

/** vfio_pci_bar_rw + vfio_pci_core_do_io_rw. */
function barRw(c: VfioPciCoreDevice, task: Process, buf: bigint, count: number, bar: number, pos: number, write: boolean): number {
  const end = c.barSize(bar);
  if (!end) fail(Errno.EINVAL, `BAR${bar} of ${c.pdev.bdf} is not implemented`);
  if (pos >= end) fail(Errno.EINVAL, `offset 0x${pos.toString(16)} is past the end of BAR${bar} (0x${end.toString(16)} bytes)`);
  const n = Math.min(count, end - pos);
  const data = write ? copyFromUser(task, buf, n, `reading the BAR${bar} write`) : new Uint8Array(n);
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const testMem = c.pdev.cfg.barSpecs[bar]?.type !== 'io';
  let done = 0;
  while (done < n) {
    const off = pos + done;
    const left = n - done;
    const w: BarAccessSize = left >= 8 && off % 8 === 0 ? 8 : left >= 4 && off % 4 === 0 ? 4 : left >= 2 && off % 2 === 0 ? 2 : 1;
    // vfio_pci_core_ioread/iowrite: every piece checks memory decoding; a refusal fails the call.
    if (testMem && !c.memoryEnabled()) fail(Errno.EIO, `BAR${bar} access with memory decoding off (COMMAND.MEMORY clear or the function powered down)`);
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
  if (!write) copyToUser(task, buf, data, `writing the BAR${bar} read`);
  return done;
}

/** vfio_pci_ioctl_ioeventfd + vfio_pci_ioeventfd. */
export function vfioPciIoeventfd(c: VfioPciCoreDevice, arg: bigint, task: Process): number {
  const minsz = vfio_device_ioeventfd.offsetEnd('fd');
  const io = vfio_device_ioeventfd.decode(copyFromUser(task, arg, minsz, 'reading vfio_device_ioeventfd'));
  if (io.argsz < minsz) fail(Errno.EINVAL, `vfio_device_ioeventfd.argsz ${io.argsz} is below ${minsz}`);
  if (io.flags & ~VFIO_DEVICE_IOEVENTFD_SIZE_MASK) fail(Errno.EINVAL, `vfio_device_ioeventfd.flags has unknown bits 0x${((io.flags & ~VFIO_DEVICE_IOEVENTFD_SIZE_MASK) >>> 0).toString(16)}`);
  const count = io.flags & VFIO_DEVICE_IOEVENTFD_SIZE_MASK;
  if (![1, 2, 4, 8].includes(count)) fail(Errno.EINVAL, `vfio_device_ioeventfd.flags 0x${count.toString(16)} must name exactly one access size`);
  if (io.fd < -1) fail(Errno.EINVAL, `vfio_device_ioeventfd.fd ${io.fd}: -1 removes, any other negative fd is invalid`);
  const offset = io.offset;
  const bar = Number(offset >> BigInt(VFIO_PCI_OFFSET_SHIFT));
  const pos = Number(offset & BigInt(OFFSET_SPAN - 1));
  if (bar > VFIO_PCI_BAR5_REGION_INDEX) fail(Errno.EINVAL, `region ${bar} is no BAR: ioeventfds write BARs only`);
  if (pos + count > c.barSize(bar)) fail(Errno.EINVAL, `[0x${pos.toString(16)}, +${count}) is outside BAR${bar} (0x${c.barSize(bar).toString(16)} bytes)`);
  const same = c.ioeventfds.findIndex((e) => e.pos === pos && e.bar === bar && e.data === io.data && e.count === count);
  if (same >= 0) {
    if (io.fd !== -1) fail(Errno.EEXIST, `BAR${bar}+0x${pos.toString(16)} already has an ioeventfd writing 0x${io.data.toString(16)}`);
    const [e] = c.ioeventfds.splice(same, 1);
    releaseIoeventfd(e!);
    return 0;
  }
  if (io.fd < 0) fail(Errno.ENODEV, `no ioeventfd at BAR${bar}+0x${pos.toString(16)} with data 0x${io.data.toString(16)} to remove`);
  if (c.ioeventfds.length >= IOEVENTFD_MAX) fail(Errno.ENOSPC, `${c.pdev.bdf} has ${IOEVENTFD_MAX} ioeventfds already`);
  const trigger = eventfdCtxFdget(task, io.fd);
  const testMem = c.pdev.cfg.barSpecs[bar]?.type !== 'io';
  const size = count as BarAccessSize;
  // vfio_pci_ioeventfd_handler: skipped while memory decoding is off.
  const unwatch = trigger.watch(() => {
    if (testMem && !c.memoryEnabled()) return;
    c.pdev.barWrite(bar, pos, size, io.data);
  });
  c.ioeventfds.push({ bar, pos, count: size, data: io.data, trigger, unwatch });
  return 0;
}

export function releaseIoeventfd(e: PciIoeventfd): void {
  e.unwatch();
  e.trigger.put();
}
