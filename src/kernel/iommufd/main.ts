/**
 * /dev/iommu: the file, its context, and the table-driven ioctl dispatcher.
 *
 * A row per ioctl names the command, its struct schema, the minimum size (offsetofend of the last
 * mandatory field) and the handler. The dispatcher alone does the size rules of the uapi:
 * a command number whose NR falls outside the table goes to the VFIO compatibility ioctls; inside
 * the table, the size word is read first (EFAULT), then an empty slot or a mismatching number is
 * ENOTTY, a size below the minimum EINVAL, and non-zero bytes past the known struct E2BIG. A
 * shorter (older) struct is zero-extended before the handler sees it.
 */

import { Errno, fail } from '../../errno.js';
import {
  IOMMUFD_CMD_BASE,
  IOMMUFD_TYPE,
  IOMMU_DESTROY,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_ALLOW_IOVAS,
  IOMMU_IOAS_COPY,
  IOMMU_IOAS_IOVA_RANGES,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_UNMAP,
  IOMMU_OPTION,
  IOMMU_OPTION_HUGE_PAGES,
  IOMMU_OPTION_OP_GET,
  IOMMU_OPTION_OP_SET,
  IOMMU_OPTION_RLIMIT_MODE,
  IOMMU_VFIO_IOAS,
  IOMMU_VFIO_IOAS_CLEAR,
  IOMMU_VFIO_IOAS_GET,
  IOMMU_VFIO_IOAS_SET,
  IOMMU_FAULT_QUEUE_ALLOC,
  IOMMU_GET_HW_INFO,
  IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_GET_DIRTY_BITMAP,
  IOMMU_HWPT_INVALIDATE,
  IOMMU_HWPT_SET_DIRTY_TRACKING,
  iommu_fault_alloc,
  iommu_hw_info,
  iommu_hwpt_alloc,
  iommu_hwpt_get_dirty_bitmap,
  iommu_hwpt_invalidate,
  iommu_hwpt_set_dirty_tracking,
  iommufdAbi,
  iommu_destroy,
  iommu_ioas_alloc,
  iommu_ioas_allow_iovas,
  iommu_ioas_copy,
  iommu_ioas_iova_ranges,
  iommu_ioas_map,
  iommu_ioas_unmap,
  iommu_option,
  iommu_vfio_ioas,
} from '../../uapi/iommufd.js';
import { _IOC_NR, _IOC_TYPE } from '../../uapi/ioctl.js';
import { vfioAbi } from '../../uapi/vfio.js';
import type { AnyStruct } from '../../uapi/schema.js';
import type { Machine } from '../machine.js';
import { CAP_SYS_RESOURCE, type Process } from '../process.js';
import { copyStructFromUser, copyToUser, getUser32 } from '../uaccess.js';
import { File, type FileOperations, O_RDWR } from '../vfs.js';
import { IommufdIoas, getIoas, ioasAlloc, ioasAllowIovas, ioasCopy, ioasIovaRanges, ioasMap, ioasOption, ioasUnmap } from './ioas.js';
import { IOMMUFD_OBJ, IOPT_PAGES_ACCOUNT, IommufdCtx } from './object.js';
import { Ucmd } from './ucmd.js';
import { iommufdVfioIoctl } from './vfio_compat.js';
import { faultAlloc } from './fault.js';
import { getHwInfo, hwptAlloc, hwptGetDirtyBitmap, hwptInvalidate, hwptSetDirtyTracking } from './hw_pagetable.js';
import { SelftestState, iommufdTest } from './selftest.js';
import { IOMMU_TEST_CMD, iommu_test_cmd } from '../../uapi/iommufd_test.js';

/** The misc device numbers: /dev/iommu gets a dynamic minor; this is what the oracle reports. */
export const MISC_MAJOR = 10;
export const IOMMU_MISC_MINOR = 123;
export const VFIO_MINOR = 196;

