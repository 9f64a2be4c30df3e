// Binds the guest's serial port (a Uart16550) to the host terminal, the way QEMU's -nographic
// does for its first serial port.
//
// Output: guest bytes go to `output` untouched (no newline or charset translation: the guest's
// terminal emulation is the host terminal's). A write per byte would cost a system call per
// byte, so bytes are collected and written once per event-loop turn (or whenever 64 KiB has
// piled up within one turn). Memory is bounded: when the output stream already holds more than
// `outputLimit` unwritten bytes (a stalled pipe), further guest output is dropped and counted,
// never buffered without end.
//
// Input, when `input` is a terminal: it is put in raw mode (keys reach the guest as typed,
// Ctrl-C included) and Ctrl-A starts an escape, as in QEMU: Ctrl-A x quits, Ctrl-A h (or ?)
// prints help on stderr, Ctrl-A Ctrl-A sends one Ctrl-A; any other key after Ctrl-A is dropped.
// Input from a pipe or file is passed through byte for byte with no escapes; its end does not
// stop the VM (a guest reading a script from stdin keeps running afterwards). Pipe input is
// flow-controlled: the console pauses the stream while the UART's input queue is full and
// resumes when the guest has drained it, so piping a large file loses nothing.
//
// Two ways to connect the guest side: `attach(uart)` wires a Uart16550 in the same thread
// directly (its `onTransmit` comes here, input goes to its queue with flow control); or, when the
// UART lives elsewhere (another thread), feed guest output with `write(bytes)` and take host
// input from the `onInput` callback (no flow control then: pipe input is passed on as it comes).
//
// `close()` restores the terminal mode; the VMM calls it on every way out (normal stop, signal
// handlers, fatal errors). As a last resort the mode is also restored from process 'exit'.

type Bytes = Uint8Array;

/** The UART side the console talks to (Uart16550 has these members). */
export interface ConsoleTarget {
  /** Deliver host input; returns how many bytes were accepted. */
  receive(bytes: Bytes): number;
  /** How many bytes `receive` would accept now (for flow control of pipes). */
  readonly inputSpace: number;
  onTransmit: ((byte: number) => void) | undefined;
  onInputDrained: (() => void) | undefined;
}

export interface SerialConsoleOptions {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  /** Called once when the user types the quit escape (Ctrl-A x). */
  onQuit: () => void;
  /** Where the escape help goes (default: process.stderr). */
  errorOutput?: NodeJS.WritableStream;
  /** Unwritten bytes allowed in `output` before guest output is dropped (default 4 MiB). */
  outputLimit?: number;
}

export interface SerialConsoleStats {
  bytesToHost: number;
  bytesFromHost: number;
  outputDropped: number;
}

const CTRL_A = 0x01;
const KEY_X = 0x78; // 'x'
const KEY_H = 0x68; // 'h'
const KEY_QUESTION = 0x3f; // '?'
const BATCH_BYTES = 64 * 1024;
const DEFAULT_OUTPUT_LIMIT = 4 * 1024 * 1024;

const HELP =
  '\r\n' +
  'tsvm console: press Ctrl-A, then\r\n' +
  '  x        quit (the VM is stopped)\r\n' +
  '  h or ?   show this help\r\n' +
  '  Ctrl-A   send Ctrl-A to the guest\r\n';

interface TtyInput {
  isTTY?: boolean;
  setRawMode?: (mode: boolean) => unknown;
}

export class SerialConsole {
  /** True when input is a terminal: raw mode and Ctrl-A escapes are in effect. */
  readonly interactive: boolean;
  readonly stats: SerialConsoleStats = { bytesToHost: 0, bytesFromHost: 0, outputDropped: 0 };

  private readonly input: NodeJS.ReadableStream;
  private readonly output: NodeJS.WritableStream;
  private readonly errorOutput: NodeJS.WritableStream;
  private readonly onQuit: () => void;
  private readonly outputLimit: number;

