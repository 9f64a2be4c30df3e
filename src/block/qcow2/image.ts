// A qcow2 image as a BlockBackend: reads through L1/L2 (with the backing chain, zero and
// compressed clusters), writes with cluster allocation and copy-on-write, discard and
// write-zeroes, flush.
//
// Concurrency: data reads and writes into clusters the image already owns (refcount 1) run
// freely in parallel. Everything that changes metadata (allocating a cluster, changing an L2
// entry, freeing, flushing) runs under one mutex, and re-checks the mapping once it holds it.
//
// Crash consistency. The on-disk image only ever changes in this order:
//   1. guest data goes to clusters that are free on disk or already owned by that guest cluster
//      (new L2 entries, L1 entries and refcount increments stay in memory, where reads see them);
//   2. at a flush: dirty refcount blocks are written, then fdatasync (data + refcounts durable);
//   3. dirty L2 tables are written; if L1 entries changed, fdatasync, then they are written;
//      fdatasync (this is where the flush completes for the guest);
//   4. clusters whose pointers were removed in 3 (overwritten compressed clusters, discards)
//      get their refcounts decremented once the I/O that may still use them has finished;
//      written and synced.
// So a pointer on disk never precedes the data it points at nor the refcount that accounts for
// it, and a cluster is never reused while a pointer to it may remain: a crash at any point leaves
// at worst leaked clusters (what `qemu-img check` calls leaks, not corruption). New refcount
// blocks and a grown refcount table are written and synced before anything points at them
// (refcount.ts). The L2 cache writes back dirty tables by the same steps 2-3 when it fills up.
import type { BlockBackend } from '../backend.js';
import { BlockError, CorruptImageError, ReadOnlyError, UnsupportedImageError } from '../errors.js';
import { joinBuffers, scatter, sliceBuffers, totalLength } from '../../memory/buffers.js';
import { ImageFile } from '../image-file.js';
import { InFlight, Mutex } from '../mutex.js';
import { compressedClusters, compressedRange, decodeL1Entry, decodeL2Entry, encodeL2Normal, encodeL2Zero, type ClusterMapping } from './mapping.js';
import { compressCluster, decompressCluster } from './compressed.js';
import { H, HI_COPIED, SECTOR } from './format.js';
import { headerClusterSize, l2Entries, parseHeader, type Qcow2Header } from './header.js';
import { L2Cache, type L2Table } from './l2-cache.js';
import { Refcounts } from './refcount.js';

export interface BackingRequest {
  /** The backing file name as stored in the overlay. */
  name: string;
  /** From the backing format extension, if present. */
  format?: string;
  /** The overlay's own path (relative names resolve against its directory). */
  overlayPath: string;
}

export interface Qcow2Options {
  readonly?: boolean;
  serial?: string;
  /** Opens the backing file (read-only); called only when the image names one. */
  openBacking?: (req: BackingRequest) => Promise<BlockBackend>;
  /** L2 tables kept in memory (default: 4 MiB worth; each covers clusterSize²/8 bytes of the disk). */
  l2CacheTables?: number;
  /** Repairs a dirty image (rebuilds its refcounts) so that it can be opened for writing. */
  repairDirty?: (path: string) => Promise<void>;
}

interface PendingFree {
  cluster: number;
  count: number;
}

/** The most clusters one allocating write takes at once. */
const MAX_RUN = 256;

/** Whether writing to a cluster mapped like this needs a new host cluster. */
function needsNewCluster(m: ClusterMapping): boolean {
  if (m.kind === 'normal') return !m.copied;
  if (m.kind === 'zero') return m.hostOffset === 0 || !m.copied;
  return true;
}

export class Qcow2Image implements BlockBackend {
  readonly format = 'qcow2' as const;
  readonly serial?: string;
  readonly clusterSize: number;
  private readonly l2Entries: number;
  private readonly l1Hi: Uint32Array;
  private readonly l1Lo: Uint32Array;
  private readonly l1Dirty = new Set<number>();
  private readonly l2: L2Cache;
  private readonly meta = new Mutex();
  private readonly inflight = new InFlight();
  private pendingFree: PendingFree[] = [];
  /** Offsets of every L2 table and refcount block we know of: data writes must never land there. */
  private readonly metadataClusters = new Set<number>();
  private lastDecompressed?: { offset: number; data: Uint8Array };
  private closed = false;

