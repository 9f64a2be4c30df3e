// The PCI root: bus 0 behind a host bridge, reached through configuration mechanism #1
// (ports 0xCF8/0xCFC, PCI Local Bus 3.0 §3.2.2.3.2) and through ECAM (the enhanced configuration
// access mechanism, PCI Express Base 3.0 §7.2.2; announced by the ACPI MCFG table, PCI Firmware
// Specification 3.2 §4.1.2). It also places BARs in the MMIO hole the way firmware would, maps
// them on the machine's Bus while the Command register enables decoding, and routes INTx pins to
// IOAPIC GSIs (wire-OR per line, since lines are shared and level-triggered).
//
// Guest mistakes (a config access to a missing device, a BAR moved on top of another device,
// misaligned accesses) are never fatal: reads give all ones, writes are dropped, and a BAR that
// cannot be mapped stays unmapped (logged once).
import { BusConflictError, type Bus, type MmioDevice, type PioDevice } from '../bus.js';
import type { IrqSink } from '../irq.js';
import { readLanes, writeLanes } from '../legacy/byte-lanes.js';
import {
  HOST_BRIDGE_CLASS, HOST_BRIDGE_DEVICE_ID, HOST_BRIDGE_VENDOR_ID, PCI_CONFIG_ADDRESS_PORT, PCI_CONFIG_DATA_PORT,
  PCI_ECAM_BASE, PCI_ECAM_SIZE, PCI_IO_WINDOW_BASE, PCI_IO_WINDOW_SIZE, PCI_MMIO_WINDOW_BASE, PCI_MMIO_WINDOW_SIZE,
  PCI_SLOTS, intxGsi,
} from './layout.js';
import {
  PCI_CFG_SIZE, PCI_COMMAND_IO, PCI_COMMAND_MEMORY, PciDevice, type BarDef,
} from './pci-device.js';

/** The host bridge function at 00:00.0 (see layout.ts for the IDs). */
export class PciHostBridge extends PciDevice {
  constructor() {
    super('pci-host-bridge', { vendorId: HOST_BRIDGE_VENDOR_ID, deviceId: HOST_BRIDGE_DEVICE_ID, classCode: HOST_BRIDGE_CLASS });
  }
}

/** A bump allocator with natural alignment, for BAR placement in a window. */
export class RangeAllocator {
  private next: number;
  constructor(readonly base: number, readonly size: number) {
    this.next = base;
  }
  /** Returns the allocated base, or undefined when the window is full. `size` is a power of two. */
  alloc(size: number): number | undefined {
    const addr = Math.ceil(this.next / size) * size;
    if (addr + size > this.base + this.size) return undefined;
    this.next = addr + size;
    return addr;
  }
}

/** One BAR's claim on the machine bus: forwards to the device's handler. */
class BarRegion implements MmioDevice, PioDevice {
  readonly name: string;
  mappedAt: number | undefined;
  constructor(dev: PciDevice, readonly def: BarDef) {
    this.name = `${dev.name}-bar${def.index}`;
  }
  mmioRead(offset: number, size: 1 | 2 | 4): number { return this.def.handler.read(offset, size); }
  mmioWrite(offset: number, size: 1 | 2 | 4, value: number): void { this.def.handler.write(offset, size, value); }
  pioRead(offset: number, size: 1 | 2 | 4): number { return this.def.handler.read(offset, size); }
  pioWrite(offset: number, size: 1 | 2 | 4, value: number): void { this.def.handler.write(offset, size, value); }
}

interface Slot {
  readonly dev: PciDevice;
  readonly slot: number;
  readonly regions: BarRegion[];
}

export interface PciRootOptions {
  bus: Bus;
  irq: IrqSink;
  log?: (line: string) => void;
  /** Default: PCI_MMIO_WINDOW_BASE/SIZE. */
  mmioWindow?: { base: number; size: number };
}

/** BAR addresses above this are never mapped (beyond what a double holds exactly, and beyond x86's 52-bit physical addresses). */
const MAX_BAR_END = 2 ** 52;

const ALL_ONES = (size: number): number => (size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff);

export class PciRoot {
  readonly hostBridge = new PciHostBridge();
  private readonly slots: (Slot | undefined)[] = new Array<Slot | undefined>(PCI_SLOTS).fill(undefined);
  private readonly bus: Bus;
  private readonly irq: IrqSink;
  private readonly log: (line: string) => void;
  private readonly mmioAlloc: RangeAllocator;
  private readonly ioAlloc = new RangeAllocator(PCI_IO_WINDOW_BASE, PCI_IO_WINDOW_SIZE);
  /** How many functions assert each GSI (wire-OR of shared level-triggered lines). */
  private readonly gsiAsserted = new Map<number, number>();
  private readonly warned = new Set<string>();
  /** CONFIG_ADDRESS (0xCF8) as last written with a dword access. */
  private configAddress = 0;
  /** Count of config accesses (reads + writes) for stats/tests. */
  configAccesses = 0;

