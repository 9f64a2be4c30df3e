// virtio-console with a single port (VIRTIO 1.2 §5.3): queue 0 receiveq (host → guest, device-
// writable buffers), queue 1 transmitq (guest → host, device-readable). Without
// VIRTIO_CONSOLE_F_MULTIPORT the driver binds port 0 as a console: Linux's hvc0.
//
// Offered: VIRTIO_CONSOLE_F_EMERG_WRITE (§5.3.3): a byte written to the emerg_wr config field
// is output at once (usable before the queues are set up).
// Config (§5.3.4): cols le16, rows le16, max_nr_ports le32, emerg_wr le32.
//
// Host input waits (up to CONSOLE_INPUT_LIMIT bytes) until the driver, since its last reset, has
// written to the transmitq once: without MULTIPORT the device is not told when the port is
// opened, and Linux throws away data that arrives between posting its receive buffers and
// setting the port up as hvc0 (virtio_console discards input for a port not yet connected).
// Once the driver writes, the port is set up; Linux then keeps input until hvc0 is read.
import { VIRTIO_ID_CONSOLE, bit } from './constants.js';
import type { VirtioDevice, VirtioDeviceContext } from './device.js';
import { gather, scatter } from '../../memory/buffers.js';

export const VIRTIO_CONSOLE_F_SIZE = 0;
export const VIRTIO_CONSOLE_F_MULTIPORT = 1;
export const VIRTIO_CONSOLE_F_EMERG_WRITE = 2;
const RX = 0;
const TX = 1;
/** Host input kept while the guest has no receive buffers; beyond this it is dropped. */
export const CONSOLE_INPUT_LIMIT = 64 * 1024;
/** Largest transmit buffer copied out in one piece (longer ones are truncated to this). */
const TX_MAX = 64 * 1024;

export interface VirtioConsoleOptions {
  /** Receives what the guest writes to hvc0. */
  onOutput: (bytes: Uint8Array) => void;
  queueSize?: number;
}

export class VirtioConsole implements VirtioDevice {
  readonly name = 'virtio-console';
  readonly deviceType = VIRTIO_ID_CONSOLE;
  readonly pciClass = 0x078000; // simple communication controller, other
  readonly queueSizes: number[];
  readonly features = bit(VIRTIO_CONSOLE_F_EMERG_WRITE);
  readonly configSize = 12;
  private ctx?: VirtioDeviceContext;
  private input: Uint8Array[] = [];
  private inputBytes = 0;
  /** The driver has used the transmitq since its last reset: its console is set up. */
  private guestWrote = false;
  /** Bytes to the host (transmitq and emerg_wr), bytes delivered to the guest, host input dropped. */
  readonly stats = { tx_bytes: 0, rx_bytes: 0, rx_dropped: 0 };

  constructor(private readonly opts: VirtioConsoleOptions) {
    const n = opts.queueSize ?? 128;
    this.queueSizes = [n, n];
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    // cols = rows = 0 (unknown), max_nr_ports = 1, emerg_wr reads 0.
    const cfg = new Uint8Array(12);
    cfg[4] = 1;
    let v = 0;
    for (let i = 0; i < size; i++) v |= (cfg[offset + i] ?? 0) << (8 * i);
    return v >>> 0;
  }

  writeConfig(offset: number, size: 1 | 2 | 4, value: number): void {
    // emerg_wr (offset 8): the low byte is a character to output (§5.3.4).
    if (offset === 8) {
      this.stats.tx_bytes++;
      this.opts.onOutput(Uint8Array.of(value & 0xff));
    }
    void size;
  }

  activate(ctx: VirtioDeviceContext): void {
    this.ctx = ctx;
  }

  reset(): void {
    this.ctx = undefined;
    this.guestWrote = false;
  }

  /** Host input for the guest (keyboard); delivered when the guest has receive buffers. */
  receive(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    const room = CONSOLE_INPUT_LIMIT - this.inputBytes;
    if (room <= 0) {
      this.stats.rx_dropped += bytes.length;
      return;
    }
    const take = bytes.length > room ? bytes.subarray(0, room) : bytes;
    this.stats.rx_dropped += bytes.length - take.length;
    this.input.push(take.slice());
    this.inputBytes += take.length;
    // Started by the host, not a guest kick: a bad ring must not throw into the caller.
    try {
      this.fillReceive();
    } catch (e) {
      this.ctx?.fail(e instanceof Error ? e.message : String(e));
    }
  }

  private fillReceive(): void {
    const ctx = this.ctx;
    if (!ctx?.alive || !this.guestWrote) return;
    const q = ctx.queues[RX];
    while (this.inputBytes > 0) {
      const chain = q.pop();
      if (!chain) return;
      let written = 0;
      while (this.input.length > 0 && written < chain.writableLength) {
        const head = this.input[0];
        const n = scatter(chain.writable, head, written);
        written += n;
        if (n === head.length) this.input.shift();
        else this.input[0] = head.subarray(n);
        this.inputBytes -= n;
      }
      this.stats.rx_bytes += written;
      ctx.complete(RX, chain.head, written);
    }
  }

  queueNotify(q: number): void {
    const ctx = this.ctx;
    if (!ctx) return;
    if (q === RX) {
      this.fillReceive();
      return;
    }
    if (q !== TX) return;
    const queue = ctx.queues[TX];
    for (let chain = queue.pop(); chain; chain = queue.pop()) {
      const n = Math.min(chain.readableLength, TX_MAX);
      if (n > 0) {
        const out = new Uint8Array(n);
        gather(chain.readable, out);
        this.stats.tx_bytes += n;
        this.opts.onOutput(out);
      }
      ctx.complete(TX, chain.head, 0);
      if (!this.guestWrote) {
        this.guestWrote = true;
        this.fillReceive();
      }
    }
  }
}
