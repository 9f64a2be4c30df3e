// The PC keyboard controller (Intel 8042 / "PS/2 controller"), enough of it for an OS to find a
// working controller with a keyboard that has no keys and an AUX (mouse) port with nothing
// plugged in, and for the classic reset path (command 0xFE, or the output port's reset bit).
//
// Ports: 0x60 data (read: output buffer; write: parameter of a pending controller command, or a
// byte for the keyboard) and 0x64 (read: status; write: controller command). The two ports are
// not adjacent (0x61 is the PIT/speaker "port B"), so this model exposes two PioDevices,
// `dataPort` and `commandPort`, each claiming one port (`attach` does both).
//
// What Linux's i8042 driver does at probe, and what answers it gets here:
// - flush: reads data while status.OBF is set, giving up after 16 bytes ("No controller found"),
//   so the output queue below never holds more than 16 bytes; status never reads 0xFF.
// - 0xAA self test -> 0x55; 0x20 read CTR (twice, must match) / 0x60 write CTR.
// - status bit 4 must be 1 (keyboard not inhibited by the keylock), else "Keylock active".
// - AUX probe: 0xD3 loop (the echoed byte must come back with status.AUXDATA, also as an IRQ 12
//   within 250 ms), 0xA7/0xA8 toggling CTR.AUXDIS (checked by reading CTR), 0xA9 AUX test -> 0.
//   The AUX port therefore exists; bytes sent to the (absent) mouse with 0xD4 come back as 0xFE
//   with status.TIMEOUT set, which is how a real controller reports "no device", so psmouse's
//   probe fails quickly and quietly.
// - The keyboard (atkbd) exchanges: 0xF2 get ID -> ACK, 0xAB, 0x83 (an MF2 keyboard); 0xF5/0xF4
//   disable/enable, 0xF3 typematic and 0xED LEDs with their parameter, 0xF0 scancode set, 0xFF
//   reset -> ACK, 0xAA (self test passed). Responses pass untranslated, as on real controllers.
//
// Interrupts: IRQ 1 is high while the output buffer holds a keyboard-side byte and CTR.KBDINT is
// set; IRQ 12 likewise for an AUX-side byte and CTR.AUXINT (the 8042's output-buffer-full pins
// are levels; the PC wires them to edge-triggered ISA inputs, and the driver reads one byte per
// interrupt, so each new byte makes a new rising edge).
//
// Not modelled: A20 gating (output port bit 1 is stored only; guest RAM has no A20 wrap),
// the controller's internal RAM beyond its 32 bytes, KBDDIS/AUXDIS blocking device traffic
// (devices here only ever answer the guest's own commands), scancodes (no keys yet),
// active multiplexing (the loop test echoes the probe bytes unchanged, which says "no MUX").

import type { Bus, PioDevice } from '../bus.js';
import type { IrqLine } from '../irq.js';
import type { MachineControl } from '../../vmm/machine-control.js';
import { I8042_COMMAND_PORT, I8042_DATA_PORT } from '../../vmm/platform-layout.js';
import { readLanes, writeLanes } from './byte-lanes.js';

// Status register (read 0x64).
const STS_OBF = 0x01; // output buffer full
const STS_SYS = 0x04; // system flag (copy of CTR bit 2)
const STS_CMD = 0x08; // last write went to 0x64 (command) rather than 0x60 (data)
const STS_UNLOCKED = 0x10; // keyboard not inhibited (keylock switch off)
const STS_AUXDATA = 0x20; // output buffer holds a byte from the AUX port
const STS_TIMEOUT = 0x40; // the device did not answer

// Controller configuration byte ("command byte", CTR; internal RAM byte 0).
const CTR_KBDINT = 0x01;
const CTR_AUXINT = 0x02;
const CTR_SYS = 0x04;
const CTR_KBDDIS = 0x10;
const CTR_AUXDIS = 0x20;
const CTR_XLATE = 0x40;
/** What a BIOS leaves behind: translation on, AUX disabled, self test passed, keyboard IRQ on. */
const CTR_POWER_ON = CTR_XLATE | CTR_AUXDIS | CTR_SYS | CTR_KBDINT;

