// The I/O APIC: an Intel 82093AA (datasheet, 1996) at IOAPIC_BASE, 24 input pins.
//
// Two memory-mapped registers (datasheet 3.0): IOREGSEL at +0x00 (8 bits, the index of the
// indirect register) and IOWIN at +0x10 (32 bits, the data of the selected register). The
// indirect registers (datasheet 3.1-3.2):
//   0x00 IOAPICID   bits 27:24 the ID (reset 0; our MADT declares ID 0)
//   0x01 IOAPICVER  bits 23:16 maximum redirection entry (23), bits 7:0 version (0x11), RO
//   0x02 IOAPICARB  bits 27:24 arbitration ID, RO (loaded from the ID, as after an INIT)
//   0x10 + 2n, 0x11 + 2n  redirection table entry n (64 bits, low dword first):
//     7:0 vector, 10:8 delivery mode (000 fixed, 001 lowest priority, 010 SMI, 100 NMI,
//     101 INIT, 111 ExtINT), 11 destination mode (1 logical), 12 delivery status (RO),
//     13 polarity (1 low active), 14 remote IRR (RO), 15 trigger mode (1 level), 16 mask,
//     63:56 destination.
//
// Choices:
// - Pin inputs are logical ("asserted"/"not asserted") as IrqSink gives them; the polarity bit
//   is stored and reported but not applied (devices already speak in asserted terms, as in
//   QEMU and KVM's models).
// - Edge: a rising edge on an unmasked pin sends the message; on a masked pin it is lost
//   (datasheet 3.2.4, bit 16). Level: while the pin is asserted, the entry is unmasked and
//   Remote IRR is clear, the message is sent and Remote IRR set; the local APIC's EOI of that
//   vector (broadcast on the APIC bus, SDM 10.8.5) clears Remote IRR and re-sends if the pin is
//   still asserted. Unmasking an asserted level pin sends it.
// - Delivery is immediate, so Delivery Status always reads 0 (idle).
// - IOREGSEL and IOWIN take 32-bit accesses (datasheet 3.0); narrower reads return the bytes of
//   the register they cover, narrower IOWIN writes merge into the selected register. Other
//   offsets read 0 and ignore writes (no EOI register: that is version 0x20 and later).

import type { MmioDevice } from '../bus.js';
import { DeliveryMode, Shorthand, type ApicMessageSink, type EoiListener } from './apic-bus.js';

export const IOAPIC_PINS = 24;
export const IOAPIC_VERSION = 0x11;
export const IOAPIC_MMIO_SIZE = 0x1000;

const IOREGSEL = 0x00;
const IOWIN = 0x10;

const REG_ID = 0x00;
const REG_VER = 0x01;
const REG_ARB = 0x02;
const REG_REDTBL = 0x10;

const RTE_DELIVERY_STATUS = 1 << 12;
const RTE_REMOTE_IRR = 1 << 14;
const RTE_LEVEL = 1 << 15;
const RTE_MASKED = 1 << 16;
/** Writable bits of the low dword: all but delivery status and remote IRR. */
const RTE_LOW_WRITABLE = 0x1ffff & ~(RTE_DELIVERY_STATUS | RTE_REMOTE_IRR);

export class IoApic implements MmioDevice, EoiListener {
  readonly name = 'ioapic';
  private ioregsel = 0;
  private id: number;
  private readonly low = new Uint32Array(IOAPIC_PINS).fill(RTE_MASKED);
  private readonly high = new Uint32Array(IOAPIC_PINS);
  /** Current (asserted) state of each input pin. */
  private pins = 0;

  constructor(private readonly sink: ApicMessageSink, id = 0) {
    this.id = id & 0xf;
  }

  reset(): void {
    this.ioregsel = 0;
    this.id = 0;
    this.low.fill(RTE_MASKED);
    this.high.fill(0);
  }

  /** Redirection entry n as [low, high] dwords (for tests and dumps). */
  entry(n: number): [number, number] {
    return [this.low[n] ?? 0, this.high[n] ?? 0];
  }

