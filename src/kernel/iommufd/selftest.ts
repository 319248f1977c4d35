/**
 * IOMMU_TEST_CMD: the kernel's IOMMUFD_TEST interface, so its selftest runs against us as it runs
 * against CONFIG_IOMMUFD_TEST kernels. This file holds the ops that need no mock IOMMU hardware:
 * reserved ranges, page pin-count checks, the batch memory limit, and access objects driven from
 * userspace through an fd ("[iommufd_test_staccess]"). The mock domain and device ops come with
 * the simulated IOMMU; until then they are refused as an unknown op (EOPNOTSUPP), exactly as a
 * kernel without them would.
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
  IOMMU_TEST_OP_MD_CHECK_REFS,
  IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
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
  test_memory_limit,
} from '../../uapi/iommufd_test.js';
import { PAGE_SIZE, PAGE_SIZE_N } from '../mm/physmem.js';
import type { Process } from '../process.js';
import { copyFromUser, copyToUser } from '../uaccess.js';
import { File, type FileOperations, O_RDWR } from '../vfs.js';
import { IommufdAccess } from './access.js';
import { ULONG_MAX } from './io_pagetable.js';
import { IOMMUFD_OBJ } from './object.js';
import { getIoas } from './ioas.js';
import type { Ucmd } from './ucmd.js';

type TestUcmd = Ucmd<typeof iommu_test_cmd>;

/** Per-machine state of the test module (the kernel keeps these as module globals). */
export class SelftestState {
  /** iommufd_test_memory_limit: bytes of the pin batch buffers (pages.c); 65536 by default. */
  memoryLimit = 65536;
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
  ioas.iopt.reserveIova(start, start + length - 1n, null);
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

/**
 * MOCK_DOMAIN_REPLACE: replace the domain of the mock device behind selftest object `id`. The
 * lookup is the kernel's; no selftest device object can exist until mock devices do, so today
 * every call ends there with ENOENT.
 */
function mockDomainReplace(u: TestUcmd): number {
  u.ictx.get(u.task, u.cmd.id, IOMMUFD_OBJ.SELFTEST);
  return fail(Errno.ENOENT, `selftest device ${u.cmd.id} cannot exist on this machine yet`);
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
  [IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE]: mockDomainReplace,
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
  if (!op) fail(Errno.EOPNOTSUPP, `IOMMU_TEST_CMD op ${u.cmd.op} is not implemented by this emulator yet`);
  return op(u);
}
