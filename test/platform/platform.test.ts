import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus } from '../../src/devices/bus.js';
import { createPlatformInterrupts, tscCpuidLeaves } from '../../src/devices/platform/platform.js';
import { PIT_HZ } from '../../src/devices/platform/pit8254.js';
import { IOAPIC_BASE, LAPIC_BASE } from '../../src/vmm/platform-layout.js';
import { FakeTime, pickSize, rng } from './fake-time.js';

function setup(cpus = 2) {
  const ft = new FakeTime();
  const bus = new Bus();
  const p = createPlatformInterrupts({ cpus, clock: ft.clock, bus });
  const out = (port: number, v: number): void => bus.pioWrite(port, 1, v);
  return { ft, bus, p, out };
}

function initPic(out: (port: number, v: number) => void): void {
  for (const [cmd, base, cascade] of [[0x20, 0x30, 0x04], [0xa0, 0x38, 0x02]]) {
    out(cmd, 0x11);
    out(cmd + 1, base);
    out(cmd + 1, cascade);
    out(cmd + 1, 0x01);
  }
}

test('everything is on the bus where the MADT says', () => {
  const { bus, p } = setup();
  const names = bus.describe().map((d) => `${d.space}:${d.start.toString(16)}+${d.length}`);
  for (const want of ['pio:20+2', 'pio:a0+2', 'pio:4d0+2', 'pio:40+4', 'pio:61+1', 'mmio:fec00000+4096', 'mmio:fee00000+4096']) {
    assert.ok(names.includes(want), want);
  }
  assert.equal(p.lapics.length, 2);
  assert.equal(p.clock.tscHz, 2e9);
  bus.mmioWrite(IOAPIC_BASE, 4, 1);
  assert.equal(bus.mmioRead(IOAPIC_BASE + 0x10, 4), 0x00170011);
});

test('the shared LAPIC window follows currentCpu; lapicMmio(i) is vCPU i itself', () => {
  const { bus, p } = setup(3);
  for (let i = 0; i < 3; i++) {
    p.currentCpu = i;
    assert.equal(bus.mmioRead(LAPIC_BASE + 0x20, 4), i << 24);
    assert.equal(p.lapicMmio(i).mmioRead(0x20, 4), i << 24);
  }
  p.currentCpu = 1;
  bus.mmioWrite(LAPIC_BASE + 0x80, 4, 0x40);
  assert.equal(p.lapics[1].mmioRead(0x80, 4), 0x40);
  assert.equal(p.lapics[0].mmioRead(0x80, 4), 0);
  assert.throws(() => p.lapicMmio(3), RangeError);
  assert.throws(() => createPlatformInterrupts({ cpus: 0 }), RangeError);
});

test('PIT -> PIC IRQ 0 -> BSP LINT0 (virtual wire): the CPU takes vector 0x30 every period', () => {
  const { ft, p, out } = setup();
  initPic(out);
  let wakes = 0;
  p.lapics[0].onInterrupt = () => wakes++;
  out(0x43, 0x34);
  const n = Math.round(PIT_HZ / 1000); // 1 ms
  out(0x40, n & 0xff);
  out(0x40, n >> 8);
  // The mode write raised OUT: take that first edge.
  assert.equal(p.lapics[0].acknowledge(), 0x30);
  out(0x20, 0x20);
  let taken = 0;
  for (let ms = 1; ms <= 5; ms++) {
    ft.runUntil(ms * 1e6 + 1000);
    assert.equal(p.lapics[0].hasInterrupt(), true, `tick ${ms}`);
    assert.equal(p.lapics[1].hasInterrupt(), false);
    assert.equal(p.lapics[0].acknowledge(), 0x30);
    out(0x20, 0x20);
    taken++;
  }
  assert.equal(taken, 5);
  assert.ok(wakes >= 5, 'the PIC wakes the BSP');
});

