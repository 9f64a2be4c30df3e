// Consistency check of a qcow2 image, in the spirit of `qemu-img check`: walk every structure
// that references host clusters (header, L1 tables of the active image and the snapshots, L2
// tables, data and compressed clusters, refcount table and blocks, snapshot table, bitmaps),
// count the references each cluster gets, and compare with the stored refcounts
// ("Host cluster management" in qcow2.txt). Stored < counted is a corruption (a cluster could
// be handed out twice); stored > counted is a leak (space lost, data safe). Offsets that are
// unaligned or lie past the end of the file, and L1/L2 "refcount is one" flags (bit 63) that
// disagree with the refcount, are corruptions too.
import type { DiskFormat } from './backend.js';
import { ImageFile } from './image-file.js';
import { probeFormat } from './open.js';
import { EXT_BITMAPS, HI_COPIED } from './qcow2/format.js';
import { headerClusterSize, parseHeader, type Qcow2Header } from './qcow2/header.js';
import { compressedClusters, decodeL2Entry, entryOffset } from './qcow2/mapping.js';
import { decodeOffsetTable, getRefcountEntry } from './qcow2/refcount.js';

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
}

const MAX_MESSAGES = 200;

/** qemu-img's exit statuses: 0 clean, 2 corruptions, 3 leaks only, 63 format has no checks. */
export function checkExitCode(r: CheckResult): number {
  if (!r.supported) return 63;
  if (r.corruptions > 0) return 2;
  if (r.leaks > 0) return 3;
  return 0;
}

export async function checkImage(path: string, format?: DiskFormat): Promise<CheckResult> {
  const fmt = format ?? (await probeFormat(path));
  const result: CheckResult = {
    format: fmt, supported: fmt === 'qcow2', corruptions: 0, leaks: 0, messages: [],
    allocatedClusters: 0, totalClusters: 0, compressedClusters: 0, imageEndOffset: 0,
  };
  if (fmt !== 'qcow2') return result;
  const file = await ImageFile.open(path, true);
  try {
    const first = await file.readNew(0, Math.min(file.size, 4096));
    const h = parseHeader(await file.readNew(0, Math.min(file.size, headerClusterSize(first))), file.size, path);
    await new Checker(file, h, result).run();
  } finally {
    await file.close();
  }
  return result;
}

class Checker {
  private readonly cs: number;
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
    const blocks = new Map<number, Uint8Array>();
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

  private async walkL1(l1Offset: number, l1Size: number, which: string, stored: ((c: number) => number) | null): Promise<void> {
    const { cs, h } = this;
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
      const l2v = new DataView(l2.buffer);
      for (let j = 0; j < cs / 8; j++) {
        const ehi = l2v.getUint32(j * 8);
        const elo = l2v.getUint32(j * 8 + 4);
        if (ehi === 0 && elo === 0) continue;
        let m;
        try {
          m = decodeL2Entry(ehi, elo, h.clusterBits, h.version, this.file.path);
        } catch (e) {
          this.corrupt(`${which} L2 table at ${off}, entry ${j}: ${(e as Error).message.replace(/^.*corrupt image: /, '')}`);
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