export interface IoctlOp<S extends AnyStruct = AnyStruct> {
  readonly cmd: number;
  readonly name: string;
  readonly schema: S;
  readonly minSize: number;
  readonly execute: (u: Ucmd<S>) => number;
}

function op<S extends AnyStruct>(cmd: number, name: string, schema: S, last: string, execute: (u: Ucmd<S>) => number): IoctlOp {
  return { cmd, name, schema, minSize: schema.offsetEnd(last), execute } as unknown as IoctlOp;
}

/** The last NR the table spans: IOMMU_TEST_CMD (IOMMUFD_CMD_BASE + 32) with CONFIG_IOMMUFD_TEST. */
export const IOMMUFD_CMD_LAST = IOMMUFD_CMD_BASE + 32;

export const iommufdIoctlOps: readonly IoctlOp[] = [
  op(IOMMU_DESTROY, 'IOMMU_DESTROY', iommu_destroy, 'id', iommufdDestroy),
  op(IOMMU_IOAS_ALLOC, 'IOMMU_IOAS_ALLOC', iommu_ioas_alloc, 'out_ioas_id', ioasAlloc),
  op(IOMMU_IOAS_ALLOW_IOVAS, 'IOMMU_IOAS_ALLOW_IOVAS', iommu_ioas_allow_iovas, 'allowed_iovas', ioasAllowIovas),
  op(IOMMU_IOAS_COPY, 'IOMMU_IOAS_COPY', iommu_ioas_copy, 'src_iova', ioasCopy),
  op(IOMMU_IOAS_IOVA_RANGES, 'IOMMU_IOAS_IOVA_RANGES', iommu_ioas_iova_ranges, 'out_iova_alignment', ioasIovaRanges),
  op(IOMMU_IOAS_MAP, 'IOMMU_IOAS_MAP', iommu_ioas_map, 'iova', ioasMap),
  op(IOMMU_IOAS_UNMAP, 'IOMMU_IOAS_UNMAP', iommu_ioas_unmap, 'length', ioasUnmap),
  op(IOMMU_OPTION, 'IOMMU_OPTION', iommu_option, 'val64', iommufdOption),
  op(IOMMU_VFIO_IOAS, 'IOMMU_VFIO_IOAS', iommu_vfio_ioas, '__reserved', iommufdVfioIoas),
  op(IOMMU_HWPT_ALLOC, 'IOMMU_HWPT_ALLOC', iommu_hwpt_alloc, '__reserved', hwptAlloc),
  op(IOMMU_GET_HW_INFO, 'IOMMU_GET_HW_INFO', iommu_hw_info, '__reserved', getHwInfo),
  op(IOMMU_HWPT_SET_DIRTY_TRACKING, 'IOMMU_HWPT_SET_DIRTY_TRACKING', iommu_hwpt_set_dirty_tracking, '__reserved', hwptSetDirtyTracking),
  op(IOMMU_HWPT_GET_DIRTY_BITMAP, 'IOMMU_HWPT_GET_DIRTY_BITMAP', iommu_hwpt_get_dirty_bitmap, 'data', hwptGetDirtyBitmap),
  op(IOMMU_HWPT_INVALIDATE, 'IOMMU_HWPT_INVALIDATE', iommu_hwpt_invalidate, '__reserved', hwptInvalidate),
  op(IOMMU_FAULT_QUEUE_ALLOC, 'IOMMU_FAULT_QUEUE_ALLOC', iommu_fault_alloc, 'out_fault_fd', faultAlloc),
  op(IOMMU_TEST_CMD, 'IOMMU_TEST_CMD', iommu_test_cmd, 'last', iommufdTest),
];

function iommufdDestroy(u: Ucmd<typeof iommu_destroy>): number {
  u.ictx.removeUser(u.cmd.id);
  return 0;
}

