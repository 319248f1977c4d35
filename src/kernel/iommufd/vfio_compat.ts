/**
 * The VFIO type1 container API on an iommufd (vfio_compat.c): what VFIO_* container ioctls do when
 * issued on /dev/iommu (or on /dev/vfio/vfio when iommufd provides it). They act on the context's
 * compat IOAS (`ictx.vfioIoas`), which userspace sets with IOMMU_VFIO_IOAS or the VFIO group code
 * creates when a group joins. VFIO's conventions apply here, not iommufd's: argsz must cover the
 * mandatory fields (EINVAL), unknown flags are EINVAL, and commands iommufd does not emulate are
 * ENOTTY.
 *
 * TYPE1 (v0) allowed unmapping part of a mapping; iommufd emulates it by turning large pages off
 * and cutting areas at the unmap's edges before unmapping.
 */

import { Errno, fail } from '../../errno.js';
import {
  VFIO_API_VERSION,
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_CC_IOMMU,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_GET_API_VERSION,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_NOIOMMU_IOMMU,
  VFIO_SET_IOMMU,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UNMAP_ALL,
  vfio_info_cap_header,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info,
  vfio_iommu_type1_info_cap_iova_range,
  vfio_iommu_type1_info_dma_avail,
  vfio_iova_range,
} from '../../uapi/vfio.js';
import { PAGE_SIZE_N } from '../mm/physmem.js';
import { CAP_SYS_RAWIO, type Process } from '../process.js';
import { copyFromUser, copyToUser } from '../uaccess.js';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE, ULONG_MAX } from './io_pagetable.js';
import { IommufdIoas, mapUserPages } from './ioas.js';
import type { IommufdCtx } from './object.js';

/** CONFIG_VFIO_NOIOMMU, as on the oracle's kernel. */
const CONFIG_VFIO_NOIOMMU = true;

/** get_compat_ioas. */
function compatIoas(ictx: IommufdCtx): IommufdIoas {
  const ioas = ictx.vfioIoas;
  if (!(ioas instanceof IommufdIoas)) fail(Errno.ENODEV, 'no compat IOAS: set one with IOMMU_VFIO_IOAS or attach a VFIO group first');
  return ioas;
}

function mapDma(ictx: IommufdCtx, task: Process, arg: bigint): number {
  const minsz = vfio_iommu_type1_dma_map.offsetEnd('size');
  const map = vfio_iommu_type1_dma_map.decode(copyFromUser(task, arg, minsz, 'reading vfio_iommu_type1_dma_map'));
  const supported = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
  if (map.argsz < minsz) fail(Errno.EINVAL, `vfio_iommu_type1_dma_map.argsz ${map.argsz} is below ${minsz}`);
  if (map.flags & ~supported) fail(Errno.EINVAL, `vfio_iommu_type1_dma_map.flags has unsupported bits 0x${(map.flags & ~supported).toString(16)}`);
  let prot = IOMMU_CACHE;
  if (map.flags & VFIO_DMA_MAP_FLAG_READ) prot |= IOMMU_READ;
  if (map.flags & VFIO_DMA_MAP_FLAG_WRITE) prot |= IOMMU_WRITE;
  const ioas = compatIoas(ictx);
  mapUserPages(ictx, task, ioas, map.vaddr, map.size, map.iova, prot);
  return 0;
}

function unmapDma(ictx: IommufdCtx, task: Process, arg: bigint): number {
  const minsz = vfio_iommu_type1_dma_unmap.offsetEnd('size');
  const unmap = vfio_iommu_type1_dma_unmap.decode(copyFromUser(task, arg, minsz, 'reading vfio_iommu_type1_dma_unmap'));
  if (unmap.argsz < minsz) fail(Errno.EINVAL, `vfio_iommu_type1_dma_unmap.argsz ${unmap.argsz} is below ${minsz}`);
  if (unmap.flags & ~VFIO_DMA_UNMAP_FLAG_ALL) fail(Errno.EINVAL, `vfio_iommu_type1_dma_unmap.flags has unsupported bits 0x${(unmap.flags & ~VFIO_DMA_UNMAP_FLAG_ALL).toString(16)}`);
  const { iopt } = compatIoas(ictx);
  let res;
  if (unmap.flags & VFIO_DMA_UNMAP_FLAG_ALL) {
    if (unmap.iova !== 0n || unmap.size !== 0n) fail(Errno.EINVAL, 'VFIO_DMA_UNMAP_FLAG_ALL needs iova and size 0');
    res = iopt.unmapAll();
  } else {
    if (iopt.disableLargePages) {
      const cuts = [BigInt.asUintN(64, unmap.iova + unmap.size - 1n), BigInt.asUintN(64, unmap.iova - 1n)];
      iopt.cutIova(task, unmap.iova ? cuts : cuts.slice(0, 1));
    }
    res = iopt.unmapIova(unmap.iova, unmap.size);
  }
  unmap.size = res.unmapped;
  copyToUser(task, arg, vfio_iommu_type1_dma_unmap.encode(unmap).subarray(0, minsz), 'writing back vfio_iommu_type1_dma_unmap');
  if (res.error) throw res.error;
  return 0;
}

