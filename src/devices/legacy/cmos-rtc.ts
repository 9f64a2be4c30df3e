// The PC's real-time clock and CMOS RAM: a Motorola MC146818A (datasheet) behind ports 0x70
// (index; bit 7 is the NMI mask on PCs, ignored here) and 0x71 (data), 128 bytes in all.
//
// Clock registers (MC146818A "Address Map"): 0x00 seconds, 0x01 seconds alarm, 0x02 minutes,
// 0x03 minutes alarm, 0x04 hours, 0x05 hours alarm, 0x06 day of week (1 = Sunday), 0x07 day of
// month, 0x08 month, 0x09 year (two digits); 0x0A-0x0D registers A-D. Byte 0x32 holds the
// century by IBM convention (the ACPI FADT's CENTURY field points at it). The time is not
// stored: it is computed on each read from the host clock plus an offset, so it never drifts;
// guest writes to the time registers change that offset (the guest sets "its" time without
// touching the host's). The clock runs in UTC (what Linux expects from an RTC by default).
//
// Register B selects BCD or binary (DM, bit 2) and 12- or 24-hour format (bit 1; in 12-hour
// format bit 7 of the hours byte means PM); both apply to the time, the alarms and the century.
// Register B's SET bit (7) freezes the clock so software can write a consistent time; clearing
// it starts the clock from what was written.
//
// Register A's UIP bit (7) is 1 during the 244 us before each once-a-second update (datasheet,
// "Update Cycle": with UIP = 0 the time registers are guaranteed stable for at least 244 us).
// The update itself is instantaneous here, so a read either sees the old or the new second,
// never a half-updated time, and Linux's loop (read seconds, check UIP, read the rest, check UIP
// and seconds again) is satisfied.
//
// Interrupts (IRQ 8, optional): register C's PF (periodic, rate from register A RS bits), AF
// (alarm; an alarm byte with bits 7-6 = 11 matches any value) and UF (update ended) flags are
// computed from the clock whenever register C is read; IRQF = PF*PIE + AF*AIE + UF*UIE, and the
// IRQ line is high while IRQF is set (reading register C clears the flags). While an interrupt
// is enabled and not yet pending, a host timer is armed for the next event so the line rises
// without the guest polling. Missing: a periodic rate above the host timer resolution (about
// 1 kHz) delivers at most one interrupt per host timer tick (PF is a flag, so the guest just
// sees fewer ticks); the square-wave output (SQWE) and daylight-saving (DSE) bits are stored
// only; register A's divider bits (DV) do not stop the clock; writes to the day-of-week register
// are ignored (it is always derived from the date).
//
// CMOS RAM bytes set at power-on, where SeaBIOS (and older BIOSes) look for the memory size:
// 0x15/0x16 base memory in KiB (640); 0x17/0x18 and 0x30/0x31 extended memory above 1 MiB in KiB
// (at most 0xFFFF); 0x34/0x35 memory between 16 MiB and 4 GiB in 64 KiB units; 0x5B-0x5D memory
// above 4 GiB in 64 KiB units; 0x5F the number of CPUs minus one (when given); 0x2E/0x2F the
// IBM AT checksum of bytes 0x10-0x2D.

import type { PioDevice } from '../bus.js';
import type { IrqLine } from '../irq.js';
import { readLanes, writeLanes } from './byte-lanes.js';

const REG_SECONDS = 0x00;
const REG_SECONDS_ALARM = 0x01;
const REG_MINUTES = 0x02;
const REG_MINUTES_ALARM = 0x03;
const REG_HOURS = 0x04;
const REG_HOURS_ALARM = 0x05;
const REG_DAY_OF_WEEK = 0x06;
const REG_DAY = 0x07;
const REG_MONTH = 0x08;
const REG_YEAR = 0x09;
const REG_A = 0x0a;
const REG_B = 0x0b;
const REG_C = 0x0c;
const REG_D = 0x0d;
const REG_CENTURY = 0x32;

const A_UIP = 0x80;
const A_WRITABLE = 0x7f;
const A_RS_MASK = 0x0f;
/** DV = 010 (32.768 kHz time base), RS = 0110 (1.024 kHz periodic rate): the usual BIOS value. */
const A_POWER_ON = 0x26;

