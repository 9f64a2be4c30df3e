// A 16550A UART (the PC's COM port), as described by the National Semiconductor / TI PC16550D
// datasheet: eight byte registers, a 16-byte receive FIFO, four prioritised interrupt sources,
// a divisor latch behind LCR.DLAB, modem control and a loopback test mode.
//
// What is modelled and why:
// - Transmission is instantaneous: a byte written to THR goes straight to `onTransmit`, so THRE
//   and TEMT (LSR bits 5 and 6) always read 1 and the baud rate (DLL/DLM) is only stored. A
//   guest never waits on the line, which is what a virtual console wants.
// - Host input first lands in an input queue (bounded, default 64 KiB) in front of the chip's
//   16-byte receive FIFO; the FIFO is refilled from that queue as the guest reads RBR. Pasted or
//   piped text therefore arrives intact at whatever pace the guest drains it, instead of
//   overrunning a 16-byte FIFO. What does not fit in the queue is dropped, counted, and reported
//   to the guest as an overrun (LSR.OE), the only way a UART can say "data was lost".
// - The receive "character timeout" indication (IIR = 0xC) normally fires four character times
//   after the last byte when the FIFO holds fewer bytes than the trigger level. There is no
//   line time here, so it is reported at once: a guest sees any received byte immediately,
//   either as "data available" (at or above the trigger level) or "timeout" (below it). Linux
//   treats the two alike (it drains RBR while LSR.DR is set).
// - The interrupt output is a level, as the chip's INTR pin is: high while an enabled interrupt
//   is pending (and MCR.OUT2 connects it, below), low otherwise. On a PC that pin drives an
//   edge-triggered ISA IRQ input; the 8259/IOAPIC model (or KVM's in-kernel one) sees a rising
//   edge each time the level goes from low to high. Linux is happy with that because its 8250
//   handler keeps reading IIR until it says "no interrupt pending" (the level is then low), so
//   anything that becomes pending afterwards produces a fresh edge. A source that becomes
//   pending while another is still pending produces no new edge but is found by that same loop.
// - MCR.OUT2 gates the interrupt: PC serial cards route INTR to the bus through a buffer enabled
//   by the OUT2 output pin, and OS drivers set OUT2 to enable interrupts. In loopback mode the
//   datasheet forces the OUT pins inactive, so on a PC no interrupt reaches the bus then either.
// - The modem inputs of a console have no real line: outside loopback CTS, DSR and DCD read as
//   asserted (a terminal is attached, carrier present) and RI as inactive.
// - Not modelled: parity/framing errors and break (never happen on a virtual line), the DMA mode
//   bit, the transmitter FIFO (nothing ever waits in it).

import type { PioDevice } from '../bus.js';
import type { IrqLine } from '../irq.js';
import { readLanes, writeLanes } from './byte-lanes.js';

// Register offsets (datasheet, "Register Summary"; DLL/DLM replace RBR/IER when LCR.DLAB = 1).
const REG_DATA = 0; // RBR (read) / THR (write) / DLL (DLAB)
const REG_IER = 1; // IER / DLM (DLAB)
const REG_IIR_FCR = 2; // IIR (read) / FCR (write)
const REG_LCR = 3;
const REG_MCR = 4;
const REG_LSR = 5;
const REG_MSR = 6;
const REG_SCR = 7;

// IER: the four interrupt enables (bits 4-7 are always 0 on a 16550A).
const IER_ERBFI = 0x01; // received data available (and character timeout)
const IER_ETBEI = 0x02; // transmitter holding register empty
const IER_ELSI = 0x04; // receiver line status
const IER_EDSSI = 0x08; // modem status
const IER_MASK = 0x0f;

// IIR: bit 0 = 1 means nothing pending; bits 1-3 identify the highest-priority source;
// bits 6-7 are both set while FCR0 (FIFO enable) is set.
const IIR_NONE = 0x01;
const IIR_LINE_STATUS = 0x06; // priority 1
const IIR_RX_DATA = 0x04; // priority 2
const IIR_RX_TIMEOUT = 0x0c; // priority 2
const IIR_THR_EMPTY = 0x02; // priority 3
const IIR_MODEM_STATUS = 0x00; // priority 4
const IIR_FIFOS_ENABLED = 0xc0;

// FCR (write-only).
const FCR_ENABLE = 0x01;
const FCR_RX_RESET = 0x02;
const RX_TRIGGER_LEVELS = [1, 4, 8, 14] as const; // FCR bits 7:6

const LCR_DLAB = 0x80;

// MCR (bits 5-7 are always 0 on a 16550A).
const MCR_DTR = 0x01;
const MCR_RTS = 0x02;
const MCR_OUT1 = 0x04;
const MCR_OUT2 = 0x08;
const MCR_LOOP = 0x10;
const MCR_MASK = 0x1f;

