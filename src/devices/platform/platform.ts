// The interrupt controllers and timers of a PC, assembled for N vCPUs: the 8259 pair (+ ELCR),
// the I/O APIC, one local APIC per vCPU on a shared APIC bus, the 8254 PIT and port 0x61, all
// on one PlatformClock. This is what the software CPU (and later KVM's split irqchip) uses
// where KVM would otherwise provide the in-kernel irqchip and PIT.
//
// Wiring (matches the ACPI MADT the boot code builds): I/O APIC ID 0, GSI base 0, at
// IOAPIC_BASE; local APIC n has APIC ID n, vCPU 0 is the BSP; PIT counter 0 -> GSI 2; the
// 8259's INTR reaches every local APIC's LINT0 (ExtINT) and I/O APIC pin 0.
//
// The local APIC page is per vCPU at one address, but the bus is shared: the device on the bus
// at LAPIC_BASE forwards to the local APIC of `currentCpu`, which the CPU sets before it runs a
// vCPU (the soft CPU runs them one at a time in one thread). `lapicMmio(i)` is vCPU i's own
// device, for a CPU that routes its APIC page itself.

import type { Bus, MmioDevice } from '../bus.js';
import { IOAPIC_BASE, LAPIC_BASE, PIT_GSI } from '../../vmm/platform-layout.js';
import { ApicBus } from './apic-bus.js';
import { PlatformClock } from './clock.js';
import { InterruptRouter } from './interrupt-router.js';
import { IoApic, IOAPIC_MMIO_SIZE } from './ioapic.js';
import { APIC_BUS_HZ, LocalApic } from './lapic.js';
import { PicPair } from './pic8259.js';
import { Pit8254 } from './pit8254.js';
import { SYSTEM_CONTROL_PORT_B, SystemControlPortB } from './system-control-port.js';

export const LAPIC_MMIO_SIZE = 0x1000;
export const PIC_MASTER_PORT = 0x20;
export const PIC_SLAVE_PORT = 0xa0;
export const ELCR_PORT = 0x4d0;
export const PIT_PORT = 0x40;

export interface PlatformInterruptsOptions {
  /** Number of vCPUs (1-255: APIC IDs are 8-bit in xAPIC mode, 0xFF is broadcast). */
  cpus: number;
  clock?: PlatformClock;
  /** When given, every port and MMIO device is attached to it. */
  bus?: Bus;
}

export class PlatformInterrupts {
  readonly clock: PlatformClock;
  readonly apicBus = new ApicBus();
  readonly pic = new PicPair();
  readonly ioapic: IoApic;
  readonly lapics: readonly LocalApic[];
  readonly router: InterruptRouter;
  readonly pit: Pit8254;
  readonly port61: SystemControlPortB;
  /** The vCPU whose local APIC the shared LAPIC_BASE window reaches. */
  currentCpu = 0;
  /** The device for the bus at LAPIC_BASE: forwards to lapics[currentCpu]. */
  readonly lapicWindow: MmioDevice;
  /**
   * Called with a vCPU index when that vCPU may have an interrupt, NMI, INIT or SIPI to take
   * (to wake it from HLT or wait-for-SIPI). A hint: check hasInterrupt() etc. before acting,
   * and never acknowledge from inside the callback. Setting a LocalApic's own onInterrupt
   * replaces this for that vCPU.
   */
  onWake?: (cpuIndex: number) => void;

  constructor(options: PlatformInterruptsOptions) {
    const n = options.cpus;
    if (!Number.isInteger(n) || n < 1 || n > 255) throw new RangeError(`cpus must be 1-255, got ${n}`);
    this.clock = options.clock ?? new PlatformClock();
    this.ioapic = new IoApic(this.apicBus, 0);
    this.apicBus.addEoiListener(this.ioapic);
    const lapics: LocalApic[] = [];
    for (let i = 0; i < n; i++) {
      lapics.push(new LocalApic({ id: i, bus: this.apicBus, clock: this.clock, bsp: i === 0, extInt: this.pic }));
    }
    this.lapics = lapics;
    lapics.forEach((l, i) => {
      l.onInterrupt = () => this.onWake?.(i);
    });
    this.router = new InterruptRouter(this.pic, this.ioapic);
    this.pit = new Pit8254({ clock: this.clock, irq: this.router, gsi: PIT_GSI });
    this.port61 = new SystemControlPortB(this.pit, this.clock);
    this.pic.onIntrChange = (level) => {
      this.ioapic.setIrq(0, level);
      for (const l of this.lapics) l.setLint(0, level);
    };
    this.lapicWindow = {
      name: 'lapic',
      mmioRead: (offset, size) => this.lapics[this.currentCpu]?.mmioRead(offset, size) ?? 0,
      mmioWrite: (offset, size, value) => this.lapics[this.currentCpu]?.mmioWrite(offset, size, value),
    };
    if (options.bus) this.attach(options.bus);
  }

  /** vCPU `cpuIndex`'s own local APIC page. */
  lapicMmio(cpuIndex: number): MmioDevice {
    const l = this.lapics[cpuIndex];
    if (!l) throw new RangeError(`no vCPU ${cpuIndex}`);
    return l;
  }

  attach(bus: Bus): void {
    bus.addPio(PIC_MASTER_PORT, 2, this.pic.masterPorts);
    bus.addPio(PIC_SLAVE_PORT, 2, this.pic.slavePorts);
    bus.addPio(ELCR_PORT, 2, this.pic.elcrPorts);
    bus.addPio(PIT_PORT, 4, this.pit);
    bus.addPio(SYSTEM_CONTROL_PORT_B, 1, this.port61);
    bus.addMmio(IOAPIC_BASE, IOAPIC_MMIO_SIZE, this.ioapic);
    bus.addMmio(LAPIC_BASE, LAPIC_MMIO_SIZE, this.lapicWindow);
  }

  /** Machine reset: every controller and timer to its power-on state. */
  reset(): void {
    this.pic.reset();
    this.ioapic.reset();
    for (const l of this.lapics) l.reset();
    this.pit.reset();
    this.port61.reset();
  }
}

/** The brief's factory: build and (when `bus` is given) attach everything. */
export function createPlatformInterrupts(options: PlatformInterruptsOptions): PlatformInterrupts {
  return new PlatformInterrupts(options);
}

/**
 * What CPUID should say about these clocks (SDM vol. 2A, CPUID leaves 15H and 16H), so a guest
 * can skip calibration: leaf 15H EAX/EBX is the TSC : crystal ratio and ECX the crystal
 * frequency, which is also the local APIC timer's input (Linux takes lapic_timer_period from
 * it); leaf 16H EAX/EBX are the base/max frequency in MHz, ECX the bus reference in MHz.
 */
export function tscCpuidLeaves(tscHz: number): { leaf15: [number, number, number]; leaf16: [number, number, number] } {
  const g = (a: number, b: number): number => (b === 0 ? a : g(b, a % b));
  const tsc = Math.round(tscHz);
  const d = g(tsc, APIC_BUS_HZ);
  const mhz = Math.round(tsc / 1e6);
  return {
    leaf15: [APIC_BUS_HZ / d, tsc / d, APIC_BUS_HZ],
    leaf16: [mhz, mhz, Math.round(APIC_BUS_HZ / 1e6)],
  };
}
