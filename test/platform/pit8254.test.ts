import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NullIrqSink } from '../../src/devices/irq.js';
import { PIT_HZ, Pit8254 } from '../../src/devices/platform/pit8254.js';
import { SystemControlPortB } from '../../src/devices/platform/system-control-port.js';
import { FakeTime, pickSize, rng } from './fake-time.js';

function setup() {
  const ft = new FakeTime();
  const sink = new NullIrqSink();
  const pit = new Pit8254({ clock: ft.clock, irq: sink, gsi: 2 });
  const port61 = new SystemControlPortB(pit, ft.clock);
  const out = (port: number, v: number): void => {
    if (port === 0x61) port61.pioWrite(0, 1, v);
    else pit.pioWrite(port - 0x40, 1, v);
  };
  const inb = (port: number): number => (port === 0x61 ? port61.pioRead(0, 1) : pit.pioRead(port - 0x40, 1));
  return { ft, sink, pit, port61, out, inb };
}

/** Nanoseconds at which `ticks` PIT clocks have elapsed. */
const nsAt = (ticks: number): number => Math.ceil((ticks * 1e9) / PIT_HZ);

function risingEdges(sink: NullIrqSink): number {
  let n = 0;
  let last = false;
  for (const e of sink.log) {
    if (e.level && !last) n++;
    last = e.level;
  }
  return n;
}

test('mode 0 on counter 0: OUT low, counts down, raises IRQ 0 at terminal count', () => {
  const { ft, sink, pit, out, inb } = setup();
  out(0x43, 0x30); // counter 0, LSB then MSB, mode 0, binary
  assert.equal(pit.out(0), false);
  out(0x40, 1000 & 0xff);
  out(0x40, 1000 >> 8);
  assert.equal(ft.clock.pending, 1, 'one timer, for the terminal count');
  ft.runUntil(nsAt(400));
  out(0x43, 0x00); // latch counter 0
  assert.equal(inb(0x40) | (inb(0x40) << 8), 600);
  ft.runUntil(nsAt(1000) - 1);
  assert.equal(sink.log.length, 0);
  ft.runUntil(nsAt(1000));
  assert.deepEqual(sink.log, [{ gsi: 2, level: true }]);
  assert.equal(ft.clock.pending, 0, 'mode 0 fires once');
  // The count wraps and keeps going; OUT stays high until a new count or control word.
  ft.runUntil(nsAt(1010));
  assert.equal(inb(0x40) | (inb(0x40) << 8), 0xfff6);
  out(0x43, 0x30);
  assert.deepEqual(sink.log.at(-1), { gsi: 2, level: false });
});

test('mode 2 rate generator: one IRQ edge per period, count reloads', () => {
  const { ft, sink, out, inb } = setup();
  out(0x43, 0x34); // counter 0, LSB/MSB, mode 2
  const n = 11932; // ~10 ms, what Linux programs for HZ=100
  out(0x40, n & 0xff);
  out(0x40, n >> 8);
  assert.deepEqual(sink.log, [{ gsi: 2, level: true }], 'OUT goes high when the mode is set (an edge)');
  sink.log.length = 0;
  ft.runUntil(nsAt(n * 10) + 1);
  assert.equal(risingEdges(sink), 10);
  assert.equal(ft.clock.pending, 1);
  ft.runUntil(nsAt(n * 10 + 100));
  out(0x43, 0x00);
  assert.equal(inb(0x40) | (inb(0x40) << 8), n - 100);
});

test('mode 3 square wave: OUT high for half the period, low for the other half', () => {
  const { ft, sink, pit, out } = setup();
  out(0x43, 0x36);
  out(0x40, 0x00);
  out(0x40, 0x10); // 4096
  sink.log.length = 0;
  ft.runUntil(nsAt(1000));
  assert.equal(pit.out(0), true);
  ft.runUntil(nsAt(3000));
  assert.equal(pit.out(0), false);
  ft.runUntil(nsAt(4096 * 5) + 1);
  assert.equal(risingEdges(sink), 5);
});

