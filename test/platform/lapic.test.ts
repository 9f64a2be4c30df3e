import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApicBus } from '../../src/devices/platform/apic-bus.js';
import { LocalApic, MIN_PERIOD_NS } from '../../src/devices/platform/lapic.js';
import { PicPair } from '../../src/devices/platform/pic8259.js';
import { FakeTime, pickSize, rng } from './fake-time.js';

const ID = 0x20;
const TPR = 0x80;
const PPR = 0xa0;
const EOI = 0xb0;
const LDR = 0xd0;
const DFR = 0xe0;
const SVR = 0xf0;
const ISR = 0x100;
const TMR = 0x180;
const IRR = 0x200;
const ESR = 0x280;
const ICR_LO = 0x300;
const ICR_HI = 0x310;
const LVT_TIMER = 0x320;
const LVT_LINT0 = 0x350;
const LVT_LINT1 = 0x360;
const LVT_ERROR = 0x370;
const TIMER_INIT = 0x380;
const TIMER_CUR = 0x390;
const TIMER_DIV = 0x3e0;

function setup(cpus = 1, pic?: PicPair) {
  const ft = new FakeTime();
  const bus = new ApicBus();
  const apics: LocalApic[] = [];
  for (let i = 0; i < cpus; i++) apics.push(new LocalApic({ id: i, bus, clock: ft.clock, bsp: i === 0, extInt: pic }));
  for (const a of apics) a.mmioWrite(SVR, 4, 0x1ff); // software enable, spurious vector 0xFF
  return { ft, bus, apics, a: apics[0] };
}

function bit(a: LocalApic, base: number, v: number): boolean {
  return ((a.mmioRead(base + ((v >>> 5) << 4), 4) >>> (v & 31)) & 1) === 1;
}

/** Fixed self-IPI of vector v (ICR shorthand self). */
function selfIpi(a: LocalApic, v: number): void {
  a.mmioWrite(ICR_LO, 4, 0x40000 | 0x4000 | v);
}

test('ID, version, reset values', () => {
  const { apics } = setup(2);
  assert.equal(apics[1].mmioRead(ID, 4), 1 << 24);
  assert.equal(apics[0].mmioRead(0x30, 4), 0x00050014);
  assert.equal(apics[0].mmioRead(DFR, 4), 0xffffffff);
  assert.equal(apics[0].mmioRead(LVT_TIMER, 4), 0x10000);
  assert.equal(apics[0].mmioRead(LVT_LINT0, 4), 0x700, 'BSP LINT0: ExtINT, unmasked');
  assert.equal(apics[1].mmioRead(LVT_LINT0, 4), 0x10000, 'AP LINT0 masked');
  assert.equal(apics[0].msrRead(0x1b), 0xfee00900n, 'base, enabled, BSP');
  assert.equal(apics[1].msrRead(0x1b), 0xfee00800n);
  assert.equal(apics[0].mmioRead(ID + 3, 1), 0, 'byte 3 of the ID register');
  assert.equal(apics[1].mmioRead(ID + 3, 1), 1);
});

test('acceptance: highest vector first, priority classes against PPR, EOI order', () => {
  const { a } = setup();
  selfIpi(a, 0x45);
  selfIpi(a, 0x61);
  selfIpi(a, 0x62);
  assert.ok(bit(a, IRR, 0x45) && bit(a, IRR, 0x61));
  assert.equal(a.hasInterrupt(), true);
  assert.equal(a.acknowledge(), 0x62);
  assert.equal(a.mmioRead(PPR, 4), 0x60);
  assert.equal(a.hasInterrupt(), false, '0x61 is in the same class as 0x62 in service');
  a.mmioWrite(EOI, 4, 0);
  assert.equal(a.acknowledge(), 0x61);
  a.mmioWrite(EOI, 4, 0);
  // TPR blocks its class and below.
  a.mmioWrite(TPR, 4, 0x50);
  assert.equal(a.mmioRead(PPR, 4), 0x50);
  assert.equal(a.hasInterrupt(), false);
  assert.equal(a.acknowledge(), 0xff, 'nothing deliverable: the spurious vector');
  assert.equal(bit(a, ISR, 0x45), false);
  a.setCr8(3);
  assert.equal(a.mmioRead(TPR, 4), 0x30);
  assert.equal(a.getCr8(), 3);
  assert.equal(a.hasInterrupt(), true);
  assert.equal(a.acknowledge(), 0x45);
  a.mmioWrite(EOI, 4, 0);
  assert.equal(a.mmioRead(ISR + 0x20, 4), 0);
});