  private constructor(
    readonly file: ImageFile,
    readonly header: Qcow2Header,
    private readonly refs: Refcounts | undefined,
    l1: Uint8Array,
    readonly backing: BlockBackend | undefined,
    opts: Qcow2Options,
  ) {
    this.serial = opts.serial;
    this.clusterSize = header.clusterSize;
    this.l2Entries = l2Entries(header.clusterBits);
    const n = header.l1Size;
    this.l1Hi = new Uint32Array(n);
    this.l1Lo = new Uint32Array(n);
    const dv = new DataView(l1.buffer, l1.byteOffset, l1.length);
    for (let i = 0; i < n; i++) {
      this.l1Hi[i] = dv.getUint32(i * 8);
      this.l1Lo[i] = dv.getUint32(i * 8 + 4);
    }
    // Default: 4 MiB of L2 tables (64 tables of 64 KiB, each mapping 512 MiB of disk).
    this.l2 = new L2Cache(opts.l2CacheTables ?? Math.max(4, Math.floor((4 << 20) / header.clusterSize)));
    if (refs) {
      for (const off of refs.table) if (off !== 0) this.metadataClusters.add(off);
      refs.onNewMetadata = (off, len) => {
        for (let o = off; o < off + len; o += this.clusterSize) this.metadataClusters.add(o);
      };
      refs.guard = (off, len) => {
        for (let o = off; o < off + len; o += this.clusterSize) this.checkAllocation(o);
      };
    }
  }

  static async open(path: string, opts: Qcow2Options = {}): Promise<Qcow2Image> {
    const readonly = opts.readonly ?? false;
    const file = await ImageFile.open(path, readonly);
    let backing: BlockBackend | undefined;
    try {
      const first = await file.readNew(0, Math.min(file.size, 4096));
      const headerBytes = await file.readNew(0, Math.min(file.size, headerClusterSize(first)));
      const h = parseHeader(headerBytes, file.size, path);
      if (!readonly) {
        if (h.corrupt) throw new BlockError('the image is marked corrupt; open it read-only, or repair it (tsvm img check -r all)', path);
        if (h.dirty) {
          if (opts.repairDirty) {
            await file.close();
            await opts.repairDirty(path);
            return Qcow2Image.open(path, { ...opts, repairDirty: undefined });
          }
          throw new BlockError('the image is marked dirty (lazy refcounts); repair it first (tsvm img check -r all) or open it read-only', path);
        }
        if (h.nbSnapshots > 0) throw new UnsupportedImageError('writing to an image with internal snapshots (open it read-only)', path);
      }
      const l1 = await file.readNew(h.l1TableOffset, h.l1Size * 8);
      // Refcounts are needed only for writing; a read-only open does not trust or load them.
      const refs = readonly ? undefined : await Refcounts.load(file, h);
      if (h.backingFile !== undefined) {
        if (!opts.openBacking) throw new BlockError(`the image has a backing file (${h.backingFile}) and no way to open it was given`, path);
        backing = await opts.openBacking({ name: h.backingFile, format: h.backingFormat, overlayPath: path });
      }
      const img = new Qcow2Image(file, h, refs, l1, backing, opts);
      img.validateL1();
      if (!readonly && h.autoclearFeatures !== 0n) {
        // "autoclear_features": a writer that does not maintain them must clear them first.
        await file.write(H.autoclearFeatures, new Uint8Array(8));
        await file.datasync();
        h.autoclearFeatures = 0n;
      }
      return img;
    } catch (e) {
      await backing?.close().catch(() => undefined);
      await file.close().catch(() => undefined);
      throw e;
    }
  }

  get sizeBytes(): number {
    return this.header.size;
  }

  get readonly(): boolean {
    return this.file.readonly;
  }

  get path(): string {
    return this.file.path;
  }

  private validateL1(): void {
    for (let i = 0; i < this.l1Hi.length; i++) {
      const { offset } = decodeL1Entry(this.l1Hi[i], this.l1Lo[i], this.clusterSize, i, this.path);
      if (offset === 0) continue;
      this.checkMetadataOffset(offset, `L2 table of L1 entry ${i}`);
      this.metadataClusters.add(offset);
    }
  }

