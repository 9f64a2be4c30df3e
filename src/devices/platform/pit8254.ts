// The Intel 8254 programmable interval timer (8254 datasheet) at ports 0x40-0x43: three 16-bit
// counters clocked at 1.193182 MHz. Counter 0's OUT drives ISA IRQ 0 (GSI 2 on our platform),
// counter 1 (DRAM refresh on old PCs) drives nothing, counter 2's GATE and OUT are reached
// through port 0x61 (system-control-port.ts) and feed the speaker.
//
//   0x40-0x42  counter 0-2: read/write the count per the counter's RW mode
//   0x43       control word (write only): SC1-SC0 counter / 11 read-back, RW1-RW0 access
//              (00 counter latch, 01 LSB, 10 MSB, 11 LSB then MSB), M2-M0 mode, BCD
//
// Counters are not ticked: each remembers when its count was loaded (or its gate last rose)
// and computes the count and OUT from the platform clock when asked. Only counter 0 arms a
// clock timer, and only for its next OUT transition, so an idle or masked PIT costs nothing.
// Late timers coalesce: after a falling edge the rising edge is always delivered (so the PIC
// and IOAPIC see an edge), then the next one is computed from the current time.
//
// Modes (datasheet "Operation"): 0 interrupt on terminal count, 1 hardware retriggerable
// one-shot, 2 rate generator, 3 square wave, 4 software triggered strobe, 5 hardware triggered
// strobe (6 and 7 are 2 and 3). Simplifications: the count is loaded on the write itself, not
// on the next CLK pulse (so mode 0's OUT rises N clocks after the write, not N+1); a new count
// in modes 2 and 3 takes effect at once rather than at the end of the current period; in mode 3
// an odd count's halves are (N+1)/2 high and (N-1)/2 low, and the count reads as decrementing
// by two from the even value below N.
// Read-back (control word 11xxxxxx): D5 = 0 latches the count, D4 = 0 latches the status, D3-D1
// select counters. Status byte: D7 OUT, D6 null count, D5-D0 as in the control word.

import type { PioDevice } from '../bus.js';
import type { IrqSink } from '../irq.js';
import type { PlatformClock, TimerId } from './clock.js';

export const PIT_HZ = 1_193_182;

const RW_LATCH = 0;
const RW_LSB = 1;
const RW_MSB = 2;
const RW_WORD = 3;

function toBcd(v: number): number {
  return (v % 10) | (Math.floor(v / 10) % 10) << 4 | (Math.floor(v / 100) % 10) << 8 | (Math.floor(v / 1000) % 10) << 12;
}

function fromBcd(v: number): number {
  // Digits above 9 are not BCD; take them at face value, like an adder would, then wrap.
  return ((v >> 12) & 0xf) * 1000 + ((v >> 8) & 0xf) * 100 + ((v >> 4) & 0xf) * 10 + (v & 0xf);
}

/** Ticks of the 1.193182 MHz clock from `ns` nanoseconds. */
function ticksAt(ns: number): number {
  return Math.floor((ns * PIT_HZ) / 1e9);
}

/** The first nanosecond at which ticksAt() reaches `tick` (consistent with ticksAt). */
function nsForTick(tick: number): number {
  let ns = Math.ceil((tick * 1e9) / PIT_HZ);
  while (ticksAt(ns) < tick) ns++;
  while (ns > 0 && ticksAt(ns - 1) >= tick) ns--;
  return ns;
}

class Counter {
  mode = 0;
  bcd = false;
  rw = RW_WORD;
  /** The count register's value (CR) in binary, 1..65536 (0 is stored as the maximum). */
  reload = 0x10000;
  /** A count has been written since the last control word (counting is enabled). */
  loaded = false;
  /** Null count: a count was written but not yet loaded into the counting element. */
  nullCount = true;
  /** Tick at which counting started (count load, or gate trigger in modes 1 and 5). */
  startTick = 0;
  /** Modes 1 and 5: a trigger has happened since the count was loaded. */
  triggered = false;
  gate: boolean;
  /** Count frozen while the gate is low in modes 0 and 4 (elapsed ticks at that moment). */
  frozenElapsed: number | undefined;