const B_SET = 0x80;
const B_PIE = 0x40;
const B_AIE = 0x20;
const B_UIE = 0x10;
const B_SQWE = 0x08;
const B_DM_BINARY = 0x04;
const B_24H = 0x02;
const B_POWER_ON = B_24H; // BCD, 24-hour

const C_IRQF = 0x80;
const C_PF = 0x40;
const C_AF = 0x20;
const C_UF = 0x10;

const D_VRT = 0x80; // valid RAM and time: the battery is fine

const ALARM_DONT_CARE = 0xc0;
/** UIP is high this long before each update (MC146818A, with a 32.768 kHz time base). */
const UIP_WINDOW_MS = 0.244;
const DAY_SECONDS = 86400;

const KIB = 1024;
const MIB = 1024 * KIB;

interface Fields {
  sec: number;
  min: number;
  hour: number; // 0-23
  day: number; // 1-31
  month: number; // 1-12
  year: number; // 0-9999
}

/** How the RTC arms its host timer; injectable so tests control time. */
export interface RtcTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const hostTimers: RtcTimers = {
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref(); // the RTC alone must never keep the process alive
    return t;
  },
  clearTimeout(handle) {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};

export interface CmosRtcOptions {
  /** Guest RAM below 4 GiB, in bytes (includes the first MiB). */
  ramBelow4G: number;
  /** Guest RAM mapped from 4 GiB up, in bytes. */
  ramAbove4G: number;
  /** ISA IRQ 8; without it no interrupt is raised (flags in register C still work). */
  irq?: IrqLine;
  /** Host wall clock in milliseconds since the Unix epoch, fractions allowed. Default: the
   *  monotonic clock anchored at process start (`performance.timeOrigin + performance.now()`),
   *  so the guest clock never jumps backwards when the host's is stepped. */
  now?: () => number;
  timers?: RtcTimers;
  /** Written to byte 0x5F (count - 1) when given, where SeaBIOS looks for the CPU count. */
  cpuCount?: number;
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

function fieldsFromMs(ms: number): Fields {
  const d = new Date(ms);
  return {
    sec: d.getUTCSeconds(),
    min: d.getUTCMinutes(),
    hour: d.getUTCHours(),
    day: d.getUTCDate(),
    month: d.getUTCMonth() + 1,
    year: clamp(d.getUTCFullYear(), 0, 9999),
  };
}

function msFromFields(f: Fields): number {
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 to 1900-1999.
  const d = new Date(0);
  d.setUTCFullYear(f.year, f.month - 1, f.day);
  d.setUTCHours(f.hour, f.min, f.sec, 0);
  return d.getTime();
}

function dayOfWeek(f: Fields): number {
  return new Date(msFromFields(f)).getUTCDay() + 1; // MC146818: 1 = Sunday
}

export class CmosRtc implements PioDevice {
  readonly name = 'cmos-rtc';
  private readonly ram = new Uint8Array(128);
  private index = 0;
  private regA = A_POWER_ON;
  private regB = B_POWER_ON;
  private flags = 0; // register C PF/AF/UF
  private offsetMs = 0; // guest time = host time + offset
  private held: Fields | null = null; // the frozen time while register B SET = 1

  private readonly now: () => number;
  private readonly irq: IrqLine | undefined;
  private readonly timers: RtcTimers;
  private irqLevel = false;
  private timer: unknown = undefined;
  private lastHost: number;
  private lastGuest: number;

  constructor(opts: CmosRtcOptions) {
    this.now = opts.now ?? (() => performance.timeOrigin + performance.now());
    this.irq = opts.irq;
    this.timers = opts.timers ?? hostTimers;
    this.lastHost = this.now();
    this.lastGuest = this.lastHost;
    this.writeMemorySize(opts.ramBelow4G, opts.ramAbove4G);
    if (opts.cpuCount !== undefined) this.ram[0x5f] = clamp(Math.floor(opts.cpuCount) - 1, 0, 255);
    this.writeChecksum();
  }

  // ---- host-side helpers ----

