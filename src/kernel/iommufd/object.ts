/**
 * The iommufd context and its object table.
 *
 * Every object of one /dev/iommu file lives in one ID space: IDs start at 1, the lowest free ID is
 * reused first, and an ID is reserved at allocation but published only at finalize — until then
 * lookups see nothing (ENOENT), and an abort gives the ID back. `users` counts references: the
 * table's own (1) plus one per dependent (a HWPT on its IOAS, a device on its HWPT, …). Userspace
 * DESTROY succeeds only when the table's reference is the last; closing the file destroys leaves
 * first, pass after pass in ascending ID order, until the table is empty.
 *
 * Each object kind declares its own `destroy` (and optionally `abort`) — an ops table by class,
 * never a switch on the type.
 */

import { Errno, fail } from '../../errno.js';
import type { Machine } from '../machine.js';
import type { Process } from '../process.js';
import type { File } from '../vfs.js';

/** enum iommufd_object_type (iommufd_private.h, 6.12). */
export const IOMMUFD_OBJ = {
  NONE: 0,
  ANY: 0,
  DEVICE: 1,
  HWPT_PAGING: 2,
  HWPT_NESTED: 3,
  IOAS: 4,
  ACCESS: 5,
  FAULT: 6,
  SELFTEST: 7,
} as const;
export type IommufdObjType = (typeof IOMMUFD_OBJ)[keyof typeof IOMMUFD_OBJ];

const OBJ_NAMES: Record<number, string> = { 1: 'device', 2: 'hwpt_paging', 3: 'hwpt_nested', 4: 'ioas', 5: 'access', 6: 'fault', 7: 'selftest' };
export const objTypeName = (t: number): string => OBJ_NAMES[t] ?? `type ${t}`;

/** How accounting charges pinned pages (enum iopt_pages_account_mode). */
export const IOPT_PAGES_ACCOUNT = { NONE: 0, USER: 1, MM: 2 } as const;
export type AccountMode = (typeof IOPT_PAGES_ACCOUNT)[keyof typeof IOPT_PAGES_ACCOUNT];

export abstract class IommufdObject {
  abstract readonly type: IommufdObjType;
  readonly ictx: IommufdCtx;
  id = 0;
  /** The table's reference plus one per dependent. */
  users = 1;

  constructor(ictx: IommufdCtx) {
    this.ictx = ictx;
  }

  /** Release everything the object holds; called once its last user is gone. */
  abstract destroy(): void;

  /** Undo a fully initialised but unpublished object; defaults to destroy. */
  abort(): void {
    this.destroy();
  }
}

const XA_LIMIT_31B = 0x7fffffff;

export class IommufdCtx {
  readonly machine: Machine;
  readonly file: File;
  accountMode: AccountMode;
  /** ictx->vfio_ioas: the IOAS the VFIO compat ioctls act on. */
  vfioIoas: IommufdObject | null = null;
  /** ictx->groups: iommufd's per-context state of each IOMMU group with a bound device, by group ID. */
  readonly groups = new Map<number, { refs: number }>();
  /** Set when a no-IOMMU VFIO group joined this context as its container. */
  noIommuMode = false;
  /** Published objects, and IDs reserved by allocations not yet finalized (value null). */
  readonly #table = new Map<number, IommufdObject | null>();
  /** Freed IDs (all below #next), kept as a min-heap so the lowest is reused first. */
  readonly #freeIds: number[] = [];
  #next = 1;

  constructor(machine: Machine, file: File, accountMode: AccountMode) {
    this.machine = machine;
    this.file = file;
    this.accountMode = accountMode;
  }

  get isEmpty(): boolean {
    return this.#table.size === 0;
  }

  /** Count of published and reserved IDs. */
  get objectCount(): number {
    return this.#table.size;
  }