// Output port (0xD0/0xD1): bit 0 = system reset (active low), bit 1 = A20 gate,
// bit 4 = output buffer full from keyboard (IRQ 1), bit 5 = from AUX (IRQ 12).
const OUT_RESET_N = 0x01;
const OUT_A20 = 0x02;
const OUT_KBD_OBF = 0x10;
const OUT_AUX_OBF = 0x20;
const OUT_POWER_ON = 0xcf; // reset high, A20 enabled, clock/data lines idle high

// Queue entries: the byte plus where it came from.
const Q_AUX = 0x100;
const Q_TIMEOUT = 0x200;
/** Linux's flush gives up after reading 16 bytes, so never hold more: the output buffer itself
 *  plus 15 waiting behind it. */
const OUTPUT_QUEUE_MAX = 15;

// Keyboard (PS/2 MF2) replies.
const KBD_ACK = 0xfa;
const KBD_RESEND = 0xfe;
const KBD_BAT_OK = 0xaa;
const KBD_ECHO = 0xee;
/** No device on the AUX port: the controller's timeout reply. */
const AUX_NO_DEVICE = 0xfe;

export interface I8042Options {
  control: MachineControl;
  /** ISA IRQ 1. */
  kbdIrq: IrqLine;
  /** ISA IRQ 12. */
  auxIrq: IrqLine;
}

export class I8042 {
  readonly name = 'i8042';
  /** Port 0x60. */
  readonly dataPort: PioDevice;
  /** Port 0x64. */
  readonly commandPort: PioDevice;
  readonly stats = { outputDropped: 0, resets: 0 };

  private readonly control: MachineControl;
  private readonly kbdIrq: IrqLine;
  private readonly auxIrq: IrqLine;
  private kbdLevel = false;
  private auxLevel = false;

  private readonly ram = new Uint8Array(32); // ram[0] is the CTR
  private outputPort = OUT_POWER_ON;
  private lastWasCommand = false;
  /** Controller command waiting for its parameter byte on port 0x60. */
  private pendingCommand = -1;

  private obf = false;
  private outByte = 0; // current output buffer entry (byte | Q_* flags)
  private readonly queue: number[] = [];

  // Keyboard state.
  private kbdPendingCommand = -1; // keyboard command waiting for its parameter
  private kbdScancodeSet = 2;
  private kbdScanning = true;
  private kbdLastReply = KBD_ACK;

  constructor(opts: I8042Options) {
    this.control = opts.control;
    this.kbdIrq = opts.kbdIrq;
    this.auxIrq = opts.auxIrq;
    this.ram[0] = CTR_POWER_ON;
    this.dataPort = {
      name: 'i8042-data',
      pioRead: (offset, size) => readLanes(size, (i) => (offset + i === 0 ? this.readData() : 0xff)),
      pioWrite: (offset, size, value) =>
        writeLanes(size, value, (i, b) => {
          if (offset + i === 0) this.writeData(b);
        }),
    };
    this.commandPort = {
      name: 'i8042-command',
      pioRead: (offset, size) => readLanes(size, (i) => (offset + i === 0 ? this.readStatus() : 0xff)),
      pioWrite: (offset, size, value) =>
        writeLanes(size, value, (i, b) => {
          if (offset + i === 0) this.writeCommand(b);
        }),
    };
  }

  /** Claim ports 0x60 and 0x64. */
  attach(bus: Bus): void {
    bus.addPio(I8042_DATA_PORT, 1, this.dataPort);
    bus.addPio(I8042_COMMAND_PORT, 1, this.commandPort);
  }

  /** Power-on state (what the VMM calls on a machine reset). */
  reset(): void {
    this.ram.fill(0);
    this.ram[0] = CTR_POWER_ON;
    this.outputPort = OUT_POWER_ON;
    this.lastWasCommand = false;
    this.pendingCommand = -1;
    this.obf = false;
    this.outByte = 0;
    this.queue.length = 0;
    this.kbdPendingCommand = -1;
    this.kbdScancodeSet = 2;
    this.kbdScanning = true;
    this.kbdLastReply = KBD_ACK;
    this.updateIrqs();
  }

  private get ctr(): number { return this.ram[0]; }
  private set ctr(v: number) { this.ram[0] = v & 0xff; }

  // ---- port 0x64 ----

