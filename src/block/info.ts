// What `tsvm img info` shows: format, sizes, cluster size and the backing chain of an image.
import { realpath, stat } from 'node:fs/promises';
import type { DiskFormat } from './backend.js';
import { BlockError, fsError } from './errors.js';
import { ImageFile } from './image-file.js';
import { DEFAULT_MAX_CHAIN_DEPTH, parseFormat, resolveBackingPath } from './open.js';
import { probeFormat } from './probe.js';
import { headerClusterSize, parseHeader } from './qcow2/header.js';

export interface ImageInfo {
  filename: string;
  format: DiskFormat;
  virtualSize: number;
  /** Bytes the file occupies on the host. */
  actualSize: number;
  clusterSize?: number;
  /** qcow2 version: 2 ("compat 0.10") or 3 ("compat 1.1"). */
  qcow2Version?: number;
  refcountBits?: number;
  dirty?: boolean;
  corrupt?: boolean;
  snapshots?: number;
  backingFilename?: string;
  /** The backing file's path as resolved against this image's directory. */
  fullBackingFilename?: string;
  backingFilenameFormat?: string;
  /** The backing image's info (and its backing, and so on). */
  backing?: ImageInfo;
}

export async function imageInfo(path: string, format?: DiskFormat, seen: string[] = []): Promise<ImageInfo> {
  let real: string;
  try {
    real = await realpath(path);
  } catch (e) {
    throw fsError(e, path, 'cannot open');
  }
  if (seen.includes(real)) throw new BlockError(`backing chain loops: ${[...seen, real].join(' -> ')}`, seen[0]);
  if (seen.length >= DEFAULT_MAX_CHAIN_DEPTH) throw new BlockError(`backing chain is longer than ${seen.length} images`, seen[0]);
  const fmt = format ?? (await probeFormat(path));
  const st = await stat(path).catch((e: unknown) => {
    throw fsError(e, path, 'cannot stat');
  });
  if (fmt === 'raw') return { filename: path, format: 'raw', virtualSize: st.size, actualSize: st.blocks * 512 };
  const file = await ImageFile.open(path, true);
  try {
    const first = await file.readNew(0, Math.min(file.size, 4096));
    const h = parseHeader(await file.readNew(0, Math.min(file.size, headerClusterSize(first))), file.size, path);
    const info: ImageInfo = {
      filename: path,
      format: 'qcow2',
      virtualSize: h.size,
      actualSize: st.blocks * 512,
      clusterSize: h.clusterSize,
      qcow2Version: h.version,
      refcountBits: 1 << h.refcountOrder,
      dirty: h.dirty,
      corrupt: h.corrupt,
      snapshots: h.nbSnapshots,
    };
    if (h.backingFile !== undefined) {
      info.backingFilename = h.backingFile;
      info.fullBackingFilename = resolveBackingPath(path, h.backingFile);
      if (h.backingFormat !== undefined) info.backingFilenameFormat = h.backingFormat;
      const bf = h.backingFormat !== undefined ? parseFormat(h.backingFormat, `backing file format of ${path}`) : undefined;
      info.backing = await imageInfo(info.fullBackingFilename, bf, [...seen, real]);
    }
    return info;
  } finally {
    await file.close();
  }
}
