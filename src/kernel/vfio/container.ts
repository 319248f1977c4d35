/**
 * The legacy VFIO container (container.c): /dev/vfio/vfio when the machine does not let iommufd
 * provide it. A container collects groups (SET_CONTAINER claims each group's DMA ownership), then
 * SET_IOMMU picks the first registered IOMMU backend that supports the type and attaches every
 * group to it; from then on the container's other ioctls go to the backend. Backends: type1
 * (vfio_iommu_type1.ts) and, built in, vfio-noiommu (no translation at all, CAP_SYS_RAWIO only).
 *
 * When the machine lets iommufd provide /dev/vfio/vfio, opening it opens an iommufd whose pinned
 * pages are charged to the mm (vfio_compat.c answers the container ioctls).
 */

import { Errno, fail } from '../../errno.js';
import { IOPT_PAGES_ACCOUNT } from '../iommufd/object.js';
import { MISC_MAJOR, VFIO_MINOR } from '../iommufd/main.js';
import { CAP_SYS_RAWIO, type Process } from '../process.js';
import { File, type FileOperations } from '../vfs.js';
import { VFIO_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_GET_API_VERSION, VFIO_NOIOMMU_IOMMU, VFIO_SET_IOMMU } from '../../uapi/vfio.js';
import { VfioContainer, type VfioDevice, type VfioGroup, type VfioIommuDriverOps } from './vfio.js';
import type { VfioModule } from './vfio_main.js';

export class VfioContainerModule {
  readonly #vfio: VfioModule;
  /** Registered IOMMU backends, in registration order (vfio.iommu_drivers_list). */
  readonly drivers: VfioIommuDriverOps[] = [];
  readonly noiommuOps: VfioIommuDriverOps;
  readonly fops: FileOperations;
  readonly #containers = new Set<VfioContainer>();

  constructor(vfio: VfioModule) {
    this.#vfio = vfio;
    this.noiommuOps = {
      name: 'vfio-noiommu',
      open: (type, task) => {
        if (type !== BigInt(VFIO_NOIOMMU_IOMMU)) fail(Errno.EINVAL, `vfio-noiommu serves only VFIO_NOIOMMU_IOMMU, not ${type}`);
        if (!task.capable(CAP_SYS_RAWIO)) fail(Errno.EPERM, 'vfio-noiommu needs CAP_SYS_RAWIO');
        return null;
      },
      release: () => {},
      ioctl: (_data, cmd, arg) => {
        if (cmd === VFIO_CHECK_EXTENSION) return vfio.noiommu && arg === BigInt(VFIO_NOIOMMU_IOMMU) ? 1 : 0;
        return fail(Errno.ENOTTY, `vfio-noiommu has no ioctl 0x${cmd.toString(16)}`);
      },
      attachGroup: () => {},
      detachGroup: () => {},
    };
    this.fops = {
      name: 'vfio-container',
      ioctl: (file, cmd, arg, task) => this.#ioctl(file.priv as VfioContainer, cmd, arg, task),
      release: (file) => this.#put(file.priv as VfioContainer),
    };
    vfio.machine.devices.register('/dev/vfio/vfio', {
      major: MISC_MAJOR,
      minor: VFIO_MINOR,
      mode: 0o666,
      open: (task, flags, path) => {
        if (vfio.containerKind === 'iommufd') return vfio.machine.iommufd.open(task, flags, path, IOPT_PAGES_ACCOUNT.MM);
        const c = new VfioContainer();
        this.#containers.add(c);
        return new File(this.fops, path, flags, c);
      },
    });
  }

  /** vfio_register_iommu_driver; noiommu comes last, as its module registers after type1 here. */
  registerDriver(ops: VfioIommuDriverOps): void {
    this.drivers.push(ops);
  }