test('a late host coalesces PIT periods but still delivers an edge', () => {
  const { ft, sink, out } = setup();
  out(0x43, 0x34);
  out(0x40, 100);
  out(0x40, 0);
  sink.log.length = 0;
  ft.t = nsAt(100 * 1000 + 50); // a thousand periods late
  ft.clock.runDue(ft.t);
  assert.equal(risingEdges(sink), 1);
  assert.equal(ft.clock.pending, 1);
  assert.ok(ft.clock.nextDeadlineNs() > ft.t);
});

test('Linux pit_calibrate_tsc: channel 2 gated by port 0x61, mode 0, poll OUT on bit 5', () => {
  const { ft, out, inb } = setup();
  out(0x61, (inb(0x61) & ~0x02) | 0x01); // gate high, speaker off
  assert.equal(inb(0x61) & 0x01, 0x01);
  out(0x43, 0xb0); // counter 2, LSB/MSB, mode 0, binary
  const latch = Math.floor(PIT_HZ / (1000 / 50)); // 50 ms
  out(0x42, latch & 0xff);
  out(0x42, latch >> 8);
  assert.equal(ft.clock.pending, 0, 'channel 2 needs no timer: it is polled');
  const start = ft.t;
  let loops = 0;
  while ((inb(0x61) & 0x20) === 0) {
    ft.t += 10_000; // 10 us per poll
    loops++;
    assert.ok(loops < 100_000);
  }
  const ms = (ft.t - start) / 1e6;
  assert.ok(ms >= 50 && ms < 50.02, `${ms} ms`);
});

test('quick_pit_calibrate: reading LSB then MSB without a latch, the MSB falls at the PIT rate', () => {
  const { ft, out, inb } = setup();
  out(0x61, (inb(0x61) & ~0x02) | 0x01);
  out(0x43, 0xb0);
  out(0x42, 0xff);
  out(0x42, 0xff);
  inb(0x42);
  assert.equal(inb(0x42), 0xff);
  ft.t += nsAt(256 * 3 + 10);
  inb(0x42);
  assert.equal(inb(0x42), 0xfc);
});

test('gate low stops counter 2 in mode 0; the refresh bit toggles', () => {
  const { ft, out, inb } = setup();
  out(0x61, 0x01);
  out(0x43, 0xb0);
  out(0x42, 0x00);
  out(0x42, 0x10); // 4096
  ft.t = nsAt(96);
  out(0x61, 0x00);
  ft.t = nsAt(2000);
  out(0x43, 0x80);
  assert.equal(inb(0x42) | (inb(0x42) << 8), 4000);
  out(0x61, 0x01);
  ft.t = nsAt(2100);
  out(0x43, 0x80);
  assert.equal(inb(0x42) | (inb(0x42) << 8), 3900);
  const seen = new Set<number>();
  for (let t = 0; t < 100_000; t += 3_000) {
    ft.t = t;
    seen.add(inb(0x61) & 0x10);
  }
  assert.deepEqual([...seen].sort(), [0, 0x10]);
});

test('read-back command: status then count; latches hold until read', () => {
  const { ft, out, inb } = setup();
  out(0x43, 0x34);
  out(0x40, 0x00);
  out(0x40, 0x01); // 256, mode 2
  ft.t = nsAt(6);
  out(0x43, 0xc2); // read-back: count and status of counter 0
  ft.t = nsAt(50);
  const status = inb(0x40);
  assert.equal(status, 0x80 | 0x34, 'OUT high, count loaded, LSB/MSB, mode 2, binary');
  assert.equal(inb(0x40) | (inb(0x40) << 8), 250);
  // Status only, before any count: null count set.
  out(0x43, 0x32); // mode 1, no count yet
  out(0x43, 0xe2);
  assert.equal(inb(0x40), 0x80 | 0x40 | 0x32);
  // A second latch before reading the first is ignored.
  out(0x43, 0x34);
  out(0x40, 0x00);
  out(0x40, 0x01);
  const t0 = ft.t;
  ft.t = t0 + nsAt(10);
  out(0x43, 0x00);
  ft.t = t0 + nsAt(20);
  out(0x43, 0x00);
  assert.equal(inb(0x40) | (inb(0x40) << 8), 246);
});

