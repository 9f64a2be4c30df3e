// Constants of the qcow2 format (QEMU docs/interop/qcow2.txt). Field offsets are those of the
// "Header" section; bit numbers those of the feature bitmaps, L1/L2 entries and descriptors.

/** Header bytes 0-3: "QFI\xfb". */
export const QCOW2_MAGIC = 0x514649fb;

/** Header field offsets ("Header"). */
export const H = {
  magic: 0,
  version: 4,
  backingFileOffset: 8,
  backingFileSize: 16,
  clusterBits: 20,
  size: 24,
  cryptMethod: 32,
  l1Size: 36,
  l1TableOffset: 40,
  refcountTableOffset: 48,
  refcountTableClusters: 56,
  nbSnapshots: 60,
  snapshotsOffset: 64,
  // version 3
  incompatibleFeatures: 72,
  compatibleFeatures: 80,
  autoclearFeatures: 88,
  refcountOrder: 96,
  headerLength: 100,
  compressionType: 104,
} as const;

export const V2_HEADER_LENGTH = 72;
export const V3_HEADER_LENGTH = 104;

/** incompatible_features bits. */
export const INCOMPAT_DIRTY = 0;
export const INCOMPAT_CORRUPT = 1;
export const INCOMPAT_DATA_FILE = 2;
export const INCOMPAT_COMPRESSION = 3;
export const INCOMPAT_EXTL2 = 4;
/** compatible_features bit 0. */
export const COMPAT_LAZY_REFCOUNTS = 0;
/** autoclear_features bits. */
export const AUTOCLEAR_BITMAPS = 0;
export const AUTOCLEAR_DATA_FILE_RAW = 1;

/** Names for the bits we know, used when the image has no feature name table. */
export const KNOWN_FEATURE_NAMES: Record<'incompatible' | 'compatible' | 'autoclear', Record<number, string>> = {
  incompatible: { 0: 'dirty bit', 1: 'corrupt bit', 2: 'external data file', 3: 'compression type', 4: 'extended L2 entries' },
  compatible: { 0: 'lazy refcounts' },
  autoclear: { 0: 'bitmaps', 1: 'raw external data' },
};

/** Header extension types ("Header extensions"). */
export const EXT_END = 0x00000000;
export const EXT_BACKING_FORMAT = 0xe2792aca;
export const EXT_FEATURE_TABLE = 0x6803f857;
export const EXT_BITMAPS = 0x23852875;
export const EXT_CRYPTO = 0x0537be77;
export const EXT_DATA_FILE = 0x44415441;

/** "Header", backing_file_size: at most 1023 bytes. */
export const MAX_BACKING_NAME = 1023;
/** QEMU's implementation limits, which we share: 2 MiB clusters, 32 MiB L1, 8 MiB refcount table. */
export const MAX_CLUSTER_BITS = 21;
export const MIN_CLUSTER_BITS = 9;
export const MAX_L1_BYTES = 32 * 1024 * 1024;
export const MAX_REFTABLE_BYTES = 8 * 1024 * 1024;
/** Offsets we handle as JavaScript numbers: 2^53 (8 PiB). The format's own limit is 2^56. */
export const MAX_OFFSET = 2 ** 53;

/** Bit 63 of L1 and L2 entries: refcount is exactly one ("QCOW_OFLAG_COPIED"). */
export const HI_COPIED = 0x80000000;
/** Bit 62 of L2 entries: compressed cluster. */
export const HI_COMPRESSED = 0x40000000;
/** Bits 9-55 of an L1/L2 entry or refcount table entry, split into the high and low 32-bit words. */
export const HI_OFFSET_MASK = 0x00ffffff;
export const LO_OFFSET_MASK = 0xfffffe00;
/** Standard cluster descriptor bit 0: reads as zeros (version 3). */
export const LO_ZERO = 1;

export const SECTOR = 512;
