// The qcow2 header ("Header", "Header extensions", "Feature name table" in qcow2.txt): parsing
// and validation. Everything the rest of the driver trusts about the image's layout is checked
// here against the file's size, so that a hostile header gives one clear error and never an
// access outside the file.
import { CorruptImageError, UnsupportedImageError } from '../errors.js';
import {
  EXT_BACKING_FORMAT, EXT_END, EXT_FEATURE_TABLE, H, INCOMPAT_COMPRESSION, INCOMPAT_CORRUPT,
  INCOMPAT_DIRTY, KNOWN_FEATURE_NAMES, MAX_BACKING_NAME, MAX_CLUSTER_BITS,
  MAX_L1_BYTES, MAX_OFFSET, MAX_REFTABLE_BYTES, MIN_CLUSTER_BITS, QCOW2_MAGIC, V2_HEADER_LENGTH, V3_HEADER_LENGTH,
} from './format.js';

export interface HeaderExtension {
  type: number;
  /** File offset of the extension's data. */
  offset: number;
  length: number;
}

export interface Qcow2Header {
  version: 2 | 3;
  backingFileOffset: number;
  backingFileSize: number;
  /** The backing file name as stored (relative names are relative to the image's directory). */
  backingFile?: string;
  /** From the backing file format name extension (0xe2792aca). */
  backingFormat?: string;
  clusterBits: number;
  clusterSize: number;
  /** Virtual disk size in bytes. */
  size: number;
  cryptMethod: number;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  nbSnapshots: number;
  snapshotsOffset: number;
  incompatibleFeatures: bigint;
  compatibleFeatures: bigint;
  autoclearFeatures: bigint;
  refcountOrder: number;
  headerLength: number;
  compressionType: number;
  /** Names from the feature name table, keyed "incompatible:3" etc. */
  featureNames: Map<string, string>;
  extensions: HeaderExtension[];
  dirty: boolean;
  corrupt: boolean;
}

/** The number of L2 entries per table and the guest bytes one L1 entry covers. */
export function l2Entries(clusterBits: number): number {
  return 2 ** (clusterBits - 3);
}

/** L1 entries needed for `size` bytes ("Cluster mapping"). */
export function l1EntriesFor(size: number, clusterBits: number): number {
  const perL1 = 2 ** (2 * clusterBits - 3);
  return Math.ceil(size / perL1);
}

function u64(v: DataView, off: number): bigint {
  return v.getBigUint64(off);
}

/** A 64-bit field that must fit a JavaScript number (we handle offsets up to 2^53). */
function num64(v: DataView, off: number, what: string, path: string): number {
  const b = u64(v, off);
  if (b > BigInt(MAX_OFFSET)) throw new CorruptImageError(`${what} ${b} is out of range`, path);
  return Number(b);
}

const FEATURE_TYPES = ['incompatible', 'compatible', 'autoclear'] as const;

export function featureName(h: Pick<Qcow2Header, 'featureNames'>, type: (typeof FEATURE_TYPES)[number], bit: number): string {
  return h.featureNames.get(`${type}:${bit}`) ?? KNOWN_FEATURE_NAMES[type][bit] ?? `unknown ${type} feature bit ${bit}`;
}

/** Does the buffer start with the qcow2 magic? (format probing) */
export function hasQcow2Magic(b: Uint8Array): boolean {
  return b.length >= 4 && new DataView(b.buffer, b.byteOffset, 4).getUint32(0) === QCOW2_MAGIC;
}

/**
 * How many bytes the header and its extensions may occupy: cluster_bits from the first bytes,
 * clamped to a sane range so that a hostile value cannot make us read gigabytes.
 */
export function headerClusterSize(first: Uint8Array): number {
  if (first.length < 24) return 512;
  const bits = new DataView(first.buffer, first.byteOffset, 24).getUint32(H.clusterBits);
  return 2 ** Math.min(MAX_CLUSTER_BITS, Math.max(MIN_CLUSTER_BITS, bits));
}

/**
 * Parses and validates the header in `buf` (the image's first cluster, or the whole file if
 * shorter). `fileSize` bounds every table the header points at.
 */
