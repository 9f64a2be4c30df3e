// XXH64 (xxHash specification, "XXH64 algorithm description"), for verifying zstd's content
// checksum. The per-32-byte stripe loop, which is nearly all of the work, runs in a small
// WebAssembly function because WebAssembly has native 64-bit multiply and rotate (on 32-bit
// halves in plain JavaScript it costs ~0.7 s per 53 MB here; in WebAssembly a few tens of ms).
// The setup, the merge of the four lanes, the tail and the final mix run in JavaScript on
// (high, low) pairs of uint32s.

const P1 = 0x9e3779b185ebca87n;
const P2 = 0xc2b2ae3d27d4eb4fn;
const P3 = 0x165667b19e3779f9n;
const P4 = 0x85ebca77c2b2ae63n;
const P5 = 0x27d4eb2f165667c5n;
const hi = (x: bigint): number => Number(x >> 32n);
const lo = (x: bigint): number => Number(x & 0xffffffffn);
const P1H = hi(P1), P1L = lo(P1), P2H = hi(P2), P2L = lo(P2), P3H = hi(P3), P3L = lo(P3);
const P4H = hi(P4), P4L = lo(P4), P5H = hi(P5), P5L = lo(P5);

// ---- The stripe loop in WebAssembly (binary format: WebAssembly Core Specification 5.x) ----

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/** Signed LEB128 of a 64-bit pattern (read as two's complement), for i64.const. */
function sleb64(x: bigint): number[] {
  let v = BigInt.asIntN(64, x);
  const out: number[] = [];
  for (;;) {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    const done = (v === 0n && !(b & 0x40)) || (v === -1n && (b & 0x40) !== 0);
    out.push(done ? b : b | 0x80);
    if (done) return out;
  }
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

const name = (s: string): number[] => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];

// Opcodes (Core Specification 5.4).
const OP = {
  block: 0x02, loop: 0x03, br: 0x0c, brIf: 0x0d, end: 0x0b, localGet: 0x20, localSet: 0x21,
  i64Load: 0x29, i64Store: 0x37, i32Const: 0x41, i64Const: 0x42, i32GtU: 0x4b, i32Add: 0x6a,
  i64Add: 0x7c, i64Mul: 0x7e, i64Rotl: 0x89,
} as const;
const VOID = 0x40;
const I32 = 0x7f;
const I64 = 0x7e;

/**
 * stripes(p, end, st): with the four accumulators as u64 at st..st+31, for each 32 bytes at p
 * while p + 32 <= end: v_i = rotl(v_i + lane_i * P2, 31) * P1; then store the accumulators back.
 */
function stripesModule(): Uint8Array {
  const [p, end, st, v1] = [0, 1, 2, 3];
  const mem = (op: number, offset: number): number[] => [op, 3, ...uleb(offset)]; // align 2^3
  const body: number[] = [1, 4, I64]; // locals: 4 x i64 (v1..v4 = locals 3..6)
  for (let i = 0; i < 4; i++) body.push(OP.localGet, st, ...mem(OP.i64Load, i * 8), OP.localSet, v1 + i);
  body.push(OP.block, VOID, OP.loop, VOID);
  body.push(OP.localGet, p, OP.i32Const, 32, OP.i32Add, OP.localGet, end, OP.i32GtU, OP.brIf, 1);
  for (let i = 0; i < 4; i++) {
    body.push(
      OP.localGet, v1 + i,
      OP.localGet, p, ...mem(OP.i64Load, i * 8), OP.i64Const, ...sleb64(P2), OP.i64Mul,
      OP.i64Add, OP.i64Const, 31, OP.i64Rotl, OP.i64Const, ...sleb64(P1), OP.i64Mul,
      OP.localSet, v1 + i,
    );
  }
  body.push(OP.localGet, p, OP.i32Const, 32, OP.i32Add, OP.localSet, p, OP.br, 0, OP.end, OP.end);
  for (let i = 0; i < 4; i++) body.push(OP.localGet, st, OP.localGet, v1 + i, ...mem(OP.i64Store, i * 8));
  body.push(OP.end);
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
    ...section(1, [1, 0x60, 3, I32, I32, I32, 0]), // type 0: (i32, i32, i32) -> ()
    ...section(3, [1, 0]), // function 0 has type 0
    ...section(5, [1, 0x00, 1]), // one memory, at least 1 page, no maximum
    ...section(7, [2, ...name('stripes'), 0x00, 0, ...name('mem'), 0x02, 0]), // exports
    ...section(10, [1, ...uleb(body.length), ...body]), // code
  ]);
}

/** The part of the WebAssembly API used here (the project's lib settings carry no wasm typings). */
interface WasmMemory { readonly buffer: ArrayBuffer; grow(pages: number): number }
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: Record<string, unknown> };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

let compiled: object | undefined;

interface Instance {
  memory: WasmMemory;
  stripes: (p: number, end: number, st: number) => void;
}

function instantiate(bytes: number): Instance {
  compiled ??= new wasm.Module(stripesModule());
  const inst = new wasm.Instance(compiled);
  const memory = inst.exports.mem as WasmMemory;
  const pages = Math.ceil(bytes / 65536);
  if (pages > 1) memory.grow(pages - 1);
  return { memory, stripes: inst.exports.stripes as Instance['stripes'] };
}

/** Buffers handed out by allocHashable, so that hashing them needs no copy. */
const owners = new WeakMap<ArrayBuffer, Instance>();
/** Room after the data for the four accumulators. */
const STATE_ROOM = 64;

