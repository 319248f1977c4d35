/**
 * Struct schemas: one declaration per uapi struct that computes its C layout (x86-64 natural
 * alignment, as gcc lays out the uapi headers) and encodes/decodes little-endian bytes.
 *
 * Offsets are never typed by hand: they follow from the field order and types, and the ABI
 * conformance test compares every offset, size and ioctl number with gcc's answer for the real
 * 6.12 headers.
 */

/** One field type: its C size and alignment, and how it reads and writes. */
export interface FieldType<T> {
  readonly size: number;
  readonly align: number;
  /** For diagnostics and the ABI test, e.g. `__u32`, `__u8[3]`. */
  readonly cType: string;
  read(dv: DataView, off: number): T;
  write(dv: DataView, off: number, v: T): void;
  zero(): T;
}

function scalar<T>(
  cType: string,
  size: number,
  read: (dv: DataView, off: number) => T,
  write: (dv: DataView, off: number, v: T) => void,
  zero: T,
): FieldType<T> {
  return { cType, size, align: size, read, write, zero: () => zero };
}

export const u8 = scalar<number>('__u8', 1, (dv, o) => dv.getUint8(o), (dv, o, v) => dv.setUint8(o, v), 0);
export const u16 = scalar<number>('__u16', 2, (dv, o) => dv.getUint16(o, true), (dv, o, v) => dv.setUint16(o, v, true), 0);
export const u32 = scalar<number>('__u32', 4, (dv, o) => dv.getUint32(o, true), (dv, o, v) => dv.setUint32(o, v >>> 0, true), 0);
export const s32 = scalar<number>('__s32', 4, (dv, o) => dv.getInt32(o, true), (dv, o, v) => dv.setInt32(o, v | 0, true), 0);
export const u64 = scalar<bigint>('__u64', 8, (dv, o) => dv.getBigUint64(o, true), (dv, o, v) => dv.setBigUint64(o, BigInt.asUintN(64, v), true), 0n);
export const s64 = scalar<bigint>('__s64', 8, (dv, o) => dv.getBigInt64(o, true), (dv, o, v) => dv.setBigInt64(o, BigInt.asIntN(64, v), true), 0n);

/**
 * A pointer member such as `__u64 __user *data`: 8 bytes on x86-64, carried as a bigint user
 * address like the `__aligned_u64` pointers of newer structs. `pointee` is its C element type.
 */
export function ptr(pointee: string): FieldType<bigint> {
  return { ...u64, cType: `${pointee} *` };
}

/** A fixed-length array such as `__u8 __reserved[3]`. */
export function array<T>(elem: FieldType<T>, count: number): FieldType<T[]> {
  return {
    cType: `${elem.cType}[${count}]`,
    size: elem.size * count,
    align: elem.align,
    read: (dv, off) => Array.from({ length: count }, (_, i) => elem.read(dv, off + i * elem.size)),
    write: (dv, off, v) => {
      for (let i = 0; i < count; i++) elem.write(dv, off + i * elem.size, v[i] ?? elem.zero());
    },
    zero: () => Array.from({ length: count }, () => elem.zero()),
  };
}

/**
 * A flexible array member (`__u8 data[]`): no size in the struct; it marks where trailing data
 * starts. Reads as the element count 0 placeholder; handlers read the trailing bytes themselves.
 */
export function flex(elem: FieldType<unknown>): FieldType<null> {
  return { cType: `${elem.cType}[]`, size: 0, align: elem.align, read: () => null, write: () => {}, zero: () => null };
}

/** Raw bytes with a given alignment, for unions whose member depends on another field. */
export function bytes(size: number, align: number, cType = `union(${size})`): FieldType<Uint8Array> {
  return {
    cType,
    size,
    align,
    read: (dv, off) => new Uint8Array(dv.buffer.slice(dv.byteOffset + off, dv.byteOffset + off + size)),
    write: (dv, off, v) => new Uint8Array(dv.buffer, dv.byteOffset + off, size).set(v.subarray(0, size)),
    zero: () => new Uint8Array(size),
  };
}

