// The ACPI fixed-hardware register block (ACPI 6.4 section 4.8, "ACPI Hardware Specification",
// fixed hardware registers in 4.8.3): what the FADT's PM1a_EVT_BLK, PM1a_CNT_BLK and PM_TMR_BLK
// point at. Layout at ACPI_PM_BASE (see platform-layout.ts), all little-endian:
//
//   +0  PM1_STS  (16 bits)  event status, write 1 to clear (4.8.3.1.1)
//   +2  PM1_EN   (16 bits)  event enables (4.8.3.1.2)
//   +4  PM1_CNT  (16 bits)  control: SCI_EN, SLP_TYP, SLP_EN (4.8.3.2.1)
//   +6  (reserved, reads 0)
//   +8  PM_TMR   (32-bit read, 24 bits of count) (4.8.3.3)
//
// Choices, kept consistent with what our FADT says:
// - PM_TMR is 24 bits (FADT flag TMR_VAL_EXT = 0): bits 24-31 read 0 and TMR_STS is set each
//   time bit 23 changes. It counts at 3.579545 MHz from the host's monotonic clock, starting at
//   0 when the device is created, so it is monotonic and wraps every ~4.69 s like the real one.
// - SCI_EN (PM1_CNT bit 0) reads 1 from power-on: there is no SMI/legacy mode to leave (the FADT
//   has SMI_CMD = 0), so the machine is in ACPI mode from the start. The SCI is raised only
//   while SCI_EN is set (with SCI_EN = 0 events would go to SMI, which does not exist).
// - The SCI is a level (ACPI 5.2.9: SCI is a shareable, level-sensitive, active-high interrupt
//   by default): high while any status bit with an enable bit is set and enabled, low otherwise.
// - Writing SLP_TYP = ACPI_S5_SLP_TYP with SLP_EN powers the machine off. Any other sleep type
//   is not supported: it is logged and answered as an immediate wake (WAK_STS is set), because
//   OSPM spins reading WAK_STS after entering S1-S3 and would otherwise hang.
// - TMR_STS is brought up to date whenever the block is accessed (and so is the SCI level); a
//   guest that enables TMR_EN and then never touches the block gets no timer SCI. Linux uses
//   the PM timer only as a clocksource and never sets TMR_EN.
// - Not modelled: BM_STS/GBL_STS/RTC_STS sources (nothing sets them), SLPBTN (no sleep button),
//   the PM1b blocks and GPE blocks (the FADT describes none).

import type { PioDevice } from '../bus.js';
import type { IrqLine } from '../irq.js';
import type { MachineControl } from '../../vmm/machine-control.js';
import { ACPI_S5_SLP_TYP } from '../../vmm/platform-layout.js';
import { readLanes, writeLanes } from './byte-lanes.js';

// PM1_STS / PM1_EN bits (ACPI 6.4 tables 4.16 and 4.17).
export const PM1_TMR_STS = 0x0001;
export const PM1_BM_STS = 0x0010;
export const PM1_GBL_STS = 0x0020;
export const PM1_PWRBTN_STS = 0x0100;
export const PM1_SLPBTN_STS = 0x0200;
export const PM1_RTC_STS = 0x0400;
export const PM1_PCIEXP_WAKE_STS = 0x4000;
export const PM1_WAK_STS = 0x8000;
const STS_MASK =
  PM1_TMR_STS | PM1_BM_STS | PM1_GBL_STS | PM1_PWRBTN_STS | PM1_SLPBTN_STS | PM1_RTC_STS | PM1_PCIEXP_WAKE_STS | PM1_WAK_STS;
export const PM1_TMR_EN = 0x0001;
export const PM1_GBL_EN = 0x0020;
export const PM1_PWRBTN_EN = 0x0100;
export const PM1_SLPBTN_EN = 0x0200;
export const PM1_RTC_EN = 0x0400;
const PM1_PCIEXP_WAKE_DIS = 0x4000;
const EN_MASK = PM1_TMR_EN | PM1_GBL_EN | PM1_PWRBTN_EN | PM1_SLPBTN_EN | PM1_RTC_EN | PM1_PCIEXP_WAKE_DIS;
/** Status bits whose enable bit (same position) routes them to the SCI. */
const SCI_SOURCES = PM1_TMR_STS | PM1_GBL_STS | PM1_PWRBTN_STS | PM1_SLPBTN_STS | PM1_RTC_STS;

// PM1_CNT bits (ACPI 6.4 table 4.18).
export const PM1_SCI_EN = 0x0001;
const PM1_BM_RLD = 0x0002;
const PM1_CNT_STORED = PM1_SCI_EN | PM1_BM_RLD; // GBL_RLS (bit 2) is write-only, would signal the BIOS
const SLP_TYP_SHIFT = 10;
const SLP_TYP_MASK = 0x7;
export const PM1_SLP_EN = 0x2000;

/** ACPI 6.4 4.8.3.3: the power management timer runs at 3.579545 MHz. */
export const PM_TIMER_HZ = 3579545;
const TIMER_MODULUS = 0x1000000; // 24 bits (TMR_VAL_EXT = 0)
const TIMER_MSB_PERIOD = 0x800000; // TMR_STS is set when bit 23 toggles

// Byte offsets inside the block.
const OFF_STS = 0;
const OFF_EN = 2;
const OFF_CNT = 4;
const OFF_TMR = 8;

export interface AcpiPmOptions {
  /** The SCI (ISA IRQ 9, level-triggered). */
  sci: IrqLine;
  control: MachineControl;
  /** Monotonic host clock in milliseconds (fractions allowed). Default: performance.now(). */
  now?: () => number;
  /** Where to report unsupported requests (e.g. a sleep state other than S5). */
  log?: (line: string) => void;
}