  /** The guest's current RTC time in ms since the epoch (what the registers show). */
  guestTime(): number {
    return this.held ? msFromFields(this.held) : this.now() + this.offsetMs;
  }

  /** A CMOS RAM byte as the guest would read it at `index` (for tests and dumps). */
  peek(index: number): number {
    return this.readRegister(index & 0x7f, false);
  }

  /** What the chip's RESET pin does: interrupt enables and flags cleared; time and RAM kept. */
  reset(): void {
    this.index = 0;
    this.regB &= ~(B_PIE | B_AIE | B_UIE | B_SQWE);
    this.flags = 0;
    this.updateIrq();
    this.rearm();
  }

  /** Stop the host timer (the VMM calls this when the VM ends). */
  close(): void {
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }

  // ---- ports ----

  pioRead(offset: number, size: 1 | 2 | 4): number {
    return readLanes(size, (i) => {
      const port = offset + i;
      if (port === 1) return this.readRegister(this.index, true);
      return 0xff; // the index port is write-only; lanes past port 1 are not ours
    });
  }

  pioWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    writeLanes(size, value, (i, b) => {
      const port = offset + i;
      if (port === 0) this.index = b & 0x7f; // bit 7: NMI disable on PCs; not modelled
      else if (port === 1) this.writeRegister(this.index, b);
    });
  }

  // ---- registers ----

  private readRegister(idx: number, sideEffects: boolean): number {
    switch (idx) {
      case REG_SECONDS: return this.encode(this.fields().sec);
      case REG_MINUTES: return this.encode(this.fields().min);
      case REG_HOURS: return this.encodeHour(this.fields().hour);
      case REG_DAY_OF_WEEK: return this.encode(dayOfWeek(this.fields()));
      case REG_DAY: return this.encode(this.fields().day);
      case REG_MONTH: return this.encode(this.fields().month);
      case REG_YEAR: return this.encode(this.fields().year % 100);
      case REG_CENTURY: return this.encode(Math.floor(this.fields().year / 100));
      case REG_A: return this.regA | (this.updateInProgress() ? A_UIP : 0);
      case REG_B: return this.regB;
      case REG_C: {
        if (!sideEffects) return this.flags | (this.irqf() ? C_IRQF : 0);
        this.catchUp();
        const v = this.flags | (this.irqf() ? C_IRQF : 0);
        this.flags = 0; // reading C clears all its flags and so the interrupt
        this.updateIrq();
        this.rearm();
        return v;
      }
      case REG_D: return D_VRT;
      default: return this.ram[idx & 0x7f];
    }
  }

  private writeRegister(idx: number, v: number): void {
    switch (idx) {
      case REG_SECONDS: this.setField((f) => { f.sec = clamp(this.decode(v), 0, 59); }); return;
      case REG_MINUTES: this.setField((f) => { f.min = clamp(this.decode(v), 0, 59); }); return;
      case REG_HOURS: this.setField((f) => { f.hour = this.decodeHour(v); }); return;
      case REG_DAY_OF_WEEK: return; // derived from the date
      case REG_DAY: this.setField((f) => { f.day = clamp(this.decode(v), 1, 31); }); return;
      case REG_MONTH: this.setField((f) => { f.month = clamp(this.decode(v), 1, 12); }); return;
      case REG_YEAR:
        this.setField((f) => { f.year = Math.floor(f.year / 100) * 100 + clamp(this.decode(v), 0, 99); });
        return;
      case REG_CENTURY:
        this.setField((f) => { f.year = clamp(this.decode(v), 0, 99) * 100 + (f.year % 100); });
        return;
      case REG_SECONDS_ALARM:
      case REG_MINUTES_ALARM:
      case REG_HOURS_ALARM:
        this.catchUp(); // events so far are judged against the old alarm
        this.ram[idx] = v;
        this.rearm();
        return;
      case REG_A:
        this.catchUp();
        this.regA = v & A_WRITABLE; // UIP is read-only
        this.rearm();
        return;
      case REG_B:
        this.writeRegB(v);
        return;
      case REG_C:
      case REG_D:
        return; // read-only
      default:
        this.ram[idx & 0x7f] = v;
        return;
    }
  }

