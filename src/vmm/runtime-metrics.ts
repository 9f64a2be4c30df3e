// Per-VM counters: guest accesses and bytes per device, interrupts per GSI. `Vm` builds its
// machine on a MeteredBus and hands devices a CountingIrqSink, so every device is counted,
// whoever registers it, at the cost of one extra function call per access (a KVM exit costs
// ~12 µs; the call, nanoseconds). The numbers reach users through `GET /metrics` and
// `tsvm ps --json` (see docs/API.md for the field meanings).
import { Bus, type MmioDevice, type PioDevice } from '../devices/bus.js';
import type { IrqSink } from '../devices/irq.js';

export interface DeviceCounters {
  reads: number;
  writes: number;
  read_bytes: number;
  write_bytes: number;
}

export interface InterruptCounters {
  /** Rising edges (an edge-triggered pulse counts once, a level line each time it goes high). */
  total: number;
  by_gsi: Record<string, number>;
}

/** What `GET /metrics` returns (docs/openapi.json, schema Metrics). */
export interface VmMetrics {
  utc_timestamp_ms: number;
  uptime_ms: number;
  vcpu: {
    /** Exits to the VMM, all reasons (KVM: every KVM_RUN return; the software CPU has none). */
    exits: number;
    exits_io: number;
    exits_mmio: number;
    exits_other: number;
    /** Exits handed from a vCPU thread to the device thread. */
    forwarded: number;
  };
  devices: Record<string, DeviceCounters>;
  bus: { unclaimed: number };
  interrupts: InterruptCounters;
  serial: { tx_bytes: number; rx_bytes: number };
  /** Per virtio device of the current machine: its transport's counters (queue notifications,
   *  interrupts) and the device's own (requests, packets, errors), by device name. */
  virtio: Record<string, Record<string, number>>;
  /** Guest resets survived (the counters above cover all of them). */
  resets: number;
}

interface HasStats { readonly stats?: object }

/** The numeric counters of virtio devices (transport and model), keyed by device name. */
export function virtioCounters(devices: readonly (HasStats & { readonly device: HasStats & { readonly name: string } })[]): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const d of devices) {
    const c: Record<string, number> = {};
    for (const src of [d.stats, d.device.stats]) {
      for (const [k, v] of Object.entries(src ?? {})) if (typeof v === 'number') c[k] = v;
    }
    let key = d.device.name;
    for (let i = 2; key in out; i++) key = `${d.device.name}#${i}`;
    out[key] = c;
  }
  return out;
}

function counters(): DeviceCounters {
  return { reads: 0, writes: 0, read_bytes: 0, write_bytes: 0 };
}

/** A Bus that counts, per device name, the guest's accesses and bytes. Devices are wrapped when
 *  they are added; removing a device by the object it was added with still works. */
export class MeteredBus extends Bus {
  readonly devices: Record<string, DeviceCounters> = {};
  private readonly pioWrapped = new WeakMap<PioDevice, PioDevice>();
  private readonly mmioWrapped = new WeakMap<MmioDevice, MmioDevice>();

  private countersFor(name: string): DeviceCounters {
    return (this.devices[name] ??= counters());
  }

  override addPio(port: number, length: number, device: PioDevice): void {
    let w = this.pioWrapped.get(device);
    if (!w) {
      const c = this.countersFor(device.name);
      w = {
        name: device.name,
        pioRead: (offset, size) => {
          c.reads++;
          c.read_bytes += size;
          return device.pioRead(offset, size);
        },
        pioWrite: (offset, size, value) => {
          c.writes++;
          c.write_bytes += size;
          device.pioWrite(offset, size, value);
        },
      };
      this.pioWrapped.set(device, w);
    }
    super.addPio(port, length, w);
  }

  override addMmio(addr: number, length: number, device: MmioDevice): void {
    let w = this.mmioWrapped.get(device);
    if (!w) {
      const c = this.countersFor(device.name);
      w = {
        name: device.name,
        mmioRead: (offset, size) => {
          c.reads++;
          c.read_bytes += size;
          return device.mmioRead(offset, size);
        },
        mmioWrite: (offset, size, value) => {
          c.writes++;
          c.write_bytes += size;
          device.mmioWrite(offset, size, value);
        },
      };
      this.mmioWrapped.set(device, w);
    }
    super.addMmio(addr, length, w);
  }

  override removePio(device: PioDevice): void {
    super.removePio(this.pioWrapped.get(device) ?? device);
  }

  override removeMmio(device: MmioDevice): void {
    super.removeMmio(this.mmioWrapped.get(device) ?? device);
  }
}

/** Passes interrupt levels on to `inner`, counting rising edges per GSI. */
export class CountingIrqSink implements IrqSink {
  private readonly levels = new Map<number, boolean>();
  constructor(private readonly inner: IrqSink, readonly counts: InterruptCounters) {}

  setIrq(gsi: number, level: boolean): void {
    if (level && !this.levels.get(gsi)) {
      this.counts.total++;
      const k = String(gsi);
      this.counts.by_gsi[k] = (this.counts.by_gsi[k] ?? 0) + 1;
    }
    this.levels.set(gsi, level);
    this.inner.setIrq(gsi, level);
  }
}

/** Adds `from` into `into` (device counters of a machine that a reset replaced). */
export function addDeviceCounters(into: Record<string, DeviceCounters>, from: Record<string, DeviceCounters>): void {
  for (const [name, c] of Object.entries(from)) {
    const t = (into[name] ??= counters());
    t.reads += c.reads;
    t.writes += c.writes;
    t.read_bytes += c.read_bytes;
    t.write_bytes += c.write_bytes;
  }
}
