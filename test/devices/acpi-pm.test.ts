import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IrqLine, NullIrqSink } from '../../src/devices/irq.js';
import { AcpiPm, PM_TIMER_HZ } from '../../src/devices/legacy/acpi-pm.js';
import { RecordingMachineControl } from '../../src/vmm/machine-control.js';
import { ACPI_S5_SLP_TYP } from '../../src/vmm/platform-layout.js';

const STS = 0, EN = 2, CNT = 4, TMR = 8;
const PWRBTN = 0x100;
const SLP_EN = 0x2000;

function make() {
  let t = 1000; // ms, arbitrary start: the timer counts from creation
  const clock = { set: (ms: number) => { t = 1000 + ms; } };
  const sink = new NullIrqSink();
  const control = new RecordingMachineControl();
  const logged: string[] = [];
  const pm = new AcpiPm({ sci: new IrqLine(sink, 9), control, now: () => t, log: (l) => logged.push(l) });
  const sci = () => (sink.log.length ? sink.log[sink.log.length - 1].level : false);
  return { pm, clock, sink, control, logged, sci };
}

test('acpi-pm: SLP_TYP = S5 with SLP_EN requests poweroff (16-bit and byte writes)', () => {
  const { pm, control } = make();
  pm.pioWrite(CNT, 2, (ACPI_S5_SLP_TYP << 10) | 1); // type first, no SLP_EN: nothing yet
  assert.equal(control.requests.length, 0);
  pm.pioWrite(CNT, 2, (ACPI_S5_SLP_TYP << 10) | SLP_EN | 1);
  assert.deepEqual(control.requests, [{ kind: 'poweroff' }]);
  const b = make();
  b.pm.pioWrite(CNT + 1, 1, ((ACPI_S5_SLP_TYP << 10) | SLP_EN) >> 8);
  assert.deepEqual(b.control.requests, [{ kind: 'poweroff' }]);
});

test('acpi-pm: other sleep types are logged and woken from at once', () => {
  const { pm, control, logged } = make();
  pm.pioWrite(CNT, 2, (3 << 10) | SLP_EN | 1);
  assert.equal(control.requests.length, 0);
  assert.equal(logged.length, 1);
  assert.equal(pm.pioRead(STS, 2) & 0x8000, 0x8000, 'WAK_STS, so OSPM stops waiting');
  assert.equal(pm.pioRead(CNT, 2) & SLP_EN, 0, 'SLP_EN reads 0');
  assert.equal(pm.pioRead(CNT, 2) & 0x1c00, 3 << 10, 'SLP_TYP reads back');
});

test('acpi-pm: SCI_EN reads 1 (no legacy mode to leave)', () => {
  const { pm } = make();
  assert.equal(pm.pioRead(CNT, 2) & 1, 1);
});

test('acpi-pm: status bits are write-1-to-clear', () => {
  const { pm } = make();
  pm.pressPowerButton();
  assert.equal(pm.pioRead(STS, 2) & PWRBTN, PWRBTN);
  pm.pioWrite(STS, 2, 0);
  assert.equal(pm.pioRead(STS, 2) & PWRBTN, PWRBTN, 'writing 0 leaves it');
  pm.pioWrite(STS, 2, 0xfeff);
  assert.equal(pm.pioRead(STS, 2) & PWRBTN, PWRBTN, 'other 1 bits do not clear it');
  pm.pioWrite(STS + 1, 1, 0x01);
  assert.equal(pm.pioRead(STS, 2) & PWRBTN, 0);
});

test('acpi-pm: SCI is high exactly while an enabled status bit is set; power button reports', () => {
  const { pm, sci } = make();
  assert.equal(pm.pressPowerButton(), false, 'no ACPI driver listening');
  assert.equal(sci(), false);
  pm.pioWrite(STS, 2, PWRBTN);
  pm.pioWrite(EN, 2, PWRBTN);
  assert.equal(pm.pioRead(EN, 2), PWRBTN);
  assert.equal(pm.pressPowerButton(), true);
  assert.equal(sci(), true);
  pm.pioWrite(EN, 2, 0);
  assert.equal(sci(), false, 'masked');
  pm.pioWrite(EN, 2, PWRBTN);
  assert.equal(sci(), true);
  pm.pioWrite(STS, 2, PWRBTN);
  assert.equal(sci(), false, 'cleared');
});

test('acpi-pm: PM timer counts at 3.579545 MHz, 24 bits, monotonic until it wraps', () => {
  const { pm, clock } = make();
  assert.equal(pm.pioRead(TMR, 4), 0);
  clock.set(1000);
  assert.equal(pm.pioRead(TMR, 4), PM_TIMER_HZ);
  let prev = 0;
  for (let ms = 0; ms < 4680; ms += 7.3) {
    clock.set(ms);
    const v = pm.pioRead(TMR, 4);
    assert.ok(v >= prev, `monotonic at ${ms} ms`);
    assert.equal(v >>> 24, 0, 'bits 24-31 read 0 (TMR_VAL_EXT = 0)');
    prev = v;
  }
  const wrapMs = (0x1000000 / PM_TIMER_HZ) * 1000; // ~4686.9 ms
  clock.set(wrapMs + 1);
  const after = pm.pioRead(TMR, 4);
  assert.ok(after < prev, 'wrapped');
  assert.equal(after, Math.floor(((wrapMs + 1) * PM_TIMER_HZ) / 1000) - 0x1000000);
  // Bytes of the timer read one at a time agree with the dword at a fixed time.
  const bytes = [0, 1, 2, 3].map((i) => pm.pioRead(TMR + i, 1));
  assert.equal(bytes[0] | (bytes[1] << 8) | (bytes[2] << 16) | (bytes[3] << 24), after);
});

test('acpi-pm: TMR_STS is set when bit 23 toggles and raises the SCI if TMR_EN', () => {
  const { pm, clock, sci } = make();
  pm.pioWrite(EN, 2, 1);
  assert.equal(pm.pioRead(STS, 2) & 1, 0);
  clock.set(((0x800000 + 10) / PM_TIMER_HZ) * 1000);
  assert.equal(pm.pioRead(STS, 2) & 1, 1);
  assert.equal(sci(), true);
  pm.pioWrite(STS, 2, 1);
  assert.equal(sci(), false);
});

test('acpi-pm: hostile input never throws', () => {
  const { pm, clock } = make();
  let seed = 3;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8);
  const sizes = [1, 2, 4] as const;
  for (let i = 0; i < 50000; i++) {
    const off = (rnd() % 20) - 4;
    const size = sizes[rnd() % 3];
    if (rnd() & 1) pm.pioWrite(off, size, rnd() * 65599);
    else {
      const v = pm.pioRead(off, size);
      assert.ok(v >= 0 && v <= 0xffffffff);
    }
    if (i % 100 === 0) clock.set(i);
  }
});
