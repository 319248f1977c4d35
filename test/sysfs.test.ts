/**
 * The emulated /sys/kernel/iommu_groups (src/kernel/sysfs.ts): directories list the machine's
 * groups and devices, attributes print the default domain type and the merged reserved regions in
 * iommu.c's formats, and anything else under the root is ENOENT.
 */

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Errno } from '../src/index.js';
import { BlockedDomain, Device, IOMMU_RESV, type IommuDriver, type ResvRegion } from '../src/kernel/iommu/core.js';
import { DT_DIR, DT_LNK, DT_REG, sysfsList, sysfsText } from '../src/kernel/sysfs.js';
import { checkedMachine, thrownErrno } from './helpers.js';

/** A driver whose devices report fixed reserved regions; enough of iommu_ops for sysfs. */
function regionsDriver(regions: ResvRegion[]): IommuDriver {
  const blocked: BlockedDomain = new BlockedDomain(driver());
  function driver(): IommuDriver {
    return {
      name: 'test',
      pgsizeBitmap: 0x1000n,
      userPasidTable: false,
      capable: () => false,
      blockedDomain: () => blocked,
      defaultDomain: () => blocked,
      getResvRegions: () => regions.map((r) => ({ ...r })),
    };
  }
  return blocked.owner;
}

const names = (path: string, m = checkedMachine()): string[] => sysfsList(m, path).map((d) => `${d.name}:${d.type}`);

describe('sysfs iommu_groups', () => {
  test('the root lists one directory per group, by ID, after . and ..', () => {
    const m = checkedMachine();
    const drv = regionsDriver([]);
    for (const n of ['a', 'b']) m.iommu.allocGroup().addDevice(new Device(n, 'test'), drv);
    assert.deepEqual(names('/sys/kernel/iommu_groups', m), [`.:${DT_DIR}`, `..:${DT_DIR}`, `0:${DT_DIR}`, `1:${DT_DIR}`]);
    assert.deepEqual(names('/sys/kernel/iommu_groups/1/', m), [`.:${DT_DIR}`, `..:${DT_DIR}`, `devices:${DT_DIR}`, `reserved_regions:${DT_REG}`, `type:${DT_REG}`]);
    assert.deepEqual(names('/sys/kernel/iommu_groups/1/devices', m), [`.:${DT_DIR}`, `..:${DT_DIR}`, `b:${DT_LNK}`]);
  });

  test('type names the default domain as iommu_group_show_type does', () => {
    const m = checkedMachine();
    m.iommu.allocGroup().addDevice(new Device('a', 'test'), regionsDriver([]));
    assert.equal(sysfsText(m, '/sys/kernel/iommu_groups/0/type'), 'blocked\n');
  });

  test('reserved_regions merges overlapping and touching regions of one type, keeps types apart, sorted by start', () => {
    const m = checkedMachine();
    const g = m.iommu.allocGroup();
    g.addDevice(new Device('a', 'test'), regionsDriver([
      { start: 0xfee00000n, length: 0x100000n, type: IOMMU_RESV.MSI },
      { start: 0x1000n, length: 0x1000n, type: IOMMU_RESV.DIRECT },
    ]));
    g.addDevice(new Device('b', 'test'), regionsDriver([
      { start: 0x2000n, length: 0x1000n, type: IOMMU_RESV.DIRECT },
      { start: 0x1800n, length: 0x100n, type: IOMMU_RESV.RESERVED },
    ]));
    assert.equal(
      sysfsText(m, '/sys/kernel/iommu_groups/0/reserved_regions'),
      '0x0000000000001000 0x0000000000002fff direct\n0x0000000000001800 0x00000000000018ff reserved\n0x00000000fee00000 0x00000000feefffff msi\n',
    );
  });

  test('a missing group, a file listed as a directory and a directory read as a file are refused', () => {
    const m = checkedMachine();
    m.iommu.allocGroup().addDevice(new Device('a', 'test'), regionsDriver([]));
    assert.equal(thrownErrno(() => sysfsList(m, '/sys/kernel/iommu_groups/7')), Errno.ENOENT);
    assert.equal(thrownErrno(() => sysfsList(m, '/sys/kernel/iommu_groups/0/type')), Errno.ENOTDIR);
    assert.equal(thrownErrno(() => sysfsText(m, '/sys/kernel/iommu_groups/0')), Errno.EISDIR);
    assert.equal(thrownErrno(() => sysfsText(m, '/sys/kernel/iommu_groups/0/devices/zz')), Errno.ENOENT);
  });

  test('a process opens an attribute read-only and reads its text; for writing it is EACCES', () => {
    const m = checkedMachine();
    m.iommu.allocGroup().addDevice(new Device('a', 'test'), regionsDriver([]));
    const p = m.spawn();
    assert.equal(p.open('/sys/kernel/iommu_groups/0/type', 1).errno, Errno.EACCES);
    const fd = p.openOrThrow('/sys/kernel/iommu_groups/0/type', 0);
    const buf = p.mmapOrThrow(4096n);
    assert.equal(p.read(fd, buf, 100).ret, 8);
    assert.equal(new TextDecoder().decode(p.peek(buf, 8)), 'blocked\n');
    assert.equal(p.read(fd, buf, 100).ret, 0);
  });
});
