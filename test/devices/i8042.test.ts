import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus } from '../../src/devices/bus.js';
import { IrqLine, NullIrqSink } from '../../src/devices/irq.js';
import { I8042 } from '../../src/devices/legacy/i8042.js';
import { RecordingMachineControl } from '../../src/vmm/machine-control.js';

const OBF = 0x01, SYS = 0x04, UNLOCKED = 0x10, AUXDATA = 0x20, TIMEOUT = 0x40;

function make() {
  const sink = new NullIrqSink();
  const control = new RecordingMachineControl();
  const kbc = new I8042({ control, kbdIrq: new IrqLine(sink, 1), auxIrq: new IrqLine(sink, 12) });
  const bus = new Bus();
  kbc.attach(bus);
  const status = () => bus.pioRead(0x64, 1);
  const cmd = (c: number) => bus.pioWrite(0x64, 1, c);
  const data = () => bus.pioRead(0x60, 1);
  const put = (v: number) => bus.pioWrite(0x60, 1, v);
  const level = (gsi: number) => {
    const l = sink.log.filter((e) => e.gsi === gsi);
    return l.length ? l[l.length - 1].level : false;
  };
  /** Read everything in the output buffer, as Linux's i8042_flush does. */
  const drain = () => {
    const out: number[] = [];
    for (let i = 0; i < 32 && status() & OBF; i++) out.push(data());
    return out;
  };
  return { kbc, bus, sink, control, status, cmd, data, put, level, drain };
}

test('i8042: status at power-on: present, keylock off, system flag, nothing to read', () => {
  const { status } = make();
  const s = status();
  assert.notEqual(s, 0xff);
  assert.equal(s & OBF, 0);
  assert.equal(s & UNLOCKED, UNLOCKED, 'Linux warns "Keylock active" otherwise');
  assert.equal(s & SYS, SYS);
});

test('i8042: self test, interface tests, command byte read/write', () => {
  const { cmd, put, drain, status } = make();
  cmd(0xaa);
  assert.deepEqual(drain(), [0x55]);
  cmd(0xab);
  assert.deepEqual(drain(), [0x00]);
  cmd(0xa9);
  assert.deepEqual(drain(), [0x00]);
  cmd(0x20);
  assert.deepEqual(drain(), [0x65], 'XLATE | AUXDIS | SYS | KBDINT, as a BIOS leaves it');
  cmd(0x60);
  assert.equal(status() & 0x08, 0x08, 'CMD/DATA: last write was a command');
  put(0x47);
  assert.equal(status() & 0x08, 0);
  cmd(0x20);
  assert.deepEqual(drain(), [0x47]);
});

test('i8042: 0xAD/0xAE and 0xA7/0xA8 toggle the disable bits in the command byte', () => {
  const { cmd, drain } = make();
  const ctr = () => {
    cmd(0x20);
    return drain()[0];
  };
  cmd(0xa8);
  assert.equal(ctr() & 0x20, 0);
  cmd(0xa7);
  assert.equal(ctr() & 0x20, 0x20);
  cmd(0xad);
  assert.equal(ctr() & 0x10, 0x10);
  cmd(0xae);
  assert.equal(ctr() & 0x10, 0);
});

test('i8042: 0xFE pulses the reset line -> MachineControl reset', () => {
  const { cmd, control } = make();
  cmd(0xfe);
  assert.deepEqual(control.requests, [{ kind: 'reset' }]);
  cmd(0xff); // pulses nothing
  assert.equal(control.requests.length, 1);
});

test('i8042: output port read/write; bit 0 = 0 resets', () => {
  const { cmd, put, drain, control } = make();
  cmd(0xd0);
  const out = drain()[0];
  assert.equal(out & 0x03, 0x03, 'reset line high, A20 on');
  cmd(0xd1);
  put(0xdf); // the classic "enable A20" value: no reset
  assert.equal(control.requests.length, 0);
  cmd(0xd1);
  put(0xde);
  assert.deepEqual(control.requests, [{ kind: 'reset' }]);
});

test('i8042: AUX loop returns the byte as AUX data and raises IRQ 12 when enabled', () => {
  const { cmd, put, status, data, level } = make();
  cmd(0xd3);
  put(0x5a);
  assert.equal(status() & (OBF | AUXDATA), OBF | AUXDATA);
  assert.equal(level(12), false, 'AUXINT off at power-on');
  assert.equal(data(), 0x5a);
  cmd(0x60);
  put(0x47); // KBDINT | AUXINT | SYS | XLATE
  cmd(0xd3);
  put(0xa5);
  assert.equal(level(12), true);
  assert.equal(level(1), false);
  assert.equal(data(), 0xa5);
  assert.equal(level(12), false);
});

test('i8042: bytes for the absent mouse come back as 0xFE with TIMEOUT', () => {
  const { cmd, put, status, data } = make();
  cmd(0xd4);
  put(0xf2);
  assert.equal(status() & (OBF | AUXDATA | TIMEOUT), OBF | AUXDATA | TIMEOUT);
  assert.equal(data(), 0xfe);
  assert.equal(status() & OBF, 0);
});

test('i8042: the keyless keyboard answers atkbd probe commands, one IRQ 1 edge per byte', () => {
  const { put, drain, sink, data, status } = make();
  put(0xf2);
  const rises = () => sink.log.filter((e) => e.gsi === 1 && e.level).length;
  assert.equal(rises(), 1);
  assert.equal(data(), 0xfa);
  assert.equal(rises(), 2, 'the next byte is a new edge');
  assert.equal(data(), 0xab);
  assert.equal(data(), 0x83);
  assert.equal(status() & OBF, 0);
  put(0xf5);
  assert.deepEqual(drain(), [0xfa]);
  put(0xed);
  put(0x07);
  assert.deepEqual(drain(), [0xfa, 0xfa]);
  put(0xf0);
  put(0x00);
  assert.deepEqual(drain(), [0xfa, 0xfa, 0x02], 'scancode set 2');
  put(0xff);
  assert.deepEqual(drain(), [0xfa, 0xaa]);
  put(0xee);
  assert.deepEqual(drain(), [0xee]);
  put(0x42);
  assert.deepEqual(drain(), [0xfe]);
});

test('i8042: the output queue is bounded to what Linux flushes (16 bytes)', () => {
  const { cmd, drain, kbc } = make();
  for (let i = 0; i < 100; i++) cmd(0x20);
  assert.equal(drain().length, 16);
  assert.equal(kbc.stats.outputDropped, 84);
});

test('i8042: hostile input never throws', () => {
  const { kbc, status } = make();
  let seed = 99;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8);
  const sizes = [1, 2, 4] as const;
  const ports = [kbc.dataPort, kbc.commandPort];
  for (let i = 0; i < 50000; i++) {
    const p = ports[rnd() & 1];
    const off = (rnd() % 8) - 2;
    const size = sizes[rnd() % 3];
    if (rnd() & 1) p.pioWrite(off, size, rnd() * 131);
    else {
      const v = p.pioRead(off, size);
      assert.ok(v >= 0 && v <= 0xffffffff);
    }
  }
  assert.notEqual(status(), 0xff);
});
