import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus, BusConflictError, type PioDevice, type MmioDevice } from '../../src/devices/bus.js';

function recorder(name: string) {
  const log: string[] = [];
  const dev: PioDevice & MmioDevice = {
    name,
    pioRead: (o, s) => { log.push(`pr ${o} ${s}`); return 0x1234 + o; },
    pioWrite: (o, s, v) => { log.push(`pw ${o} ${s} ${v.toString(16)}`); },
    mmioRead: (o, s) => { log.push(`mr ${o} ${s}`); return 0xabcd0000 + o; },
    mmioWrite: (o, s, v) => { log.push(`mw ${o} ${s} ${v.toString(16)}`); },
  };
  return { dev, log };
}

test('accesses reach the claiming device with the offset into its range', () => {
  const bus = new Bus();
  const a = recorder('a');
  const b = recorder('b');
  bus.addPio(0x3f8, 8, a.dev);
  bus.addPio(0x60, 1, b.dev);
  bus.addMmio(0xfec00000, 0x1000, a.dev);
  assert.equal(bus.pioRead(0x3fd, 1), 0x1234 + 5);
  bus.pioWrite(0x3f8, 1, 0x41);
  bus.pioWrite(0x60, 2, 0xfe);
  assert.equal(bus.mmioRead(0xfec00010, 4), 0xabcd0010);
  bus.mmioWrite(0xfec00000, 4, 0x12);
  assert.deepEqual(a.log, ['pr 5 1', 'pw 0 1 41', 'mr 16 4', 'mw 0 4 12']);
  assert.deepEqual(b.log, ['pw 0 2 fe']);
});

test('unclaimed reads return all ones of the access width, writes vanish', () => {
  const bus = new Bus();
  const seen: string[] = [];
  bus.onUnclaimed = (space, addr, size, write) => seen.push(`${space} ${addr.toString(16)} ${size} ${write}`);
  assert.equal(bus.pioRead(0x1234, 1), 0xff);
  assert.equal(bus.pioRead(0x1234, 2), 0xffff);
  assert.equal(bus.pioRead(0x1234, 4), 0xffffffff);
  assert.equal(bus.mmioRead(0xd0000000, 4), 0xffffffff);
  assert.deepEqual(bus.mmioRead64(0xd0000000), [0xffffffff, 0xffffffff]);
  bus.pioWrite(0x1234, 1, 5);
  assert.equal(bus.stats.unclaimed, 7);
  assert.equal(seen[0], 'pio 1234 1 false');
});

test('8-byte MMIO is split into two 4-byte accesses, low half first', () => {
  const bus = new Bus();
  const a = recorder('a');
  bus.addMmio(0x1000, 0x100, a.dev);
  bus.mmioWrite64(0x1008, 0x11111111, 0x22222222);
  assert.deepEqual(bus.mmioRead64(0x1010), [0xabcd0010, 0xabcd0014]);
  assert.deepEqual(a.log, ['mw 8 4 11111111', 'mw 12 4 22222222', 'mr 16 4', 'mr 20 4']);
});

test('overlapping claims are refused, naming both devices', () => {
  const bus = new Bus();
  bus.addPio(0x3f8, 8, recorder('uart').dev);
  assert.throws(() => bus.addPio(0x3ff, 2, recorder('other').dev), (e: Error) => e instanceof BusConflictError && /other.*uart/.test(e.message));
  assert.throws(() => bus.addPio(0xffff, 2, recorder('edge').dev), /outside/);
});

test('many devices: lookups stay correct (binary search over sorted claims)', () => {
  const bus = new Bus();
  const devs = Array.from({ length: 50 }, (_, i) => recorder(`d${i}`));
  // Insert out of order.
  for (const i of [...devs.keys()].reverse()) bus.addPio(0x100 + i * 4, 4, devs[i].dev);
  for (let i = 0; i < 50; i++) assert.equal(bus.pioRead(0x100 + i * 4 + 3, 1), 0x1234 + 3);
  assert.equal(bus.pioRead(0x100 + 50 * 4, 1), 0xff);
  assert.equal(devs[17].log.length, 1);
});