  writeLsbPending = false;
  writeLatch = 0;
  readMsbNext = false;
  latchedCount: number | undefined;
  latchedCountMsbNext = false;
  latchedStatus: number | undefined;

  constructor(gate: boolean) {
    this.gate = gate;
  }

  modulus(): number {
    return this.bcd ? 10000 : 0x10000;
  }

  /** Ticks the counting element has counted at tick `t` (undefined when not counting). */
  elapsed(t: number): number | undefined {
    if (!this.loaded) return undefined;
    if ((this.mode === 1 || this.mode === 5) && !this.triggered) return undefined;
    if (this.frozenElapsed !== undefined) return this.frozenElapsed;
    return Math.max(0, t - this.startTick);
  }

  /** The count the counting element holds at tick `t`, in binary. */
  count(t: number): number {
    const n = this.reload;
    const d = this.elapsed(t);
    const m = this.modulus();
    if (d === undefined) return this.loaded ? n % m : 0;
    switch (this.mode) {
      case 2:
        return n - (d % n);
      case 3: {
        const hi = (n + 1) >> 1;
        const even = n & ~1;
        const phase = d % n;
        const c = phase < hi ? even - 2 * phase : even - 2 * (phase - hi);
        return c <= 0 ? 2 : c;
      }
      default: // 0, 1, 4, 5: count down from N, then wrap and keep going
        return (((n - d) % m) + m) % m;
    }
  }

  /** OUT at tick `t`. */
  out(t: number): boolean {
    const d = this.elapsed(t);
    const n = this.reload;
    switch (this.mode) {
      case 0:
        return d !== undefined && d >= n;
      case 1:
        return d === undefined || d >= n;
      case 2:
        if (!this.gate || d === undefined) return true;
        return d % n !== n - 1;
      case 3:
        if (!this.gate || d === undefined) return true;
        return d % n < (n + 1) >> 1;
      default: // 4, 5: low for one clock when the count reaches 0
        return d === undefined || d !== n;
    }
  }

  /** The first tick after `t` at which OUT changes, or undefined when it never does by itself. */
  nextEdge(t: number): number | undefined {
    const d = this.elapsed(t);
    if (d === undefined || this.frozenElapsed !== undefined) return undefined;
    const n = this.reload;
    const base = t - d; // the start tick
    switch (this.mode) {
      case 0:
      case 1:
        return d < n ? base + n : undefined;
      case 2: {
        if (!this.gate) return undefined;
        const phase = d % n;
        if (n === 1) return undefined; // illegal count: OUT stays low
        return phase < n - 1 ? t + (n - 1 - phase) : t + 1;
      }
      case 3: {
        if (!this.gate) return undefined;
        const hi = (n + 1) >> 1;
        const phase = d % n;
        if (n === 1) return undefined;
        return phase < hi ? t + (hi - phase) : t + (n - phase);
      }
      default:
        if (d < n) return base + n;
        if (d === n) return base + n + 1;
        return undefined;
    }
  }

  status(t: number): number {
    const out = this.out(t) ? 0x80 : 0;
    const nul = this.nullCount ? 0x40 : 0;
    return out | nul | (this.rw << 4) | (this.mode << 1) | (this.bcd ? 1 : 0);
  }
}

export interface Pit8254Options {
  clock: PlatformClock;
  /** Where counter 0's OUT goes (the interrupt router), and as which GSI. */
  irq?: IrqSink;
  gsi?: number;
}

export class Pit8254 implements PioDevice {
  readonly name = 'pit';
  private readonly clock: PlatformClock;
  private readonly irq?: IrqSink;
  private readonly gsi: number;
  private readonly counters = [new Counter(true), new Counter(true), new Counter(false)];
  private timerId: TimerId | undefined;
  private irqLevel = false;

