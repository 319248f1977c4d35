/**
 * The slice of /sys that iommufd and VFIO users read to find their devices, computed from the
 * machine's state on every lookup (sysfs holds no state of its own):
 *
 *   /sys/kernel/iommu_groups/N/{devices/BDF@, type, reserved_regions, name (when the group has one)}
 *   /sys/bus/pci/devices/BDF@                      -> ../../../devices/pciDDDD:BB/BDF
 *   /sys/bus/pci/drivers/DRIVER/BDF@               the functions each driver has
 *   /sys/devices/pciDDDD:BB/BDF/                   a PCI function: config (the hardware's config
 *       space; 64 bytes for readers without CAP_SYS_ADMIN, as pci_read_config), vendor, device,
 *       subsystem_vendor, subsystem_device, class, revision, enable, driver_override, and the links
 *       driver@, iommu@ (behind an IOMMU), iommu_group@; registered with VFIO, vfio-dev/vfioN/
 *       {uevent, device@} and, with a cdev (not noiommu), dev
 *   /sys/module/iommufd/parameters/allow_unsafe_interrupts, /sys/module/vfio/{version,
 *       parameters/enable_unsafe_noiommu_mode}, /sys/module/vfio_iommu_type1/{version, parameters/
 *       {allow_unsafe_interrupts, disable_hugepages, dma_entry_limit}}: read by anyone, written by
 *       root, as the modules' S_IWUSR parameters are
 *   /sys/class/vfio-dev/vfioN@, /sys/class/vfio/N@ -> /sys/devices/virtual/vfio/N/{dev, uevent}
 *   /sys/class/iommu/UNIT@ -> /sys/devices/virtual/iommu/UNIT/devices/BDF@
 *
 * (@: a symlink, with the relative target the kernel gives it.) Paths resolve as the VFS resolves
 * them: a link in the middle of a path is followed, a link at its end is followed by open and
 * opendir but read by readlink. Directories list with readdir (`sysfsList`); attributes open as
 * seekable files whose text is fixed at the first read, as sysfs fills a page then (config reads
 * the hardware at every read, like the real binary attribute); only the module parameters take
 * writes, each write parsed whole as the parameter's kernel_param_ops parse it.
 */

import { Errno, fail } from '../errno.js';
import { PciDevice } from '../hw/pci.js';
import { IOMMU_RESV, type IommuGroup, type ResvRegion } from './iommu/core.js';
import type { Machine } from './machine.js';
import { CAP_DAC_OVERRIDE, CAP_SYS_ADMIN, type Process } from './process.js';
import { kstrtobool, kstrtouint } from './lib/kstrtox.js';
import { copyFromUser, copyToUser } from './uaccess.js';
import { VFIO_CDEV_MAJOR, VFIO_GROUP_MAJOR } from './vfio/vfio_main.js';
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
export const SYSFS_ROOTS = [
  '/sys/kernel/iommu_groups',
  '/sys/bus/pci',
  '/sys/devices/virtual/vfio',
  '/sys/devices/virtual/iommu',
  '/sys/class/vfio',
  '/sys/class/vfio-dev',
  '/sys/class/iommu',
  '/sys/module/iommufd',
  '/sys/module/vfio',
  '/sys/module/vfio_iommu_type1',
] as const;
/** PCI root buses (/sys/devices/pciDDDD:BB) are emulated too, whichever the machine has. */
const PCI_ROOT_RE = /^\/sys\/devices\/pci[0-9a-f]{4}:[0-9a-f]{2}(\/|$)/;

/** How many links one lookup follows (MAXSYMLINKS). */
const MAXSYMLINKS = 40;
/** pci_read_config: what a reader without CAP_SYS_ADMIN sees of a conventional function. */
const UNPRIVILEGED_CONFIG = 64;

/** A directory (entries computed when asked), an attribute, or a symlink. */
type Node =
  | { dir: () => Record<string, Node> }
  | { text: () => string; store?: (value: string) => void }
  | { bytes: (task: Process | null) => Uint8Array }
  | { link: string };

const RESV_NAMES: Record<number, string> = {
  [IOMMU_RESV.DIRECT]: 'direct',
  [IOMMU_RESV.DIRECT_RELAXABLE]: 'direct-relaxable',
  [IOMMU_RESV.RESERVED]: 'reserved',
  [IOMMU_RESV.MSI]: 'msi',
  [IOMMU_RESV.SW_MSI]: 'msi',
};