test('nesting: a higher class preempts, EOI retires the highest in-service vector', () => {
  const { a } = setup();
  selfIpi(a, 0x50);
  assert.equal(a.acknowledge(), 0x50);
  selfIpi(a, 0x40);
  assert.equal(a.hasInterrupt(), false);
  selfIpi(a, 0x70);
  assert.equal(a.acknowledge(), 0x70);
  a.mmioWrite(EOI, 4, 0);
  assert.equal(bit(a, ISR, 0x70), false);
  assert.equal(bit(a, ISR, 0x50), true);
  a.mmioWrite(EOI, 4, 0);
  assert.equal(a.acknowledge(), 0x40);
});

test('software disable: fixed interrupts ignored, LVTs forced masked, NMI still taken', () => {
  const { a } = setup();
  a.mmioWrite(LVT_LINT1, 4, 0x400); // NMI, unmasked
  a.mmioWrite(SVR, 4, 0xff);
  assert.equal(a.mmioRead(LVT_LINT1, 4) & 0x10000, 0x10000);
  a.mmioWrite(LVT_TIMER, 4, 0x30);
  assert.equal(a.mmioRead(LVT_TIMER, 4), 0x10030);
  selfIpi(a, 0x40);
  assert.equal(a.hasInterrupt(), false);
  assert.equal(bit(a, IRR, 0x40), false);
  a.accept({ vector: 0, mode: 4, logical: false, dest: 0, level: false, assert: true, shorthand: 0 });
  assert.equal(a.takeNmi(), true);
  assert.equal(a.takeNmi(), false);
});

test('illegal vectors and registers are reported in ESR after a write to it', () => {
  const { a } = setup();
  a.mmioWrite(ICR_LO, 4, 0x40000 | 0x05); // fixed self IPI with vector 5
  a.mmioRead(0x3a0, 4); // reserved offset
  a.mmioWrite(ESR, 4, 0);
  assert.equal(a.mmioRead(ESR, 4), 0xa0);
  a.mmioWrite(ESR, 4, 0);
  assert.equal(a.mmioRead(ESR, 4), 0);
  // An error with the error LVT unmasked raises its vector.
  a.mmioWrite(LVT_ERROR, 4, 0xfe);
  a.accept({ vector: 3, mode: 0, logical: false, dest: 0, level: false, assert: true, shorthand: 0 });
  assert.equal(a.acknowledge(), 0xfe);
  a.mmioWrite(ESR, 4, 0);
  assert.equal(a.mmioRead(ESR, 4), 0x40);
});

test('timer one-shot fires once at initial count x divisor bus cycles', () => {
  const { ft, a } = setup();
  a.mmioWrite(TIMER_DIV, 4, 0x0b); // divide by 1
  a.mmioWrite(LVT_TIMER, 4, 0xec);
  a.mmioWrite(TIMER_INIT, 4, 1_000_000); // 1 ms at 1 GHz
  assert.equal(ft.clock.pending, 1);
  ft.runUntil(400_000);
  assert.equal(a.mmioRead(TIMER_CUR, 4), 600_000);
  ft.runUntil(999_999);
  assert.equal(a.hasInterrupt(), false);
  ft.runUntil(1_000_000);
  assert.equal(a.hasInterrupt(), true);
  assert.equal(a.mmioRead(TIMER_CUR, 4), 0);
  assert.equal(a.acknowledge(), 0xec);
  a.mmioWrite(EOI, 4, 0);
  ft.runUntil(10_000_000);
  assert.equal(a.hasInterrupt(), false, 'one-shot');
  assert.equal(ft.clock.pending, 0);
  // Divide by 16: 1000 x 16 ns.
  a.mmioWrite(TIMER_DIV, 4, 0x03);
  a.mmioWrite(TIMER_INIT, 4, 1000);
  ft.advance(15_999);
  assert.equal(a.hasInterrupt(), false);
  ft.advance(1);
  assert.equal(a.hasInterrupt(), true);
  // Writing 0 stops the timer.
  a.acknowledge();
  a.mmioWrite(EOI, 4, 0);
  a.mmioWrite(TIMER_INIT, 4, 1000);
  a.mmioWrite(TIMER_INIT, 4, 0);
  assert.equal(ft.clock.pending, 0);
});

