// Host cluster reference counts ("Host cluster management" in qcow2.txt): the refcount table
// (contiguous, located by the header), refcount blocks (one cluster each, loaded lazily and
// kept), cluster allocation and freeing, and growing the table when the image outgrows it.
//
// Ordering rules (see image.ts for the whole picture): increments are made in memory and written
// at the start of a flush, before the fdatasync that precedes any L2/L1 write, so a pointer never
// reaches the disk before the refcount that accounts for it. A new refcount block is written and
// synced before the table entry that points at it. Decrements happen only after the pointers
// were removed on disk.
import { CorruptImageError, BlockError } from '../errors.js';
import type { ImageFile } from '../image-file.js';
import { H, MAX_OFFSET, MAX_REFTABLE_BYTES } from './format.js';

export interface RefcountLayout {
  clusterBits: number;
  refcountOrder: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
}

/** Reads a refcount block entry ("Refcount block entry"; sub-byte widths: bit 0 is the LSB). */
export function getRefcountEntry(block: Uint8Array, order: number, index: number): number {
  switch (order) {
    case 0: case 1: case 2: {
      const bits = 1 << order;
      const bitPos = index * bits;
      return (block[bitPos >> 3] >> (bitPos & 7)) & ((1 << bits) - 1);
    }
    case 3: return block[index];
    case 4: return (block[index * 2] << 8) | block[index * 2 + 1];
    case 5: return new DataView(block.buffer, block.byteOffset + index * 4, 4).getUint32(0);
    default: {
      const dv = new DataView(block.buffer, block.byteOffset + index * 8, 8);
      return dv.getUint32(0) * 2 ** 32 + dv.getUint32(4);
    }
  }
}

export function setRefcountEntry(block: Uint8Array, order: number, index: number, value: number): void {
  switch (order) {
    case 0: case 1: case 2: {
      const bits = 1 << order;
      const bitPos = index * bits;
      const mask = ((1 << bits) - 1) << (bitPos & 7);
      block[bitPos >> 3] = (block[bitPos >> 3] & ~mask) | ((value << (bitPos & 7)) & mask);
      return;
    }
    case 3: block[index] = value; return;
    case 4: block[index * 2] = value >> 8; block[index * 2 + 1] = value & 0xff; return;
    case 5: new DataView(block.buffer, block.byteOffset + index * 4, 4).setUint32(0, value); return;
    default: {
      const dv = new DataView(block.buffer, block.byteOffset + index * 8, 8);
      dv.setUint32(0, Math.floor(value / 2 ** 32));
      dv.setUint32(4, value >>> 0);
    }
  }
}

/** Reads a table of big-endian 64-bit entries whose offsets use bits 9-55 (refcount table, L1). */
export function decodeOffsetTable(bytes: Uint8Array): number[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const out = new Array<number>(bytes.length >> 3);
  for (let i = 0; i < out.length; i++) out[i] = dv.getUint32(i * 8) * 2 ** 32 + dv.getUint32(i * 8 + 4);
  return out;
}

export function encodeU64(dst: Uint8Array, at: number, value: number): void {
  const dv = new DataView(dst.buffer, dst.byteOffset, dst.length);
  dv.setUint32(at, Math.floor(value / 2 ** 32));
  dv.setUint32(at + 4, value >>> 0);
}

export class Refcounts {
  readonly clusterSize: number;
  readonly order: number;
  readonly maxRefcount: number;
  /** Refcount entries per refcount block. */
  readonly perBlock: number;
  tableOffset: number;
  tableClusters: number;
  /** The refcount table's entries (refcount block offsets; 0 = not allocated). */
  table: number[];
  private readonly blocks = new Map<number, Uint8Array>();
  private readonly loading = new Map<number, Promise<Uint8Array>>();
  private readonly dirty = new Set<number>();
  /** No cluster below this index is free (a search hint). */
  private freeHint = 0;
  /** Told of each new refcount block / table placement (image.ts keeps a set of metadata clusters). */
  onNewMetadata?: (offset: number, length: number) => void;
  /**
   * Throws if clusters the refcounts call free are in fact known metadata (a corrupt image):
   * every allocation passes through it before anything is written there.
   */
  guard?: (offset: number, length: number) => void;

  private constructor(private readonly file: ImageFile, layout: RefcountLayout, table: number[]) {
    this.clusterSize = 2 ** layout.clusterBits;
    this.order = layout.refcountOrder;
    this.maxRefcount = layout.refcountOrder === 6 ? MAX_OFFSET : 2 ** (1 << layout.refcountOrder) - 1;
    this.perBlock = (this.clusterSize * 8) >> layout.refcountOrder;
    this.tableOffset = layout.refcountTableOffset;
    this.tableClusters = layout.refcountTableClusters;
    this.table = table;
  }

