import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_TSC_HZ, PlatformClock, driveWithHostTimer } from '../../src/devices/platform/clock.js';
import { FakeTime } from './fake-time.js';

test('timers run in deadline order, FIFO among equal deadlines', () => {
  const ft = new FakeTime();
  const c = ft.clock;
  const order: string[] = [];
  c.schedule(300, () => order.push('c'));
  c.schedule(100, () => order.push('a'));
  c.schedule(200, () => order.push('b1'));
  c.schedule(200, () => order.push('b2'));
  assert.equal(c.nextDeadlineNs(), 100);
  assert.equal(c.pending, 4);
  assert.equal(c.runDue(99), 0);
  assert.equal(c.runDue(200), 3);
  assert.deepEqual(order, ['a', 'b1', 'b2']);
  assert.equal(c.nextDeadlineNs(), 300);
  c.runDue(1000);
  assert.deepEqual(order, ['a', 'b1', 'b2', 'c']);
  assert.equal(c.nextDeadlineNs(), Infinity);
});

test('cancel removes a timer; unknown ids are ignored', () => {
  const ft = new FakeTime();
  const c = ft.clock;
  let fired = 0;
  const id = c.schedule(10, () => fired++);
  c.cancel(id);
  c.cancel(id);
  c.cancel(12345);
  c.cancel(undefined);
  c.runDue(100);
  assert.equal(fired, 0);
  assert.equal(c.pending, 0);
});

test('a timer scheduled in the past by a callback runs in the same runDue; runaway loops are cut', () => {
  const ft = new FakeTime();
  const c = ft.clock;
  let n = 0;
  c.schedule(5, () => {
    n++;
    c.schedule(1, () => n++);
  });
  assert.equal(c.runDue(10), 2);
  assert.equal(n, 2);
  // A callback that always reschedules itself in the past cannot hang runDue.
  const again = (): void => {
    c.schedule(0, again);
  };
  c.schedule(0, again);
  assert.equal(c.runDue(10), 10_000);
  assert.equal(c.pending, 1);
});

test('TSC: fixed 2 GHz from the same nanosecond clock, both ways', () => {
  const ft = new FakeTime();
  const c = ft.clock;
  assert.equal(c.tscHz, DEFAULT_TSC_HZ);
  assert.equal(c.tscHz, 2_000_000_000);
  ft.t = 1_500;
  assert.equal(c.tscNow(), 3_000);
  assert.equal(c.tscNowBig(), 3_000n);
  assert.equal(c.nsFromTsc(3_000), 1_500);
  assert.equal(c.nsFromTsc(3_001), 1_501); // rounded up: the deadline is never early
  assert.equal(c.nsFromTsc(3_001n), 1_501);
  const odd = new PlatformClock({ now: () => 1e9, tscHz: 1_234_567_891 });
  assert.equal(odd.tscNow(), 1_234_567_891);
  assert.throws(() => new PlatformClock({ tscHz: 0 }), RangeError);
});

test('the host clock is monotonic and starts near zero', () => {
  const c = new PlatformClock();
  const a = c.nowNs();
  const b = c.nowNs();
  assert.ok(a >= 0 && a < 1e9);
  assert.ok(b >= a);
});

test('driveWithHostTimer runs due timers from the event loop and stops cleanly', async () => {
  const c = new PlatformClock();
  const stop = driveWithHostTimer(c);
  const fired = await new Promise<boolean>((resolve) => {
    c.schedule(c.nowNs() + 2e6, () => resolve(true));
    setTimeout(() => resolve(false), 2000);
  });
  stop();
  assert.equal(fired, true);
  assert.equal(c.onDeadlineChange, undefined);
});
