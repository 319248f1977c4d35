/**
 * The VFIO core (vfio_main.c): device registration, the device file, and opening and closing a
 * device through either door.
 *
 * A driver registers a device (`registerGroupDev`): it gets the lowest free index (vfioN), joins
 * the VFIO group of its IOMMU group (made on first use, /dev/vfio/N), and unless it is a noiommu
 * device its cdev /dev/vfio/devices/vfioN appears. The device file is the same for both doors:
 * cdev opens start with access denied until VFIO_DEVICE_BIND_IOMMUFD; group-opened files are
 * granted at once. Until access is granted every ioctl but BIND, and read/write/mmap, is EINVAL.
 *
 * `dfOpen`/`dfClose` keep `openCount` under the device set: the first open binds the IOMMU side
 * (iommufd bind, or the group's container) then calls the driver's open_device; the last close
 * undoes both. A cdev open is refused while anyone else has the device open; the group door may
 * open a device several times. A failed open leaves the count as it was.
 */

import { Errno, fail } from '../../errno.js';
import type { Device } from '../iommu/core.js';
import type { Machine } from '../machine.js';
import type { Process } from '../process.js';
import { copyFromUser } from '../uaccess.js';
import { File, type FileOperations } from '../vfs.js';
import {
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_MASK,
  VFIO_DEVICE_FEATURE_MIGRATION,
  VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
  VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  vfio_device_feature,
} from '../../uapi/vfio.js';
import { vfioDfIoctlAttachPt, vfioDfIoctlBindIommufd, vfioDfIoctlDetachPt, vfioDfUnbindIommufd } from './device_cdev.js';
import { VfioContainerModule } from './container.js';
import { vfioDfGroupClose, VfioGroupModule } from './group.js';
import { VfioPciDriver } from './pci/vfio_pci.js';
import { type Type1Params, type VfioIommuType1, createType1 } from './vfio_iommu_type1.js';
import { VfioDevice, VfioDeviceFile, type VfioDeviceOps, VfioDeviceSet, type VfioGroup } from './vfio.js';

/** The dynamic char majors 6.12 got on the oracle: groups ("vfio") and device cdevs ("vfio-dev"). */
export const VFIO_GROUP_MAJOR = 249;
export const VFIO_CDEV_MAJOR = 248;

export interface VfioOptions {
  /** Who serves /dev/vfio/vfio: the legacy container (default, as on the oracle) or iommufd. */
  container?: 'legacy' | 'iommufd';
  /** vfio.enable_unsafe_noiommu_mode: devices without an IOMMU get noiommu groups. */
  noiommu?: boolean;
  /** vfio_iommu_type1's module parameters (allow_unsafe_interrupts, ...). */
  type1?: Partial<Type1Params>;
}

export class VfioModule {
  readonly machine: Machine;
  /** The module parameter: read when a device registers; writable through sysfs as in the kernel. */
  noiommu: boolean;
  readonly containerKind: 'legacy' | 'iommufd';
  readonly groups: VfioGroupModule;
  readonly containers: VfioContainerModule;
  /** The vfio-pci driver. */
  readonly pci: VfioPciDriver;
  /** The legacy container's type1 backend (vfio_iommu_type1), registered first as on the oracle. */
  readonly type1: VfioIommuType1;
  readonly #devices = new Map<number, VfioDevice>();
  readonly deviceFops: FileOperations;

  constructor(machine: Machine, opts: VfioOptions = {}) {
    this.machine = machine;
    this.noiommu = opts.noiommu ?? false;
    this.containerKind = opts.container ?? 'legacy';
    this.groups = new VfioGroupModule(this);
    this.containers = new VfioContainerModule(this);
    this.type1 = createType1(opts.type1);
    this.containers.registerDriver(this.type1);
    this.pci = new VfioPciDriver(this);
    this.deviceFops = {
      name: 'vfio-device',
      seekable: true,
      ioctl: (file, cmd, arg, task) => this.#ioctl(file.priv as VfioDeviceFile, cmd, arg, task),
      read: (file, task, buf, count) => this.#rw(file, task, buf, count, false),
      write: (file, task, buf, count) => this.#rw(file, task, buf, count, true),
      mmap: (file, task, vma) => {
        const df = file.priv as VfioDeviceFile;
        if (!df.accessGranted) fail(Errno.EINVAL, `${df.device.name}: not bound to an iommufd yet (VFIO_DEVICE_BIND_IOMMUFD)`);
        if (!df.device.ops.mmap) fail(Errno.EINVAL, `${df.device.ops.name} devices cannot be mmapped`);
        return df.device.ops.mmap(df.device, task, vma);
      },
      release: (file) => this.#release(file.priv as VfioDeviceFile),
    };
  }