/**
 * A zeroed buffer of `size` bytes that xxh64 can hash in place (it lives in a WebAssembly memory).
 * Decompressing straight into it saves a 50 MB copy.
 */
export function allocHashable(size: number): Uint8Array {
  const inst = instantiate(size + STATE_ROOM);
  owners.set(inst.memory.buffer, inst);
  return new Uint8Array(inst.memory.buffer, 0, size);
}

// ---- JavaScript helpers on (high, low) uint32 pairs; results in RH/RL ----
let RH = 0;
let RL = 0;

/** (ah:al) * (bh:bl) mod 2^64. */
function mul(ah: number, al: number, bh: number, bl: number): void {
  // al * bl exactly, from 16-bit halves (every partial product fits a double exactly).
  const a0 = al & 0xffff, a1 = al >>> 16, b0 = bl & 0xffff, b1 = bl >>> 16;
  const mid = a0 * b1 + a1 * b0;
  const low = a0 * b0 + (mid % 65536) * 65536;
  RL = low >>> 0;
  RH = (a1 * b1 + Math.floor(mid / 65536) + (low >= 4294967296 ? 1 : 0) + Math.imul(ah, bl) + Math.imul(al, bh)) >>> 0;
}

function add(ah: number, al: number, bh: number, bl: number): void {
  const l = al + bl;
  RL = l >>> 0;
  RH = (ah + bh + (l > 0xffffffff ? 1 : 0)) >>> 0;
}

function rotl(h: number, l: number, r: number): void {
  // 0 < r < 32 for every rotation XXH64 uses.
  RH = ((h << r) | (l >>> (32 - r))) >>> 0;
  RL = ((l << r) | (h >>> (32 - r))) >>> 0;
}

/** round(acc, lane) = rotl(acc + lane * P2, 31) * P1. */
function round(ah: number, al: number, ih: number, il: number): void {
  mul(ih, il, P2H, P2L);
  add(ah, al, RH, RL);
  rotl(RH, RL, 31);
  mul(RH, RL, P1H, P1L);
}

/** XXH64 of `data` with seed 0, as [high 32 bits, low 32 bits]. */
export function xxh64(data: Uint8Array): [number, number] {
  const len = data.length;
  let p = 0;
  let hh: number, hl: number;
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (len >= 32) {
    let inst = owners.get(data.buffer as ArrayBuffer);
    let base = data.byteOffset;
    if (!inst || base + len + STATE_ROOM > inst.memory.buffer.byteLength) {
      inst = instantiate(len + STATE_ROOM);
      new Uint8Array(inst.memory.buffer).set(data);
      base = 0;
    }
    const stripeEnd = len - (len % 32);
    const stAt = base + len + ((8 - ((base + len) % 8)) % 8);
    const st = new DataView(inst.memory.buffer, stAt, 32);
    // Initial accumulators: seed + P1 + P2, seed + P2, seed, seed - P1 (seed 0).
    const init = [BigInt.asUintN(64, P1 + P2), P2, 0n, BigInt.asUintN(64, -P1)];
    init.forEach((x, i) => st.setBigUint64(i * 8, x, true));
    inst.stripes(base, base + stripeEnd, stAt);
    const acc = [0, 1, 2, 3].map((i) => [st.getUint32(i * 8 + 4, true), st.getUint32(i * 8, true)]);
    p = stripeEnd;
    const rots = [1, 7, 12, 18];
    hh = 0; hl = 0;
    acc.forEach(([h, l], i) => {
      rotl(h, l, rots[i]);
      add(hh, hl, RH, RL);
      hh = RH; hl = RL;
    });
    for (const [h, l] of acc) {
      // mergeRound: h ^= round(0, v); h = h * P1 + P4.
      round(0, 0, h, l);
      mul((hh ^ RH) >>> 0, (hl ^ RL) >>> 0, P1H, P1L);
      add(RH, RL, P4H, P4L);
      hh = RH; hl = RL;
    }
  } else {
    hh = P5H; hl = P5L;
  }
  add(hh, hl, Math.floor(len / 4294967296), len >>> 0);
  hh = RH; hl = RL;
  while (p + 8 <= len) {
    round(0, 0, v.getUint32(p + 4, true), v.getUint32(p, true));
    rotl((hh ^ RH) >>> 0, (hl ^ RL) >>> 0, 27);
    mul(RH, RL, P1H, P1L);
    add(RH, RL, P4H, P4L);
    hh = RH; hl = RL;
    p += 8;
  }
  if (p + 4 <= len) {
    mul(0, v.getUint32(p, true), P1H, P1L);
    rotl((hh ^ RH) >>> 0, (hl ^ RL) >>> 0, 23);
    mul(RH, RL, P2H, P2L);
    add(RH, RL, P3H, P3L);
    hh = RH; hl = RL;
    p += 4;
  }
  while (p < len) {
    mul(0, data[p], P5H, P5L);
    rotl((hh ^ RH) >>> 0, (hl ^ RL) >>> 0, 11);
    mul(RH, RL, P1H, P1L);
    hh = RH; hl = RL;
    p++;
  }
  // Avalanche: h ^= h >> 33; h *= P2; h ^= h >> 29; h *= P3; h ^= h >> 32.
  hl = (hl ^ (hh >>> 1)) >>> 0;
  mul(hh, hl, P2H, P2L);
  hh = RH; hl = RL;
  hl = (hl ^ ((hl >>> 29) | (hh << 3))) >>> 0;
  hh = (hh ^ (hh >>> 29)) >>> 0;
  mul(hh, hl, P3H, P3L);
  hh = RH; hl = RL;
  hl = (hl ^ hh) >>> 0;
  return [hh, hl];
}
