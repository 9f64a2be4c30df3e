// The PC's two cascaded Intel 8259A programmable interrupt controllers (8259A datasheet), with
// the PIIX/ICH edge/level control registers (ELCR).
//
//   0x20/0x21  master: command (ICW1, OCW2, OCW3; read IRR/ISR/poll) / data (ICW2-4, OCW1 = IMR)
//   0xA0/0xA1  slave, same layout; its INT output drives the master's IR2 (ICW3 cascade)
//   0x4D0/0x4D1  ELCR for IRQ 0-7 / IRQ 8-15: a 1 bit makes that input level-sensitive. IRQ 0,
//              1, 2, 8 and 13 are always edge (their bits are read-only 0, as on the PIIX).
//
// Datasheet behaviour modelled:
// - Initialization (ICW1 with D4 = 1): clears IMR and ISR, IR7 lowest priority, special mask
//   mode off, read register = IRR, edge-sense circuit reset; then ICW2 (vector base, T7-T3),
//   ICW3 unless SNGL, ICW4 if IC4 (uPM, AEOI, M/S, BUF, SFNM).
// - OCW1: IMR. OCW2 (R, SL, EOI): non-specific EOI, specific EOI, rotate on non-specific EOI,
//   rotate on specific EOI, set priority, rotate in automatic EOI mode set/clear. OCW3: read
//   IRR/ISR (RR, RIS), poll command (P), special mask mode (ESMM, SMM).
// - Priority resolution with rotation (the lowest-priority IR is tracked), fully nested and
//   special fully nested (SFNM on the master lets the slave nest), special mask mode (an
//   in-service IR blocks only itself).
// - Edge triggering: a low-to-high transition sets IRR, which stays set until acknowledged.
//   Level triggering (ELCR or ICW1 LTIM): IRR follows the input.
// - INTA (acknowledge()): IRR -> ISR (or not, in AEOI); through the cascade for IRQ 8-15. When
//   the request went away before INTA, the chip answers IR7 (vector base + 7) without setting
//   ISR: the spurious IRQ 7 (or 15 from the slave) that the datasheet describes.
// - Poll mode: the next read of the command port is an INTA whose answer is 0x80 | level, or 0
//   when nothing is pending.
// Not modelled: 8080/8085 call sequences (ICW1 ADI/uPM = 0 behave as 8086 mode), buffered mode
// (ICW4 BUF, M/S) which only concerns bus drivers.

import type { PioDevice } from '../bus.js';
import type { ExtIntSource } from './lapic.js';

const ICW1 = 0x10;
const ICW1_IC4 = 0x01;
const ICW1_SNGL = 0x02;
const ICW1_LTIM = 0x08;
const ICW4_AEOI = 0x02;
const ICW4_SFNM = 0x10;
const OCW3 = 0x08;
const OCW3_RIS = 0x01;
const OCW3_RR = 0x02;
const OCW3_P = 0x04;
const OCW3_SMM = 0x20;
const OCW3_ESMM = 0x40;

/** ELCR bits that may be set: not IRQ 0, 1, 2 (master) nor 8, 13 (slave). */
const ELCR_MASK = [0xf8, 0xde] as const;

/** One 8259A. */
class Pic8259Chip {
  irr = 0;
  isr = 0;
  imr = 0;
  /** Input pin levels, for edge detection and level mode. */
  pins = 0;
  elcr = 0;
  vectorBase = 0;
  /** The IR with the highest priority is `(priorityAdd) & 7`; rotation moves it. */
  priorityAdd = 0;
  ltim = false;
  single = false;
  icw4Needed = false;
  autoEoi = false;
  rotateOnAutoEoi = false;
  sfnm = false;
  specialMask = false;
  readIsr = false;
  poll = false;
  cascade = 0; // ICW3, stored
  /** 0: operational; 2, 3, 4: expecting that ICW on the data port. */
  initStep = 0;

  constructor(readonly slave: boolean) {}

  levelMode(bit: number): boolean {
    return this.ltim || (this.elcr & bit) !== 0;
  }

  setPin(irq: number, level: boolean): void {
    const bit = 1 << irq;
    if (this.levelMode(bit)) {
      if (level) this.irr |= bit;
      else this.irr &= ~bit;
    } else if (level && !(this.pins & bit)) {
      this.irr |= bit;
    }
    if (level) this.pins |= bit;
    else this.pins &= ~bit;
  }

  /** The highest-priority set bit of `mask` as a priority number 0-7 (0 highest), or 8. */
  priorityOf(mask: number): number {
    if (mask === 0) return 8;
    for (let p = 0; p < 8; p++) if (mask & (1 << ((p + this.priorityAdd) & 7))) return p;
    return 8;
  }

