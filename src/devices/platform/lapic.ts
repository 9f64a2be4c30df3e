// The local APIC of one vCPU (Intel SDM vol. 3A chapter 10, "Advanced Programmable Interrupt
// Controller"; chapter 11 in the newest editions), in xAPIC mode through the 4 KiB MMIO page at
// LAPIC_BASE and in x2APIC mode through MSRs 0x800-0x8FF (SDM 10.12).
//
// Registers (SDM table 10-1; each 32 bits wide at a 16-byte aligned offset):
//   0x020 ID (bits 31:24)            0x030 version (RO)          0x080 TPR
//   0x090 APR (RO)                   0x0A0 PPR (RO)              0x0B0 EOI (WO)
//   0x0D0 LDR                        0x0E0 DFR                   0x0F0 SVR
//   0x100-0x170 ISR, 0x180-0x1F0 TMR, 0x200-0x270 IRR (256 bits each, RO)
//   0x280 ESR                        0x300/0x310 ICR low/high
//   0x320 LVT timer, 0x330 thermal, 0x340 performance counter, 0x350 LINT0, 0x360 LINT1,
//   0x370 error                      0x380 initial count, 0x390 current count (RO), 0x3E0 DCR
//
// Choices:
// - Version 0x14 (an integrated APIC) with 6 LVT entries (Max LVT Entry = 5, bits 23:16); no
//   CMCI LVT and no EOI-broadcast suppression (bit 24 = 0, so SVR bit 12 is not writable).
// - Register accesses are defined only as aligned 32-bit loads/stores (SDM 10.4.1). Reads of
//   any width return the bytes of the register they fall in (bytes 4-15 of a 16-byte slot read
//   0); a write whose address is not 16-byte aligned is ignored, and a narrower aligned write is
//   taken as the zero-extended 32-bit value. Accesses to reserved offsets set ESR bit 7.
// - Interrupt acceptance per SDM 10.8.3-10.8.4: IRR -> ISR when the highest IRR vector's
//   priority class is above PPR's; `acknowledge()` with nothing deliverable returns the
//   spurious vector without touching ISR (10.9).
// - The PIC (8259 INTR) reaches the CPU through LINT0 in ExtINT mode (virtual wire, MP spec
//   3.6.2.2), through an ExtINT message from the I/O APIC, or directly when the APIC is
//   hardware-disabled (IA32_APIC_BASE[11] = 0, SDM 10.4.3). As in other VMMs, LINT0 of the
//   bootstrap processor is ExtINT and unmasked from reset, so PIC interrupts flow before the
//   guest programs the APIC. LAPIC vectors win over the PIC when both are pending.
// - A software-disabled APIC (SVR bit 8 = 0) ignores fixed and lowest-priority messages, still
//   takes NMI/INIT/SIPI (SDM 10.4.7.2), and keeps every LVT masked.
// - Timer (SDM 10.5.4): counts at APIC_BUS_HZ (1 GHz, one tick per nanosecond, as in KVM) divided
//   per DCR. The current count is computed from the clock when read, never ticked; a clock
//   timer is armed only for the next expiry. Periodic timers faster than MIN_PERIOD_NS fire at
//   that rate instead (the count still reads as programmed). Missed periods coalesce (IRR is
//   one bit per vector anyway). TSC-deadline mode (10.5.4.1) through IA32_TSC_DEADLINE.
// - INIT, SIPI and NMI are latched for the CPU (takeInit/takeSipi/takeNmi). Taking an INIT also
//   performs the APIC's INIT reset (SDM 10.4.7.3: all state but the APIC ID and base MSR).
// - IA32_APIC_BASE relocation is stored but the MMIO window stays at LAPIC_BASE.
// - Missing: SMI delivery, thermal/performance-counter event sources (their LVTs are stored and
//   `raiseLvt` delivers them), APR-based focus processor selection, the remote read register.

import type { MmioDevice } from '../bus.js';
import { DeliveryMode, Shorthand, type ApicBus, type ApicMessage, type ApicTarget } from './apic-bus.js';
import type { PlatformClock, TimerId } from './clock.js';

/** The APIC timer's input clock ("bus clock", SDM 10.5.4): 1 GHz. */
export const APIC_BUS_HZ = 1_000_000_000;
/** The fastest a periodic APIC timer fires (10 kHz), so a tiny count cannot swamp the host. */
export const MIN_PERIOD_NS = 100_000;

export const LAPIC_VERSION = 0x14;
const MAX_LVT_ENTRY = 5;