/** iommufd_vfio_cc_iommu: 1 when every HWPT of the compat IOAS enforces cache coherency. */
function ccIommu(ictx: IommufdCtx): number {
  const ioas = compatIoas(ictx);
  return ioas.hwptList.every((h) => h.enforceCacheCoherency) ? 1 : 0;
}

function checkExtension(ictx: IommufdCtx, type: bigint): number {
  switch (type) {
    case BigInt(VFIO_TYPE1_IOMMU):
    case BigInt(VFIO_TYPE1v2_IOMMU):
    case BigInt(VFIO_UNMAP_ALL):
      return ictx.noIommuMode ? 0 : 1;
    case BigInt(VFIO_NOIOMMU_IOMMU):
      return CONFIG_VFIO_NOIOMMU ? 1 : 0;
    case BigInt(VFIO_DMA_CC_IOMMU):
      return ccIommu(ictx);
    default:
      // TYPE1_NESTING and UPDATE_VADDR are deliberately unsupported; the rest are other drivers'.
      return 0;
  }
}

function setIommu(ictx: IommufdCtx, task: Process, type: bigint): number {
  if (CONFIG_VFIO_NOIOMMU && type === BigInt(VFIO_NOIOMMU_IOMMU) && ictx.noIommuMode) {
    if (!task.capable(CAP_SYS_RAWIO)) fail(Errno.EPERM, 'VFIO_NOIOMMU_IOMMU needs CAP_SYS_RAWIO');
    return 0;
  }
  if (type !== BigInt(VFIO_TYPE1_IOMMU) && type !== BigInt(VFIO_TYPE1v2_IOMMU)) {
    fail(Errno.EINVAL, `VFIO_SET_IOMMU type ${type} is not TYPE1 or TYPE1v2 (iommufd emulates only those)`);
  }
  if (ictx.noIommuMode) fail(Errno.EINVAL, 'this container is in no-IOMMU mode');
  const ioas = compatIoas(ictx);
  if (type === BigInt(VFIO_TYPE1_IOMMU)) ioas.iopt.disableLarge();
  return 0;
}

/** iommufd_get_pagesizes: what every domain supports, at least PAGE_SIZE granular. */
function pageSizes(ioas: IommufdIoas): bigint {
  let bitmap = ULONG_MAX;
  for (const d of ioas.iopt.domains) bitmap &= d.pgsizeBitmap;
  if (bitmap & (PAGE_SIZE_N - 1n)) bitmap = (bitmap & ~(PAGE_SIZE_N - 1n)) | PAGE_SIZE_N;
  return bitmap > ioas.iopt.iovaAlignment ? bitmap : ioas.iopt.iovaAlignment;
}

type FillCap = (task: Process, ioas: IommufdIoas, at: bigint | null, avail: number) => number;

const fillDmaAvail: FillCap = (task, _ioas, at, avail) => {
  const cap = vfio_iommu_type1_info_dma_avail.encode({ header: { id: VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, version: 1, next: 0 }, avail: 0xffffffff });
  if (at !== null && avail >= cap.length) copyToUser(task, at, cap, 'writing the DMA_AVAIL capability');
  return cap.length;
};

const fillIovaRanges: FillCap = (task, ioas, at, avail) => {
  const head = vfio_iommu_type1_info_cap_iova_range.size;
  const elm = vfio_iova_range.size;
  let n = 0;
  for (const span of ioas.iopt.reserved.spans(0n, ULONG_MAX)) {
    if (!span.isHole) continue;
    if (at !== null && avail >= head + elm * (n + 1)) {
      copyToUser(task, at + BigInt(head + elm * n), vfio_iova_range.encode({ start: span.start, end: span.last }), 'writing an IOVA range');
    }
    n++;
  }
  if (at !== null && avail >= head + elm * n) {
    const cap = vfio_iommu_type1_info_cap_iova_range.encode({ header: { id: VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, version: 1, next: 0 }, nr_iovas: n });
    copyToUser(task, at, cap, 'writing the IOVA_RANGE capability');
  }
  return head + elm * n;
};