  /** Drive input pin `pin` (asserted = true). */
  setIrq(pin: number, asserted: boolean): void {
    if (!Number.isInteger(pin) || pin < 0 || pin >= IOAPIC_PINS) return;
    const bit = 1 << pin;
    const was = (this.pins & bit) !== 0;
    if (asserted) this.pins |= bit;
    else this.pins &= ~bit;
    if (!asserted) return;
    if (this.low[pin] & RTE_LEVEL) this.serviceLevel(pin);
    else if (!was && !(this.low[pin] & RTE_MASKED)) this.send(pin);
  }

  /** A local APIC's EOI of a level-triggered vector (SDM 10.8.5): clear Remote IRR. */
  eoi(vector: number): void {
    for (let pin = 0; pin < IOAPIC_PINS; pin++) {
      const l = this.low[pin];
      if ((l & 0xff) !== vector || !(l & RTE_REMOTE_IRR)) continue;
      this.low[pin] = l & ~RTE_REMOTE_IRR;
      this.serviceLevel(pin);
    }
  }

  private serviceLevel(pin: number): void {
    const l = this.low[pin];
    if (!(l & RTE_LEVEL) || (l & (RTE_MASKED | RTE_REMOTE_IRR))) return;
    if (!(this.pins & (1 << pin))) return;
    const mode = (l >>> 8) & 7;
    // Remote IRR applies to fixed and lowest-priority deliveries, the ones that get an EOI.
    if (mode === DeliveryMode.Fixed || mode === DeliveryMode.LowestPriority) this.low[pin] = l | RTE_REMOTE_IRR;
    this.send(pin);
  }

  private send(pin: number): void {
    const l = this.low[pin];
    this.sink.deliver({
      vector: l & 0xff,
      mode: ((l >>> 8) & 7) as DeliveryMode,
      logical: ((l >>> 11) & 1) === 1,
      dest: this.high[pin] >>> 24,
      level: (l & RTE_LEVEL) !== 0,
      assert: true,
      shorthand: Shorthand.None,
    });
  }

  private readRegister(index: number): number {
    if (index === REG_ID) return (this.id << 24) >>> 0;
    if (index === REG_VER) return ((IOAPIC_PINS - 1) << 16) | IOAPIC_VERSION;
    if (index === REG_ARB) return (this.id << 24) >>> 0;
    if (index >= REG_REDTBL && index < REG_REDTBL + 2 * IOAPIC_PINS) {
      const n = (index - REG_REDTBL) >>> 1;
      return index & 1 ? this.high[n] : this.low[n];
    }
    return 0;
  }

  private writeRegister(index: number, value: number): void {
    value >>>= 0;
    if (index === REG_ID) {
      this.id = (value >>> 24) & 0xf;
      return;
    }
    if (index < REG_REDTBL || index >= REG_REDTBL + 2 * IOAPIC_PINS) return;
    const n = (index - REG_REDTBL) >>> 1;
    if (index & 1) {
      this.high[n] = (value & 0xff000000) >>> 0;
      return;
    }
    const old = this.low[n];
    let l = (value & RTE_LOW_WRITABLE) | (old & RTE_REMOTE_IRR);
    if (!(l & RTE_LEVEL)) l &= ~RTE_REMOTE_IRR; // remote IRR is undefined for edge entries
    this.low[n] = l >>> 0;
    if ((l & RTE_LEVEL) && !(l & RTE_MASKED)) this.serviceLevel(n);
  }

  mmioRead(offset: number, size: 1 | 2 | 4): number {
    const base = offset & ~3;
    const shift = 8 * (offset & 3);
    let v: number;
    if (base === IOREGSEL) v = this.ioregsel;
    else if (base === IOWIN) v = this.readRegister(this.ioregsel);
    else return 0;
    v >>>= shift;
    return size === 4 ? v >>> 0 : v & (size === 2 ? 0xffff : 0xff);
  }

  mmioWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    const base = offset & ~3;
    const shift = 8 * (offset & 3);
    const mask = size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
    if (base === IOREGSEL) {
      if (shift === 0) this.ioregsel = value & 0xff;
      return;
    }
    if (base !== IOWIN) return;
    let v = value & mask;
    if (size !== 4 || shift !== 0) {
      const laneMask = shift >= 32 ? 0 : (mask << shift) >>> 0;
      v = ((this.readRegister(this.ioregsel) & ~laneMask) | ((v << shift) & laneMask)) >>> 0;
    }
    this.writeRegister(this.ioregsel, v);
  }
}