export const MSR_IA32_APIC_BASE = 0x1b;
export const MSR_IA32_TSC_DEADLINE = 0x6e0;
export const MSR_X2APIC_FIRST = 0x800;
export const MSR_X2APIC_LAST = 0x8ff;

// IA32_APIC_BASE bits (SDM 10.4.4, figure 10-5).
const BASE_BSP = 1n << 8n;
const BASE_EXTD = 1n << 10n;
const BASE_EN = 1n << 11n;
const BASE_ADDR_MASK = 0x000f_ffff_ffff_f000n; // MAXPHYADDR 52
const DEFAULT_BASE = 0xfee00000n;

// Register offsets (SDM table 10-1).
const REG_ID = 0x20;
const REG_VERSION = 0x30;
const REG_TPR = 0x80;
const REG_APR = 0x90;
const REG_PPR = 0xa0;
const REG_EOI = 0xb0;
const REG_RRD = 0xc0;
const REG_LDR = 0xd0;
const REG_DFR = 0xe0;
const REG_SVR = 0xf0;
const REG_ISR = 0x100;
const REG_TMR = 0x180;
const REG_IRR = 0x200;
const REG_ESR = 0x280;
const REG_ICR_LO = 0x300;
const REG_ICR_HI = 0x310;
const REG_LVT_TIMER = 0x320;
const REG_LVT_ERROR = 0x370;
const REG_TIMER_INITIAL = 0x380;
const REG_TIMER_CURRENT = 0x390;
const REG_TIMER_DIVIDE = 0x3e0;
const REG_SELF_IPI = 0x3f0; // x2APIC only (SDM 10.12.11)

/** LVT indexes, in register order 0x320-0x370. */
export const enum Lvt {
  Timer = 0,
  Thermal = 1,
  Perf = 2,
  Lint0 = 3,
  Lint1 = 4,
  Error = 5,
}

// LVT bits (SDM figure 10-8). Timer mode, bits 18:17: 00 one-shot, 01 periodic, 10 TSC deadline.
const LVT_MASKED = 1 << 16;
const LVT_LEVEL = 1 << 15;
const LVT_REMOTE_IRR = 1 << 14;
/** Writable bits per LVT: vector, delivery mode, polarity, trigger, mask, timer mode. */
const LVT_WRITABLE = [0x000700ff, 0x000107ff, 0x000107ff, 0x0001a7ff, 0x0001a7ff, 0x000100ff];

const TIMER_PERIODIC = 1;
const TIMER_TSC_DEADLINE = 2;

// SVR bits (SDM figure 10-23).
const SVR_ENABLE = 1 << 8;
const SVR_WRITABLE = 0x3ff; // vector, enable, focus checking (no EOI-broadcast suppression)

/** ICR low bits software sets (SDM figure 10-12): vector, delivery mode, destination mode,
 *  level, trigger mode, shorthand. Delivery status (bit 12) always reads 0 (idle). */
const ICR_WRITABLE = 0x000ccfff;

// ESR bits (SDM figure 10-9).
const ESR_SEND_ILLEGAL_VECTOR = 1 << 5;
const ESR_RECEIVE_ILLEGAL_VECTOR = 1 << 6;
const ESR_ILLEGAL_REGISTER = 1 << 7;

/** Where the 8259 PIC's INTR output and INTA cycle are reached. */
export interface ExtIntSource {
  /** Is the PIC's INTR output asserted? */
  intrPending(): boolean;
  /** The INTA cycle: returns the vector (a spurious IRQ 7/15 vector if nothing is pending). */
  acknowledge(): number;
}

export interface LocalApicOptions {
  /** The APIC ID (= vCPU index in our MADT). */
  id: number;
  bus: ApicBus;
  clock: PlatformClock;
  /** The bootstrap processor: IA32_APIC_BASE.BSP and LINT0 = ExtINT from reset. */
  bsp?: boolean;
  /** The PIC, for ExtINT. */
  extInt?: ExtIntSource;
}

function highestBit(bits: Uint32Array): number {
  for (let i = 7; i >= 0; i--) {
    const w = bits[i];
    if (w !== 0) return i * 32 + 31 - Math.clz32(w);
  }
  return -1;
}

function testBit(bits: Uint32Array, v: number): boolean {
  return ((bits[v >>> 5] >>> (v & 31)) & 1) === 1;
}

function setBit(bits: Uint32Array, v: number): void {
  bits[v >>> 5] |= 1 << (v & 31);
}

function clearBit(bits: Uint32Array, v: number): void {
  bits[v >>> 5] &= ~(1 << (v & 31));
}

