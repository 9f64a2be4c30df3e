// Compressed clusters ("Compressed Clusters Descriptor"): the data is a raw deflate stream
// (zlib, compression_type 0) that decompresses to exactly one cluster. The stream may end before
// the last sector does; decompression stops once a cluster has been produced.
import { constants, deflateRawSync, inflateRawSync } from 'node:zlib';
import { CorruptImageError } from '../errors.js';

export function decompressCluster(data: Uint8Array, clusterSize: number, path: string): Uint8Array {
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
