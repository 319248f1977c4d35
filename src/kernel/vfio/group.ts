/**
 * VFIO groups (group.c): /dev/vfio/N, the door to a group's devices through a container.
 *
 * A group file is opened by one opener at a time, and not while any device of the group is bound
 * through its cdev. It is given an IOMMU context with SET_CONTAINER — a legacy container fd, or
 * an iommufd (whose compat IOAS is made then) — and hands out device files with GET_DEVICE_FD.
 * The first device open uses the container (or binds the device to the iommufd and attaches it
 * to the compat IOAS). UNSET_CONTAINER is refused while device files are open; closing the group
 * file drops the container.
 */

import { Errno, fail } from '../../errno.js';
import type { Device } from '../iommu/core.js';
import { compatIoasCreate, compatIoasGetId, compatSetNoIommu } from '../iommufd/vfio_compat.js';
import { CAP_SYS_RAWIO, type Process } from '../process.js';
import { copyFromUser, copyToUser, getUser32 } from '../uaccess.js';
import { File, type FileOperations, O_CLOEXEC, O_RDWR } from '../vfs.js';
import {
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
  vfio_group_status,
} from '../../uapi/vfio.js';
import { type VfioDevice, VfioDeviceFile, VfioGroup } from './vfio.js';
import { VFIO_GROUP_MAJOR, type VfioModule } from './vfio_main.js';

const PAGE_SIZE = 4096;

export class VfioGroupModule {
  readonly #vfio: VfioModule;
  readonly #groups: VfioGroup[] = [];
  readonly fops: FileOperations;

  constructor(vfio: VfioModule) {
    this.#vfio = vfio;
    this.fops = {
      name: 'vfio-group',
      ioctl: (file, cmd, arg, task) => this.#ioctl(file.priv as VfioGroup, cmd, arg, task),
      release: (file) => this.#release(file.priv as VfioGroup),
    };
  }

  all(): VfioGroup[] {
    return [...this.#groups];
  }

  /** vfio_group_find_or_alloc / vfio_noiommu_group_alloc. */
  findOrAlloc(dev: Device): VfioGroup {
    const iommu = this.#vfio.machine.iommu;
    let type: 'iommu' | 'noiommu' = 'iommu';
    let ig = dev.group;
    if (!ig) {
      if (!this.#vfio.noiommu) fail(Errno.EINVAL, `${dev.name} has no IOMMU group and vfio noiommu mode is off`);
      ig = iommu.allocGroup();
      ig.name = 'vfio-noiommu';
      ig.devices.push(dev);
      dev.group = ig;
      type = 'noiommu';
    } else {
      const existing = this.#groups.find((g) => g.iommuGroup === ig);
      if (existing) return existing;
    }
    let minor = 0;
    while (this.#groups.some((g) => g.minor === minor)) minor++;
    const group = new VfioGroup(ig, type, minor);
    this.#groups.push(group);
    this.#vfio.machine.devices.register(group.path, {
      major: VFIO_GROUP_MAJOR,
      minor,
      mode: 0o600,
      open: (task, flags, path) => this.#open(group, task, flags, path),
    });
    return group;
  }

  /** The group's last device went away. */
  put(group: VfioGroup): void {
    if (group.devices.length) return;
    this.#vfio.machine.devices.unregister(group.path);
    this.#groups.splice(this.#groups.indexOf(group), 1);
    if (group.type === 'noiommu') {
      const ig = group.iommuGroup;
      for (const d of [...ig.devices]) ig.removeDevice(d);
      this.#vfio.machine.iommu.releaseGroup(ig);
    }
  }

  /** vfio_group_fops_open. */
  #open(group: VfioGroup, task: Process, flags: number, path: string): File {
    if (!group.devices.length) fail(Errno.ENODEV, `${path}: the group has no VFIO devices`);
    if (group.type === 'noiommu' && !task.capable(CAP_SYS_RAWIO)) fail(Errno.EPERM, `${path}: noiommu groups need CAP_SYS_RAWIO`);
    if (group.cdevDeviceOpenCnt) fail(Errno.EBUSY, `${path}: a device of the group is bound through its cdev (/dev/vfio/devices/...)`);
    if (group.openedFile) fail(Errno.EBUSY, `${path}: the group is already open (one opener at a time)`);
    const file = new File(this.fops, path, flags, group);
    group.openedFile = file;
    return file;
  }