const hex16 = (v: bigint): string => `0x${v.toString(16).padStart(16, '0')}`;
const hexN = (v: number, digits: number): string => `0x${v.toString(16).padStart(digits, '0')}\n`;
const text = (s: string): Node => ({ text: () => s });

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

/** A class device's power/ directory when runtime PM was never enabled for it (as vfioN's). */
const RUNTIME_PM_UNSUPPORTED: Record<string, Node> = {
  autosuspend_delay_ms: { text: () => fail(Errno.EIO, 'autosuspend_delay_ms: the device does not use runtime PM autosuspend') },
  control: text('auto\n'),
  runtime_active_time: text('0\n'),
  runtime_status: text('unsupported\n'),
  runtime_suspended_time: text('0\n'),
};

/** The directory a PCI function's root bus is (pci_bus_add: "pciDDDD:BB"). */
const rootBus = (d: PciDevice): string => `pci${d.segment.toString(16).padStart(4, '0')}:${d.busNr.toString(16).padStart(2, '0')}`;
/** Where a device lives, relative to /sys. */
const devicePath = (d: { name: string }): string => (d instanceof PciDevice ? `devices/${rootBus(d)}/${d.bdf}` : `devices/platform/${d.name}`);

function iommuGroups(m: Machine): Node {
  const group = (g: IommuGroup): Node => ({
    dir: () => ({
      devices: { dir: () => Object.fromEntries(g.devices.map((d) => [d.name, { link: `../../../../${devicePath(d)}` }])) },
      reserved_regions: {
        text: () => groupResvRegions(g).map((r) => `${hex16(r.start)} ${hex16(r.start + r.length - 1n)} ${RESV_NAMES[r.type] ?? 'reserved'}\n`).join(''),
      },
      type: { text: () => `${groupType(g)}\n` },
      ...(g.name !== null ? { name: text(`${g.name}\n`) } : {}),
    }),
  });
  return { dir: () => Object.fromEntries(m.iommu.groups().map((g) => [String(g.id), group(g)])) };
}

/** /sys/devices/pciDDDD:BB/BDF. */
function pciFunction(m: Machine, d: PciDevice): Node {
  const vdev = m.vfio.deviceFor(d);
  const cfg = d.cfg;
  return {
    dir: () => {
      const e: Record<string, Node> = {
        config: {
          bytes: (task) => d.config.slice(0, !task || task.capable(CAP_SYS_ADMIN) ? d.config.length : UNPRIVILEGED_CONFIG),
        },
        vendor: { text: () => hexN(d.vendor, 4) },
        device: { text: () => hexN(d.deviceId, 4) },
        subsystem_vendor: { text: () => hexN(cfg.read(0x2c, 2), 4) },
        subsystem_device: { text: () => hexN(cfg.read(0x2e, 2), 4) },
        class: { text: () => hexN(d.classCode, 6) },
        revision: { text: () => hexN(cfg.read(0x08, 1), 2) },
        // pci_enable_device's count: vfio-pci enables the function while it is open.
        enable: { text: () => `${vdev && vdev.openCount > 0 ? 1 : 0}\n` },
        driver_override: { text: () => `${d.driver === 'vfio-pci' ? 'vfio-pci' : '(null)'}\n` },
      };
      if (d.unit) e.iommu = { link: `../../virtual/iommu/${d.unit.name}` };
      if (d.driver) e.driver = { link: `../../../bus/pci/drivers/${d.driver}` };
      if (d.group) e.iommu_group = { link: `../../../kernel/iommu_groups/${d.group.id}` };
      if (vdev) {
        // A noiommu device is registered without a devt: no dev attribute, nothing in uevent.
        const common: Record<string, Node> = {
          device: { link: `../../../${d.bdf}` },
          subsystem: { link: '../../../../../class/vfio-dev' },
          power: { dir: () => RUNTIME_PM_UNSUPPORTED },
        };
        const chr: Record<string, Node> = vdev.hasCdev
          ? {
              ...common,
              dev: text(`${VFIO_CDEV_MAJOR}:${vdev.index}\n`),
              uevent: text(`MAJOR=${VFIO_CDEV_MAJOR}\nMINOR=${vdev.index}\nDEVNAME=vfio/devices/${vdev.name}\n`),
            }
          : { ...common, uevent: text('') };
        e['vfio-dev'] = { dir: () => ({ [vdev.name]: { dir: () => chr } }) };
      }
      return e;
    },
  };
}