test('timer periodic fires every period; masked timer still counts', () => {
  const { ft, a } = setup();
  a.mmioWrite(TIMER_DIV, 4, 0x00); // divide by 2
  a.mmioWrite(LVT_TIMER, 4, 0x20000 | 0xef);
  a.mmioWrite(TIMER_INIT, 4, 1_000_000); // 2 ms
  const fired: number[] = [];
  a.onInterrupt = () => {
    if (a.hasInterrupt()) {
      fired.push(ft.t);
      a.acknowledge();
      a.mmioWrite(EOI, 4, 0);
    }
  };
  ft.runUntil(7_000_000);
  assert.deepEqual(fired, [2_000_000, 4_000_000, 6_000_000]);
  assert.equal(a.mmioRead(TIMER_CUR, 4), 500_000);
  assert.equal(ft.clock.pending, 1, 'one timer armed, for the next period only');
  a.mmioWrite(LVT_TIMER, 4, 0x30000 | 0xef); // masked
  ft.runUntil(9_000_000);
  assert.equal(fired.length, 3);
  // A tiny period is clamped for the host, not for the count.
  a.mmioWrite(LVT_TIMER, 4, 0x20000 | 0xef);
  a.mmioWrite(TIMER_DIV, 4, 0x0b);
  a.mmioWrite(TIMER_INIT, 4, 1);
  const before = fired.length;
  ft.advance(MIN_PERIOD_NS * 10);
  assert.ok(fired.length - before <= 11, `${fired.length - before} interrupts`);
});

test('late runDue coalesces missed periods into one interrupt', () => {
  const { ft, a } = setup();
  a.mmioWrite(TIMER_DIV, 4, 0x0b);
  a.mmioWrite(LVT_TIMER, 4, 0x20000 | 0xef);
  a.mmioWrite(TIMER_INIT, 4, 1_000_000);
  ft.t = 10_500_000; // the host slept through ten periods
  assert.equal(ft.clock.runDue(ft.t), 1);
  assert.equal(ft.clock.nextDeadlineNs(), 11_000_000);
  assert.equal(a.acknowledge(), 0xef);
});

test('TSC-deadline timer fires when the guest TSC reaches the deadline', () => {
  const { ft, a } = setup();
  a.mmioWrite(LVT_TIMER, 4, 0x40000 | 0xed);
  ft.t = 1_000;
  const tsc = ft.clock.tscNow();
  assert.equal(tsc, 2_000);
  assert.equal(a.msrWrite(0x6e0, BigInt(tsc + 2_000_000)), true); // 1 ms at 2 GHz
  assert.equal(a.msrRead(0x6e0), BigInt(tsc + 2_000_000));
  a.mmioWrite(TIMER_INIT, 4, 5); // ignored in TSC-deadline mode
  assert.equal(a.mmioRead(TIMER_CUR, 4), 0);
  ft.runUntil(1_000_999);
  assert.equal(a.hasInterrupt(), false);
  ft.runUntil(1_001_000);
  assert.equal(a.acknowledge(), 0xed);
  assert.equal(a.msrRead(0x6e0), 0n, 'the MSR clears when the timer fires');
  a.mmioWrite(EOI, 4, 0);
  // A deadline in the past fires at the next runDue; 0 disarms.
  a.msrWrite(0x6e0, 1n);
  ft.advance(0);
  assert.equal(a.acknowledge(), 0xed);
  a.mmioWrite(EOI, 4, 0);
  a.msrWrite(0x6e0, BigInt(ft.clock.tscNow() + 100));
  a.msrWrite(0x6e0, 0n);
  assert.equal(ft.clock.pending, 0);
  // Leaving TSC-deadline mode disarms; the MSR then reads 0 and ignores writes.
  a.msrWrite(0x6e0, BigInt(ft.clock.tscNow() + 100));
  a.mmioWrite(LVT_TIMER, 4, 0xed);
  assert.equal(ft.clock.pending, 0);
  assert.equal(a.msrRead(0x6e0), 0n);
  a.msrWrite(0x6e0, 5n);
  assert.equal(ft.clock.pending, 0);
});

