// virtio-blk (VIRTIO 1.2 §5.2) over a BlockBackend.
//
// A request (§5.2.6) is: a device-readable header {type le32, reserved le32, sector le64}, then
// data (device-readable for writes, discard and write-zeroes segments; device-writable for reads
// and GET_ID), then one device-writable status byte. With VIRTIO_F_VERSION_1 the framing does not
// depend on how the bytes are split into descriptors (§2.7.4 "Message Framing"), so the header
// is the first 16 readable bytes and the status the last writable byte, wherever they lie.
//
// Requests run concurrently and complete in whatever order the backend finishes them. A write is
// completed only after the backend's write resolved; a flush waits for the writes already in
// flight, then backend.flush() (fdatasync for files).
import type { BlockBackend } from './block-backend.js';
import { VIRTIO_ID_BLOCK, bit } from './constants.js';
import type { VirtioDevice, VirtioDeviceContext } from './device.js';
import { type DescChain, type Segment } from './queue.js';
import { gather, scatter, sliceBuffers } from '../../memory/buffers.js';

/** Feature bits (§5.2.3). */
export const VIRTIO_BLK_F_SIZE_MAX = 1;
export const VIRTIO_BLK_F_SEG_MAX = 2;
export const VIRTIO_BLK_F_RO = 5;
export const VIRTIO_BLK_F_BLK_SIZE = 6;
export const VIRTIO_BLK_F_FLUSH = 9;
export const VIRTIO_BLK_F_MQ = 12;
export const VIRTIO_BLK_F_DISCARD = 13;
export const VIRTIO_BLK_F_WRITE_ZEROES = 14;

/** Request types (§5.2.6). */
export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;
export const VIRTIO_BLK_T_GET_LIFETIME = 10;
export const VIRTIO_BLK_T_DISCARD = 11;
export const VIRTIO_BLK_T_WRITE_ZEROES = 13;
export const VIRTIO_BLK_T_SECURE_ERASE = 14;
/** Status values (§5.2.6). */
export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;

export const SECTOR = 512;
export const VIRTIO_BLK_ID_BYTES = 20;
/** discard/write-zeroes segment: sector le64, num_sectors le32, flags le32 (bit 0 unmap) (§5.2.6). */
const DWZ_SEGMENT = 16;
const DWZ_FLAG_UNMAP = 1;
const MAX_DWZ_SEGMENTS = 32;
const MAX_DWZ_SECTORS = 0x3fffff;
/** Byte size of struct virtio_blk_config up to write_zeroes_may_unmap and its padding (§5.2.4). */
export const BLK_CONFIG_SIZE = 60;
const ZERO_CHUNK = 1 << 20;
/** The largest request bounced through one host buffer (bigger ones go segment by segment). */
const BOUNCE_MAX = 4 << 20;

export interface VirtioBlkOptions {
  backend: BlockBackend;
  /** Request queues (VIRTIO_BLK_F_MQ when more than 1). Default 1. */
  queues?: number;
  queueSize?: number;
  /** GET_ID answer when the backend has no serial. */
  id?: string;
}

class RequestError extends Error {
  constructor(readonly status: number) {
    super(`status ${status}`);
  }
}

export class VirtioBlk implements VirtioDevice {
  readonly name: string;
  readonly deviceType = VIRTIO_ID_BLOCK;
  readonly pciClass = 0x010000; // mass storage, SCSI (what virtio-blk has always presented)
  readonly queueSizes: number[];
  readonly features: bigint;
  readonly configSize = BLK_CONFIG_SIZE;
  private readonly config = new Uint8Array(BLK_CONFIG_SIZE);
  private readonly backend: BlockBackend;
  private readonly serial: Uint8Array;
  private ctx?: VirtioDeviceContext;
  private readonly writesInFlight = new Set<Promise<unknown>>();
  /** Requests in flight (for tests and close()). */
  inFlight = 0;
  readonly stats = { reads: 0, writes: 0, flushes: 0, discards: 0, writeZeroes: 0, getId: 0, unsupported: 0, errors: 0 };