/** IOMMU_OPTION_RLIMIT_MODE: global to the context, settable only while it holds no objects. */
function optionRlimitMode(u: Ucmd<typeof iommu_option>): void {
  const c = u.cmd;
  if (c.object_id) fail(Errno.EOPNOTSUPP, 'IOMMU_OPTION_RLIMIT_MODE is global: object_id must be 0');
  if (c.op === IOMMU_OPTION_OP_GET) {
    c.val64 = u.ictx.accountMode === IOPT_PAGES_ACCOUNT.MM ? 1n : 0n;
    return;
  }
  if (c.op !== IOMMU_OPTION_OP_SET) fail(Errno.EOPNOTSUPP, `iommu_option.op ${c.op} is neither SET nor GET`);
  if (!u.task.capable(CAP_SYS_RESOURCE)) fail(Errno.EPERM, 'setting IOMMU_OPTION_RLIMIT_MODE needs CAP_SYS_RESOURCE');
  if (!u.ictx.isEmpty) fail(Errno.EBUSY, `IOMMU_OPTION_RLIMIT_MODE can only change while the iommufd holds no objects (it holds ${u.ictx.objectCount})`);
  if (c.val64 === 0n) u.ictx.accountMode = IOPT_PAGES_ACCOUNT.USER;
  else if (c.val64 === 1n) u.ictx.accountMode = IOPT_PAGES_ACCOUNT.MM;
  else fail(Errno.EINVAL, `IOMMU_OPTION_RLIMIT_MODE takes 0 (per user) or 1 (per process), got ${c.val64}`);
}

function iommufdOption(u: Ucmd<typeof iommu_option>): number {
  const c = u.cmd;
  if (c.__reserved) fail(Errno.EOPNOTSUPP, 'iommu_option.__reserved must be 0');
  if (c.option_id === IOMMU_OPTION_RLIMIT_MODE) optionRlimitMode(u);
  else if (c.option_id === IOMMU_OPTION_HUGE_PAGES) ioasOption(u);
  else fail(Errno.EOPNOTSUPP, `iommu_option.option_id ${c.option_id} is unknown`);
  // Only val64 goes back to userspace.
  const val = iommu_option.encode(c).subarray(iommu_option.offsetOf('val64'), iommu_option.offsetEnd('val64'));
  copyToUser(u.task, u.ubuffer + BigInt(iommu_option.offsetOf('val64')), val, 'writing back iommu_option.val64');
  return 0;
}

function iommufdVfioIoas(u: Ucmd<typeof iommu_vfio_ioas>): number {
  const c = u.cmd;
  if (c.__reserved) fail(Errno.EOPNOTSUPP, 'iommu_vfio_ioas.__reserved must be 0');
  switch (c.op) {
    case IOMMU_VFIO_IOAS_GET: {
      const ioas = u.ictx.vfioIoas;
      if (!ioas) fail(Errno.ENODEV, 'no IOAS is set for the VFIO compatibility ioctls');
      c.ioas_id = ioas.id;
      u.respond();
      return 0;
    }
    case IOMMU_VFIO_IOAS_SET:
      u.ictx.vfioIoas = getIoas(u.ictx, u.task, c.ioas_id);
      return 0;
    case IOMMU_VFIO_IOAS_CLEAR:
      u.ictx.vfioIoas = null;
      return 0;
    default:
      return fail(Errno.EOPNOTSUPP, `iommu_vfio_ioas.op ${c.op} is not GET, SET or CLEAR`);
  }
}

/** One loaded iommufd "module" per machine: the /dev/iommu node and its open contexts. */
export class IommufdModule {
  readonly machine: Machine;
  readonly #byNr = new Map<number, IoctlOp>();
  /** Every open context, for invariant checks and the object graph view. */
  readonly contexts = new Set<IommufdCtx>();
  readonly fops: FileOperations;
  /** The IOMMUFD_TEST module's state (CONFIG_IOMMUFD_TEST is on, as on the oracle). */
  readonly selftest: SelftestState;
  /** The allow_unsafe_interrupts module parameter: bind devices whose MSIs the platform cannot isolate. */
  allowUnsafeInterrupts = false;