// LSR.
const LSR_DR = 0x01;
const LSR_OE = 0x02;
const LSR_PE = 0x04;
const LSR_FE = 0x08;
const LSR_BI = 0x10;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;
const LSR_ERRORS = LSR_OE | LSR_PE | LSR_FE | LSR_BI; // cleared by reading LSR

// MSR: bits 0-3 are "changed since last read" flags, bits 4-7 the current inputs.
const MSR_DCTS = 0x01;
const MSR_DDSR = 0x02;
const MSR_TERI = 0x04;
const MSR_DDCD = 0x08;
const MSR_CTS = 0x10;
const MSR_DSR = 0x20;
const MSR_RI = 0x40;
const MSR_DCD = 0x80;
const MSR_DELTAS = 0x0f;
/** A terminal that is attached and ready: CTS, DSR and DCD asserted, no ring. */
const MSR_LINE_INPUTS = MSR_CTS | MSR_DSR | MSR_DCD;

const RX_FIFO_SIZE = 16;
export const DEFAULT_UART_INPUT_QUEUE = 64 * 1024;

export interface Uart16550Options {
  /** Interrupt line (ISA IRQ 4 for COM1). */
  irq: IrqLine;
  /** Called with each byte the guest transmits (not in loopback mode). */
  onTransmit?: (byte: number) => void;
  /** Bound of the host input queue in bytes (default 64 KiB; at least 1). */
  inputQueueBytes?: number;
  /** Name for logs and bus dumps (default "uart"). */
  name?: string;
}

export interface Uart16550Stats {
  /** Bytes the guest transmitted to the host (THR writes outside loopback). */
  bytesOut: number;
  /** Host bytes accepted into the input queue. */
  bytesIn: number;
  /** Host bytes dropped because the input queue was full. */
  inputDropped: number;
  /** Receive overruns seen by the guest (full FIFO in loopback, or dropped host input). */
  overruns: number;
}

export class Uart16550 implements PioDevice {
  readonly name: string;
  /** The console sink; may be replaced after construction (e.g. by SerialConsole.attach). */
  onTransmit: ((byte: number) => void) | undefined;
  /** Called (synchronously, from inside a guest register access) when the host input queue
   *  becomes empty, so a producer that paused can send more. Must not re-enter the UART. */
  onInputDrained: (() => void) | undefined;
  readonly stats: Uart16550Stats = { bytesOut: 0, bytesIn: 0, inputDropped: 0, overruns: 0 };

  private readonly irq: IrqLine;
  private irqLevel = false;

  private dll = 0x01; // 115200 baud with the PC's 1.8432 MHz clock
  private dlm = 0x00;
  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  private scr = 0;
  private fifoEnabled = false;
  private rxTrigger = 1;
  private lineErrors = 0; // LSR error bits waiting to be read
  private msrDeltas = 0;
  private thrEmptyPending = false;

  private readonly rxFifo = new Uint8Array(RX_FIFO_SIZE);
  private rxHead = 0;
  private rxCount = 0;
  private lastRx = 0;

  private readonly queue: Uint8Array;
  private qHead = 0;
  private qCount = 0;

  constructor(opts: Uart16550Options) {
    this.irq = opts.irq;
    this.onTransmit = opts.onTransmit;
    this.onInputDrained = undefined;
    this.name = opts.name ?? 'uart';
    const cap = Math.floor(opts.inputQueueBytes ?? DEFAULT_UART_INPUT_QUEUE);
    this.queue = new Uint8Array(Number.isFinite(cap) && cap >= 1 ? cap : DEFAULT_UART_INPUT_QUEUE);
  }

  // ---- host side ----

  /** Queue host input for the guest. Returns how many bytes were accepted; the rest is dropped,
   *  counted, and flagged to the guest as an overrun. */
  receive(bytes: Uint8Array): number {
    const cap = this.queue.length;
    const accepted = Math.min(bytes.length, cap - this.qCount);
    let tail = (this.qHead + this.qCount) % cap;
    for (let i = 0; i < accepted; i++) {
      this.queue[tail] = bytes[i];
      tail = tail + 1 === cap ? 0 : tail + 1;
    }
    this.qCount += accepted;
    this.stats.bytesIn += accepted;
    const dropped = bytes.length - accepted;
    if (dropped > 0) {
      this.stats.inputDropped += dropped;
      this.stats.overruns++;
      this.lineErrors |= LSR_OE;
    }
    this.refillFifo();
    this.updateIrq();
    return accepted;
  }

