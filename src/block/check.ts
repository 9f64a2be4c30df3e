// Consistency check of a qcow2 image, in the spirit of `qemu-img check`: walk every structure
// that references host clusters (header, L1 tables of the active image and the snapshots, L2
// tables, data and compressed clusters, refcount table and blocks, snapshot table, bitmaps),
// count the references each cluster gets, and compare with the stored refcounts
// ("Host cluster management" in qcow2.txt). Stored < counted is a corruption (a cluster could
// be handed out twice); stored > counted is a leak (space lost, data safe). Offsets that are
// unaligned or lie past the end of the file, and L1/L2 "refcount is one" flags (bit 63) that
// disagree with the refcount, are corruptions too.
//
// Repair (`check -r`): "leaks" lowers leaked refcounts in place; "all" rebuilds the whole
// refcount structure from the references found (a new table and blocks at the end of the file,
// synced before the header points at them, so a crash midway leaves the old, still usable,
// structure) and then sets the bit-63 flags of the active L1/L2 tables to agree. The dirty bit
// is cleared when the refcounts are right, and after "all" the corrupt bit too if nothing is left. References to clusters past the end of the file are not repaired.
import type { DiskFormat } from './backend.js';
import { ImageFile } from './image-file.js';
import { probeFormat } from './probe.js';
import { BlockError } from './errors.js';
import { EXT_BITMAPS, H, HI_COPIED, INCOMPAT_CORRUPT, INCOMPAT_DIRTY } from './qcow2/format.js';
import { headerClusterSize, parseHeader, type Qcow2Header } from './qcow2/header.js';
import { compressedClusters, decodeL2Entry, entryOffset, type ClusterMapping } from './qcow2/mapping.js';
import { decodeOffsetTable, encodeU64, getRefcountEntry, setRefcountEntry } from './qcow2/refcount.js';

export interface CheckResult {
  format: DiskFormat;
  /** False for formats without metadata to check (raw). */
  supported: boolean;
  corruptions: number;
  leaks: number;
  /** One line per problem found (capped; the counts are exact). */
  messages: string[];
  /** Guest clusters allocated / total (qcow2). */
  allocatedClusters: number;
  totalClusters: number;
  compressedClusters: number;
  /** End of the last cluster in use. */
  imageEndOffset: number;
  /** With repair: what was found and fixed before the final check (whose counts are above). */
  repaired?: { leaks: number; corruptions: number };
}

export type RepairMode = 'leaks' | 'all';

const MAX_MESSAGES = 200;

/** qemu-img's exit statuses: 0 clean, 2 corruptions, 3 leaks only, 63 format has no checks. */
export function checkExitCode(r: CheckResult): number {
  if (!r.supported) return 63;
  if (r.corruptions > 0) return 2;
  if (r.leaks > 0) return 3;
  return 0;
}

export async function checkImage(path: string, format?: DiskFormat, repair?: RepairMode): Promise<CheckResult> {
  const fmt = format ?? (await probeFormat(path));
  if (fmt !== 'qcow2') return emptyResult(fmt);
  if (repair) {
    const before = await repairImage(path, repair);
    const after = await runCheck(path);
    after.repaired = { leaks: before.leaks - after.leaks, corruptions: before.corruptions - after.corruptions };
    return after;
  }
  return runCheck(path);
}

function emptyResult(format: DiskFormat): CheckResult {
  return {
    format, supported: format === 'qcow2', corruptions: 0, leaks: 0, messages: [],
    allocatedClusters: 0, totalClusters: 0, compressedClusters: 0, imageEndOffset: 0,
  };
}

async function openHeader(file: ImageFile, path: string): Promise<Qcow2Header> {
  const first = await file.readNew(0, Math.min(file.size, 4096));
  return parseHeader(await file.readNew(0, Math.min(file.size, headerClusterSize(first))), file.size, path);
}

async function runCheck(path: string): Promise<CheckResult> {
  const result = emptyResult('qcow2');
  const file = await ImageFile.open(path, true);
  try {
    await new Checker(file, await openHeader(file, path), result).run();
  } finally {
    await file.close();
  }
  return result;
}

