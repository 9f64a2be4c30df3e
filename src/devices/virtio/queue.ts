// The split virtqueue (VIRTIO 1.2 §2.7), device side, with every guest-supplied number checked.
//
// Layout in guest memory (§2.7, "Split Virtqueues"):
//   descriptor table  16 bytes x size, 16-byte aligned: addr u64, len u32, flags u16, next u16
//   available ring    flags u16, idx u16, ring[size] u16, used_event u16 (EVENT_IDX), 2-aligned
//   used ring         flags u16, idx u16, ring[size] {id u32, len u32}, avail_event u16, 4-aligned
//
// Validation (the guest is untrusted; nothing here may touch memory outside guest RAM, loop, or
// throw anything but VirtqueueError):
// - ring addresses and sizes are checked once, when the queue is enabled (§4.1.4.3.2: the driver
//   configures them before queue_enable), against guest RAM; the used ring must be writable RAM;
// - the available index may run ahead of the device by at most `size` (§2.7.13.3);
// - a head or next index must be below the table's entry count;
// - a chain is walked at most `size` steps (so a loop is found), an indirect table at most its
//   own entry count, and an indirect table may have at most `size` entries (§2.7.5.3.1);
// - indirect descriptors need VIRTIO_F_RING_INDIRECT_DESC; an indirect descriptor inside an
//   indirect table, or one with NEXT also set, is refused (§2.7.5.3.1, driver requirements);
//   its length must be a non-zero multiple of 16;
// - every buffer [addr, addr+len) must be RAM (device-writable ones: writable RAM, not ROM);
// - device-readable descriptors must come before device-writable ones (§2.7.4.2).
// Zero-length buffers are allowed and contribute nothing.
import type { GuestMemory } from '../../memory/guest-memory.js';
import {
  VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
} from './constants.js';

export class VirtqueueError extends Error {}

/** One buffer of a chain: a view into guest RAM (already validated). */
export type Segment = Uint8Array;

export interface DescChain {
  /** Head descriptor index: what goes back in the used ring. */
  readonly head: number;
  readonly readable: Segment[];
  readonly writable: Segment[];
  readonly readableLength: number;
  readonly writableLength: number;
}

const DESC_SIZE = 16;

export class SplitQueue {
  // Configuration (written by the driver through the transport before enabling).
  size: number;
  descAddr = 0;
  availAddr = 0;
  usedAddr = 0;
  msixVector = 0xffff;
  ready = false;

  // Negotiated features that change the ring format.
  private indirect = false;
  private eventIdx = false;

  // State.
  private descOff = 0;
  private availOff = 0;
  private usedOff = 0;
  /** Next available-ring index the device will read. */
  lastAvail = 0;
  /** The device's used index (published to the guest after each push). */
  usedIdx = 0;
  private signalledUsed = 0;
  private signalledValid = false;
  private readonly u16?: Uint16Array;
  private readonly u16Base = 0;
  /** Chains handed out and not yet returned (for device reset bookkeeping and fuzz checks). */
  inFlight = 0;

  constructor(
    private readonly mem: GuestMemory,
    readonly index: number,
    readonly maxSize: number,
  ) {
    this.size = maxSize;
    // Atomic 16-bit accesses to the ring indexes give the ordering the virtio memory model needs
    // between the guest's vCPU threads and this thread (§2.7.13 and §2.7.7: the index is
    // published after the entries; ours too, and the suppression fields are read after).
    if (mem.base % 2 === 0) {
      this.u16 = new Uint16Array(mem.buffer, mem.base, Math.floor(mem.bytes.length / 2));
      this.u16Base = 0;
    }
  }

  private load16(off: number): number {
    if (this.u16 && off % 2 === 0) return Atomics.load(this.u16, (off >> 1) + this.u16Base);
    return this.mem.view.getUint16(off, true);
  }

  private store16(off: number, v: number): void {
    if (this.u16 && off % 2 === 0) Atomics.store(this.u16, (off >> 1) + this.u16Base, v);
    else this.mem.view.setUint16(off, v, true);
  }

