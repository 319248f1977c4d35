/**
 * The simulated host: physical memory, the huge page pool, per-user accounting, the process table,
 * the device namespace, and the cross-cutting services (tracer, fault injector). A Machine owns
 * all of its state — nothing is global — so any number can run side by side.
 */

import { IommufdModule } from './iommufd/main.js';
import { FaultInjector } from './inject.js';
import { type HugePool, Mm } from './mm/mm.js';
import { PhysMem } from './mm/physmem.js';
import { CAP_LAST_CAP, type Cred, Process, RLIM_INFINITY, type Rlimits } from './process.js';
import { Tracer } from './trace.js';
import type { HwIommu, HwIommuOptions } from '../hw/iommu.js';
import type { PciDevice } from '../hw/pci.js';
import { type AddPciDeviceOptions, IommuSubsystem } from './iommu/subsystem.js';
import { DeviceRegistry, File, type FileOperations, O_RDONLY, O_WRONLY } from './vfs.js';
import { IrqController } from './irq.js';
import { type VfioOptions, VfioModule } from './vfio/vfio_main.js';

/**
 * /dev/null: reads end at once, writes vanish; opened through the VFS, so pread/pwrite work too.
 * Fds 0-2 of every spawned process point here.
 */
const NULL_FOPS: FileOperations = { name: 'null', seekable: true, read: () => 0, write: (_f, _t, _b, count) => count };

/** user_struct: what one uid has locked across all its processes. */
export interface UserStruct {
  readonly uid: number;
  /** user->locked_vm, in pages. */
  lockedVm: number;
}

export interface MachineOptions {
  /** Huge pages in the pool (vm.nr_hugepages). Default 64, as on the oracle. */
  hugePages?: number;
  /** VFIO: who provides /dev/vfio/vfio, and noiommu mode. */
  vfio?: VfioOptions;
}

export interface SpawnOptions {
  uid?: number;
  gid?: number;
  /** Capabilities; root gets every capability by default, others none. */
  caps?: Iterable<number>;
  /** RLIMIT_MEMLOCK in bytes; default 8 MiB, Linux's default for new logins. */
  memlock?: bigint;
  nofile?: number;
  /** A fixed pid (the daemon mirrors its clients' real pids); default: the next free one. */
  pid?: number;
  /** Build the address space (the daemon supplies one backed by a real process's memory). */
  mm?: (phys: PhysMem, hugePool: HugePool) => Mm;
  /** Give fds 0-2 to /dev/null (default). A real client keeps its own stdio. */
  stdio?: boolean;
}

const ALL_CAPS = Array.from({ length: CAP_LAST_CAP + 1 }, (_, i) => i);

export class Machine {
  readonly phys = new PhysMem();
  readonly hugePool: { free: number };
  readonly tracer = new Tracer();
  readonly inject = new FaultInjector();
  readonly devices = new DeviceRegistry();
  /** IOMMU groups, IOMMU units and the devices behind them. */
  readonly iommu = new IommuSubsystem(this);
  readonly iommufd: IommufdModule;
  /** The host interrupt controller (MSI vectors, INTx lines). */
  readonly irq = new IrqController();
  readonly vfio: VfioModule;
  readonly #users = new Map<number, UserStruct>();
  readonly #procs = new Map<number, Process>();
  readonly #ioctlNames = new Map<number, string>();
  #nextPid = 100;

  constructor(opts: MachineOptions = {}) {
    this.hugePool = { free: opts.hugePages ?? 64 };
    this.iommufd = new IommufdModule(this);
    this.vfio = new VfioModule(this, opts.vfio);
    this.devices.register('/dev/null', {
      major: 1,
      minor: 3,
      mode: 0o666,
      open: (_task, flags, path) => new File(NULL_FOPS, path, flags, null),
    });
  }

  /** Add a simulated IOMMU unit (profile 'vtd' or 'smmuv3'). */
  addIommu(opts: HwIommuOptions): HwIommu {
    return this.iommu.addIommu(opts);
  }

  /** Plug in a PCI device behind an IOMMU unit; it is probed into an IOMMU group. */
  addPciDevice(opts: AddPciDeviceOptions): PciDevice {
    return this.iommu.addPciDevice(opts);
  }

  userFor(uid: number): UserStruct {
    let u = this.#users.get(uid);
    if (!u) {
      u = { uid, lockedVm: 0 };
      this.#users.set(uid, u);
    }
    return u;
  }

  users(): IterableIterator<UserStruct> {
    return this.#users.values();
  }

  /** Start a new process with a fresh address space. */
  spawn(opts: SpawnOptions = {}): Process {
    const uid = opts.uid ?? 0;
    const cred: Cred = { uid, gid: opts.gid ?? uid, caps: new Set(opts.caps ?? (uid === 0 ? ALL_CAPS : [])) };
    const rlimits: Rlimits = { memlock: opts.memlock ?? 8n << 20n, nofile: opts.nofile ?? 1024 };
    const pid = opts.pid ?? this.#nextPid++;
    if (this.#procs.has(pid)) throw new Error(`pid ${pid} is already running`);
    this.userFor(uid);
    const mm = opts.mm ? opts.mm(this.phys, this.hugePool) : new Mm(this.phys, this.hugePool);
    const p = new Process(this, pid, mm, cred, rlimits, null);
    this.#procs.set(p.pid, p);
    if (opts.stdio ?? true) {
      for (const flags of [O_RDONLY, O_WRONLY, O_WRONLY]) p.installFd(new File(NULL_FOPS, '/dev/null', flags, null));
    }
    this.tracer.emit({ pid: p.pid, call: 'spawn', args: { uid, gid: cred.gid, caps: [...cred.caps], memlock: `0x${rlimits.memlock.toString(16)}`, nofile: rlimits.nofile }, ret: p.pid, errno: 0 });
    return p;
  }

  /** fork's machine half: the child process around an already copied address space. */
  forkProcess(parent: Process, mm: Mm, pid?: number): Process {
    const childPid = pid ?? this.#nextPid++;
    if (this.#procs.has(childPid)) throw new Error(`pid ${childPid} is already running`);
    const child = new Process(this, childPid, mm, { ...parent.cred }, { ...parent.rlimits }, parent);
    this.#procs.set(child.pid, child);
    return child;
  }

  reap(p: Process): void {
    this.#procs.delete(p.pid);
  }

  process(pid: number): Process | undefined {
    return this.#procs.get(pid);
  }

  processes(): IterableIterator<Process> {
    return this.#procs.values();
  }

  /** Modules name their ioctls here so traces can say IOMMU_IOAS_MAP instead of 0x3b85. */
  nameIoctls(names: Readonly<Record<string, number>>): void {
    for (const [name, cmd] of Object.entries(names)) this.#ioctlNames.set(cmd, name);
  }

  ioctlName(cmd: number): string {
    return this.#ioctlNames.get(cmd) ?? `0x${cmd.toString(16)}`;
  }
}

export { RLIM_INFINITY };