export function parseHeader(buf: Uint8Array, fileSize: number, path: string): Qcow2Header {
  if (buf.length < V2_HEADER_LENGTH) throw new CorruptImageError(`file too short for a qcow2 header (${fileSize} bytes)`, path);
  const v = new DataView(buf.buffer, buf.byteOffset, buf.length);
  if (v.getUint32(H.magic) !== QCOW2_MAGIC) throw new CorruptImageError('bad magic: not a qcow2 image', path);
  const version = v.getUint32(H.version);
  if (version !== 2 && version !== 3) throw new UnsupportedImageError(`qcow2 version ${version} (tsvm reads versions 2 and 3)`, path);

  const clusterBits = v.getUint32(H.clusterBits);
  if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    throw new CorruptImageError(`cluster_bits ${clusterBits} is outside ${MIN_CLUSTER_BITS}..${MAX_CLUSTER_BITS}`, path);
  }
  const clusterSize = 2 ** clusterBits;

  let headerLength = V2_HEADER_LENGTH;
  let incompatibleFeatures = 0n;
  let compatibleFeatures = 0n;
  let autoclearFeatures = 0n;
  let refcountOrder = 4;
  let compressionType = 0;
  if (version === 3) {
    if (buf.length < V3_HEADER_LENGTH) throw new CorruptImageError('file too short for a version 3 header', path);
    headerLength = v.getUint32(H.headerLength);
    if (headerLength < V3_HEADER_LENGTH || headerLength % 8 !== 0 || headerLength > clusterSize || headerLength > buf.length) {
      throw new CorruptImageError(`header_length ${headerLength} is invalid`, path);
    }
    incompatibleFeatures = u64(v, H.incompatibleFeatures);
    compatibleFeatures = u64(v, H.compatibleFeatures);
    autoclearFeatures = u64(v, H.autoclearFeatures);
    refcountOrder = v.getUint32(H.refcountOrder);
    if (refcountOrder > 6) throw new CorruptImageError(`refcount_order ${refcountOrder} is greater than 6`, path);
    // "Additional fields": compression_type is present only when header_length covers it.
    if (headerLength > H.compressionType) compressionType = v.getUint8(H.compressionType);
  }

  const h: Qcow2Header = {
    version,
    backingFileOffset: num64(v, H.backingFileOffset, 'backing_file_offset', path),
    backingFileSize: v.getUint32(H.backingFileSize),
    clusterBits,
    clusterSize,
    size: num64(v, H.size, 'virtual size', path),
    cryptMethod: v.getUint32(H.cryptMethod),
    l1Size: v.getUint32(H.l1Size),
    l1TableOffset: num64(v, H.l1TableOffset, 'l1_table_offset', path),
    refcountTableOffset: num64(v, H.refcountTableOffset, 'refcount_table_offset', path),
    refcountTableClusters: v.getUint32(H.refcountTableClusters),
    nbSnapshots: v.getUint32(H.nbSnapshots),
    snapshotsOffset: num64(v, H.snapshotsOffset, 'snapshots_offset', path),
    incompatibleFeatures,
    compatibleFeatures,
    autoclearFeatures,
    refcountOrder,
    headerLength,
    compressionType,
    featureNames: new Map(),
    extensions: [],
    dirty: (incompatibleFeatures & (1n << BigInt(INCOMPAT_DIRTY))) !== 0n,
    corrupt: (incompatibleFeatures & (1n << BigInt(INCOMPAT_CORRUPT))) !== 0n,
  };

  parseExtensions(h, buf, v, path);
  checkFeatures(h, path);
  checkLayout(h, fileSize, path);

  if (h.backingFileOffset !== 0) {
    const end = h.backingFileOffset + h.backingFileSize;
    if (h.backingFileSize === 0 || h.backingFileSize > MAX_BACKING_NAME) {
      throw new CorruptImageError(`backing file name length ${h.backingFileSize} is invalid (1..${MAX_BACKING_NAME})`, path);
    }
    if (h.backingFileOffset < h.headerLength || end > clusterSize || end > buf.length) {
      throw new CorruptImageError(`backing file name at ${h.backingFileOffset} is outside the header cluster`, path);
    }
    h.backingFile = new TextDecoder().decode(buf.subarray(h.backingFileOffset, end));
    if (h.backingFile.includes('\0')) throw new CorruptImageError('backing file name contains a NUL byte', path);
  }
  return h;
}

function parseExtensions(h: Qcow2Header, buf: Uint8Array, v: DataView, path: string): void {
  // Extensions follow the header and end before the backing file name, or at the cluster's end.
  const limit = Math.min(buf.length, h.clusterSize, h.backingFileOffset > 0 ? h.backingFileOffset : Infinity);
  let off = h.headerLength;
  const seen = new Set<number>();
  while (off + 8 <= limit) {
    const type = v.getUint32(off);
    const length = v.getUint32(off + 4);
    if (type === EXT_END) return;
    const data = off + 8;
    if (length > limit - data) throw new CorruptImageError(`header extension 0x${type.toString(16)} at ${off} overruns the header area`, path);
    if (seen.has(type)) throw new CorruptImageError(`header extension 0x${type.toString(16)} appears twice`, path);
    seen.add(type);
    h.extensions.push({ type, offset: data, length });
    if (type === EXT_BACKING_FORMAT) {
      h.backingFormat = new TextDecoder().decode(buf.subarray(data, data + length));
    } else if (type === EXT_FEATURE_TABLE) {
      // "Feature name table": 48-byte entries: type, bit number, 46-byte name.
      for (let e = data; e + 48 <= data + length; e += 48) {
        const kind = FEATURE_TYPES[buf[e]];
        const bit = buf[e + 1];
        if (!kind || bit > 63) continue;
        const raw = buf.subarray(e + 2, e + 48);
        const nul = raw.indexOf(0);
        h.featureNames.set(`${kind}:${bit}`, new TextDecoder().decode(nul >= 0 ? raw.subarray(0, nul) : raw));
      }
    }
    off = data + Math.ceil(length / 8) * 8;
  }
}