test('IPIs between two local APICs: fixed, shorthands, logical flat and cluster', () => {
  const { apics } = setup(3);
  const [a0, a1, a2] = apics;
  a0.mmioWrite(ICR_HI, 4, 1 << 24);
  a0.mmioWrite(ICR_LO, 4, 0x7041);
  assert.equal(a0.mmioRead(ICR_LO, 4), 0x4041, 'delivery status idle, reserved bit 13 clear');
  assert.equal(a1.acknowledge(), 0x41);
  assert.equal(a0.hasInterrupt(), false);
  assert.equal(a2.hasInterrupt(), false);
  a1.mmioWrite(EOI, 4, 0);
  const take = (a: LocalApic): number => {
    const v = a.acknowledge();
    a.mmioWrite(EOI, 4, 0);
    return v;
  };
  // All excluding self.
  a1.mmioWrite(ICR_LO, 4, 0xc4000 | 0x42);
  assert.equal(take(a0), 0x42);
  assert.equal(take(a2), 0x42);
  assert.equal(a1.hasInterrupt(), false);
  // All including self.
  a2.mmioWrite(ICR_LO, 4, 0x84000 | 0x43);
  for (const a of apics) assert.equal(take(a), 0x43);
  // Physical broadcast.
  a0.mmioWrite(ICR_HI, 4, 0xff000000);
  a0.mmioWrite(ICR_LO, 4, 0x4044);
  for (const a of apics) assert.equal(take(a), 0x44);
  // Logical flat: LDR bits 1, 2, 4.
  apics.forEach((a, i) => a.mmioWrite(LDR, 4, (1 << i) << 24));
  a0.mmioWrite(ICR_HI, 4, 0x06 << 24);
  a0.mmioWrite(ICR_LO, 4, 0x4800 | 0x50);
  assert.equal(a0.hasInterrupt(), false);
  assert.equal(take(a1), 0x50);
  assert.equal(take(a2), 0x50);
  // Logical cluster: cluster 1, members 1 and 2 -> only APIC 2 (cluster 1, bit 2).
  apics.forEach((a) => a.mmioWrite(DFR, 4, 0x0fffffff));
  a0.mmioWrite(LDR, 4, 0x11000000);
  a1.mmioWrite(LDR, 4, 0x21000000);
  a2.mmioWrite(LDR, 4, 0x12000000);
  a0.mmioWrite(ICR_HI, 4, 0x12 << 24);
  a0.mmioWrite(ICR_LO, 4, 0x4800 | 0x51);
  assert.equal(a0.hasInterrupt(), false);
  assert.equal(a1.hasInterrupt(), false);
  assert.equal(a2.acknowledge(), 0x51);
});

test('lowest priority goes to the APIC with the lowest TPR', () => {
  const { apics } = setup(3);
  apics.forEach((a, i) => a.mmioWrite(LDR, 4, (1 << i) << 24));
  apics[0].mmioWrite(TPR, 4, 0x20);
  apics[1].mmioWrite(TPR, 4, 0x10);
  apics[2].mmioWrite(TPR, 4, 0x30);
  apics[0].mmioWrite(ICR_HI, 4, 0x07 << 24);
  apics[0].mmioWrite(ICR_LO, 4, 0x4900 | 0x60);
  assert.equal(apics[1].hasInterrupt(), true);
  assert.equal(apics[0].hasInterrupt(), false);
  assert.equal(apics[2].hasInterrupt(), false);
});

