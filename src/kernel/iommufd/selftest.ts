/**
 * IOMMU_TEST_CMD: the kernel's IOMMUFD_TEST interface, so its selftest runs against us as it runs
 * against CONFIG_IOMMUFD_TEST kernels: reserved ranges, page pin-count checks, the batch memory
 * limit, access objects driven from userspace through an fd ("[iommufd_test_staccess]"), and the
 * mock IOMMU (selftest_mock.ts): mock devices bound and attached as selftest objects, checks of
 * what the mock page tables and nested IOTLBs hold, dirty bits, and injected IO page faults.
 */

import { Errno, KernelError, fail } from '../../errno.js';
import type { FieldMap, StructSchema, StructValue } from '../../uapi/schema.js';
import {
  IOMMU_TEST_OP_ACCESS_PAGES,
  IOMMU_TEST_OP_ACCESS_REPLACE_IOAS,
  IOMMU_TEST_OP_ACCESS_RW,
  IOMMU_TEST_OP_ADD_RESERVED,
  IOMMU_TEST_OP_CREATE_ACCESS,
  IOMMU_TEST_OP_DESTROY_ACCESS_PAGES,
  IOMMU_TEST_OP_DIRTY,
  IOMMU_TEST_OP_MD_CHECK_IOTLB,
  IOMMU_TEST_OP_MD_CHECK_MAP,
  IOMMU_TEST_OP_MD_CHECK_REFS,
  IOMMU_TEST_OP_MOCK_DOMAIN,
  IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS,
  IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
  IOMMU_TEST_OP_TRIGGER_IOPF,
  MOCK_NESTED_DOMAIN_IOTLB_ID_MAX,
  IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT,
  MOCK_ACCESS_RW_SLOW_PATH,
  MOCK_ACCESS_RW_WRITE,
  MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES,
  MOCK_FLAGS_ACCESS_SYZ,
  MOCK_FLAGS_ACCESS_WRITE,
  type iommu_test_cmd,
  test_access_pages,
  test_access_replace_ioas,
  test_access_rw,
  test_add_reserved,
  test_check_refs,
  test_create_access,
  test_destroy_access_pages,
  test_check_iotlb,
  test_check_map,
  test_dirty,
  test_memory_limit,
  test_mock_domain,
  test_mock_domain_flags,
  test_mock_domain_replace,
  test_trigger_iopf,
} from '../../uapi/iommufd_test.js';
import { MOCK_IO_PAGE_SIZE } from '../../hw/mock_pgtable.js';
import { IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE, IOMMU_FAULT_PAGE_REQUEST_PASID_VALID, IOMMU_NO_PASID, reportDeviceFault } from '../iommu/core.js';
import type { Machine } from '../machine.js';
import { IommufdDevice, deviceAttach, deviceBind, deviceDetach, deviceReplace, deviceUnbind } from './device.js';
import { HwptNested, HwptPaging } from './hw_pagetable.js';
import { MockDevice, MockDomain, MockIommuDriver, MockNestedDomain } from './selftest_mock.js';
import { PAGE_SIZE, PAGE_SIZE_N } from '../mm/physmem.js';
import type { Process } from '../process.js';
import { copyFromUser, copyToUser } from '../uaccess.js';
import { File, type FileOperations, O_RDWR } from '../vfs.js';
import { IommufdAccess } from './access.js';
import { ULONG_MAX } from './io_pagetable.js';
import { IOMMUFD_OBJ, IommufdObject } from './object.js';
import { getIoas } from './ioas.js';
import type { Ucmd } from './ucmd.js';

type TestUcmd = Ucmd<typeof iommu_test_cmd>;

/** Per-machine state of the test module (the kernel keeps these as module globals). */
export class SelftestState {
  /** iommufd_test_memory_limit: bytes of the pin batch buffers (pages.c); 65536 by default. */
  memoryLimit = 65536;
  /** The mock IOMMU driver and its bus. */
  readonly mock: MockIommuDriver;

  constructor(machine: Machine) {
    this.mock = new MockIommuDriver(machine);
  }
}

/** struct selftest_obj (TYPE_IDEV): a mock device bound and attached on behalf of the test. */
export class SelftestObj extends IommufdObject {
  readonly type = IOMMUFD_OBJ.SELFTEST;
  idev: IommufdDevice | null = null;
  mockDev: MockDevice | null = null;

