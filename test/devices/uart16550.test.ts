import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IrqLine, NullIrqSink } from '../../src/devices/irq.js';
import { Uart16550, type Uart16550Options } from '../../src/devices/legacy/uart16550.js';

// Register offsets (PC16550D datasheet).
const RBR = 0, THR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;
const OUT2 = 0x08;
const LOOP = 0x10;

function make(opts: Partial<Uart16550Options> = {}) {
  const sink = new NullIrqSink();
  const sent: number[] = [];
  const uart = new Uart16550({ irq: new IrqLine(sink, 4), onTransmit: (b) => sent.push(b), ...opts });
  const rd = (reg: number) => uart.pioRead(reg, 1);
  const wr = (reg: number, v: number) => uart.pioWrite(reg, 1, v);
  /** The level most recently driven on the line (false if never driven). */
  const level = () => (sink.log.length ? sink.log[sink.log.length - 1].level : false);
  return { uart, sink, sent, rd, wr, level };
}

test('uart: power-on register values at datasheet offsets', () => {
  const { rd } = make();
  assert.equal(rd(IER), 0x00);
  assert.equal(rd(IIR), 0x01); // no interrupt pending, FIFOs off
  assert.equal(rd(LCR), 0x00);
  assert.equal(rd(MCR), 0x00);
  assert.equal(rd(LSR), 0x60); // THRE | TEMT
  assert.equal(rd(MSR) & 0xf0, 0xb0); // CTS, DSR, DCD asserted
  assert.equal(rd(8), 0xff); // past the eight ports
});

test('uart: scratch register and divisor latch behind DLAB', () => {
  const { rd, wr } = make();
  wr(SCR, 0x5a);
  assert.equal(rd(SCR), 0x5a);
  wr(LCR, 0x83); // DLAB, 8N1
  wr(DLL, 0x0c);
  wr(DLM, 0x01);
  assert.equal(rd(DLL), 0x0c);
  assert.equal(rd(DLM), 0x01);
  wr(LCR, 0x03);
  assert.equal(rd(IER), 0x00, 'DLM write did not touch IER');
  wr(IER, 0xff);
  assert.equal(rd(IER), 0x0f, 'IER bits 4-7 read 0 (Linux probes this)');
  wr(LCR, 0x83);
  assert.equal(rd(DLM), 0x01, 'IER write did not touch DLM');
});

test('uart: transmit goes to onTransmit instantly, THRE/TEMT stay set', () => {
  const { uart, rd, wr, sent } = make();
  for (const c of 'hi\n') wr(THR, c.charCodeAt(0));
  assert.deepEqual(sent, [0x68, 0x69, 0x0a]);
  assert.equal(rd(LSR) & 0x60, 0x60);
  assert.equal(uart.stats.bytesOut, 3);
});

test('uart: IIR reports sources in priority order (line status > rx > THRE > modem status)', () => {
  const { uart, rd, wr } = make({ inputQueueBytes: 4 });
  wr(FCR, 0x01); // FIFOs on, trigger level 1
  // Modem status delta: loopback with RTS changes CTS/DSR/DCD, then back.
  wr(MCR, LOOP | 0x02);
  wr(MCR, OUT2);
  // 10 bytes into a 4-byte input queue: 6 dropped -> overrun (line status).
  assert.equal(uart.receive(new Uint8Array(10).fill(0x41)), 4);
  assert.equal(uart.stats.inputDropped, 6);
  wr(IER, 0x0f); // all four enables; ETBEI 0->1 with THR empty arms THRE
  assert.equal(rd(IIR), 0xc6, 'line status first');
  assert.equal(rd(LSR) & 0x03, 0x03, 'DR and OE');
  assert.equal(rd(LSR) & 0x02, 0, 'reading LSR cleared OE');
  assert.equal(rd(IIR), 0xc4, 'then received data');
  for (let i = 0; i < 4; i++) assert.equal(rd(RBR), 0x41);
  assert.equal(rd(LSR) & 0x01, 0);
  assert.equal(rd(IIR), 0xc2, 'then THR empty');
  assert.equal(rd(IIR), 0xc0, 'reading IIR cleared THRE: modem status is next');
  assert.notEqual(rd(MSR) & 0x0f, 0, 'delta bits were set');
  assert.equal(rd(MSR) & 0x0f, 0, 'and reading MSR cleared them');
  assert.equal(rd(IIR), 0xc1, 'nothing pending');
});

