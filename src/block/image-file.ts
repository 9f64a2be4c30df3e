// One host file holding a disk image, opened through fs/promises: positional reads that always
// fill the whole buffer (zeros past the end of the file), positional writes that always write it
// all, fdatasync, hole punching. The qcow2 and raw backends do all their host I/O through this,
// which is also where "never write outside the image" is enforced for read-only opens.
import { open, type FileHandle } from 'node:fs/promises';
import { constants } from 'node:fs';
import { BlockError, fsError, ReadOnlyError } from './errors.js';
import { punchHole, zeroRange } from './fallocate.js';
import { readNowait } from './nowait.js';
import { sliceBuffers, totalLength } from '../memory/buffers.js';

/**
 * Reads up to this size first try the page cache synchronously (nowait.ts), so the event loop is
 * held for at most a copy of this many bytes (~0.2 ms); bigger ones go to the thread pool.
 */
const NOWAIT_MAX_BYTES = 2 << 20;

export class ImageFile {
  /** Whether reads try the page cache synchronously first (until the host says it cannot). */
  private nowait = true;

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly readonly: boolean,
    private knownSize: number,
  ) {}

  /** Bytes of `bufs` (from `offset`) read from the page cache without waiting; 0 when none. */
  private readCached(offset: number, bufs: readonly Uint8Array[], length: number): number {
    if (!this.nowait || length > NOWAIT_MAX_BYTES) return 0;
    const n = readNowait(this.fh.fd, bufs, offset);
    if (n === 'unsupported') {
      this.nowait = false;
      return 0;
    }
    return n;
  }

  static async open(path: string, readonly: boolean): Promise<ImageFile> {
    let fh: FileHandle;
    try {
      fh = await open(path, readonly ? constants.O_RDONLY : constants.O_RDWR);
    } catch (e) {
      throw fsError(e, path, readonly ? 'cannot open' : 'cannot open for writing');
    }
    try {
      const st = await fh.stat();
      if (st.isDirectory()) throw new BlockError('is a directory, not a disk image', path);
      // Block devices report size 0 through stat; their size is where a read hits the end.
      return new ImageFile(path, fh, readonly, st.isBlockDevice() ? await blockDeviceSize(fh) : st.size);
    } catch (e) {
      await fh.close();
      throw fsError(e, path, 'cannot open');
    }
  }

  static async create(path: string): Promise<ImageFile> {
    let fh: FileHandle;
    try {
      fh = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC, 0o644);
    } catch (e) {
      throw fsError(e, path, 'cannot create');
    }
    return new ImageFile(path, fh, false, 0);
  }

  get fd(): number {
    return this.fh.fd;
  }

  /** The file's size as last seen (grows with our own writes). */
  get size(): number {
    return this.knownSize;
  }

  async refreshSize(): Promise<number> {
    const st = await this.fh.stat();
    if (st.isFile()) this.knownSize = st.size;
    return this.knownSize;
  }

  /**
   * Reads dst.length bytes at `offset`; bytes past the end of the file read as zeros. What the
   * host page cache holds is copied at once on this thread; the rest goes to the thread pool.
   */
  async read(offset: number, dst: Uint8Array): Promise<void> {
    let done = this.readCached(offset, [dst], dst.length);
    try {
      while (done < dst.length) {
        const { bytesRead } = await this.fh.read(dst, done, dst.length - done, offset + done);
        if (bytesRead === 0) {
          dst.fill(0, done);
          return;
        }
        done += bytesRead;
      }
    } catch (e) {
      throw fsError(e, this.path, `read of ${dst.length} bytes at ${offset} failed`);
    }
  }

  /**
   * Reads consecutive ranges starting at `offset` into `dsts` in one preadv (more if the kernel
   * returns short), from the page cache at once when it can, as `read`; bytes past the end of
   * the file read as zeros.
   */
  async readv(offset: number, dsts: readonly Uint8Array[]): Promise<void> {
    if (dsts.length === 1) return this.read(offset, dsts[0]);
    let bufs = dsts.filter((d) => d.length > 0);
    let pos = offset;
    const cached = this.readCached(offset, bufs, totalLength(bufs));
    if (cached > 0) {
      pos += cached;
      bufs = sliceBuffers(bufs, cached, totalLength(bufs) - cached);
    }
    try {
      while (bufs.length > 0) {
        const { bytesRead } = await this.fh.readv(bufs, pos);
        if (bytesRead === 0) {
          for (const d of bufs) d.fill(0);
          return;
        }
        pos += bytesRead;
        bufs = sliceBuffers(bufs, bytesRead, totalLength(bufs) - bytesRead);
      }
    } catch (e) {
      throw fsError(e, this.path, `read of ${totalLength(dsts)} bytes at ${offset} failed`);
    }
  }

  async readNew(offset: number, length: number): Promise<Uint8Array> {
    const b = new Uint8Array(length);
    await this.read(offset, b);
    return b;
  }

  async write(offset: number, src: Uint8Array): Promise<void> {
    if (this.readonly) throw new ReadOnlyError(this.path);
    if (!Number.isSafeInteger(offset) || offset < 0) throw new BlockError(`write at bad offset ${offset}`, this.path);
    let done = 0;
    try {
      while (done < src.length) {
        const { bytesWritten } = await this.fh.write(src, done, src.length - done, offset + done);
        done += bytesWritten;
      }
    } catch (e) {
      throw fsError(e, this.path, `write of ${src.length} bytes at ${offset} failed`);
    }
    if (offset + src.length > this.knownSize) this.knownSize = offset + src.length;
  }

  /** Writes `srcs` back to back from `offset` in one pwritev (more if the kernel writes short). */
  async writev(offset: number, srcs: readonly Uint8Array[]): Promise<void> {
    if (this.readonly) throw new ReadOnlyError(this.path);
    if (srcs.length === 1) return this.write(offset, srcs[0]);
    if (!Number.isSafeInteger(offset) || offset < 0) throw new BlockError(`write at bad offset ${offset}`, this.path);
    const total = totalLength(srcs);
    let bufs = srcs.filter((d) => d.length > 0);
    let pos = offset;
    try {
      while (bufs.length > 0) {
        const { bytesWritten } = await this.fh.writev(bufs, pos);
        pos += bytesWritten;
        bufs = sliceBuffers(bufs, bytesWritten, totalLength(bufs) - bytesWritten);
      }
    } catch (e) {
      throw fsError(e, this.path, `write of ${total} bytes at ${offset} failed`);
    }
    if (offset + total > this.knownSize) this.knownSize = offset + total;
  }

  async truncate(length: number): Promise<void> {
    if (this.readonly) throw new ReadOnlyError(this.path);
    try {
      await this.fh.truncate(length);
    } catch (e) {
      throw fsError(e, this.path, 'truncate failed');
    }
    this.knownSize = length;
  }

  async datasync(): Promise<void> {
    if (this.readonly) return;
    try {
      await this.fh.datasync();
    } catch (e) {
      throw fsError(e, this.path, 'fdatasync failed');
    }
  }

  /**
   * Makes [offset, offset+len) read as zeros without growing the file: a punched hole when
   * `unmap` (or a zeroed range when not), else zeros written.
   */
  async zero(offset: number, len: number, unmap: boolean): Promise<void> {
    if (this.readonly) throw new ReadOnlyError(this.path);
    if (len <= 0) return;
    const inFile = Math.min(len, Math.max(0, this.knownSize - offset));
    if (inFile > 0 && (unmap ? punchHole(this.fd, offset, inFile) : zeroRange(this.fd, offset, inFile))) {
      if (inFile === len) return;
      offset += inFile;
      len -= inFile;
    }
    const chunk = new Uint8Array(Math.min(len, 1 << 20));
    for (let done = 0; done < len; done += chunk.length) {
      const n = Math.min(chunk.length, len - done);
      await this.write(offset + done, n === chunk.length ? chunk : chunk.subarray(0, n));
    }
  }

  /** Frees the host blocks of a range that nobody will read again (no fallback needed). */
  punch(offset: number, len: number): void {
    if (!this.readonly && len > 0) punchHole(this.fd, offset, len);
  }

  /** Bytes the file occupies on the host (st_blocks * 512). */
  async allocatedBytes(): Promise<number> {
    const st = await this.fh.stat();
    return st.blocks * 512;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

async function blockDeviceSize(fh: FileHandle): Promise<number> {
  // Binary search for the end: a read at or past it returns 0 bytes.
  const probe = new Uint8Array(1);
  let lo = 0;
  let hi = 1;
  while ((await fh.read(probe, 0, 1, hi)).bytesRead === 1) {
    lo = hi;
    hi *= 2;
    if (hi > 2 ** 52) break;
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if ((await fh.read(probe, 0, 1, mid)).bytesRead === 1) lo = mid;
    else hi = mid;
  }
  return hi;
}