  /** A table or block must lie inside the file, past the header and clear of the fixed tables. */
  private checkMetadataOffset(offset: number, what: string): void {
    const h = this.header;
    const cs = this.clusterSize;
    if (offset < cs) throw new CorruptImageError(`${what} overlaps the header`, this.path);
    if (offset + cs > this.file.size + (this.file.size % cs === 0 ? 0 : cs - (this.file.size % cs))) {
      throw new CorruptImageError(`${what} at ${offset} lies past the end of the file`, this.path);
    }
    const l1End = h.l1TableOffset + Math.ceil((h.l1Size * 8) / cs) * cs;
    if (h.l1Size > 0 && offset >= h.l1TableOffset && offset < l1End) throw new CorruptImageError(`${what} overlaps the L1 table`, this.path);
    const rtOff = this.refs?.tableOffset ?? h.refcountTableOffset;
    const rtLen = (this.refs?.tableClusters ?? h.refcountTableClusters) * cs;
    if (offset >= rtOff && offset < rtOff + rtLen) throw new CorruptImageError(`${what} overlaps the refcount table`, this.path);
  }

  /** A cluster the refcounts call free must not be one we know holds metadata. */
  private checkAllocation(offset: number): void {
    const h = this.header;
    const cs = this.clusterSize;
    const inside = (start: number, len: number) => offset >= start && offset < start + len;
    const what =
      offset < cs ? 'the header' :
      h.l1Size > 0 && inside(h.l1TableOffset, Math.ceil((h.l1Size * 8) / cs) * cs) ? 'the L1 table' :
      inside(this.refs!.tableOffset, this.refs!.tableClusters * cs) ? 'the refcount table' :
      this.metadataClusters.has(offset) ? 'an L2 table or refcount block' : undefined;
    if (what) throw new CorruptImageError(`refcounts say cluster ${offset / cs} is free, but it holds ${what}`, this.path);
  }

  /** A data cluster we are about to write into must not be metadata nor lie past the file's end. */
  private checkDataWrite(hostOffset: number): void {
    this.checkMetadataOffset(hostOffset, 'data cluster');
    if (this.metadataClusters.has(hostOffset)) throw new CorruptImageError(`data cluster at ${hostOffset} overlaps an L2 table or refcount block`, this.path);
  }

  private checkRange(offset: number, length: number, what: string): void {
    if (this.closed) throw new BlockError('the disk is closed', this.path);
    if (!Number.isSafeInteger(offset) || offset < 0 || length < 0 || offset + length > this.header.size) {
      throw new BlockError(`${what} of ${length} bytes at ${offset} is outside the disk (${this.header.size} bytes)`, this.path);
    }
  }

  // ---- mapping ------------------------------------------------------------------------------

  private async l2Table(l1Index: number): Promise<L2Table | undefined> {
    const { offset } = decodeL1Entry(this.l1Hi[l1Index], this.l1Lo[l1Index], this.clusterSize, l1Index, this.path);
    if (offset === 0) return undefined;
    return this.l2.get(offset, async () => {
      this.checkMetadataOffset(offset, `L2 table of L1 entry ${l1Index}`);
      return this.file.readNew(offset, this.clusterSize);
    });
  }

  /** What guest cluster `g` maps to now. */
  async lookup(g: number): Promise<ClusterMapping> {
    const l1Index = Math.floor(g / this.l2Entries);
    if (l1Index >= this.l1Hi.length) return { kind: 'unallocated' };
    const t = await this.l2Table(l1Index);
    if (!t) return { kind: 'unallocated' };
    const i = (g % this.l2Entries) * 8;
    return decodeL2Entry(t.view.getUint32(i), t.view.getUint32(i + 4), this.header.clusterBits, this.header.version, this.path);
  }

  // ---- reads --------------------------------------------------------------------------------

  async read(offset: number, dst: Uint8Array): Promise<void> {
    return this.readv(offset, [dst]);
  }

  /** `read` into back-to-back buffers (a request's segments): one host read per contiguous run. */
  async readv(offset: number, dsts: readonly Uint8Array[]): Promise<void> {
    const length = totalLength(dsts);
    this.checkRange(offset, length, 'read');
    return this.inflight.track(this.readUnchecked(offset, dsts, length));
  }