test('uart: IER gates each source and the line follows', () => {
  const { uart, rd, wr, level } = make();
  wr(MCR, OUT2);
  uart.receive(new Uint8Array([1]));
  assert.equal(rd(IIR), 0x01, 'rx data pending but ERBFI off');
  assert.equal(level(), false);
  wr(IER, 0x01);
  assert.equal(level(), true);
  assert.equal(rd(IIR), 0x04);
  rd(RBR);
  assert.equal(level(), false, 'drained -> low');
  assert.equal(rd(IIR), 0x01);
});

test('uart: MCR.OUT2 gates the interrupt line, loopback disconnects it', () => {
  const { uart, wr, level } = make();
  wr(IER, 0x01);
  uart.receive(new Uint8Array([1]));
  assert.equal(level(), false, 'OUT2 clear: no IRQ on a PC');
  wr(MCR, OUT2);
  assert.equal(level(), true);
  wr(MCR, OUT2 | LOOP);
  assert.equal(level(), false, 'loopback forces OUT2 inactive');
  wr(MCR, OUT2);
  assert.equal(level(), true);
});

test('uart: each THR write re-arms THRE; enabling ETBEI re-asserts it (Linux THRE probe)', () => {
  const { rd, wr, level } = make();
  wr(MCR, OUT2);
  wr(IER, 0x02);
  assert.equal(rd(IIR), 0x02);
  assert.equal(rd(IIR), 0x01, 'cleared by reading IIR');
  assert.equal(level(), false);
  wr(IER, 0x00);
  wr(IER, 0x02);
  assert.equal(rd(IIR), 0x02, 're-asserted when ETBEI is enabled again');
  wr(THR, 0x41);
  assert.equal(level(), true, 'THR empty again after the instant transmit');
  assert.equal(rd(IIR), 0x02);
});

test('uart: FIFO trigger level selects data-available vs timeout indication', () => {
  const { uart, rd, wr } = make();
  wr(IER, 0x01);
  wr(FCR, 0xc1); // trigger at 14
  uart.receive(new Uint8Array(3));
  assert.equal(rd(IIR), 0xcc, 'below the trigger level: character timeout');
  uart.receive(new Uint8Array(11));
  assert.equal(rd(IIR), 0xc4, 'at the trigger level: data available');
});

test('uart: the 16-byte FIFO is refilled from the input queue, in order', () => {
  const { uart, rd, wr } = make();
  wr(FCR, 0x01);
  const data = Uint8Array.from({ length: 100 }, (_, i) => i);
  assert.equal(uart.receive(data), 100);
  assert.equal(uart.inputQueued, 84, '16 in the FIFO, the rest queued');
  const got: number[] = [];
  while (rd(LSR) & 0x01) got.push(rd(RBR));
  assert.deepEqual(got, [...data]);
  assert.equal(uart.inputQueued, 0);
});

test('uart: without FIFOs RBR holds one byte; input still arrives in order', () => {
  const { uart, rd } = make();
  uart.receive(new TextEncoder().encode('abc'));
  assert.equal(uart.inputQueued, 2);
  let s = '';
  while (rd(LSR) & 0x01) s += String.fromCharCode(rd(RBR));
  assert.equal(s, 'abc');
});

test('uart: the input queue is bounded (64 KiB default); excess is dropped, counted, flagged', () => {
  const { uart, rd } = make();
  const accepted = uart.receive(new Uint8Array(70000).fill(0x61));
  assert.equal(accepted, 65536);
  assert.equal(uart.stats.inputDropped, 70000 - 65536);
  assert.equal(uart.stats.bytesIn, 65536);
  assert.ok(uart.inputQueued <= 65536);
  assert.equal(rd(LSR) & 0x02, 0x02, 'guest sees an overrun');
  let n = 0;
  while (rd(LSR) & 0x01) {
    rd(RBR);
    n++;
  }
  assert.equal(n, 65536);
});

test('uart: FCR bit 1 resets the receive FIFO; toggling FCR0 clears it', () => {
  const { uart, rd, wr } = make();
  wr(FCR, 0x01);
  wr(MCR, LOOP);
  wr(THR, 1);
  wr(THR, 2);
  wr(FCR, 0x03);
  assert.equal(rd(LSR) & 0x01, 0);
  wr(THR, 3);
  wr(FCR, 0x00);
  assert.equal(rd(LSR) & 0x01, 0);
  assert.equal(rd(IIR) & 0xc0, 0, 'FIFO bits clear with FCR0 = 0');
  assert.equal(uart.stats.bytesOut, 0);
});

