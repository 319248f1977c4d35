/**
 * VFIO devices on iommufd (drivers/vfio/iommufd.c): what a physical device driver plugs into
 * its bind_iommufd / unbind_iommufd / attach_ioas / detach_ioas ops. Binding makes an iommufd
 * DEVICE object; attaching a second time replaces the first attachment.
 */

import { Errno, fail } from '../../errno.js';
import { deviceAttach, deviceBind, deviceDetach, deviceReplace, deviceUnbind } from '../iommufd/device.js';
import type { IommufdCtx } from '../iommufd/object.js';
import type { Process } from '../process.js';
import type { VfioDevice } from './vfio.js';

/** vfio_iommufd_physical_bind. */
export function physicalBind(vdev: VfioDevice, ictx: IommufdCtx, task: Process): number {
  const idev = deviceBind(ictx, task, vdev.dev);
  vdev.iommufdDevice = idev;
  return idev.id;
}

/** vfio_iommufd_physical_unbind. */
export function physicalUnbind(vdev: VfioDevice): void {
  const idev = vdev.iommufdDevice;
  if (!idev) return;
  if (vdev.iommufdAttached) {
    deviceDetach(idev);
    vdev.iommufdAttached = false;
  }
  deviceUnbind(idev);
  vdev.iommufdDevice = null;
}

/** vfio_iommufd_physical_attach_ioas. */
export function physicalAttachIoas(vdev: VfioDevice, task: Process, pt: { id: number }): void {
  const idev = vdev.iommufdDevice;
  if (!idev) fail(Errno.EINVAL, `${vdev.name} is not bound to an iommufd`);
  if (vdev.iommufdAttached) deviceReplace(idev, task, pt);
  else deviceAttach(idev, task, pt);
  vdev.iommufdAttached = true;
}

/** vfio_iommufd_physical_detach_ioas. */
export function physicalDetachIoas(vdev: VfioDevice): void {
  if (!vdev.iommufdDevice || !vdev.iommufdAttached) return;
  deviceDetach(vdev.iommufdDevice);
  vdev.iommufdAttached = false;
}
