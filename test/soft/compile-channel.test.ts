// The ring that carries the JIT's batches to its compiler thread (src/accel/soft/jit/compile-channel.ts):
// what goes in comes out (64-bit RIPs included), batches posted while the thread was busy come
// out together, and a full ring refuses a batch instead of overwriting one not yet read.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CompileChannel } from '../../src/accel/soft/jit/compile-channel.js';
import type { BatchItem } from '../../src/accel/soft/jit/batch.js';

const item = (k: number): BatchItem => ({ e: 0x420000 + k * 32, rip: 0xffffffff81000000n + BigInt(k * 0x1234), host: 0x800000 + k * 7, cpl: k % 2 === 0 ? 0 : 3, gen: 2 * k + 1, count: 0 });

test('compile channel: batches come out as they went in, and those waiting come out together', () => {
  const ch = new CompileChannel();
  const a = { id: 0, items: [item(1), item(2)], siblingMinRuns: 20 };
  const b = { id: 1, items: [item(3)], siblingMinRuns: 20 };
  const c = { id: 2, items: [item(4), item(5), item(6)], siblingMinRuns: 20 };
  assert.ok(ch.post(a));
  assert.deepEqual(ch.takeAll(0, 8), [a]);
  assert.ok(ch.post(b) && ch.post(c));
  assert.deepEqual(ch.takeAll(1, 8), [b, c], 'both waiting batches, in order');
  assert.ok(ch.post(a) && ch.post(b) && ch.post(c));
  assert.deepEqual(ch.takeAll(3, 2), [a, b], 'at most max');
  assert.deepEqual(ch.takeAll(5, 2), [c]);
  // the user-mode RIP with the high bit clear, too
  const low = { id: 9, items: [{ ...item(7), rip: 0x401000n }], siblingMinRuns: 2 };
  assert.ok(ch.post(low));
  assert.deepEqual(ch.takeAll(6, 8), [low]);
});

test('compile channel: a full ring refuses a batch until the thread has read the ones before', () => {
  const ch = new CompileChannel();
  const big = { id: 0, items: Array.from({ length: 128 }, (_, k) => item(k)), siblingMinRuns: 20 };
  let posted = 0;
  while (ch.post({ ...big, id: posted })) posted++;
  assert.ok(posted >= 2 && posted < 64, `the ring holds a few full batches (${posted})`);
  assert.deepEqual(ch.takeAll(0, 1), [{ ...big, id: 0 }]);
  assert.ok(ch.post({ ...big, id: posted }), 'room again once one was read');
  const rest = ch.takeAll(1, 1000);
  assert.deepEqual(rest.map((r) => r.id), Array.from({ length: posted }, (_, k) => k + 1), 'nothing overwritten or lost');
});