  constructor(opts: PciRootOptions) {
    this.bus = opts.bus;
    this.irq = opts.irq;
    this.log = opts.log ?? (() => {});
    const w = opts.mmioWindow ?? { base: PCI_MMIO_WINDOW_BASE, size: PCI_MMIO_WINDOW_SIZE };
    this.mmioAlloc = new RangeAllocator(w.base, w.size);
    this.attach(this.hostBridge, 0);
  }

  /** Attached functions with their slot numbers. */
  devices(): { slot: number; dev: PciDevice }[] {
    return this.slots.filter((s): s is Slot => !!s).map((s) => ({ slot: s.slot, dev: s.dev }));
  }

  /**
   * Put `dev` in a slot of bus 0 (the first free one unless given), place its BARs in the
   * windows (largest first, naturally aligned, as firmware does), connect its INTx pin (if it
   * has one) to its GSI. Decoding stays off until the guest sets the Command register.
   */
  attach(dev: PciDevice, slot?: number): number {
    const s = slot ?? this.slots.findIndex((x, i) => i > 0 && !x);
    if (s === undefined || s < 0 || s >= PCI_SLOTS || this.slots[s]) throw new Error(`no free PCI slot for ${dev.name}`);
    const regions: BarRegion[] = [];
    const bars = dev.bars.filter((b): b is BarDef => !!b).sort((a, b) => b.size - a.size);
    for (const def of bars) {
      const addr = def.kind === 'io' ? this.ioAlloc.alloc(def.size) : this.mmioAlloc.alloc(def.size);
      if (addr === undefined) throw new Error(`PCI ${def.kind === 'io' ? 'I/O' : 'memory'} window is full (${dev.name} BAR ${def.index})`);
      dev.setBarAddress(def.index, addr);
      regions.push(new BarRegion(dev, def));
    }
    const entry: Slot = { dev, slot: s, regions };
    this.slots[s] = entry;
    dev.onDecodeChange = () => this.updateMappings(entry);
    if (dev.interruptPin >= 1 && dev.interruptPin <= 4) {
      const gsi = intxGsi(s, dev.interruptPin - 1);
      let level = false;
      dev.connectIntx({ setIntx: (l) => { if (l !== level) { level = l; this.driveGsi(gsi, l); } } }, gsi);
    }
    return s;
  }

  private driveGsi(gsi: number, assert: boolean): void {
    const before = this.gsiAsserted.get(gsi) ?? 0;
    const after = Math.max(0, before + (assert ? 1 : -1));
    this.gsiAsserted.set(gsi, after);
    if ((before > 0) !== (after > 0)) this.irq.setIrq(gsi, after > 0);
  }

  private warnOnce(key: string, msg: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log(msg);
  }

  /** Map/unmap each BAR of `entry` according to its address and the Command register. */
  private updateMappings(entry: Slot): void {
    const cmd = entry.dev.command;
    for (const r of entry.regions) {
      const io = r.def.kind === 'io';
      const enabled = (cmd & (io ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY)) !== 0;
      const addr = entry.dev.barAddress(r.def.index) ?? 0;
      const limit = io ? 0x10000 : MAX_BAR_END;
      const want = enabled && addr !== 0 && addr + r.def.size <= limit ? addr : undefined;
      if (want === r.mappedAt) continue;
      if (r.mappedAt !== undefined) {
        if (io) this.bus.removePio(r);
        else this.bus.removeMmio(r);
        r.mappedAt = undefined;
        entry.dev.barMapped(r.def.index, undefined);
      }
      if (want === undefined) continue;
      try {
        if (io) this.bus.addPio(want, r.def.size, r);
        else this.bus.addMmio(want, r.def.size, r);
        r.mappedAt = want;
        entry.dev.barMapped(r.def.index, want);
      } catch (e) {
        if (!(e instanceof BusConflictError)) throw e;
        // The guest put a BAR on top of something else: real hardware would decode both and
        // the result is undefined; we leave this BAR unmapped until it is moved.
        this.warnOnce(`${r.name}@${want}`, `pci: ${r.name} at 0x${want.toString(16)} overlaps another device; left unmapped`);
      }
    }
  }

  // ---- configuration space access ----

  /** A config read; `reg` is the byte offset (0-4095). Missing functions read as all ones. */
  configRead(busNo: number, devNo: number, fn: number, reg: number, size: 1 | 2 | 4): number {
    this.configAccesses++;
    const entry = busNo === 0 && fn === 0 ? this.slots[devNo] : undefined;
    if (!entry) return ALL_ONES(size);
    // Extended configuration space (0x100-0xFFF, ECAM only): none of our functions has any, and
    // a zero header at 0x100 ends the (empty) extended capability list (PCIe 3.0 §7.9.1).
    if (reg >= PCI_CFG_SIZE) return 0;
    if (reg % size !== 0 || reg + size > PCI_CFG_SIZE) {
      return readLanes(size, (i) => (reg + i < PCI_CFG_SIZE ? entry.dev.configRead(reg + i, 1) : 0));
    }
    return entry.dev.configRead(reg, size);
  }