test('INIT and STARTUP IPIs: the AP sees INIT, then the SIPI vector', () => {
  const { apics } = setup(2);
  const [bsp, ap] = apics;
  let wakes = 0;
  ap.onInterrupt = () => wakes++;
  ap.mmioWrite(TPR, 4, 0x40);
  bsp.mmioWrite(ICR_HI, 4, 1 << 24);
  bsp.mmioWrite(ICR_LO, 4, 0xc500); // INIT, level, assert
  bsp.mmioWrite(ICR_LO, 4, 0x8500); // INIT level de-assert: no effect
  assert.equal(ap.hasInit(), true);
  assert.equal(ap.takeInit(), true);
  assert.equal(ap.takeInit(), false);
  assert.equal(ap.mmioRead(TPR, 4), 0, 'INIT reset the APIC');
  assert.equal(ap.mmioRead(ID, 4), 1 << 24, 'but kept its ID');
  assert.equal(ap.mmioRead(SVR, 4), 0xff, 'and left it software-disabled');
  bsp.mmioWrite(ICR_LO, 4, 0x4608); // STARTUP, vector 0x08 -> 0x8000
  assert.equal(ap.takeSipi(), 0x08);
  assert.equal(ap.takeSipi(), undefined);
  assert.ok(wakes >= 2);
  // INIT to all excluding self, as Linux's wakeup_secondary_cpu does.
  bsp.mmioWrite(ICR_LO, 4, 0xcc500);
  assert.equal(ap.takeInit(), true);
  assert.equal(bsp.hasInit(), false);
});

test('the PIC reaches the CPU through LINT0 ExtINT, or directly with the APIC disabled', () => {
  const pic = new PicPair();
  pic.masterPorts.pioWrite(0, 1, 0x11);
  pic.masterPorts.pioWrite(1, 1, 0x08);
  pic.masterPorts.pioWrite(1, 1, 0x04);
  pic.masterPorts.pioWrite(1, 1, 0x01);
  const { apics } = setup(2, pic);
  const [bsp, ap] = apics;
  pic.setIrq(1, true);
  assert.equal(bsp.hasInterrupt(), true);
  assert.equal(ap.hasInterrupt(), false, 'LINT0 of an AP is masked');
  // A pending LAPIC vector wins over the PIC.
  selfIpi(bsp, 0x80);
  assert.equal(bsp.acknowledge(), 0x80);
  assert.equal(bsp.acknowledge(), 0x09);
  pic.masterPorts.pioWrite(0, 1, 0x20);
  // Masking LINT0 cuts the PIC off.
  bsp.mmioWrite(LVT_LINT0, 4, 0x10700);
  pic.setIrq(3, true);
  assert.equal(bsp.hasInterrupt(), false);
  // Hardware-disable the APIC: INTR goes straight to the CPU.
  assert.equal(bsp.msrWrite(0x1b, 0xfee00000n), true);
  assert.equal(bsp.hardwareEnabled, false);
  assert.equal(bsp.hasInterrupt(), true);
  assert.equal(bsp.acknowledge(), 0x0b);
  assert.equal(bsp.mmioRead(ID, 4), 0, 'no MMIO while disabled');
});

test('LINT1 as NMI; LINT0 fixed level-triggered with remote IRR', () => {
  const { a } = setup();
  a.mmioWrite(LVT_LINT1, 4, 0x400);
  a.setLint(1, true);
  assert.equal(a.takeNmi(), true);
  a.setLint(1, true); // no new edge
  assert.equal(a.takeNmi(), false);
  a.mmioWrite(LVT_LINT0, 4, 0x8000 | 0x70); // fixed, level
  a.setLint(0, true);
  assert.equal(a.mmioRead(LVT_LINT0, 4) & 0x4000, 0x4000);
  assert.equal(a.acknowledge(), 0x70);
  assert.equal(bit(a, TMR, 0x70), true);
  a.mmioWrite(EOI, 4, 0);
  assert.equal(a.hasInterrupt(), true, 're-delivered: still asserted');
  a.acknowledge();
  a.setLint(0, false);
  a.mmioWrite(EOI, 4, 0);
  assert.equal(a.mmioRead(LVT_LINT0, 4) & 0x4000, 0);
  assert.equal(a.hasInterrupt(), false);
});

