// Creating an empty image (`tsvm img create`): raw (a sparse file of the given size) or qcow2,
// optionally on top of a backing file whose size becomes the default virtual size.
import type { DiskFormat } from './backend.js';
import { BlockError } from './errors.js';
import { ImageFile } from './image-file.js';
import { openDisk, resolveBackingPath } from './open.js';
import { createQcow2 } from './qcow2/create.js';

export interface CreateImageOptions {
  format: DiskFormat;
  /** Bytes; defaults to the backing file's virtual size. */
  size?: number;
  backingFile?: string;
  /** Probed from the backing file when not given (and then stored in the image). */
  backingFormat?: DiskFormat;
  /** qcow2: cluster size in bytes (power of two, 512 B .. 2 MiB). */
  clusterSize?: number;
  /** qcow2: 2 or 3. */
  version?: 2 | 3;
}

export async function createImage(path: string, opts: CreateImageOptions): Promise<void> {
  let size = opts.size;
  let backingFormat = opts.backingFormat;
  if (opts.backingFile !== undefined) {
    if (opts.format !== 'qcow2') throw new BlockError('only qcow2 images can have a backing file', path);
    // The backing file must open (through its own chain) as the new image will see it.
    const backing = await openDisk(resolveBackingPath(path, opts.backingFile), { format: backingFormat, readonly: true });
    try {
      size ??= backing.sizeBytes;
      backingFormat ??= backing.format;
    } finally {
      await backing.close();
    }
  }
  if (size === undefined) throw new BlockError('no size given (and no backing file to take it from)', path);
  if (!Number.isSafeInteger(size) || size < 0) throw new BlockError(`bad size ${size}`, path);
  if (opts.format === 'raw') {
    const f = await ImageFile.create(path);
    try {
      await f.truncate(Math.ceil(size / 512) * 512);
    } finally {
      await f.close();
    }
    return;
  }
  let clusterBits: number | undefined;
  if (opts.clusterSize !== undefined) {
    clusterBits = Math.log2(opts.clusterSize);
    if (!Number.isInteger(clusterBits)) throw new BlockError(`cluster size ${opts.clusterSize} is not a power of two`, path);
  }
  await createQcow2(path, { size, clusterBits, version: opts.version, backingFile: opts.backingFile, backingFormat });
}
