/**
 * The VFIO group door on the default machine, in-process, against the real 6.12 kernel
 * (test/oracle/vfio_group.expected): how GET_DEVICE_FD matches a device name (vfio_pci_core_match),
 * what a group-opened device file looks like, the hot reset rule for group-opened devices, and
 * what a program's real (foreign) files are to the kernel.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  Errno,
  O_RDWR,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_PCI_HOT_RESET,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_SET_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  vfio_device_bind_iommufd,
  vfio_pci_hot_reset,
} from '../src/index.js';
import type { Process } from '../src/index.js';
import { fcntlFlags, F_GETFL, F_SETFL, filePath, foreignFile, O_LARGEFILE } from '../src/kernel/vfs.js';
import { fails, ok, snapshot } from './helpers.js';
import { BDF, CDEV, GROUP, attached, setIrqs, vcall, vfioMachine } from './vfio_helpers.js';

const cstr = (s: string): Uint8Array => new TextEncoder().encode(`${s}\0`);
const s32 = (v: number): Uint8Array => new Uint8Array(Int32Array.of(v).buffer);

/** The group with a type1 container set (GET_DEVICE_FD's precondition). */
function grouped() {
  const { m, p } = vfioMachine();
  const grp = p.openOrThrow(GROUP);
  const c = p.openOrThrow('/dev/vfio/vfio');
  ok(p.ioctl(grp, VFIO_GROUP_SET_CONTAINER, s32(c)));
  ok(p.ioctl(c, VFIO_SET_IOMMU, BigInt(VFIO_TYPE1v2_IOMMU)));
  return { m, p, grp, c };
}

describe('GET_DEVICE_FD names', () => {
  it('the name may be followed by spaces (oracle)', () => {
    const { p, grp } = grouped();
    for (const name of [BDF, `${BDF} `, `${BDF}  `]) ok(p.close(ok(p.ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, cstr(name)))));
  });

  it('another name, a prefix, or other characters after it are ENODEV (oracle)', () => {
    const { m, p, grp } = grouped();
    const before = snapshot(m);
    for (const name of ['0000:00:04.0', '', '0000:00:03', `${BDF}.1`]) fails(p.ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, cstr(name)), Errno.ENODEV);
    assert.equal(snapshot(m), before);
  });

  it('a vf_token on a function that is neither PF nor VF, and any other option, are EINVAL (oracle)', () => {
    const { m, p, grp } = grouped();
    const before = snapshot(m);
    fails(p.ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, cstr(`${BDF} vf_token=00000000-0000-0000-0000-000000000000`)), Errno.EINVAL);
    fails(p.ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, cstr(`${BDF} vf_token=not-a-uuid`)), Errno.EINVAL);
    fails(p.ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, cstr(`${BDF} foo=bar`)), Errno.EINVAL);
    assert.equal(snapshot(m), before);
  });
});

describe('a group-opened device file', () => {
  it('is anon_inode:[vfio-device], O_RDWR; a cdev open is its node path with O_LARGEFILE (oracle)', () => {
    const { p, grp } = grouped();
    const dev = ok(p.ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, cstr(BDF)));
    const f = p.fget(dev);
    assert.equal(filePath(f), 'anon_inode:[vfio-device]');
    assert.equal(fcntlFlags(f, F_GETFL, 0), O_RDWR);
    const cdev = p.fget(p.openOrThrow(CDEV));
    assert.equal(filePath(cdev), CDEV);
    assert.equal(fcntlFlags(cdev, F_GETFL, 0), O_RDWR | O_LARGEFILE);
    ok({ ret: fcntlFlags(cdev, F_SETFL, 0o4000 | 1), errno: 0 });
    assert.equal(fcntlFlags(cdev, F_GETFL, 0), O_RDWR | O_LARGEFILE | 0o4000, 'F_SETFL changes O_NONBLOCK, never the access mode');
  });

  it('PCI_HOT_RESET with no group fds is EINVAL: the group path must name its groups (oracle)', () => {
    const { m, p, grp } = grouped();
    const dev = ok(p.ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, cstr(BDF)));
    const before = snapshot(m);
    fails(vcall(p, dev, VFIO_DEVICE_PCI_HOT_RESET, vfio_pci_hot_reset, { argsz: 16, count: 0 }).r, Errno.EINVAL);
    assert.equal(snapshot(m), before);
  });
});

describe('foreign files (a program\'s real fds, through the daemon)', () => {
  /** The process sees a real /dev/null and a real eventfd at fds 40 and 41, as the daemon's hook reports them. */
  function withForeign(p: Process): { signals: number[] } {
    const signals: number[] = [];
    p.foreignFile = (fd) => {
      if (fd === 40) return foreignFile('/dev/null', O_RDWR, { eventfd: null });
      if (fd === 41) return foreignFile('anon_inode:[eventfd]', O_RDWR, { eventfd: () => ({ label: 'real eventfd', signal: () => signals.push(41), put: () => {}, watch: () => () => {} }) });
      return null;
    };
    return { signals };
  }

  it('a real /dev/null where an iommufd or a container belongs is EBADFD, not EBADF (oracle)', () => {
    const { m, p } = vfioMachine();
    withForeign(p);
    const grp = p.openOrThrow(GROUP);
    let before = snapshot(m);
    fails(p.ioctl(grp, VFIO_GROUP_SET_CONTAINER, s32(40)), Errno.EBADFD);
    fails(p.ioctl(grp, VFIO_GROUP_SET_CONTAINER, s32(42)), Errno.EBADF);
    assert.equal(snapshot(m), before);
    ok(p.close(grp));
    const dev = p.openOrThrow(CDEV);
    before = snapshot(m);
    fails(vcall(p, dev, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd, { argsz: 16, iommufd: 40 }).r, Errno.EBADFD);
    fails(vcall(p, dev, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd, { argsz: 16, iommufd: 42 }).r, Errno.EBADF);
    assert.equal(snapshot(m), before);
  });

  it('a real eventfd is taken by SET_IRQS; a real non-eventfd is EINVAL, a closed fd EBADF (oracle)', () => {
    const { p, dev } = attached();
    const { signals } = withForeign(p);
    const trig = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
    fails(setIrqs(p, dev, { flags: trig, index: 4, count: 1 }, [40]), Errno.EINVAL);
    fails(setIrqs(p, dev, { flags: trig, index: 4, count: 1 }, [1000]), Errno.EBADF);
    ok(setIrqs(p, dev, { flags: trig, index: 4, count: 1 }, [41]));
    ok(setIrqs(p, dev, { flags: 1 | VFIO_IRQ_SET_ACTION_TRIGGER, index: 4, count: 1 }));
    assert.deepEqual(signals, [41]);
  });
});
