import type { GuestOffloads, NetBackend } from '../../src/devices/virtio/net.js';

/** A NetBackend for tests: records what the guest sends; `inject` plays a received frame. */
export class LoopbackNetBackend implements NetBackend {
  readonly sent: Uint8Array[] = [];
  paused = false;
  offloadsSet?: GuestOffloads;
  onReceive?: (frame: Uint8Array) => void;
  constructor(
    readonly vnetHeader = false,
    readonly offloads = { csum: false, tso: false },
  ) {}
  send(frame: Uint8Array): boolean {
    this.sent.push(frame.slice());
    return true;
  }
  inject(frame: Uint8Array): void {
    this.onReceive?.(frame);
  }
  pause(): void { this.paused = true; }
  resume(): void { this.paused = false; }
  setGuestOffloads(o: GuestOffloads): void { this.offloadsSet = o; }
  async close(): Promise<void> {}
}
