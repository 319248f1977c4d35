/**
 * Fault objects (fault.c): an IO page fault queue userspace reads from an fd ("[iommufd-pgfault]")
 * and answers by writing page responses. A HWPT allocated with IOMMU_HWPT_FAULT_ID_VALID routes
 * its devices' IO page faults here.
 *
 * The file holds a reference on the object and on the iommufd context, so IOMMU_DESTROY of a
 * fault whose fd is open is EBUSY and the context outlives the iommufd fd. Reads deliver whole
 * fault groups of struct iommu_hwpt_pgfault; each delivered group waits, under its cookie, for a
 * struct iommu_hwpt_page_response. Without a device that faults, the queue stays empty: reads
 * return 0, responses name no cookie (EINVAL), and poll reports only POLLOUT.
 */

import { Errno, fail } from '../../errno.js';
import {
  IOMMUFD_PAGE_RESP_INVALID,
  IOMMUFD_PAGE_RESP_SUCCESS,
  type iommu_fault_alloc,
  iommu_hwpt_page_response,
  iommu_hwpt_pgfault,
} from '../../uapi/iommufd.js';
import type { AttachHandle, IopfGroup, IopfHandler } from '../iommu/core.js';
import { copyFromUser, copyToUser } from '../uaccess.js';
import { File, type FileOperations, O_RDWR, POLLIN, POLLOUT } from '../vfs.js';
import { IOMMUFD_OBJ, type IommufdCtx, IommufdObject } from './object.js';
import type { Ucmd } from './ucmd.js';

/** One group of faults a device raised together, delivered and answered as a unit. */
export interface FaultGroup {
  /** Each fault's iommu_hwpt_pgfault fields; `cookie` is filled in at delivery. */
  faults: Omit<Parameters<typeof iommu_hwpt_pgfault.encode>[0] & object, 'cookie'>[];
  /** Called once with the response code (SUCCESS or INVALID). */
  respond(code: number): void;
  cookie?: number;
  /** The attach handle the faulting device was attached through (iopf_group->attach_handle). */
  handle?: AttachHandle | null;
}

const RDNORM = 0x40;

export class IommufdFault extends IommufdObject {
  readonly type = IOMMUFD_OBJ.FAULT;
  readonly deliver: FaultGroup[] = [];
  readonly response = new Map<number, FaultGroup>();
  file: File | null = null;

  /** Queue a group for userspace (the IOPF handler's half). */
  report(group: FaultGroup): void {
    this.deliver.push(group);
  }

  /**
   * iommufd_fault_iopf_handler: a HWPT with this fault queue gets IO page faults delivered here,
   * each fault stamped with the iommufd device ID of the device that raised it.
   */
  handlerFor(): IopfHandler {
    return (g: IopfGroup) => {
      const devId = (g.handle as AttachHandle & { idev?: { id: number } }).idev?.id ?? 0;
      this.report({
        faults: g.faults.map((f) => ({ flags: f.flags, dev_id: devId, pasid: f.pasid, grpid: f.grpid, perm: f.perm, __reserved: 0, addr: f.addr, length: 0 })),
        respond: (code) => g.respond(code),
        handle: g.handle,
      });
    };
  }

  /**
   * iommufd_auto_response_faults: a device leaving the HWPT gets INVALID for every group it raised
   * that userspace has not answered, delivered or not.
   */
  autoRespond(handle: AttachHandle | null): void {
    for (let i = 0; i < this.deliver.length; ) {
      const g = this.deliver[i]!;
      if (g.handle !== handle) {
        i++;
        continue;
      }
      this.deliver.splice(i, 1);
      g.respond(IOMMUFD_PAGE_RESP_INVALID);
    }
    for (const [cookie, g] of this.response) {
      if (g.handle !== handle) continue;
      this.response.delete(cookie);
      g.respond(IOMMUFD_PAGE_RESP_INVALID);
    }
  }

  destroy(): void {
    for (const g of this.deliver.splice(0)) g.respond(IOMMUFD_PAGE_RESP_INVALID);
    for (const g of this.response.values()) g.respond(IOMMUFD_PAGE_RESP_INVALID);
    this.response.clear();
  }