function sysRoot(m: Machine): Node {
  const pci = (): PciDevice[] => m.iommu.pciDevices().sort((a, b) => (a.bdf < b.bdf ? -1 : 1));
  const units = (): string[] => [...new Set(pci().flatMap((d) => (d.unit ? [d.unit.name] : [])))].sort();
  const devices = (): Record<string, Node> => {
    const roots: Record<string, Record<string, Node>> = {};
    for (const d of pci()) (roots[rootBus(d)] ??= {})[d.bdf] = pciFunction(m, d);
    const vfioGroups = Object.fromEntries(
      m.vfio.allGroups().map((g) => [g.name, {
        dir: () => ({ dev: text(`${VFIO_GROUP_MAJOR}:${g.minor}\n`), uevent: text(`MAJOR=${VFIO_GROUP_MAJOR}\nMINOR=${g.minor}\nDEVNAME=vfio/${g.name}\n`) }),
      }]),
    );
    const iommus = Object.fromEntries(units().map((u) => [u, {
      dir: () => ({ devices: { dir: () => Object.fromEntries(pci().filter((d) => d.unit?.name === u).map((d) => [d.bdf, { link: `../../../../${rootBus(d)}/${d.bdf}` }])) } }),
    }]));
    return {
      ...Object.fromEntries(Object.entries(roots).map(([k, v]) => [k, { dir: () => v }])),
      virtual: { dir: () => ({ vfio: { dir: () => vfioGroups }, iommu: { dir: () => iommus } }) },
    };
  };
  const drivers = (): Record<string, Node> => {
    const out: Record<string, Record<string, Node>> = {};
    for (const d of pci()) if (d.driver) (out[d.driver] ??= {})[d.bdf] = { link: `../../../../${devicePath(d)}` };
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, { dir: () => v }]));
  };
  const classes = (): Record<string, Node> => ({
    vfio: { dir: () => Object.fromEntries(m.vfio.allGroups().map((g) => [g.name, { link: `../../devices/virtual/vfio/${g.name}` }])) },
    'vfio-dev': {
      dir: () => Object.fromEntries(m.vfio.devices().filter((v) => v.dev instanceof PciDevice).map((v) => [v.name, { link: `../../${devicePath(v.dev)}/vfio-dev/${v.name}` }])),
    },
    iommu: { dir: () => Object.fromEntries(units().map((u) => [u, { link: `../../devices/virtual/iommu/${u}` }])) },
  });
  return {
    dir: () => ({
      kernel: { dir: () => ({ iommu_groups: iommuGroups(m) }) },
      bus: {
        dir: () => ({
          pci: { dir: () => ({ devices: { dir: () => Object.fromEntries(pci().map((d) => [d.bdf, { link: `../../../${devicePath(d)}` }])) }, drivers: { dir: drivers } }) },
        }),
      },
      devices: { dir: devices },
      class: { dir: classes },
      module: { dir: () => modules(m) },
    }),
  };
}

/** param_get_bool / param_set_bool. */
function boolParam(name: string, get: () => boolean, set: (v: boolean) => void): Node {
  return { text: () => `${get() ? 'Y' : 'N'}\n`, store: (v) => set(kstrtobool(v, name)) };
}

/** param_get_uint / param_set_uint. */
function uintParam(name: string, get: () => number, set: (v: number) => void): Node {
  return { text: () => `${get()}\n`, store: (v) => set(kstrtouint(v, name)) };
}

