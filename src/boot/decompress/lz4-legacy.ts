// Decoder for the LZ4 "legacy frame", the container Linux wraps around an LZ4-compressed kernel
// (arch/x86/boot/compressed/Makefile runs `lz4 -l`, lib/decompress_unlz4.c reads it back).
//
// Layout (lz4 repository, doc/lz4_Frame_format.md, "Legacy frame"):
//   u32-LE magic 0x184C2102 (bytes 02 21 4C 18)
//   then blocks, each: u32-LE compressed size, then that many bytes of one LZ4 block that
//   decompresses to at most 8 MiB. Blocks are independent (no match reaches into an earlier block).
//   There is no end marker: the frame ends at the end of the input, or where the next word cannot be
//   a block size (the kernel appends the decompressed size as a u32, and `lz4 -l` output may be
//   followed by another legacy frame, which starts with the magic again).
//
// The block format itself is doc/lz4_Block_format.md: a sequence is a token byte (high nibble:
// literal count, low nibble: match length - 4; 15 in either means "more length bytes follow, each
// added, until one is not 255"), the literals, then a u16-LE match offset and the match. The last
// sequence of a block has literals only.
//
// The input is untrusted (a kernel file from anywhere): every read and write below is checked
// against its buffer and every loop consumes input, so corrupt or hostile data ends in a
// BootError, never an out-of-range access, a partial result or an endless loop.
import { BootError } from '../boot-plan.js';
import { lz4WasmDecoder, lz4WasmDecoderOn } from './lz4-wasm.js';

/** The legacy frame magic, read little-endian (bytes 02 21 4C 18). */
export const LZ4_LEGACY_MAGIC = 0x184c2102;
/** Largest decompressed size of one legacy block (Frame format doc: "8 MB"). */
export const LZ4_LEGACY_BLOCK_MAX = 8 * 1024 * 1024;
/**
 * LZ4_compressBound(8 MiB) = n + n/255 + 16 (lz4.h): no valid block's compressed size exceeds it,
 * so a larger word is where the frame ends (typically the kernel's appended size).
 */
export const LZ4_LEGACY_COMPRESSED_MAX = LZ4_LEGACY_BLOCK_MAX + Math.floor(LZ4_LEGACY_BLOCK_MAX / 255) + 16;

/** Sizes above this are refused unless the caller raises it (no real kernel comes close). */
const DEFAULT_MAX_SIZE = 1024 * 1024 * 1024;

export interface Lz4LegacyOptions {
  /** Exact decompressed size when known (the kernel records it); output is allocated once and checked. */
  expectedSize?: number;
  /** Refuse to produce more than this many bytes (default 1 GiB). */
  maxSize?: number;
  /** Names the data in error messages, e.g. "vmlinuz-6.1: LZ4 payload". */
  what?: string;
}

function fail(what: string, msg: string): never {
  throw new BootError(`${what}: ${msg}`);
}

/**
 * Decode one LZ4 block from src[srcStart, srcEnd) into dst starting at dstStart, writing nothing at
 * or beyond dstEnd. Matches may only reach back to dstStart (legacy blocks are independent).
 * Returns the end of the decoded data in dst.
 * @param overflow what to say when the block does not fit in [dstStart, dstEnd)
 */
