// One host file holding a disk image, opened through fs/promises: positional reads that always
// fill the whole buffer (zeros past the end of the file), positional writes that always write it
// all, fdatasync, hole punching. The qcow2 and raw backends do all their host I/O through this,
// which is also where "never write outside the image" is enforced for read-only opens.
import { open, type FileHandle } from 'node:fs/promises';
import { constants } from 'node:fs';
import { BlockError, fsError, ReadOnlyError } from './errors.js';
import { punchHole, zeroRange } from './fallocate.js';

export class ImageFile {
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly readonly: boolean,
    private knownSize: number,
  ) {}

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

  /** Reads dst.length bytes at `offset`; bytes past the end of the file read as zeros. */
  async read(offset: number, dst: Uint8Array): Promise<void> {
    let done = 0;
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