  destroy(): void {
    const idev = this.idev!;
    deviceDetach(idev);
    deviceUnbind(idev);
    this.ictx.machine.iommufd.selftest.mock.destroyDevice(this.mockDev!);
  }
}

interface AccessItem {
  id: number;
  iova: bigint;
  length: bigint;
}

/** struct selftest_access: the access and the pins userspace asked it to hold. */
class SelftestAccess {
  access: IommufdAccess | null = null;
  items: AccessItem[] = [];
  nextId = 0;

  /** iommufd_test_access_unmap: drop every item overlapping [iova, iova+length). */
  unmap(iova: bigint, length: bigint): void {
    const last = iova + length - 1n;
    this.items = this.items.filter((it) => {
      if (iova > it.iova + it.length - 1n || last < it.iova) return true;
      this.access!.unpinPages(it.iova, it.length);
      return false;
    });
  }
}

const staccessFops: FileOperations = {
  name: '[iommufd_test_staccess]',
  release(file) {
    const st = file.priv as SelftestAccess;
    if (st.access) {
      st.unmap(0n, ULONG_MAX);
      st.access.release();
    }
  },
};

/** iommufd_access_get: the selftest access behind fd `id`, else EBADFD. */
function staccessGet(task: Process, fd: number): SelftestAccess {
  let file: File;
  try {
    file = task.fget(fd);
  } catch {
    return fail(Errno.EBADFD, `fd ${fd} is not open`);
  }
  if (file.ops !== staccessFops) fail(Errno.EBADFD, `fd ${fd} is not a selftest access`);
  return file.priv as SelftestAccess;
}

function union<T>(u: TestUcmd, s: { decode(b: Uint8Array): T }): T {
  return s.decode(u.cmd.u);
}

function addReserved(u: TestUcmd): number {
  const { start, length } = union(u, test_add_reserved);
  if (!length) fail(Errno.EINVAL, 'add_reserved.length is 0');
  if (start + length - 1n > ULONG_MAX) fail(Errno.EOVERFLOW, 'add_reserved start + length overflows');
  const ioas = getIoas(u.ictx, u.task, u.cmd.id);
  ioas.iopt.reserveIova(start, start + length - 1n, null, u.task);
  return 0;
}

function checkRefs(u: TestUcmd): number {
  const c = union(u, test_check_refs);
  if (c.length % PAGE_SIZE_N || c.uptr % PAGE_SIZE_N) fail(Errno.EINVAL, 'check_refs needs a page-aligned uptr and length');
  if (c.uptr + c.length > ULONG_MAX) fail(Errno.EINVAL, 'check_refs uptr + length overflows');
  for (let off = 0n; off < c.length; off += PAGE_SIZE_N) {
    const frame = u.task.mm.frameAt(c.uptr + off, false);
    if (frame.compound) continue;
    if (frame.pins !== c.refs) fail(Errno.EIO, `page at 0x${(c.uptr + off).toString(16)} has ${frame.pins} DMA pins, expected ${c.refs}`);
  }
  return 0;
}

function createAccess(u: TestUcmd): number {
  const { flags } = union(u, test_create_access);
  if (flags & ~MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES) fail(Errno.EOPNOTSUPP, `create_access.flags has unknown bits 0x${flags.toString(16)}`);
  const st = new SelftestAccess();
  const file = new File(staccessFops, '[iommufd_test_staccess]', O_RDWR, st);
  const needsPinPages = (flags & MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES) !== 0;
  let fd: number;
  try {
    fd = u.task.reserveFd();
  } catch (e) {
    // The test module reports any get_unused_fd_flags failure as ENOMEM.
    if (e instanceof KernelError) fail(Errno.ENOMEM, `no fd for the access: ${e.reason}`);
    throw e;
  }
  let access: IommufdAccess | null = null;
  try {
    access = IommufdAccess.create(u.ictx, u.task, { needsPinPages, unmap: (iova, length) => st.unmap(iova, length) });
    access.attach(u.task, u.cmd.id);
    setUnion(u, test_create_access, { out_access_fd: fd });
    u.respond();
  } catch (e) {
    u.task.unreserveFd(fd);
    access?.release();
    throw e;
  }
  st.access = access;
  u.task.installFdAt(fd, file);
  return 0;
}