  readStatus(): number {
    let s = STS_UNLOCKED | (this.ctr & CTR_SYS ? STS_SYS : 0) | (this.lastWasCommand ? STS_CMD : 0);
    if (this.obf) {
      s |= STS_OBF;
      if (this.outByte & Q_AUX) s |= STS_AUXDATA;
      if (this.outByte & Q_TIMEOUT) s |= STS_TIMEOUT;
    }
    // IBF (bit 1) is never set: every write is consumed at once.
    return s;
  }

  writeCommand(cmd: number): void {
    this.lastWasCommand = true;
    this.pendingCommand = -1; // a new command abandons one still waiting for its parameter
    if (cmd >= 0x20 && cmd <= 0x3f) {
      this.enqueue(this.ram[cmd & 0x1f]); // read internal RAM byte (0x20: the CTR)
      return;
    }
    if (cmd >= 0x60 && cmd <= 0x7f) {
      this.pendingCommand = cmd; // write internal RAM byte: parameter follows on 0x60
      return;
    }
    if (cmd >= 0xf0) {
      // Pulse output port bits 0-3 low for ~6 us where the command's low nibble has a 0. Bit 0
      // is the CPU reset line, so 0xFE (and any even 0xFx) resets the machine.
      if ((cmd & 1) === 0) this.requestReset();
      return;
    }
    switch (cmd) {
      case 0xa4: // password installed? 0xF1 = no
        this.enqueue(0xf1);
        return;
      case 0xa7: // disable AUX interface
        this.ctr = this.ctr | CTR_AUXDIS;
        return;
      case 0xa8: // enable AUX interface
        this.ctr = this.ctr & ~CTR_AUXDIS;
        return;
      case 0xa9: // AUX interface test: 0 = no error
        this.enqueue(0x00);
        return;
      case 0xaa: // controller self test: 0x55 = passed; it also sets the system flag
        this.ctr = this.ctr | CTR_SYS;
        this.enqueue(0x55);
        return;
      case 0xab: // keyboard interface test: 0 = no error
        this.enqueue(0x00);
        return;
      case 0xad: // disable keyboard interface
        this.ctr = this.ctr | CTR_KBDDIS;
        return;
      case 0xae: // enable keyboard interface
        this.ctr = this.ctr & ~CTR_KBDDIS;
        return;
      case 0xc0: // read input port: bit 7 = keyboard not inhibited
        this.enqueue(0x80);
        return;
      case 0xd0: // read output port
        this.enqueue(this.readOutputPort());
        return;
      case 0xd1: // write output port
      case 0xd2: // write keyboard output buffer (as if the keyboard sent it)
      case 0xd3: // write AUX output buffer (as if the mouse sent it): the "loop" test
      case 0xd4: // write the next byte to the AUX device
        this.pendingCommand = cmd;
        return;
      case 0xdd: // A20 off (some controllers)
        this.outputPort &= ~OUT_A20;
        return;
      case 0xdf: // A20 on
        this.outputPort |= OUT_A20;
        return;
      case 0xe0: // read test inputs: clock and data lines
        this.enqueue(0x00);
        return;
      default:
        return; // unknown or vendor-specific: ignored, as many controllers do
    }
  }

  // ---- port 0x60 ----

  readData(): number {
    if (!this.obf) return this.outByte & 0xff; // a stale read returns the last byte again
    const v = this.outByte & 0xff;
    this.obf = false;
    this.updateIrqs(); // drop the level first, so the next byte is a new edge
    this.loadNext();
    return v;
  }

  writeData(v: number): void {
    this.lastWasCommand = false;
    const cmd = this.pendingCommand;
    this.pendingCommand = -1;
    if (cmd >= 0x60 && cmd <= 0x7f) {
      this.ram[cmd & 0x1f] = v;
      this.updateIrqs(); // CTR.KBDINT/AUXINT may have changed
      return;
    }
    switch (cmd) {
      case 0xd1:
        this.outputPort = (v & ~(OUT_KBD_OBF | OUT_AUX_OBF)) | (this.outputPort & (OUT_KBD_OBF | OUT_AUX_OBF));
        if ((v & OUT_RESET_N) === 0) this.requestReset();
        return;
      case 0xd2:
        this.enqueue(v);
        return;
      case 0xd3:
        this.enqueue(v | Q_AUX);
        return;
      case 0xd4:
        this.enqueue(AUX_NO_DEVICE | Q_AUX | Q_TIMEOUT);
        return;
      default:
        // Data with no pending controller command goes to the keyboard; sending it re-enables
        // the keyboard interface, as real controllers do.
        this.ctr = this.ctr & ~CTR_KBDDIS;
        this.keyboardReceive(v);
        return;
    }
  }