  private async readUnchecked(offset: number, dsts: readonly Uint8Array[], length: number): Promise<void> {
    const cs = this.clusterSize;
    let pos = 0;
    while (pos < length) {
      const guest = offset + pos;
      const g = Math.floor(guest / cs);
      const inCluster = guest % cs;
      let n = Math.min(cs - inCluster, length - pos);
      const m = await this.lookup(g);
      switch (m.kind) {
        case 'unallocated':
          await this.readBacking(guest, sliceBuffers(dsts, pos, n));
          break;
        case 'zero':
          for (const b of sliceBuffers(dsts, pos, n)) b.fill(0);
          break;
        case 'normal': {
          if (m.hostOffset >= this.file.size) throw new CorruptImageError(`data cluster at ${m.hostOffset} lies past the end of the file`, this.path);
          // Merge following clusters that are contiguous on the host into one read.
          while (pos + n < length) {
            const nextG = (guest + n) / cs;
            const next = await this.lookup(nextG);
            if (next.kind !== 'normal' || next.hostOffset !== m.hostOffset + (nextG - g) * cs || next.hostOffset >= this.file.size) break;
            n += Math.min(cs, length - pos - n);
          }
          await this.file.readv(m.hostOffset + inCluster, sliceBuffers(dsts, pos, n));
          break;
        }
        case 'compressed': {
          const data = await this.readCompressed(m);
          scatter(sliceBuffers(dsts, pos, n), data.subarray(inCluster, inCluster + n));
          break;
        }
      }
      pos += n;
    }
  }

  /** Reads guest range [guest, guest + length of `outs`) from the backing file; zeros past its end. */
  private async readBacking(guest: number, outs: Uint8Array[]): Promise<void> {
    const b = this.backing;
    const length = totalLength(outs);
    const inBacking = b ? Math.max(0, Math.min(length, b.sizeBytes - guest)) : 0;
    if (inBacking > 0) {
      const parts = sliceBuffers(outs, 0, inBacking);
      if (parts.length === 1) await b!.read(guest, parts[0]);
      else if (b!.readv) await b!.readv(guest, parts);
      else {
        let at = guest;
        for (const p of parts) {
          await b!.read(at, p);
          at += p.length;
        }
      }
    }
    for (const z of sliceBuffers(outs, inBacking, length - inBacking)) z.fill(0);
  }

  private async readCompressed(m: { hostOffset: number; sectors: number }): Promise<Uint8Array> {
    if (this.lastDecompressed?.offset === m.hostOffset) return this.lastDecompressed.data;
    const { start, length } = compressedRange(m);
    if (start >= this.file.size) throw new CorruptImageError(`compressed cluster at ${start} lies past the end of the file`, this.path);
    const input = await this.file.readNew(start, Math.min(length, this.file.size - start));
    const data = decompressCluster(input, this.clusterSize, this.path, this.header.compressionType);
    this.lastDecompressed = { offset: m.hostOffset, data };
    return data;
  }

  /** The current contents of guest cluster `g` (for copy-on-write). */
  private async clusterContents(g: number, m: ClusterMapping): Promise<Uint8Array> {
    const cs = this.clusterSize;
    const buf = new Uint8Array(cs);
    const guest = g * cs;
    const len = Math.min(cs, this.header.size - guest);
    switch (m.kind) {
      case 'unallocated':
        await this.readBacking(guest, [buf.subarray(0, len)]);
        break;
      case 'zero':
        break;
      case 'normal':
        await this.file.read(m.hostOffset, buf);
        break;
      case 'compressed':
        buf.set(await this.readCompressed(m));
        break;
    }
    return buf;
  }

  // ---- writes -------------------------------------------------------------------------------

  async write(offset: number, src: Uint8Array): Promise<void> {
    return this.writev(offset, [src]);
  }

  /** `write` from back-to-back buffers (a request's segments): one host write per contiguous run. */
  async writev(offset: number, srcs: readonly Uint8Array[]): Promise<void> {
    if (this.readonly) throw new ReadOnlyError(this.path);
    const length = totalLength(srcs);
    this.checkRange(offset, length, 'write');
    return this.inflight.track(this.writeUnchecked(offset, srcs, length));
  }

