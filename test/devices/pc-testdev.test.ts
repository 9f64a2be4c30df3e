import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus } from '../../src/devices/bus.js';
import { NullIrqSink } from '../../src/devices/irq.js';
import { PcTestdev } from '../../src/devices/legacy/pc-testdev.js';
import { TESTDEV_MMIO_BASE, TESTDEV_MMIO_SIZE } from '../../src/vmm/platform-layout.js';

function make() {
  const sink = new NullIrqSink();
  const dev = new PcTestdev(sink);
  const bus = new Bus();
  dev.attach(bus);
  return { dev, bus, sink };
}

test('pc-testdev: the 0xE0 scratch register reads back at each width and byte lane', () => {
  const { bus } = make();
  bus.pioWrite(0xe0, 4, 0x11223344);
  assert.equal(bus.pioRead(0xe0, 4), 0x11223344);
  assert.equal(bus.pioRead(0xe0, 1), 0x44);
  assert.equal(bus.pioRead(0xe1, 1), 0x33);
  assert.equal(bus.pioRead(0xe2, 2), 0x1122);
  assert.equal(bus.pioRead(0xe3, 1), 0x11);
  bus.pioWrite(0xe1, 2, 0xaabb);
  assert.equal(bus.pioRead(0xe0, 4), 0x11aabb44);
  bus.pioWrite(0xe3, 1, 0x99);
  assert.equal(bus.pioRead(0xe0, 4), 0x99aabb44);
  bus.pioWrite(0xe2, 4, 0xdeadbeef); // lanes past byte 3 are dropped
  assert.equal(bus.pioRead(0xe0, 4), 0xbeefbb44);
  assert.equal(bus.pioRead(0xe2, 4), 0xbeef);
});

test('pc-testdev: 0xE8 reaches the same scratch register through byte lanes', () => {
  const { bus } = make();
  bus.pioWrite(0xe8, 1, 0x5a);
  assert.equal(bus.pioRead(0xe0, 1), 0x5a);
  bus.pioWrite(0xe8, 4, 0x01020304);
  assert.equal(bus.pioRead(0xe0, 4), 0x01020304);
  assert.equal(bus.pioRead(0xe8, 2), 0x0304);
});

test('pc-testdev: the flush-page port accepts writes and reads 0', () => {
  const { bus, dev } = make();
  bus.pioWrite(0xe4, 4, 0x12345000);
  assert.equal(dev.flushes, 1);
  assert.equal(bus.pioRead(0xe4, 4), 0);
  assert.equal(bus.pioRead(0xe0, 4), 0, 'scratch untouched');
});

test('pc-testdev: the MMIO window reads back what was written at each width', () => {
  const { bus } = make();
  const B = TESTDEV_MMIO_BASE;
  bus.mmioWrite(B, 4, 0xcafebabe);
  assert.equal(bus.mmioRead(B, 4), 0xcafebabe);
  assert.equal(bus.mmioRead(B + 1, 2), 0xfeba);
  bus.mmioWrite(B + 0x1001, 2, 0x1234);
  assert.equal(bus.mmioRead(B + 0x1000, 4), 0x00123400);
  bus.mmioWrite(B + 0x2000, 1, 0xff);
  assert.equal(bus.mmioRead(B + 0x2000, 1), 0xff);
  const [lo, hi] = (bus.mmioWrite64(B + 0x3000, 0x89abcdef, 0x01234567), bus.mmioRead64(B + 0x3000));
  assert.equal(lo, 0x89abcdef);
  assert.equal(hi, 0x01234567);
  // The last bytes: an access running past the end keeps only the bytes inside.
  bus.mmioWrite(B + TESTDEV_MMIO_SIZE - 1, 4, 0x44332211);
  assert.equal(bus.mmioRead(B + TESTDEV_MMIO_SIZE - 1, 4), 0x11);
});

test('pc-testdev: writing 1/0 to 0x2000+n raises/lowers GSI n', () => {
  const { bus, sink } = make();
  bus.pioWrite(0x2000 + 10, 1, 1);
  bus.pioWrite(0x2000 + 10, 1, 0);
  bus.pioWrite(0x2000 + 23, 1, 1);
  bus.pioWrite(0x2000 + 24, 1, 1); // past the 24 lines: unclaimed
  assert.deepEqual(sink.log, [
    { gsi: 10, level: true },
    { gsi: 10, level: false },
    { gsi: 23, level: true },
  ]);
  assert.equal(bus.pioRead(0x2000, 1), 0);
});

test('pc-testdev: hostile offsets and sizes never throw or escape the buffers', () => {
  const { dev, sink } = make();
  let seed = 17;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8);
  const sizes = [1, 2, 4] as const;
  for (let i = 0; i < 50000; i++) {
    const size = sizes[rnd() % 3];
    const v = rnd() * 4099;
    switch (rnd() % 4) {
      case 0: dev.pioWrite((rnd() % 40) - 10, size, v); break;
      case 1: assert.ok(dev.pioRead((rnd() % 40) - 10, size) <= 0xffffffff); break;
      case 2: dev.mmioWrite((rnd() % (TESTDEV_MMIO_SIZE + 64)) - 32, size, v); break;
      default: assert.ok(dev.mmioRead((rnd() % (TESTDEV_MMIO_SIZE + 64)) - 32, size) <= 0xffffffff);
    }
    if (i % 10 === 0) dev.irqPorts.pioWrite((rnd() % 64) - 20, size, v & 1);
  }
  for (const e of sink.log) assert.ok(e.gsi >= 0 && e.gsi < 24);
});
