// L1 and L2 table entries ("Cluster mapping" in qcow2.txt): what one guest cluster maps to.
// Entries are handled as two 32-bit halves (hi = bits 32-63, lo = bits 0-31) so that flag bits
// 62 and 63 never pass through a lossy JavaScript number.
import { CorruptImageError } from '../errors.js';
import { HI_COMPRESSED, HI_COPIED, HI_OFFSET_MASK, LO_OFFSET_MASK, LO_ZERO, MAX_OFFSET, SECTOR } from './format.js';

export type ClusterMapping =
  /** Reads from the backing file, or zeros without one. */
  | { kind: 'unallocated' }
  /** Standard descriptor bit 0 (version 3): reads as zeros; hostOffset may be a preallocation (or 0). */
  | { kind: 'zero'; hostOffset: number; copied: boolean }
  | { kind: 'normal'; hostOffset: number; copied: boolean }
  /** "Compressed Clusters Descriptor": hostOffset is byte-granular; size from the sector count. */
  | { kind: 'compressed'; hostOffset: number; sectors: number };

export function entryOffset(hi: number, lo: number): number {
  return (hi & HI_OFFSET_MASK) * 2 ** 32 + ((lo & LO_OFFSET_MASK) >>> 0);
}

/** Decodes an L1 entry: the L2 table offset (0 = none) and its COPIED bit; reserved bits must be 0. */
export function decodeL1Entry(hi: number, lo: number, clusterSize: number, index: number, path: string): { offset: number; copied: boolean } {
  // "L1 table entry": bits 0-8 and 56-62 reserved.
  if ((lo & 0x1ff) !== 0 || (hi & 0x7f000000) !== 0) throw new CorruptImageError(`L1 entry ${index} has reserved bits set`, path);
  const offset = entryOffset(hi, lo);
  if (offset % clusterSize !== 0) throw new CorruptImageError(`L1 entry ${index} points at unaligned offset ${offset}`, path);
  return { offset, copied: (hi & HI_COPIED) !== 0 };
}

/** Decodes an L2 entry ("L2 table entry" + the two descriptor formats). */
export function decodeL2Entry(hi: number, lo: number, clusterBits: number, version: number, path: string): ClusterMapping {
  hi >>>= 0;
  lo >>>= 0;
  if ((hi & HI_COMPRESSED) !== 0) {
    // x = 62 - (cluster_bits - 8): bits 0..x-1 offset, x..61 additional sectors.
    const x = 62 - (clusterBits - 8);
    const d = (BigInt(hi & 0x3fffffff) << 32n) | BigInt(lo);
    const off = Number(d & ((1n << BigInt(x)) - 1n));
    const sectors = Number(d >> BigInt(x)) + 1;
    if (off === 0 || off >= MAX_OFFSET) throw new CorruptImageError(`compressed cluster at bad offset ${off}`, path);
    return { kind: 'compressed', hostOffset: off, sectors };
  }
  const copied = (hi & HI_COPIED) !== 0;
  const offset = entryOffset(hi, lo);
  const zero = (lo & LO_ZERO) !== 0;
  // "Standard Cluster Descriptor": bits 1-8 and 56-61 reserved.
  if ((lo & 0x1fe) !== 0 || (hi & 0x3f000000) !== 0) throw new CorruptImageError(`L2 entry ${hi.toString(16)}:${lo.toString(16)} has reserved bits set`, path);
  if (offset % 2 ** clusterBits !== 0) throw new CorruptImageError(`L2 entry points at unaligned offset ${offset}`, path);
  if (zero) {
    if (version < 3) throw new CorruptImageError('zero cluster flag in a version 2 image', path);
    return { kind: 'zero', hostOffset: offset, copied };
  }
  if (offset === 0) {
    if (copied) throw new CorruptImageError('L2 entry with offset 0 marked allocated', path);
    return { kind: 'unallocated' };
  }
  return { kind: 'normal', hostOffset: offset, copied };
}

/** The compressed data's byte range: from the offset to the end of its last sector. */
export function compressedRange(m: { hostOffset: number; sectors: number }): { start: number; length: number } {
  return { start: m.hostOffset, length: m.sectors * SECTOR - (m.hostOffset % SECTOR) };
}

/** The host clusters a compressed cluster holds a reference to (QEMU counts each touched cluster once). */
export function compressedClusters(m: { hostOffset: number; sectors: number }, clusterSize: number): { first: number; count: number } {
  const start = m.hostOffset - (m.hostOffset % SECTOR);
  const end = start + m.sectors * SECTOR;
  const first = Math.floor(start / clusterSize);
  return { first, count: Math.floor((end - 1) / clusterSize) - first + 1 };
}

export function encodeL2Normal(hostOffset: number): { hi: number; lo: number } {
  return { hi: (HI_COPIED | Math.floor(hostOffset / 2 ** 32)) >>> 0, lo: hostOffset >>> 0 };
}

export function encodeL2Zero(hostOffset: number, copied: boolean): { hi: number; lo: number } {
  return { hi: ((copied ? HI_COPIED : 0) | Math.floor(hostOffset / 2 ** 32)) >>> 0, lo: (hostOffset | LO_ZERO) >>> 0 };
}