  private async writeUnchecked(offset: number, srcs: readonly Uint8Array[], length: number): Promise<void> {
    const cs = this.clusterSize;
    let pos = 0;
    while (pos < length) {
      const guest = offset + pos;
      const g = Math.floor(guest / cs);
      const inCluster = guest % cs;
      let n = Math.min(cs - inCluster, length - pos);
      const m = await this.lookup(g);
      if (m.kind === 'normal' && m.copied) {
        this.checkDataWrite(m.hostOffset);
        // Following clusters that are ours too and contiguous on the host: one write.
        for (let k = 1; pos + n < length; k++) {
          const next = await this.lookup(g + k);
          if (next.kind !== 'normal' || !next.copied || next.hostOffset !== m.hostOffset + k * cs) break;
          this.checkDataWrite(next.hostOffset);
          n += Math.min(cs, length - pos - n);
        }
        await this.file.writev(m.hostOffset + inCluster, sliceBuffers(srcs, pos, n));
        pos += n;
        continue;
      }
      // A run of clusters that all need new host clusters is allocated contiguously and
      // written with one request.
      let count = 1;
      let bytes = n;
      while (pos + bytes < length && count < MAX_RUN && needsNewCluster(await this.lookup(g + count))) {
        bytes += Math.min(cs, length - pos - bytes);
        count++;
      }
      const part = joinBuffers(sliceBuffers(srcs, pos, bytes));
      await this.meta.run(() => this.allocatingWrite(g, count, inCluster, part));
      pos += bytes;
    }
  }

  /**
   * Under the metadata mutex: writes `part` at `inCluster` of guest cluster `g` onwards (it
   * spans `count` clusters), allocating and copying on write as needed.
   */
  private async allocatingWrite(g: number, count: number, inCluster: number, part: Uint8Array): Promise<void> {
    const cs = this.clusterSize;
    const maps: ClusterMapping[] = [];
    for (let i = 0; i < count; i++) maps.push(await this.lookup(g + i));
    if (count > 1 && !maps.every(needsNewCluster)) {
      // Something changed while we waited for the mutex: one cluster at a time then.
      let p = 0;
      for (let i = 0; i < count; i++) {
        const n = Math.min(cs - (i === 0 ? inCluster : 0), part.length - p);
        await this.allocatingWrite(g + i, 1, i === 0 ? inCluster : 0, part.subarray(p, p + n));
        p += n;
      }
      return;
    }
    const m = maps[0];
    if (count === 1 && m.kind === 'normal' && m.copied) {
      this.checkDataWrite(m.hostOffset);
      await this.file.write(m.hostOffset + inCluster, part);
      return;
    }
    // The new contents of the whole clusters: copy-on-write for the partly written ends.
    let data: Uint8Array;
    if (inCluster === 0 && part.length === count * cs) data = part;
    else {
      data = new Uint8Array(count * cs);
      if (inCluster !== 0 || part.length < cs) data.set(await this.clusterContents(g, m), 0);
      const endInLast = (inCluster + part.length) % cs;
      if (count > 1 && endInLast !== 0) data.set(await this.clusterContents(g + count - 1, maps[count - 1]), (count - 1) * cs);
      data.set(part, inCluster);
    }
    let host: number;
    if (count === 1 && m.kind === 'zero' && m.hostOffset !== 0 && m.copied) {
      // A preallocated zero cluster that is ours alone: fill it in place.
      host = m.hostOffset;
      this.checkDataWrite(host);
    } else {
      host = await this.refs!.allocate(count);
      for (const old of maps) this.queueFreeOf(old);
    }
    await this.file.write(host, data);
    for (let i = 0; i < count; i++) {
      const t = await this.l2TableForWrite(g + i);
      this.setL2(t, g + i, encodeL2Normal(host + i * cs));
    }
    await this.maybeFlushCache();
  }

  /** The L2 table for guest cluster `g`, allocating an empty one if the L1 entry has none. */
  private async l2TableForWrite(g: number): Promise<L2Table> {
    const l1Index = Math.floor(g / this.l2Entries);
    const existing = await this.l2Table(l1Index);
    if (existing) {
      if ((this.l1Hi[l1Index] & HI_COPIED) === 0) {
        // Not marked "refcount exactly one": fine only if it really is (we write no snapshots).
        const rc = await this.refs!.get(existing.offset / this.clusterSize);
        if (rc !== 1) throw new UnsupportedImageError(`L2 table at ${existing.offset} is shared (refcount ${rc})`, this.path);
        this.l1Hi[l1Index] |= HI_COPIED;
        this.l1Dirty.add(l1Index);
      }
      return existing;
    }
    const off = await this.refs!.allocate(1);
    this.metadataClusters.add(off);
    const t = this.l2.insertNew(off, new Uint8Array(this.clusterSize));
    this.l1Hi[l1Index] = (HI_COPIED | Math.floor(off / 2 ** 32)) >>> 0;
    this.l1Lo[l1Index] = off >>> 0;
    this.l1Dirty.add(l1Index);
    return t;
  }

