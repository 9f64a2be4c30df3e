import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IrqLine, NullIrqSink } from '../../src/devices/irq.js';
import { CmosRtc, type CmosRtcOptions, type RtcTimers } from '../../src/devices/legacy/cmos-rtc.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
// Thursday 29 February 2024, 13:45:07.5 UTC.
const T0 = Date.UTC(2024, 1, 29, 13, 45, 7, 500);

/** A clock and timer queue the test moves by hand. */
class FakeTime implements RtcTimers {
  t = T0;
  private next = 1;
  private readonly pending = new Map<number, { at: number; fn: () => void }>();
  now = () => this.t;
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.pending.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  get armed(): number { return this.pending.size; }
  /** Move the clock forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let first: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.pending) if (e[1].at <= end && (!first || e[1].at < first[1].at)) first = e;
      if (!first) break;
      this.pending.delete(first[0]);
      this.t = Math.max(this.t, first[1].at);
      first[1].fn();
    }
    this.t = end;
  }
}

function make(opts: Partial<CmosRtcOptions> = {}) {
  const time = new FakeTime();
  const sink = new NullIrqSink();
  const rtc = new CmosRtc({
    ramBelow4G: 512 * MiB,
    ramAbove4G: 0,
    now: time.now,
    timers: time,
    irq: new IrqLine(sink, 8),
    ...opts,
  });
  const rd = (idx: number) => {
    rtc.pioWrite(0, 1, idx);
    return rtc.pioRead(1, 1);
  };
  const wr = (idx: number, v: number) => {
    rtc.pioWrite(0, 1, idx);
    rtc.pioWrite(1, 1, v);
  };
  const level = () => (sink.log.length ? sink.log[sink.log.length - 1].level : false);
  return { rtc, time, sink, rd, wr, level };
}

test('rtc: time registers in BCD, 24-hour (the power-on format)', () => {
  const { rd } = make();
  assert.equal(rd(0x0b), 0x02);
  assert.equal(rd(0x00), 0x07);
  assert.equal(rd(0x02), 0x45);
  assert.equal(rd(0x04), 0x13);
  assert.equal(rd(0x06), 0x05, 'Thursday (1 = Sunday)');
  assert.equal(rd(0x07), 0x29);
  assert.equal(rd(0x08), 0x02);
  assert.equal(rd(0x09), 0x24);
  assert.equal(rd(0x32), 0x20, 'century');
  assert.equal(rd(0x0d), 0x80, 'VRT: valid RAM and time');
});

test('rtc: binary mode and 12-hour mode per register B', () => {
  const { rd, wr } = make();
  wr(0x0b, 0x06); // binary, 24h
  assert.equal(rd(0x00), 7);
  assert.equal(rd(0x04), 13);
  assert.equal(rd(0x09), 24);
  assert.equal(rd(0x32), 20);
  wr(0x0b, 0x04); // binary, 12h
  assert.equal(rd(0x04), 0x81, '1 PM');
  wr(0x0b, 0x00); // BCD, 12h
  assert.equal(rd(0x04), 0x81);
  wr(0x0b, 0x80); // SET, BCD, 12h: write 12 AM (midnight)
  wr(0x04, 0x12);
  wr(0x0b, 0x02); // back to 24h
  assert.equal(rd(0x04), 0x00);
});

test('rtc: writes under SET freeze the clock, then it runs on from the written time', () => {
  const { rtc, rd, wr, time } = make();
  wr(0x0b, 0x82); // SET
  wr(0x00, 0x30);
  wr(0x02, 0x59);
  wr(0x04, 0x23);
  wr(0x07, 0x31);
  wr(0x08, 0x12);
  wr(0x09, 0x99);
  wr(0x32, 0x19);
  time.advance(5000);
  assert.equal(rd(0x00), 0x30, 'frozen while SET');
  assert.equal(rd(0x0a) & 0x80, 0, 'no UIP while SET');
  wr(0x0b, 0x02);
  assert.equal(new Date(rtc.guestTime()).toISOString(), '1999-12-31T23:59:30.000Z');
  time.advance(31000);
  assert.equal(rd(0x09), 0x00);
  assert.equal(rd(0x32), 0x20);
  assert.equal(rd(0x08), 0x01);
  assert.equal(rd(0x00), 0x01);
  // The host clock itself is untouched: only the guest's offset moved.
  assert.equal(time.t, T0 + 36000);
});

test('rtc: a direct write to one field keeps the rest running', () => {
  const { rd, wr, time } = make();
  wr(0x02, 0x10); // minutes := 10
  assert.equal(rd(0x02), 0x10);
  assert.equal(rd(0x04), 0x13);
  time.advance(1000);
  assert.equal(rd(0x00), 0x08);
});

test('rtc: UIP is set only in the 244 us before each update', () => {
  const { rd, time } = make();
  assert.equal(rd(0x0a), 0x26, 'UIP clear mid-second; DV/RS as a BIOS sets them');
  time.t = Date.UTC(2024, 1, 29, 13, 45, 7, 999) + 0.9;
  assert.equal(rd(0x0a) & 0x80, 0x80);
  time.t += 0.2; // the update happened
  assert.equal(rd(0x0a) & 0x80, 0);
  assert.equal(rd(0x00), 0x08);
});

test('rtc: NMI mask bit of the index is ignored; the index port reads 0xFF', () => {
  const { rtc } = make();
  rtc.pioWrite(0, 1, 0x8d);
  assert.equal(rtc.pioRead(1, 1), 0x80);
  assert.equal(rtc.pioRead(0, 1), 0xff);
  rtc.pioWrite(0, 2, 0x5a40); // 16-bit write: index 0x40, then data 0x5A
  assert.equal(rtc.pioRead(1, 1), 0x5a);
});

test('rtc: memory size bytes as SeaBIOS reads them', () => {
  const { rtc } = make({ ramBelow4G: 3 * GiB, ramAbove4G: 5 * GiB, cpuCount: 4 });
  const w = (i: number) => rtc.peek(i) | (rtc.peek(i + 1) << 8);
  assert.equal(w(0x15), 640);
  assert.equal(w(0x17), 0xffff, 'extended memory caps at 64 MiB - 1 KiB');
  assert.equal(w(0x30), 0xffff);
  assert.equal(w(0x34), (3 * GiB - 16 * MiB) / 65536);
  const high = rtc.peek(0x5b) | (rtc.peek(0x5c) << 8) | (rtc.peek(0x5d) << 16);
  assert.equal(high, (5 * GiB) / 65536);
  assert.equal(rtc.peek(0x5f), 3);
  const small = make({ ramBelow4G: 32 * MiB, ramAbove4G: 0 }).rtc;
  assert.equal(small.peek(0x17) | (small.peek(0x18) << 8), 31 * 1024);
  assert.equal(small.peek(0x34) | (small.peek(0x35) << 8), 256);
  assert.equal(small.peek(0x5b) | small.peek(0x5c) | small.peek(0x5d), 0);
  // SeaBIOS: RamSize = (0x34/0x35 << 16) + 16 MiB when non-zero.
  assert.equal(((small.peek(0x34) | (small.peek(0x35) << 8)) << 16) + 16 * MiB, 32 * MiB);
});

test('rtc: CMOS RAM bytes read back; register C/D are read-only', () => {
  const { rd, wr } = make();
  wr(0x40, 0xa5);
  assert.equal(rd(0x40), 0xa5);
  wr(0x0d, 0x00);
  assert.equal(rd(0x0d), 0x80);
  wr(0x0c, 0xff);
  assert.equal(rd(0x0c), 0x00);
});

test('rtc: update-ended interrupt raises IRQ 8 until register C is read', () => {
  const { rd, wr, time, level } = make();
  assert.equal(time.armed, 0, 'no host timer while no interrupt is enabled');
  wr(0x0b, 0x12); // UIE, 24h
  assert.equal(time.armed, 1);
  time.advance(400);
  assert.equal(level(), false);
  time.advance(200); // crosses the second boundary
  assert.equal(level(), true);
  // PF (0x40) is set too: the flag runs at register A's rate whether or not PIE is set.
  assert.equal(rd(0x0c) & 0xb0, 0x90, 'IRQF | UF');
  assert.equal(level(), false);
  assert.equal(rd(0x0c), 0x00, 'reading C cleared every flag');
  time.advance(1000);
  assert.equal(level(), true, 'again next second');
});

test('rtc: periodic interrupt at the register A rate', () => {
  const { rd, wr, time, level } = make();
  wr(0x0a, 0x2f); // RS = 15: 2 Hz
  wr(0x0b, 0x42); // PIE
  time.advance(499);
  assert.equal(level(), false);
  time.advance(1); // T0 + 500 ms: the next 2 Hz boundary
  assert.equal(level(), true);
  assert.equal(rd(0x0c) & 0xc0, 0xc0, 'IRQF | PF');
  time.advance(400);
  assert.equal(level(), false);
  time.advance(200);
  assert.equal(level(), true);
});

test('rtc: alarm interrupt, with "don\'t care" bytes', () => {
  const { rd, wr, time, level } = make();
  wr(0x01, 0x10); // seconds alarm 10
  wr(0x03, 0xc0); // any minute
  wr(0x05, 0xff); // any hour
  rd(0x0c);
  wr(0x0b, 0x22); // AIE
  time.advance(2000); // 13:45:09.5
  assert.equal(level(), false);
  time.advance(1000); // 13:45:10.5
  assert.equal(level(), true);
  assert.equal(rd(0x0c) & 0xa0, 0xa0, 'IRQF | AF');
});

test('rtc: hostile input never throws', () => {
  const { rtc, time } = make();
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8);
  const sizes = [1, 2, 4] as const;
  for (let i = 0; i < 50000; i++) {
    const off = (rnd() % 6) - 2;
    const size = sizes[rnd() % 3];
    if (rnd() & 1) rtc.pioWrite(off, size, rnd() * 977);
    else {
      const v = rtc.pioRead(off, size);
      assert.ok(v >= 0 && v <= 0xffffffff);
    }
    if (i % 1000 === 0) time.advance(rnd() % 5000);
    assert.ok(time.armed <= 1);
    assert.ok(Number.isFinite(rtc.guestTime()));
  }
  rtc.close();
});
