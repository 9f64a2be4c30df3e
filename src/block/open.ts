// Opening a disk image by path: format probing, backing chains, the safety rules around both.
//
// Probing. Without an explicit format, a file that starts with the qcow2 magic is qcow2 and
// anything else is raw. Probing is what QEMU warns about: a guest owning a raw disk could write
// a qcow2 header (naming, say, /etc/shadow as its backing file) into sector 0, and the next
// probing open would obey it. We follow QEMU's rule: a raw image whose format was probed (not
// given) refuses writes that would make its first sector start with the qcow2 magic, and the
// caller is warned (onWarning) that the format was guessed. Backing files are always opened
// read-only; their format comes from the overlay's backing format extension, else from probing.
//
// Chains are followed with loop detection (by real path) and a depth limit. A qcow2 image marked
// dirty (lazy refcounts, not closed cleanly) has its refcounts rebuilt before a writable open,
// as QEMU does; read-only opens use it as it is.
import { realpath } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { BlockBackend, DiskFormat } from './backend.js';
import { BlockError, fsError, UnsupportedImageError } from './errors.js';
import { RawBackend } from './raw.js';
import { Qcow2Image, type BackingRequest } from './qcow2/image.js';
import { probeFormat } from './probe.js';
import { repairImage } from './check.js';

export interface OpenDiskOptions {
  /** Skip probing. */
  format?: DiskFormat;
  readonly?: boolean;
  /** virtio-blk serial (GET_ID). */
  serial?: string;
  /** Told when the format had to be guessed and what that restricts. */
  onWarning?: (message: string) => void;
  /** Longest backing chain followed (default 32). */
  maxChainDepth?: number;
}

export type OpenedDisk = (RawBackend | Qcow2Image) & BlockBackend;

export const DEFAULT_MAX_CHAIN_DEPTH = 32;

export function parseFormat(s: string, what = 'format'): DiskFormat {
  if (s === 'raw' || s === 'qcow2') return s;
  throw new UnsupportedImageError(`${what} "${s}" (tsvm knows raw and qcow2)`);
}

export { probeFormat };

/** Where an overlay's backing file name points (relative names: against the overlay's directory). */
export function resolveBackingPath(overlayPath: string, name: string): string {
  return isAbsolute(name) ? name : resolve(dirname(overlayPath), name);
}

export async function openDisk(path: string, opts: OpenDiskOptions = {}): Promise<OpenedDisk> {
  return openChain(path, opts, [], opts.maxChainDepth ?? DEFAULT_MAX_CHAIN_DEPTH);
}

async function openChain(path: string, opts: OpenDiskOptions, chain: string[], depthLeft: number): Promise<OpenedDisk> {
  let real: string;
  try {
    real = await realpath(path);
  } catch (e) {
    throw fsError(e, path, chain.length > 0 ? `backing file of ${chain[chain.length - 1]} cannot be opened` : 'cannot open');
  }
  if (chain.includes(real)) throw new BlockError(`backing chain loops: ${[...chain, real].join(' -> ')}`, chain[0]);
  if (depthLeft <= 0) throw new BlockError(`backing chain is longer than ${chain.length} images`, chain[0]);
  const readonly = opts.readonly ?? false;
  let format = opts.format;
  let probed = false;
  if (!format) {
    format = await probeFormat(path);
    probed = true;
    if (format === 'raw' && !readonly) {
      opts.onWarning?.(
        `${path}: format not given, probed as raw; writes that would put a qcow2 header into sector 0 are refused (give format=raw to lift this)`,
      );
    }
  }
  if (format === 'raw') return RawBackend.open(path, { readonly, serial: opts.serial, probed: probed && !readonly });
  const nextChain = [...chain, real];
  return Qcow2Image.open(path, {
    readonly,
    serial: opts.serial,
    // A dirty image (lazy refcounts, not closed cleanly) gets its refcounts rebuilt first, as
    // QEMU does when it opens one for writing.
    repairDirty: async (p) => {
      opts.onWarning?.(`${p}: the image is marked dirty; rebuilding its refcounts before writing`);
      await repairImage(p, 'all');
    },
    openBacking: (req: BackingRequest) => {
      if (/^[a-z][a-z0-9+.-]*:/i.test(req.name) && !req.name.startsWith('file:')) {
        throw new UnsupportedImageError(`backing file "${req.name}" is not a local file`, path);
      }
      const name = req.name.startsWith('file:') ? req.name.slice(5) : req.name;
      const backingFormat = req.format !== undefined ? parseFormat(req.format, `backing file format of ${path}`) : undefined;
      return openChain(resolveBackingPath(req.overlayPath, name), { format: backingFormat, readonly: true, onWarning: opts.onWarning }, nextChain, depthLeft - 1);
    },
  });
}