  /** vfio_group_fops_release. */
  #release(group: VfioGroup): void {
    if (group.container) this.#vfio.containers.detachGroup(group);
    if (group.iommufd) {
      group.iommufd.file.put();
      group.iommufd = null;
    }
    group.openedFile = null;
  }

  /** vfio_device_block_group: a cdev bind keeps the group file closed. */
  blockGroup(device: VfioDevice): void {
    const group = device.group;
    if (group.openedFile) fail(Errno.EBUSY, `${device.name}: its group ${group.path} is open; a device is used through the group or the cdev, not both`);
    group.cdevDeviceOpenCnt++;
  }

  unblockGroup(device: VfioDevice): void {
    device.group.cdevDeviceOpenCnt--;
  }

  /** vfio_device_group_use_iommu: the first open of a device through a legacy container. */
  useIommu(device: VfioDevice, task: Process): void {
    const group = device.group;
    if (!group.container) throw new Error(`${device.name}: use of the container without one`);
    this.#vfio.containers.useContainer(group, task);
    this.#vfio.containers.registerDevice(device);
  }

  unuseIommu(device: VfioDevice): void {
    const group = device.group;
    if (!group.container) throw new Error(`${device.name}: unuse of the container without one`);
    this.#vfio.containers.unregisterDevice(device);
    this.#vfio.containers.unuseContainer(group);
  }

  #ioctl(group: VfioGroup, cmd: number, arg: bigint, task: Process): number {
    switch (cmd) {
      case VFIO_GROUP_GET_DEVICE_FD:
        return this.#getDeviceFd(group, arg, task);
      case VFIO_GROUP_GET_STATUS:
        return this.#getStatus(group, arg, task);
      case VFIO_GROUP_SET_CONTAINER:
        return this.#setContainer(group, arg, task);
      case VFIO_GROUP_UNSET_CONTAINER:
        return this.#unsetContainer(group);
      default:
        return fail(Errno.ENOTTY, `0x${cmd.toString(16)} is not a VFIO group ioctl`);
    }
  }

  /** vfio_group_ioctl_get_status. */
  #getStatus(group: VfioGroup, arg: bigint, task: Process): number {
    const minsz = vfio_group_status.offsetEnd('flags');
    const st = vfio_group_status.decode(copyFromUser(task, arg, minsz, 'reading vfio_group_status'));
    if (st.argsz < minsz) fail(Errno.EINVAL, `vfio_group_status.argsz ${st.argsz} is below ${minsz}`);
    st.flags = 0;
    if (group.hasIommu) st.flags |= VFIO_GROUP_FLAGS_CONTAINER_SET | VFIO_GROUP_FLAGS_VIABLE;
    else if (!group.iommuGroup.ownerCnt) st.flags |= VFIO_GROUP_FLAGS_VIABLE;
    copyToUser(task, arg, vfio_group_status.encode(st), 'writing vfio_group_status');
    return 0;
  }

  /** vfio_group_ioctl_set_container: a legacy container, or an iommufd. */
  #setContainer(group: VfioGroup, arg: bigint, task: Process): number {
    const fd = getUser32(task, arg, 'reading the container fd') | 0;
    const f = task.fget(fd);
    if (group.hasIommu) fail(Errno.EINVAL, `${group.path} already has a container`);
    const container = this.#vfio.containers.fromFile(f);
    if (container) {
      this.#vfio.containers.attachGroup(container, group, task);
      return 0;
    }
    const ictx = this.#vfio.machine.iommufd.ctxFromFile(f);
    if (group.type === 'noiommu') compatSetNoIommu(ictx);
    else compatIoasCreate(ictx, task);
    ictx.file.get();
    group.iommufd = ictx;
    return 0;
  }

  /** vfio_group_ioctl_unset_container. */
  #unsetContainer(group: VfioGroup): number {
    if (!group.hasIommu) fail(Errno.EINVAL, `${group.path} has no container to unset`);
    if (group.container) {
      if (group.containerUsers !== 1) fail(Errno.EBUSY, `${group.path}: ${group.containerUsers - 1} device file(s) still use the container`);
      this.#vfio.containers.detachGroup(group);
    }
    if (group.iommufd) {
      group.iommufd.file.put();
      group.iommufd = null;
    }
    return 0;
  }

  /** vfio_group_ioctl_get_device_fd. */
  #getDeviceFd(group: VfioGroup, arg: bigint, task: Process): number {
    const name = strndupUser(task, arg, PAGE_SIZE);
    // vfio_device_get_from_name: the first device that matches; a driver's refusal ends the search.
    const device = group.devices.find((d) => (d.ops.match ? d.ops.match(d, name) : d.dev.name === name));
    if (!device) fail(Errno.ENODEV, `${group.path} has no device named "${name}"`);
    const fdno = task.reserveFd();
    try {
      device.registrations++;
      const df = new VfioDeviceFile(device, group);
      try {
        this.#dfGroupOpen(df, task);
      } catch (e) {
        device.registrations--;
        throw e;
      }
      task.installFdAt(fdno, this.#vfio.groupDeviceFile(df, O_RDWR | O_CLOEXEC));
      return fdno;
    } catch (e) {
      task.unreserveFd(fdno);
      throw e;
    }
  }

  /** vfio_df_group_open. */
  #dfGroupOpen(df: VfioDeviceFile, task: Process): void {
    const device = df.device;
    const group = device.group;
    if (!group.hasIommu) fail(Errno.EINVAL, `${group.path} has no container: VFIO_GROUP_SET_CONTAINER first`);
    df.iommufd = group.iommufd;
    try {
      if (df.iommufd && group.type === 'noiommu' && device.openCount === 0) {
        if (!task.capable(CAP_SYS_RAWIO)) fail(Errno.EPERM, `${device.name}: noiommu devices need CAP_SYS_RAWIO`);
        if (df.iommufd.vfioIoas) fail(Errno.EPERM, `${device.name}: a noiommu device cannot use an iommufd that has a compat IOAS`);
      }
      this.#vfio.dfOpen(df, task);
      if (df.iommufd && device.openCount === 1 && group.type !== 'noiommu') {
        try {
          device.ops.attachIoas(device, task, { id: compatIoasGetId(df.iommufd) });
        } catch (e) {
          this.#vfio.dfClose(df);
          throw e;
        }
      }
    } catch (e) {
      df.iommufd = null;
      throw e;
    }
    df.accessGranted = true;
  }
}

/** vfio_df_group_close. */
export function vfioDfGroupClose(vfio: VfioModule, df: VfioDeviceFile): void {
  vfio.dfClose(df);
  df.iommufd = null;
}

/** strndup_user: a NUL-terminated string of at most `max` bytes (EINVAL if longer, EFAULT if unreadable). */
function strndupUser(task: Process, uaddr: bigint, max: number): string {
  const bytes: number[] = [];
  for (let off = 0; off < max; ) {
    // Never read past the page the string may end in: the next one need not be mapped.
    const addr = uaddr + BigInt(off);
    const len = Math.min(64, max - off, PAGE_SIZE - Number(addr & BigInt(PAGE_SIZE - 1)));
    const chunk = copyFromUser(task, addr, len, 'reading the device name');
    const nul = chunk.indexOf(0);
    if (nul >= 0) return new TextDecoder().decode(Uint8Array.from([...bytes, ...chunk.subarray(0, nul)]));
    bytes.push(...chunk);
    off += len;
  }
  return fail(Errno.EINVAL, `the device name is not NUL-terminated within ${max} bytes`);
}