/** Repairs a qcow2 image in place (see the top of this file); returns the check from before. */
export async function repairImage(path: string, mode: RepairMode): Promise<CheckResult> {
  const result = emptyResult('qcow2');
  const file = await ImageFile.open(path, false);
  try {
    const h = await openHeader(file, path);
    const checker = new Checker(file, h, result);
    await checker.run();
    if (mode === 'leaks') await checker.fixLeaks();
    else await checker.rebuild();
    // The dirty bit goes once refcounts are right; the corrupt bit once nothing is left to fix.
    const clean = mode === 'all' ? (await runCheck(path)).corruptions === 0 : result.corruptions === 0;
    let bits = h.incompatibleFeatures;
    if (clean) bits &= ~(1n << BigInt(INCOMPAT_DIRTY));
    if (clean && mode === 'all') bits &= ~(1n << BigInt(INCOMPAT_CORRUPT));
    if (h.version >= 3 && bits !== h.incompatibleFeatures) {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, bits);
      await file.write(H.incompatibleFeatures, b);
      await file.datasync();
    }
  } finally {
    await file.close();
  }
  return result;
}

class Checker {
  private readonly cs: number;
  private table: number[] = [];
  private readonly blocks = new Map<number, Uint8Array>();
  private perBlock = 0;
  /** Leaked clusters and the count they should have. */
  private readonly leaked: { cluster: number; want: number }[] = [];
  /** Reference counts found by walking, per host cluster index. */
  private readonly refs = new Map<number, number>();
  private readonly fileClusters: number;

  constructor(private readonly file: ImageFile, private readonly h: Qcow2Header, private readonly r: CheckResult) {
    this.cs = h.clusterSize;
    this.fileClusters = Math.ceil(file.size / this.cs);
  }

  private corrupt(msg: string): void {
    this.r.corruptions++;
    if (this.r.messages.length < MAX_MESSAGES) this.r.messages.push(`ERROR ${msg}`);
  }

  /** Counts one reference to every cluster of [offset, offset+length). False if outside the file. */
  private ref(offset: number, length: number, what: string, times = 1): boolean {
    if (length <= 0) return true;
    const first = Math.floor(offset / this.cs);
    const last = Math.floor((offset + length - 1) / this.cs);
    if (last >= this.fileClusters) {
      this.corrupt(`${what} at ${offset} lies past the end of the file (${this.file.size} bytes)`);
      return false;
    }
    for (let c = first; c <= last; c++) this.refs.set(c, (this.refs.get(c) ?? 0) + times);
    return true;
  }

  async run(): Promise<void> {
    const { h, cs } = this;
    this.ref(0, cs, 'header');
    this.ref(h.refcountTableOffset, h.refcountTableClusters * cs, 'refcount table');

    // Stored refcounts: the table and its blocks.
    const table = decodeOffsetTable(await this.file.readNew(h.refcountTableOffset, h.refcountTableClusters * cs));
    this.table = table;
    const blocks = this.blocks;
    const blockAt = new Map<number, number>();
    for (let i = 0; i < table.length; i++) {
      const off = table[i];
      if (off === 0) continue;
      if (off % cs !== 0 || off >= 2 ** 53) {
        this.corrupt(`refcount block ${i} at unaligned offset ${off}`);
        continue;
      }
      if (!this.ref(off, cs, `refcount block ${i}`)) continue;
      const again = blockAt.get(off);
      if (again !== undefined) {
        this.corrupt(`refcount blocks ${again} and ${i} are the same cluster ${off / cs}`);
        continue;
      }
      blockAt.set(off, i);
      blocks.set(i, await this.file.readNew(off, cs));
    }
    const perBlock = (cs * 8) >> h.refcountOrder;
    this.perBlock = perBlock;
    const stored = (c: number): number => {
      const b = blocks.get(Math.floor(c / perBlock));
      return b ? getRefcountEntry(b, h.refcountOrder, c % perBlock) : 0;
    };

    // The active L1 table (with the bit-63 checks), then each snapshot's.
    await this.walkL1(h.l1TableOffset, h.l1Size, 'active', stored);
    if (h.nbSnapshots > 0) await this.walkSnapshots();
    for (const e of h.extensions) if (e.type === EXT_BITMAPS) await this.walkBitmaps(e.offset, e.length);

    // Compare: every cluster of the file, plus what refcount blocks say about clusters past it.
    let end = 0;
    const compare = (c: number) => {
      const st = stored(c);
      const want = this.refs.get(c) ?? 0;
      if (st !== 0 || want !== 0) end = Math.max(end, c + 1);
      if (st === want) return;
      if (st < want) this.corrupt(`cluster ${c} refcount=${st} reference=${want}`);
      else {
        this.r.leaks++;
        this.leaked.push({ cluster: c, want });
        if (this.r.messages.length < MAX_MESSAGES) this.r.messages.push(`Leaked cluster ${c} refcount=${st} reference=${want}`);
      }
    };
    for (let c = 0; c < this.fileClusters; c++) compare(c);
    for (const bi of [...blocks.keys()].sort((a, b) => a - b)) {
      for (let c = Math.max(this.fileClusters, bi * perBlock); c < (bi + 1) * perBlock; c++) compare(c);
    }
    this.r.imageEndOffset = end * cs;
    this.r.totalClusters = Math.ceil(h.size / cs);
  }

