/**
 * The device cdev's own ioctls (device_cdev.c): bind a cdev-opened device file to an iommufd,
 * and attach/detach the bound device to an IOAS or HWPT.
 *
 * BIND: argsz/flags/negative fd checks, cdev files only, the group must not be open (and stays
 * blocked while bound), one bind per file, the iommufd must be one, then the device is opened
 * through iommufd (vfio_df_open) and out_devid written. Any failure unwinds completely: open
 * count, iommufd reference, group block.
 */

import { Errno, fail } from '../../errno.js';
import type { Process } from '../process.js';
import { copyFromUser, copyToUser } from '../uaccess.js';
import { vfio_device_attach_iommufd_pt, vfio_device_bind_iommufd, vfio_device_detach_iommufd_pt } from '../../uapi/vfio.js';
import type { VfioDeviceFile } from './vfio.js';
import type { VfioModule } from './vfio_main.js';

const u32le = (v: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
};

/** vfio_df_ioctl_bind_iommufd. */
export function vfioDfIoctlBindIommufd(vfio: VfioModule, df: VfioDeviceFile, arg: bigint, task: Process): number {
  const device = df.device;
  const minsz = vfio_device_bind_iommufd.offsetEnd('out_devid');
  const bind = vfio_device_bind_iommufd.decode(copyFromUser(task, arg, minsz, 'reading vfio_device_bind_iommufd'));
  if (bind.argsz < minsz) fail(Errno.EINVAL, `vfio_device_bind_iommufd.argsz ${bind.argsz} is below ${minsz}`);
  if (bind.flags) fail(Errno.EINVAL, `vfio_device_bind_iommufd.flags must be 0, not 0x${(bind.flags >>> 0).toString(16)}`);
  if (bind.iommufd < 0) fail(Errno.EINVAL, `vfio_device_bind_iommufd.iommufd ${bind.iommufd} is negative (noiommu devices have no cdev in 6.12)`);
  if (df.group) fail(Errno.EINVAL, `${device.name}: this device file came from VFIO_GROUP_GET_DEVICE_FD; only cdev files bind to an iommufd`);
  vfio.groups.blockGroup(device);
  try {
    if (df.accessGranted) fail(Errno.EINVAL, `${device.name}: this file is already bound to an iommufd`);
    const ictx = vfio.machine.iommufd.ctxFromFile(task.fget(bind.iommufd));
    ictx.file.get();
    df.iommufd = ictx;
    try {
      vfio.dfOpen(df, task);
      try {
        copyToUser(task, arg + BigInt(vfio_device_bind_iommufd.offsetOf('out_devid')), u32le(df.devid), 'writing vfio_device_bind_iommufd.out_devid');
      } catch (e) {
        vfio.dfClose(df);
        throw e;
      }
    } catch (e) {
      df.iommufd = null;
      ictx.file.put();
      throw e;
    }
  } catch (e) {
    vfio.groups.unblockGroup(device);
    throw e;
  }
  device.cdevOpened = true;
  df.accessGranted = true;
  return 0;
}

/** vfio_df_unbind_iommufd: closing a bound cdev file. */
export function vfioDfUnbindIommufd(vfio: VfioModule, df: VfioDeviceFile): void {
  if (!df.accessGranted) return;
  const device = df.device;
  vfio.dfClose(df);
  df.iommufd!.file.put();
  device.cdevOpened = false;
  vfio.groups.unblockGroup(device);
}

/** vfio_df_ioctl_attach_pt. */
export function vfioDfIoctlAttachPt(df: VfioDeviceFile, arg: bigint, task: Process): number {
  const device = df.device;
  const minsz = vfio_device_attach_iommufd_pt.offsetEnd('pt_id');
  const attach = vfio_device_attach_iommufd_pt.decode(copyFromUser(task, arg, minsz, 'reading vfio_device_attach_iommufd_pt'));
  if (attach.argsz < minsz) fail(Errno.EINVAL, `vfio_device_attach_iommufd_pt.argsz ${attach.argsz} is below ${minsz}`);
  if (attach.flags) fail(Errno.EINVAL, `vfio_device_attach_iommufd_pt.flags must be 0, not 0x${(attach.flags >>> 0).toString(16)}`);
  const pt = { id: attach.pt_id };
  device.ops.attachIoas(device, task, pt);
  try {
    copyToUser(task, arg + BigInt(vfio_device_attach_iommufd_pt.offsetOf('pt_id')), u32le(pt.id), 'writing vfio_device_attach_iommufd_pt.pt_id');
  } catch (e) {
    device.ops.detachIoas(device);
    throw e;
  }
  return 0;
}

/** vfio_df_ioctl_detach_pt: detaching a device that is not attached is not an error. */
export function vfioDfIoctlDetachPt(df: VfioDeviceFile, arg: bigint, task: Process): number {
  const minsz = vfio_device_detach_iommufd_pt.offsetEnd('flags');
  const detach = vfio_device_detach_iommufd_pt.decode(copyFromUser(task, arg, minsz, 'reading vfio_device_detach_iommufd_pt'));
  if (detach.argsz < minsz) fail(Errno.EINVAL, `vfio_device_detach_iommufd_pt.argsz ${detach.argsz} is below ${minsz}`);
  if (detach.flags) fail(Errno.EINVAL, `vfio_device_detach_iommufd_pt.flags must be 0, not 0x${(detach.flags >>> 0).toString(16)}`);
  df.device.ops.detachIoas(df.device);
  return 0;
}