export class LocalApic implements MmioDevice, ApicTarget {
  readonly name: string;
  /**
   * Called whenever something may have become deliverable (to wake a halted vCPU). A hint only:
   * it must not acknowledge or EOI synchronously (a level interrupt would re-enter).
   */
  onInterrupt?: () => void;
  /**
   * This vCPU's guest TSC minus the platform clock's TSC (what IA32_TSC writes and
   * IA32_TSC_ADJUST add); the CPU keeps it current so TSC deadlines convert correctly.
   */
  tscOffset = 0n;

  private readonly bus: ApicBus;
  private readonly clock: PlatformClock;
  private readonly extInt?: ExtIntSource;

  private id: number;
  private apicBase: bigint;
  private tpr = 0;
  private ldr = 0;
  private dfr = 0xffffffff;
  private svr = 0xff;
  private readonly isr = new Uint32Array(8);
  private readonly tmr = new Uint32Array(8);
  private readonly irr = new Uint32Array(8);
  private esr = 0;
  private esrPending = 0;
  private icrLow = 0;
  private icrHigh = 0;
  private readonly lvt = new Uint32Array(6);
  private readonly lintLevel = [false, false];
  private timerInitial = 0;
  private timerDivide = 0;
  private timerStartNs = 0;
  private timerDeadlineNs = 0;
  private timerId: TimerId | undefined;
  private tscDeadline = 0n;

  private nmiPending = false;
  private initPending = false;
  private sipiVector: number | undefined;
  private extIntRequested = false;

  constructor(options: LocalApicOptions) {
    this.bus = options.bus;
    this.clock = options.clock;
    this.extInt = options.extInt;
    this.id = options.id >>> 0;
    this.name = `lapic${this.id}`;
    this.apicBase = DEFAULT_BASE | BASE_EN | (options.bsp ? BASE_BSP : 0n);
    this.resetRegisters();
    options.bus.attach(this);
  }

  // ---- state the CPU and the bus look at ----

  get apicId(): number {
    return this.id;
  }

  get x2apic(): boolean {
    return (this.apicBase & BASE_EXTD) !== 0n;
  }

  /** IA32_APIC_BASE[11]: the APIC is present on the bus and decodes its registers. */
  get hardwareEnabled(): boolean {
    return (this.apicBase & BASE_EN) !== 0n;
  }

  /** SVR[8] (SDM 10.4.7.2). */
  get softwareEnabled(): boolean {
    return (this.svr & SVR_ENABLE) !== 0;
  }

  get isBsp(): boolean {
    return (this.apicBase & BASE_BSP) !== 0n;
  }

  /** Power-on reset (SDM 10.4.7.1): every register to its reset value, APIC_BASE included. */
  reset(): void {
    this.apicBase = DEFAULT_BASE | BASE_EN | (this.apicBase & BASE_BSP);
    this.resetRegisters();
    this.nmiPending = false;
    this.initPending = false;
    this.sipiVector = undefined;
  }

  private resetRegisters(): void {
    this.tpr = 0;
    this.ldr = 0;
    this.dfr = 0xffffffff;
    this.svr = 0xff;
    this.isr.fill(0);
    this.tmr.fill(0);
    this.irr.fill(0);
    this.esr = 0;
    this.esrPending = 0;
    this.icrLow = 0;
    this.icrHigh = 0;
    this.lvt.fill(LVT_MASKED);
    // Virtual wire on the BSP from reset, as the BIOS leaves it (MP spec 3.6.2.2).
    if (this.isBsp) this.lvt[Lvt.Lint0] = DeliveryMode.ExtInt << 8;
    this.stopTimer();
    this.timerInitial = 0;
    this.timerDivide = 0;
    this.tscDeadline = 0n;
    this.extIntRequested = false;
    if (this.x2apic) this.ldr = this.x2apicLdr();
  }

  /** SDM 10.8.3.1: PPR from TPR and the highest in-service vector. */
  ppr(): number {
    const isrv = Math.max(0, highestBit(this.isr));
    return (this.tpr >>> 4) >= (isrv >>> 4) ? this.tpr : isrv & 0xf0;
  }

  /** APR (SDM 10.8.3.1 figure, P6 arbitration): used to pick the lowest-priority target. */
  arbitrationPriority(): number {
    const isrv = Math.max(0, highestBit(this.isr));
    const irrv = Math.max(0, highestBit(this.irr));
    if ((this.tpr >>> 4) >= (irrv >>> 4) && (this.tpr >>> 4) > (isrv >>> 4)) return this.tpr;
    return Math.max(this.tpr & 0xf0, isrv & 0xf0, irrv & 0xf0);
  }