/** A struct nested by value. */
export function nested<F extends FieldMap>(s: StructSchema<F>): FieldType<StructValue<F>> {
  return {
    cType: `struct ${s.name}`,
    size: s.size,
    align: s.align,
    read: (dv, off) => s.readFrom(dv, off),
    write: (dv, off, v) => s.writeTo(dv, off, v),
    zero: () => s.zero(),
  };
}

export type FieldMap = Record<string, FieldType<unknown>>;
export type StructValue<F extends FieldMap> = { [K in keyof F]: F[K] extends FieldType<infer T> ? T : never };

export interface FieldLayout {
  readonly name: string;
  readonly offset: number;
  readonly size: number;
  readonly type: FieldType<unknown>;
}

export interface StructOptions {
  /** Extra alignment of the whole struct (`__attribute__((aligned(n)))`). */
  readonly align?: number;
  /** The C spelling when it is not `struct <name>`. */
  readonly cName?: string;
  /** Fields that the ABI test cannot name in C (members of anonymous unions reach it another way). */
  readonly cFieldNames?: Readonly<Record<string, string>>;
}

const align = (n: number, a: number): number => Math.ceil(n / a) * a;

/** A uapi struct with its computed layout. */
export class StructSchema<F extends FieldMap> {
  readonly name: string;
  readonly cName: string;
  readonly size: number;
  readonly align: number;
  readonly fields: readonly FieldLayout[];
  readonly cFieldNames: Readonly<Record<string, string>>;
  readonly #byName: Map<string, FieldLayout>;

  constructor(name: string, fields: F, opts: StructOptions = {}) {
    this.name = name;
    this.cName = opts.cName ?? `struct ${name}`;
    this.cFieldNames = opts.cFieldNames ?? {};
    let off = 0;
    let maxAlign = opts.align ?? 1;
    const layout: FieldLayout[] = [];
    for (const [fname, type] of Object.entries(fields)) {
      off = align(off, type.align);
      layout.push({ name: fname, offset: off, size: type.size, type });
      off += type.size;
      maxAlign = Math.max(maxAlign, type.align);
    }
    this.align = maxAlign;
    this.size = align(off, maxAlign);
    this.fields = layout;
    this.#byName = new Map(layout.map((f) => [f.name, f]));
  }

  field(name: keyof F & string): FieldLayout {
    const f = this.#byName.get(name);
    if (!f) throw new Error(`${this.name} has no field ${name}`);
    return f;
  }

  offsetOf(name: keyof F & string): number {
    return this.field(name).offset;
  }

  /** `offsetofend(struct, field)`: the kernel's minimum size when `field` is the last mandatory one. */
  offsetEnd(name: keyof F & string): number {
    const f = this.field(name);
    return f.offset + f.size;
  }

  zero(): StructValue<F> {
    const v: Record<string, unknown> = {};
    for (const f of this.fields) v[f.name] = f.type.zero();
    return v as StructValue<F>;
  }

  readFrom(dv: DataView, off: number): StructValue<F> {
    const v: Record<string, unknown> = {};
    for (const f of this.fields) v[f.name] = f.type.read(dv, off + f.offset);
    return v as StructValue<F>;
  }

  writeTo(dv: DataView, off: number, v: Partial<StructValue<F>>): void {
    for (const f of this.fields) {
      const fv = (v as Record<string, unknown>)[f.name];
      f.type.write(dv, off + f.offset, fv === undefined ? f.type.zero() : fv);
    }
  }

  /** Decode; bytes shorter than the struct read as zero (copy_struct_from_user's zero-extension). */
  decode(buf: Uint8Array): StructValue<F> {
    let src = buf;
    if (buf.length < this.size) {
      src = new Uint8Array(this.size);
      src.set(buf);
    }
    return this.readFrom(new DataView(src.buffer, src.byteOffset, this.size), 0);
  }

  /** Encode to exactly `size` bytes; missing fields are zero. */
  encode(v: Partial<StructValue<F>> = {}): Uint8Array {
    const out = new Uint8Array(this.size);
    this.writeTo(new DataView(out.buffer), 0, v);
    return out;
  }
}

export function struct<F extends FieldMap>(name: string, fields: F, opts?: StructOptions): StructSchema<F> {
  return new StructSchema(name, fields, opts);
}

export type AnyStruct = StructSchema<FieldMap>;