/** Change some fields of the op's struct in the union, leaving every other union byte as sent. */
function setUnion<F extends FieldMap>(u: TestUcmd, s: StructSchema<F>, v: Partial<StructValue<F>>): void {
  const bytes = u.cmd.u.slice();
  bytes.set(s.encode({ ...s.decode(bytes), ...v }));
  u.cmd.u = bytes;
}

function accessPages(u: TestUcmd): number {
  const c = union(u, test_access_pages);
  if (c.length > 16n << 20n) fail(Errno.ENOMEM, 'access_pages.length is over the 16 MiB the test module allows');
  if (c.flags & ~(MOCK_FLAGS_ACCESS_WRITE | MOCK_FLAGS_ACCESS_SYZ)) fail(Errno.EOPNOTSUPP, `access_pages.flags has unknown bits 0x${c.flags.toString(16)}`);
  const st = staccessGet(u.task, u.cmd.id);
  if (!st.access?.ops.needsPinPages) fail(Errno.EOPNOTSUPP, 'this access was created without NEEDS_PIN_PAGES');
  const frames = st.access.pinPages(u.task, c.iova, c.length, c.flags & MOCK_FLAGS_ACCESS_WRITE);
  try {
    if (c.uptr) {
      // iommufd_test_check_pages: the pinned pages must be the ones behind uptr.
      const base = c.uptr - (c.iova % PAGE_SIZE_N);
      frames.forEach((f, i) => {
        if (u.task.mm.frameAt(base + BigInt(i * PAGE_SIZE), false) !== f) fail(Errno.EBADE, `pinned page ${i} is not the page behind uptr`);
      });
    }
    const item = { id: st.nextId++, iova: c.iova, length: c.length };
    st.items.push(item);
    try {
      setUnion(u, test_access_pages, { out_access_pages_id: item.id });
      u.respond();
    } catch (e) {
      st.items.pop();
      throw e;
    }
  } catch (e) {
    st.access.unpinPages(c.iova, c.length);
    throw e;
  }
  return 0;
}

function destroyAccessPages(u: TestUcmd): number {
  const { access_pages_id } = union(u, test_destroy_access_pages);
  const st = staccessGet(u.task, u.cmd.id);
  const i = st.items.findIndex((it) => it.id === access_pages_id);
  if (i < 0) fail(Errno.ENOENT, `access holds no pages with id ${access_pages_id}`);
  const [item] = st.items.splice(i, 1);
  st.access!.unpinPages(item!.iova, item!.length);
  return 0;
}

function accessRw(u: TestUcmd): number {
  const c = union(u, test_access_rw);
  if (c.length > 16n << 20n) fail(Errno.ENOMEM, 'access_rw.length is over the 16 MiB the test module allows');
  if (c.flags & ~(MOCK_ACCESS_RW_WRITE | MOCK_ACCESS_RW_SLOW_PATH | MOCK_FLAGS_ACCESS_SYZ)) fail(Errno.EOPNOTSUPP, `access_rw.flags has unknown bits 0x${c.flags.toString(16)}`);
  const st = staccessGet(u.task, u.cmd.id);
  const write = (c.flags & MOCK_ACCESS_RW_WRITE) !== 0;
  const data = write ? copyFromUser(u.task, c.uptr, Number(c.length), 'reading access_rw data') : new Uint8Array(Number(c.length));
  st.access!.rw(u.task, c.iova, data, c.flags & (MOCK_ACCESS_RW_WRITE | MOCK_ACCESS_RW_SLOW_PATH));
  if (!write) copyToUser(u.task, c.uptr, data, 'writing access_rw data');
  return 0;
}

function accessReplaceIoas(u: TestUcmd): number {
  const { ioas_id } = union(u, test_access_replace_ioas);
  staccessGet(u.task, u.cmd.id).access!.replace(u.task, ioas_id);
  return 0;
}

