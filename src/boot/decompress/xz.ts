// xz decompression for kernel payloads.
//
// Linux compresses an x86 kernel with `xz --check=crc32 --x86 --lzma2=...` (scripts/xz_wrap.sh):
// the x86 BCJ filter runs before LZMA2. @napi-rs/lzma decodes LZMA2 but its xz reader rejects
// any filter other than LZMA2 ("Unknown filter id 4"), so this file reads the .xz container
// itself (The .xz File Format, version 1.1.0, sections 2 and 3), hands each block's raw LZMA2
// data to @napi-rs/lzma, and undoes the BCJ filter here.
import * as zlib from 'node:zlib';
import { lzma2 } from '../../deps/lazy.js';
import { BootError } from '../boot-plan.js';

/** Stream header magic (xz format 2.1.1.1): FD 37 7A 58 5A 00. */
export const XZ_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] as const;
/** Filter IDs (xz format 5.3). */
const FILTER_LZMA2 = 0x21;
const FILTER_X86 = 0x04;

function fail(what: string, msg: string): never {
  throw new BootError(`${what}: ${msg}`);
}

let crcTable: Uint32Array | undefined;
/** CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), as the xz format uses (section 5.1). */
export function crc32(data: Uint8Array): number {
  // zlib.crc32 exists from Node 20.15; fall back to a table for older 20.x releases.
  const native = (zlib as unknown as { crc32?: (d: Uint8Array) => number }).crc32;
  if (native) return native(data) >>> 0;
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = crcTable[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** A cursor over the input that never reads outside it. */
class Reader {
  constructor(readonly buf: Uint8Array, public pos: number, readonly what: string) {}
  byte(): number {
    if (this.pos >= this.buf.length) fail(this.what, 'truncated xz data');
    return this.buf[this.pos++];
  }
  u32(): number {
    if (this.buf.length - this.pos < 4) fail(this.what, 'truncated xz data');
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;
  }
  /** Multibyte integer (xz format 1.2): 7 bits per byte, low first, at most 9 bytes. */
  varint(): number {
    let v = 0;
    for (let i = 0; i < 9; i++) {
      const b = this.byte();
      v += (b & 0x7f) * 2 ** (7 * i);
      if (!(b & 0x80)) {
        if (b === 0 && i > 0) fail(this.what, 'malformed xz integer');
        if (!Number.isSafeInteger(v)) fail(this.what, 'xz integer too large');
        return v;
      }
    }
    fail(this.what, 'malformed xz integer');
  }
}

/** Size of the block check for a check ID (xz format 2.1.1.2: 0, then 4/8/16/32/64 in threes). */
function checkSize(id: number): number {
  return id === 0 ? 0 : 4 << Math.floor((id - 1) / 3);
}

/**
 * Find where a raw LZMA2 stream ends by walking its chunk headers (LZMA2 control byte:
 * 0x00 end; 0x01/0x02 uncompressed chunk with a u16-BE size-1; 0x80-0xFF LZMA chunk with bits 0-4
 * the high bits of unpacked size-1, then u16-BE unpacked size-1, u16-BE packed size-1, and a
 * properties byte when bits 5-6 are 2 or 3). Returns the end offset and the total unpacked size,
 * which lets us refuse a decompression bomb before decoding anything.
 */
function scanLzma2(buf: Uint8Array, start: number, what: string): { end: number; unpacked: number } {
  let p = start;
  let unpacked = 0;
  for (;;) {
    if (p >= buf.length) fail(what, 'truncated LZMA2 data (no end marker)');
    const c = buf[p];
    if (c === 0x00) return { end: p + 1, unpacked };
    if (c === 0x01 || c === 0x02) {
      if (buf.length - p < 3) fail(what, 'truncated LZMA2 chunk header');
      const size = ((buf[p + 1] << 8) | buf[p + 2]) + 1;
      p += 3 + size;
      unpacked += size;
    } else if (c >= 0x80) {
      if (buf.length - p < 5) fail(what, 'truncated LZMA2 chunk header');
      const size = (((c & 0x1f) << 16) | (buf[p + 1] << 8) | buf[p + 2]) + 1;
      const packed = ((buf[p + 3] << 8) | buf[p + 4]) + 1;
      p += (c >= 0xc0 ? 6 : 5) + packed;
      unpacked += size;
    } else {
      fail(what, `invalid LZMA2 control byte 0x${c.toString(16)} at offset ${p}`);
    }
    if (p > buf.length) fail(what, 'truncated LZMA2 chunk');
  }
}

/**
 * Undo the x86 BCJ filter in place (xz format 5.3.2, "Branch/Call/Jump filters"; the algorithm is
 * the one liblzma's simple/x86.c defines). The encoder turned the relative 32-bit targets of E8
 * (call) and E9 (jmp) instructions into absolute ones, so that repeated calls to one function
 * compress well; decoding subtracts the position again. To avoid converting bytes that only look
 * like calls, it keeps a 3-bit history of recent E8/E9 bytes that were not converted
 * (`mask`), and only converts operands whose top byte is 00 or FF (a near target).
 * @param start the filter's start offset (its properties; 0 unless given)
 */
export function bcjX86Decode(buf: Uint8Array, start = 0): void {
  // For each history state (mask >> 1): may the candidate be converted, and which operand byte to test.
  const allowed = [true, true, true, false, true, false, false, false];
  const testByte = [0, 1, 2, 2, 3, 3, 3, 3];
  const isNear = (b: number): boolean => b === 0x00 || b === 0xff;
  let mask = 0;
  let lastPos = -5; // position of the previous E8/E9; -5 means "long ago"
  const limit = buf.length - 5;
  // the next E8 and E9 at or after i, found with indexOf (a native byte search: the byte-by-byte
  // loop took ~120 ms of a 66 MB vmlinux, most of it on bytes that are neither)
  let nextE8 = buf.indexOf(0xe8);
  let nextE9 = buf.indexOf(0xe9);
  let i = 0;
  for (;;) {
    if (nextE8 >= 0 && nextE8 < i) nextE8 = buf.indexOf(0xe8, i);
    if (nextE9 >= 0 && nextE9 < i) nextE9 = buf.indexOf(0xe9, i);
    if (nextE8 < 0 && nextE9 < 0) break;
    i = nextE8 < 0 ? nextE9 : nextE9 < 0 ? nextE8 : Math.min(nextE8, nextE9);
    if (i > limit) break;
    const gap = i - lastPos;
    lastPos = i;
    if (gap > 5) {
      mask = 0;
    } else {
      for (let k = 0; k < gap; k++) mask = (mask & 0x77) << 1;
    }
    let top = buf[i + 4];
    if (isNear(top) && allowed[(mask >>> 1) & 7] && mask >>> 1 < 0x10) {
      let value = (buf[i + 1] | (buf[i + 2] << 8) | (buf[i + 3] << 16) | (top << 24)) >>> 0;
      let target: number;
      for (;;) {
        target = (value - (start + i + 5)) >>> 0;
        if (mask === 0) break;
        const shift = 24 - testByte[mask >>> 1] * 8;
        top = (target >>> shift) & 0xff;
        if (!isNear(top)) break;
        value = (target ^ ((1 << (shift + 8)) - 1)) >>> 0;
      }
      // The operand's top byte becomes the sign extension of bit 24 (targets stay within ±16 MiB).
      buf[i + 1] = target & 0xff;
      buf[i + 2] = (target >>> 8) & 0xff;
      buf[i + 3] = (target >>> 16) & 0xff;
      buf[i + 4] = (target >>> 24) & 1 ? 0xff : 0x00;
      i += 5;
      mask = 0;
    } else {
      i++;
      mask |= 1;
      if (isNear(top)) mask |= 0x10;
    }
  }
}

/**
 * The index (xz format 4) must list the blocks just decoded, and the stream footer (2.1.2) must
 * point back at it and repeat the header's flags: a truncated or spliced file fails here even
 * when its blocks happen to be whole.
 */
function checkIndexAndFooter(r: Reader, indexStart: number, records: [number, number][], flags: Uint8Array): void {
  const what = r.what;
  const count = r.varint();
  if (count !== records.length) fail(what, `xz index lists ${count} blocks, the stream has ${records.length}`);
  for (const [unpadded, uncompressed] of records) {
    if (r.varint() !== unpadded || r.varint() !== uncompressed) fail(what, 'xz index does not match the blocks (corrupt)');
  }
  while ((r.pos - indexStart) % 4 !== 0) if (r.byte() !== 0) fail(what, 'corrupt xz index padding');
  const indexEnd = r.pos;
  if (r.u32() !== crc32(r.buf.subarray(indexStart, indexEnd))) fail(what, 'xz index is corrupt (CRC mismatch)');
  // Footer: CRC32 of the next 6 bytes, backward size ((index size / 4) - 1), stream flags, "YZ".
  const footerCrc = r.u32();
  const footerBody = r.pos;
  const backward = r.u32();
  const f0 = r.byte();
  const f1 = r.byte();
  if (r.byte() !== 0x59 || r.byte() !== 0x5a) fail(what, 'xz stream footer is missing or corrupt (truncated?)');
  if (footerCrc !== crc32(r.buf.subarray(footerBody, footerBody + 6))) fail(what, 'xz stream footer is corrupt (CRC mismatch)');
  if (f0 !== flags[0] || f1 !== flags[1]) fail(what, 'xz stream footer flags differ from the header (corrupt)');
  if ((backward + 1) * 4 !== indexEnd + 4 - indexStart) fail(what, 'xz stream footer does not point at the index (corrupt)');
}

export interface XzOptions {
  maxSize?: number;
  what?: string;
}

/** Decompress the first stream of an .xz file (LZMA2, optionally after the x86 BCJ filter). */
export function decompressXz(input: Uint8Array, opts: XzOptions = {}): Uint8Array {
  const what = opts.what ?? 'xz data';
  const maxSize = opts.maxSize ?? 1024 * 1024 * 1024;
  const r = new Reader(input, 0, what);
  // Stream header (2.1.1): magic, 2 bytes of stream flags (0x00, check ID), CRC32 of the flags.
  for (const m of XZ_MAGIC) if (r.byte() !== m) fail(what, 'not xz data (bad magic)');
  const flags = input.subarray(6, 8);
  const flag0 = r.byte();
  const checkId = r.byte();
  if (flag0 !== 0 || checkId > 0x0f) fail(what, 'unsupported xz stream flags');
  if (r.u32() !== crc32(flags)) fail(what, 'xz stream header is corrupt (CRC mismatch)');
  const checkLen = checkSize(checkId);

  const parts: Uint8Array[] = [];
  /** Per block, what the index must repeat: unpadded size and uncompressed size (4.3). */
  const records: [number, number][] = [];
  let total = 0;
  let indexStart: number;
  for (;;) {
    const blockStart = r.pos;
    const sizeByte = r.byte();
    if (sizeByte === 0) {
      indexStart = blockStart; // index indicator: no more blocks (3.1.1)
      break;
    }
    // Block header (3.1): real size = (byte + 1) * 4, ends with a CRC32 of everything before it.
    const headerLen = (sizeByte + 1) * 4;
    if (input.length - blockStart < headerLen) fail(what, 'truncated xz block header');
    const headerEnd = blockStart + headerLen;
    const crcAt = headerEnd - 4;
    const storedCrc = new Reader(input, crcAt, what).u32();
    if (storedCrc !== crc32(input.subarray(blockStart, crcAt))) fail(what, 'xz block header is corrupt (CRC mismatch)');
    const blockFlags = r.byte();
    if (blockFlags & 0x3c) fail(what, 'unsupported xz block flags');
    const compressedSize = blockFlags & 0x40 ? r.varint() : undefined;
    const uncompressedSize = blockFlags & 0x80 ? r.varint() : undefined;
    const nFilters = (blockFlags & 3) + 1;
    const filters: { id: number; props: Uint8Array }[] = [];
    for (let f = 0; f < nFilters; f++) {
      const id = r.varint();
      const propLen = r.varint();
      if (propLen > crcAt - r.pos) fail(what, 'xz filter properties run past the block header');
      filters.push({ id, props: input.subarray(r.pos, r.pos + propLen) });
      r.pos += propLen;
    }
    if (r.pos > crcAt) fail(what, 'xz block header overflows');
    const last = filters[filters.length - 1];
    if (last.id !== FILTER_LZMA2) fail(what, `unsupported xz filter 0x${last.id.toString(16)} (only LZMA2 is decoded)`);
    let bcjStart: number | undefined;
    if (filters.length === 2) {
      const f = filters[0];
      if (f.id !== FILTER_X86) {
        fail(what, `unsupported xz filter 0x${f.id.toString(16)} (only the x86 BCJ filter is decoded before LZMA2)`);
      }
      if (f.props.length !== 0 && f.props.length !== 4) fail(what, 'bad x86 BCJ filter properties');
      bcjStart = f.props.length === 4 ? new Reader(f.props, 0, what).u32() : 0;
    } else if (filters.length > 2) {
      fail(what, 'unsupported xz filter chain (more than BCJ + LZMA2)');
    }

    const dataStart = headerEnd;
    const { end: dataEnd, unpacked } = scanLzma2(input, dataStart, what);
    if (compressedSize !== undefined && compressedSize !== dataEnd - dataStart) {
      fail(what, 'xz block compressed size does not match its data');
    }
    if (uncompressedSize !== undefined && uncompressedSize !== unpacked) {
      fail(what, 'xz block uncompressed size does not match its data');
    }
    if (total + unpacked > maxSize) fail(what, `decompresses to more than the ${maxSize} bytes allowed`);
    let out: Uint8Array;
    try {
      out = lzma2().decompressSync(input.subarray(dataStart, dataEnd));
    } catch (e) {
      fail(what, `corrupt LZMA2 data (${(e as Error).message})`);
    }
    if (out.length !== unpacked) fail(what, `LZMA2 data decoded to ${out.length} bytes, its chunks declare ${unpacked}`);
    if (bcjStart !== undefined) bcjX86Decode(out, bcjStart);

    // Block padding to a multiple of 4 (3.3), then the check of the uncompressed data (3.4).
    r.pos = dataEnd;
    while ((r.pos - blockStart) % 4 !== 0) if (r.byte() !== 0) fail(what, 'corrupt xz block padding');
    if (input.length - r.pos < checkLen) fail(what, 'truncated xz block check');
    if (checkId === 1 && new Reader(input, r.pos, what).u32() !== crc32(out)) {
      fail(what, 'xz data is corrupt (CRC32 of the decompressed data does not match)');
    }
    // CRC64 and SHA-256 checks are not verified; LZMA2 decoding already rejects most damage.
    r.pos += checkLen;
    records.push([headerLen + (dataEnd - dataStart) + checkLen, out.length]);
    parts.push(out);
    total += out.length;
  }
  checkIndexAndFooter(r, indexStart, records, flags);
  if (parts.length === 1) return parts[0];
  const all = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}
