import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { IrqLine, NullIrqSink } from '../../src/devices/irq.js';
import { Uart16550 } from '../../src/devices/legacy/uart16550.js';
import { SerialConsole } from '../../src/vmm/serial-console.js';

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A PassThrough that claims to be a terminal and records raw-mode switches. */
function fakeTty() {
  const modes: boolean[] = [];
  const input = Object.assign(new PassThrough(), {
    isTTY: true,
    setRawMode(mode: boolean) {
      modes.push(mode);
      return input;
    },
  });
  return { input, modes };
}

function collect(stream: PassThrough) {
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { chunks, bytes: () => Buffer.concat(chunks) };
}

function uart(inputQueueBytes?: number) {
  return new Uart16550({ irq: new IrqLine(new NullIrqSink(), 4), inputQueueBytes });
}

/** Everything the guest can read from the UART right now. */
function guestReads(u: Uart16550): number[] {
  const out: number[] = [];
  while (u.pioRead(5, 1) & 1) out.push(u.pioRead(0, 1));
  return out;
}

test('console: piped input passes through untouched (no escapes); EOF does not quit', async () => {
  const input = new PassThrough();
  const output = new PassThrough();
  let quits = 0;
  const con = new SerialConsole({ input, output, onQuit: () => quits++ });
  const u = uart();
  con.attach(u);
  assert.equal(con.interactive, false);
  input.write(Buffer.from([0x61, 0x01, 0x78, 0x01, 0x01, 0x03, 0x0a]));
  input.end();
  await turn();
  await turn();
  assert.deepEqual(guestReads(u), [0x61, 0x01, 0x78, 0x01, 0x01, 0x03, 0x0a]);
  assert.equal(quits, 0);
  con.close();
});

test('console: guest output is written untouched, one write per event-loop turn', async () => {
  const input = new PassThrough();
  const output = new PassThrough();
  const out = collect(output);
  let writes = 0;
  const realWrite = output.write.bind(output);
  output.write = ((chunk: Buffer) => {
    writes++;
    return realWrite(chunk);
  }) as typeof output.write;
  const con = new SerialConsole({ input, output, onQuit: () => {} });
  const u = uart();
  con.attach(u);
  u.pioWrite(4, 1, 0x08); // MCR.OUT2, as a driver would
  const text = 'Linux version 6.1\r\n\x1b[0m\xff\x00';
  for (let i = 0; i < text.length; i++) u.pioWrite(0, 1, text.charCodeAt(i));
  assert.equal(writes, 0, 'nothing written synchronously');
  await turn();
  assert.equal(writes, 1);
  assert.deepEqual([...out.bytes()], [...Buffer.from(text, 'latin1')]);
  con.write(new Uint8Array([1, 2, 3]));
  await turn();
  assert.equal(writes, 2);
  assert.equal(con.stats.bytesToHost, text.length + 3);
  con.close();
});

test('console: terminal input: raw mode, Ctrl-A escapes, restored on close', async () => {
  const { input, modes } = fakeTty();
  const output = new PassThrough();
  const errors = new PassThrough();
  const help = collect(errors);
  let quits = 0;
  const con = new SerialConsole({ input, output, errorOutput: errors, onQuit: () => quits++ });
  assert.equal(con.interactive, true);
  assert.deepEqual(modes, [true]);
  const u = uart();
  con.attach(u);
  // a, Ctrl-A Ctrl-A (literal Ctrl-A), b, Ctrl-A h (help), c, Ctrl-A z (dropped), d
  input.write(Buffer.from([0x61, 0x01, 0x01, 0x62, 0x01, 0x68, 0x63, 0x01, 0x7a, 0x64]));
  await turn();
  assert.deepEqual(guestReads(u), [0x61, 0x01, 0x62, 0x63, 0x64]);
  assert.match(help.bytes().toString(), /Ctrl-A/);
  assert.equal(quits, 0);
  // An escape split across two reads, then quit: what follows is not for the guest.
  input.write(Buffer.from([0x65, 0x01]));
  await turn();
  input.write(Buffer.from([0x78, 0x66]));
  await turn();
  assert.equal(quits, 1);
  assert.deepEqual(guestReads(u), [0x65]);
  input.write(Buffer.from([0x01, 0x78]));
  await turn();
  assert.equal(quits, 1, 'onQuit is called once');
  const exitHooks = process.listenerCount('exit');
  con.close();
  con.close();
  assert.deepEqual(modes, [true, false], 'terminal restored once');
  assert.equal(process.listenerCount('exit'), exitHooks - 1, 'exit hook removed');
});

test('console: piped input is flow-controlled by the UART queue, nothing lost', async () => {
  const input = new PassThrough();
  const output = new PassThrough();
  const con = new SerialConsole({ input, output, onQuit: () => {} });
  const u = uart(8);
  con.attach(u);
  const data = Buffer.from(Array.from({ length: 200 }, (_, i) => i & 0xff));
  input.write(data);
  const got: number[] = [];
  for (let i = 0; i < 100 && got.length < data.length; i++) {
    await turn();
    got.push(...guestReads(u));
  }
  assert.deepEqual(got, [...data]);
  assert.equal(u.stats.inputDropped, 0);
  con.close();
});

test('console: onInput callback instead of attach gets input that arrived earlier too', async () => {
  const input = new PassThrough();
  const con = new SerialConsole({ input, output: new PassThrough(), onQuit: () => {} });
  input.write('early');
  await turn();
  const got: Buffer[] = [];
  con.onInput = (b) => got.push(Buffer.from(b));
  input.write('late');
  await turn();
  assert.equal(Buffer.concat(got).toString(), 'earlylate');
  con.close();
});

test('console: a stalled output is bounded: excess guest output is dropped and counted', async () => {
  const stalled = new Writable({ write() { /* never completes */ } });
  const con = new SerialConsole({ input: new PassThrough(), output: stalled, onQuit: () => {}, outputLimit: 10 });
  con.write(new Uint8Array(100));
  con.flush();
  con.write(new Uint8Array(50));
  con.flush();
  assert.equal(con.stats.bytesToHost, 100);
  assert.equal(con.stats.outputDropped, 50);
  con.close();
  con.transmit(1);
  assert.equal(con.stats.outputDropped, 51, 'after close, output is dropped');
});

test('console: hostile terminal input never throws', async () => {
  const { input } = fakeTty();
  let quits = 0;
  const con = new SerialConsole({ input, output: new PassThrough(), errorOutput: new PassThrough(), onQuit: () => quits++ });
  const u = uart(256);
  con.attach(u);
  let seed = 23;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8);
  for (let i = 0; i < 200; i++) {
    input.write(Buffer.from(Array.from({ length: rnd() % 64 }, () => rnd() & 0xff)));
    if (i % 10 === 0) await turn();
    guestReads(u);
  }
  await turn();
  assert.ok(quits <= 1);
  assert.ok(u.inputQueued <= 256);
  con.close();
});