  constructor(options: Pit8254Options) {
    this.clock = options.clock;
    this.irq = options.irq;
    this.gsi = options.gsi ?? 2;
  }

  private now(): number {
    return ticksAt(this.clock.nowNs());
  }

  reset(): void {
    for (let i = 0; i < 3; i++) this.counters[i] = new Counter(i !== 2);
    this.clock.cancel(this.timerId);
    this.timerId = undefined;
    this.setIrqLevel(false);
  }

  // ---- port 0x61 side (counter 2) ----

  /** Counter 2's GATE input (port 0x61 bit 0). */
  setGate2(level: boolean): void {
    this.setGate(2, level);
  }

  get gate2(): boolean {
    return this.counters[2].gate;
  }

  /** Counter 2's OUT (port 0x61 bit 5). */
  out2(): boolean {
    return this.counters[2].out(this.now());
  }

  /** Any counter's OUT now (for tests). */
  out(channel: number): boolean {
    return this.counters[channel & 3]?.out(this.now()) ?? false;
  }

  private setGate(channel: number, level: boolean): void {
    const c = this.counters[channel];
    if (c.gate === level) return;
    const t = this.now();
    if (!level) {
      // Modes 0, 2, 3, 4: counting is suspended (datasheet: "GATE = 0 disables counting").
      if (c.mode !== 1 && c.mode !== 5 && c.loaded) c.frozenElapsed = c.elapsed(t);
      c.gate = false;
    } else {
      c.gate = true;
      if (c.frozenElapsed !== undefined) {
        c.startTick = t - c.frozenElapsed;
        c.frozenElapsed = undefined;
      }
      // A rising gate restarts modes 2 and 3 and triggers modes 1 and 5.
      if (c.loaded && (c.mode === 1 || c.mode === 2 || c.mode === 3 || c.mode === 5)) {
        c.startTick = t;
        c.triggered = true;
      }
    }
    if (channel === 0) this.rearm();
  }

  // ---- counter 0 -> IRQ 0 ----

  private setIrqLevel(level: boolean): void {
    if (level === this.irqLevel) return;
    this.irqLevel = level;
    this.irq?.setIrq(this.gsi, level);
  }

  /** Put IRQ 0 at counter 0's current OUT and arm the timer for its next change. */
  private rearm(): void {
    const c = this.counters[0];
    const t = this.now();
    this.setIrqLevel(c.out(t));
    this.schedule(c.nextEdge(t));
  }

  private schedule(tick: number | undefined): void {
    this.clock.cancel(this.timerId);
    this.timerId = undefined;
    if (tick === undefined) return;
    this.timerId = this.clock.schedule(nsForTick(tick), () => this.edge(tick));
  }

  /** Counter 0's OUT changes at tick `tick` (possibly in the past, if the host was late). */
  private edge(tick: number): void {
    this.timerId = undefined;
    const c = this.counters[0];
    const level = c.out(tick);
    this.setIrqLevel(level);
    if (!level) {
      // Always let the rising edge follow (that is what the interrupt controllers see).
      const next = c.nextEdge(tick);
      this.schedule(next);
      return;
    }
    this.schedule(c.nextEdge(Math.max(tick, this.now())));
  }

  // ---- ports ----

