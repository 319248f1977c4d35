/**
 * The slice of /sys that iommufd and VFIO users read to find their devices, computed from the
 * machine's state on every lookup (sysfs holds no state of its own):
 *
 *   /sys/kernel/iommu_groups/                      one directory per IOMMU group, by ID
 *   /sys/kernel/iommu_groups/N/devices/NAME        a link per device of the group
 *   /sys/kernel/iommu_groups/N/type                the default domain's type ("DMA", "identity", ...)
 *   /sys/kernel/iommu_groups/N/reserved_regions    "0x%016llx 0x%016llx %s" per region, merged
 *
 * Directories list with readdir (`sysfsList`); attributes open as read-only seekable files whose
 * text is fixed at open, as sysfs fills a page at the first read.
 */

import { Errno, fail } from '../errno.js';
import { IOMMU_RESV, type IommuGroup, type ResvRegion } from './iommu/core.js';
import type { Machine } from './machine.js';
import type { Process } from './process.js';
import { copyToUser } from './uaccess.js';
import { File, type FileOperations, O_RDONLY } from './vfs.js';

/** d_type values (dirent.h). */
export const DT_DIR = 4;
export const DT_REG = 8;
export const DT_LNK = 10;

export interface SysfsDirent {
  name: string;
  type: number;
}

/** The sysfs prefixes this module answers for; everything below them is emulated, nothing else. */
export const SYSFS_ROOTS = ['/sys/kernel/iommu_groups'] as const;

type Node = { dir: SysfsDirent[] } | { text: string };

const RESV_NAMES: Record<number, string> = {
  [IOMMU_RESV.DIRECT]: 'direct',
  [IOMMU_RESV.DIRECT_RELAXABLE]: 'direct-relaxable',
  [IOMMU_RESV.RESERVED]: 'reserved',
  [IOMMU_RESV.MSI]: 'msi',
  [IOMMU_RESV.SW_MSI]: 'msi',
};

const hex16 = (v: bigint): string => `0x${v.toString(16).padStart(16, '0')}`;

/** iommu_get_group_resv_regions: every device's regions sorted by start, each merged with the last of its type it overlaps or touches. */
function groupResvRegions(g: IommuGroup): ResvRegion[] {
  const all: ResvRegion[] = [];
  for (const d of g.devices) if (d.iommu) all.push(...d.ops.getResvRegions(d));
  all.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : a.type - b.type));
  const out: ResvRegion[] = [];
  for (const r of all) {
    const prev = [...out].reverse().find((o) => o.type === r.type);
    if (prev && r.start <= prev.start + prev.length) {
      const end = r.start + r.length > prev.start + prev.length ? r.start + r.length : prev.start + prev.length;
      prev.length = end - prev.start;
    } else {
      out.push({ ...r });
    }
  }
  return out;
}

/** iommu_group_show_type. */
function groupType(g: IommuGroup): string {
  switch (g.defaultDomain?.type) {
    case 'blocked':
      return 'blocked';
    case 'identity':
      return 'identity';
    case 'unmanaged':
      return 'unmanaged';
    case 'dma':
      return 'DMA';
    default:
      return 'unknown';
  }
}

function lookup(m: Machine, path: string): Node | null {
  const parts = path.replace(/\/+$/, '').split('/').filter(Boolean);
  if (parts.length < 3 || parts[0] !== 'sys' || parts[1] !== 'kernel' || parts[2] !== 'iommu_groups') return null;
  if (parts.length === 3) return { dir: m.iommu.groups().map((g) => ({ name: String(g.id), type: DT_DIR })) };
  const idText = parts[3]!;
  const g = /^\d+$/.test(idText) ? m.iommu.group(Number(idText)) : undefined;
  if (!g) return null;
  if (parts.length === 4) {
    return { dir: [{ name: 'devices', type: DT_DIR }, { name: 'reserved_regions', type: DT_REG }, { name: 'type', type: DT_REG }] };
  }
  const leaf = parts[4]!;
  if (parts.length === 5 && leaf === 'type') return { text: `${groupType(g)}\n` };
  if (parts.length === 5 && leaf === 'reserved_regions') {
    return { text: groupResvRegions(g).map((r) => `${hex16(r.start)} ${hex16(r.start + r.length - 1n)} ${RESV_NAMES[r.type] ?? 'reserved'}\n`).join('') };
  }
  if (leaf === 'devices') {
    if (parts.length === 5) return { dir: g.devices.map((d) => ({ name: d.name, type: DT_LNK })) };
    if (parts.length === 6 && g.devices.some((d) => d.name === parts[5])) return { dir: [] };
  }
  return null;
}

/** Whether `path` is at or below an emulated sysfs root. */
export function isSysfsPath(path: string): boolean {
  return SYSFS_ROOTS.some((r) => path === r || path.startsWith(`${r}/`));
}

/** The entries of an emulated sysfs directory ("." and ".." first, as readdir gives them). */
export function sysfsList(m: Machine, path: string): SysfsDirent[] {
  const n = lookup(m, path);
  if (!n) fail(Errno.ENOENT, `${path}: no such file or directory`);
  if (!('dir' in n)) fail(Errno.ENOTDIR, `${path} is not a directory`);
  return [{ name: '.', type: DT_DIR }, { name: '..', type: DT_DIR }, ...n.dir];
}

const attrFops: FileOperations = {
  name: 'sysfs',
  seekable: true,
  read(file: File, task: Process, buf: bigint, count: number): number {
    const text = file.priv as Uint8Array;
    const chunk = text.subarray(Math.min(file.pos, text.length), Math.min(file.pos + count, text.length));
    copyToUser(task, buf, chunk, `reading ${file.path}`);
    file.pos += chunk.length;
    return chunk.length;
  },
  write(file: File): number {
    return fail(Errno.EACCES, `${file.path} is read-only`);
  },
};

/** An emulated sysfs attribute's text. */
export function sysfsText(m: Machine, path: string): string {
  const n = isSysfsPath(path) ? lookup(m, path) : null;
  if (!n) fail(Errno.ENOENT, `${path}: no such file or directory`);
  if ('dir' in n) fail(Errno.EISDIR, `${path} is a directory`);
  return n.text;
}

/** Open an emulated sysfs attribute, or null when `path` is outside the emulated roots. */
export function sysfsOpen(task: Process, path: string, flags: number): File | null {
  if (!isSysfsPath(path)) return null;
  const n = lookup(task.machine, path);
  if (!n) fail(Errno.ENOENT, `${path}: no such file or directory`);
  if ('dir' in n) fail(Errno.EISDIR, `${path} is a directory`);
  if ((flags & 3) !== O_RDONLY) fail(Errno.EACCES, `${path} is read-only`);
  return new File(attrFops, path, flags, new TextEncoder().encode(n.text));
}