  #takeId(): number {
    if (this.#freeIds.length) return heapPop(this.#freeIds);
    if (this.#next > XA_LIMIT_31B) fail(Errno.EBUSY, 'iommufd object table: all 31-bit IDs are in use');
    return this.#next++;
  }

  #releaseId(id: number): void {
    this.#table.delete(id);
    heapPush(this.#freeIds, id);
  }

  /**
   * _iommufd_object_alloc: reserve the lowest free ID for `obj` (a `slab` fault site, like the
   * kzalloc and xa_alloc it stands for).
   */
  alloc<T extends IommufdObject>(task: Process | null, obj: T): T {
    if (this.machine.inject.shouldFail(task, 'slab')) fail(Errno.ENOMEM, `allocating the ${objTypeName(obj.type)} object: fault injected (fail-nth)`);
    obj.id = this.#takeId();
    this.#table.set(obj.id, null);
    return obj;
  }

  /** iommufd_object_finalize: publish. */
  finalize(obj: IommufdObject): void {
    if (this.#table.get(obj.id) !== null) throw new Error(`finalize of object ${obj.id} that is not reserved`);
    this.#table.set(obj.id, obj);
  }

  /** iommufd_object_abort: give back the ID of an object that never initialised. */
  abortObject(obj: IommufdObject): void {
    if (this.#table.get(obj.id) !== null) throw new Error(`abort of object ${obj.id} that is not reserved`);
    this.#releaseId(obj.id);
  }

  /** iommufd_object_abort_and_destroy. */
  abortAndDestroy(obj: IommufdObject): void {
    obj.abort();
    this.abortObject(obj);
  }

  /**
   * iommufd_get_object: a published object of `type` (or any type for ANY). ENOENT when missing,
   * unpublished or of another type; the `iommufd` fault site fails it like iommufd_should_fail.
   */
  get<T extends IommufdObject>(task: Process | null, id: number, type: IommufdObjType, cls?: abstract new (...a: never[]) => T): T {
    if (this.machine.inject.shouldFail(task, 'iommufd')) fail(Errno.ENOENT, `looking up object ${id}: fault injected (fail-nth)`);
    const obj = this.#table.get(id);
    if (!obj) fail(Errno.ENOENT, `no object with ID ${id}${obj === null ? ' (still being created)' : ''}`);
    if (type !== IOMMUFD_OBJ.ANY && obj.type !== type) {
      fail(Errno.ENOENT, `object ${id} is a ${objTypeName(obj.type)}, not a ${objTypeName(type)}`);
    }
    if (cls && !(obj instanceof cls)) throw new Error(`object ${id} has type ${obj.type} but class ${obj.constructor.name}`);
    return obj as T;
  }

  /** A published object without type checks or fault sites, for internal walks. */
  peek(id: number): IommufdObject | undefined {
    return this.#table.get(id) ?? undefined;
  }

  /** iommufd_object_remove for userspace DESTROY: only the table's reference may remain. */
  removeUser(id: number): void {
    const obj = this.#table.get(id);
    if (!obj) fail(Errno.ENOENT, `no object with ID ${id}${obj === null ? ' (still being created)' : ''}`);
    if (obj.users !== 1) {
      fail(Errno.EBUSY, `${objTypeName(obj.type)} ${id} is still in use (${obj.users - 1} reference${obj.users === 2 ? '' : 's'} besides the ID table)`);
    }
    this.#destroyPublished(obj);
  }

  /**
   * Kernel-initiated removal (iommufd_object_destroy_user / put_and_try_destroy): the caller's
   * own reference is dropped first, then the object goes if the table's reference is the last.
   */
  removeKernel(obj: IommufdObject, callerHeldRef: boolean): boolean {
    if (callerHeldRef) obj.users--;
    if (obj.users !== 1 || this.#table.get(obj.id) !== obj) return false;
    this.#destroyPublished(obj);
    return true;
  }

  #destroyPublished(obj: IommufdObject): void {
    obj.users = 0;
    this.#releaseId(obj.id);
    if (this.vfioIoas === obj) this.vfioIoas = null;
    obj.destroy();
  }

  /** Published objects in ascending ID order. */
  objects(): IommufdObject[] {
    return [...this.#table.entries()]
      .filter((e): e is [number, IommufdObject] => e[1] !== null)
      .sort((a, b) => a[0] - b[0])
      .map((e) => e[1]);
  }

  /** iommufd_fops_release: destroy leaves first until the table is empty. */
  teardown(): void {
    while (this.#table.size) {
      let destroyed = 0;
      for (const obj of this.objects()) {
        // An earlier destroy in this pass may already have taken this object with it.
        if (obj.users !== 1 || this.#table.get(obj.id) !== obj) continue;
        this.#destroyPublished(obj);
        destroyed++;
      }
      if (!destroyed) throw new Error(`iommufd teardown stuck: ${this.objects().map((o) => `${o.id}:${objTypeName(o.type)}(users ${o.users})`).join(', ')}`);
    }
  }
}

function heapPush(h: number[], v: number): void {
  h.push(v);
  let i = h.length - 1;
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (h[p]! <= v) break;
    h[i] = h[p]!;
    i = p;
  }
  h[i] = v;
}

function heapPop(h: number[]): number {
  const top = h[0]!;
  const last = h.pop()!;
  if (h.length) {
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      let mv = last;
      if (l < h.length && h[l]! < mv) {
        m = l;
        mv = h[l]!;
      }
      if (r < h.length && h[r]! < mv) m = r;
      if (m === i) break;
      h[i] = h[m]!;
      i = m;
    }
    h[i] = last;
  }
  return top;
}