  devices(): VfioDevice[] {
    return [...this.#devices.values()].sort((a, b) => a.index - b.index);
  }

  deviceFor(dev: Device): VfioDevice | undefined {
    return this.devices().find((v) => v.dev === dev);
  }

  /**
   * vfio_register_group_dev: index, group, device set (`setKey`: what resets together; the
   * device itself by default), cdev node.
   */
  registerGroupDev(dev: Device, ops: VfioDeviceOps, setKey?: unknown): VfioDevice {
    let index = 0;
    while (this.#devices.has(index)) index++;
    const vdev = new VfioDevice(dev, ops, index);
    vdev.group = this.groups.findOrAlloc(dev);
    const key = setKey ?? vdev;
    vdev.devSet = this.devices().find((d) => d.devSet.key === key)?.devSet ?? new VfioDeviceSet(key);
    vdev.devSet.devices.add(vdev);
    vdev.group.devices.push(vdev);
    this.#devices.set(index, vdev);
    if (vdev.hasCdev) {
      this.machine.devices.register(`/dev/vfio/devices/${vdev.name}`, {
        major: VFIO_CDEV_MAJOR,
        minor: index,
        mode: 0o600,
        open: (task, flags, path) => this.#cdevOpen(vdev, task, flags, path),
      });
    }
    return vdev;
  }

  /** vfio_unregister_group_dev (only for a device nobody has open). */
  unregisterGroupDev(vdev: VfioDevice): void {
    if (vdev.registrations !== 1) fail(Errno.EBUSY, `${vdev.name} is still open`);
    if (vdev.hasCdev) this.machine.devices.unregister(`/dev/vfio/devices/${vdev.name}`);
    vdev.devSet.devices.delete(vdev);
    vdev.group.devices.splice(vdev.group.devices.indexOf(vdev), 1);
    this.groups.put(vdev.group);
    this.#devices.delete(vdev.index);
  }

  /** vfio_device_fops_cdev_open. */
  #cdevOpen(vdev: VfioDevice, _task: Process, flags: number, path: string): File {
    vdev.registrations++;
    return new File(this.deviceFops, path, flags, new VfioDeviceFile(vdev, null));
  }

  /** A group-opened device file (vfio_device_open_file's file half). */
  groupDeviceFile(df: VfioDeviceFile, flags: number): File {
    return new File(this.deviceFops, 'anon_inode:[vfio-device]', flags, df);
  }

  #release(df: VfioDeviceFile): void {
    if (df.group) vfioDfGroupClose(this, df);
    else vfioDfUnbindIommufd(this, df);
    df.device.registrations--;
  }

  /** vfio_df_open. */
  dfOpen(df: VfioDeviceFile, task: Process): void {
    const device = df.device;
    if (device.openCount !== 0 && !df.group) fail(Errno.EINVAL, `${device.name} is already open through another file; the cdev allows one opener`);
    device.openCount++;
    if (device.openCount === 1) {
      try {
        this.#firstOpen(df, task);
      } catch (e) {
        device.openCount--;
        throw e;
      }
    }
  }

  /** vfio_df_close. */
  dfClose(df: VfioDeviceFile): void {
    const device = df.device;
    if (device.openCount === 0) throw new Error(`${device.name}: close of a device nobody opened`);
    if (device.openCount === 1) this.#lastClose(df);
    device.openCount--;
  }