  /** CR8 reads TPR[7:4] (SDM 10.8.6.1). */
  getCr8(): number {
    return this.tpr >>> 4;
  }

  setCr8(value: number): void {
    this.tpr = (value & 0xf) << 4;
    this.kick();
  }

  /** Is an interrupt (LAPIC vector or PIC ExtINT) ready for the CPU to take? */
  hasInterrupt(): boolean {
    if (!this.hardwareEnabled) return this.extInt?.intrPending() ?? false;
    if (this.deliverableVector() >= 0) return true;
    return this.extIntPath() && (this.extInt?.intrPending() ?? false);
  }

  /** The INTA cycle: the vector the CPU should take now (SDM 10.8.4); it moves IRR -> ISR. */
  acknowledge(): number {
    if (!this.hardwareEnabled) return this.extInt ? this.extInt.acknowledge() & 0xff : 0xff;
    const v = this.deliverableVector();
    if (v >= 0) {
      clearBit(this.irr, v);
      setBit(this.isr, v);
      return v;
    }
    if (this.extIntPath() && this.extInt?.intrPending()) {
      this.extIntRequested = false;
      return this.extInt.acknowledge() & 0xff;
    }
    // Nothing left (TPR raised in between): the spurious vector, ISR untouched (SDM 10.9).
    return this.svr & 0xff;
  }

  hasNmi(): boolean {
    return this.nmiPending;
  }

  takeNmi(): boolean {
    const p = this.nmiPending;
    this.nmiPending = false;
    return p;
  }

  /** Pending INIT? Taking it performs the APIC's INIT reset (SDM 10.4.7.3). */
  takeInit(): boolean {
    if (!this.initPending) return false;
    this.initPending = false;
    this.sipiVector = undefined;
    this.resetRegisters();
    return true;
  }

  hasInit(): boolean {
    return this.initPending;
  }

  /** A pending STARTUP IPI's vector (the AP starts at vector << 12), or undefined. */
  takeSipi(): number | undefined {
    const v = this.sipiVector;
    this.sipiVector = undefined;
    return v;
  }

  private deliverableVector(): number {
    if (!this.softwareEnabled) return -1;
    const v = highestBit(this.irr);
    if (v < 0) return -1;
    return (v & 0xf0) > (this.ppr() & 0xf0) ? v : -1;
  }

  private extIntPath(): boolean {
    if (this.extIntRequested) return true;
    const l = this.lvt[Lvt.Lint0];
    return (l & LVT_MASKED) === 0 && ((l >>> 8) & 7) === DeliveryMode.ExtInt;
  }

  private kick(): void {
    this.onInterrupt?.();
  }

  // ---- APIC bus side ----

  matchesDestination(logical: boolean, dest: number, wide: boolean): boolean {
    if (!this.hardwareEnabled) return false;
    dest >>>= 0;
    if (this.x2apic) {
      if (dest === 0xffffffff || (!wide && dest === 0xff)) return true;
      if (!wide) return !logical && dest === this.id;
      if (!logical) return dest === this.id;
      // SDM 10.12.10.2: cluster ID in bits 31:16, a bit per member in bits 15:0.
      return dest >>> 16 === this.ldr >>> 16 && (dest & this.ldr & 0xffff) !== 0;
    }
    const d = wide ? dest : dest & 0xff;
    if (d === 0xff) return true;
    if (!logical) return d === (this.id & 0xff);
    const ldr = this.ldr >>> 24;
    if (this.dfr >>> 28 === 0xf) return (ldr & d) !== 0; // flat model (SDM 10.6.2.2)
    return d >>> 4 === ldr >>> 4 && (d & ldr & 0xf) !== 0; // cluster model
  }

  accept(msg: ApicMessage): void {
    if (!this.hardwareEnabled) return;
    switch (msg.mode) {
      case DeliveryMode.Fixed:
      case DeliveryMode.LowestPriority:
        if (!this.softwareEnabled) return;
        this.acceptVector(msg.vector & 0xff, msg.level);
        return;
      case DeliveryMode.Nmi:
        this.nmiPending = true;
        this.kick();
        return;
      case DeliveryMode.Init:
        if (msg.level && !msg.assert) return; // INIT level de-assert (SDM 10.6.1): no effect here
        this.initPending = true;
        this.kick();
        return;
      case DeliveryMode.Startup:
        this.sipiVector = msg.vector & 0xff;
        this.kick();
        return;
      case DeliveryMode.ExtInt:
        this.extIntRequested = true;
        this.kick();
        return;
      default:
        return; // SMI and reserved modes
    }
  }