/** MOCK_DOMAIN / MOCK_DOMAIN_FLAGS: a new mock device, bound and attached to `id` (IOAS or HWPT). */
function mockDomain(u: TestUcmd): number {
  const ictx = u.ictx;
  const mock = ictx.machine.iommufd.selftest.mock;
  const ptId = { id: u.cmd.id };
  const devFlags = u.cmd.op === IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS ? union(u, test_mock_domain_flags).dev_flags : 0;
  const sobj = ictx.alloc(u.task, new SelftestObj(ictx));
  let mdev: MockDevice | null = null;
  let idev: IommufdDevice | null = null;
  let attached = false;
  try {
    mdev = mock.createDevice(u.task, devFlags);
    sobj.mockDev = mdev;
    idev = deviceBind(ictx, u.task, mdev, { isMock: true });
    sobj.idev = idev;
    deviceAttach(idev, u.task, ptId);
    attached = true;
    setUnion(u, test_mock_domain, { out_hwpt_id: ptId.id, out_stdev_id: sobj.id, out_idev_id: idev.id });
    u.respond();
  } catch (e) {
    if (attached) deviceDetach(idev!);
    if (idev) deviceUnbind(idev);
    if (mdev) mock.destroyDevice(mdev);
    ictx.abortObject(sobj);
    throw e;
  }
  ictx.finalize(sobj);
  return 0;
}

/** MOCK_DOMAIN_REPLACE: move the selftest object's device to another IOAS or HWPT. */
function mockDomainReplace(u: TestUcmd): number {
  const sobj = u.ictx.get(u.task, u.cmd.id, IOMMUFD_OBJ.SELFTEST, SelftestObj);
  const ptId = { id: union(u, test_mock_domain_replace).pt_id };
  deviceReplace(sobj.idev!, u.task, ptId);
  setUnion(u, test_mock_domain_replace, { pt_id: ptId.id });
  u.respond();
  return 0;
}

/** get_md_pagetable: a paging HWPT whose domain is a mock one. */
function getMdPagetable(u: TestUcmd, id: number): MockDomain {
  const hwpt = u.ictx.get(u.task, id, IOMMUFD_OBJ.HWPT_PAGING, HwptPaging);
  if (!(hwpt.domain instanceof MockDomain)) fail(Errno.EINVAL, `HWPT ${id} is not backed by a mock paging domain`);
  return hwpt.domain;
}

/** MD_CHECK_MAP: every 2 KiB of [iova, iova + length) maps the page under uptr at the same offset. */
function checkMap(u: TestUcmd): number {
  const c = union(u, test_check_map);
  const io = MOCK_IO_PAGE_SIZE;
  if (c.iova % io || c.length % io || c.uptr % io || c.uptr + c.length > ULONG_MAX) fail(Errno.EINVAL, 'check_map needs iova, length and uptr aligned to the 2 KiB mock page, without overflow');
  const mock = getMdPagetable(u, u.cmd.id);
  let iova = c.iova;
  let uptr = c.uptr;
  for (let left = c.length; left; left -= io) {
    const frame = u.task.mm.frameAt(uptr & ~(PAGE_SIZE_N - 1n), false);
    const pa = mock.iovaToPhys(iova);
    const want = BigInt(frame.pfn) * PAGE_SIZE_N + (uptr % PAGE_SIZE_N);
    if (pa === null) fail(Errno.EINVAL, `IOVA 0x${iova.toString(16)} is not mapped in the mock domain`);
    if (pa !== want) fail(Errno.EINVAL, `IOVA 0x${iova.toString(16)} maps PA 0x${pa.toString(16)}, but the user page under 0x${uptr.toString(16)} is at 0x${want.toString(16)}`);
    iova += io;
    uptr += io;
  }
  return 0;
}

/** MD_CHECK_IOTLB: entry `id` of a mock nested domain's IOTLB holds `iotlb`. */
function checkIotlb(u: TestUcmd): number {
  const c = union(u, test_check_iotlb);
  const hwpt = u.ictx.get(u.task, u.cmd.id, IOMMUFD_OBJ.HWPT_NESTED, HwptNested);
  if (!(hwpt.domain instanceof MockNestedDomain)) fail(Errno.EINVAL, `HWPT ${u.cmd.id} is not backed by a mock nested domain`);
  const have = hwpt.domain.iotlb[c.id];
  if (c.id > MOCK_NESTED_DOMAIN_IOTLB_ID_MAX || have !== c.iotlb) fail(Errno.EINVAL, `mock IOTLB entry ${c.id} holds ${have === undefined ? 'nothing' : `0x${have.toString(16)}`}, expected 0x${c.iotlb.toString(16)}`);
  return 0;
}

/**
 * DIRTY: mark dirty the mapped entries whose bit is set in the user bitmap (bit i is iova + i *
 * page_size). As in 6.12 the mock looks an entry up by cur / page_size in its 2 KiB-indexed table.
 */