  constructor(machine: Machine) {
    this.machine = machine;
    this.selftest = new SelftestState(machine);
    for (const o of iommufdIoctlOps) {
      const nr = _IOC_NR(o.cmd);
      if (this.#byNr.has(nr)) throw new Error(`two iommufd ioctls at NR 0x${nr.toString(16)}`);
      this.#byNr.set(nr, o);
    }
    this.fops = {
      name: 'iommufd',
      ioctl: (file, cmd, arg, task) => this.ioctl(file.priv as IommufdCtx, cmd, arg, task),
      release: (file) => this.release(file.priv as IommufdCtx),
    };
    machine.nameIoctls(vfioAbi.ioctls);
    machine.nameIoctls(iommufdAbi.ioctls);
    machine.nameIoctls({ IOMMU_TEST_CMD });
    machine.devices.register('/dev/iommu', {
      major: MISC_MAJOR,
      minor: IOMMU_MISC_MINOR,
      mode: 0o660,
      open: (task, flags, path) => this.open(task, flags, path, IOPT_PAGES_ACCOUNT.USER),
    });
  }

  /** iommufd_fops_open. `accountMode` is MM when opened as /dev/vfio/vfio. */
  open(task: Process, flags: number, path: string, accountMode: 1 | 2): File {
    if (this.machine.inject.shouldFail(task, 'slab')) fail(Errno.ENOMEM, 'allocating the iommufd context: fault injected (fail-nth)');
    const file = new File(this.fops, path, flags ?? O_RDWR, null);
    const ictx = new IommufdCtx(this.machine, file, accountMode);
    file.priv = ictx;
    this.contexts.add(ictx);
    return file;
  }

  release(ictx: IommufdCtx): void {
    ictx.teardown();
    this.contexts.delete(ictx);
  }

  /** iommufd_ctx_from_file: the context behind a file, or EBADFD for any other file. */
  ctxFromFile(file: File): IommufdCtx {
    if (file.ops !== this.fops) fail(Errno.EBADFD, `${file.path} is not an iommufd`);
    return file.priv as IommufdCtx;
  }

  /** iommufd_fops_ioctl. */
  ioctl(ictx: IommufdCtx, cmd: number, arg: bigint, task: Process): number {
    const nr = _IOC_NR(cmd);
    if (nr < IOMMUFD_CMD_BASE || nr > IOMMUFD_CMD_LAST) return this.vfioIoctl(ictx, cmd, arg, task);
    const userSize = getUser32(task, arg, 'reading the ioctl struct size');
    const o = this.#byNr.get(nr);
    if (!o || o.cmd !== cmd) {
      fail(Errno.ENOTTY, o ? `0x${cmd.toString(16)} is not ${o.name} (0x${o.cmd.toString(16)})` : `no iommufd ioctl at NR 0x${nr.toString(16)}${_IOC_TYPE(cmd) === IOMMUFD_TYPE ? '' : ' (wrong ioctl type)'}`);
    }
    if (userSize < o.minSize) fail(Errno.EINVAL, `${o.name}: size ${userSize} is below the minimum ${o.minSize}`);
    const raw = copyStructFromUser(task, o.schema.size, arg, userSize, o.schema.name);
    const u = new Ucmd(ictx, task, arg, userSize, o.schema, o.schema.decode(raw));
    return o.execute(u);
  }

  /** iommufd_vfio_ioctl: commands outside the iommufd range on an iommufd. */
  vfioIoctl(ictx: IommufdCtx, cmd: number, arg: bigint, task: Process): number {
    return iommufdVfioIoctl(ictx, task, cmd, arg);
  }

  /** Every IOAS of every open context. */
  *allIoas(): Generator<IommufdIoas> {
    for (const c of this.contexts) for (const o of c.objects()) if (o.type === IOMMUFD_OBJ.IOAS) yield o as IommufdIoas;
  }
}