  /** Back to the state after device reset (§4.1.4.3: queue_enable 0, size = max, no vector). */
  reset(): void {
    this.size = this.maxSize;
    this.descAddr = this.availAddr = this.usedAddr = 0;
    this.msixVector = 0xffff;
    this.ready = false;
    this.lastAvail = this.usedIdx = 0;
    this.signalledUsed = 0;
    this.signalledValid = false;
    this.inFlight = 0;
  }

  /** Check the configuration and start using the rings. Throws VirtqueueError if they are unusable. */
  enable(features: { indirect: boolean; eventIdx: boolean }): void {
    const n = this.size;
    if (!Number.isInteger(n) || n < 1 || n > this.maxSize || (n & (n - 1)) !== 0) {
      throw new VirtqueueError(`queue ${this.index}: size ${n} is not a power of two up to ${this.maxSize}`);
    }
    if (this.descAddr % 16 !== 0 || this.availAddr % 2 !== 0 || this.usedAddr % 4 !== 0) {
      throw new VirtqueueError(`queue ${this.index}: misaligned rings`);
    }
    const descOff = this.mem.gpaToOffset(this.descAddr, DESC_SIZE * n);
    const availOff = this.mem.gpaToOffset(this.availAddr, 6 + 2 * n);
    const usedOff = this.mem.writableOffset(this.usedAddr, 6 + 8 * n);
    if (descOff < 0 || availOff < 0 || usedOff < 0) throw new VirtqueueError(`queue ${this.index}: rings are not in guest RAM`);
    this.descOff = descOff;
    this.availOff = availOff;
    this.usedOff = usedOff;
    this.indirect = features.indirect;
    this.eventIdx = features.eventIdx;
    this.lastAvail = 0;
    this.usedIdx = 0;
    this.signalledUsed = 0;
    this.signalledValid = false;
    this.ready = true;
  }

  /** Buffers the driver has made available that the device has not taken. */
  pending(): number {
    if (!this.ready) return 0;
    const n = (this.load16(this.availOff + 2) - this.lastAvail) & 0xffff;
    if (n > this.size) throw new VirtqueueError(`queue ${this.index}: available index ran ${n} entries ahead (size ${this.size})`);
    return n;
  }

  /**
   * Take the next available chain, or undefined when there is none. With EVENT_IDX, an empty
   * queue re-arms avail_event and checks once more, closing the race with a driver that adds a
   * buffer meanwhile (§2.7.10).
   */
  pop(): DescChain | undefined {
    if (!this.ready) return undefined;
    let n = this.pending();
    if (n === 0) {
      if (!this.eventIdx) return undefined;
      this.store16(this.usedOff + 4 + 8 * this.size, this.lastAvail);
      n = this.pending();
      if (n === 0) return undefined;
    }
    const head = this.mem.view.getUint16(this.availOff + 4 + 2 * (this.lastAvail % this.size), true);
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    if (this.eventIdx) this.store16(this.usedOff + 4 + 8 * this.size, this.lastAvail);
    const chain = this.walk(head);
    this.inFlight++;
    return chain;
  }

  /** Give back the last `n` chains popped, unused (the device could not handle them yet). */
  unpop(n = 1): void {
    this.lastAvail = (this.lastAvail - n) & 0xffff;
    this.inFlight = Math.max(0, this.inFlight - n);
    if (this.eventIdx) this.store16(this.usedOff + 4 + 8 * this.size, this.lastAvail);
  }

