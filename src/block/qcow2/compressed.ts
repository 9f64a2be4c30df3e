// Compressed clusters ("Compressed Clusters Descriptor"): the data decompresses to exactly one
// cluster. With compression_type 0 (zlib) it is a raw deflate stream; with 1 (zstd) one zstd
// frame. Either may end before the last sector does (the rest is padding or the start of the
// next compressed cluster), so the stream's own end, not the sector count, ends it.
import { constants, deflateRawSync, inflateRawSync } from 'node:zlib';
import { zstdDecompress } from '../../deps/lazy.js';
import { CorruptImageError } from '../errors.js';

/** compression_type values ("Additional fields", byte 104). */
export const COMPRESSION_ZLIB = 0;
export const COMPRESSION_ZSTD = 1;

export function decompressCluster(data: Uint8Array, clusterSize: number, path: string, type = COMPRESSION_ZLIB): Uint8Array {
  if (type === COMPRESSION_ZSTD) return decompressZstd(data, clusterSize, path);
  let out: Buffer;
  try {
    // Z_SYNC_FLUSH: a stream cut at the end of its last sector still yields what it holds;
    // maxOutputLength bounds what a hostile stream can make us allocate.
    out = inflateRawSync(data, { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: clusterSize });
  } catch (e) {
    throw new CorruptImageError(`compressed cluster does not decompress (${(e as Error).message})`, path);
  }
  if (out.length < clusterSize) throw new CorruptImageError(`compressed cluster decompresses to ${out.length} bytes, not ${clusterSize}`, path);
  return new Uint8Array(out.buffer, out.byteOffset, clusterSize);
}

/**
 * Compresses one cluster as QEMU does: raw deflate with a 4 KiB window (QEMU inflates with
 * window bits 12, so a larger window could produce distances it rejects). Undefined when the
 * result would not save at least a sector.
 */
export function compressCluster(data: Uint8Array): Uint8Array | undefined {
  const out = deflateRawSync(data, { level: 6, windowBits: 12 });
  return out.length < data.length - 512 ? new Uint8Array(out.buffer, out.byteOffset, out.length) : undefined;
}

/**
 * The length of the zstd frame at the start of `d` (RFC 8878 section 3.1.1: frame header, then
 * blocks with 3-byte headers, then an optional 4-byte checksum).
 */
export function zstdFrameLength(d: Uint8Array): number {
  if (d.length < 6 || d[0] !== 0x28 || d[1] !== 0xb5 || d[2] !== 0x2f || d[3] !== 0xfd) throw new Error('no zstd frame magic');
  const fhd = d[4];
  const single = (fhd >> 5) & 1;
  let p = 5 + (single ? 0 : 1) + [0, 1, 2, 4][fhd & 3] + [single, 2, 4, 8][fhd >> 6];
  for (;;) {
    if (p + 3 > d.length) throw new Error('zstd frame runs past the compressed data');
    const h = d[p] | (d[p + 1] << 8) | (d[p + 2] << 16);
    p += 3;
    const type = (h >> 1) & 3;
    if (type === 3) throw new Error('reserved zstd block type');
    p += type === 1 ? 1 : h >>> 3;
    if (h & 1) break;
  }
  p += (fhd >> 2) & 1 ? 4 : 0;
  if (p > d.length) throw new Error('zstd frame runs past the compressed data');
  return p;
}

function decompressZstd(data: Uint8Array, clusterSize: number, path: string): Uint8Array {
  let out: Uint8Array;
  try {
    out = zstdDecompress(data.subarray(0, zstdFrameLength(data)), new Uint8Array(clusterSize));
  } catch (e) {
    throw new CorruptImageError(`zstd-compressed cluster does not decompress (${(e as Error).message})`, path);
  }
  if (out.length !== clusterSize) throw new CorruptImageError(`compressed cluster decompresses to ${out.length} bytes, not ${clusterSize}`, path);
  return out;
}
