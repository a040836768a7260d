// Struct layouts as tables of named offsets, with one codec. Every layout names its C type and
// each field its C member path, so tests/ffi-layout.test.ts can compile a C program against the
// kernel's headers and compare every size and offset.

export type Scalar = "u8" | "u16" | "u32" | "u64";
/** A field is a scalar, or an opaque run of bytes (an array or a nested struct). */
export type FieldType = Scalar | { bytes: number };
export type Field = readonly [offset: number, type: FieldType];

const WIDTH: Record<Scalar, number> = { u8: 1, u16: 2, u32: 4, u64: 8 };

export function fieldSize(type: FieldType): number {
  return typeof type === "string" ? WIDTH[type] : type.bytes;
}

export class Struct<F extends string> {
  readonly fieldNames: readonly F[];
  constructor(
    /** the C type, e.g. `struct kvm_regs` */
    readonly c: string,
    readonly size: number,
    /** field name (also its C member path, e.g. `io.port`) to [offset, type] */
    readonly fields: { readonly [K in F]: Field },
  ) {
    this.fieldNames = Object.keys(fields) as F[];
    for (const name of this.fieldNames) {
      const [offset, type] = fields[name];
      if (offset + fieldSize(type) > size) throw new RangeError(`${c}.${name} lies outside the struct`);
    }
  }

  /** Byte offset of a field. */
  off(name: F): number {
    return this.fields[name][0];
  }

  /** Reads the scalar fields at `base` (opaque fields are skipped). */
  read(dv: DataView, base = 0): Record<F, bigint> {
    const out = {} as Record<F, bigint>;
    for (const name of this.fieldNames) {
      const [offset, type] = this.fields[name];
      if (typeof type === "string") out[name] = readScalar(dv, base + offset, type);
    }
    return out;
  }

  /** Writes the given scalar fields at `base`; fields not named are left as they are. */
  write(dv: DataView, base: number, values: Partial<Record<F, bigint | number>>): void {
    for (const name of Object.keys(values) as F[]) {
      const v = values[name];
      if (v === undefined) continue;
      const [offset, type] = this.fields[name];
      if (typeof type !== "string") throw new TypeError(`${this.c}.${name} is not a scalar field`);
      writeScalar(dv, base + offset, type, v);
    }
  }
}

export function readScalar(dv: DataView, at: number, type: Scalar): bigint {
  switch (type) {
    case "u8":
      return BigInt(dv.getUint8(at));
    case "u16":
      return BigInt(dv.getUint16(at, true));
    case "u32":
      return BigInt(dv.getUint32(at, true));
    case "u64":
      return dv.getBigUint64(at, true);
  }
}

export function writeScalar(dv: DataView, at: number, type: Scalar, value: bigint | number): void {
  switch (type) {
    case "u8":
      dv.setUint8(at, Number(value));
      return;
    case "u16":
      dv.setUint16(at, Number(value), true);
      return;
    case "u32":
      dv.setUint32(at, Number(value), true);
      return;
    case "u64":
      dv.setBigUint64(at, BigInt.asUintN(64, BigInt(value)), true);
      return;
  }
}