function checkFeatures(h: Qcow2Header, path: string): void {
  const unsupported: string[] = [];
  for (let bit = 0; bit < 64; bit++) {
    if ((h.incompatibleFeatures & (1n << BigInt(bit))) === 0n) continue;
    if (bit === INCOMPAT_DIRTY || bit === INCOMPAT_CORRUPT) continue;
    if (bit === INCOMPAT_COMPRESSION) {
      if (h.compressionType === 0) throw new CorruptImageError('compression type bit set but compression_type is zlib', path);
      continue;
    }
    unsupported.push(featureName(h, 'incompatible', bit));
  }
  if (unsupported.length > 0) throw new UnsupportedImageError(`incompatible feature(s) not supported: ${unsupported.join(', ')}`, path);
  // compression_type: 0 zlib, 1 zstd; anything else we cannot read.
  if (h.compressionType > 1) throw new UnsupportedImageError(`compression type ${h.compressionType} (tsvm reads zlib and zstd)`, path);
  if (h.cryptMethod !== 0) {
    throw new UnsupportedImageError(`encrypted image (crypt_method ${h.cryptMethod === 1 ? 'AES' : h.cryptMethod === 2 ? 'LUKS' : h.cryptMethod})`, path);
  }
}

function checkLayout(h: Qcow2Header, fileSize: number, path: string): void {
  const cs = h.clusterSize;
  const aligned = (x: number) => x % cs === 0;

  // "Cluster mapping": the L1 table must cover the virtual size.
  const l1Needed = l1EntriesFor(h.size, h.clusterBits);
  if (h.l1Size * 8 > MAX_L1_BYTES) throw new CorruptImageError(`L1 table of ${h.l1Size} entries is too large`, path);
  if (h.l1Size < l1Needed) throw new CorruptImageError(`L1 table of ${h.l1Size} entries is too small for ${h.size} bytes`, path);
  if (h.l1Size > 0) {
    if (h.l1TableOffset === 0 || !aligned(h.l1TableOffset)) throw new CorruptImageError(`L1 table offset ${h.l1TableOffset} is not cluster aligned`, path);
    if (h.l1TableOffset + h.l1Size * 8 > fileSize) throw new CorruptImageError(`L1 table at ${h.l1TableOffset} lies past the end of the file`, path);
  }

  // "Host cluster management": the refcount table.
  const rtBytes = h.refcountTableClusters * cs;
  if (h.refcountTableClusters === 0) throw new CorruptImageError('refcount table has 0 clusters', path);
  if (rtBytes > MAX_REFTABLE_BYTES) throw new CorruptImageError(`refcount table of ${h.refcountTableClusters} clusters is too large`, path);
  if (h.refcountTableOffset === 0 || !aligned(h.refcountTableOffset)) {
    throw new CorruptImageError(`refcount table offset ${h.refcountTableOffset} is not cluster aligned`, path);
  }
  if (h.refcountTableOffset + rtBytes > fileSize) throw new CorruptImageError(`refcount table at ${h.refcountTableOffset} lies past the end of the file`, path);

  if (h.nbSnapshots > 0) {
    if (!aligned(h.snapshotsOffset) || h.snapshotsOffset === 0 || h.snapshotsOffset >= fileSize) {
      throw new CorruptImageError(`snapshot table offset ${h.snapshotsOffset} is invalid`, path);
    }
  }

  // The header cluster, L1 table and refcount table must not overlap one another.
  const ranges: [string, number, number][] = [['header', 0, cs], ['refcount table', h.refcountTableOffset, rtBytes]];
  if (h.l1Size > 0) ranges.push(['L1 table', h.l1TableOffset, Math.ceil((h.l1Size * 8) / cs) * cs]);
  for (let i = 0; i < ranges.length; i++) {
    for (let j = i + 1; j < ranges.length; j++) {
      const [an, a0, al] = ranges[i];
      const [bn, b0, bl] = ranges[j];
      if (a0 < b0 + bl && b0 < a0 + al) throw new CorruptImageError(`${an} and ${bn} overlap`, path);
    }
  }
}