test('x2APIC through MSRs: ID, derived LDR, 64-bit ICR, self IPI', () => {
  const { apics } = setup(18);
  const a0 = apics[0];
  const a17 = apics[17];
  for (const a of apics) assert.equal(a.msrWrite(0x1b, (a.msrRead(0x1b) as bigint) | 0xc00n), true);
  assert.equal(a0.x2apic, true);
  assert.equal(a17.msrRead(0x802), 17n);
  assert.equal(a17.msrRead(0x80d), (1n << 16n) | 2n, 'cluster 1, bit 1');
  assert.equal(a0.msrRead(0x80e), undefined, 'no DFR in x2APIC mode');
  assert.equal(a0.msrWrite(0x802, 5n), false, 'ID is read-only');
  assert.equal(a0.mmioRead(ID, 4), 0, 'MMIO is off in x2APIC mode');
  assert.equal(a0.msrWrite(0x830, (17n << 32n) | 0x4055n), true);
  assert.equal(a17.acknowledge(), 0x55);
  assert.equal(a17.msrWrite(0x80b, 0n), true); // EOI
  assert.equal(a0.msrWrite(0x83f, 0x66n), true); // SELF IPI
  assert.equal(a0.acknowledge(), 0x66);
  // Logical: cluster 1, member bit 1 -> APIC 17.
  assert.equal(a0.msrWrite(0x830, (((1n << 16n) | 2n) << 32n) | 0x4857n), true);
  assert.equal(a17.acknowledge(), 0x57);
  // Back to xAPIC directly is refused; disabling first is allowed.
  assert.equal(a0.msrWrite(0x1b, 0xfee00800n), false);
  assert.equal(a0.msrWrite(0x1b, 0xfee00000n), true);
  assert.equal(a0.msrWrite(0x1b, 0xfee00400n), false, 'EXTD without EN is invalid');
  assert.equal(a0.msrWrite(0x1b, 0xfee00800n), true);
  assert.equal(a0.msrRead(0x802), undefined);
  assert.equal(a0.msrRead(0x1234), undefined);
  assert.equal(a0.msrWrite(0x1b, 1n), false, 'reserved bits');
});

test('hostile MMIO and MSR accesses never throw and keep the timer bounded', () => {
  const { ft, apics } = setup(2);
  const r = rng(0xa91c);
  for (let i = 0; i < 30000; i++) {
    const a = apics[r() & 1];
    const off = r() % 8 === 0 ? r() % 0x2000 : (r() % 0x40) << 4;
    const size = pickSize(r());
    switch (r() % 6) {
      case 0:
      case 1:
        a.mmioWrite(off, size, r());
        break;
      case 2:
        assert.ok(a.mmioRead(off, size) <= 0xffffffff);
        break;
      case 3: {
        const idx = [0x1b, 0x6e0, 0x800 + (r() % 0x100), r()][r() % 4];
        if (r() & 1) a.msrWrite(idx, (BigInt(r()) << 32n) | BigInt(r()));
        else a.msrRead(idx);
        break;
      }
      case 4:
        if (a.hasInterrupt()) assert.ok(a.acknowledge() <= 0xff);
        a.takeInit();
        a.takeSipi();
        a.takeNmi();
        break;
      default:
        ft.advance(r() % 5_000_000);
    }
    assert.ok(ft.clock.pending <= 2, `${ft.clock.pending} timers pending`);
  }
  ft.advance(1e12);
});

test('TSC-deadline honours the vCPU TSC offset', () => {
  const { ft, a } = setup();
  a.mmioWrite(LVT_TIMER, 4, 0x40000 | 0xed);
  a.tscOffset = 1_000_000n; // the guest's TSC runs 0.5 ms ahead of the platform's
  a.msrWrite(0x6e0, 3_000_000n); // guest TSC 3M = platform TSC 2M = 1 ms
  ft.runUntil(999_999);
  assert.equal(a.hasInterrupt(), false);
  ft.runUntil(1_000_000);
  assert.equal(a.acknowledge(), 0xed);
});

test('changing the divider keeps the current count and goes on at the new rate', () => {
  const { ft, a } = setup();
  a.mmioWrite(TIMER_DIV, 4, 0x0b); // 1
  a.mmioWrite(LVT_TIMER, 4, 0xec);
  a.mmioWrite(TIMER_INIT, 4, 1000);
  ft.runUntil(400);
  a.mmioWrite(TIMER_DIV, 4, 0x00); // 2
  assert.equal(a.mmioRead(TIMER_CUR, 4), 600);
  ft.runUntil(400 + 1199);
  assert.equal(a.hasInterrupt(), false);
  ft.runUntil(400 + 1200);
  assert.equal(a.acknowledge(), 0xec);
});
