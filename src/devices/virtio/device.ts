// What a virtio device type (block, net, console, entropy) implements, independent of the
// transport (VIRTIO 1.2 §2 "Basic Facilities of a Virtio Device"), and what the transport gives
// it while the driver has it running.
import type { GuestMemory } from '../../memory/guest-memory.js';
import type { SplitQueue } from './queue.js';

export interface VirtioDeviceContext {
  readonly mem: GuestMemory;
  readonly queues: readonly SplitQueue[];
  /** Features the driver accepted (device-specific and reserved bits). */
  readonly features: bigint;
  /** False once the device was reset or failed: late async completions must then be dropped. */
  readonly alive: boolean;
  /**
   * Return chain `head` of queue `q` with `len` bytes written; the interrupt (if the driver
   * wants one) is sent once per microtask for all completions of that turn. No-op when !alive.
   */
  complete(q: number, head: number, len: number): void;
  /** Tell the driver the device configuration changed (config_generation bumps). */
  configChanged(): void;
  /**
   * The driver gave the device something it cannot work with: set DEVICE_NEEDS_RESET, notify
   * the driver, stop processing queues (§2.1.1, §2.1.2).
   */
  fail(reason: string): void;
  log(line: string): void;
}

export interface VirtioDevice {
  readonly name: string;
  /** Device ID (§5). */
  readonly deviceType: number;
  /** 24-bit PCI class code to present. */
  readonly pciClass: number;
  /** Maximum size of each virtqueue (the driver may choose smaller powers of two). */
  readonly queueSizes: readonly number[];
  /** Device-specific feature bits offered (the transport adds VERSION_1, INDIRECT_DESC, EVENT_IDX). */
  readonly features: bigint;
  /** Bytes of device-specific configuration (§4.1.4.6); 0 for none. */
  readonly configSize: number;
  readConfig(offset: number, size: 1 | 2 | 4): number;
  writeConfig(offset: number, size: 1 | 2 | 4, value: number): void;
  /** The driver set DRIVER_OK: start serving the queues through `ctx`. */
  activate(ctx: VirtioDeviceContext): void;
  /** The driver notified queue `q` (also called once per ready queue at activation). May throw VirtqueueError. */
  queueNotify(q: number): void;
  /** Device reset: forget in-flight requests (their completions go to a dead context). */
  reset(): void;
  /** Release host resources (files, sockets). */
  close?(): Promise<void>;
}