export function decodeLz4Block(
  src: Uint8Array, srcStart: number, srcEnd: number,
  dst: Uint8Array, dstStart: number, dstEnd: number,
  what = 'LZ4 block', overflow = 'block decompresses past the end of its output',
): number {
  if (srcStart < 0 || srcEnd > src.length || srcStart > srcEnd) fail(what, 'block lies outside its input');
  if (dstStart < 0 || dstEnd > dst.length || dstStart > dstEnd) fail(what, 'block output lies outside its buffer');
  let s = srcStart;
  let d = dstStart;
  for (;;) {
    if (s >= srcEnd) fail(what, `block ends inside a sequence (input offset ${s})`);
    const token = src[s++];

    // Literals.
    let lit = token >>> 4;
    if (lit === 15) {
      let b: number;
      do {
        if (s >= srcEnd) fail(what, `literal length runs past the end of the block (input offset ${s})`);
        b = src[s++];
        lit += b;
      } while (b === 255);
    }
    if (lit > 0) {
      if (lit > srcEnd - s) fail(what, `literals run past the end of the block (input offset ${s}, ${lit} bytes)`);
      if (lit > dstEnd - d) fail(what, overflow);
      if (lit <= 16) {
        for (let i = 0; i < lit; i++) dst[d + i] = src[s + i];
      } else {
        dst.set(src.subarray(s, s + lit), d);
      }
      s += lit;
      d += lit;
    }
    // The last sequence carries literals only: the block ends exactly here.
    if (s === srcEnd) return d;

    // Match.
    if (srcEnd - s < 2) fail(what, `block ends inside a match offset (input offset ${s})`);
    const offset = src[s] | (src[s + 1] << 8);
    s += 2;
    if (offset === 0 || offset > d - dstStart) {
      fail(what, `match offset ${offset} points outside the decoded data (output offset ${d - dstStart})`);
    }
    let len = (token & 15) + 4; // minimum match is 4 bytes (Block format: "minmatch")
    if ((token & 15) === 15) {
      let b: number;
      do {
        if (s >= srcEnd) fail(what, `match length runs past the end of the block (input offset ${s})`);
        b = src[s++];
        len += b;
      } while (b === 255);
    }
    if (len > dstEnd - d) fail(what, overflow);
    let from = d - offset;
    if (offset >= len) {
      // Source and destination do not overlap: a memmove is exact. Short copies are cheaper by hand.
      if (len <= 32) {
        for (let i = 0; i < len; i++) dst[d + i] = dst[from + i];
      } else {
        dst.copyWithin(d, from, from + len);
      }
      d += len;
    } else if (offset === 1) {
      // A run of one byte.
      dst.fill(dst[d - 1], d, d + len);
      d += len;
    } else {
      // Overlapping: the match repeats the last `offset` bytes; copying forwards byte by byte
      // reproduces that (each byte read has already been written).
      const end = d + len;
      while (d < end) dst[d++] = dst[from++];
    }
  }
}

function align8(n: number): number {
  return Math.ceil(n / 8) * 8;
}

function u32le(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}

/** True when `bytes` starts with the LZ4 legacy frame magic. */
export function isLz4Legacy(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && u32le(bytes, 0) === LZ4_LEGACY_MAGIC;
}

/**
 * The blocks of a legacy frame, in order: where each one's LZ4 data starts in `input` and its
 * compressed size (see the top of this file for where the frame ends). Throws on a truncated block.
 */
function* legacyBlocks(input: Uint8Array, what: string): Generator<{ at: number; size: number }> {
  let s = 4;
  let blocks = 0;
  while (input.length - s >= 4) {
    const size = u32le(input, s);
    if (size === LZ4_LEGACY_MAGIC) {
      // Another legacy frame follows (`lz4 -l` of several inputs, or frames joined by `cat`).
      s += 4;
      continue;
    }
    // Not a possible block size: the frame is over (the kernel's appended length usually lands here).
    if (size === 0 || size > LZ4_LEGACY_COMPRESSED_MAX) break;
    // A plausible size with nothing after it is the appended length of a small kernel.
    if (s + 4 === input.length) break;
    if (size > input.length - s - 4) {
      fail(what, `truncated: block ${blocks} at offset ${s} needs ${size} bytes, only ${input.length - s - 4} remain`);
    }
    yield { at: s + 4, size };
    s += 4 + size;
    blocks++;
  }
}

