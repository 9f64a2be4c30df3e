// A minimal WebAssembly binary writer: just the opcodes and sections that the soft CPU's block
// compiler (src/accel/soft/jit/) and the kernel's LZ4 decoder (src/boot/decompress/lz4-wasm.ts)
// emit (WebAssembly core spec 1.0, chapter 5 "Binary format", plus the sign-extension, bulk
// memory and threads proposals' opcodes and shared memory limits).

export const T_I32 = 0x7f;
export const T_I64 = 0x7e;
/** The SIMD proposal's 128-bit vector type (used only where a signature must not be JavaScript's: batch.ts FUNCS). */
export const T_V128 = 0x7b;

/** Opcodes used by the compiler (one byte; the 0xFC-prefixed bulk memory ones are Emitter methods). */
export const OP = {
  unreachable: 0x00, block: 0x02, loop: 0x03, if: 0x04, else: 0x05, end: 0x0b, br: 0x0c, brIf: 0x0d, return: 0x0f,
  call: 0x10, callIndirect: 0x11, returnCall: 0x12, returnCallIndirect: 0x13, drop: 0x1a, select: 0x1b,
  localGet: 0x20, localSet: 0x21, localTee: 0x22, globalGet: 0x23, globalSet: 0x24,
  i32Load: 0x28, i64Load: 0x29, i32Load8U: 0x2d, i32Load16U: 0x2f,
  i64Load8U: 0x31, i64Load16U: 0x33, i64Load32U: 0x35,
  i32Store: 0x36, i64Store: 0x37, i32Store8: 0x3a, i32Store16: 0x3b, i64Store8: 0x3c, i64Store16: 0x3d, i64Store32: 0x3e,
  i32Const: 0x41, i64Const: 0x42,
  i32Eqz: 0x45, i32Eq: 0x46, i32Ne: 0x47, i32LtS: 0x48, i32LtU: 0x49, i32GtS: 0x4a, i32GtU: 0x4b, i32LeS: 0x4c, i32LeU: 0x4d, i32GeS: 0x4e, i32GeU: 0x4f,
  i64Eqz: 0x50, i64Eq: 0x51, i64Ne: 0x52, i64LtS: 0x53, i64LtU: 0x54, i64GtS: 0x55, i64GtU: 0x56, i64LeS: 0x57, i64LeU: 0x58,
  i32Add: 0x6a, i32Sub: 0x6b, i32Mul: 0x6c, i32And: 0x71, i32Or: 0x72, i32Xor: 0x73, i32Shl: 0x74, i32ShrU: 0x76, i32Rotl: 0x77, i32Rotr: 0x78,
  i64Clz: 0x79, i64Ctz: 0x7a, i64Popcnt: 0x7b, i64Add: 0x7c, i64Sub: 0x7d, i64Mul: 0x7e, i64DivS: 0x7f, i64DivU: 0x80, i64RemS: 0x81, i64RemU: 0x82, i64And: 0x83, i64Or: 0x84, i64Xor: 0x85,
  i64Shl: 0x86, i64ShrS: 0x87, i64ShrU: 0x88, i64Rotl: 0x89, i64Rotr: 0x8a,
  i32WrapI64: 0xa7, i64ExtendI32S: 0xac, i64ExtendI32U: 0xad,
  i64Extend8S: 0xc2, i64Extend16S: 0xc3, i64Extend32S: 0xc4,
} as const;

const SCRATCH64 = new BigInt64Array(1);
const SCRATCH32 = new Uint32Array(SCRATCH64.buffer);

/** A growable byte buffer with LEB128 helpers. */
export class Bytes {
  private buf: Uint8Array;
  length = 0;

