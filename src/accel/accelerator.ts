// What the VMM needs from an accelerator, whichever it is (KVM or the software CPU): a sink for
// device interrupts, and a way to run the vCPUs over one guest memory and one device bus until
// the guest stops or the VMM stops it.
import type { CpuState } from './cpu-state.js';
import type { Bus } from '../devices/bus.js';
import type { IrqSink } from '../devices/irq.js';

export type AccelKind = 'kvm' | 'soft';

/** Why the vCPUs stopped running. 'requested' means the VMM asked (a device's power-off, a signal). */
export interface GuestStop {
  reason: 'requested' | 'shutdown' | 'hlt' | 'fail-entry' | 'internal-error' | 'system-event' | 'error';
  message: string;
  vcpuId?: number;
  /** The vCPU's registers when it stopped abnormally, for the dump. */
  state?: CpuState;
  /** KVM system events: 1 shutdown, 2 reset, 3 crash. */
  eventType?: number;
}

export interface AccelStats {
  exits: number;
  ioExits: number;
  mmioExits: number;
  forwarded: number;
}

/**
 * A standing path for one MSI-X vector's messages, for accelerators that can deliver a message
 * they know in advance more cheaply than `signalMsi` (KVM: a GSI route plus an irqfd, so raising
 * the vector is one eventfd write). The device model keeps every MSI-X rule (masking, pending
 * bits, enable): a route only carries the messages the model decided to send.
 */
export interface MsiRoute {
  /**
   * Points the route at this message (nothing to do when it is unchanged). False when the
   * message cannot take the route (an address that is not the local APIC's, no room left, an
   * error): the caller then sends it with `signalMsi`.
   */
  program(address: number, data: number): boolean;
  /** Sends the programmed message; false when it could not (the caller falls back to `signalMsi`). */
  signal(): boolean;
  /** Gives the route's resources back (MSI-X disabled, device reset). The route is dead afterwards. */
  release(): void;
}

/** Message-signalled interrupts (PCI MSI/MSI-X): the device writes `data` to `address`. */
export interface MsiSink {
  /** `address` is the 64-bit message address (0xFEExxxxx for x86 LAPICs), as a number. */
  signalMsi(address: number, data: number): void;
  /** A route for one vector, when this accelerator has a faster path than `signalMsi`; undefined when not (or none left). */
  openRoute?(): MsiRoute | undefined;
}

export interface Accelerator {
  readonly kind: AccelKind;
  readonly irq: IrqSink;
  readonly msi: MsiSink;
  /** Starts every vCPU (vCPU 0 from `boot`, the others waiting for INIT/SIPI) and resolves when they have all stopped. */
  run(bus: Bus, boot: CpuState): Promise<GuestStop>;
  /** Asks every vCPU to stop; `run` then resolves (with 'requested' unless a vCPU stopped for another reason first). */
  stop(): void;
  pause(): void;
  resume(): void;
  stats(): AccelStats;
  /** Releases host resources (fds, mappings) after `run` has resolved. */
  close(): void;
}
