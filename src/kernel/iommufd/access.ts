/**
 * iommufd_access: an in-kernel user of an IOAS that reaches user memory through IOVAs without a
 * device — emulated mdev-style drivers, and the selftest's access objects.
 *
 * An access attaches to one IOAS (holding a reference on it), may pin pages by IOVA (only when it
 * declared `needsPinPages`, which raises the IOAS alignment to PAGE_SIZE) and read or write through
 * IOVAs. When userspace unmaps a range an access holds, the io_pagetable calls the access's
 * `unmap` op and retries until the access let go. Pins are kept per area slice exactly as the
 * kernel's access_itree does: one user per pin of a range, the page pinned once however many.
 */

import { Errno, fail } from '../../errno.js';
import { type Frame, PAGE_SIZE_N } from '../mm/physmem.js';
import type { Process } from '../process.js';
import { IOMMU_READ, IOMMU_WRITE, type IoptAccess, type IoptArea } from './io_pagetable.js';
import { type IommufdIoas, getIoas } from './ioas.js';
import type { IoptPages } from './pages.js';
import { IOMMUFD_OBJ, type IommufdCtx, IommufdObject } from './object.js';

export const IOMMUFD_ACCESS_RW_READ = 0;
export const IOMMUFD_ACCESS_RW_WRITE = 1 << 0;
export const IOMMUFD_ACCESS_RW_KTHREAD = 1 << 1;
export const IOMMUFD_ACCESS_RW_SLOW_PATH = 1 << 2;

export interface AccessOps {
  readonly needsPinPages: boolean;
  /** Drop every pin the user holds inside [iova, iova + length). */
  unmap(iova: bigint, length: bigint): void;
}

const hx = (v: bigint): string => `0x${v.toString(16)}`;

/** The areas covering [iova, last] contiguously, with the slice of each; ENOENT at a gap. */
function* contigAreas(ioas: IommufdIoas, iova: bigint, last: bigint): Generator<{ area: IoptArea; cur: bigint; end: bigint }> {
  let cur = iova;
  for (;;) {
    const area = ioas.iopt.areas.iterFirst(cur, cur);
    if (!area || !area.pages || area.start > cur) fail(Errno.ENOENT, `IOVA ${hx(cur)} is not mapped in IOAS ${ioas.id}`);
    const end = last < area.last ? last : area.last;
    yield { area, cur, end };
    if (end === last) return;
    cur = end + 1n;
  }
}

const toIndex = (area: IoptArea, iova: bigint): number => Number(area.startByte(iova) / PAGE_SIZE_N);

function checkProt(area: IoptArea, flags: number): void {
  const need = flags & IOMMUFD_ACCESS_RW_WRITE ? IOMMU_WRITE : IOMMU_READ;
  if (!(area.iommuProt & need)) fail(Errno.EPERM, `the mapping at ${hx(area.start)} is not ${need === IOMMU_WRITE ? 'writeable' : 'readable'}`);
}

export class IommufdAccess extends IommufdObject implements IoptAccess {
  readonly type = IOMMUFD_OBJ.ACCESS;
  readonly ops: AccessOps;
  readonly iovaAlignment: bigint;
  /** The IOAS pins may be taken from (null while detached or changing). */
  ioas: IommufdIoas | null = null;
  /** The IOAS pins are returned to. */
  ioasUnpin: IommufdIoas | null = null;

  constructor(ictx: IommufdCtx, ops: AccessOps) {
    super(ictx);
    this.ops = ops;
    this.iovaAlignment = ops.needsPinPages ? PAGE_SIZE_N : 1n;
  }

  /** iommufd_access_create: published at once, with an extra reference the creator holds. */
  static create(ictx: IommufdCtx, task: Process | null, ops: AccessOps): IommufdAccess {
    const access = ictx.alloc(task, new IommufdAccess(ictx, ops));
    access.users++;
    ictx.file.get();
    ictx.finalize(access);
    return access;
  }