  static async load(file: ImageFile, layout: RefcountLayout): Promise<Refcounts> {
    const cs = 2 ** layout.clusterBits;
    const bytes = await file.readNew(layout.refcountTableOffset, layout.refcountTableClusters * cs);
    const table = decodeOffsetTable(bytes);
    const seen = new Set<number>();
    for (let i = 0; i < table.length; i++) {
      const off = table[i];
      if (off === 0) continue;
      // "Refcount table entry": bits 0-8 reserved; the block must be cluster aligned.
      if (off % cs !== 0) throw new CorruptImageError(`refcount table entry ${i} (${off}) is not cluster aligned`, file.path);
      if (off + cs > file.size) throw new CorruptImageError(`refcount block ${i} at ${off} lies past the end of the file`, file.path);
      if (off < cs) throw new CorruptImageError(`refcount block ${i} overlaps the header`, file.path);
      if (seen.has(off)) throw new CorruptImageError(`refcount blocks ${table.indexOf(off)} and ${i} are the same cluster`, file.path);
      seen.add(off);
    }
    return new Refcounts(file, layout, table);
  }

  private async block(index: number): Promise<Uint8Array | undefined> {
    const cached = this.blocks.get(index);
    if (cached) return cached;
    const off = index < this.table.length ? this.table[index] : 0;
    if (off === 0) return undefined;
    let p = this.loading.get(index);
    if (!p) {
      if (off + this.clusterSize > this.file.size || off === 0) {
        throw new CorruptImageError(`refcount block ${index} at ${off} lies past the end of the file`, this.file.path);
      }
      p = this.file.readNew(off, this.clusterSize).then((b) => {
        if (!this.blocks.has(index)) this.blocks.set(index, b);
        this.loading.delete(index);
        return this.blocks.get(index)!;
      });
      this.loading.set(index, p);
      p.catch(() => this.loading.delete(index));
    }
    return p;
  }

  /** The refcount of host cluster `cluster` (an index, not an offset). */
  async get(cluster: number): Promise<number> {
    const b = await this.block(Math.floor(cluster / this.perBlock));
    return b ? getRefcountEntry(b, this.order, cluster % this.perBlock) : 0;
  }

  /** Changes the refcount of `count` clusters from `cluster` by `delta` (in memory; written by writeDirty). */
  async update(cluster: number, count: number, delta: number): Promise<void> {
    for (let c = cluster; c < cluster + count; c++) {
      const bi = Math.floor(c / this.perBlock);
      let b = await this.block(bi);
      if (!b) {
        if (delta < 0) throw new CorruptImageError(`freeing cluster ${c} whose refcount is already 0`, this.file.path);
        b = await this.newBlock(bi);
      }
      const idx = c % this.perBlock;
      const v = getRefcountEntry(b, this.order, idx) + delta;
      if (v < 0) throw new CorruptImageError(`refcount of cluster ${c} would drop below 0`, this.file.path);
      if (v > this.maxRefcount) throw new BlockError(`refcount of cluster ${c} would overflow ${this.maxRefcount}`, this.file.path);
      setRefcountEntry(b, this.order, idx, v);
      this.dirty.add(bi);
      if (v === 0 && c < this.freeHint) this.freeHint = c;
    }
  }

  /**
   * Finds `count` contiguous free clusters, marks them used and returns the offset of the first.
   * Free clusters inside the file are reused before the file grows.
   */
  async allocate(count: number): Promise<number> {
    for (;;) {
      const start = await this.findFree(count, this.freeHint, () => true);
      // Ranges without a refcount block get one first; that takes a cluster, so search again.
      let created = false;
      for (let bi = Math.floor(start / this.perBlock); bi <= Math.floor((start + count - 1) / this.perBlock); bi++) {
        if (!(await this.block(bi))) {
          await this.newBlock(bi);
          created = true;
        }
      }
      if (created) continue;
      this.guard?.(start * this.clusterSize, count * this.clusterSize);
      await this.update(start, count, +1);
      return start * this.clusterSize;
    }
  }

  /**
   * The first run of `count` free clusters at or after `from` (a cluster index), considering only
   * clusters for which `usable(blockIndex)` holds. Clusters without a refcount block are free.
   */
  private async findFree(count: number, from: number, usable: (bi: number, hasBlock: boolean) => boolean): Promise<number> {
    let run = 0;
    let start = from;
    for (let c = from; ; c++) {
      if ((c + 1) * this.clusterSize > MAX_OFFSET) throw new BlockError('image file would grow past 8 PiB', this.file.path);
      const bi = Math.floor(c / this.perBlock);
      const b = this.blocks.get(bi) ?? (await this.block(bi));
      const free = usable(bi, b !== undefined) && (!b || getRefcountEntry(b, this.order, c % this.perBlock) === 0);
      if (!free) {
        if (c === this.freeHint && b) this.freeHint = c + 1;
        run = 0;
        start = c + 1;
        continue;
      }
      if (++run === count) return start;
    }
  }

