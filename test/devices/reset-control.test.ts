import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ResetControl } from '../../src/devices/legacy/reset-control.js';
import { RecordingMachineControl } from '../../src/vmm/machine-control.js';

test('reset-control: writing RCPU (bit 2) resets; 0x06 and 0x0E are the usual values', () => {
  for (const v of [0x06, 0x0e, 0x04]) {
    const control = new RecordingMachineControl();
    new ResetControl(control).pioWrite(0, 1, v);
    assert.deepEqual(control.requests, [{ kind: 'reset' }], `value 0x${v.toString(16)}`);
  }
});

test('reset-control: SRST/FULL_RST alone are stored and read back, no reset', () => {
  const control = new RecordingMachineControl();
  const rc = new ResetControl(control);
  rc.pioWrite(0, 1, 0x0a);
  assert.equal(control.requests.length, 0);
  assert.equal(rc.pioRead(0, 1), 0x0a);
  rc.pioWrite(0, 1, 0x06);
  assert.equal(rc.pioRead(0, 1), 0x02, 'RCPU reads back 0');
});

test('reset-control: hostile input never throws', () => {
  const control = new RecordingMachineControl();
  const rc = new ResetControl(control);
  let seed = 5;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8);
  const sizes = [1, 2, 4] as const;
  for (let i = 0; i < 20000; i++) {
    const off = (rnd() % 8) - 4;
    if (rnd() & 1) rc.pioWrite(off, sizes[rnd() % 3], rnd() * 31);
    else assert.ok(rc.pioRead(off, sizes[rnd() % 3]) <= 0xffffffff);
  }
});