function iommuGetInfo(ictx: IommufdCtx, task: Process, arg: bigint): number {
  const need = vfio_iommu_type1_info.offsetEnd('iova_pgsizes');
  const info = vfio_iommu_type1_info.decode(copyFromUser(task, arg, need, 'reading vfio_iommu_type1_info'));
  if (info.argsz < need) fail(Errno.EINVAL, `vfio_iommu_type1_info.argsz ${info.argsz} is below ${need}`);
  const copyBack = Math.min(info.argsz, vfio_iommu_type1_info.size);
  const ioas = compatIoas(ictx);
  info.flags = VFIO_IOMMU_INFO_PGSIZES;
  info.iova_pgsizes = pageSizes(ioas);
  info.cap_offset = 0;
  let total = vfio_iommu_type1_info.size;
  let lastCap: bigint | null = null;
  for (const fill of [fillDmaAvail, fillIovaRanges]) {
    let size = info.argsz > total ? fill(task, ioas, arg + BigInt(total), info.argsz - total) : fill(task, ioas, null, 0);
    size = Math.ceil(size / 8) * 8;
    if (lastCap !== null && info.argsz >= total) {
      const next = new Uint8Array(4);
      new DataView(next.buffer).setUint32(0, total, true);
      copyToUser(task, lastCap + BigInt(vfio_info_cap_header.offsetOf('next')), next, 'linking the capability chain');
    }
    lastCap = arg + BigInt(total);
    total += size;
  }
  if (info.argsz >= total) info.cap_offset = vfio_iommu_type1_info.size;
  info.argsz = total;
  info.flags |= VFIO_IOMMU_INFO_CAPS;
  copyToUser(task, arg, vfio_iommu_type1_info.encode(info).subarray(0, copyBack), 'writing back vfio_iommu_type1_info');
  return 0;
}

/** iommufd_vfio_ioctl: VFIO container commands on an iommufd. */
export function iommufdVfioIoctl(ictx: IommufdCtx, task: Process, cmd: number, arg: bigint): number {
  switch (cmd) {
    case VFIO_GET_API_VERSION:
      return VFIO_API_VERSION;
    case VFIO_SET_IOMMU:
      return setIommu(ictx, task, arg);
    case VFIO_CHECK_EXTENSION:
      return checkExtension(ictx, arg);
    case VFIO_IOMMU_GET_INFO:
      return iommuGetInfo(ictx, task, arg);
    case VFIO_IOMMU_MAP_DMA:
      return mapDma(ictx, task, arg);
    case VFIO_IOMMU_UNMAP_DMA:
      return unmapDma(ictx, task, arg);
    default:
      return fail(Errno.ENOTTY, `0x${cmd.toString(16)} is neither an iommufd ioctl nor a VFIO container ioctl iommufd emulates${cmd === 0x3b75 ? ' (VFIO_IOMMU_DIRTY_PAGES is not supported)' : ''}`);
  }
}


/**
 * iommufd_vfio_compat_ioas_create: the VFIO group code's compat IOAS, made unless one exists
 * (the new object's ID is taken and given back then). It counts as a user object: destroyable,
 * and gone with the context.
 */
export function compatIoasCreate(ictx: IommufdCtx, task: Process): void {
  const ioas = ictx.alloc(task, new IommufdIoas(ictx));
  if (ictx.vfioIoas instanceof IommufdIoas) {
    ictx.abortObject(ioas);
    return;
  }
  ictx.vfioIoas = ioas;
  ictx.finalize(ioas);
}

/** iommufd_vfio_compat_set_no_iommu: only a context without a compat IOAS. */
export function compatSetNoIommu(ictx: IommufdCtx): void {
  if (ictx.vfioIoas) fail(Errno.EINVAL, 'this iommufd already has a compat IOAS; it cannot serve a noiommu group');
  ictx.noIommuMode = true;
}

/** iommufd_vfio_compat_ioas_get_id. */
export function compatIoasGetId(ictx: IommufdCtx): number {
  return compatIoas(ictx).id;
}