  constructor(opts: VirtioBlkOptions) {
    this.backend = opts.backend;
    const nq = opts.queues ?? 1;
    const qs = opts.queueSize ?? 256;
    if (!Number.isInteger(nq) || nq < 1 || nq > 64) throw new RangeError('virtio-blk: 1 to 64 queues');
    this.name = `virtio-blk${opts.id ? `-${opts.id}` : ''}`;
    this.queueSizes = new Array<number>(nq).fill(qs);
    let f = bit(VIRTIO_BLK_F_SEG_MAX) | bit(VIRTIO_BLK_F_BLK_SIZE) | bit(VIRTIO_BLK_F_FLUSH);
    if (nq > 1) f |= bit(VIRTIO_BLK_F_MQ);
    if (this.backend.readonly) f |= bit(VIRTIO_BLK_F_RO);
    else {
      f |= bit(VIRTIO_BLK_F_WRITE_ZEROES);
      if (this.backend.discard) f |= bit(VIRTIO_BLK_F_DISCARD);
    }
    this.features = f;
    const v = new DataView(this.config.buffer);
    v.setBigUint64(0, BigInt(Math.floor(this.backend.sizeBytes / SECTOR)), true); // capacity
    v.setUint32(12, qs - 2, true); // seg_max: data segments, leaving room for header and status
    v.setUint32(20, SECTOR, true); // blk_size
    v.setUint16(34, nq, true); // num_queues
    v.setUint32(36, MAX_DWZ_SECTORS, true); // max_discard_sectors
    v.setUint32(40, MAX_DWZ_SEGMENTS, true); // max_discard_seg
    v.setUint32(44, 8, true); // discard_sector_alignment: 4 KiB
    v.setUint32(48, MAX_DWZ_SECTORS, true); // max_write_zeroes_sectors
    v.setUint32(52, MAX_DWZ_SEGMENTS, true); // max_write_zeroes_seg
    v.setUint8(56, this.backend.discard ? 1 : 0); // write_zeroes_may_unmap
    const id = (this.backend.serial ?? opts.id ?? '').slice(0, VIRTIO_BLK_ID_BYTES);
    this.serial = new Uint8Array(VIRTIO_BLK_ID_BYTES);
    for (let i = 0; i < id.length; i++) this.serial[i] = id.charCodeAt(i) & 0x7f;
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    let v = 0;
    for (let i = 0; i < size; i++) v |= (this.config[offset + i] ?? 0) << (8 * i);
    return v >>> 0;
  }

  writeConfig(): void {
    // Nothing writable: VIRTIO_BLK_F_CONFIG_WCE is not offered.
  }

  activate(ctx: VirtioDeviceContext): void {
    this.ctx = ctx;
  }

  reset(): void {
    this.ctx = undefined;
  }

  queueNotify(q: number): void {
    const ctx = this.ctx;
    if (!ctx) return;
    const queue = ctx.queues[q];
    for (let chain = queue.pop(); chain; chain = queue.pop()) this.start(ctx, q, chain);
  }

  private start(ctx: VirtioDeviceContext, q: number, chain: DescChain): void {
    const statusSeg = lastByte(chain.writable);
    if (!statusSeg) {
      // No byte to put the status in: the request cannot be answered; return it untouched.
      ctx.log('request without a status byte');
      ctx.complete(q, chain.head, 0);
      return;
    }
    this.inFlight++;
    this.execute(chain).then(
      (written) => this.finish(ctx, q, chain, statusSeg, VIRTIO_BLK_S_OK, written),
      (e: unknown) => {
        const status = e instanceof RequestError ? e.status : VIRTIO_BLK_S_IOERR;
        if (!(e instanceof RequestError)) ctx.log(`I/O error: ${(e as Error)?.message ?? String(e)}`);
        if (status === VIRTIO_BLK_S_IOERR) this.stats.errors++;
        this.finish(ctx, q, chain, statusSeg, status, 0);
      },
    );
  }

  private finish(ctx: VirtioDeviceContext, q: number, chain: DescChain, statusSeg: Segment, status: number, written: number): void {
    this.inFlight--;
    if (!ctx.alive) return; // reset meanwhile: the buffers are no longer the driver's
    statusSeg[0] = status;
    ctx.complete(q, chain.head, written + 1);
  }

  /** Runs one request; resolves with the bytes written to device-writable data buffers. */
  private async execute(chain: DescChain): Promise<number> {
    if (chain.readableLength < 16) throw new RequestError(VIRTIO_BLK_S_IOERR);
    const hdr = new Uint8Array(16);
    gather(chain.readable, hdr);
    const hv = new DataView(hdr.buffer);
    const type = hv.getUint32(0, true);
    const sector = hv.getUint32(8, true) + hv.getUint32(12, true) * 2 ** 32;
    const inData = sliceBuffers(chain.writable, 0, chain.writableLength - 1);
    const inLength = chain.writableLength - 1;
    const outData = sliceBuffers(chain.readable, 16, chain.readableLength - 16);
    const outLength = chain.readableLength - 16;
    switch (type) {
      case VIRTIO_BLK_T_IN:
        this.stats.reads++;
        await this.transfer(sector, inData, inLength, false);
        return inLength;
      case VIRTIO_BLK_T_OUT: {
        this.stats.writes++;
        if (this.backend.readonly) throw new RequestError(VIRTIO_BLK_S_IOERR);
        const p = this.transfer(sector, outData, outLength, true);
        this.writesInFlight.add(p);
        try {
          await p;
        } finally {
          this.writesInFlight.delete(p);
        }
        return 0;
      }
      case VIRTIO_BLK_T_FLUSH:
        this.stats.flushes++;
        await Promise.allSettled([...this.writesInFlight]);
        await this.backend.flush();
        return 0;
      case VIRTIO_BLK_T_GET_ID: {
        this.stats.getId++;
        const n = Math.min(VIRTIO_BLK_ID_BYTES, inLength);
        let done = 0;
        for (const s of inData) {
          if (done >= n) break;
          const k = Math.min(s.length, n - done);
          s.set(this.serial.subarray(done, done + k));
          done += k;
        }
        return n;
      }
      case VIRTIO_BLK_T_DISCARD:
      case VIRTIO_BLK_T_WRITE_ZEROES:
        await this.discardOrZero(type, outData, outLength);
        return 0;
      default:
        this.stats.unsupported++;
        throw new RequestError(VIRTIO_BLK_S_UNSUPP);
    }
  }