  private setL2(t: L2Table, g: number, e: { hi: number; lo: number }): void {
    const i = (g % this.l2Entries) * 8;
    t.view.setUint32(i, e.hi);
    t.view.setUint32(i + 4, e.lo);
    this.l2.markDirty(t);
  }

  /** After the pointer to `m`'s host cluster(s) is gone on disk, drop their reference. */
  private queueFreeOf(m: ClusterMapping): void {
    const cs = this.clusterSize;
    if ((m.kind === 'normal' || m.kind === 'zero') && m.hostOffset !== 0) this.pendingFree.push({ cluster: m.hostOffset / cs, count: 1 });
    else if (m.kind === 'compressed') {
      const { first, count } = compressedClusters(m, cs);
      this.pendingFree.push({ cluster: first, count });
    }
  }

  private async maybeFlushCache(): Promise<void> {
    // Writes the tables back; the clusters to free wait for the next flush().
    if (this.l2.dirtyCount > this.l2.capacity) await this.flushLocked();
  }

  /** Where the next compressed cluster goes: the unused tail of the last host cluster they filled. */
  private compressedTail = { offset: 0, end: 0 };

  /**
   * Stores guest cluster `g` compressed ("Compressed Clusters Descriptor"), for `convert -c`.
   * The cluster must be unallocated (a fresh image). Compressed clusters are packed back to back;
   * each host cluster holds one reference per compressed cluster that touches it. Data that does
   * not compress by at least a sector is written as a normal cluster.
   */
  async writeCompressed(g: number, data: Uint8Array): Promise<void> {
    if (this.readonly) throw new ReadOnlyError(this.path);
    const cs = this.clusterSize;
    if (data.length !== cs) throw new BlockError(`writeCompressed takes a whole cluster (${cs} bytes)`, this.path);
    if (this.header.compressionType !== 0) throw new UnsupportedImageError('writing compressed clusters is implemented for zlib images only', this.path);
    this.checkRange(g * cs, Math.min(cs, this.header.size - g * cs), 'compressed write');
    const z = compressCluster(data);
    if (!z) return this.write(g * cs, data.subarray(0, Math.min(cs, this.header.size - g * cs)));
    await this.meta.run(async () => {
      const m = await this.lookup(g);
      if (m.kind !== 'unallocated') throw new BlockError(`guest cluster ${g} is already allocated; compressed writes go to fresh images`, this.path);
      const t = await this.l2TableForWrite(g);
      const refs = this.refs!;
      let at: number;
      const tail = this.compressedTail;
      if (tail.offset > 0 && tail.end - tail.offset >= z.length) {
        at = tail.offset;
        await refs.update(Math.floor(at / cs), 1, +1);
      } else {
        const n = Math.ceil(z.length / cs);
        at = await refs.allocate(n);
        tail.end = at + n * cs;
      }
      tail.offset = at + z.length;
      await this.file.write(at, z);
      // x = 62 - (cluster_bits - 8): offset in bits 0..x-1, additional sectors in x..61.
      const x = BigInt(62 - (this.header.clusterBits - 8));
      const sectors = BigInt(Math.ceil(((at % SECTOR) + z.length) / SECTOR) - 1);
      const d = (1n << 62n) | (sectors << x) | BigInt(at);
      this.setL2(t, g, { hi: Number(d >> 32n), lo: Number(d & 0xffffffffn) });
      await this.maybeFlushCache();
    });
  }

  // ---- discard / write zeroes ---------------------------------------------------------------

  async discard(offset: number, length: number): Promise<void> {
    if (this.readonly) throw new ReadOnlyError(this.path);
    this.checkRange(offset, length, 'discard');
    // Only whole clusters can be let go; the partial ends are left as they are.
    const cs = this.clusterSize;
    const first = Math.ceil(offset / cs);
    const end = offset + length === this.header.size ? Math.ceil((offset + length) / cs) : Math.floor((offset + length) / cs);
    for (let g = first; g < end; g++) await this.meta.run(() => this.unmapCluster(g, 'discard'));
  }