  configWrite(busNo: number, devNo: number, fn: number, reg: number, size: 1 | 2 | 4, value: number): void {
    this.configAccesses++;
    const entry = busNo === 0 && fn === 0 ? this.slots[devNo] : undefined;
    if (!entry || reg >= PCI_CFG_SIZE) return;
    if (reg % size !== 0 || reg + size > PCI_CFG_SIZE) {
      writeLanes(size, value, (i, b) => { if (reg + i < PCI_CFG_SIZE) entry.dev.configWrite(reg + i, 1, b); });
      return;
    }
    entry.dev.configWrite(reg, size, value);
  }

  /**
   * Claim the configuration ports and the ECAM window on `bus`. 0xCF9 (inside the
   * CONFIG_ADDRESS dword) is the PIIX/ICH reset control register: only dword accesses at 0xCF8
   * reach CONFIG_ADDRESS (PCI 3.0 §3.2.2.3.2), so the claims are 0xCF8 (1 port: a dword access
   * starting there arrives whole), 0xCFA-0xCFB, and 0xCFC-0xCFF, which leaves byte accesses to
   * 0xCF9 to whoever claims it. If `resetControl` is given, it is claimed at 0xCF9 here, and the
   * byte lane at 0xCF9 of a wider access at 0xCF8 is forwarded to it.
   */
  attachToBus(resetControl?: PioDevice): void {
    const addressPort: PioDevice = {
      name: 'pci-config-address',
      pioRead: (offset, size) => {
        if (offset === 0 && size === 4) return this.configAddress;
        return readLanes(size, (i) => (offset + i === 1 && resetControl ? resetControl.pioRead(0, 1) : 0xff));
      },
      pioWrite: (offset, size, value) => {
        if (offset === 0 && size === 4) {
          // Bits 1:0 are reserved and read as 0; bits 30:24 reserved (kept as written).
          this.configAddress = (value & 0xfffffffc) >>> 0;
          return;
        }
        // Non-dword accesses are plain I/O cycles to other registers (PIIX: 0xCF9 reset control).
        writeLanes(size, value, (i, b) => { if (offset + i === 1 && resetControl) resetControl.pioWrite(0, 1, b); });
      },
    };
    const upperAddress: PioDevice = {
      name: 'pci-config-address-hi',
      pioRead: (_o, size) => ALL_ONES(size),
      pioWrite: () => {},
    };
    const dataPort: PioDevice = {
      name: 'pci-config-data',
      pioRead: (offset, size) => {
        const a = this.configAddress;
        if (!(a & 0x80000000)) return ALL_ONES(size);
        if (offset + size > 4) return readLanes(size, (i) => (offset + i < 4 ? this.conf1(a, offset + i, 1) : 0xff));
        return this.conf1(a, offset, size);
      },
      pioWrite: (offset, size, value) => {
        const a = this.configAddress;
        if (!(a & 0x80000000)) return;
        if (offset + size > 4) {
          writeLanes(size, value, (i, b) => { if (offset + i < 4) this.conf1(a, offset + i, 1, b); });
          return;
        }
        this.conf1(a, offset, size, value);
      },
    };
    this.bus.addPio(PCI_CONFIG_ADDRESS_PORT, 1, addressPort);
    if (resetControl) this.bus.addPio(PCI_CONFIG_ADDRESS_PORT + 1, 1, resetControl);
    this.bus.addPio(PCI_CONFIG_ADDRESS_PORT + 2, 2, upperAddress);
    this.bus.addPio(PCI_CONFIG_DATA_PORT, 4, dataPort);
    const ecam: MmioDevice = {
      name: 'pci-ecam',
      mmioRead: (offset, size) => this.configRead(offset >>> 20, (offset >>> 15) & 31, (offset >>> 12) & 7, offset & 0xfff, size),
      mmioWrite: (offset, size, value) => this.configWrite(offset >>> 20, (offset >>> 15) & 31, (offset >>> 12) & 7, offset & 0xfff, size, value),
    };
    this.bus.addMmio(PCI_ECAM_BASE, PCI_ECAM_SIZE, ecam);
  }

  /** A mechanism #1 access: CONFIG_ADDRESS bits 23:16 bus, 15:11 device, 10:8 function, 7:2 register. */
  private conf1(addr: number, byteOffset: number, size: 1 | 2 | 4, value?: number): number {
    const busNo = (addr >>> 16) & 0xff;
    const devNo = (addr >>> 11) & 0x1f;
    const fn = (addr >>> 8) & 0x7;
    const reg = (addr & 0xfc) + byteOffset;
    if (value === undefined) return this.configRead(busNo, devNo, fn, reg, size);
    this.configWrite(busNo, devNo, fn, reg, size, value);
    return 0;
  }

  /** Machine reset: every function's Command register cleared (decoding off, INTx low). */
  reset(): void {
    for (const s of this.slots) s?.dev.resetConfig();
  }
}