  /** The IR that would be signalled now, or -1 (datasheet "Priority Resolver"). */
  pendingIrq(): number {
    const req = this.irr & ~this.imr;
    const p = this.priorityOf(req);
    if (p === 8) return -1;
    let inService = this.isr;
    if (this.specialMask) inService &= ~this.imr; // SMM: masked in-service levels do not block
    if (this.sfnm && !this.slave) inService &= ~(1 << 2); // SFNM: the slave may nest
    if (p < this.priorityOf(inService)) return (p + this.priorityAdd) & 7;
    return -1;
  }

  /** The INTA of IR `irq` on this chip. */
  ack(irq: number): void {
    const bit = 1 << irq;
    if (this.autoEoi) {
      if (this.rotateOnAutoEoi) this.priorityAdd = (irq + 1) & 7;
    } else {
      this.isr |= bit;
    }
    // A level input stays requested while high; an edge request is consumed.
    if (!this.levelMode(bit)) this.irr &= ~bit;
  }

  /** The in-service IR with the highest priority, or -1. */
  highestInService(): number {
    const p = this.priorityOf(this.isr);
    return p === 8 ? -1 : (p + this.priorityAdd) & 7;
  }

  initReset(icw1: number): void {
    this.imr = 0;
    this.isr = 0;
    // The edge-sense circuit is reset: an edge input needs a new low-to-high transition.
    this.irr &= this.elcr;
    this.priorityAdd = 0;
    this.specialMask = false;
    this.readIsr = false;
    this.poll = false;
    this.autoEoi = false;
    this.rotateOnAutoEoi = false;
    this.sfnm = false;
    this.ltim = (icw1 & ICW1_LTIM) !== 0;
    this.single = (icw1 & ICW1_SNGL) !== 0;
    this.icw4Needed = (icw1 & ICW1_IC4) !== 0;
    if (this.ltim) this.irr = this.pins;
    else this.irr &= this.pins;
    this.initStep = 2;
  }

  writeCommand(value: number): void {
    if (value & ICW1) {
      this.initReset(value);
      return;
    }
    if (value & OCW3) {
      if (value & OCW3_ESMM) this.specialMask = (value & OCW3_SMM) !== 0;
      if (value & OCW3_RR) this.readIsr = (value & OCW3_RIS) !== 0;
      this.poll = (value & OCW3_P) !== 0;
      return;
    }
    // OCW2: R (bit 7), SL (bit 6), EOI (bit 5), L2-L0.
    const level = value & 7;
    switch (value >>> 5) {
      case 0b001: { // non-specific EOI
        const irq = this.highestInService();
        if (irq >= 0) this.isr &= ~(1 << irq);
        break;
      }
      case 0b011: // specific EOI
        this.isr &= ~(1 << level);
        break;
      case 0b101: { // rotate on non-specific EOI
        const irq = this.highestInService();
        if (irq >= 0) {
          this.isr &= ~(1 << irq);
          this.priorityAdd = (irq + 1) & 7;
        }
        break;
      }
      case 0b100: // rotate in automatic EOI mode (set)
        this.rotateOnAutoEoi = true;
        break;
      case 0b000: // rotate in automatic EOI mode (clear)
        this.rotateOnAutoEoi = false;
        break;
      case 0b111: // rotate on specific EOI
        this.isr &= ~(1 << level);
        this.priorityAdd = (level + 1) & 7;
        break;
      case 0b110: // set priority: `level` becomes the lowest
        this.priorityAdd = (level + 1) & 7;
        break;
      default: // 0b010: no operation
        break;
    }
  }

  writeData(value: number): void {
    switch (this.initStep) {
      case 2: // ICW2: T7-T3 of the vector (8086 mode)
        this.vectorBase = value & 0xf8;
        this.initStep = this.single ? (this.icw4Needed ? 4 : 0) : 3;
        return;
      case 3: // ICW3: cascade wiring (master: slave bitmap; slave: its ID)
        this.cascade = value;
        this.initStep = this.icw4Needed ? 4 : 0;
        return;
      case 4: // ICW4
        this.autoEoi = (value & ICW4_AEOI) !== 0;
        this.sfnm = (value & ICW4_SFNM) !== 0;
        this.initStep = 0;
        return;
      default: // OCW1
        this.imr = value & 0xff;
    }
  }

  readCommand(): number {
    return this.readIsr ? this.isr : this.irr;
  }
}

/** The master/slave pair as the CPU and the router see it. */
export class PicPair implements ExtIntSource {
  private readonly chips = [new Pic8259Chip(false), new Pic8259Chip(true)] as const;
  private intr = false;
  /** Called when the INTR output changes (to wake a halted CPU; the platform wires it). */
  onIntrChange?: (level: boolean) => void;

  /** Ports 0x20-0x21. */
  readonly masterPorts: PioDevice;
  /** Ports 0xA0-0xA1. */
  readonly slavePorts: PioDevice;
  /** Ports 0x4D0-0x4D1 (ELCR). */
  readonly elcrPorts: PioDevice;

