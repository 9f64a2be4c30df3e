// One stream of guest output (a serial port's or the virtio console's) on its way to the host:
// bytes produced during one event-loop turn are handed to the listeners as one batch (writing
// byte by byte costs a system call per byte), and the newest bytes are kept for `recent()`.
// A device may give single bytes (a UART's transmit) or whole buffers (a virtqueue's); the
// order between the two is kept.

export class GuestOutput {
  /** Bytes handed to the listeners so far. */
  total = 0;
  private chunks: Uint8Array[] = [];
  private bytes: number[] = [];
  private scheduled = false;
  private readonly listeners = new Set<(bytes: Uint8Array) => void>();
  private tail: Buffer[] = [];
  private tailBytes = 0;

  constructor(private readonly tailLimit = 64 * 1024) {}

  /** One byte from the guest (the batch goes out on a later turn, or at `flush`). */
  pushByte(byte: number): void {
    this.bytes.push(byte);
    this.schedule();
  }

  /** Bytes from the guest; copied, so the caller may reuse its buffer. */
  push(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.cutBytes();
    this.chunks.push(bytes.slice());
    this.schedule();
  }

  /** Listeners get every batch from now on, in order; returns a function that unsubscribes. */
  onData(listener: (bytes: Uint8Array) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The most recent output (up to the tail limit, rounded up to whole batches). */
  recent(): Buffer {
    return Buffer.concat(this.tail);
  }

  /** Hands what is pending to the listeners now. */
  flush(): void {
    this.cutBytes();
    if (this.chunks.length === 0) return;
    const out = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    this.chunks = [];
    this.total += out.length;
    this.tail.push(Buffer.from(out.buffer, out.byteOffset, out.length));
    this.tailBytes += out.length;
    while (this.tailBytes - this.tail[0].length >= this.tailLimit) this.tailBytes -= this.tail.shift()!.length;
    for (const l of this.listeners) l(out);
  }

  private cutBytes(): void {
    if (this.bytes.length === 0) return;
    this.chunks.push(Uint8Array.from(this.bytes));
    this.bytes = [];
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }
}
