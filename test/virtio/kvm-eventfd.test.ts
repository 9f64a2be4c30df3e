// The KVM fast path, measured: a guest doing COUNT `out 0x90, al` with the port served by the
// device thread through the vCPU mailbox, then with an ioeventfd on the port (the write completes
// in the kernel; the device thread only sees eventfd signals). Also: a virtio-pci function's
// notify registers bound as MMIO ioeventfds, moved with its BAR. Skipped without /dev/kvm.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accessSync, constants } from 'node:fs';
import { allocateKvmMemory, KvmAccelerator } from '../../src/accel/kvm/kvm-accelerator.js';
import { KvmIoEventFds } from '../../src/accel/kvm/kvm-eventfd.js';
import { loadFirmware } from '../../src/boot/firmware.js';
import { Bus, type PioDevice } from '../../src/devices/bus.js';
import { DebugExit } from '../../src/devices/legacy/debug-exit.js';
import { VirtioPciDevice } from '../../src/devices/virtio/pci-transport.js';
import { VirtioRng } from '../../src/devices/virtio/rng.js';
import { exitGuestImage } from '../../bench/exit-guest.js';
import { TestMachine, VirtioDriver } from './guest-driver.js';

function kvmUsable(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

const COUNT = 20000;
const PORT = 0x90;

async function runGuest(withEventfd: boolean): Promise<{ seconds: number; busWrites: number; signals: number }> {
  const image = exitGuestImage(COUNT, PORT);
  const mem = allocateKvmMemory(16 << 20, image.length);
  const plan = loadFirmware(mem, { firmware: image, path: 'exit-guest' });
  const accel = KvmAccelerator.create(mem, { cpus: 1, irqchip: true, log: () => {} });
  const bus = new Bus();
  let busWrites = 0;
  const port: PioDevice = { name: 'bench-port', pioRead: () => 0, pioWrite: () => { busWrites++; } };
  bus.addPio(PORT, 1, port);
  bus.addPio(0xf4, 4, new DebugExit({ requestStop: () => accel.stop() }));
  const fds = new KvmIoEventFds(accel.vmFd);
  let signals = 0;
  if (withEventfd) assert.ok(fds.add(PORT, 1, true, () => { signals++; }));
  const t0 = performance.now();
  await accel.run(bus, plan.cpu);
  const seconds = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 20)); // let the last eventfd signal be read
  await fds.close();
  accel.close();
  return { seconds, busWrites, signals };
}

test('kvm ioeventfd: guest port writes complete in the kernel, no trip through the device thread', { skip: !kvmUsable() && 'no usable /dev/kvm' }, async (t) => {
  const slow = await runGuest(false);
  const fast = await runGuest(true);
  assert.equal(slow.busWrites, COUNT, 'without ioeventfd every write reaches the bus');
  assert.equal(fast.busWrites, 0, 'with ioeventfd none does');
  assert.ok(fast.signals >= 1);
  t.diagnostic(`${COUNT} guest writes: mailbox path ${(slow.seconds * 1e6 / COUNT).toFixed(1)} us/write (${slow.seconds.toFixed(3)} s), ` +
    `ioeventfd ${(fast.seconds * 1e6 / COUNT).toFixed(1)} us/write (${fast.seconds.toFixed(3)} s), ${fast.signals} eventfd wakeups`);
});

test('kvm ioeventfd: virtio notify registers bound per queue and rebound when the BAR moves', { skip: !kvmUsable() && 'no usable /dev/kvm' }, async () => {
  const mem = allocateKvmMemory(16 << 20);
  const accel = KvmAccelerator.create(mem, { cpus: 1, irqchip: true, log: () => {} });
  try {
    const m = new TestMachine();
    const dev = new VirtioPciDevice(new VirtioRng(), { mem: m.mem, msi: m.msi });
    const drv = new VirtioDriver(m, m.attach(dev));
    const logs: string[] = [];
    const fds = new KvmIoEventFds(accel.vmFd, (l) => logs.push(l));
    fds.bindVirtio(dev);
    assert.equal(fds.count, 0, 'BAR not decoded yet');
    drv.probe();
    assert.equal(fds.count, 1, 'one queue, one ioeventfd');
    const bar = m.cfgRead(drv.slot, 0x10, 4) & ~0xf;
    m.cfgWrite(drv.slot, 0x10, 4, (bar + 0x100000) >>> 0);
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(fds.count, 1, 'rebound at the new address');
    assert.equal(dev.notifyAddress(0), ((bar + 0x100000) >>> 0) + 0x3000);
    m.cfgWrite(drv.slot, 4, 2, 0);
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(fds.count, 0, 'decode off: unbound');
    assert.deepEqual(logs, []);
    await fds.close();
  } finally {
    accel.close();
  }
});