  private writeRegB(v: number): void {
    this.catchUp();
    const old = this.regB;
    // Setting SET also clears UIE (MC146818A, register B bit 4).
    if (v & B_SET) v &= ~B_UIE;
    if (!(old & B_SET) && v & B_SET) {
      this.held = fieldsFromMs(this.now() + this.offsetMs);
    } else if (old & B_SET && !(v & B_SET) && this.held) {
      // The clock restarts from the written time, its next second one second from now.
      const host = this.now();
      this.offsetMs = msFromFields(this.held) - host;
      this.held = null;
      this.lastGuest = host + this.offsetMs;
    }
    this.regB = v;
    this.updateIrq(); // IRQF follows the enables at once
    this.rearm();
  }

  /** Apply a guest write to one time field, keeping the others (and the fraction of second). */
  private setField(change: (f: Fields) => void): void {
    this.catchUp();
    if (this.held) {
      change(this.held);
      return;
    }
    const host = this.now();
    const guest = host + this.offsetMs;
    const frac = ((guest % 1000) + 1000) % 1000;
    const f = fieldsFromMs(guest);
    change(f);
    this.offsetMs = msFromFields(f) + frac - host;
    this.lastGuest = host + this.offsetMs; // a jump in time is not a string of updates
    this.rearm();
  }

  private fields(): Fields {
    return this.held ?? fieldsFromMs(this.now() + this.offsetMs);
  }

  private updateInProgress(): boolean {
    if (this.held) return false; // SET inhibits updates (and clears UIP)
    const guest = this.now() + this.offsetMs;
    const frac = ((guest % 1000) + 1000) % 1000;
    return frac >= 1000 - UIP_WINDOW_MS;
  }

  // ---- BCD / binary, 12 / 24 hours ----

  private encode(v: number): number {
    if (this.regB & B_DM_BINARY) return v & 0xff;
    return ((Math.floor(v / 10) % 10) << 4) | v % 10;
  }

  private decode(b: number): number {
    if (this.regB & B_DM_BINARY) return b;
    return (b >> 4) * 10 + (b & 0x0f); // nibbles above 9 give out-of-range values, clamped by callers
  }

  private encodeHour(h: number): number {
    if (this.regB & B_24H) return this.encode(h);
    const h12 = h % 12 === 0 ? 12 : h % 12;
    return this.encode(h12) | (h >= 12 ? 0x80 : 0);
  }

  private decodeHour(b: number): number {
    if (this.regB & B_24H) return clamp(this.decode(b), 0, 23);
    const h12 = clamp(this.decode(b & 0x7f), 1, 12);
    return (h12 % 12) + (b & 0x80 ? 12 : 0);
  }

  /** An alarm byte as a number to compare with, or -1 for "any", or NaN if it can never match. */
  private alarmValue(b: number, hours: boolean): number {
    if ((b & ALARM_DONT_CARE) === ALARM_DONT_CARE) return -1;
    if (hours && !(this.regB & B_24H)) {
      const h12 = this.decode(b & 0x7f);
      if (h12 < 1 || h12 > 12) return NaN;
      return (h12 % 12) + (b & 0x80 ? 12 : 0);
    }
    const v = this.decode(b);
    return v <= (hours ? 23 : 59) ? v : NaN;
  }

  // ---- interrupts ----

  private periodicHz(): number {
    const rs = this.regA & A_RS_MASK;
    if (rs === 0) return 0;
    // MC146818A periodic rate table with a 32.768 kHz time base: RS 1 and 2 give 256 and 128 Hz,
    // RS 3-15 give 65536 >> RS (8192 Hz down to 2 Hz).
    if (rs === 1) return 256;
    if (rs === 2) return 128;
    return 65536 >> rs;
  }

  private irqf(): boolean {
    return (
      (this.flags & C_PF && this.regB & B_PIE) ||
      (this.flags & C_AF && this.regB & B_AIE) ||
      (this.flags & C_UF && this.regB & B_UIE)
    ) ? true : false;
  }