  private target: ConsoleTarget | undefined;
  private inputCallback: ((bytes: Uint8Array) => void) | undefined;
  private closed = false;
  private quitSent = false;
  private rawSet = false;
  private escapePending = false;

  private readonly batch = Buffer.allocUnsafe(BATCH_BYTES);
  private batchLen = 0;
  private flushScheduled = false;
  private outputBroken = false;

  /** Host input not yet handed to the UART (pipe mode, or before `attach`). */
  private readonly pendingIn: Bytes[] = [];
  private inputPaused = false;
  private deliverScheduled = false;

  private readonly onData = (chunk: Buffer | string): void => this.handleInput(chunk);
  private readonly onInputError = (): void => { /* e.g. EIO when the terminal goes away: keep the VM running */ };
  private readonly onOutputError = (): void => { this.outputBroken = true; };
  private readonly restoreAtExit = (): void => this.restoreTerminal();

  /** The UART's transmit sink: pass it as Uart16550's `onTransmit` (attach does this). */
  readonly transmit = (byte: number): void => {
    if (this.closed) {
      this.stats.outputDropped++;
      return;
    }
    this.batch[this.batchLen++] = byte;
    if (this.batchLen === BATCH_BYTES) this.flush();
    else this.scheduleFlush();
  };

  constructor(opts: SerialConsoleOptions) {
    this.input = opts.input;
    this.output = opts.output;
    this.onQuit = opts.onQuit;
    this.errorOutput = opts.errorOutput ?? process.stderr;
    this.outputLimit = opts.outputLimit ?? DEFAULT_OUTPUT_LIMIT;

    const tty = opts.input as NodeJS.ReadableStream & TtyInput;
    this.interactive = tty.isTTY === true;
    if (this.interactive && typeof tty.setRawMode === 'function') {
      tty.setRawMode(true);
      this.rawSet = true;
      process.on('exit', this.restoreAtExit);
    }
    this.output.on('error', this.onOutputError);
    this.input.on('error', this.onInputError);
    this.input.on('data', this.onData);
    // No 'end' handler on purpose: end of a piped stdin does not stop the VM.
  }

  /** Connect a UART: its output comes here, host input goes to it. */
  attach(target: ConsoleTarget): void {
    this.target = target;
    target.onTransmit = this.transmit;
    target.onInputDrained = () => this.scheduleDeliver();
    this.deliver();
  }

  /** Host input for a guest side that is not `attach`ed (e.g. a UART in another thread). Input
   *  that arrived before this was set is handed over when it is. */
  get onInput(): ((bytes: Uint8Array) => void) | undefined {
    return this.inputCallback;
  }
  set onInput(cb: ((bytes: Uint8Array) => void) | undefined) {
    this.inputCallback = cb;
    if (cb) this.deliver();
  }

  /** Guest output produced elsewhere (a batch of bytes): written like `transmit`'s bytes. */
  write(bytes: Uint8Array): void {
    let i = 0;
    while (i < bytes.length) {
      if (this.closed) {
        this.stats.outputDropped += bytes.length - i;
        return;
      }
      const n = Math.min(bytes.length - i, BATCH_BYTES - this.batchLen);
      this.batch.set(bytes.subarray(i, i + n), this.batchLen);
      this.batchLen += n;
      i += n;
      if (this.batchLen === BATCH_BYTES) this.flush();
    }
    this.scheduleFlush();
  }

  /** Write out the collected guest output now. */
  flush(): void {
    if (this.batchLen === 0) return;
    const n = this.batchLen;
    this.batchLen = 0;
    const writableLength = (this.output as { writableLength?: number }).writableLength ?? 0;
    if (this.outputBroken || writableLength > this.outputLimit) {
      this.stats.outputDropped += n;
      return;
    }
    this.stats.bytesToHost += n;
    this.output.write(Buffer.from(this.batch.subarray(0, n))); // a copy: the batch is reused
  }