  notifyUnmap(iova: bigint, length: bigint): void {
    this.ops.unmap(iova, length);
  }

  /** iommufd_access_change_ioas. */
  #changeIoas(next: IommufdIoas | null): void {
    const cur = this.ioas;
    if (cur !== this.ioasUnpin) fail(Errno.EBUSY, 'the access is being detached');
    if (cur === next) return;
    this.ioas = null;
    if (next) {
      try {
        next.iopt.addAccess(this);
      } catch (e) {
        this.ioas = cur;
        throw e;
      }
      next.users++;
    }
    if (cur) {
      this.ops.unmap(0n, (1n << 64n) - 1n);
      cur.iopt.removeAccess(this);
      cur.users--;
    }
    this.ioas = next;
    this.ioasUnpin = next;
  }

  /** iommufd_access_attach. */
  attach(task: Process | null, ioasId: number): void {
    if (this.ioas) fail(Errno.EINVAL, 'the access is already attached');
    this.#changeIoas(getIoas(this.ictx, task, ioasId));
  }

  /** iommufd_access_replace. */
  replace(task: Process | null, ioasId: number): void {
    if (!this.ioas) fail(Errno.ENOENT, 'the access is not attached to an IOAS');
    this.#changeIoas(getIoas(this.ictx, task, ioasId));
  }

  /** iommufd_access_destroy: the creator lets go; the object goes with its last user. */
  release(): void {
    this.ictx.removeKernel(this, true);
  }

  destroy(): void {
    if (this.ioas) this.#changeIoas(null);
    this.ictx.file.put();
  }

  /** iommufd_access_pin_pages: pin [iova, iova+length), page aligned within each area. */
  pinPages(task: Process | null, iova: bigint, length: bigint, flags: number): Frame[] {
    if (!this.ops.needsPinPages) fail(Errno.EINVAL, 'this access did not declare that it pins pages');
    if (length === 0n) fail(Errno.EINVAL, 'length is 0');
    const last = iova + length - 1n;
    if (last >= 1n << 64n) fail(Errno.EOVERFLOW, `iova ${hx(iova)} + length overflows`);
    const ioas = this.ioas;
    if (!ioas) fail(Errno.ENOENT, 'the access is not attached to an IOAS');
    const done: { area: IoptArea; first: number; lastIdx: number }[] = [];
    const out: Frame[] = [];
    try {
      for (const { area, cur, end } of contigAreas(ioas, iova, last)) {
        const aligned = area.startByte(cur) % PAGE_SIZE_N === 0n && (end === last || area.startByte(area.last) % PAGE_SIZE_N === PAGE_SIZE_N - 1n);
        if (area.preventAccess || !aligned) fail(Errno.EINVAL, area.preventAccess ? `the mapping at ${hx(area.start)} is being unmapped` : `[${hx(cur)}, ${hx(end)}] does not cover whole pages`);
        checkProt(area, flags);
        if (flags & IOMMUFD_ACCESS_RW_WRITE && !area.pages!.writable) fail(Errno.EPERM, 'the pages were mapped read-only');
        const first = toIndex(area, cur);
        const lastIdx = toIndex(area, end);
        out.push(...area.pages!.pin(task, first, lastIdx));
        area.numAccesses++;
        done.push({ area, first, lastIdx });
      }
    } catch (e) {
      for (const d of done) {
        d.area.numAccesses--;
        d.area.pages!.unpin(d.first, d.lastIdx);
      }
      throw e;
    }
    return out;
  }

  /** iommufd_access_unpin_pages. */
  unpinPages(iova: bigint, length: bigint): void {
    const ioas = this.ioasUnpin;
    if (!ioas || length === 0n) throw new Error('unpin of an access that holds nothing there');
    for (const { area, cur, end } of contigAreas(ioas, iova, iova + length - 1n)) {
      area.numAccesses--;
      area.pages!.unpin(toIndex(area, cur), toIndex(area, end));
    }
  }

  /**
   * iommufd_access_rw: copy between `data` and the memory behind [iova, iova+data.length).
   * From the process that mapped the memory this is a plain copy to or from its current mappings
   * (copy_*_user, EFAULT where nothing is mapped now). From anywhere else, or with SLOW_PATH, the
   * pages are reached as the kernel's slow paths do: a lone page by pinning it for the copy, longer
   * runs through pins some user already holds (they outlive the mapping process) or fresh pins.
   */
  rw(task: Process | null, iova: bigint, data: Uint8Array, flags: number): void {
    if (data.length === 0) fail(Errno.EINVAL, 'length is 0');
    const last = iova + BigInt(data.length) - 1n;
    if (last >= 1n << 64n) fail(Errno.EOVERFLOW, `iova ${hx(iova)} + length overflows`);
    const ioas = this.ioas;
    if (!ioas) fail(Errno.ENOENT, 'the access is not attached to an IOAS');
    let off = 0;
    for (const { area, cur, end } of contigAreas(ioas, iova, last)) {
      if (area.preventAccess) fail(Errno.EINVAL, `the mapping at ${hx(area.start)} is being unmapped`);
      checkProt(area, flags);
      const n = Number(end - cur) + 1;
      rwPages(task, area.pages!, area.startByte(cur), data.subarray(off, off + n), flags);
      off += n;
    }
  }
}