  /** Set PF/UF/AF for whatever happened since the last look. */
  private catchUp(): void {
    const host = this.now();
    if (!(host >= this.lastHost)) {
      // The host clock went backwards (or is not a number): start over from here.
      this.lastHost = host;
      this.lastGuest = host + this.offsetMs;
      return;
    }
    const hz = this.periodicHz();
    if (hz > 0 && Math.floor((host * hz) / 1000) > Math.floor((this.lastHost * hz) / 1000)) this.flags |= C_PF;
    if (!this.held) {
      const guest = host + this.offsetMs;
      const s0 = Math.floor(this.lastGuest / 1000);
      const s1 = Math.floor(guest / 1000);
      if (s1 > s0) {
        this.flags |= C_UF;
        if (this.alarmHit(s0 + 1, s1)) this.flags |= C_AF;
      }
      this.lastGuest = guest;
    }
    this.lastHost = host;
    this.updateIrq();
  }

  /** Whether the alarm matches at any whole second in [from, to] (seconds since the epoch). */
  private alarmHit(from: number, to: number): boolean {
    const as = this.alarmValue(this.ram[REG_SECONDS_ALARM], false);
    const am = this.alarmValue(this.ram[REG_MINUTES_ALARM], false);
    const ah = this.alarmValue(this.ram[REG_HOURS_ALARM], true);
    if (Number.isNaN(as) || Number.isNaN(am) || Number.isNaN(ah)) return false;
    if (to - from >= DAY_SECONDS) return true; // a whole day went by: every valid alarm fired
    for (let s = from; s <= to; s++) {
      const sod = ((s % DAY_SECONDS) + DAY_SECONDS) % DAY_SECONDS;
      if (
        (as < 0 || sod % 60 === as) &&
        (am < 0 || Math.floor(sod / 60) % 60 === am) &&
        (ah < 0 || Math.floor(sod / 3600) === ah)
      ) return true;
    }
    return false;
  }

  private updateIrq(): void {
    if (!this.irq) return;
    const level = this.irqf();
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq.set(level);
    }
  }

  /** Arm the host timer for the next event that would raise IRQF (none if IRQF is already set
   *  or no interrupt is enabled: then no timer runs at all). */
  private rearm(): void {
    if (this.timer !== undefined) {
      this.timers.clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (!this.irq || this.irqf()) return;
    const host = this.now();
    let next = Infinity;
    const hz = this.periodicHz();
    if (this.regB & B_PIE && hz > 0) next = Math.min(next, ((Math.floor((host * hz) / 1000) + 1) * 1000) / hz);
    if (!this.held && this.regB & (B_UIE | B_AIE)) {
      const guest = host + this.offsetMs;
      next = Math.min(next, host + (1000 - (((guest % 1000) + 1000) % 1000)));
    }
    if (!Number.isFinite(next)) return;
    const delay = Math.max(1, Math.ceil(next - host));
    this.timer = this.timers.setTimeout(() => {
      this.timer = undefined;
      this.catchUp();
      this.rearm();
    }, delay);
  }

  // ---- power-on CMOS contents ----

  private writeMemorySize(below4G: number, above4G: number): void {
    const below = Math.max(0, Math.floor(below4G) || 0);
    const above = Math.max(0, Math.floor(above4G) || 0);
    const put16 = (lo: number, v: number): void => {
      this.ram[lo] = v & 0xff;
      this.ram[lo + 1] = (v >> 8) & 0xff;
    };
    put16(0x15, Math.min(Math.floor(below / KIB), 640));
    const ext = below > MIB ? Math.min(Math.floor((below - MIB) / KIB), 0xffff) : 0;
    put16(0x17, ext);
    put16(0x30, ext);
    const ext2 = below > 16 * MIB ? Math.min(Math.floor((below - 16 * MIB) / (64 * KIB)), 0xffff) : 0;
    put16(0x34, ext2);
    const high = Math.min(Math.floor(above / (64 * KIB)), 0xffffff);
    this.ram[0x5b] = high & 0xff;
    this.ram[0x5c] = (high >> 8) & 0xff;
    this.ram[0x5d] = (high >> 16) & 0xff;
  }

  private writeChecksum(): void {
    let sum = 0;
    for (let i = 0x10; i <= 0x2d; i++) sum += this.ram[i];
    this.ram[0x2e] = (sum >> 8) & 0xff;
    this.ram[0x2f] = sum & 0xff;
  }
}