  /** Flush output, stop reading input and restore the terminal. Safe to call more than once. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    // The 'error' listeners stay: a late EPIPE/EIO must not become an uncaught exception.
    this.input.removeListener('data', this.onData);
    if (this.target && this.target.onTransmit === this.transmit) this.target.onInputDrained = undefined;
    this.pendingIn.length = 0;
    this.restoreTerminal();
    process.removeListener('exit', this.restoreAtExit);
    this.input.pause(); // lets the process exit: a flowing stdin keeps the event loop alive
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.batchLen === 0) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private restoreTerminal(): void {
    if (!this.rawSet) return;
    this.rawSet = false;
    try {
      (this.input as NodeJS.ReadableStream & TtyInput).setRawMode?.(false);
    } catch {
      // the terminal may already be gone; nothing left to restore
    }
  }

  private handleInput(chunk: Buffer | string): void {
    if (this.closed) return;
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    if (this.interactive) {
      const out = this.processEscapes(bytes);
      // Typing is never paused (the quit escape must always get through): what does not fit in
      // the UART's queue is dropped there and counted.
      if (out.length === 0) return;
      if (this.target) {
        this.stats.bytesFromHost += out.length;
        this.target.receive(out);
      } else if (this.inputCallback) {
        this.stats.bytesFromHost += out.length;
        this.inputCallback(out);
      }
      return;
    }
    this.pendingIn.push(bytes);
    this.deliver();
  }

  /** Apply the Ctrl-A escapes to one chunk of terminal input; returns the bytes for the guest. */
  private processEscapes(bytes: Bytes): Bytes {
    const out = Buffer.allocUnsafe(bytes.length);
    let n = 0;
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i];
      if (!this.escapePending) {
        if (b === CTRL_A) this.escapePending = true;
        else out[n++] = b;
        continue;
      }
      this.escapePending = false;
      if (b === CTRL_A) {
        out[n++] = CTRL_A;
      } else if (b === KEY_X) {
        if (!this.quitSent) {
          this.quitSent = true;
          this.onQuit();
        }
        break; // whatever was typed after quitting is not for the guest
      } else if (b === KEY_H || b === KEY_QUESTION) {
        this.errorOutput.write(HELP);
      }
      // any other key after Ctrl-A: dropped, as QEMU does
    }
    return out.subarray(0, n);
  }

  private scheduleDeliver(): void {
    // Called from inside a guest access to the UART: come back on a later turn, never re-enter.
    if (this.deliverScheduled) return;
    this.deliverScheduled = true;
    setImmediate(() => {
      this.deliverScheduled = false;
      this.deliver();
    });
  }

  /** Hand pending pipe input to the UART as far as its queue has room; pause the stream while
   *  some is left over, resume once all is delivered. */
  private deliver(): void {
    if (this.closed) return;
    const t = this.target;
    const cb = this.inputCallback;
    if (!t && cb) {
      for (const chunk of this.pendingIn.splice(0)) {
        this.stats.bytesFromHost += chunk.length;
        cb(chunk);
      }
    }
    while (t && this.pendingIn.length > 0) {
      const space = t.inputSpace;
      if (space <= 0) break;
      const head = this.pendingIn[0];
      const n = Math.min(space, head.length);
      const accepted = t.receive(n === head.length ? head : head.subarray(0, n));
      this.stats.bytesFromHost += accepted;
      if (n === head.length) this.pendingIn.shift();
      else this.pendingIn[0] = head.subarray(n);
      if (accepted < n) break; // should not happen when inputSpace tells the truth
    }
    if (this.pendingIn.length > 0 && !this.inputPaused) {
      this.inputPaused = true;
      this.input.pause();
    } else if (this.pendingIn.length === 0 && this.inputPaused) {
      this.inputPaused = false;
      this.input.resume();
    }
  }
}