function dirty(u: TestUcmd): number {
  const c = union(u, test_dirty);
  if (!c.page_size || !c.length || c.iova % c.page_size || c.length % c.page_size || !c.uptr) fail(Errno.EINVAL, 'dirty needs a non-zero page_size and length, both dividing iova and length, and a bitmap');
  const max = c.length / c.page_size;
  if (max > (16n << 20n) * 8n) fail(Errno.EOVERFLOW, `dirty: ${max} bits is over the 128 Mi the test module allows`);
  const mock = getMdPagetable(u, u.cmd.id);
  if (!mock.dirtyTracking) fail(Errno.EINVAL, 'dirty tracking is not enabled on the mock domain');
  if (u.ictx.machine.inject.shouldFail(u.task, 'slab')) fail(Errno.ENOMEM, 'allocating the dirty bitmap copy: fault injected (fail-nth)');
  const n = Number(max);
  const bits = copyFromUser(u.task, c.uptr, Math.ceil(n / 8), 'reading the dirty bitmap');
  let count = 0n;
  for (let i = 0; i < n; i++) {
    if (!(bits[i >> 3]! & (1 << (i & 7)))) continue;
    const cur = c.iova + BigInt(i) * c.page_size;
    if (mock.pt.markDirty((cur / c.page_size) * MOCK_IO_PAGE_SIZE)) count++;
  }
  setUnion(u, test_dirty, { out_nr_dirty: count });
  u.respond();
  return 0;
}

/** TRIGGER_IOPF: the mock device raises one last-page page request. */
function triggerIopf(u: TestUcmd): number {
  const c = union(u, test_trigger_iopf);
  const idev = u.ictx.get(u.task, c.dev_id, IOMMUFD_OBJ.DEVICE, IommufdDevice);
  if (!(idev.dev instanceof MockDevice)) fail(Errno.EINVAL, `device ${c.dev_id} is not a mock device`);
  let flags = IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE;
  if (c.pasid !== IOMMU_NO_PASID) flags |= IOMMU_FAULT_PAGE_REQUEST_PASID_VALID;
  try {
    // The mock's page_response does nothing with the answer.
    reportDeviceFault(idev.dev, { flags, pasid: c.pasid, grpid: c.grpid, perm: c.perm, addr: c.addr }, () => {}, () => u.ictx.machine.inject.shouldFail(u.task, 'slab'));
  } catch (e) {
    // iommu_report_device_fault's result is not the ioctl's.
    if (!(e instanceof KernelError)) throw e;
  }
  return 0;
}

function setTempMemoryLimit(u: TestUcmd): number {
  const { limit } = union(u, test_memory_limit);
  if (limit < 12) fail(Errno.EINVAL, `memory_limit ${limit} is below the 12 bytes one batch entry needs`);
  u.ictx.machine.iommufd.selftest.memoryLimit = limit;
  return 0;
}

const OPS: Readonly<Record<number, (u: TestUcmd) => number>> = {
  [IOMMU_TEST_OP_ADD_RESERVED]: addReserved,
  [IOMMU_TEST_OP_MD_CHECK_REFS]: checkRefs,
  [IOMMU_TEST_OP_MOCK_DOMAIN]: mockDomain,
  [IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS]: mockDomain,
  [IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE]: mockDomainReplace,
  [IOMMU_TEST_OP_MD_CHECK_MAP]: checkMap,
  [IOMMU_TEST_OP_MD_CHECK_IOTLB]: checkIotlb,
  [IOMMU_TEST_OP_DIRTY]: dirty,
  [IOMMU_TEST_OP_TRIGGER_IOPF]: triggerIopf,
  [IOMMU_TEST_OP_CREATE_ACCESS]: createAccess,
  [IOMMU_TEST_OP_ACCESS_REPLACE_IOAS]: accessReplaceIoas,
  [IOMMU_TEST_OP_ACCESS_PAGES]: accessPages,
  [IOMMU_TEST_OP_ACCESS_RW]: accessRw,
  [IOMMU_TEST_OP_DESTROY_ACCESS_PAGES]: destroyAccessPages,
  [IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT]: setTempMemoryLimit,
};

/** iommufd_test: dispatch on the op; ops this kernel lacks are EOPNOTSUPP. */
export function iommufdTest(u: TestUcmd): number {
  const op = OPS[u.cmd.op];
  if (!op) fail(Errno.EOPNOTSUPP, `IOMMU_TEST_CMD op ${u.cmd.op} is not a 6.12 test op`);
  return op(u);
}