  private acceptVector(vector: number, level: boolean): void {
    if (vector < 16) {
      this.signalError(ESR_RECEIVE_ILLEGAL_VECTOR);
      return;
    }
    setBit(this.irr, vector);
    if (level) setBit(this.tmr, vector);
    else clearBit(this.tmr, vector);
    this.kick();
  }

  private signalError(bit: number): void {
    if (this.esrPending & bit) return;
    this.esrPending |= bit;
    this.raiseLvt(Lvt.Error);
  }

  /** Deliver a local interrupt through its LVT entry (SDM 10.5.1), unless masked. */
  raiseLvt(which: Lvt): void {
    const l = this.lvt[which];
    if (l & LVT_MASKED) return;
    const mode = which === Lvt.Timer || which === Lvt.Error ? DeliveryMode.Fixed : (l >>> 8) & 7;
    switch (mode) {
      case DeliveryMode.Fixed:
        if (!this.softwareEnabled) return;
        this.acceptVector(l & 0xff, false);
        return;
      case DeliveryMode.Nmi:
        this.nmiPending = true;
        this.kick();
        return;
      case DeliveryMode.Init:
        this.initPending = true;
        this.kick();
        return;
      case DeliveryMode.ExtInt:
        this.kick(); // the PIC is asked when the CPU looks
        return;
      default:
        return;
    }
  }

  /** Drive the LINT0 (pin 0) or LINT1 (pin 1) input (SDM 10.5.1). */
  setLint(pin: 0 | 1, level: boolean): void {
    const idx = pin === 0 ? Lvt.Lint0 : Lvt.Lint1;
    const rising = level && !this.lintLevel[pin];
    this.lintLevel[pin] = level;
    const l = this.lvt[idx];
    if (l & LVT_MASKED) return;
    const mode = (l >>> 8) & 7;
    if (mode === DeliveryMode.Fixed && (l & LVT_LEVEL)) {
      // Level-triggered fixed: Remote IRR is set on acceptance and cleared by EOI.
      if (level && !(l & LVT_REMOTE_IRR) && this.softwareEnabled) {
        this.lvt[idx] |= LVT_REMOTE_IRR;
        this.acceptVector(l & 0xff, true);
      }
      return;
    }
    if (rising) this.raiseLvt(idx);
    else if (mode === DeliveryMode.ExtInt) this.kick();
  }

  /** EOI (SDM 10.8.5): retire the highest in-service vector; broadcast it if level-triggered. */
  eoi(): void {
    const v = highestBit(this.isr);
    if (v < 0) return;
    clearBit(this.isr, v);
    if (testBit(this.tmr, v)) {
      clearBit(this.tmr, v);
      for (const idx of [Lvt.Lint0, Lvt.Lint1]) {
        const l = this.lvt[idx];
        if ((l & LVT_REMOTE_IRR) && (l & 0xff) === v) {
          this.lvt[idx] = l & ~LVT_REMOTE_IRR;
          if (this.lintLevel[idx - Lvt.Lint0]) this.setLint((idx - Lvt.Lint0) as 0 | 1, true);
        }
      }
      this.bus.broadcastEoi(v);
    }
    if (this.hasInterrupt()) this.kick();
  }

  // ---- ICR (SDM 10.6.1) ----

  private sendIpi(): void {
    const lo = this.icrLow;
    const vector = lo & 0xff;
    const mode = ((lo >>> 8) & 7) as DeliveryMode;
    if ((mode === DeliveryMode.Fixed || mode === DeliveryMode.LowestPriority) && vector < 16) {
      this.signalError(ESR_SEND_ILLEGAL_VECTOR);
      return;
    }
    this.bus.deliver({
      vector,
      mode,
      logical: ((lo >>> 11) & 1) === 1,
      dest: this.x2apic ? this.icrHigh >>> 0 : this.icrHigh >>> 24,
      wide: this.x2apic,
      assert: ((lo >>> 14) & 1) === 1,
      level: ((lo >>> 15) & 1) === 1,
      shorthand: ((lo >>> 18) & 3) as Shorthand,
      source: this,
    });
  }

  // ---- timer (SDM 10.5.4) ----

  private timerMode(): number {
    return (this.lvt[Lvt.Timer] >>> 17) & 3;
  }

  /** DCR bits 3,1:0 (SDM figure 10-10): 000 -> 2 ... 110 -> 128, 111 -> 1. */
  private divisor(): number {
    const v = (this.timerDivide & 3) | ((this.timerDivide >>> 1) & 4);
    return 1 << ((v + 1) & 7);
  }

