/**
 * The shape of one uapi header's registry: every struct schema, ioctl number and constant it
 * declares, keyed by C name. The ABI conformance test compiles the real header and checks each
 * entry; dispatchers and tools can walk it instead of importing names one by one.
 */

import type { AnyStruct } from './schema.js';

export interface UapiAbi {
  /** The header as included from userspace, e.g. `linux/iommufd.h`. */
  readonly header: string;
  readonly structs: readonly AnyStruct[];
  /**
   * Structs C declares only as named members of another struct's anonymous union (the per-op
   * arguments of iommu_test_cmd); their `cName` is a `__typeof__` of that member.
   */
  readonly unionMembers?: readonly AnyStruct[];
  /** Ioctl request numbers by their C macro name. */
  readonly ioctls: Readonly<Record<string, number>>;
  /** Enum members and `#define`d flags/values by C name (values exactly as C evaluates them). */
  readonly constants: Readonly<Record<string, number | bigint>>;
}