/** iopt_pages_rw_access. */
function rwPages(task: Process | null, pages: IoptPages, startByte: bigint, data: Uint8Array, flags: number): void {
  const write = (flags & IOMMUFD_ACCESS_RW_WRITE) !== 0;
  if (write && !pages.writable) fail(Errno.EPERM, 'the pages were mapped read-only');
  const firstIdx = Number(startByte / PAGE_SIZE_N);
  const lastIdx = Number((startByte + BigInt(data.length) - 1n) / PAGE_SIZE_N);
  const changeMm = task?.mm !== pages.sourceMm || (flags & IOMMUFD_ACCESS_RW_SLOW_PATH) !== 0;
  const inject = pages.sourceTask.machine.inject;
  if (!changeMm || flags & IOMMUFD_ACCESS_RW_KTHREAD) {
    const uaddr = pages.uptr + startByte;
    if (write) pages.sourceMm.write(uaddr, data);
    else data.set(pages.sourceMm.read(uaddr, data.length));
    return;
  }
  if (firstIdx === lastIdx && pages.sourceMm.alive) {
    // iopt_pages_rw_page: pin the one page for the copy.
    if (inject.shouldFail(task, 'iommufd')) fail(Errno.EINVAL, 'pinning the page to copy: fault injected (fail-nth)');
    copyFrame(pages.sourceMm.frameAt(pages.uptr + BigInt(firstIdx) * PAGE_SIZE_N, write), Number(startByte % PAGE_SIZE_N), data, write);
    return;
  }
  // iopt_pages_rw_slow: through pins users hold, else fresh pins from the source mm.
  let off = 0;
  let byte = startByte;
  while (off < data.length) {
    const idx = Number(byte / PAGE_SIZE_N);
    const inPage = Number(byte % PAGE_SIZE_N);
    const n = Math.min(Number(PAGE_SIZE_N) - inPage, data.length - off);
    let frame = pages.frameAt(idx);
    if (!frame) {
      if (inject.shouldFail(task, 'iommufd')) fail(Errno.EFAULT, 'pinning user pages: fault injected (fail-nth)');
      if (!pages.sourceMm.alive) fail(Errno.EFAULT, 'the mapping process has exited and the page is not pinned');
      frame = pages.sourceMm.frameAt(pages.uptr + BigInt(idx) * PAGE_SIZE_N, pages.writable);
    }
    copyFrame(frame, inPage, data.subarray(off, off + n), write);
    off += n;
    byte += BigInt(n);
  }
}

function copyFrame(frame: Frame, offset: number, data: Uint8Array, write: boolean): void {
  if (write) frame.write(offset, data);
  else data.set(frame.read(offset, data.length));
}