/** The module parameters (and versions) of iommufd, vfio and vfio_iommu_type1. */
function modules(m: Machine): Record<string, Node> {
  const t1 = m.vfio.type1.params;
  return {
    iommufd: {
      dir: () => ({
        parameters: { dir: () => ({ allow_unsafe_interrupts: boolParam('allow_unsafe_interrupts', () => m.iommufd.allowUnsafeInterrupts, (v) => (m.iommufd.allowUnsafeInterrupts = v)) }) },
      }),
    },
    vfio: {
      dir: () => ({
        parameters: { dir: () => ({ enable_unsafe_noiommu_mode: boolParam('enable_unsafe_noiommu_mode', () => m.vfio.noiommu, (v) => (m.vfio.noiommu = v)) }) },
        version: text('0.3\n'),
      }),
    },
    vfio_iommu_type1: {
      dir: () => ({
        version: text('0.2\n'),
        parameters: {
          dir: () => ({
            allow_unsafe_interrupts: boolParam('allow_unsafe_interrupts', () => t1.allowUnsafeInterrupts, (v) => (t1.allowUnsafeInterrupts = v)),
            disable_hugepages: boolParam('disable_hugepages', () => t1.disableHugepages, (v) => (t1.disableHugepages = v)),
            dma_entry_limit: uintParam('dma_entry_limit', () => t1.dmaEntryLimit, (v) => (t1.dmaEntryLimit = v)),
          }),
        },
      }),
    },
  };
}

const split = (path: string): string[] => path.split('/').filter((p) => p && p !== '.');

/**
 * Resolve `path` (absolute) to a node: links in the middle are followed, and the last one too
 * unless `nofollow`. Null when a component is missing or not a directory.
 */
function resolve(m: Machine, path: string, nofollow: boolean): Node | null {
  const todo = split(path);
  // The directories walked so far, "/" first: ".." and relative link targets climb back up it.
  const stack: Node[] = [{ dir: () => ({ sys: sysRoot(m) }) }];
  let links = 0;
  while (todo.length) {
    const name = todo.shift()!;
    if (name === '..') {
      if (stack.length > 1) stack.pop();
      continue;
    }
    const dir = stack[stack.length - 1]!;
    if (!('dir' in dir)) return null;
    const next = dir.dir()[name];
    if (!next) return null;
    if ('link' in next && (todo.length || !nofollow)) {
      // The tree's links never loop; a loop is an emulator bug, not ELOOP.
      if (++links > MAXSYMLINKS) throw new Error(`${path}: sysfs links loop`);
      todo.unshift(...split(next.link));
      continue;
    }
    stack.push(next);
  }
  return stack[stack.length - 1]!;
}

function lookup(m: Machine, path: string, nofollow = false): Node {
  if (!path.startsWith('/')) fail(Errno.ENOENT, `${path}: not an absolute path`);
  const n = isSysfsPath(path) ? resolve(m, path, nofollow) : null;
  if (!n) fail(Errno.ENOENT, `${path}: no such file or directory`);
  return n;
}

/** Whether `path` is at or below an emulated sysfs root. */
export function isSysfsPath(path: string): boolean {
  return SYSFS_ROOTS.some((r) => path === r || path.startsWith(`${r}/`)) || PCI_ROOT_RE.test(path);
}

const direntType = (n: Node): number => ('dir' in n ? DT_DIR : 'link' in n ? DT_LNK : DT_REG);

/** The entries of an emulated sysfs directory ("." and ".." first, as readdir gives them). */
export function sysfsList(m: Machine, path: string): SysfsDirent[] {
  const n = lookup(m, path);
  if (!('dir' in n)) fail(Errno.ENOTDIR, `${path} is not a directory`);
  const entries = Object.entries(n.dir()).map(([name, e]) => ({ name, type: direntType(e) }));
  return [{ name: '.', type: DT_DIR }, { name: '..', type: DT_DIR }, ...entries];
}

/** readlink of an emulated sysfs link: its relative target; EINVAL for anything else. */
export function sysfsReadlink(m: Machine, path: string): string {
  const n = lookup(m, path, true);
  if (!('link' in n)) fail(Errno.EINVAL, `${path} is not a symbolic link`);
  return n.link;
}

/** Attributes that are 0644 (writable by root in the kernel) without a store here; the rest are 0444. */
const MODE_0644 = new Set(['type', 'enable', 'driver_override', 'config', 'uevent', 'control', 'autosuspend_delay_ms']);

export interface SysfsStat {
  readonly type: 'dir' | 'reg' | 'lnk';
  /** Permission bits. */
  readonly mode: number;
  /** st_size: 0 for directories and links, PAGE_SIZE for text attributes, a binary attribute's size. */
  readonly size: number;
}