  private tickNs(): number {
    return (this.divisor() * 1e9) / APIC_BUS_HZ;
  }

  private stopTimer(): void {
    this.clock.cancel(this.timerId);
    this.timerId = undefined;
  }

  private startTimer(nowNs: number): void {
    this.stopTimer();
    this.timerStartNs = nowNs;
    if (this.timerInitial === 0) return;
    this.timerDeadlineNs = nowNs + this.timerInitial * this.tickNs();
    this.timerId = this.clock.schedule(this.timerDeadlineNs, () => this.timerExpired());
  }

  private timerExpired(): void {
    this.timerId = undefined;
    const mode = this.timerMode();
    if (mode === TIMER_TSC_DEADLINE) {
      this.tscDeadline = 0n;
      this.raiseLvt(Lvt.Timer);
      return;
    }
    this.raiseLvt(Lvt.Timer);
    if (mode === TIMER_PERIODIC && this.timerInitial !== 0) {
      const period = Math.max(this.timerInitial * this.tickNs(), MIN_PERIOD_NS);
      const now = this.clock.nowNs();
      let next = this.timerDeadlineNs + period;
      if (next <= now) next += Math.ceil((now - next + 1) / period) * period; // coalesce
      this.timerDeadlineNs = next;
      this.timerId = this.clock.schedule(next, () => this.timerExpired());
    }
  }

  private currentCount(): number {
    const mode = this.timerMode();
    if (this.timerInitial === 0 || mode === TIMER_TSC_DEADLINE) return 0;
    const elapsed = Math.floor((this.clock.nowNs() - this.timerStartNs) / this.tickNs());
    if (mode === TIMER_PERIODIC) return this.timerInitial - (elapsed % this.timerInitial);
    if (this.timerId === undefined) return 0;
    return Math.max(0, this.timerInitial - elapsed);
  }

  private writeLvt(idx: Lvt, value: number): void {
    let v = (value & LVT_WRITABLE[idx]) | (this.lvt[idx] & LVT_REMOTE_IRR);
    if (!this.softwareEnabled) v |= LVT_MASKED; // SDM 10.4.7.2
    const old = this.lvt[idx];
    this.lvt[idx] = v >>> 0;
    if (idx === Lvt.Timer) {
      const oldMode = (old >>> 17) & 3;
      const newMode = (v >>> 17) & 3;
      if ((oldMode === TIMER_TSC_DEADLINE) !== (newMode === TIMER_TSC_DEADLINE)) {
        // Switching into or out of TSC-deadline mode disarms the timer (SDM 10.5.4.1).
        this.stopTimer();
        this.timerInitial = 0;
        this.tscDeadline = 0n;
      }
    } else if (idx === Lvt.Lint0 || idx === Lvt.Lint1) {
      if (!(v & LVT_MASKED)) this.kick();
    }
  }

  /** IA32_TSC_DEADLINE write (SDM 10.5.4.1): arm at a guest TSC value; 0 disarms. */
  writeTscDeadline(value: bigint): void {
    if (this.timerMode() !== TIMER_TSC_DEADLINE) return; // ignored in other modes
    this.stopTimer();
    this.tscDeadline = BigInt.asUintN(64, value);
    if (this.tscDeadline === 0n) return;
    const platformTsc = this.tscDeadline - this.tscOffset;
    const at = platformTsc <= 0n ? 0 : this.clock.nsFromTsc(platformTsc);
    this.timerId = this.clock.schedule(at, () => this.timerExpired());
  }

  readTscDeadline(): bigint {
    return this.timerMode() === TIMER_TSC_DEADLINE ? this.tscDeadline : 0n;
  }

  // ---- register file ----

  private x2apicLdr(): number {
    return (((this.id >>> 4) << 16) | (1 << (this.id & 15))) >>> 0;
  }

