// Virtqueue validation, driven through the whole transport (a VirtioRng and a recording device).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtioPciDevice } from '../../src/devices/virtio/pci-transport.js';
import type { VirtioDevice, VirtioDeviceContext } from '../../src/devices/virtio/device.js';
import type { DescChain } from '../../src/devices/virtio/queue.js';
import { STATUS_DEVICE_NEEDS_RESET, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../../src/devices/virtio/constants.js';
import { TestMachine, VirtioDriver, settle } from './guest-driver.js';

/** A device that records the chains it pops and completes each with its writable length. */
class Recorder implements VirtioDevice {
  readonly name = 'recorder';
  readonly deviceType = 4;
  readonly pciClass = 0xff0000;
  readonly queueSizes: number[];
  readonly features = 0n;
  readonly configSize = 0;
  chains: DescChain[] = [];
  private ctx?: VirtioDeviceContext;
  constructor(size = 16) { this.queueSizes = [size]; }
  readConfig(): number { return 0; }
  writeConfig(): void {}
  activate(ctx: VirtioDeviceContext): void { this.ctx = ctx; }
  reset(): void { this.ctx = undefined; }
  queueNotify(q: number): void {
    const ctx = this.ctx!;
    for (let c = ctx.queues[q].pop(); c; c = ctx.queues[q].pop()) {
      this.chains.push(c);
      ctx.complete(q, c.head, c.writableLength);
    }
  }
}

function setup(opts: { size?: number; eventIdx?: boolean; indirect?: boolean; ram?: number } = {}) {
  const m = new TestMachine(opts.ram);
  const rec = new Recorder(opts.size);
  const dev = new VirtioPciDevice(rec, { mem: m.mem, msi: m.msi, log: (l) => m.logs.push(l) });
  const drv = new VirtioDriver(m, m.attach(dev));
  drv.init({ eventIdx: opts.eventIdx, indirect: opts.indirect });
  return { m, rec, dev, drv, q: drv.queues[0] };
}

const broken = (drv: VirtioDriver): boolean => (drv.status() & STATUS_DEVICE_NEEDS_RESET) !== 0;

test('queue: a good chain, readable then writable, with segments as views of guest RAM', async () => {
  const { rec, drv, q, m } = setup();
  const a = drv.alloc.alloc(100);
  const b = drv.alloc.alloc(50);
  drv.mem.fill(a, 100, 7);
  const head = q.add([{ addr: a, len: 100 }, { addr: b, len: 50, write: true }]);
  q.kick();
  await settle();
  assert.equal(rec.chains.length, 1);
  assert.equal(rec.chains[0].readableLength, 100);
  assert.equal(rec.chains[0].writableLength, 50);
  assert.equal(rec.chains[0].readable[0][99], 7);
  assert.deepEqual(q.takeUsed(), [{ id: head, len: 50 }]);
  assert.ok(m.guardsIntact());
});

const bad: [string, (s: ReturnType<typeof setup>) => void][] = [
  ['buffer outside RAM', ({ q }) => { q.add([{ addr: 0x7fff0000, len: 16 }]); }],
  ['buffer straddling the end of RAM', ({ q, drv }) => { q.add([{ addr: drv.mem.ramSize - 8, len: 16 }]); }],
  ['buffer in the MMIO hole', ({ q }) => { q.add([{ addr: 0xfee00000, len: 4, write: true }]); }],
  ['address beyond 2^52', ({ q }) => { q.writeDesc(q.desc, 0, 2 ** 53, 16, 0, 0); q.publish(0); }],
  ['readable after writable', ({ q, drv }) => { const a = drv.alloc.alloc(16); q.add([{ addr: a, len: 8, write: true }, { addr: a + 8, len: 8 }]); }],
  ['loop in the chain', ({ q, drv }) => {
    const a = drv.alloc.alloc(16);
    q.writeDesc(q.desc, 0, a, 8, VIRTQ_DESC_F_NEXT, 1);
    q.writeDesc(q.desc, 1, a, 8, VIRTQ_DESC_F_NEXT, 0);
    q.publish(0);
  }],
  ['next index out of range', ({ q, drv }) => { q.writeDesc(q.desc, 0, drv.alloc.alloc(8), 8, VIRTQ_DESC_F_NEXT, 500); q.publish(0); }],
  ['head out of range', ({ q }) => { q.publish(16); }],
  ['avail idx far ahead', ({ q }) => { q.setAvailIdx(100); }],
  ['indirect inside indirect', ({ q, drv }) => {
    const t1 = drv.alloc.alloc(32);
    const t2 = drv.alloc.alloc(16);
    q.writeDesc(t2, 0, drv.alloc.alloc(8), 8, VIRTQ_DESC_F_WRITE, 0);
    q.writeDesc(t1, 0, t2, 16, VIRTQ_DESC_F_INDIRECT, 0);
    q.writeDesc(q.desc, 0, t1, 16, VIRTQ_DESC_F_INDIRECT, 0);
    q.publish(0);
  }],
  ['indirect with NEXT', ({ q, drv }) => {
    const t = drv.alloc.alloc(16);
    q.writeDesc(t, 0, drv.alloc.alloc(8), 8, VIRTQ_DESC_F_WRITE, 0);
    q.writeDesc(q.desc, 0, t, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
    q.publish(0);
  }],
  ['indirect table length not a multiple of 16', ({ q, drv }) => { q.writeDesc(q.desc, 0, drv.alloc.alloc(32), 20, VIRTQ_DESC_F_INDIRECT, 0); q.publish(0); }],
  ['indirect table of zero length', ({ q, drv }) => { q.writeDesc(q.desc, 0, drv.alloc.alloc(32), 0, VIRTQ_DESC_F_INDIRECT, 0); q.publish(0); }],
  ['indirect table larger than the queue', ({ q, drv }) => { const t = drv.alloc.alloc(16 * 17); q.writeDesc(q.desc, 0, t, 16 * 17, VIRTQ_DESC_F_INDIRECT, 0); q.publish(0); }],
  ['loop inside an indirect table', ({ q, drv }) => {
    const t = drv.alloc.alloc(32);
    const a = drv.alloc.alloc(8);
    q.writeDesc(t, 0, a, 8, VIRTQ_DESC_F_NEXT, 1);
    q.writeDesc(t, 1, a, 8, VIRTQ_DESC_F_NEXT, 0);
    q.writeDesc(q.desc, 0, t, 32, VIRTQ_DESC_F_INDIRECT, 0);
    q.publish(0);
  }],
];

for (const [what, build] of bad) {
  test(`queue: ${what} → DEVICE_NEEDS_RESET, nothing used, guards intact`, async () => {
    const s = setup();
    build(s);
    assert.doesNotThrow(() => s.q.kick());
    await settle();
    assert.ok(broken(s.drv), what);
    assert.equal(s.rec.chains.length, 0);
    assert.equal(s.q.usedIdx(), 0);
    assert.ok(s.m.guardsIntact());
  });
}

test('queue: indirect without the feature negotiated is refused', async () => {
  const s = setup({ indirect: false });
  const t = s.drv.alloc.alloc(16);
  s.q.add([{ addr: s.drv.alloc.alloc(8), len: 8, write: true }], { indirect: t });
  s.q.kick();
  await settle();
  assert.ok(broken(s.drv));
});

test('queue: zero-length buffers are accepted and contribute nothing', async () => {
  const { rec, drv, q } = setup();
  const a = drv.alloc.alloc(8);
  q.add([{ addr: 0xffffffff, len: 0 }, { addr: a, len: 8, write: true }, { addr: 0, len: 0, write: true }]);
  q.kick();
  await settle();
  assert.ok(!broken(drv));
  assert.equal(rec.chains[0].readableLength, 0);
  assert.equal(rec.chains[0].writableLength, 8);
});

test('queue: indirect chains, also after direct descriptors; chain of exactly queue size', async () => {
  const { rec, drv, q } = setup();
  const t = drv.alloc.alloc(16 * 16);
  const bufs = Array.from({ length: 16 }, (_, i) => ({ addr: drv.alloc.alloc(4), len: 4, write: i >= 8 }));
  q.add(bufs, { indirect: t });
  q.kick();
  await settle();
  assert.ok(!broken(drv));
  assert.equal(rec.chains[0].readable.length, 8);
  assert.equal(rec.chains[0].writable.length, 8);
  // A direct descriptor followed by an indirect one (§2.7.5.3.2: the device must accept it).
  const t2 = drv.alloc.alloc(16);
  q.writeDesc(t2, 0, drv.alloc.alloc(8), 8, VIRTQ_DESC_F_WRITE, 0);
  q.writeDesc(q.desc, 5, drv.alloc.alloc(4), 4, VIRTQ_DESC_F_NEXT, 6);
  q.writeDesc(q.desc, 6, t2, 16, VIRTQ_DESC_F_INDIRECT, 0);
  q.publish(5);
  q.kick();
  await settle();
  assert.ok(!broken(drv));
  assert.equal(rec.chains[1].readableLength, 4);
  assert.equal(rec.chains[1].writableLength, 8);
  // Direct chain using all 16 descriptors.
  const { rec: rec2, drv: drv2, q: q2 } = setup();
  q2.add(Array.from({ length: 16 }, () => ({ addr: drv2.alloc.alloc(4), len: 4 })));
  q2.kick();
  await settle();
  assert.ok(!broken(drv2));
  assert.equal(rec2.chains[0].readable.length, 16);
});

test('queue: write-only ROM is refused for device-writable buffers', async () => {
  // No ROM in the test machine: a writable buffer in the MMIO hole (not RAM) stands for it, and
  // the read-only-RAM check is covered by GuestMemory.writableOffset; here: a used ring that is not RAM.
  const { drv, q } = setup();
  q.add([{ addr: 0xc0000000, len: 8, write: true }]);
  q.kick();
  await settle();
  assert.ok(broken(drv));
});

test('queue: EVENT_IDX — avail_event published, interrupts only when used_event is crossed', async () => {
  const { m, drv, q } = setup({ eventIdx: true });
  const bufs = Array.from({ length: 4 }, () => drv.alloc.alloc(8));
  q.setUsedEvent(0xffff); // "never" until the index wraps... interrupt wanted when used idx passes 0xffff
  q.add([{ addr: bufs[0], len: 8, write: true }]);
  q.kick();
  await settle();
  assert.equal(q.availEvent(), 1, 'device asks to be notified at the next buffer');
  const first = m.irq.log.length;
  assert.equal(first, 1, 'first completion always interrupts (no previous signal)');
  drv.readIsr();
  q.add([{ addr: bufs[1], len: 8, write: true }]);
  q.kick();
  await settle();
  assert.equal(q.usedIdx(), 2);
  assert.equal(m.irq.log.filter((e) => e.level).length, 1, 'used_event 0xffff: suppressed');
  q.setUsedEvent(2); // interrupt when used idx moves past 2
  q.add([{ addr: bufs[2], len: 8, write: true }]);
  q.kick();
  await settle();
  assert.equal(m.irq.log.filter((e) => e.level).length, 2, 'used idx 2 -> 3 crosses used_event 2');
});

test('queue: without EVENT_IDX, NO_INTERRUPT suppresses interrupts', async () => {
  const { m, drv, q } = setup();
  q.setNoInterrupt(true);
  q.add([{ addr: drv.alloc.alloc(8), len: 8, write: true }]);
  q.kick();
  await settle();
  assert.equal(q.usedIdx(), 1);
  assert.equal(m.irq.log.length, 0);
});

test('queue: 1024-entry ring', async () => {
  const m = new TestMachine();
  const rec = new Recorder(1024);
  const dev = new VirtioPciDevice(rec, { mem: m.mem, msi: m.msi });
  const drv = new VirtioDriver(m, m.attach(dev));
  drv.init();
  const q = drv.queues[0];
  assert.equal(q.size, 1024);
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 1000; i++) q.add([{ addr: drv.alloc.alloc(1, 1), len: 1, write: true }]);
    q.kick();
    await settle();
    const used = q.takeUsed();
    assert.equal(used.length, 1000);
    q.recycle(used.map((u) => u.id));
    // Recycling just the heads is right here: every chain had one descriptor.
  }
  assert.ok(!broken(drv));
});