test('PIT -> I/O APIC pin 2 -> LAPIC, with the PIC masked, as Linux runs after setup', () => {
  const { ft, bus, p, out } = setup();
  initPic(out);
  out(0x21, 0xff);
  out(0xa1, 0xff);
  p.currentCpu = 0;
  bus.mmioWrite(LAPIC_BASE + 0xf0, 4, 0x1ff);
  bus.mmioWrite(LAPIC_BASE + 0x350, 4, 0x10700); // LINT0 masked
  bus.mmioWrite(IOAPIC_BASE, 4, 0x15);
  bus.mmioWrite(IOAPIC_BASE + 0x10, 4, 0);
  bus.mmioWrite(IOAPIC_BASE, 4, 0x14); // pin 2
  bus.mmioWrite(IOAPIC_BASE + 0x10, 4, 0xef);
  out(0x43, 0x34);
  out(0x40, 0x9c);
  out(0x40, 0x2e); // 11932: 10 ms
  if (p.lapics[0].hasInterrupt()) {
    p.lapics[0].acknowledge();
    bus.mmioWrite(LAPIC_BASE + 0xb0, 4, 0);
  }
  ft.runUntil(9e6);
  assert.equal(p.lapics[0].hasInterrupt(), false);
  ft.runUntil(10.1e6);
  assert.equal(p.lapics[0].acknowledge(), 0xef);
  assert.equal(p.pic.intrPending(), false);
});

test('SCI on GSI 9: level through the I/O APIC with EOI broadcast', () => {
  const { bus, p } = setup();
  p.lapics[0].mmioWrite(0xf0, 4, 0x1ff);
  bus.mmioWrite(IOAPIC_BASE, 4, 0x22);
  bus.mmioWrite(IOAPIC_BASE + 0x10, 4, 0x8000 | 0x49);
  p.router.setIrq(9, true);
  assert.equal(p.lapics[0].acknowledge(), 0x49);
  p.router.setIrq(9, false);
  p.lapics[0].mmioWrite(0xb0, 4, 0);
  bus.mmioWrite(IOAPIC_BASE, 4, 0x22);
  assert.equal(bus.mmioRead(IOAPIC_BASE + 0x10, 4) & 0x4000, 0);
});

test('reset returns every controller to power-on state and drops timers', () => {
  const { ft, p, out } = setup();
  initPic(out);
  out(0x43, 0x34);
  out(0x40, 0x00);
  out(0x40, 0x10);
  p.lapics[0].mmioWrite(0x380, 4, 1000);
  assert.ok(ft.clock.pending >= 1);
  p.reset();
  assert.equal(ft.clock.pending, 0);
  assert.equal(p.pic.state(0).vectorBase, 0);
  assert.equal(p.lapics[0].mmioRead(0x350, 4), 0x700);
});

test('hostile accesses to every platform device through the bus: no throw, no hang, bounded timers', () => {
  const { ft, bus, p } = setup(2);
  const r = rng(0x5eed);
  const ports = [0x20, 0x21, 0xa0, 0xa1, 0x4d0, 0x4d1, 0x40, 0x41, 0x42, 0x43, 0x61];
  for (let i = 0; i < 40000; i++) {
    const size = pickSize(r());
    switch (r() % 8) {
      case 0:
      case 1:
        bus.pioWrite(ports[r() % ports.length], size, r());
        break;
      case 2:
        bus.pioRead(ports[r() % ports.length], size);
        break;
      case 3:
        bus.mmioWrite((r() & 1 ? IOAPIC_BASE : LAPIC_BASE) + (r() % 0x1000), size, r());
        break;
      case 4:
        bus.mmioRead((r() & 1 ? IOAPIC_BASE : LAPIC_BASE) + (r() % 0x1000), size);
        break;
      case 5:
        p.router.setIrq(r() % 26, (r() & 1) === 1);
        p.currentCpu = r() % 3; // 2 is out of range: reads 0, writes dropped
        break;
      case 6:
        for (const l of p.lapics) if (l.hasInterrupt()) assert.ok(l.acknowledge() <= 0xff);
        break;
      default:
        ft.advance(r() % 3_000_000);
    }
    assert.ok(ft.clock.pending <= 3, `${ft.clock.pending} timers`);
  }
  const t0 = Date.now();
  ft.advance(3600e9);
  assert.ok(Date.now() - t0 < 5000);
});

test('onWake names the vCPU that got an IPI; CPUID leaves describe the clocks', () => {
  const { p } = setup(2);
  const woken: number[] = [];
  p.onWake = (i) => woken.push(i);
  p.lapics[1].mmioWrite(0xf0, 4, 0x1ff);
  woken.length = 0;
  p.lapics[0].mmioWrite(0x310, 4, 1 << 24);
  p.lapics[0].mmioWrite(0x300, 4, 0x4050);
  assert.deepEqual(woken, [1]);
  assert.deepEqual(tscCpuidLeaves(2e9), { leaf15: [1, 2, 1e9], leaf16: [2000, 2000, 1000] });
  assert.deepEqual(tscCpuidLeaves(2.5e9).leaf15, [2, 5, 1e9]);
});