/** Decompress an LZ4 legacy frame (see the top of this file for the layout and where it ends). */
export function decompressLz4Legacy(input: Uint8Array, opts: Lz4LegacyOptions = {}): Uint8Array {
  const what = opts.what ?? 'LZ4 data';
  const maxSize = opts.maxSize ?? DEFAULT_MAX_SIZE;
  if (!isLz4Legacy(input)) fail(what, 'not an LZ4 legacy frame (no 02 21 4C 18 magic)');
  const expected = opts.expectedSize;
  if (expected !== undefined) {
    if (!Number.isSafeInteger(expected) || expected < 0) fail(what, `invalid expected size ${expected}`);
    if (expected > maxSize) {
      fail(what, `claims to decompress to ${expected} bytes, more than the ${maxSize} allowed`);
    }
  }

  // With the size known (a kernel's payload), decode in WebAssembly (lz4-wasm.ts): the input is
  // copied into the decoder's memory and the output is a view of it. Any block it rejects is
  // decoded again below by decodeLz4Block, which says what is wrong with it.
  const outStart = align8(input.length) + 16;
  const fast = expected !== undefined ? lz4WasmDecoder(outStart + expected + 16) : null;
  let src = input;
  let out: Uint8Array;
  if (fast) {
    src = new Uint8Array(fast.memory, 0, input.length);
    src.set(input);
    out = new Uint8Array(fast.memory, outStart, expected);
  } else {
    out = new Uint8Array(expected ?? Math.min(maxSize, Math.max(1 << 20, input.length * 4)));
  }
  let d = 0;
  let blocks = 0;
  for (const { at, size } of legacyBlocks(input, what)) {
    let limit: number;
    let overflow: string;
    if (expected !== undefined) {
      limit = Math.min(d + LZ4_LEGACY_BLOCK_MAX, expected);
      overflow = limit === expected
        ? `decompresses to more than its recorded size of ${expected} bytes (corrupt data or wrong size)`
        : 'block decompresses to more than 8 MiB (corrupt data)';
    } else {
      const want = Math.min(maxSize, d + LZ4_LEGACY_BLOCK_MAX);
      if (want > out.length) {
        const grown = new Uint8Array(Math.min(maxSize, Math.max(out.length * 2, want)));
        grown.set(out.subarray(0, d));
        out = grown;
      }
      limit = want;
      overflow = limit === maxSize
        ? `decompresses to more than the ${maxSize} bytes allowed`
        : 'block decompresses to more than 8 MiB (corrupt data)';
    }
    const end = fast ? fast.decode(at, at + size, out.byteOffset + d, out.byteOffset + limit, out.byteOffset + d) : -1;
    d = end >= 0 ? end - out.byteOffset : decodeLz4Block(src, at, at + size, out, d, limit, `${what} (block ${blocks})`, overflow);
    blocks++;
  }
  if (blocks === 0) fail(what, 'LZ4 legacy frame holds no blocks (truncated or corrupt)');
  if (expected !== undefined) {
    if (d !== expected) fail(what, `decompressed to ${d} bytes but ${expected} were recorded (truncated or corrupt)`);
    return out;
  }
  // Give back the spare capacity of the growing buffer when it is large.
  return out.length - d > 1 << 20 ? out.slice(0, d) : out.subarray(0, d);
}

/** Where decompressLz4LegacyInto decodes: a shared WebAssembly.Memory and addresses in it. */
export interface Lz4MemoryTarget {
  /** The WebAssembly.Memory (shared) the decoder binds to. */
  memory: object;
  /** Its buffer. */
  buffer: ArrayBufferLike;
  /** Where the output goes: [dst, dst + expected). */
  dst: number;
  /** Where the compressed input is copied first (the decoder reads it from the same memory). */
  inputAt: number;
}

const BELOW_2_GIB = 2 ** 31;

/**
 * Decode an LZ4 legacy frame of known size straight into a shared WebAssembly.Memory: the soft
 * CPU's, which holds guest RAM, so that the kernel is decompressed where it will run instead of
 * into a buffer of its own and copied (each of those 53 MB of fresh pages costs a page fault).
 * Returns false, having written nothing outside [dst, dst + expected) and the input's copy, when
 * it cannot: no WebAssembly, addresses at or past 2 GiB (the decoder returns them as i32), or data
 * the fast decoder rejects. decompressLz4Legacy then decodes the same input and names the problem.
 */
export function decompressLz4LegacyInto(input: Uint8Array, expected: number, target: Lz4MemoryTarget, what = 'LZ4 data'): boolean {
  const { dst, inputAt } = target;
  if (!isLz4Legacy(input) || !Number.isSafeInteger(expected) || expected <= 0) return false;
  const fits = (at: number, len: number) => Number.isSafeInteger(at) && at >= 0 && at + len <= Math.min(target.buffer.byteLength, BELOW_2_GIB);
  if (!fits(dst, expected) || !fits(inputAt, input.length)) return false;
  if (dst < inputAt + input.length && inputAt < dst + expected) return false; // the output would overwrite its input
  const decode = lz4WasmDecoderOn(target.memory);
  if (!decode) return false;
  new Uint8Array(target.buffer, inputAt, input.length).set(input);
  let d = 0;
  let blocks = 0;
  for (const { at, size } of legacyBlocks(input, what)) {
    const end = decode(inputAt + at, inputAt + at + size, dst + d, dst + Math.min(d + LZ4_LEGACY_BLOCK_MAX, expected), dst + d);
    if (end < 0) return false;
    d = end - dst;
    blocks++;
  }
  return blocks > 0 && d === expected;
}
