import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtioPciDevice } from '../../src/devices/virtio/pci-transport.js';
import { CONSOLE_INPUT_LIMIT, VirtioConsole } from '../../src/devices/virtio/console.js';
import { VirtioRng, RNG_MAX_PER_REQUEST } from '../../src/devices/virtio/rng.js';
import { TestMachine, VirtioDriver, settle } from './guest-driver.js';

test('virtio-console: guest output (tx), host input (rx) waiting for buffers, emergency write', async () => {
  const m = new TestMachine();
  const out: number[] = [];
  const con = new VirtioConsole({ onOutput: (b) => out.push(...b) });
  const dev = new VirtioPciDevice(con, { mem: m.mem, msi: m.msi });
  const drv = new VirtioDriver(m, m.attach(dev));
  drv.init({ extra: con.features });
  assert.equal(drv.deviceConfig(4, 4), 1, 'max_nr_ports');
  const [rx, tx] = drv.queues;
  const text = new TextEncoder().encode('hello, hvc0\n');
  const a = drv.alloc.alloc(text.length);
  drv.mem.write(a, text);
  tx.add([{ addr: a, len: 5 }, { addr: a + 5, len: text.length - 5 }]);
  tx.kick();
  await settle();
  assert.equal(new TextDecoder().decode(Uint8Array.from(out)), 'hello, hvc0\n');
  assert.equal(tx.takeUsed().length, 1);
  // Input before the guest has buffers is kept...
  con.receive(new TextEncoder().encode('ls -l\n'));
  const b1 = drv.alloc.alloc(4);
  const b2 = drv.alloc.alloc(16);
  rx.add([{ addr: b1, len: 4, write: true }]);
  rx.add([{ addr: b2, len: 16, write: true }]);
  rx.kick();
  await settle();
  const used = rx.takeUsed();
  assert.deepEqual(used.map((u) => u.len), [4, 2]);
  assert.equal(new TextDecoder().decode(drv.mem.read(b1, 4)) + new TextDecoder().decode(drv.mem.read(b2, 2)), 'ls -l\n');
  // Emergency write.
  out.length = 0;
  drv.w(drv.caps.device! + 8, 4, 0x41);
  assert.deepEqual(out, [0x41]);
});

test('virtio-console: host input waits until the driver has written once since its reset; at most 64 KiB waits', async () => {
  const m = new TestMachine();
  const con = new VirtioConsole({ onOutput: () => {} });
  const dev = new VirtioPciDevice(con, { mem: m.mem, msi: m.msi });
  const drv = new VirtioDriver(m, m.attach(dev));
  const enc = (t: string) => new TextEncoder().encode(t);
  const write = async (t: string) => {
    const a = drv.alloc.alloc(t.length);
    drv.mem.write(a, enc(t));
    drv.queues[1].add([{ addr: a, len: t.length }]);
    drv.queues[1].kick();
    await settle();
  };
  drv.init({ extra: con.features });
  const b1 = drv.alloc.alloc(64);
  drv.queues[0].add([{ addr: b1, len: 64, write: true }]);
  drv.queues[0].kick();
  con.receive(enc('typed early\n'));
  await settle();
  assert.equal(drv.queues[0].takeUsed().length, 0, 'the guest has buffers but has not written: input waits');
  await write('~ # ');
  assert.deepEqual(drv.queues[0].takeUsed().map((u) => u.len), [12]);
  assert.equal(new TextDecoder().decode(drv.mem.read(b1, 12)), 'typed early\n');
  // With no buffers, input piles up to CONSOLE_INPUT_LIMIT; the rest is dropped and counted.
  con.receive(new Uint8Array(CONSOLE_INPUT_LIMIT + 100).fill(0x61));
  assert.equal(con.stats.rx_dropped, 100);
  // A driver reset (a new driver instance): it must write before it gets the kept input.
  drv.init({ extra: con.features });
  const b2 = drv.alloc.alloc(64);
  drv.queues[0].add([{ addr: b2, len: 64, write: true }]);
  drv.queues[0].kick();
  await settle();
  assert.equal(drv.queues[0].takeUsed().length, 0);
  await write('login: ');
  assert.deepEqual(drv.queues[0].takeUsed().map((u) => u.len), [64]);
  assert.deepEqual(con.stats, { tx_bytes: 4 + 7, rx_bytes: 12 + 64, rx_dropped: 100 });
});

test('virtio-rng: caps one request at 64 KiB, fills several segments', async () => {
  const m = new TestMachine();
  const rng = new VirtioRng((b) => b.fill(0x5a));
  const dev = new VirtioPciDevice(rng, { mem: m.mem, msi: m.msi });
  const drv = new VirtioDriver(m, m.attach(dev));
  drv.init();
  const q = drv.queues[0];
  const a = drv.alloc.alloc(RNG_MAX_PER_REQUEST + 4096);
  drv.mem.fill(a, RNG_MAX_PER_REQUEST + 4096, 0);
  q.add([{ addr: a, len: 100, write: true }, { addr: a + 100, len: RNG_MAX_PER_REQUEST + 3996, write: true }]);
  q.kick();
  await settle();
  assert.deepEqual(q.takeUsed().map((u) => u.len), [RNG_MAX_PER_REQUEST]);
  assert.equal(drv.mem.readU8(a), 0x5a);
  assert.equal(drv.mem.readU8(a + RNG_MAX_PER_REQUEST - 1), 0x5a);
  assert.equal(drv.mem.readU8(a + RNG_MAX_PER_REQUEST), 0);
});
