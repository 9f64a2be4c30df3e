import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtioPciDevice } from '../../src/devices/virtio/pci-transport.js';
import { VirtioConsole } from '../../src/devices/virtio/console.js';
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
