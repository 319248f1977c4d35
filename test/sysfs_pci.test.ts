/**
 * The emulated /sys for PCI functions and VFIO on the default machine (src/kernel/sysfs.ts), with
 * what the oracle's guest showed (test/oracle/vfio_facts.md): /sys/bus/pci/devices links, the
 * function's directory (IDs, config space, driver and IOMMU group links), the VFIO cdev's
 * vfio-dev/vfioN/dev, the vfio and vfio-dev classes; links resolve in the middle of a path and
 * readlink gives their relative targets.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CAP_SYS_ADMIN, Errno, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd } from '../src/index.js';
import { DT_DIR, DT_LNK, DT_REG, sysfsList, sysfsRead, sysfsReadlink, sysfsText } from '../src/kernel/sysfs.js';
import { ok, thrownErrno } from './helpers.js';
import { BDF, CDEV, vcall, vfioMachine } from './vfio_helpers.js';

const DEV = `/sys/bus/pci/devices/${BDF}`;


describe('sysfs: PCI functions', () => {
  it('/sys/bus/pci/devices links every function to its directory under its root bus', () => {
    const { m } = vfioMachine();
    const entries = sysfsList(m, '/sys/bus/pci/devices').slice(2);
    assert.deepEqual(entries.map((e) => e.name), ['0000:00:00.0', '0000:00:01.0', '0000:00:02.0', '0000:00:03.0', '0000:00:1f.0', '0000:00:1f.2', '0000:00:1f.3']);
    assert.ok(entries.every((e) => e.type === DT_LNK));
    assert.equal(sysfsReadlink(m, DEV), `../../../devices/pci0000:00/${BDF}`);
  });

  it('the function\'s IDs as the oracle printed them', () => {
    const { m } = vfioMachine();
    const attr = (a: string): string => sysfsText(m, `${DEV}/${a}`);
    assert.deepEqual(
      ['vendor', 'device', 'subsystem_vendor', 'subsystem_device', 'class', 'revision', 'driver_override'].map(attr),
      ['0x1234\n', '0x11e8\n', '0x1af4\n', '0x1100\n', '0x00ff00\n', '0x10\n', 'vfio-pci\n'],
    );
    const types = Object.fromEntries(sysfsList(m, DEV).map((e) => [e.name, e.type]));
    assert.equal(types.config, DT_REG);
    assert.equal(types.iommu_group, DT_LNK);
    assert.equal(types['vfio-dev'], DT_DIR);
  });

  it('config is the hardware\'s config space, read at every read; without CAP_SYS_ADMIN only its first 64 bytes', () => {
    const { m, p } = vfioMachine();
    const pdev = m.iommu.pciDevice(BDF)!;
    assert.deepEqual(sysfsRead(p, `${DEV}/config`), pdev.config);
    const fd = p.openOrThrow(`${DEV}/config`, 0);
    pdev.configWrite(0x0c, 1, 0x10);
    const buf = p.mmapOrThrow(4096n);
    assert.equal(ok(p.pread(fd, buf, 256, 0n)), 256);
    assert.equal(p.mm.read(buf, 256)[0x0c], 0x10);
    const user = m.spawn({ uid: 1000 });
    assert.equal(user.capable(CAP_SYS_ADMIN), false);
    assert.equal(sysfsRead(user, `${DEV}/config`).length, 64);
    assert.equal(thrownErrno(() => sysfsText(m, `${DEV}/config`)), Errno.EINVAL);
  });

  it('driver, iommu_group and iommu are links with the kernel\'s relative targets, followed in the middle of a path', () => {
    const { m } = vfioMachine();
    assert.equal(sysfsReadlink(m, `${DEV}/driver`), '../../../bus/pci/drivers/vfio-pci');
    assert.equal(sysfsReadlink(m, `${DEV}/iommu_group`), '../../../kernel/iommu_groups/3');
    assert.equal(sysfsReadlink(m, `${DEV}/iommu`), '../../virtual/iommu/dmar0');
    assert.equal(sysfsText(m, `${DEV}/iommu_group/type`), 'DMA\n');
    assert.equal(sysfsText(m, `/sys/kernel/iommu_groups/3/devices/${BDF}/vendor`), '0x1234\n');
    assert.equal(sysfsReadlink(m, `/sys/bus/pci/drivers/vfio-pci/${BDF}`), `../../../../devices/pci0000:00/${BDF}`);
    assert.equal(sysfsReadlink(m, `/sys/class/iommu/dmar0/devices/${BDF}`), `../../../../pci0000:00/${BDF}`);
    assert.equal(thrownErrno(() => sysfsReadlink(m, `${DEV}/vendor`)), Errno.EINVAL);
    assert.equal(thrownErrno(() => sysfsReadlink(m, `${DEV}/nothing`)), Errno.ENOENT);
  });

  it('the VFIO cdev and group: vfio-dev/vfio0/dev 248:0, /sys/class/vfio-dev/vfio0, /sys/class/vfio/3 with dev 249:0 (oracle)', () => {
    const { m } = vfioMachine();
    assert.equal(sysfsText(m, `${DEV}/vfio-dev/vfio0/dev`), '248:0\n');
    assert.equal(sysfsText(m, '/sys/class/vfio-dev/vfio0/uevent'), 'MAJOR=248\nMINOR=0\nDEVNAME=vfio/devices/vfio0\n');
    assert.equal(sysfsReadlink(m, '/sys/class/vfio-dev/vfio0'), `../../devices/pci0000:00/${BDF}/vfio-dev/vfio0`);
    assert.equal(sysfsReadlink(m, '/sys/class/vfio-dev/vfio0/device'), `../../../${BDF}`);
    assert.equal(sysfsReadlink(m, '/sys/class/vfio/3'), '../../devices/virtual/vfio/3');
    assert.equal(sysfsText(m, '/sys/class/vfio/3/dev'), '249:0\n');
    assert.equal(sysfsText(m, '/sys/class/vfio/3/uevent'), 'MAJOR=249\nMINOR=0\nDEVNAME=vfio/3\n');
  });

  it('enable is 1 while vfio-pci has the function open (oracle: 0 idle, 1 bound)', () => {
    const { m, p } = vfioMachine();
    assert.equal(sysfsText(m, `${DEV}/enable`), '0\n');
    const ifd = p.openOrThrow('/dev/iommu');
    const dev = p.openOrThrow(CDEV);
    ok(vcall(p, dev, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd, { argsz: 16, iommufd: ifd }).r);
    assert.equal(sysfsText(m, `${DEV}/enable`), '1\n');
    ok(p.close(dev));
    assert.equal(sysfsText(m, `${DEV}/enable`), '0\n');
  });

  it('functions without VFIO have no vfio-dev; attributes are read-only; paths outside the emulated roots are not sysfs\'s', () => {
    const { m, p } = vfioMachine();
    assert.equal(sysfsList(m, '/sys/bus/pci/devices/0000:00:02.0').some((e) => e.name === 'vfio-dev'), false);
    assert.equal(sysfsReadlink(m, '/sys/bus/pci/devices/0000:00:02.0/driver'), '../../../bus/pci/drivers/e1000e');
    assert.equal(p.open(`${DEV}/vendor`, 2).errno, Errno.EACCES);
    assert.equal(thrownErrno(() => sysfsList(m, '/sys/block')), Errno.ENOENT);
  });
});
