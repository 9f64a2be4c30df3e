// Copying a disk's contents into a new image of another (or the same) format, as
// `qemu-img convert` does: the source is read through its whole backing chain; clusters that
// read as zeros are not written, so the output stays sparse.
import { rm } from 'node:fs/promises';
import type { DiskFormat } from './backend.js';
import { ImageFile } from './image-file.js';
import { openDisk } from './open.js';
import { createQcow2 } from './qcow2/create.js';
import { Qcow2Image } from './qcow2/image.js';
import { BlockError } from './errors.js';
import type { BlockBackend } from './backend.js';

export interface ConvertOptions {
  sourceFormat?: DiskFormat;
  targetFormat: DiskFormat;
  /** qcow2 output: log2 cluster size (default 16). */
  clusterBits?: number;
  /** qcow2 output version (default 3). */
  version?: 2 | 3;
  /** qcow2 output: store clusters compressed (deflate), as `qemu-img convert -c`. */
  compress?: boolean;
  onProgress?: (done: number, total: number) => void;
}

const CHUNK = 1 << 20;
const GRAIN = 64 * 1024;

function allZero(b: Uint8Array): boolean {
  // Compare 8 bytes at a time where alignment allows.
  if (b.byteOffset % 8 === 0 && b.length % 8 === 0) {
    const w = new BigUint64Array(b.buffer, b.byteOffset, b.length / 8);
    for (let i = 0; i < w.length; i++) if (w[i] !== 0n) return false;
    return true;
  }
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

export async function convertImage(src: string, dst: string, opts: ConvertOptions): Promise<void> {
  const source = await openDisk(src, { format: opts.sourceFormat, readonly: true });
  try {
    const size = source.sizeBytes;
    if (opts.targetFormat === 'qcow2') {
      await createQcow2(dst, { size, clusterBits: opts.clusterBits, version: opts.version });
    } else {
      const f = await ImageFile.create(dst);
      await f.truncate(size);
      await f.close();
    }
    // qcow2 rounds the virtual size up to 512 bytes; the tail past the source reads as zeros.
    const target = await openDisk(dst, { format: opts.targetFormat });
    try {
      if (opts.compress) {
        if (!(target instanceof Qcow2Image)) throw new BlockError('compression (-c) needs qcow2 output', dst);
        await copyCompressed(source, target, size, opts.onProgress);
        return;
      }
      const buf = new Uint8Array(CHUNK);
      for (let off = 0; off < size; off += CHUNK) {
        const n = Math.min(CHUNK, size - off);
        const chunk = buf.subarray(0, n);
        await source.read(off, chunk);
        for (let p = 0; p < n; p += GRAIN) {
          const part = chunk.subarray(p, Math.min(n, p + GRAIN));
          if (!allZero(part)) await target.write(off + p, part);
        }
        opts.onProgress?.(off + n, size);
      }
      await target.flush();
    } finally {
      await target.close();
    }
  } catch (e) {
    await rm(dst, { force: true }).catch(() => undefined);
    throw e;
  } finally {
    await source.close();
  }
}

async function copyCompressed(source: BlockBackend, target: Qcow2Image, size: number, onProgress?: (d: number, t: number) => void): Promise<void> {
  const cs = target.clusterSize;
  const buf = new Uint8Array(cs);
  for (let off = 0; off < size; off += cs) {
    const n = Math.min(cs, size - off);
    buf.fill(0);
    await source.read(off, buf.subarray(0, n));
    if (!allZero(buf)) await target.writeCompressed(off / cs, buf);
    onProgress?.(off + n, size);
  }
  await target.flush();
}
