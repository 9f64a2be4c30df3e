import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus } from '../../src/devices/bus.js';
import { DebugExit, DEBUG_EXIT_LENGTH } from '../../src/devices/legacy/debug-exit.js';
import { RecordingMachineControl } from '../../src/vmm/machine-control.js';
import { DEBUG_EXIT_PORT } from '../../src/vmm/platform-layout.js';

test('debug-exit: a write of v at any width asks to stop with code v', () => {
  const control = new RecordingMachineControl();
  const bus = new Bus();
  bus.addPio(DEBUG_EXIT_PORT, DEBUG_EXIT_LENGTH, new DebugExit(control));
  bus.pioWrite(DEBUG_EXIT_PORT, 1, 0x10);
  bus.pioWrite(DEBUG_EXIT_PORT, 2, 0x1234);
  bus.pioWrite(DEBUG_EXIT_PORT, 4, 0x89abcdef);
  bus.pioWrite(DEBUG_EXIT_PORT + 3, 1, 0);
  assert.deepEqual(control.requests, [
    { kind: 'debug-exit', code: 0x10 },
    { kind: 'debug-exit', code: 0x1234 },
    { kind: 'debug-exit', code: 0x89abcdef },
    { kind: 'debug-exit', code: 0 },
  ]);
  // What the VMM makes of it: (v << 1) | 1, e.g. kvm-unit-tests' "PASS" (v = 0) exits 1.
  assert.equal((0x10 << 1) | 1, 33);
});

test('debug-exit: reads return 0 at every width, as QEMU does', () => {
  const d = new DebugExit(new RecordingMachineControl());
  assert.equal(d.pioRead(0, 1), 0);
  assert.equal(d.pioRead(0, 2), 0);
  assert.equal(d.pioRead(0, 4), 0);
});

test('debug-exit: hostile input never throws and codes stay 32-bit', () => {
  const control = new RecordingMachineControl();
  const d = new DebugExit(control);
  let seed = 11;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8);
  const sizes = [1, 2, 4] as const;
  for (let i = 0; i < 5000; i++) {
    d.pioWrite((rnd() % 10) - 3, sizes[rnd() % 3], rnd() * 1e6);
    d.pioRead((rnd() % 10) - 3, sizes[rnd() % 3]);
  }
  for (const r of control.requests) {
    assert.equal(r.kind, 'debug-exit');
    if (r.kind === 'debug-exit') assert.ok(Number.isInteger(r.code) && r.code >= 0 && r.code <= 0xffffffff);
  }
});