  // ---- the keyboard: an MF2 keyboard without keys ----

  private keyboardReceive(b: number): void {
    const pending = this.kbdPendingCommand;
    if (pending >= 0) {
      this.kbdPendingCommand = -1;
      if (pending === 0xf0) {
        if (b === 0) {
          this.kbdReply(KBD_ACK, this.kbdScancodeSet);
          return;
        }
        if (b >= 1 && b <= 3) this.kbdScancodeSet = b;
      }
      // 0xED (LED bits) and 0xF3 (typematic rate) parameters: just acknowledged.
      this.kbdReply(KBD_ACK);
      return;
    }
    switch (b) {
      case 0xed: // set LEDs
      case 0xf0: // get/set scancode set
      case 0xf3: // set typematic rate/delay
        this.kbdPendingCommand = b;
        this.kbdReply(KBD_ACK);
        return;
      case 0xee: // echo
        this.kbdReply(KBD_ECHO);
        return;
      case 0xf2: // identify: MF2 keyboard
        this.kbdReply(KBD_ACK, 0xab, 0x83);
        return;
      case 0xf4: // enable scanning
        this.kbdScanning = true;
        this.kbdReply(KBD_ACK);
        return;
      case 0xf5: // disable scanning (and restore defaults)
        this.kbdScanning = false;
        this.kbdScancodeSet = 2;
        this.kbdReply(KBD_ACK);
        return;
      case 0xf6: // restore defaults
        this.kbdScancodeSet = 2;
        this.kbdReply(KBD_ACK);
        return;
      case 0xf7: case 0xf8: case 0xf9: case 0xfa: case 0xfb: case 0xfc: case 0xfd:
        this.kbdReply(KBD_ACK); // scancode-set-3 key type settings: accepted, no keys anyway
        return;
      case 0xfe: // resend the last reply
        this.enqueue(this.kbdLastReply);
        return;
      case 0xff: // reset and self test (BAT)
        this.kbdScanning = true;
        this.kbdScancodeSet = 2;
        this.kbdReply(KBD_ACK, KBD_BAT_OK);
        return;
      default:
        this.kbdReply(KBD_RESEND); // not a command this keyboard knows
        return;
    }
  }

  private kbdReply(...bytes: number[]): void {
    for (const b of bytes) {
      this.kbdLastReply = b;
      this.enqueue(b);
    }
  }

  /** Whether the keyboard would send scancodes (for a future key-injection API). */
  get keyboardScanning(): boolean { return this.kbdScanning; }

  // ---- output buffer ----

  private enqueue(entry: number): void {
    if (!this.obf) {
      this.outByte = entry;
      this.obf = true;
      this.updateIrqs();
      return;
    }
    if (this.queue.length >= OUTPUT_QUEUE_MAX) {
      this.stats.outputDropped++;
      return;
    }
    this.queue.push(entry);
  }

  private loadNext(): void {
    const next = this.queue.shift();
    if (next === undefined) return;
    this.outByte = next;
    this.obf = true;
    this.updateIrqs();
  }

  private readOutputPort(): number {
    let v = this.outputPort & ~(OUT_KBD_OBF | OUT_AUX_OBF);
    if (this.obf) v |= this.outByte & Q_AUX ? OUT_AUX_OBF : OUT_KBD_OBF;
    return v;
  }

  private requestReset(): void {
    this.stats.resets++;
    this.control.requestStop({ kind: 'reset' });
  }

  private updateIrqs(): void {
    const aux = (this.outByte & Q_AUX) !== 0;
    const kbd = this.obf && !aux && (this.ctr & CTR_KBDINT) !== 0;
    const mouse = this.obf && aux && (this.ctr & CTR_AUXINT) !== 0;
    if (kbd !== this.kbdLevel) {
      this.kbdLevel = kbd;
      this.kbdIrq.set(kbd);
    }
    if (mouse !== this.auxLevel) {
      this.auxLevel = mouse;
      this.auxIrq.set(mouse);
    }
  }
}