test('uart: loopback echoes THR into RBR, wires MCR to MSR, and overruns when full', () => {
  const { uart, rd, wr, sent } = make();
  wr(MCR, LOOP | 0x0a); // Linux's probe: LOOP | OUT2 | RTS
  assert.equal(rd(MSR) & 0xf0, 0x90, 'CTS (from RTS) and DCD (from OUT2)');
  wr(MCR, LOOP | 0x05); // DTR, OUT1
  assert.equal(rd(MSR) & 0xf0, 0x60, 'DSR (from DTR) and RI (from OUT1)');
  wr(MCR, LOOP);
  assert.equal(rd(MSR) & 0x04, 0x04, 'TERI: RI went inactive');
  wr(THR, 0x55);
  assert.equal(sent.length, 0, 'nothing reaches the host in loopback');
  assert.equal(rd(LSR) & 0x01, 1);
  assert.equal(rd(RBR), 0x55);
  // FIFOs off: a second byte before the first is read overruns.
  wr(THR, 1);
  wr(THR, 2);
  assert.equal(rd(LSR) & 0x03, 0x03);
  assert.equal(rd(RBR), 1);
  assert.equal(uart.stats.overruns, 1);
  // Host input waits while in loopback, and arrives once it ends.
  uart.receive(new Uint8Array([0x77]));
  assert.equal(rd(LSR) & 0x01, 0);
  wr(MCR, 0);
  assert.equal(rd(RBR), 0x77);
});

test('uart: input drained callback fires when the queue empties', () => {
  const { uart, rd } = make();
  let drained = 0;
  uart.onInputDrained = () => drained++;
  uart.receive(new Uint8Array(3));
  rd(RBR);
  rd(RBR);
  assert.equal(drained, 1);
  rd(RBR);
  rd(RBR);
  assert.equal(drained, 1);
});

test('uart: 16-bit access is split into byte lanes (ISA bus cycles)', () => {
  const { uart, wr } = make();
  wr(SCR, 0xab);
  assert.equal(uart.pioRead(6, 2) >> 8, 0xab);
  uart.pioWrite(6, 4, 0xeeeecd00); // lanes 6,7,8,9: SCR (lane 1) gets 0xcd, lanes past 7 dropped
  assert.equal(uart.pioRead(SCR, 1), 0xcd);
});

test('uart: hostile input never throws and stays bounded', () => {
  const { uart } = make({ inputQueueBytes: 128 });
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8);
  const sizes = [1, 2, 4] as const;
  for (let i = 0; i < 50000; i++) {
    const off = (rnd() % 24) - 8;
    const size = sizes[rnd() % 3];
    if (rnd() & 1) uart.pioWrite(off, size, rnd() * 257);
    else {
      const v = uart.pioRead(off, size);
      assert.ok(v >= 0 && v <= 0xffffffff);
    }
    if (i % 97 === 0) uart.receive(new Uint8Array(rnd() % 300));
    assert.ok(uart.inputQueued <= 128);
  }
});

test('uart: Linux 8250 autoconfig sees a plain 16550A', () => {
  const { rd, wr } = make();
  // IER scratch test.
  wr(IER, 0);
  assert.equal(rd(IER) & 0x0f, 0);
  wr(IER, 0x0f);
  assert.equal(rd(IER) & 0x0f, 0x0f);
  wr(IER, 0);
  // Loopback test.
  wr(MCR, LOOP | 0x0a);
  assert.equal(rd(MSR) & 0xf0, 0x90);
  wr(MCR, 0);
  // EFR probe (LCR = 0xBF): offset 2 is still FCR/IIR on a 16550A.
  wr(LCR, 0xbf);
  wr(2, 0);
  wr(LCR, 0);
  wr(FCR, 0x01);
  assert.equal(rd(IIR) >> 6, 3, 'FIFOs present: 16550A family');
  wr(LCR, 0x80);
  assert.notEqual(rd(2), 0, 'no EFR under DLAB (not an ST16C650V1)');
  wr(LCR, 0xbf);
  assert.notEqual(rd(2), 0, 'no EFR under 0xBF (not a 16650)');
  // 16750 probe: the 64-byte FIFO bit (IIR bit 5) never sets.
  wr(LCR, 0x80);
  wr(FCR, 0x21);
  const s1 = rd(IIR) >> 5;
  wr(FCR, 0x01);
  wr(LCR, 0);
  wr(FCR, 0x21);
  const s2 = rd(IIR) >> 5;
  assert.ok(!(s1 === 6 && s2 === 7), 'not a 16750');
  // XScale UUE bit does not stick.
  wr(IER, 0x40);
  assert.equal(rd(IER) & 0x40, 0);
  assert.notEqual(rd(LSR), 0xff);
});