  async writeZeroes(offset: number, length: number, unmap: boolean): Promise<void> {
    if (this.readonly) throw new ReadOnlyError(this.path);
    this.checkRange(offset, length, 'write-zeroes');
    const cs = this.clusterSize;
    const end = offset + length;
    let pos = offset;
    while (pos < end) {
      const g = Math.floor(pos / cs);
      const clusterEnd = Math.min((g + 1) * cs, this.header.size);
      const n = Math.min(clusterEnd, end) - pos;
      const whole = pos === g * cs && n === clusterEnd - g * cs;
      if (whole && (this.header.version >= 3 || !this.backing)) {
        await this.meta.run(() => this.unmapCluster(g, unmap ? 'zero-unmap' : 'zero'));
      } else {
        await this.write(pos, new Uint8Array(n));
      }
      pos += n;
    }
  }

  /** Under the mutex: makes guest cluster `g` read as zeros (or, for discard, as anything). */
  private async unmapCluster(g: number, how: 'discard' | 'zero' | 'zero-unmap'): Promise<void> {
    const m = await this.lookup(g);
    const v3 = this.header.version >= 3;
    // zero-alloc keeps the host cluster (descriptor bit 0 set); zero-plain is bit 0 alone; an
    // unallocated cluster reads as zeros without a backing file (and as the backing file for a
    // version 2 discard, which may read as anything).
    let target: 'zero-alloc' | 'zero-plain' | 'unallocated';
    if (how === 'zero' && v3 && m.kind === 'normal' && m.copied) target = 'zero-alloc';
    else if (v3 && this.backing) target = 'zero-plain';
    else target = 'unallocated';
    if (target === 'unallocated' && m.kind === 'unallocated') return;
    if (target === 'zero-plain' && m.kind === 'zero' && m.hostOffset === 0) return;
    if (how === 'zero' && m.kind === 'zero') return;
    const t = await this.l2TableForWrite(g);
    if (target === 'zero-alloc' && m.kind === 'normal') {
      this.setL2(t, g, encodeL2Zero(m.hostOffset, true));
    } else {
      this.setL2(t, g, target === 'zero-plain' ? encodeL2Zero(0, false) : { hi: 0, lo: 0 });
      this.queueFreeOf(m);
    }
    await this.maybeFlushCache();
  }

  // ---- flush / close ------------------------------------------------------------------------

  async flush(): Promise<void> {
    if (this.closed) throw new BlockError('the disk is closed', this.path);
    if (this.readonly) return;
    const frees = await this.meta.run(async () => {
      await this.flushLocked();
      const f = this.pendingFree;
      this.pendingFree = [];
      return f;
    });
    if (frees.length === 0) return;
    // Step 4. The pointers to these clusters are gone on disk; I/O that looked them up before
    // may still be running, so wait for what is in flight now (not holding the mutex, which
    // that I/O may be queued on), then release them.
    await this.inflight.drain();
    await this.meta.run(() => this.releaseClusters(frees));
  }

  /** Steps 2 and 3: refcount increments and data, barrier, L2 tables, barrier, L1, barrier. */
  private async flushLocked(): Promise<void> {
    const refs = this.refs!;
    const dirtyL2 = this.l2.dirtyTables();
    if (!refs.hasDirty && dirtyL2.length === 0 && this.l1Dirty.size === 0) {
      await this.file.datasync();
      return;
    }
    await refs.writeDirty();
    await this.file.datasync();
    for (const t of dirtyL2) {
      t.dirty = false;
      await this.file.write(t.offset, t.bytes);
    }
    if (this.l1Dirty.size > 0) {
      await this.file.datasync();
      const entries = [...this.l1Dirty].sort((a, b) => a - b);
      this.l1Dirty.clear();
      for (const i of entries) {
        const e = new Uint8Array(8);
        const dv = new DataView(e.buffer);
        dv.setUint32(0, this.l1Hi[i]);
        dv.setUint32(4, this.l1Lo[i]);
        await this.file.write(this.header.l1TableOffset + i * 8, e);
      }
    }
    await this.file.datasync();
  }

  private async releaseClusters(frees: PendingFree[]): Promise<void> {
    const refs = this.refs!;
    for (const f of frees) {
      await refs.update(f.cluster, f.count, -1);
      for (let c = f.cluster; c < f.cluster + f.count; c++) {
        if ((await refs.get(c)) === 0) {
          this.metadataClusters.delete(c * this.clusterSize);
          this.file.punch(c * this.clusterSize, this.clusterSize);
        }
      }
    }
    this.lastDecompressed = undefined;
    await refs.writeDirty();
    await this.file.datasync();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      if (!this.readonly) {
        await this.inflight.drain();
        await this.flush();
      }
    } finally {
      this.closed = true;
      await this.file.close();
      await this.backing?.close();
    }
  }
}