/**
 * stat/lstat of an emulated sysfs path (kernfs's view): directories 0755, links 0777, attributes
 * 0444 or 0644. `nofollow` (lstat) leaves a final link unfollowed, unless the path ends in "/";
 * a non-directory named with a trailing "/" is ENOTDIR.
 */
export function sysfsStat(m: Machine, path: string, nofollow: boolean): SysfsStat {
  const slash = path.endsWith('/');
  const n = lookup(m, path, nofollow && !slash);
  if ('dir' in n) return { type: 'dir', mode: 0o755, size: 0 };
  if (slash) fail(Errno.ENOTDIR, `${path}: not a directory`);
  if ('link' in n) return { type: 'lnk', mode: 0o777, size: 0 };
  const name = split(path).at(-1) ?? '';
  const writable = ('text' in n && n.store !== undefined) || MODE_0644.has(name);
  return { type: 'reg', mode: writable ? 0o644 : 0o444, size: 'bytes' in n ? n.bytes(null).length : 4096 };
}

/** An attribute's content as `task` reads it (null: with every privilege). */
function content(n: Node, path: string, task: Process | null): Uint8Array {
  if ('dir' in n) fail(Errno.EISDIR, `${path} is a directory`);
  if ('bytes' in n) return n.bytes(task);
  if ('text' in n) return new TextEncoder().encode(n.text());
  throw new Error(`${path}: lookup returned a link`);
}

/** An emulated sysfs text attribute's text. */
export function sysfsText(m: Machine, path: string): string {
  const n = lookup(m, path);
  if ('bytes' in n) fail(Errno.EINVAL, `${path} is a binary attribute: open and read it`);
  return new TextDecoder().decode(content(n, path, null));
}

/** An emulated sysfs attribute's whole content, as `task` may read it. */
export function sysfsRead(task: Process, path: string): Uint8Array {
  return content(lookup(task.machine, path), path, task);
}

interface AttrFile {
  content: () => Uint8Array;
  store: ((value: string) => void) | null;
}

const attrFops: FileOperations = {
  name: 'sysfs',
  seekable: true,
  read(file: File, task: Process, buf: bigint, count: number): number {
    const data = (file.priv as AttrFile).content();
    const chunk = data.subarray(Math.min(file.pos, data.length), Math.min(file.pos + count, data.length));
    copyToUser(task, buf, chunk, `reading ${file.path}`);
    file.pos += chunk.length;
    return chunk.length;
  },
  write(file: File, task: Process, buf: bigint, count: number): number {
    const store = (file.priv as AttrFile).store;
    if (!store) return fail(Errno.EACCES, `${file.path} is read-only`);
    // kernfs hands sysfs_kf_write at most a page, NUL-terminated; nothing at all is stored for 0 bytes.
    const n = Math.min(count, 4096);
    const bytes = copyFromUser(task, buf, n, `writing ${file.path}`);
    if (!n) return 0;
    // The store reads a C string: it ends at the first NUL.
    const nul = bytes.indexOf(0);
    store(new TextDecoder().decode(nul < 0 ? bytes : bytes.subarray(0, nul)));
    return n;
  },
};

/** Open an emulated sysfs attribute, or null when `path` is outside the emulated roots. */
export function sysfsOpen(task: Process, path: string, flags: number): File | null {
  if (!isSysfsPath(path)) return null;
  const n = lookup(task.machine, path);
  if ('dir' in n) fail(Errno.EISDIR, `${path} is a directory`);
  const store = 'text' in n ? (n.store ?? null) : null;
  if ((flags & 3) !== O_RDONLY) {
    if (!store) fail(Errno.EACCES, `${path} is read-only`);
    // Mode 0644, owned by root.
    if (task.cred.uid !== 0 && !task.capable(CAP_DAC_OVERRIDE)) fail(Errno.EACCES, `${path} is writable by root only`);
  }
  // Text is fixed at the first read, as sysfs fills its page; a binary attribute reads the hardware each time.
  let fixed: Uint8Array | null = null;
  const attr: AttrFile = { content: 'bytes' in n ? () => content(n, path, task) : () => (fixed ??= content(n, path, task)), store };
  return new File(attrFops, path, flags, attr);
}