  /** "-r leaks": lower each leaked refcount to the references found, in the existing blocks. */
  async fixLeaks(): Promise<void> {
    const changed = new Set<number>();
    for (const { cluster, want } of this.leaked) {
      const bi = Math.floor(cluster / this.perBlock);
      const b = this.blocks.get(bi);
      if (!b) continue;
      setRefcountEntry(b, this.h.refcountOrder, cluster % this.perBlock, want);
      changed.add(bi);
    }
    for (const bi of changed) await this.file.write(this.table[bi], this.blocks.get(bi)!);
    await this.file.datasync();
  }

  /** "-r all": a new refcount table and blocks holding exactly the references found. */
  async rebuild(): Promise<void> {
    const { cs, h } = this;
    const order = h.refcountOrder;
    const max = order === 6 ? 2 ** 53 : 2 ** (1 << order) - 1;
    // The old structure is not referenced by the new one.
    const counts = new Map(this.refs);
    const drop = (off: number, len: number) => {
      for (let c = Math.floor(off / cs); c < Math.ceil((off + len) / cs); c++) {
        const v = (counts.get(c) ?? 0) - 1;
        if (v > 0) counts.set(c, v);
        else counts.delete(c);
      }
    };
    drop(h.refcountTableOffset, h.refcountTableClusters * cs);
    for (const bi of this.blocks.keys()) drop(this.table[bi], cs);
    // Place it at the end of the file: table, then blocks; size it to cover itself (fixed point).
    const start = this.fileClusters;
    let rt = 1;
    let rb = 1;
    for (;;) {
      const end = start + rt + rb;
      const rb2 = Math.ceil(end / this.perBlock);
      const rt2 = Math.ceil((rb2 * 8) / cs);
      if (rb2 === rb && rt2 === rt) break;
      rb = rb2;
      rt = rt2;
    }
    for (let c = start; c < start + rt + rb; c++) counts.set(c, 1);
    const blocks = new Uint8Array(rb * cs);
    for (const [c, v] of counts) {
      if (v > max) throw new BlockError(`cluster ${c} has ${v} references, more than ${(1 << order)}-bit refcounts hold`, this.file.path);
      const bi = Math.floor(c / this.perBlock);
      if (bi >= rb) continue;
      setRefcountEntry(blocks.subarray(bi * cs, (bi + 1) * cs), order, c % this.perBlock, v);
    }
    const table = new Uint8Array(rt * cs);
    for (let i = 0; i < rb; i++) encodeU64(table, i * 8, (start + rt + i) * cs);
    await this.file.write(start * cs, table);
    await this.file.write((start + rt) * cs, blocks);
    await this.file.datasync();
    const hdr = new Uint8Array(12);
    encodeU64(hdr, 0, start * cs);
    new DataView(hdr.buffer).setUint32(8, rt);
    await this.file.write(H.refcountTableOffset, hdr);
    await this.file.datasync();
    await this.fixCopiedFlags(counts);
  }