  /** Host bytes waiting in the input queue (not yet in the guest-visible FIFO). */
  get inputQueued(): number { return this.qCount; }
  /** How many more host bytes `receive` would accept now. */
  get inputSpace(): number { return this.queue.length - this.qCount; }

  /** Power-on state of the chip's registers (the host input queue is kept). */
  reset(): void {
    this.dll = 0x01;
    this.dlm = 0;
    this.ier = 0;
    this.lcr = 0;
    this.mcr = 0;
    this.scr = 0;
    this.fifoEnabled = false;
    this.rxTrigger = 1;
    this.lineErrors = 0;
    this.msrDeltas = 0;
    this.thrEmptyPending = false;
    this.rxHead = 0;
    this.rxCount = 0;
    this.refillFifo();
    this.updateIrq();
  }

  // ---- guest side ----

  pioRead(offset: number, size: 1 | 2 | 4): number {
    return readLanes(size, (i) => this.readRegister(offset + i));
  }

  pioWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    writeLanes(size, value, (i, b) => this.writeRegister(offset + i, b));
  }

  private readRegister(reg: number): number {
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (reg) {
      case REG_DATA:
        return dlab ? this.dll : this.readRbr();
      case REG_IER:
        return dlab ? this.dlm : this.ier;
      case REG_IIR_FCR:
        return this.readIir();
      case REG_LCR:
        return this.lcr;
      case REG_MCR:
        return this.mcr;
      case REG_LSR:
        return this.readLsr();
      case REG_MSR: {
        const v = this.modemInputs() | this.msrDeltas;
        this.msrDeltas = 0; // reading MSR clears the delta bits and the modem-status interrupt
        this.updateIrq();
        return v;
      }
      case REG_SCR:
        return this.scr;
      default:
        return 0xff; // a lane past the eight ports: nothing drives the bus
    }
  }

  private writeRegister(reg: number, v: number): void {
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (reg) {
      case REG_DATA:
        if (dlab) this.dll = v;
        else this.writeThr(v);
        return;
      case REG_IER:
        if (dlab) this.dlm = v;
        else this.writeIer(v);
        return;
      case REG_IIR_FCR:
        this.writeFcr(v);
        return;
      case REG_LCR:
        this.lcr = v;
        return;
      case REG_MCR:
        this.writeMcr(v);
        return;
      case REG_SCR:
        this.scr = v;
        return;
      default:
        // LSR and MSR writes are factory-test features (datasheet); ignored, as are lanes past
        // the eight ports.
        return;
    }
  }

  private readRbr(): number {
    if (this.rxCount > 0) {
      this.lastRx = this.rxFifo[this.rxHead];
      this.rxHead = (this.rxHead + 1) % RX_FIFO_SIZE;
      this.rxCount--;
      const hadQueued = this.qCount > 0;
      this.refillFifo();
      this.updateIrq();
      if (hadQueued && this.qCount === 0) this.onInputDrained?.();
    }
    // An empty RBR keeps returning the last byte, as the holding register does.
    return this.lastRx;
  }

  private readIir(): number {
    const id = this.pendingInterrupt();
    // Reading IIR when it reports THRE clears that source (datasheet, "Interrupt Control
    // Functions": THRE is reset by reading IIR if it is the source, or by writing THR).
    if (id === IIR_THR_EMPTY) {
      this.thrEmptyPending = false;
      this.updateIrq();
    }
    return id | (this.fifoEnabled ? IIR_FIFOS_ENABLED : 0);
  }

  private readLsr(): number {
    const v = (this.rxCount > 0 ? LSR_DR : 0) | this.lineErrors | LSR_THRE | LSR_TEMT;
    // OE/PE/FE/BI are cleared by reading LSR, which also clears the line-status interrupt.
    // Bit 7 (error in RCVR FIFO) stays 0: PE/FE/BI never occur on this line.
    if (this.lineErrors !== 0) {
      this.lineErrors = 0;
      this.updateIrq();
    }
    return v;
  }

  private writeThr(v: number): void {
    if (this.mcr & MCR_LOOP) {
      // Loopback: the transmitter output is wired to the receiver input inside the chip and the
      // serial output pin is held in the marking state, so nothing reaches the host.
      this.pushRx(v);
    } else {
      this.stats.bytesOut++;
      this.onTransmit?.(v);
    }
    // The byte leaves THR at once, so THR is empty again: the THRE interrupt condition that the
    // write cleared is immediately re-armed.
    this.thrEmptyPending = true;
    this.updateIrq();
  }

  private writeIer(v: number): void {
    const old = this.ier;
    this.ier = v & IER_MASK;
    // Enabling ETBEI while THR is empty raises a THRE interrupt right away (it always is empty
    // here). Linux relies on this: its startup probe sets IER.THRI, reads IIR, clears IER, sets
    // it again and expects THRE to be reported a second time (the "UART_BUG_THRE" test).
    if (!(old & IER_ETBEI) && (this.ier & IER_ETBEI)) this.thrEmptyPending = true;
    this.updateIrq();
  }

  private writeFcr(v: number): void {
    const enable = (v & FCR_ENABLE) !== 0;
    if (enable !== this.fifoEnabled) {
      // Changing FCR0 clears both FIFOs (datasheet, FCR bit 0).
      this.clearRxFifo();
      this.fifoEnabled = enable;
    }
    // The other FCR bits are only programmed while FCR0 is (being) set.
    if (enable) {
      if (v & FCR_RX_RESET) this.clearRxFifo();
      // FCR_TX_RESET: the transmitter FIFO is always empty here.
      this.rxTrigger = RX_TRIGGER_LEVELS[(v >> 6) & 3];
    }
    this.refillFifo();
    this.updateIrq();
  }

  private writeMcr(v: number): void {
    const before = this.modemInputs();
    this.mcr = v & MCR_MASK;
    const after = this.modemInputs();
    const changed = before ^ after;
    if (changed & MSR_CTS) this.msrDeltas |= MSR_DCTS;
    if (changed & MSR_DSR) this.msrDeltas |= MSR_DDSR;
    if (changed & MSR_DCD) this.msrDeltas |= MSR_DDCD;
    // TERI: the RI input went inactive (MSR.RI 1 -> 0), i.e. the trailing edge of a ring.
    if (before & MSR_RI && !(after & MSR_RI)) this.msrDeltas |= MSR_TERI;
    this.refillFifo(); // leaving loopback reconnects the receiver to the host input
    this.updateIrq();
  }

  /** MSR bits 4-7. In loopback the inputs are wired to MCR outputs: CTS=RTS, DSR=DTR, RI=OUT1,
   *  DCD=OUT2 (datasheet, MCR bit 4). */
  private modemInputs(): number {
    if (!(this.mcr & MCR_LOOP)) return MSR_LINE_INPUTS;
    return (
      (this.mcr & MCR_RTS ? MSR_CTS : 0) |
      (this.mcr & MCR_DTR ? MSR_DSR : 0) |
      (this.mcr & MCR_OUT1 ? MSR_RI : 0) |
      (this.mcr & MCR_OUT2 ? MSR_DCD : 0)
    );
  }

  private get rxCapacity(): number {
    // Without FIFOs (16450 mode) RBR holds a single byte.
    return this.fifoEnabled ? RX_FIFO_SIZE : 1;
  }

  private pushRx(b: number): void {
    if (this.rxCount >= this.rxCapacity) {
      // A byte completed while the FIFO is full overwrites the shift register and is lost; the
      // FIFO itself is untouched (datasheet, LSR bit 1).
      this.lineErrors |= LSR_OE;
      this.stats.overruns++;
      return;
    }
    this.rxFifo[(this.rxHead + this.rxCount) % RX_FIFO_SIZE] = b;
    this.rxCount++;
  }

  private clearRxFifo(): void {
    this.rxHead = 0;
    this.rxCount = 0;
  }

  /** Move host input into the FIFO while there is room (not in loopback: the receiver input is
   *  disconnected from the line then, so host input waits in the queue). */
  private refillFifo(): void {
    if (this.mcr & MCR_LOOP) return;
    const cap = this.queue.length;
    while (this.qCount > 0 && this.rxCount < this.rxCapacity) {
      this.rxFifo[(this.rxHead + this.rxCount) % RX_FIFO_SIZE] = this.queue[this.qHead];
      this.rxCount++;
      this.qHead = this.qHead + 1 === cap ? 0 : this.qHead + 1;
      this.qCount--;
    }
  }

  /** The IIR identification of the highest-priority enabled source (datasheet, IIR table). */
  private pendingInterrupt(): number {
    if (this.ier & IER_ELSI && this.lineErrors & LSR_ERRORS) return IIR_LINE_STATUS;
    if (this.ier & IER_ERBFI && this.rxCount > 0) {
      return this.fifoEnabled && this.rxCount < this.rxTrigger ? IIR_RX_TIMEOUT : IIR_RX_DATA;
    }
    if (this.ier & IER_ETBEI && this.thrEmptyPending) return IIR_THR_EMPTY;
    if (this.ier & IER_EDSSI && this.msrDeltas & MSR_DELTAS) return IIR_MODEM_STATUS;
    return IIR_NONE;
  }

  private updateIrq(): void {
    const gated = (this.mcr & (MCR_OUT2 | MCR_LOOP)) === MCR_OUT2;
    const level = gated && this.pendingInterrupt() !== IIR_NONE;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq.set(level);
    }
  }
}