  /** Allocates refcount block `index` (covering clusters index*perBlock...) and writes it. */
  private async newBlock(index: number): Promise<Uint8Array> {
    if (index >= this.table.length) {
      await this.growTable(index + 1);
      // Growing may have created this very block (for the new table's own clusters).
      const made = await this.block(index);
      if (made) return made;
    }
    const b = new Uint8Array(this.clusterSize);
    this.blocks.set(index, b);
    // Its own cluster is either described by itself or by a block that exists already, so that
    // accounting for it needs no further block.
    const cluster = await this.findFree(1, Math.min(this.freeHint, index * this.perBlock), (bi, has) => bi === index || has);
    const at = cluster * this.clusterSize;
    this.guard?.(at, this.clusterSize);
    this.table[index] = at;
    this.onNewMetadata?.(at, this.clusterSize);
    await this.update(cluster, 1, +1);
    // The block (and any other changed block) must be on disk before the table points at it.
    await this.writeDirty();
    await this.file.datasync();
    const entry = new Uint8Array(8);
    encodeU64(entry, 0, at);
    await this.file.write(this.tableOffset + index * 8, entry);
    return b;
  }

  /**
   * Replaces the refcount table by a larger one at the end of the image (it must stay contiguous),
   * with refcount blocks for its own clusters, then points the header at it and frees the old one.
   */
  private async growTable(minEntries: number): Promise<void> {
    const cs = this.clusterSize;
    const entriesPerCluster = cs / 8;
    let clusters = Math.max(Math.ceil((minEntries * 8) / cs), this.tableClusters * 2);
    if (clusters * cs > MAX_REFTABLE_BYTES) {
      clusters = MAX_REFTABLE_BYTES / cs;
      if (clusters * entriesPerCluster < minEntries) throw new BlockError('image outgrew the largest refcount table', this.file.path);
    }
    // Place the new table after everything in use; blocks for it (if needed) follow it.
    const fileEndCluster = Math.ceil(this.file.size / cs);
    let start = fileEndCluster;
    for (let bi = this.table.length - 1; bi >= 0; bi--) {
      if (this.table[bi] === 0) continue;
      const b = await this.block(bi);
      if (!b) continue;
      for (let i = this.perBlock - 1; i >= 0; i--) {
        if (getRefcountEntry(b, this.order, i) !== 0) {
          start = Math.max(start, bi * this.perBlock + i + 1);
          break;
        }
      }
      break;
    }
    const table = [...this.table, ...new Array<number>(clusters * entriesPerCluster - this.table.length).fill(0)];
    // New blocks needed for the table's clusters and for the blocks themselves.
    let blocksNeeded: number[] = [];
    for (let iter = 0; iter < 64; iter++) {
      const end = start + clusters + blocksNeeded.length;
      const need: number[] = [];
      for (let bi = Math.floor(start / this.perBlock); bi <= Math.floor((end - 1) / this.perBlock); bi++) {
        if (table[bi] === 0) need.push(bi);
      }
      if (need.length === blocksNeeded.length) break;
      blocksNeeded = need;
    }
    if (Math.floor((start + clusters + blocksNeeded.length) / this.perBlock) >= table.length) {
      throw new BlockError('refcount table growth did not converge', this.file.path);
    }
    const newOffset = start * cs;
    this.guard?.(newOffset, (clusters + blocksNeeded.length) * cs);
    blocksNeeded.forEach((bi, k) => {
      table[bi] = (start + clusters + k) * cs;
      this.blocks.set(bi, new Uint8Array(cs));
    });
    // (The table itself is checked by its range; only the blocks join the metadata set.)
    if (blocksNeeded.length > 0) this.onNewMetadata?.((start + clusters) * cs, blocksNeeded.length * cs);
    const oldOffset = this.tableOffset;
    const oldClusters = this.tableClusters;
    this.table = table;
    await this.update(start, clusters + blocksNeeded.length, +1);
    await this.writeDirty();
    const bytes = new Uint8Array(clusters * cs);
    table.forEach((v, i) => encodeU64(bytes, i * 8, v));
    await this.file.write(newOffset, bytes);
    await this.file.datasync();
    // "Header" bytes 48-59: refcount_table_offset and refcount_table_clusters, one write.
    const hdr = new Uint8Array(12);
    encodeU64(hdr, 0, newOffset);
    new DataView(hdr.buffer).setUint32(8, clusters);
    await this.file.write(H.refcountTableOffset, hdr);
    await this.file.datasync();
    this.tableOffset = newOffset;
    this.tableClusters = clusters;
    await this.update(oldOffset / cs, oldClusters, -1);
  }

  /** Writes every refcount block changed in memory (call before a barrier; see image.ts). */
  async writeDirty(): Promise<void> {
    const list = [...this.dirty];
    this.dirty.clear();
    for (const bi of list) {
      const b = this.blocks.get(bi)!;
      await this.file.write(this.table[bi], b);
    }
  }

  get hasDirty(): boolean {
    return this.dirty.size > 0;
  }
}
