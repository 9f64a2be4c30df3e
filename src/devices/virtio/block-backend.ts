// The contract between virtio-blk and a disk image format (raw, qcow2: src/block/). Offsets and
// lengths are bytes. All methods are asynchronous; the device keeps many requests in flight,
// so implementations must allow concurrent calls and may complete them in any order.
//
// Buffers: `dst`/`src` are often views of guest RAM (a SharedArrayBuffer); implementations read
// into / write from them directly and must not keep them after the promise settles.
//
// Durability: virtio-blk completes a write only after `write` resolved, and a flush request only
// after `flush` resolved; `flush` must make every write that resolved before it durable
// (fdatasync for file-backed images).

export interface BlockBackend {
  readonly sizeBytes: number;
  readonly readonly: boolean;
  /** Up to 20 bytes, returned by VIRTIO_BLK_T_GET_ID. */
  readonly serial?: string;
  read(offset: number, dst: Uint8Array): Promise<void>;
  write(offset: number, src: Uint8Array): Promise<void>;
  /**
   * Optional vectored forms of read/write: the buffers are consecutive ranges of the disk
   * starting at `offset` (the data segments of one request, e.g. one guest page each). One host
   * call (preadv/pwritev) instead of one per buffer. Without them virtio-blk bounces a
   * many-segment request through one buffer and one read/write.
   */
  readv?(offset: number, dsts: readonly Uint8Array[]): Promise<void>;
  writev?(offset: number, srcs: readonly Uint8Array[]): Promise<void>;
  flush(): Promise<void>;
  /** Deallocate a range (reads afterwards may return anything; the device does not promise zeroes). */
  discard?(offset: number, length: number): Promise<void>;
  /** Make a range read as zeroes; `unmap` allows deallocating it. */
  writeZeroes?(offset: number, length: number, unmap: boolean): Promise<void>;
  close(): Promise<void>;
}

/** A disk in memory, for tests: optional artificial latency to exercise out-of-order completion. */
export class MemoryBlockBackend implements BlockBackend {
  readonly data: Uint8Array;
  flushes = 0;
  writes = 0;
  closed = false;
  /** Delay (ms) chosen per operation; default none. */
  latency: (op: 'read' | 'write' | 'flush' | 'discard' | 'zero', offset: number) => number = () => 0;

  constructor(
    readonly sizeBytes: number,
    readonly readonly = false,
    readonly serial?: string,
  ) {
    this.data = new Uint8Array(sizeBytes);
  }

  private async wait(op: 'read' | 'write' | 'flush' | 'discard' | 'zero', offset: number): Promise<void> {
    const ms = this.latency(op, offset);
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
    else await Promise.resolve();
  }

  private check(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || length < 0 || offset + length > this.sizeBytes) {
      throw new RangeError(`access ${offset}+${length} beyond the ${this.sizeBytes}-byte disk`);
    }
  }

  async read(offset: number, dst: Uint8Array): Promise<void> {
    this.check(offset, dst.length);
    await this.wait('read', offset);
    dst.set(this.data.subarray(offset, offset + dst.length));
  }

  async write(offset: number, src: Uint8Array): Promise<void> {
    this.check(offset, src.length);
    if (this.readonly) throw new Error('read-only disk');
    const copy = src.slice();
    await this.wait('write', offset);
    this.data.set(copy, offset);
    this.writes++;
  }

  async flush(): Promise<void> {
    await this.wait('flush', 0);
    this.flushes++;
  }

  async discard(offset: number, length: number): Promise<void> {
    this.check(offset, length);
    await this.wait('discard', offset);
    this.data.fill(0, offset, offset + length);
  }

  async writeZeroes(offset: number, length: number, _unmap: boolean): Promise<void> {
    this.check(offset, length);
    await this.wait('zero', offset);
    this.data.fill(0, offset, offset + length);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