test('LSB-only, MSB-only access and BCD counting', () => {
  const { ft, out, inb } = setup();
  out(0x43, 0x50); // counter 1, LSB only, mode 0
  out(0x41, 200);
  ft.t = nsAt(50);
  assert.equal(inb(0x41), 150);
  out(0x43, 0x60); // counter 1, MSB only
  out(0x41, 0x02); // 512
  ft.t += nsAt(256) + 1;
  assert.equal(inb(0x41), 0x01);
  out(0x43, 0x71); // counter 1, LSB/MSB, mode 0, BCD
  out(0x41, 0x00);
  out(0x41, 0x10); // 1000 in BCD
  ft.t += nsAt(1) + 1;
  assert.equal(inb(0x41) | (inb(0x41) << 8), 0x0999);
});

test('hostile port accesses never throw, never hang, keep at most one timer', () => {
  const { ft, pit, port61 } = setup();
  const r = rng(8254);
  for (let i = 0; i < 30000; i++) {
    const size = pickSize(r());
    const off = r() % 6;
    switch (r() % 5) {
      case 0:
      case 1:
        pit.pioWrite(off, size, r());
        break;
      case 2:
        assert.ok(pit.pioRead(off, size) <= 0xffffffff);
        break;
      case 3:
        if (r() & 1) port61.pioWrite(r() % 2, size, r());
        else port61.pioRead(r() % 2, size);
        break;
      default:
        ft.advance(r() % 100_000);
    }
    assert.ok(ft.clock.pending <= 1);
  }
  // The fastest legal rate: bounded work per runDue even far behind.
  pit.pioWrite(3, 1, 0x34);
  pit.pioWrite(0, 1, 2);
  pit.pioWrite(0, 1, 0);
  ft.t += 1e9;
  assert.ok(ft.clock.runDue(ft.t) <= 3);
});

test('modes 1 and 5 wait for a gate trigger; mode 4 strobes OUT low for one clock', () => {
  const { ft, pit, out } = setup();
  out(0x61, 0x00);
  out(0x43, 0xb2); // counter 2, mode 1
  out(0x42, 100);
  out(0x42, 0);
  ft.t = nsAt(500);
  assert.equal(pit.out2(), true, 'no trigger yet: OUT high');
  out(0x61, 0x01); // gate rises: one-shot starts, OUT low
  const t0 = ft.t;
  ft.t = t0 + nsAt(50);
  assert.equal(pit.out2(), false);
  ft.t = t0 + nsAt(101);
  assert.equal(pit.out2(), true);
  out(0x61, 0x00);
  out(0x61, 0x01); // retrigger
  assert.equal(pit.out2(), false);
  out(0x43, 0xba); // counter 2, mode 5
  out(0x42, 10);
  out(0x42, 0);
  out(0x61, 0x00);
  out(0x61, 0x01);
  const t1 = ft.t;
  ft.t = t1 + nsAt(10) + 1;
  assert.equal(pit.out2(), false, 'strobe');
  ft.t = t1 + nsAt(12);
  assert.equal(pit.out2(), true);
  out(0x43, 0xb8); // counter 2, mode 4: starts on the count write
  out(0x42, 10);
  out(0x42, 0);
  const t2 = ft.t;
  assert.equal(pit.out2(), true);
  ft.t = t2 + nsAt(10) + 1;
  assert.equal(pit.out2(), false);
  ft.t = t2 + nsAt(12);
  assert.equal(pit.out2(), true);
});

test('mode 4 on counter 0 produces one IRQ edge; reset drops the timer', () => {
  const { ft, sink, pit, out } = setup();
  out(0x43, 0x38);
  out(0x40, 50);
  out(0x40, 0);
  sink.log.length = 0;
  ft.runUntil(nsAt(1000));
  assert.deepEqual(sink.log, [{ gsi: 2, level: false }, { gsi: 2, level: true }]);
  assert.equal(ft.clock.pending, 0);
  out(0x43, 0x34);
  out(0x40, 0);
  out(0x40, 0);
  assert.equal(ft.clock.pending, 1);
  pit.reset();
  assert.equal(ft.clock.pending, 0);
});