  /** Bit 63 of active L1 and L2 entries: set exactly when the refcount is one. */
  private async fixCopiedFlags(counts: Map<number, number>): Promise<void> {
    const { cs, h } = this;
    if (h.l1Size === 0) return;
    const l1 = await this.file.readNew(h.l1TableOffset, h.l1Size * 8);
    const dv = new DataView(l1.buffer);
    let l1Changed = false;
    for (let i = 0; i < h.l1Size; i++) {
      const hi = dv.getUint32(i * 8);
      const lo = dv.getUint32(i * 8 + 4);
      const off = entryOffset(hi, lo);
      if (off === 0 || off % cs !== 0 || off + cs > this.file.size) continue;
      const want = counts.get(off / cs) === 1 ? (hi | HI_COPIED) >>> 0 : (hi & ~HI_COPIED) >>> 0;
      if (want !== hi) {
        dv.setUint32(i * 8, want);
        l1Changed = true;
      }
      const l2 = await this.file.readNew(off, cs);
      const l2v = new DataView(l2.buffer);
      let changed = false;
      for (const { j, hi: ehi, m } of this.l2Entries(l2v)) {
        if (!m) continue; // undecodable: left as it is (check reports it)
        let wantHi = ehi;
        if (m.kind === 'compressed') wantHi = (ehi & ~HI_COPIED) >>> 0;
        else if ((m.kind === 'normal' || m.kind === 'zero') && m.hostOffset !== 0) {
          wantHi = counts.get(m.hostOffset / cs) === 1 ? (ehi | HI_COPIED) >>> 0 : (ehi & ~HI_COPIED) >>> 0;
        }
        if (wantHi !== ehi) {
          l2v.setUint32(j * 8, wantHi);
          changed = true;
        }
      }
      if (changed) await this.file.write(off, l2);
    }
    if (l1Changed) await this.file.write(h.l1TableOffset, l1);
    await this.file.datasync();
  }

  /** The non-empty entries of an L2 table, decoded, or with the reason they cannot be. */
  private *l2Entries(l2v: DataView): Generator<{ j: number; hi: number; m: ClusterMapping | null; error?: Error }> {
    const { h } = this;
    for (let j = 0; j < this.cs / 8; j++) {
      const hi = l2v.getUint32(j * 8);
      const lo = l2v.getUint32(j * 8 + 4);
      if (hi === 0 && lo === 0) continue;
      try {
        yield { j, hi, m: decodeL2Entry(hi, lo, h.clusterBits, h.version, this.file.path) };
      } catch (e) {
        yield { j, hi, m: null, error: e as Error };
      }
    }
  }

  private async walkL1(l1Offset: number, l1Size: number, which: string, stored: ((c: number) => number) | null): Promise<void> {
    const { cs } = this;
    if (l1Size === 0) return;
    if (l1Offset % cs !== 0) {
      this.corrupt(`${which} L1 table at unaligned offset ${l1Offset}`);
      return;
    }
    if (!this.ref(l1Offset, l1Size * 8, `${which} L1 table`)) return;
    const l1 = await this.file.readNew(l1Offset, l1Size * 8);
    const dv = new DataView(l1.buffer);
    const active = which === 'active';
    // Each distinct L2 table is decoded once; a table referenced k times counts k times.
    const tables = new Map<number, number>();
    for (let i = 0; i < l1Size; i++) {
      const hi = dv.getUint32(i * 8);
      const lo = dv.getUint32(i * 8 + 4);
      const off = entryOffset(hi, lo);
      if (off === 0) continue;
      if (off % cs !== 0 || (lo & 0x1ff) !== 0) {
        this.corrupt(`${which} L1 entry ${i}: L2 table at unaligned offset ${off}`);
        continue;
      }
      if (!this.ref(off, cs, `L2 table (${which} L1 entry ${i})`)) continue;
      if (active && stored && ((hi & HI_COPIED) !== 0) !== (stored(off / cs) === 1)) {
        this.corrupt(`OFLAG_COPIED L2 cluster: l1_index=${i} l1_entry=${off} refcount=${stored(off / cs)}`);
      }
      tables.set(off, (tables.get(off) ?? 0) + 1);
    }
    for (const [off, times] of tables) {
      const l2 = await this.file.readNew(off, cs);
      for (const { j, hi: ehi, m, error } of this.l2Entries(new DataView(l2.buffer))) {
        if (!m) {
          this.corrupt(`${which} L2 table at ${off}, entry ${j}: ${error!.message.replace(/^.*corrupt image: /, '')}`);
          continue;
        }
        if (m.kind === 'compressed') {
          if (active) {
            this.r.allocatedClusters += times;
            this.r.compressedClusters += times;
          }
          if ((ehi & HI_COPIED) !== 0) this.corrupt(`compressed cluster in L2 table at ${off}, entry ${j} has the refcount-one flag set`);
          const { first, count } = compressedClusters(m, cs);
          this.ref(first * cs, count * cs, `compressed data (L2 table at ${off}, entry ${j})`, times);
        } else if ((m.kind === 'normal' || m.kind === 'zero') && m.hostOffset !== 0) {
          if (active && m.kind === 'normal') this.r.allocatedClusters += times;
          if (!this.ref(m.hostOffset, cs, `data cluster (L2 table at ${off}, entry ${j})`, times)) continue;
          if (active && stored && m.copied !== (stored(m.hostOffset / cs) === 1)) {
            this.corrupt(`OFLAG_COPIED data cluster: l2_entry=${m.hostOffset} refcount=${stored(m.hostOffset / cs)}`);
          }
        }
      }
    }
  }