  constructor() {
    this.masterPorts = this.portsFor(0, 'pic-master');
    this.slavePorts = this.portsFor(1, 'pic-slave');
    this.elcrPorts = {
      name: 'elcr',
      pioRead: (offset, size) => this.readBytes(offset, size, (o) => (o < 2 ? this.chips[o].elcr : 0xff)),
      pioWrite: (offset, size, value) =>
        this.writeBytes(offset, size, value, (o, b) => {
          if (o >= 2) return;
          this.chips[o].elcr = b & ELCR_MASK[o];
          this.refreshLevels(o as 0 | 1);
        }),
    };
  }

  private portsFor(index: 0 | 1, name: string): PioDevice {
    const chip = this.chips[index];
    return {
      name,
      pioRead: (offset, size) =>
        this.readBytes(offset, size, (o) => {
          if (o === 0) return chip.poll ? this.pollRead(index) : chip.readCommand();
          if (o === 1) return chip.imr;
          return 0xff;
        }),
      pioWrite: (offset, size, value) =>
        this.writeBytes(offset, size, value, (o, b) => {
          if (o === 0) chip.writeCommand(b);
          else if (o === 1) chip.writeData(b);
          else return;
          this.update();
        }),
    };
  }

  private readBytes(offset: number, size: number, read: (o: number) => number): number {
    const n = size === 2 || size === 4 ? size : 1;
    let v = 0;
    for (let i = 0; i < n; i++) v |= (read(offset + i) & 0xff) << (8 * i);
    return v >>> 0;
  }

  private writeBytes(offset: number, size: number, value: number, write: (o: number, b: number) => void): void {
    const n = size === 2 || size === 4 ? size : 1;
    for (let i = 0; i < n; i++) write(offset + i, (value >>> (8 * i)) & 0xff);
  }

  /** After an ELCR change: a level input's IRR follows its pin, an edge one keeps its latch. */
  private refreshLevels(index: 0 | 1): void {
    const c = this.chips[index];
    for (let irq = 0; irq < 8; irq++) {
      const bit = 1 << irq;
      if (c.levelMode(bit)) c.irr = (c.irr & ~bit) | (c.pins & bit);
    }
    this.update();
  }

  /** Drive ISA IRQ 0-15. IRQ 2 is the cascade input, driven by the slave only. */
  setIrq(irq: number, level: boolean): void {
    if (!Number.isInteger(irq) || irq < 0 || irq > 15 || irq === 2) return;
    this.chips[irq >> 3].setPin(irq & 7, level);
    this.update();
  }

  /** Recompute the cascade (slave INT -> master IR2) and the INTR output. */
  private update(): void {
    const [master, slave] = this.chips;
    master.setPin(2, slave.pendingIrq() >= 0);
    const intr = master.pendingIrq() >= 0;
    if (intr !== this.intr) {
      this.intr = intr;
      this.onIntrChange?.(intr);
    }
  }

  /** The INTR output. */
  intrPending(): boolean {
    return this.intr;
  }

  /** The INTA sequence: the vector for the CPU (spurious IRQ 7/15 when nothing is left). */
  acknowledge(): number {
    const [master, slave] = this.chips;
    let vector: number;
    const irq = master.pendingIrq();
    if (irq < 0) {
      vector = master.vectorBase + 7; // spurious IRQ 7: ISR not set
    } else {
      master.ack(irq);
      if (irq === 2 && !master.single) {
        const irq2 = slave.pendingIrq();
        if (irq2 >= 0) {
          slave.ack(irq2);
          vector = slave.vectorBase + irq2;
        } else {
          vector = slave.vectorBase + 7; // spurious IRQ 15
        }
      } else {
        vector = master.vectorBase + irq;
      }
    }
    this.update();
    return vector & 0xff;
  }

  /** OCW3 poll: the read is the INTA; answer 0x80 | IR, or 0 when nothing is pending. */
  private pollRead(index: 0 | 1): number {
    const chip = this.chips[index];
    chip.poll = false;
    const irq = chip.pendingIrq();
    if (irq < 0) return 0;
    chip.ack(irq);
    if (index === 1) {
      // The slave was serviced directly: the master's cascade request goes with it.
      const master = this.chips[0];
      master.irr &= ~(1 << 2);
      master.isr &= ~(1 << 2);
    }
    this.update();
    return 0x80 | irq;
  }

  /** Register state, for tests and dumps. */
  state(index: 0 | 1): { irr: number; isr: number; imr: number; elcr: number; vectorBase: number } {
    const c = this.chips[index];
    return { irr: c.irr, isr: c.isr, imr: c.imr, elcr: c.elcr, vectorBase: c.vectorBase };
  }

  reset(): void {
    for (const c of this.chips) {
      c.initReset(0);
      c.initStep = 0;
      c.vectorBase = 0;
      c.elcr = 0;
    }
    this.update();
  }
}