  read(task: Parameters<NonNullable<FileOperations['read']>>[1], buf: bigint, count: number, pos: number): number {
    const size = iommu_hwpt_pgfault.size;
    if (pos || count % size) fail(Errno.ESPIPE, `fault reads must start at 0 and be a multiple of ${size} bytes`);
    let done = 0;
    while (this.deliver.length) {
      const group = this.deliver[0]!;
      if (done >= count || group.faults.length * size > count - done) {
        if (done === 0) fail(Errno.EINVAL, `a ${count}-byte read cannot hold the next fault group of ${group.faults.length} faults`);
        break;
      }
      // xa_alloc in an ALLOC1 xarray: the lowest free cookie from 1.
      let cookie = 1;
      while (this.response.has(cookie)) cookie++;
      let off = done;
      try {
        for (const f of group.faults) {
          copyToUser(task, buf + BigInt(off), iommu_hwpt_pgfault.encode({ ...f, cookie }), 'delivering a fault');
          off += size;
        }
      } catch (e) {
        // The group stays queued; what earlier groups delivered stands.
        if (done === 0) throw e;
        break;
      }
      this.deliver.shift();
      group.cookie = cookie;
      this.response.set(cookie, group);
      done = off;
    }
    return done;
  }

  write(task: Parameters<NonNullable<FileOperations['write']>>[1], buf: bigint, count: number, pos: number): number {
    const size = iommu_hwpt_page_response.size;
    if (pos || count % size) fail(Errno.ESPIPE, `fault responses must start at 0 and be a multiple of ${size} bytes`);
    let done = 0;
    try {
      while (count > done) {
        const r = iommu_hwpt_page_response.decode(copyFromUser(task, buf + BigInt(done), size, 'reading a page response'));
        if (r.code !== IOMMUFD_PAGE_RESP_SUCCESS && r.code !== IOMMUFD_PAGE_RESP_INVALID) fail(Errno.EINVAL, `page response code ${r.code} is neither SUCCESS nor INVALID`);
        const group = this.response.get(r.cookie);
        if (!group) fail(Errno.EINVAL, `no delivered fault group has cookie ${r.cookie}`);
        this.response.delete(r.cookie);
        group.respond(r.code);
        done += size;
      }
    } catch (e) {
      if (done === 0) throw e;
    }
    return done;
  }
}

const faultFops: FileOperations = {
  name: '[iommufd-pgfault]',
  read: (file, task, buf, count) => (file.priv as IommufdFault).read(task, buf, count, file.pos),
  write: (file, task, buf, count) => (file.priv as IommufdFault).write(task, buf, count, file.pos),
  poll: (file) => ((file.priv as IommufdFault).deliver.length ? POLLOUT | POLLIN | RDNORM : POLLOUT),
  release: (file) => {
    const fault = file.priv as IommufdFault;
    fault.users--;
    fault.ictx.file.put();
  },
};

/** IOMMU_FAULT_QUEUE_ALLOC. */
export function faultAlloc(u: Ucmd<typeof iommu_fault_alloc>): number {
  if (u.cmd.flags) fail(Errno.EOPNOTSUPP, `iommu_fault_alloc.flags must be 0, got 0x${u.cmd.flags.toString(16)}`);
  const ictx: IommufdCtx = u.ictx;
  const fault = ictx.alloc(u.task, new IommufdFault(ictx));
  const file = new File(faultFops, '[iommufd-pgfault]', O_RDWR, fault);
  fault.file = file;
  fault.users++;
  ictx.file.get();
  let fd = -1;
  try {
    fd = u.task.reserveFd();
    u.cmd.out_fault_id = fault.id;
    u.cmd.out_fault_fd = fd;
    u.respond();
  } catch (e) {
    if (fd >= 0) u.task.unreserveFd(fd);
    file.put();
    ictx.abortAndDestroy(fault);
    throw e;
  }
  ictx.finalize(fault);
  u.task.installFdAt(fd, file);
  return 0;
}