  private writeControl(value: number): void {
    const sc = value >>> 6;
    const t = this.now();
    if (sc === 3) {
      // Read-back command.
      for (let i = 0; i < 3; i++) {
        if (!(value & (2 << i))) continue;
        const c = this.counters[i];
        if (!(value & 0x20) && c.latchedCount === undefined) {
          c.latchedCount = c.count(t);
          c.latchedCountMsbNext = false;
        }
        if (!(value & 0x10) && c.latchedStatus === undefined) c.latchedStatus = c.status(t);
      }
      return;
    }
    const c = this.counters[sc];
    const rw = (value >>> 4) & 3;
    if (rw === RW_LATCH) {
      if (c.latchedCount === undefined) {
        c.latchedCount = c.count(t);
        c.latchedCountMsbNext = false;
      }
      return;
    }
    let mode = (value >>> 1) & 7;
    if (mode > 5) mode -= 4;
    c.rw = rw;
    c.mode = mode;
    c.bcd = (value & 1) !== 0;
    c.loaded = false;
    c.nullCount = true;
    c.triggered = false;
    c.frozenElapsed = undefined;
    c.writeLsbPending = false;
    c.readMsbNext = false;
    c.latchedCount = undefined;
    c.latchedStatus = undefined;
    if (sc === 0) this.rearm();
  }

  private writeCounter(i: number, value: number): void {
    const c = this.counters[i];
    let raw: number;
    switch (c.rw) {
      case RW_LSB:
        raw = value;
        break;
      case RW_MSB:
        raw = value << 8;
        break;
      default:
        if (!c.writeLsbPending) {
          c.writeLsbPending = true;
          c.writeLatch = value;
          // Mode 0: writing the first byte stops the count (datasheet, mode 0).
          if (c.mode === 0 && c.loaded) {
            c.frozenElapsed = c.elapsed(this.now());
            if (i === 0) this.rearm();
          }
          return;
        }
        c.writeLsbPending = false;
        raw = c.writeLatch | (value << 8);
    }
    let n = c.bcd ? fromBcd(raw) % 10000 : raw & 0xffff;
    if (n === 0) n = c.modulus();
    c.reload = n;
    c.loaded = true;
    c.nullCount = false;
    c.frozenElapsed = undefined;
    c.startTick = this.now();
    // Modes 1 and 5 wait for a gate trigger; the other modes count while the gate is high.
    c.triggered = false;
    if (!c.gate && c.mode !== 1 && c.mode !== 5) c.frozenElapsed = 0;
    if (i === 0) this.rearm();
  }

  private readCounter(i: number): number {
    const c = this.counters[i];
    if (c.latchedStatus !== undefined) {
      const s = c.latchedStatus;
      c.latchedStatus = undefined;
      return s;
    }
    const display = (v: number): number => (c.bcd ? toBcd(v % 10000) : v & 0xffff);
    if (c.latchedCount !== undefined) {
      const v = display(c.latchedCount);
      if (c.rw === RW_LSB) {
        c.latchedCount = undefined;
        return v & 0xff;
      }
      if (c.rw === RW_MSB) {
        c.latchedCount = undefined;
        return v >>> 8;
      }
      if (!c.latchedCountMsbNext) {
        c.latchedCountMsbNext = true;
        return v & 0xff;
      }
      c.latchedCount = undefined;
      c.latchedCountMsbNext = false;
      return (v >>> 8) & 0xff;
    }
    const v = display(c.count(this.now()));
    if (c.rw === RW_LSB) return v & 0xff;
    if (c.rw === RW_MSB) return (v >>> 8) & 0xff;
    const msb = c.readMsbNext;
    c.readMsbNext = !msb;
    return msb ? (v >>> 8) & 0xff : v & 0xff;
  }

  pioRead(offset: number, size: 1 | 2 | 4): number {
    let v = 0;
    const n = size === 2 || size === 4 ? size : 1;
    for (let k = 0; k < n; k++) {
      const o = offset + k;
      // The control word register is write-only; reads of port 0x43 float.
      const b = o >= 0 && o < 3 ? this.readCounter(o) : 0xff;
      v |= (b & 0xff) << (8 * k);
    }
    return v >>> 0;
  }

  pioWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    const n = size === 2 || size === 4 ? size : 1;
    for (let k = 0; k < n; k++) {
      const o = offset + k;
      const b = (value >>> (8 * k)) & 0xff;
      if (o >= 0 && o < 3) this.writeCounter(o, b);
      else if (o === 3) this.writeControl(b);
    }
  }
}