  /** Read a register by its xAPIC offset; undefined for a reserved offset. */
  private readRegister(reg: number): number | undefined {
    if (reg >= REG_ISR && reg < REG_ISR + 0x80) return this.isr[(reg - REG_ISR) >>> 4];
    if (reg >= REG_TMR && reg < REG_TMR + 0x80) return this.tmr[(reg - REG_TMR) >>> 4];
    if (reg >= REG_IRR && reg < REG_IRR + 0x80) return this.irr[(reg - REG_IRR) >>> 4];
    if (reg >= REG_LVT_TIMER && reg <= REG_LVT_ERROR) return this.lvt[(reg - REG_LVT_TIMER) >>> 4];
    switch (reg) {
      case REG_ID:
        return this.x2apic ? this.id : (this.id << 24) >>> 0;
      case REG_VERSION:
        return LAPIC_VERSION | (MAX_LVT_ENTRY << 16);
      case REG_TPR:
        return this.tpr;
      case REG_APR:
        return this.arbitrationPriority();
      case REG_PPR:
        return this.ppr();
      case REG_EOI:
      case REG_RRD:
        return 0;
      case REG_LDR:
        return this.ldr;
      case REG_DFR:
        return this.dfr;
      case REG_SVR:
        return this.svr;
      case REG_ESR:
        return this.esr;
      case REG_ICR_LO:
        return this.icrLow;
      case REG_ICR_HI:
        return this.icrHigh;
      case REG_TIMER_INITIAL:
        return this.timerInitial;
      case REG_TIMER_CURRENT:
        return this.currentCount();
      case REG_TIMER_DIVIDE:
        return this.timerDivide;
      default:
        return undefined;
    }
  }

  /** Write a register by its xAPIC offset; false for a reserved or read-only offset. */
  private writeRegister(reg: number, value: number): boolean {
    value >>>= 0;
    if (reg >= REG_LVT_TIMER && reg <= REG_LVT_ERROR) {
      this.writeLvt(((reg - REG_LVT_TIMER) >>> 4) as Lvt, value);
      return true;
    }
    switch (reg) {
      case REG_ID:
        if (!this.x2apic) this.id = value >>> 24; // read-only in x2APIC mode
        return !this.x2apic;
      case REG_TPR:
        this.tpr = value & 0xff;
        this.kick();
        return true;
      case REG_EOI:
        this.eoi();
        return true;
      case REG_LDR:
        if (this.x2apic) return false;
        this.ldr = (value & 0xff000000) >>> 0;
        return true;
      case REG_DFR:
        if (this.x2apic) return false;
        this.dfr = ((value & 0xf0000000) | 0x0fffffff) >>> 0;
        return true;
      case REG_SVR:
        this.svr = value & SVR_WRITABLE;
        if (!this.softwareEnabled) for (let i = 0; i < 6; i++) this.lvt[i] |= LVT_MASKED;
        this.kick();
        return true;
      case REG_ESR:
        // A write latches the errors seen since the previous write (SDM 10.5.3).
        this.esr = this.esrPending;
        this.esrPending = 0;
        return true;
      case REG_ICR_LO:
        this.icrLow = value & ICR_WRITABLE;
        this.sendIpi();
        return true;
      case REG_ICR_HI:
        if (this.x2apic) return false;
        this.icrHigh = (value & 0xff000000) >>> 0;
        return true;
      case REG_TIMER_INITIAL:
        if (this.timerMode() === TIMER_TSC_DEADLINE) return true; // ignored (SDM 10.5.4.1)
        this.timerInitial = value;
        this.startTimer(this.clock.nowNs());
        return true;
      case REG_TIMER_DIVIDE: {
        const now = this.clock.nowNs();
        const running = this.timerId !== undefined && this.timerMode() !== TIMER_TSC_DEADLINE;
        const remaining = running ? this.currentCount() : 0;
        this.timerDivide = value & 0xb;
        if (running) {
          // Keep the count where it is and go on at the new rate.
          const tick = this.tickNs();
          this.stopTimer();
          this.timerStartNs = now - (this.timerInitial - remaining) * tick;
          this.timerDeadlineNs = now + remaining * tick;
          this.timerId = this.clock.schedule(this.timerDeadlineNs, () => this.timerExpired());
        }
        return true;
      }
      case REG_VERSION:
      case REG_APR:
      case REG_PPR:
      case REG_RRD:
      case REG_TIMER_CURRENT:
        return true; // read-only: the write is dropped
      default:
        if (reg >= REG_ISR && reg < REG_IRR + 0x80) return true; // ISR/TMR/IRR are read-only
        return false;
    }
  }

  // ---- xAPIC MMIO (SDM 10.4.1) ----

  mmioRead(offset: number, size: 1 | 2 | 4): number {
    if (!this.hardwareEnabled || this.x2apic || offset < 0 || offset >= 0x1000) return 0;
    const reg = offset & 0xff0;
    const byte = offset & 0xf;
    const v = this.readRegister(reg);
    if (v === undefined) {
      this.signalError(ESR_ILLEGAL_REGISTER);
      return 0;
    }
    if (byte >= 4) return 0;
    const shifted = v >>> (8 * byte);
    return size === 4 ? shifted >>> 0 : shifted & (size === 2 ? 0xffff : 0xff);
  }