  /** "Snapshots": the table, and each snapshot's L1 table and what it references. */
  private async walkSnapshots(): Promise<void> {
    const { h } = this;
    let off = h.snapshotsOffset;
    const start = off;
    for (let s = 0; s < h.nbSnapshots; s++) {
      if (off + 40 > this.file.size) {
        this.corrupt(`snapshot table entry ${s} lies past the end of the file`);
        return;
      }
      const e = await this.file.readNew(off, 40);
      const dv = new DataView(e.buffer);
      const l1Off = dv.getUint32(0) * 2 ** 32 + dv.getUint32(4);
      const l1Size = dv.getUint32(8);
      const idLen = dv.getUint16(12);
      const nameLen = dv.getUint16(14);
      const extra = dv.getUint32(36);
      if (extra > 1024 * 1024) {
        this.corrupt(`snapshot ${s} has ${extra} bytes of extra data`);
        return;
      }
      await this.walkL1(l1Off, l1Size, `snapshot ${s}`, null);
      off += 40 + extra + idLen + nameLen;
      off = Math.ceil(off / 8) * 8;
    }
    this.ref(start, off - start, 'snapshot table');
  }

  /** "Bitmaps extension": the directory, each bitmap table and the clusters it lists. */
  private async walkBitmaps(extOffset: number, extLength: number): Promise<void> {
    if (extLength < 24) return;
    const ext = new DataView((await this.file.readNew(extOffset, 24)).buffer);
    const n = ext.getUint32(0);
    const dirSize = ext.getUint32(8) * 2 ** 32 + ext.getUint32(12);
    const dirOff = ext.getUint32(16) * 2 ** 32 + ext.getUint32(20);
    if (dirSize > 64 * 1024 * 1024 || !this.ref(dirOff, dirSize, 'bitmap directory')) return;
    const dir = await this.file.readNew(dirOff, dirSize);
    const dv = new DataView(dir.buffer);
    let p = 0;
    for (let i = 0; i < n && p + 24 <= dirSize; i++) {
      const tOff = dv.getUint32(p) * 2 ** 32 + dv.getUint32(p + 4);
      const tSize = dv.getUint32(p + 8);
      const nameSize = dv.getUint16(p + 18);
      const extra = dv.getUint32(p + 20);
      if (tSize * 8 > 64 * 1024 * 1024) return;
      if (tOff !== 0 && this.ref(tOff, tSize * 8, `bitmap ${i} table`)) {
        const t = await this.file.readNew(tOff, tSize * 8);
        const tv = new DataView(t.buffer);
        for (let k = 0; k < tSize; k++) {
          const o = entryOffset(tv.getUint32(k * 8), tv.getUint32(k * 8 + 4));
          if (o > 1) this.ref(o, this.cs, `bitmap ${i} data`);
        }
      }
      p += Math.ceil((24 + extra + nameSize) / 8) * 8;
    }
  }
}

