// Seeded fuzzing: random descriptor tables, indirect tables, available-ring entries and register
// writes thrown at each device through the whole PCI transport. Asserted: nothing throws out of
// the bus, every run ends (bounded iterations, each kick returns), and no byte outside guest RAM
// changes (guard bytes around RAM in the same SharedArrayBuffer).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtioPciDevice } from '../../src/devices/virtio/pci-transport.js';
import type { VirtioDevice } from '../../src/devices/virtio/device.js';
import { VirtioRng } from '../../src/devices/virtio/rng.js';
import { VirtioBlk } from '../../src/devices/virtio/blk.js';
import { VirtioConsole } from '../../src/devices/virtio/console.js';
import { VirtioNet } from '../../src/devices/virtio/net.js';
import { MemoryBlockBackend } from '../../src/devices/virtio/block-backend.js';
import { STATUS_DEVICE_NEEDS_RESET, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../../src/devices/virtio/constants.js';
import { TestMachine, VirtioDriver, settle } from './guest-driver.js';
import { LoopbackNetBackend } from './net-helpers.js';
import { rng } from '../support/xorshift.js';


const RAM = 4 << 20;

async function fuzz(name: string, makeDevice: () => VirtioDevice, seed: number, iterations: number, poke?: (d: VirtioDevice, r: () => number) => void): Promise<void> {
  const m = new TestMachine(RAM);
  const device = makeDevice();
  const dev = new VirtioPciDevice(device, { mem: m.mem, msi: m.msi, log: () => {} });
  const drv = new VirtioDriver(m, m.attach(dev));
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[r() % xs.length];
  // Random bytes everywhere the driver will not put rings: buffers contain random "requests".
  const scratch = 3 << 20;
  for (let a = scratch; a < RAM; a += 4) m.mem.writeU32(a, r());
  let completed = 0;
  let resets = 0;
  const init = (): void => {
    for (const q of drv.queues) completed += q.takeUsed().length;
    drv.alloc.reset();
    drv.init({ extra: device.features, eventIdx: (r() & 1) === 1, msix: (r() & 3) === 0, queueSizes: device.queueSizes.map(() => pick([1, 2, 4, 8, 16, 64, 256])) });
  };
  init();
  const randomAddr = (): number => pick([
    () => scratch + (r() % (RAM - scratch)),
    () => scratch + (r() % 4096),
    () => RAM - (r() % 64),
    () => RAM + (r() % 4096),
    () => r() * 4096,
    () => 0xfee00000,
    () => r() * 2 ** 20 + r(),
    () => 0,
  ])();
  const randomLen = (): number => pick([() => r() % 32, () => r() % 4096, () => 16, () => 1, () => 0, () => r(), () => 0xffffffff, () => 528])();
  for (let i = 0; i < iterations; i++) {
    const q = drv.queues[r() % drv.queues.length];
    const op = r() % 100;
    if (op < 60) {
      // A random chain of 1-6 descriptors, sometimes well-formed.
      const n = 1 + (r() % 6);
      const start = r() % q.size;
      for (let k = 0; k < n; k++) {
        const idx = (start + k) % q.size;
        let flags = r() & (VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE | ((r() & 7) === 0 ? VIRTQ_DESC_F_INDIRECT : 0));
        if (k + 1 < n && (r() & 3) !== 0) flags |= VIRTQ_DESC_F_NEXT;
        const next = (r() & 7) === 0 ? r() & 0xffff : (idx + 1) % q.size;
        if (flags & VIRTQ_DESC_F_INDIRECT) {
          const table = scratch + ((r() % ((RAM - scratch) / 16 - 64)) * 16);
          const count = 1 + (r() % 8);
          for (let t = 0; t < count; t++) {
            q.writeDesc(table, t, randomAddr(), randomLen(), r() & 7, (r() & 3) === 0 ? r() & 0xffff : t + 1);
          }
          q.writeDesc(q.desc, idx, table, pick([count * 16, r() % 200, 0]), flags, next);
        } else {
          q.writeDesc(q.desc, idx, randomAddr(), randomLen(), flags, next);
        }
      }
      q.publish((r() & 15) === 0 ? r() & 0xffff : start);
      if ((r() & 3) !== 0) q.kick();
    } else if (op < 65) {
      q.setAvailIdx(r());
      q.kick();
    } else if (op < 70) {
      // Random register writes into the BAR (common config, notify, ISR, device config, MSI-X).
      const off = pick([0, 0x1000, 0x2000, 0x3000, 0x4000, 0x6000]) + (r() % 0x40);
      drv.w(off, pick([1, 2, 4] as const), r());
    } else if (op < 72) {
      // Random config-space writes (never to the BAR or command registers, which would unmap us).
      const reg = 0x40 + (r() % 0xc0);
      m.cfgWrite(drv.slot, reg & ~3, 4, r());
    } else if (op < 80) {
      poke?.(device, r);
    } else if (op < 90) {
      await settle(1);
    } else {
      drv.readIsr();
      completed += q.takeUsed().length;
    }
    if (drv.status() & STATUS_DEVICE_NEEDS_RESET) resets++;
    if (drv.status() & STATUS_DEVICE_NEEDS_RESET || (r() % 200) === 0) init();
    if (i % 200 === 0) await settle(1);
  }
  await new Promise((res) => setTimeout(res, 20));
  await settle();
  assert.ok(m.guardsIntact(), `${name}: bytes outside guest RAM changed`);
  // The run did exercise the device: notifications served, buffers returned, resets taken.
  assert.ok(dev.stats.notifies > iterations / 4, `${name}: ${dev.stats.notifies} notifications`);
  assert.ok(completed > 0, `${name}: some chains were completed`);
  assert.ok(resets > 0, `${name}: some chains broke the device`);
}

const ITER = 3000;

test('fuzz: virtio-rng', async () => {
  for (const seed of [1, 2, 3]) await fuzz('rng', () => new VirtioRng(), seed, ITER);
});

test('fuzz: virtio-blk', async () => {
  for (const seed of [11, 12, 13]) {
    await fuzz('blk', () => {
      const b = new MemoryBlockBackend(64 * 1024);
      b.latency = (_op, off) => off % 3;
      return new VirtioBlk({ backend: b, queues: 2 });
    }, seed, ITER);
  }
});

test('fuzz: virtio-console', async () => {
  for (const seed of [21, 22]) {
    await fuzz('console', () => new VirtioConsole({ onOutput: () => {} }), seed, ITER, (d, r) => {
      (d as VirtioConsole).receive(new Uint8Array(r() % 300).fill(0x61));
    });
  }
});

test('fuzz: virtio-net', async () => {
  for (const seed of [31, 32]) {
    let backend!: LoopbackNetBackend;
    await fuzz('net', () => {
      backend = new LoopbackNetBackend();
      return new VirtioNet({ backend, mac: '52:54:00:12:34:56' });
    }, seed, ITER, (_d, r) => {
      backend.inject(new Uint8Array(r() % 3000).fill(0x42));
    });
  }
});