export class AcpiPm implements PioDevice {
  readonly name = 'acpi-pm';
  private sts = 0;
  private en = 0;
  private cnt = PM1_SCI_EN;
  private slpTyp = 0;
  private readonly now: () => number;
  private readonly start: number;
  private lastMsbPeriod = 0;
  private sciLevel = false;
  private readonly sci: IrqLine;
  private readonly control: MachineControl;
  private readonly log: (line: string) => void;

  constructor(opts: AcpiPmOptions) {
    this.sci = opts.sci;
    this.control = opts.control;
    this.now = opts.now ?? (() => performance.now());
    this.log = opts.log ?? (() => {});
    this.start = this.now();
  }

  /** The power button was pressed (e.g. `tsvm stop`): sets PWRBTN_STS, which raises the SCI
   *  if the guest enabled PWRBTN_EN. Returns whether it did: if not, the guest has no ACPI
   *  driver listening and the VMM should fall back to a hard stop. */
  pressPowerButton(): boolean {
    this.refreshTimerStatus();
    this.sts |= PM1_PWRBTN_STS;
    this.updateSci();
    return (this.en & PM1_PWRBTN_EN) !== 0 && (this.cnt & PM1_SCI_EN) !== 0;
  }

  /** The 24-bit PM_TMR value now. */
  timerValue(): number {
    return this.ticks() % TIMER_MODULUS;
  }

  /** Power-on state (the timer keeps running, as it does across a real reset). */
  reset(): void {
    this.sts = 0;
    this.en = 0;
    this.cnt = PM1_SCI_EN;
    this.slpTyp = 0;
    this.updateSci();
  }

  pioRead(offset: number, size: 1 | 2 | 4): number {
    this.refreshTimerStatus();
    const tmr = this.timerValue(); // sampled once, so the bytes of one read agree
    return readLanes(size, (i) => this.readByte(offset + i, tmr));
  }

  pioWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    this.refreshTimerStatus();
    writeLanes(size, value, (i, b) => this.writeByte(offset + i, b));
    this.updateSci();
  }

  private readByte(off: number, tmr: number): number {
    switch (off) {
      case OFF_STS: return this.sts & 0xff;
      case OFF_STS + 1: return this.sts >> 8;
      case OFF_EN: return this.en & 0xff;
      case OFF_EN + 1: return this.en >> 8;
      case OFF_CNT: return this.cnt & 0xff;
      case OFF_CNT + 1: return (this.slpTyp & SLP_TYP_MASK) << (SLP_TYP_SHIFT - 8); // SLP_EN reads 0
      case OFF_TMR: return tmr & 0xff;
      case OFF_TMR + 1: return (tmr >> 8) & 0xff;
      case OFF_TMR + 2: return (tmr >> 16) & 0xff;
      case OFF_TMR + 3: return 0; // TMR_VAL_EXT = 0: bits 24-31 are zero
      default: return 0; // reserved bytes 6-7, and lanes outside the block
    }
  }

  private writeByte(off: number, b: number): void {
    switch (off) {
      case OFF_STS:
      case OFF_STS + 1: {
        // Write 1 to clear; 0 bits leave the status alone (ACPI 4.8.3.1.1).
        const mask = (off === OFF_STS ? b : b << 8) & STS_MASK;
        this.sts &= ~mask;
        return;
      }
      case OFF_EN:
        this.en = ((this.en & 0xff00) | b) & EN_MASK;
        return;
      case OFF_EN + 1:
        this.en = ((this.en & 0x00ff) | (b << 8)) & EN_MASK;
        return;
      case OFF_CNT:
        this.cnt = b & PM1_CNT_STORED;
        return;
      case OFF_CNT + 1: {
        // SLP_TYP (bits 10-12) and SLP_EN (bit 13) share this byte, so a 16-bit write and a
        // byte write of the high half behave the same.
        this.slpTyp = (b >> (SLP_TYP_SHIFT - 8)) & SLP_TYP_MASK;
        if (b & (PM1_SLP_EN >> 8)) this.sleep(this.slpTyp);
        return;
      }
      default:
        return; // the timer is read-only; reserved bytes and lanes outside the block ignored
    }
  }

  private sleep(slpTyp: number): void {
    if (slpTyp === ACPI_S5_SLP_TYP) {
      this.control.requestStop({ kind: 'poweroff' });
      return;
    }
    this.log(`acpi-pm: guest asked for sleep type ${slpTyp} (only S5 = ${ACPI_S5_SLP_TYP} is supported); waking it at once`);
    this.sts |= PM1_WAK_STS;
  }

  private ticks(): number {
    const ms = this.now() - this.start;
    if (!(ms > 0)) return 0;
    return Math.floor((ms * PM_TIMER_HZ) / 1000);
  }

  /** TMR_STS: set when the counter's bit 23 changed since we last looked. */
  private refreshTimerStatus(): void {
    const period = Math.floor(this.ticks() / TIMER_MSB_PERIOD);
    if (period !== this.lastMsbPeriod) {
      this.lastMsbPeriod = period;
      this.sts |= PM1_TMR_STS;
      this.updateSci();
    }
  }

  private updateSci(): void {
    const level = (this.cnt & PM1_SCI_EN) !== 0 && (this.sts & this.en & SCI_SOURCES) !== 0;
    if (level !== this.sciLevel) {
      this.sciLevel = level;
      this.sci.set(level);
    }
  }
}
