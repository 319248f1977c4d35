/**
 * The state of one iommufd ioctl as its handler sees it (struct iommufd_ucmd): the context, the
 * calling task, the user buffer and size, and the struct already copied in and zero-extended.
 */

import type { AnyStruct, StructSchema, StructValue } from '../../uapi/schema.js';
import type { Process } from '../process.js';
import { copyToUser } from '../uaccess.js';
import type { IommufdCtx } from './object.js';

export type ValueOf<S extends AnyStruct> = S extends StructSchema<infer F> ? StructValue<F> : never;

export class Ucmd<S extends AnyStruct> {
  readonly ictx: IommufdCtx;
  readonly task: Process;
  readonly ubuffer: bigint;
  readonly userSize: number;
  readonly schema: S;
  readonly cmd: ValueOf<S>;

  constructor(ictx: IommufdCtx, task: Process, ubuffer: bigint, userSize: number, schema: S, cmd: ValueOf<S>) {
    this.ictx = ictx;
    this.task = task;
    this.ubuffer = ubuffer;
    this.userSize = userSize;
    this.schema = schema;
    this.cmd = cmd;
  }

  /** iommufd_ucmd_respond: copy the struct back, no more than the user's size of it. */
  respond(): void {
    const bytes = this.schema.encode(this.cmd);
    copyToUser(this.task, this.ubuffer, bytes.subarray(0, Math.min(this.userSize, bytes.length)), `writing back ${this.schema.name}`);
  }
}