  private checkRange(sector: number, bytes: number): number {
    if (bytes % SECTOR !== 0) throw new RequestError(VIRTIO_BLK_S_IOERR);
    const offset = sector * SECTOR;
    if (!Number.isSafeInteger(offset) || offset + bytes > this.backend.sizeBytes) throw new RequestError(VIRTIO_BLK_S_IOERR);
    return offset;
  }

  /**
   * Moves a request's data. A guest request is usually one segment per guest page (256 for a
   * 1 MiB O_DIRECT read), and one backend call per segment costs a host round trip each (a
   * libuv thread-pool job for a file: ~20 µs, i.e. ~5 ms per MiB). So several segments go to the
   * backend as one vectored call, or, for a backend without one, through one bounce buffer.
   */
  private async transfer(sector: number, segs: Segment[], bytes: number, write: boolean): Promise<void> {
    let offset = this.checkRange(sector, bytes);
    const parts = segs.filter((s) => s.length > 0);
    const b = this.backend;
    if (parts.length === 0) return;
    if (parts.length === 1) return write ? b.write(offset, parts[0]) : b.read(offset, parts[0]);
    if (write && b.writev) return b.writev(offset, parts);
    if (!write && b.readv) return b.readv(offset, parts);
    if (bytes <= BOUNCE_MAX) {
      const bounce = new Uint8Array(bytes);
      if (write) {
        gather(parts, bounce);
        await b.write(offset, bounce);
      } else {
        await b.read(offset, bounce);
        scatter(parts, bounce);
      }
      return;
    }
    const ops: Promise<void>[] = [];
    for (const s of parts) {
      ops.push(write ? b.write(offset, s) : b.read(offset, s));
      offset += s.length;
    }
    await Promise.all(ops);
  }

  private async discardOrZero(type: number, segs: Segment[], bytes: number): Promise<void> {
    const zero = type === VIRTIO_BLK_T_WRITE_ZEROES;
    if (zero) this.stats.writeZeroes++;
    else this.stats.discards++;
    const offered = zero ? !this.backend.readonly : !this.backend.readonly && !!this.backend.discard;
    if (!offered) throw new RequestError(VIRTIO_BLK_S_UNSUPP);
    if (bytes === 0 || bytes % DWZ_SEGMENT !== 0 || bytes / DWZ_SEGMENT > MAX_DWZ_SEGMENTS) throw new RequestError(VIRTIO_BLK_S_IOERR);
    const raw = new Uint8Array(bytes);
    gather(segs, raw);
    const v = new DataView(raw.buffer);
    const ranges: { offset: number; length: number; unmap: boolean }[] = [];
    for (let o = 0; o < bytes; o += DWZ_SEGMENT) {
      const sector = v.getUint32(o, true) + v.getUint32(o + 4, true) * 2 ** 32;
      const count = v.getUint32(o + 8, true);
      const flags = v.getUint32(o + 12, true);
      // §5.2.6.2: unknown flags, or unmap on a discard, are unsupported.
      if ((flags & ~DWZ_FLAG_UNMAP) !== 0 || (!zero && flags & DWZ_FLAG_UNMAP)) throw new RequestError(VIRTIO_BLK_S_UNSUPP);
      if (count > MAX_DWZ_SECTORS) throw new RequestError(VIRTIO_BLK_S_IOERR);
      ranges.push({ offset: this.checkRange(sector, count * SECTOR), length: count * SECTOR, unmap: (flags & DWZ_FLAG_UNMAP) !== 0 });
    }
    for (const r of ranges) {
      if (r.length === 0) continue;
      if (!zero) await this.backend.discard!(r.offset, r.length);
      else if (this.backend.writeZeroes) await this.backend.writeZeroes(r.offset, r.length, r.unmap);
      else {
        const zeros = new Uint8Array(Math.min(ZERO_CHUNK, r.length));
        for (let o = 0; o < r.length; o += zeros.length) {
          await this.backend.write(r.offset + o, zeros.subarray(0, Math.min(zeros.length, r.length - o)));
        }
      }
    }
  }

  async close(): Promise<void> {
    await this.backend.close();
  }
}

/** A one-byte view of the last byte of the writable segments (the status byte), if any. */
function lastByte(segs: readonly Segment[]): Segment | undefined {
  for (let i = segs.length - 1; i >= 0; i--) {
    const s = segs[i];
    if (s.length > 0) return s.subarray(s.length - 1);
  }
  return undefined;
}
