/**
 * VFIO's shared internals (the kernel's drivers/vfio/vfio.h): the objects every VFIO file works on.
 *
 *   VfioDevice      a device a VFIO driver (vfio-pci) registered: its index (vfioN), its VFIO
 *                   group, its device set, how many device files opened it (`openCount`), and its
 *                   iommufd binding when opened through iommufd.
 *   VfioDeviceFile  one open device file: a cdev open of /dev/vfio/devices/vfioN, or a file made
 *                   by VFIO_GROUP_GET_DEVICE_FD ("group-opened"). Nothing but BIND_IOMMUFD works on
 *                   it until `accessGranted`.
 *   VfioGroup       /dev/vfio/N (or /dev/vfio/noiommu-N): one per IOMMU group with VFIO devices;
 *                   opened by one file at a time, and never while a cdev of its devices is bound.
 *   VfioContainer   /dev/vfio/vfio when it is the legacy container: groups plus one IOMMU backend.
 *   VfioDeviceSet   devices that reset together (vfio-pci: slot or bus); `openCount` of one
 *                   device changes only under its set.
 */

import type { Device, IommuGroup } from '../iommu/core.js';
import type { IommufdDevice } from '../iommufd/device.js';
import type { IommufdCtx } from '../iommufd/object.js';
import type { Process } from '../process.js';
import type { File, IoMapping, Vma } from '../vfs.js';

/** What the VFIO core asks of a device driver (struct vfio_device_ops). */
export interface VfioDeviceOps {
  readonly name: string;
  /** bind_iommufd: returns the iommufd device ID. */
  bindIommufd(vdev: VfioDevice, ictx: IommufdCtx, task: Process): number;
  unbindIommufd(vdev: VfioDevice): void;
  /** attach_ioas: attach or replace; `pt.id` returns the HWPT chosen. */
  attachIoas(vdev: VfioDevice, task: Process, pt: { id: number }): void;
  detachIoas(vdev: VfioDevice): void;
  openDevice?(vdev: VfioDevice, task: Process): void;
  closeDevice?(vdev: VfioDevice): void;
  ioctl?(vdev: VfioDevice, cmd: number, arg: bigint, task: Process): number;
  read?(vdev: VfioDevice, task: Process, buf: bigint, count: number, pos: number): number;
  write?(vdev: VfioDevice, task: Process, buf: bigint, count: number, pos: number): number;
  /** mmap of the device file (the VFS checks are done). */
  mmap?(vdev: VfioDevice, task: Process, vma: Vma): IoMapping;
  /** Driver-specific VFIO_DEVICE_FEATURE (the core handles migration and DMA logging). */
  deviceFeature?(vdev: VfioDevice, flags: number, arg: bigint, argsz: number, task: Process): number;
  /** match: whether `name` (VFIO_GROUP_GET_DEVICE_FD's string) names the device; throws for bad options. */
  match?(vdev: VfioDevice, name: string): boolean;
}

export class VfioDeviceSet {
  readonly devices = new Set<VfioDevice>();
  /** What the set was assigned by (a slot, a bus, or the device itself). */
  readonly key: unknown;

  constructor(key: unknown) {
    this.key = key;
  }
}

export type VfioGroupType = 'iommu' | 'noiommu';

export class VfioDevice {
  readonly dev: Device;
  readonly ops: VfioDeviceOps;
  /** The minor of /dev/vfio/devices/vfioN. */
  readonly index: number;
  group!: VfioGroup;
  devSet!: VfioDeviceSet;
  openCount = 0;
  /** A cdev file is bound (device->cdev_opened). */
  cdevOpened = false;
  /** Device files holding a registration reference (the device cannot go away under them). */
  registrations = 1;
  iommufdDevice: IommufdDevice | null = null;
  iommufdAttached = false;
  /** Registered with its group's container (the legacy type1 path). */
  containerRegistered = false;

  constructor(dev: Device, ops: VfioDeviceOps, index: number) {
    this.dev = dev;
    this.ops = ops;
    this.index = index;
  }

  get name(): string {
    return `vfio${this.index}`;
  }

  /** The cdev exists only for devices with a real IOMMU group (6.12: none for noiommu). */
  get hasCdev(): boolean {
    return this.group.type === 'iommu';
  }
}

export class VfioDeviceFile {
  readonly device: VfioDevice;
  /** Set for group-opened files. */
  readonly group: VfioGroup | null;
  accessGranted = false;
  iommufd: IommufdCtx | null = null;
  devid = 0;

  constructor(device: VfioDevice, group: VfioGroup | null) {
    this.device = device;
    this.group = group;
  }
}

export class VfioGroup {
  readonly iommuGroup: IommuGroup;
  readonly type: VfioGroupType;
  /** Minor of the group's char device. */
  readonly minor: number;
  readonly devices: VfioDevice[] = [];
  /** The one file that has the group open. */
  openedFile: File | null = null;
  /** Bound cdev files of the group's devices: the group cannot be opened meanwhile. */
  cdevDeviceOpenCnt = 0;
  container: VfioContainer | null = null;
  containerUsers = 0;
  /** An iommufd used as the container (VFIO_GROUP_SET_CONTAINER with an iommufd). */
  iommufd: IommufdCtx | null = null;

  constructor(iommuGroup: IommuGroup, type: VfioGroupType, minor: number) {
    this.iommuGroup = iommuGroup;
    this.type = type;
    this.minor = minor;
  }

  /** The node name under /dev/vfio. */
  get name(): string {
    return `${this.type === 'noiommu' ? 'noiommu-' : ''}${this.iommuGroup.id}`;
  }

  get path(): string {
    return `/dev/vfio/${this.name}`;
  }

  /** vfio_group_has_iommu. */
  get hasIommu(): boolean {
    return this.container !== null || this.iommufd !== null;
  }
}

/** An IOMMU backend of the legacy container (struct vfio_iommu_driver_ops). */
export interface VfioIommuDriverOps {
  readonly name: string;
  /** open: the backend's state for an IOMMU type (throws for types it does not serve). */
  open(type: bigint, task: Process): unknown;
  release(data: unknown): void;
  /** ioctl; `data` is null for VFIO_CHECK_EXTENSION before a backend is chosen. */
  ioctl(data: unknown, cmd: number, arg: bigint, task: Process): number;
  attachGroup(data: unknown, group: IommuGroup, type: VfioGroupType, task: Process): void;
  detachGroup(data: unknown, group: IommuGroup): void;
  /** Devices of the container's groups (registered when opened): for SVA binds on each device. */
  registerDevice?(data: unknown, vdev: VfioDevice): void;
  unregisterDevice?(data: unknown, vdev: VfioDevice): void;
}

export class VfioContainer {
  readonly groups: VfioGroup[] = [];
  iommuDriver: VfioIommuDriverOps | null = null;
  iommuData: unknown = null;
  noiommu = false;
  /** kref: the container file plus one per attached group. */
  refs = 1;
}
