/**
 * The machine's IOMMU subsystem state: every IOMMU group (IDs from 0, as iommu_group_alloc's ida
 * hands them out, lowest free first) and the devices in them. One instance per Machine.
 */

import { type Device, IommuGroup } from './core.js';

export class IommuSubsystem {
  readonly #groups = new Map<number, IommuGroup>();

  /** iommu_group_alloc. */
  allocGroup(): IommuGroup {
    let id = 0;
    while (this.#groups.has(id)) id++;
    const g = new IommuGroup(id);
    this.#groups.set(id, g);
    return g;
  }

  /** The group's last device left: its ID becomes free. */
  releaseGroup(g: IommuGroup): void {
    if (g.devices.length) throw new Error(`IOMMU group ${g.id} still has devices`);
    this.#groups.delete(g.id);
  }

  group(id: number): IommuGroup | undefined {
    return this.#groups.get(id);
  }

  groups(): IommuGroup[] {
    return [...this.#groups.values()].sort((a, b) => a.id - b.id);
  }

  devices(): Device[] {
    return this.groups().flatMap((g) => g.devices);
  }
}