  private walk(head: number): DescChain {
    const v = this.mem.view;
    const readable: Segment[] = [];
    const writable: Segment[] = [];
    let readableLength = 0;
    let writableLength = 0;
    let tableOff = this.descOff;
    let tableCount = this.size;
    let inIndirect = false;
    let idx = head;
    let steps = 0;
    let buffers = 0;
    for (;;) {
      if (idx >= tableCount) throw new VirtqueueError(`queue ${this.index}: descriptor index ${idx} outside a table of ${tableCount}`);
      if (++steps > tableCount) throw new VirtqueueError(`queue ${this.index}: descriptor chain from ${head} loops or is longer than ${tableCount}`);
      const d = tableOff + DESC_SIZE * idx;
      const lo = v.getUint32(d, true);
      const hi = v.getUint32(d + 4, true);
      const len = v.getUint32(d + 8, true);
      const flags = v.getUint16(d + 12, true);
      const next = v.getUint16(d + 14, true);
      // Addresses beyond 2^52 are beyond any guest RAM (and beyond exact doubles): reject.
      if (hi >= 0x100000) throw new VirtqueueError(`queue ${this.index}: descriptor address beyond 2^52`);
      const addr = hi * 2 ** 32 + lo;
      if (flags & VIRTQ_DESC_F_INDIRECT) {
        if (!this.indirect) throw new VirtqueueError(`queue ${this.index}: indirect descriptor without VIRTIO_F_RING_INDIRECT_DESC`);
        if (inIndirect) throw new VirtqueueError(`queue ${this.index}: indirect descriptor inside an indirect table`);
        if (flags & VIRTQ_DESC_F_NEXT) throw new VirtqueueError(`queue ${this.index}: indirect descriptor with NEXT set`);
        if (len === 0 || len % DESC_SIZE !== 0) throw new VirtqueueError(`queue ${this.index}: indirect table length ${len}`);
        const count = len / DESC_SIZE;
        if (count > this.size) throw new VirtqueueError(`queue ${this.index}: indirect table of ${count} entries exceeds the queue size`);
        const off = this.mem.gpaToOffset(addr, len);
        if (off < 0) throw new VirtqueueError(`queue ${this.index}: indirect table outside guest RAM`);
        tableOff = off;
        tableCount = count;
        inIndirect = true;
        idx = 0;
        steps = 0;
        continue;
      }
      if (++buffers > this.size) throw new VirtqueueError(`queue ${this.index}: chain has more than ${this.size} buffers`);
      if (len > 0) {
        if (flags & VIRTQ_DESC_F_WRITE) {
          const off = this.mem.writableOffset(addr, len);
          if (off < 0) throw new VirtqueueError(`queue ${this.index}: device-writable buffer 0x${addr.toString(16)}+${len} outside writable guest RAM`);
          writable.push(this.mem.bytes.subarray(off, off + len));
          writableLength += len;
        } else {
          if (writable.length > 0) throw new VirtqueueError(`queue ${this.index}: device-readable buffer after a device-writable one`);
          const off = this.mem.gpaToOffset(addr, len);
          if (off < 0) throw new VirtqueueError(`queue ${this.index}: buffer 0x${addr.toString(16)}+${len} outside guest RAM`);
          readable.push(this.mem.bytes.subarray(off, off + len));
          readableLength += len;
        }
      } else if (flags & VIRTQ_DESC_F_WRITE) {
        // An empty writable buffer still marks the start of the writable part.
        writable.push(this.mem.bytes.subarray(0, 0));
      }
      if (!(flags & VIRTQ_DESC_F_NEXT)) break;
      idx = next;
    }
    return { head, readable, writable, readableLength, writableLength };
  }

  /** Return chain `head` with `len` bytes written to its device-writable buffers (§2.7.8). */
  push(head: number, len: number): void {
    if (!this.ready) return;
    const e = this.usedOff + 4 + 8 * (this.usedIdx % this.size);
    this.mem.view.setUint32(e, head, true);
    this.mem.view.setUint32(e + 4, len >>> 0, true);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    // Publish the index after the element (release order: an atomic store).
    this.store16(this.usedOff + 2, this.usedIdx);
    if (this.inFlight > 0) this.inFlight--;
  }

  /**
   * Whether the driver wants an interrupt for what was pushed since the last time this said
   * yes or no (§2.7.7.2 and §2.7.10: with EVENT_IDX, when used idx passed used_event;
   * otherwise unless avail.flags has NO_INTERRUPT).
   */
  needsInterrupt(): boolean {
    if (!this.ready) return false;
    if (this.eventIdx) {
      const old = this.signalledUsed;
      const now = this.usedIdx;
      const valid = this.signalledValid;
      this.signalledUsed = now;
      this.signalledValid = true;
      if (!valid) return true;
      const usedEvent = this.load16(this.availOff + 4 + 2 * this.size);
      // vring_need_event (§2.7.10): (u16)(new - event - 1) < (u16)(new - old).
      return ((now - usedEvent - 1) & 0xffff) < ((now - old) & 0xffff);
    }
    return (this.load16(this.availOff) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }
}