  #allDrivers(): VfioIommuDriverOps[] {
    return [...this.drivers, this.noiommuOps];
  }

  containers(): VfioContainer[] {
    return [...this.#containers];
  }

  /** vfio_container_from_file. */
  fromFile(f: File): VfioContainer | null {
    return f.ops === this.fops ? (f.priv as VfioContainer) : null;
  }

  #put(c: VfioContainer): void {
    if (--c.refs === 0) this.#containers.delete(c);
  }

  /** vfio_iommu_driver_allowed: noiommu containers use vfio-noiommu, and only they do. */
  #allowed(c: VfioContainer, d: VfioIommuDriverOps): boolean {
    return c.noiommu === (d === this.noiommuOps);
  }

  #ioctl(c: VfioContainer, cmd: number, arg: bigint, task: Process): number {
    switch (cmd) {
      case VFIO_GET_API_VERSION:
        return VFIO_API_VERSION;
      case VFIO_CHECK_EXTENSION:
        return this.#checkExtension(c, arg, task);
      case VFIO_SET_IOMMU:
        return this.#setIommu(c, arg, task);
      default:
        if (!c.iommuDriver) fail(Errno.EINVAL, `0x${cmd.toString(16)}: the container has no IOMMU backend yet (VFIO_SET_IOMMU first)`);
        return c.iommuDriver.ioctl(c.iommuData, cmd, arg, task);
    }
  }

  /** vfio_container_ioctl_check_extension. */
  #checkExtension(c: VfioContainer, arg: bigint, task: Process): number {
    if (c.iommuDriver) return c.iommuDriver.ioctl(c.iommuData, VFIO_CHECK_EXTENSION, arg, task);
    let ret = 0;
    for (const d of this.#allDrivers()) {
      if (c.groups.length && !this.#allowed(c, d)) continue;
      ret = d.ioctl(null, VFIO_CHECK_EXTENSION, arg, task);
      if (ret > 0) break;
    }
    return ret;
  }

  /** vfio_ioctl_set_iommu: the first allowed backend that takes the type and every group. */
  #setIommu(c: VfioContainer, arg: bigint, task: Process): number {
    if (!c.groups.length) fail(Errno.EINVAL, 'VFIO_SET_IOMMU: the container has no groups (VFIO_GROUP_SET_CONTAINER first)');
    if (c.iommuDriver) fail(Errno.EINVAL, `VFIO_SET_IOMMU: the container already uses ${c.iommuDriver.name}`);
    let err: Error | null = null;
    for (const d of this.#allDrivers()) {
      if (!this.#allowed(c, d)) continue;
      if (d.ioctl(null, VFIO_CHECK_EXTENSION, arg, task) <= 0) continue;
      let data: unknown;
      try {
        data = d.open(arg, task);
      } catch (e) {
        err = e as Error;
        continue;
      }
      const done: VfioGroup[] = [];
      try {
        for (const g of c.groups) {
          d.attachGroup(data, g.iommuGroup, g.type, task);
          done.push(g);
        }
      } catch (e) {
        for (const g of done.reverse()) d.detachGroup(data, g.iommuGroup);
        d.release(data);
        err = e as Error;
        continue;
      }
      c.iommuDriver = d;
      c.iommuData = data;
      return 0;
    }
    if (err) throw err;
    return fail(Errno.ENODEV, `VFIO_SET_IOMMU: no IOMMU backend supports type ${arg}`);
  }

  /** vfio_container_attach_group. */
  attachGroup(c: VfioContainer, group: VfioGroup, task: Process): void {
    if (group.type === 'noiommu' && !task.capable(CAP_SYS_RAWIO)) fail(Errno.EPERM, `${group.path}: noiommu groups need CAP_SYS_RAWIO`);
    if (c.groups.length && c.noiommu !== (group.type === 'noiommu')) {
      fail(Errno.EPERM, `${group.path}: a container holds either noiommu groups or IOMMU groups, not both`);
    }
    if (group.type === 'iommu') group.iommuGroup.claimDmaOwner(group);
    if (c.iommuDriver) {
      try {
        c.iommuDriver.attachGroup(c.iommuData, group.iommuGroup, group.type, task);
      } catch (e) {
        if (group.type === 'iommu') group.iommuGroup.releaseDmaOwner();
        throw e;
      }
    }
    group.container = c;
    group.containerUsers = 1;
    c.noiommu = group.type === 'noiommu';
    c.groups.push(group);
    c.refs++;
  }

  /** vfio_group_detach_container. */
  detachGroup(group: VfioGroup): void {
    const c = group.container!;
    if (c.iommuDriver) c.iommuDriver.detachGroup(c.iommuData, group.iommuGroup);
    if (group.type === 'iommu') group.iommuGroup.releaseDmaOwner();
    group.container = null;
    group.containerUsers = 0;
    c.groups.splice(c.groups.indexOf(group), 1);
    if (c.iommuDriver && !c.groups.length) {
      c.iommuDriver.release(c.iommuData);
      c.iommuDriver = null;
      c.iommuData = null;
    }
    this.#put(c);
  }

  /** vfio_group_use_container: a device file now depends on the group file. */
  useContainer(group: VfioGroup, task: Process): void {
    if (!group.container!.iommuDriver) fail(Errno.EINVAL, `${group.path}: the container has no IOMMU backend yet (VFIO_SET_IOMMU first)`);
    if (group.type === 'noiommu' && !task.capable(CAP_SYS_RAWIO)) fail(Errno.EPERM, `${group.path}: noiommu groups need CAP_SYS_RAWIO`);
    group.openedFile!.get();
    group.containerUsers++;
  }

  unuseContainer(group: VfioGroup): void {
    group.containerUsers--;
    group.openedFile!.put();
  }

  /** vfio_device_container_register: the backend learns of an opened device (SVA binds it). */
  registerDevice(vdev: VfioDevice): void {
    const c = vdev.group.container!;
    c.iommuDriver?.registerDevice?.(c.iommuData, vdev);
    vdev.containerRegistered = true;
  }

  unregisterDevice(vdev: VfioDevice): void {
    const c = vdev.group.container!;
    if (vdev.containerRegistered) c.iommuDriver?.unregisterDevice?.(c.iommuData, vdev);
    vdev.containerRegistered = false;
  }
}
