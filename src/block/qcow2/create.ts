// Creating an empty qcow2 image: a header cluster (header, extensions, backing file name), the
// refcount table, the refcount blocks that count the metadata clusters, and a zeroed L1 table.
// Layout as qemu-img makes it: header at 0, refcount table at cluster 1, then refcount
// block(s), then the L1 table; nothing else is allocated.
import { BlockError } from '../errors.js';
import { ImageFile } from '../image-file.js';
import {
  EXT_BACKING_FORMAT, EXT_FEATURE_TABLE, H, KNOWN_FEATURE_NAMES, MAX_BACKING_NAME, MAX_CLUSTER_BITS, MAX_L1_BYTES,
  MAX_OFFSET, MIN_CLUSTER_BITS, QCOW2_MAGIC, V2_HEADER_LENGTH,
} from './format.js';
import { l1EntriesFor } from './header.js';
import { encodeU64, setRefcountEntry } from './refcount.js';

export interface Qcow2CreateOptions {
  /** Virtual size in bytes (rounded up to 512). */
  size: number;
  /** 2 or 3 (default 3, what qemu-img calls compat=1.1). */
  version?: 2 | 3;
  /** log2 of the cluster size (default 16: 64 KiB). */
  clusterBits?: number;
  /** Refcount width 2^order bits (default 4: 16 bits; version 2 requires 4). */
  refcountOrder?: number;
  /** Stored as given: a relative name is relative to the new image's directory. */
  backingFile?: string;
  backingFormat?: string;
}

/** Header bytes we write for version 3: the 104 mandatory ones plus compression_type, padded. */
const V3_LENGTH = 112;

export async function createQcow2(path: string, opts: Qcow2CreateOptions): Promise<void> {
  const version = opts.version ?? 3;
  const bits = opts.clusterBits ?? 16;
  const order = opts.refcountOrder ?? 4;
  if (bits < MIN_CLUSTER_BITS || bits > MAX_CLUSTER_BITS) throw new BlockError(`cluster size must be a power of two from 512 bytes to 2 MiB`, path);
  if (order > 6 || (version === 2 && order !== 4)) throw new BlockError(`refcount width 2^${order} bits is not allowed for version ${version}`, path);
  if (!Number.isSafeInteger(opts.size) || opts.size < 0 || opts.size > MAX_OFFSET / 2) throw new BlockError(`bad virtual size ${opts.size}`, path);
  const cs = 2 ** bits;
  const size = Math.ceil(opts.size / 512) * 512;
  const l1Size = Math.max(1, l1EntriesFor(size, bits));
  if (l1Size * 8 > MAX_L1_BYTES) throw new BlockError(`a ${size}-byte disk needs a larger cluster size than ${cs} bytes`, path);
  const l1Clusters = Math.ceil((l1Size * 8) / cs);
  const perBlock = (cs * 8) >> order;

  // Find how many refcount blocks and table clusters the metadata itself needs (a fixed point).
  let rtClusters = 1;
  let rbCount = 1;
  for (;;) {
    const total = 1 + rtClusters + rbCount + l1Clusters;
    const rb = Math.ceil(total / perBlock);
    const rt = Math.ceil((rb * 8) / cs);
    if (rb === rbCount && rt === rtClusters) break;
    rbCount = rb;
    rtClusters = rt;
  }
  const rtOffset = cs;
  const rbOffset = rtOffset + rtClusters * cs;
  const l1Offset = rbOffset + rbCount * cs;
  const totalClusters = 1 + rtClusters + rbCount + l1Clusters;

  const header = new Uint8Array(cs);
  const dv = new DataView(header.buffer);
  dv.setUint32(H.magic, QCOW2_MAGIC);
  dv.setUint32(H.version, version);
  dv.setUint32(H.clusterBits, bits);
  encodeU64(header, H.size, size);
  dv.setUint32(H.l1Size, l1Size);
  encodeU64(header, H.l1TableOffset, l1Offset);
  encodeU64(header, H.refcountTableOffset, rtOffset);
  dv.setUint32(H.refcountTableClusters, rtClusters);
  let off = V2_HEADER_LENGTH;
  if (version === 3) {
    dv.setUint32(H.refcountOrder, order);
    dv.setUint32(H.headerLength, V3_LENGTH);
    off = V3_LENGTH;
  }
  const ext = (type: number, data: Uint8Array) => {
    if (off + 8 + data.length + 8 > cs) throw new BlockError('header extensions do not fit in the first cluster', path);
    dv.setUint32(off, type);
    dv.setUint32(off + 4, data.length);
    header.set(data, off + 8);
    off += 8 + Math.ceil(data.length / 8) * 8;
  };
  const enc = new TextEncoder();
  if (opts.backingFile !== undefined && opts.backingFormat) ext(EXT_BACKING_FORMAT, enc.encode(opts.backingFormat));
  if (version === 3) {
    // "Feature name table": names of the bits we know, for tools that do not.
    const entries: Uint8Array[] = [];
    (['incompatible', 'compatible', 'autoclear'] as const).forEach((kind, type) => {
      for (const [bit, name] of Object.entries(KNOWN_FEATURE_NAMES[kind])) {
        const e = new Uint8Array(48);
        e[0] = type;
        e[1] = Number(bit);
        e.set(enc.encode(name).subarray(0, 46), 2);
        entries.push(e);
      }
    });
    const table = new Uint8Array(entries.length * 48);
    entries.forEach((e, i) => table.set(e, i * 48));
    ext(EXT_FEATURE_TABLE, table);
  }
  off += 8; // end-of-extensions marker (zeros)
  if (opts.backingFile !== undefined) {
    const name = enc.encode(opts.backingFile);
    if (name.length === 0 || name.length > MAX_BACKING_NAME) throw new BlockError(`backing file name must be 1 to ${MAX_BACKING_NAME} bytes`, path);
    if (off + name.length > cs) throw new BlockError('backing file name does not fit in the first cluster', path);
    encodeU64(header, H.backingFileOffset, off);
    dv.setUint32(H.backingFileSize, name.length);
    header.set(name, off);
  }

  const rt = new Uint8Array(rtClusters * cs);
  for (let i = 0; i < rbCount; i++) encodeU64(rt, i * 8, rbOffset + i * cs);
  const rb = new Uint8Array(rbCount * cs);
  for (let c = 0; c < totalClusters; c++) {
    const block = Math.floor(c / perBlock);
    setRefcountEntry(rb.subarray(block * cs, (block + 1) * cs), order, c % perBlock, 1);
  }

  const file = await ImageFile.create(path);
  try {
    await file.write(0, header);
    await file.write(rtOffset, rt);
    await file.write(rbOffset, rb);
    await file.truncate(l1Offset + l1Clusters * cs);
    await file.datasync();
  } finally {
    await file.close();
  }
}