  mmioWrite(offset: number, _size: 1 | 2 | 4, value: number): void {
    if (!this.hardwareEnabled || this.x2apic || offset < 0 || offset >= 0x1000) return;
    if ((offset & 0xf) !== 0) return;
    if (!this.writeRegister(offset, value)) this.signalError(ESR_ILLEGAL_REGISTER);
  }

  // ---- MSRs: IA32_APIC_BASE, IA32_TSC_DEADLINE, x2APIC (SDM 10.12.1.2) ----

  /** Read an MSR this APIC owns; undefined means the CPU should raise #GP(0). */
  msrRead(index: number): bigint | undefined {
    if (index === MSR_IA32_APIC_BASE) return this.apicBase;
    if (index === MSR_IA32_TSC_DEADLINE) return this.readTscDeadline();
    if (index < MSR_X2APIC_FIRST || index > MSR_X2APIC_LAST || !this.x2apic) return undefined;
    const reg = (index - MSR_X2APIC_FIRST) << 4;
    switch (reg) {
      case REG_ICR_LO:
        return (BigInt(this.icrHigh) << 32n) | BigInt(this.icrLow);
      case REG_APR:
      case REG_EOI:
      case REG_RRD:
      case REG_DFR:
      case REG_ICR_HI:
      case REG_SELF_IPI:
        return undefined; // absent or write-only in x2APIC mode (SDM table 10-6)
    }
    const v = this.readRegister(reg);
    return v === undefined ? undefined : BigInt(v >>> 0);
  }

  /** Write an MSR this APIC owns; false means the CPU should raise #GP(0). */
  msrWrite(index: number, value: bigint): boolean {
    value = BigInt.asUintN(64, value);
    if (index === MSR_IA32_APIC_BASE) return this.writeApicBase(value);
    if (index === MSR_IA32_TSC_DEADLINE) {
      this.writeTscDeadline(value);
      return true;
    }
    if (index < MSR_X2APIC_FIRST || index > MSR_X2APIC_LAST || !this.x2apic) return false;
    const reg = (index - MSR_X2APIC_FIRST) << 4;
    const lo = Number(value & 0xffffffffn);
    switch (reg) {
      case REG_ICR_LO:
        this.icrHigh = Number(value >> 32n);
        this.icrLow = lo & ICR_WRITABLE;
        this.sendIpi();
        return true;
      case REG_SELF_IPI: {
        // A fixed, edge-triggered IPI to this APIC (SDM 10.12.11).
        const vector = lo & 0xff;
        if (vector < 16) this.signalError(ESR_SEND_ILLEGAL_VECTOR);
        else this.accept({ vector, mode: DeliveryMode.Fixed, logical: false, dest: this.id, level: false, assert: true, shorthand: Shorthand.Self });
        return true;
      }
      case REG_ID:
      case REG_VERSION:
      case REG_PPR:
      case REG_LDR:
      case REG_TIMER_CURRENT:
      case REG_APR:
      case REG_DFR:
      case REG_ICR_HI:
      case REG_RRD:
        return false;
    }
    if (reg >= REG_ISR && reg < REG_IRR + 0x80) return false;
    if (value >> 32n !== 0n) return false; // reserved upper half must be 0
    return this.writeRegister(reg, lo);
  }

  private writeApicBase(value: bigint): boolean {
    if ((value & ~(BASE_ADDR_MASK | BASE_BSP | BASE_EXTD | BASE_EN)) !== 0n) return false;
    const en = (value & BASE_EN) !== 0n;
    const extd = (value & BASE_EXTD) !== 0n;
    if (extd && !en) return false; // invalid state (SDM 10.12.5 figure 10-27)
    if (this.x2apic && en && !extd) return false; // x2APIC -> xAPIC needs a disable first
    const wasEnabled = this.hardwareEnabled;
    const wasX2 = this.x2apic;
    // BSP is read-only to software in practice; keep ours.
    this.apicBase = (value & (BASE_ADDR_MASK | BASE_EXTD | BASE_EN)) | (this.apicBase & BASE_BSP);
    if (wasEnabled && !en) {
      // Hardware disable: the APIC returns to its power-up state (SDM 10.4.3).
      this.resetRegisters();
      this.nmiPending = false;
      this.initPending = false;
      this.sipiVector = undefined;
    } else if (!wasX2 && extd) {
      this.ldr = this.x2apicLdr(); // SDM 10.12.10.2: LDR is derived from the x2APIC ID
    }
    this.kick();
    return true;
  }
}