  constructor(capacity = 256) {
    this.buf = new Uint8Array(capacity);
  }

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const g = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    g.set(this.buf.subarray(0, this.length));
    this.buf = g;
  }

  byte(b: number): this {
    if (this.length === this.buf.length) this.room(1);
    this.buf[this.length++] = b;
    return this;
  }

  bytes(bs: ArrayLike<number>): this {
    this.room(bs.length);
    for (let i = 0; i < bs.length; i++) this.buf[this.length++] = bs[i]!;
    return this;
  }

  append(o: Bytes): this {
    const n = o.length;
    this.room(n);
    if (n > 64) {
      this.buf.set(o.buf.subarray(0, n), this.length);
      this.length += n;
      return this;
    }
    // one instruction's code: a loop beats creating a subarray view to copy from
    const src = o.buf;
    const dst = this.buf;
    let k = this.length;
    for (let i = 0; i < n; i++) dst[k++] = src[i]!;
    this.length = k;
    return this;
  }

  u32(v: number): this {
    let x = v >>> 0;
    do {
      let b = x & 0x7f;
      x >>>= 7;
      if (x !== 0) b |= 0x80;
      this.byte(b);
    } while (x !== 0);
    return this;
  }

  s32(v: number): this {
    let x = v | 0;
    for (;;) {
      const b = x & 0x7f;
      x >>= 7;
      if ((x === 0 && (b & 0x40) === 0) || (x === -1 && (b & 0x40) !== 0)) { this.byte(b); return this; }
      this.byte(b | 0x80);
    }
  }

  s64(v: bigint): this {
    if (v >= -0x8000000n && v < 0x8000000n) return this.s32(Number(v));
    // signed LEB128 of the 64-bit value, from its two 32-bit halves (BigInt shifts allocate: this
    // ran for every 64-bit constant the JIT emits, most of them RIPs)
    SCRATCH64[0] = v;
    let lo = SCRATCH32[0]!; // unsigned low half
    let hi = SCRATCH32[1]! | 0; // signed high half
    for (;;) {
      const b = lo & 0x7f;
      // (hi:lo) >>= 7, arithmetic
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>= 7;
      const rest0 = hi === 0 && lo === 0 && (b & 0x40) === 0;
      const rest1 = hi === -1 && lo === 0xffffffff && (b & 0x40) !== 0;
      if (rest0 || rest1) { this.byte(b); return this; }
      this.byte(b | 0x80);
    }
  }

  name(s: string): this {
    const e = new TextEncoder().encode(s);
    this.u32(e.length);
    return this.bytes(e);
  }

  view(): Uint8Array { return this.buf.subarray(0, this.length); }

  /** Overwrite the 2 bytes at `at` with `v` < 2^14 as a padded (fixed-length) unsigned LEB128. */
  patchU14(at: number, v: number): void {
    if (v < 0 || v >= 1 << 14) throw new RangeError(`patchU14: ${v} does not fit in 14 bits`);
    this.buf[at] = (v & 0x7f) | 0x80;
    this.buf[at + 1] = v >>> 7;
  }

  /** Overwrite the byte at `at` (an opcode already written). */
  patchByte(at: number, v: number): void {
    if (at < 0 || at >= this.length) throw new RangeError(`patchByte: ${at} is outside the ${this.length} bytes written`);
    this.buf[at] = v;
  }
}

/** Bytes of function code, with the instructions' immediates encoded (locals, globals, constants, memory). */
export class Emitter extends Bytes {
  i32c(v: number): this { return this.byte(OP.i32Const).s32(v); }
  i64c(v: bigint): this { return this.byte(OP.i64Const).s64(v); }
  get(i: number): this { return this.byte(OP.localGet).u32(i); }
  set(i: number): this { return this.byte(OP.localSet).u32(i); }
  tee(i: number): this { return this.byte(OP.localTee).u32(i); }
  gget(i: number): this { return this.byte(OP.globalGet).u32(i); }
  gset(i: number): this { return this.byte(OP.globalSet).u32(i); }
  call(f: number): this { return this.byte(OP.call).u32(f); }
  /**
   * Call helper `h` of a block module: entry h of its helper table (table 0), whose type is h + 1
   * (batch.ts FUNCS). Through a table rather than imported functions, for which V8 compiles a
   * JavaScript call wrapper per signature with every module (batch.ts FUNCS).
   */
  callHelper(h: number): this { return this.i32c(h).byte(OP.callIndirect).u32(h + 1).u32(0); }
  op(o: number): this { return this.byte(o); }
  /** memory.copy (dst, src, n) and memory.fill (dst, byte, n) on memory 0 (bulk memory proposal). */
  memoryCopy(): this { return this.byte(0xfc).u32(10).byte(0).byte(0); }
  memoryFill(): this { return this.byte(0xfc).u32(11).byte(0); }
  /** A load or store with its alignment (log2) and offset. */
  mem(o: number, align: number, offset: number): this { return this.byte(o).u32(align).u32(offset); }
}

/** A section: id, then its size-prefixed contents. */
export function section(out: Bytes, id: number, body: Bytes): void {
  out.byte(id).u32(body.length).append(body);
}