  /** vfio_df_device_first_open. */
  #firstOpen(df: VfioDeviceFile, task: Process): void {
    const device = df.device;
    const viaIommufd = df.iommufd !== null;
    if (viaIommufd) {
      if (device.group.type !== 'noiommu') df.devid = device.ops.bindIommufd(device, df.iommufd!, task);
    } else {
      this.groups.useIommu(device, task);
    }
    try {
      device.ops.openDevice?.(device, task);
    } catch (e) {
      if (viaIommufd) this.#iommufdUnbind(df);
      else this.groups.unuseIommu(device);
      throw e;
    }
  }

  /** vfio_df_device_last_close. */
  #lastClose(df: VfioDeviceFile): void {
    const device = df.device;
    device.ops.closeDevice?.(device);
    if (df.iommufd) this.#iommufdUnbind(df);
    else this.groups.unuseIommu(device);
  }

  #iommufdUnbind(df: VfioDeviceFile): void {
    if (df.device.group.type === 'noiommu') return;
    df.device.ops.unbindIommufd(df.device);
  }

  /** vfio_device_fops_unl_ioctl. */
  #ioctl(df: VfioDeviceFile, cmd: number, arg: bigint, task: Process): number {
    const device = df.device;
    if (cmd === VFIO_DEVICE_BIND_IOMMUFD) return vfioDfIoctlBindIommufd(this, df, arg, task);
    if (!df.accessGranted) fail(Errno.EINVAL, `${device.name}: not bound to an iommufd yet (VFIO_DEVICE_BIND_IOMMUFD first)`);
    if (!df.group) {
      if (cmd === VFIO_DEVICE_ATTACH_IOMMUFD_PT) return vfioDfIoctlAttachPt(df, arg, task);
      if (cmd === VFIO_DEVICE_DETACH_IOMMUFD_PT) return vfioDfIoctlDetachPt(df, arg, task);
    }
    if (cmd === VFIO_DEVICE_FEATURE) return this.#feature(device, arg, task);
    if (!device.ops.ioctl) fail(Errno.EINVAL, `${device.ops.name} devices have no ioctls`);
    return device.ops.ioctl(device, cmd, arg, task);
  }

  #rw(file: File, task: Process, buf: bigint, count: number, write: boolean): number {
    const df = file.priv as VfioDeviceFile;
    if (!df.accessGranted) fail(Errno.EINVAL, `${df.device.name}: not bound to an iommufd yet (VFIO_DEVICE_BIND_IOMMUFD first)`);
    const ops = df.device.ops;
    const n = write ? ops.write?.(df.device, task, buf, count, file.pos) : ops.read?.(df.device, task, buf, count, file.pos);
    if (n === undefined) return fail(Errno.EINVAL, `${ops.name} devices cannot be ${write ? 'written' : 'read'}`);
    file.pos += n;
    return n;
  }

  /** vfio_ioctl_device_feature: the core's features, then the driver's. */
  #feature(device: VfioDevice, arg: bigint, task: Process): number {
    const minsz = vfio_device_feature.offsetEnd('flags');
    const f = vfio_device_feature.decode(copyFromUser(task, arg, minsz, 'reading vfio_device_feature'));
    if (f.argsz < minsz) fail(Errno.EINVAL, `vfio_device_feature.argsz ${f.argsz} is below ${minsz}`);
    const known = VFIO_DEVICE_FEATURE_MASK | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_PROBE;
    if (f.flags & ~known) fail(Errno.EINVAL, `vfio_device_feature.flags has unknown bits 0x${((f.flags & ~known) >>> 0).toString(16)}`);
    if (!(f.flags & VFIO_DEVICE_FEATURE_PROBE) && f.flags & VFIO_DEVICE_FEATURE_SET && f.flags & VFIO_DEVICE_FEATURE_GET) {
      fail(Errno.EINVAL, 'vfio_device_feature: GET and SET together need PROBE');
    }
    const feature = f.flags & VFIO_DEVICE_FEATURE_MASK;
    const data = arg + BigInt(minsz);
    const argsz = f.argsz - minsz;
    switch (feature) {
      case VFIO_DEVICE_FEATURE_MIGRATION:
      case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE:
      case VFIO_DEVICE_FEATURE_MIG_DATA_SIZE:
        return fail(Errno.ENOTTY, `${device.name}: its driver does not support migration (feature ${feature})`);
      case VFIO_DEVICE_FEATURE_DMA_LOGGING_START:
      case VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP:
      case VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT:
        return fail(Errno.ENOTTY, `${device.name}: its driver does not log DMA (feature ${feature})`);
      default:
        if (!device.ops.deviceFeature) fail(Errno.ENOTTY, `${device.ops.name} devices have no feature ${feature}`);
        return device.ops.deviceFeature(device, f.flags, data, argsz, task);
    }
  }

  /** The groups and their state, for invariants. */
  allGroups(): VfioGroup[] {
    return this.groups.all();
  }
}

/** vfio_check_feature: 0 for a successful PROBE, 1 to go on with GET/SET. */
export function vfioCheckFeature(flags: number, argsz: number, supported: number, minsz: number, what: string): 0 | 1 {
  if (flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET) & ~supported) fail(Errno.EINVAL, `${what} does not support ${flags & VFIO_DEVICE_FEATURE_GET ? 'GET' : 'SET'}`);
  if (flags & VFIO_DEVICE_FEATURE_PROBE) return 0;
  if (!(flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET))) fail(Errno.EINVAL, `${what}: without PROBE one of GET or SET is needed`);
  if (argsz < minsz) fail(Errno.EINVAL, `${what}: ${argsz} bytes of data, ${minsz} needed`);
  return 1;
}
