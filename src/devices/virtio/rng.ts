// virtio-rng, the entropy device (VIRTIO 1.2 §5.4): one queue (requestq) of device-writable
// buffers, which the device fills with random bytes from the host's CSPRNG
// (crypto.randomFillSync: the OS's getrandom). No feature bits, no configuration.
import { randomFillSync } from 'node:crypto';
import { VIRTIO_ID_RNG } from './constants.js';
import type { VirtioDevice, VirtioDeviceContext } from './device.js';

/** Bytes filled per request at most: keeps one request from stalling the device thread. */
export const RNG_MAX_PER_REQUEST = 64 * 1024;

export class VirtioRng implements VirtioDevice {
  readonly name = 'virtio-rng';
  readonly deviceType = VIRTIO_ID_RNG;
  readonly pciClass = 0xff0000; // "device does not fit any defined class"
  readonly queueSizes = [256];
  readonly features = 0n;
  readonly configSize = 0;
  private ctx?: VirtioDeviceContext;
  bytesServed = 0;

  constructor(private readonly fill: (b: Uint8Array) => void = (b) => { randomFillSync(b); }) {}

  readConfig(): number { return 0; }
  writeConfig(): void {}
  activate(ctx: VirtioDeviceContext): void { this.ctx = ctx; }
  reset(): void { this.ctx = undefined; }

  queueNotify(q: number): void {
    const ctx = this.ctx;
    if (!ctx || q !== 0) return;
    const queue = ctx.queues[0];
    for (let chain = queue.pop(); chain; chain = queue.pop()) {
      let left = RNG_MAX_PER_REQUEST;
      let written = 0;
      for (const seg of chain.writable) {
        if (left === 0) break;
        const part = seg.length > left ? seg.subarray(0, left) : seg;
        this.fill(part);
        written += part.length;
        left -= part.length;
      }
      this.bytesServed += written;
      ctx.complete(0, chain.head, written);
    }
  }
}
