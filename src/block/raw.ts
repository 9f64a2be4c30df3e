// Raw disk images: the file's bytes are the disk's bytes. Reads and writes go straight to the
// file at the same offset (positional I/O, so any number may be in flight); flush is
// fdatasync; discard punches a hole (fallocate) and falls back to writing zeros.
import type { BlockBackend } from './backend.js';
import { BlockError, ReadOnlyError } from './errors.js';
import { joinBuffers, totalLength } from '../memory/buffers.js';
import { ImageFile } from './image-file.js';

/** The qcow2 magic "QFI\xfb": what makes a probed raw image look like a qcow2 one. */
const QCOW2_MAGIC = [0x51, 0x46, 0x49, 0xfb];

export interface RawOptions {
  readonly?: boolean;
  serial?: string;
  /**
   * The format was guessed, not given. As QEMU does for probed raw images, a write that would
   * make the first sector look like another format (the qcow2 magic) is refused: otherwise a
   * guest could turn its disk into a qcow2 header naming any host file as backing file, and the
   * next probing open would read that file.
   */
  probed?: boolean;
}

export class RawBackend implements BlockBackend {
  readonly format = 'raw' as const;
  readonly serial?: string;
  private readonly probed: boolean;

  private constructor(private readonly file: ImageFile, opts: RawOptions) {
    this.serial = opts.serial;
    this.probed = opts.probed ?? false;
  }

  static async open(path: string, opts: RawOptions = {}): Promise<RawBackend> {
    const file = await ImageFile.open(path, opts.readonly ?? false);
    return new RawBackend(file, opts);
  }

  get path(): string {
    return this.file.path;
  }

  get sizeBytes(): number {
    return this.file.size;
  }

  get readonly(): boolean {
    return this.file.readonly;
  }

  private check(offset: number, length: number, what: string): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || length < 0 || offset + length > this.sizeBytes) {
      throw new BlockError(`${what} of ${length} bytes at ${offset} is outside the disk (${this.sizeBytes} bytes)`, this.file.path);
    }
  }

  async read(offset: number, dst: Uint8Array): Promise<void> {
    this.check(offset, dst.length, 'read');
    await this.file.read(offset, dst);
  }

  async write(offset: number, src: Uint8Array): Promise<void> {
    if (this.readonly) throw new ReadOnlyError(this.file.path);
    this.check(offset, src.length, 'write');
    if (this.probed && offset < QCOW2_MAGIC.length && src.length > 0) await this.refuseFormatChange(offset, src);
    await this.file.write(offset, src);
  }

  async readv(offset: number, dsts: readonly Uint8Array[]): Promise<void> {
    this.check(offset, totalLength(dsts), 'read');
    await this.file.readv(offset, dsts);
  }

  async writev(offset: number, srcs: readonly Uint8Array[]): Promise<void> {
    if (this.readonly) throw new ReadOnlyError(this.file.path);
    const length = totalLength(srcs);
    this.check(offset, length, 'write');
    if (this.probed && offset < QCOW2_MAGIC.length && length > 0) {
      // The probed-raw rule looks at the first bytes as they will be: do it on one buffer.
      await this.write(offset, joinBuffers(srcs));
      return;
    }
    await this.file.writev(offset, srcs);
  }

  /** The probed-raw rule: after this write, the first bytes must still not be the qcow2 magic. */
  private async refuseFormatChange(offset: number, src: Uint8Array): Promise<void> {
    const head = await this.file.readNew(0, QCOW2_MAGIC.length);
    head.set(src.subarray(0, QCOW2_MAGIC.length - offset), offset);
    if (QCOW2_MAGIC.every((b, i) => head[i] === b)) {
      throw new BlockError(
        'refusing a write that would put a qcow2 header into sector 0 of a raw image whose format was probed ' +
          '(give format=raw explicitly to allow it)',
        this.file.path,
      );
    }
  }

  async flush(): Promise<void> {
    await this.file.datasync();
  }

  async discard(offset: number, length: number): Promise<void> {
    if (this.readonly) throw new ReadOnlyError(this.file.path);
    this.check(offset, length, 'discard');
    await this.file.zero(offset, length, true);
  }

  async writeZeroes(offset: number, length: number, unmap: boolean): Promise<void> {
    if (this.readonly) throw new ReadOnlyError(this.file.path);
    this.check(offset, length, 'write-zeroes');
    await this.file.zero(offset, length, unmap);
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}
