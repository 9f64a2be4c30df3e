import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtioPciDevice } from '../../src/devices/virtio/pci-transport.js';
import {
  NET_RX_BACKLOG, VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MRG_RXBUF, VirtioNet, parseMac,
} from '../../src/devices/virtio/net.js';
import { F_VERSION_1, bit } from '../../src/devices/virtio/constants.js';
import { TestMachine, VirtioDriver, settle } from './guest-driver.js';
import { LoopbackNetBackend } from './net-helpers.js';

function setup(opts: { mergeable?: boolean; vnet?: boolean } = {}) {
  const m = new TestMachine();
  const backend = new LoopbackNetBackend(opts.vnet ?? false, { csum: true, tso: true });
  const net = new VirtioNet({ backend, mac: '52:54:00:aa:bb:cc' });
  const dev = new VirtioPciDevice(net, { mem: m.mem, msi: m.msi });
  const drv = new VirtioDriver(m, m.attach(dev));
  let extra = bit(VIRTIO_NET_F_MAC);
  if (opts.mergeable ?? true) extra |= bit(VIRTIO_NET_F_MRG_RXBUF);
  if (opts.vnet) extra |= bit(VIRTIO_NET_F_CSUM) | bit(VIRTIO_NET_F_GUEST_CSUM);
  drv.init({ extra });
  return { m, backend, net, drv, rx: drv.queues[0], tx: drv.queues[1] };
}

const frame = (n: number, seed = 1): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i + seed) & 0xff);

test('virtio-net: MAC and link status in config; offloads offered only with a vnet-header backend', () => {
  const { drv } = setup();
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((i) => drv.deviceConfig(i, 1)), [0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc]);
  assert.equal(drv.deviceConfig(6, 2), 1, 'link up');
  assert.equal(drv.deviceFeatures() & bit(VIRTIO_NET_F_CSUM), 0n);
  const v = setup({ vnet: true });
  assert.ok(v.drv.deviceFeatures() & bit(VIRTIO_NET_F_CSUM));
  assert.deepEqual(v.backend.offloadsSet, { csum: true, tso4: false, tso6: false, ecn: false });
  assert.throws(() => parseMac('01:00:00:00:00:00'));
  assert.throws(() => parseMac('zz'));
});

test('virtio-net: transmit strips the header for a plain backend', async () => {
  const { drv, tx, backend, net } = setup();
  const pkt = new Uint8Array(12 + 60);
  pkt.set(frame(60), 12);
  const a = drv.alloc.alloc(pkt.length);
  drv.mem.write(a, pkt);
  tx.add([{ addr: a, len: 12 }, { addr: a + 12, len: 60 }]);
  tx.add([{ addr: a, len: 5 }]); // shorter than the header: dropped, still returned
  tx.kick();
  await settle();
  assert.deepEqual(backend.sent, [frame(60)]);
  assert.equal(tx.takeUsed().length, 2);
  assert.equal(net.stats.txDropped, 1);
});

test('virtio-net: receive into mergeable buffers, num_buffers set; backlog waits for buffers', async () => {
  const { drv, rx, backend, net } = setup();
  backend.inject(frame(3000, 7)); // no buffers yet: kept
  assert.equal(rx.usedIdx(), 0);
  const bufs = [0, 1, 2].map(() => drv.alloc.alloc(1526));
  for (const b of bufs) rx.add([{ addr: b, len: 1526, write: true }]);
  rx.kick();
  await settle();
  const used = rx.takeUsed();
  assert.deepEqual(used.map((u) => u.len), [1526, 1486], '3012 bytes over two buffers');
  assert.equal(drv.mem.readU16(bufs[0] + 10), 2, 'num_buffers');
  const got = new Uint8Array([...drv.mem.read(bufs[0] + 12, 1514), ...drv.mem.read(bufs[1], 1486)]);
  assert.deepEqual(got, frame(3000, 7));
  assert.equal(net.stats.rxPackets, 1);
  // One buffer left; a 2000-byte frame needs two: waits, then goes when another arrives.
  backend.inject(frame(2000, 3));
  await settle();
  assert.equal(rx.usedIdx(), 2);
  const b4 = drv.alloc.alloc(1526);
  rx.add([{ addr: b4, len: 1526, write: true }]);
  rx.kick();
  await settle();
  assert.deepEqual(rx.takeUsed().map((u) => u.len), [1526, 486]);
});

test('virtio-net: without mergeable buffers a frame larger than the buffer is dropped', async () => {
  const { drv, rx, backend, net } = setup({ mergeable: false });
  assert.equal(drv.deviceFeatures() & bit(F_VERSION_1), bit(F_VERSION_1));
  const b = drv.alloc.alloc(1526);
  rx.add([{ addr: b, len: 1526, write: true }]);
  rx.kick();
  backend.inject(frame(2000));
  backend.inject(frame(100));
  await settle();
  assert.equal(net.stats.rxDropped, 1);
  assert.deepEqual(rx.takeUsed().map((u) => u.len), [112]);
  assert.equal(drv.mem.readU16(b + 10), 1);
});

test('virtio-net: a full backlog pauses the backend; buffers resume it', async () => {
  const { drv, rx, backend } = setup();
  for (let i = 0; i < NET_RX_BACKLOG + 5; i++) backend.inject(frame(60));
  assert.equal(backend.paused, true);
  for (let i = 0; i < 200; i++) rx.add([{ addr: drv.alloc.alloc(1526), len: 1526, write: true }]);
  rx.kick();
  await settle();
  assert.equal(backend.paused, false);
});

test('virtio-net: vnet-header backend passes headers through both ways', async () => {
  const { drv, rx, tx, backend } = setup({ vnet: true });
  const pkt = new Uint8Array(12 + 60);
  pkt[0] = 1; // NEEDS_CSUM
  pkt.set(frame(60), 12);
  const a = drv.alloc.alloc(pkt.length);
  drv.mem.write(a, pkt);
  tx.add([{ addr: a, len: pkt.length }]);
  tx.kick();
  await settle();
  assert.deepEqual(backend.sent[0], pkt);
  const b = drv.alloc.alloc(200);
  rx.add([{ addr: b, len: 200, write: true }]);
  rx.kick();
  const inbound = new Uint8Array(12 + 40);
  inbound[0] = 2; // DATA_VALID
  backend.inject(inbound);
  await settle();
  assert.equal(drv.mem.readU8(b), 2);
  assert.equal(drv.mem.readU16(b + 10), 1);
});
