// Interrupts into a KVM guest without the vCPU thread: MSI-X vectors as GSI routes + irqfds
// (src/accel/kvm/kvm-irqfd.ts, kvm-irq-routing.ts), checked with a real guest (guests/asm/irq.asm)
// that counts every interrupt vector in RAM, so the host sees each delivery without any exit.
// Also: INTx through the 8259 and the I/O APIC still arrives once our routing table replaced
// KVM's default one, a virtio device's MSI-X vector reaches the guest through an irqfd, the
// route limit falls back to KVM_SIGNAL_MSI, and nothing leaks. Skipped without /dev/kvm.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { GuestStop } from '../../src/accel/accelerator.js';
import { allocateKvmMemory, KvmAccelerator, type KvmOptions } from '../../src/accel/kvm/kvm-accelerator.js';
import { loadFirmware } from '../../src/boot/firmware.js';
import { Bus, type PioDevice } from '../../src/devices/bus.js';
import { VirtioPciDevice } from '../../src/devices/virtio/pci-transport.js';
import { VirtioRng } from '../../src/devices/virtio/rng.js';
import { assembleGuest } from '../support/guests.js';
import { kvmUnavailableReason } from '../support/tsvm-process.js';
import { settle, TestMachine, VirtioDriver } from '../virtio/guest-driver.js';

const noKvm = kvmUnavailableReason();

// guests/asm/irq.asm's RAM layout (dword indices from STATE = 0x6000).
const STATE = 0x6000;
const READY_MAGIC = 0x52454459;
const MSI_BASE_VECTOR = 0x40;
const msiCount = (v: number) => 1 + (v - MSI_BASE_VECTOR);
const PIC_COUNT = 9;
const IOAPIC_COUNT = 10;
const SPURIOUS_COUNT = 11;
/** Fixed delivery, physical destination APIC ID 0 (SDM vol. 3A 11.11.1). */
const LAPIC0 = 0xfee00000;

interface IrqGuest {
  accel: KvmAccelerator;
  counts: Int32Array;
  console: () => string;
  logs: string[];
  /** Stops the guest and closes the VM; resolves with how the vCPU stopped. */
  end(): Promise<GuestStop>;
}

/** Open fds of KVM objects and eventfds (what a leak here would be), by their /proc/self/fd links. */
function kvmFds(): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (/^\/dev\/kvm$|^anon_inode:(kvm|\[eventfd\])/.test(readlinkSync(`/proc/self/fd/${fd}`))) n++;
    } catch {
      // closed meanwhile (the fd of the directory listing itself)
    }
  }
  return n;
}

/**
 * kvmFds() once it is down to `want`, waiting up to 5 s: a vCPU worker's own event loop (libuv)
 * holds an eventfd until the thread has exited, which happens after `run` resolved, so a count
 * taken at a test's start may include the previous test's worker. A leak stays.
 */
async function kvmFdsSettled(want: number): Promise<number> {
  const deadline = performance.now() + 5000;
  let n = kvmFds();
  while (n > want && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    n = kvmFds();
  }
  return n;
}

async function startIrqGuest(opts: Partial<KvmOptions> = {}): Promise<IrqGuest> {
  const image = new Uint8Array(await readFile(await assembleGuest('irq')));
  const mem = allocateKvmMemory(16 << 20, image.length);
  const plan = loadFirmware(mem, { firmware: image, path: 'irq' });
  const logs: string[] = [];
  const accel = KvmAccelerator.create(mem, { cpus: 1, irqchip: true, log: (l) => logs.push(l), debug: (l) => logs.push(l), ...opts });
  const bus = new Bus();
  let out = '';
  // Just enough of a UART for the guest's "ready" line: THR empty, bytes collected.
  const uart: PioDevice = {
    name: 'uart-stub',
    pioRead: (offset) => (offset === 5 ? 0x60 : 0), // LSR: transmitter empty
    pioWrite: (offset, _size, v) => { if (offset === 0) out += String.fromCharCode(v & 0xff); },
  };
  bus.addPio(0x3f8, 8, uart);
  let stopped: GuestStop | undefined;
  const running = accel.run(bus, plan.cpu).then((s) => (stopped = s));
  const counts = new Int32Array(mem.buffer, mem.base + mem.gpaToOffset(STATE, 48), 12);
  const deadline = performance.now() + 60_000;
  while (Atomics.load(counts, 0) !== READY_MAGIC) {
    if (stopped) throw new Error(`the irq guest stopped before it was ready: ${stopped.message}; console: ${JSON.stringify(out)}`);
    if (performance.now() > deadline) throw new Error(`the irq guest did not get ready; console: ${JSON.stringify(out)}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return {
    accel, counts, logs, console: () => out,
    end: async () => {
      accel.stop();
      const s = await running;
      accel.close();
      return s;
    },
  };
}

/**
 * Spins (this thread only: the guest needs nothing from it) until counter `i` reaches `want`;
 * throws after `ms`. The event loop is blocked meanwhile, which also proves no delivery needs it.
 */
function spinUntil(counts: Int32Array, i: number, want: number, ms = 2000): void {
  const deadline = performance.now() + ms;
  while (Atomics.load(counts, i) < want) {
    if (performance.now() > deadline) throw new Error(`counter ${i} stuck at ${Atomics.load(counts, i)}, wanted ${want}`);
  }
}

/** Sends `count` interrupts one at a time, each only after the guest counted the previous one. */
function pingPong(counts: Int32Array, i: number, count: number, send: () => void): { sendUs: number; roundTripUs: number } {
  const base = Atomics.load(counts, i);
  let sendMs = 0;
  const t0 = performance.now();
  for (let k = 1; k <= count; k++) {
    const s = performance.now();
    send();
    sendMs += performance.now() - s;
    spinUntil(counts, i, base + k);
  }
  const total = performance.now() - t0;
  assert.equal(Atomics.load(counts, i), base + count, 'exactly one interrupt per signal');
  return { sendUs: (sendMs * 1000) / count, roundTripUs: (total * 1000) / count };
}

/** Time of `count` back-to-back sends from this thread (the guest coalesces what it has not taken yet). */
function burst(count: number, send: () => void): number {
  const t0 = performance.now();
  for (let k = 0; k < count; k++) send();
  return ((performance.now() - t0) * 1000) / count;
}

const N = 2000;
const ROUNDS = 5;
const BURST = 20000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

test('kvm irqfd: MSIs through an irqfd reach the guest one for one, with no exit and no mailbox message; cost against KVM_SIGNAL_MSI', { skip: noKvm }, async (t) => {
  const fdsBefore = kvmFds();
  const g = await startIrqGuest();
  try {
    const { accel, counts } = g;
    assert.equal(accel.msiStats().path, 'irqfd', `MSI path; logs: ${g.logs.join(' | ')}`);
    assert.equal(g.console(), 'irq guest ready\n');
    const route = accel.msi.openRoute?.();
    assert.ok(route, 'the KVM sink offers routes');
    assert.ok(route.program(LAPIC0, 0x40));
    assert.equal(accel.msiStats().routes, 1);

    // The irqfd path alone first: every signal delivered once, and the vCPU thread not involved.
    const before = accel.stats();
    pingPong(counts, msiCount(0x40), N, () => assert.ok(route.signal()));
    const after = accel.stats();
    assert.equal(after.forwarded - before.forwarded, 0, 'no access went through the vCPU mailbox');
    assert.equal(after.exits - before.exits, 0, 'KVM_RUN did not even return to the vCPU thread');
    const st = accel.msiStats();
    assert.equal(st.irqfdSignals, N);
    assert.equal(st.signalMsiCalls, 0, 'no KVM_SIGNAL_MSI on the irqfd path');

    // Then both paths in alternating rounds (the first rounds of a run are slower: warm-up), medians.
    const irqfdRounds: { sendUs: number; roundTripUs: number }[] = [];
    const ioctlRounds: { sendUs: number; roundTripUs: number }[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      irqfdRounds.push(pingPong(counts, msiCount(0x40), N / ROUNDS, () => assert.ok(route.signal())));
      ioctlRounds.push(pingPong(counts, msiCount(0x41), N / ROUNDS, () => accel.msi.signalMsi(LAPIC0, 0x41)));
    }
    const summary = (rs: typeof irqfdRounds) => ({ sendUs: median(rs.map((x) => x.sendUs)), roundTripUs: median(rs.map((x) => x.roundTripUs)) });
    const viaIrqfd = summary(irqfdRounds);
    const viaIoctl = summary(ioctlRounds);
    assert.equal(accel.msiStats().signalMsiCalls, N);
    assert.equal(accel.stats().forwarded - before.forwarded, 0, 'KVM_SIGNAL_MSI: no mailbox message either');
    assert.equal(accel.stats().exits - before.exits, 0, 'KVM_SIGNAL_MSI: no vCPU exit either');

    // Send cost alone, back to back (the guest counts what it has not coalesced).
    const c40 = Atomics.load(counts, msiCount(0x40));
    const c41 = Atomics.load(counts, msiCount(0x41));
    const burstIrqfd = burst(BURST, () => route.signal());
    const burstIoctl = burst(BURST, () => accel.msi.signalMsi(LAPIC0, 0x41));
    spinUntil(counts, msiCount(0x40), c40 + 1);
    spinUntil(counts, msiCount(0x41), c41 + 1);
    assert.ok(Atomics.load(counts, msiCount(0x40)) <= c40 + BURST);

    // Reprogramming the vector moves its interrupts (the table is re-sent, the irqfd stays bound).
    const commits = accel.msiStats().routes;
    assert.ok(route.program(LAPIC0, 0x42));
    assert.equal(accel.msiStats().routes, commits, 'same route, new message');
    const c40b = Atomics.load(counts, msiCount(0x40));
    pingPong(counts, msiCount(0x42), 10, () => assert.ok(route.signal()));
    assert.equal(Atomics.load(counts, msiCount(0x40)), c40b, 'nothing arrives on the old vector');

    // What a guest may program but KVM must not route: the caller then uses signalMsi.
    assert.equal(route.program(0x12345678, 0x40), false, 'not a local APIC address');
    assert.equal(route.program(LAPIC0 + 2 ** 32, 0x40), false, 'upper address bits set');
    assert.equal(route.signal(), false, 'a route whose last program() failed sends nothing');
    assert.ok(route.program(LAPIC0, 0x43));
    pingPong(counts, msiCount(0x43), 10, () => assert.ok(route.signal()));

    route.release();
    assert.equal(accel.msiStats().routes, 0);
    assert.equal(route.signal(), false, 'a released route is dead');
    assert.equal(route.program(LAPIC0, 0x40), false);
    assert.equal(Atomics.load(counts, SPURIOUS_COUNT), 0);

    t.diagnostic(`MSIs one at a time (device thread sends, then waits until the guest's handler counted it), median of ${ROUNDS} alternating rounds of ${N / ROUNDS}: ` +
      `irqfd write ${viaIrqfd.sendUs.toFixed(2)} us to send, ${viaIrqfd.roundTripUs.toFixed(1)} us round trip; ` +
      `KVM_SIGNAL_MSI ${viaIoctl.sendUs.toFixed(2)} us to send, ${viaIoctl.roundTripUs.toFixed(1)} us round trip; ` +
      `during ${N} irqfd MSIs: ${after.exits - before.exits} vCPU exits, ${after.forwarded - before.forwarded} mailbox messages`);
    t.diagnostic(`${BURST} MSIs back to back: irqfd write ${burstIrqfd.toFixed(2)} us each, KVM_SIGNAL_MSI ${burstIoctl.toFixed(2)} us each`);
  } finally {
    const stop = await g.end();
    assert.equal(stop.reason, 'requested', stop.message);
  }
  assert.ok(await kvmFdsSettled(fdsBefore) <= fdsBefore, 'every fd (VM, vCPU, eventfds) closed');
});

test('kvm irqfd: INTx through the 8259 and the I/O APIC still arrives after KVM_SET_GSI_ROUTING replaced the default table', { skip: noKvm }, async () => {
  const g = await startIrqGuest();
  try {
    const { accel, counts } = g;
    assert.equal(accel.msiStats().path, 'irqfd', 'our table is in force');
    // GSI 3: KVM's default routes drive 8259 master pin 3 (unmasked by the guest, vector 0x23)
    // and I/O APIC pin 3 (masked since reset). GSI 17: I/O APIC pin 17 only (vector 0x51).
    for (let k = 1; k <= 5; k++) {
      accel.irq.setIrq(3, true);
      accel.irq.setIrq(3, false);
      spinUntil(counts, PIC_COUNT, k);
      accel.irq.setIrq(17, true);
      accel.irq.setIrq(17, false);
      spinUntil(counts, IOAPIC_COUNT, k);
    }
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(Atomics.load(counts, PIC_COUNT), 5);
    assert.equal(Atomics.load(counts, IOAPIC_COUNT), 5);
    assert.equal(Atomics.load(counts, msiCount(0x43)), 0, 'INTx did not leak onto MSI vectors');
  } finally {
    await g.end();
  }
});

test('kvm irqfd: a virtio device\'s MSI-X vector reaches the guest through an irqfd; disabling MSI-X and reset release its routes', { skip: noKvm }, async () => {
  const fdsBefore = kvmFds();
  const g = await startIrqGuest();
  try {
    const { accel, counts } = g;
    // The device's queues live in a host-side test machine (guest-driver.ts plays the driver);
    // its interrupts go to the KVM guest through the accelerator's MSI sink, as in vm.ts.
    const m = new TestMachine();
    const dev = new VirtioPciDevice(new VirtioRng(), { mem: m.mem, msi: accel.msi });
    const drv = new VirtioDriver(m, m.attach(dev));
    drv.init({ msix: true }); // vector v: address 0xFEE00000, data 0x40 + v; queue 0 uses vector 1
    assert.equal(accel.msiStats().routes, 2, 'config and queue vectors routed when MSI-X was enabled');
    const q = drv.queues[0];
    for (let k = 1; k <= 3; k++) {
      const buf = drv.alloc.alloc(64);
      q.add([{ addr: buf, len: 64, write: true }]);
      q.kick();
      await settle();
      spinUntil(counts, msiCount(0x41), k);
      assert.equal(q.takeUsed().length, 1);
    }
    const st = accel.msiStats();
    assert.equal(st.irqfdSignals, 3);
    assert.equal(st.signalMsiCalls, 0);
    const ctrl = m.cfgRead(drv.slot, drv.msixCap + 2, 2);
    m.cfgWrite(drv.slot, drv.msixCap + 2, 2, ctrl & ~0x8000);
    assert.equal(accel.msiStats().routes, 0, 'disabling MSI-X released the routes');
    m.cfgWrite(drv.slot, drv.msixCap + 2, 2, ctrl);
    assert.equal(accel.msiStats().routes, 2, 'enabling it again routes the unmasked vectors again');
    dev.resetConfig();
    assert.equal(accel.msiStats().routes, 0, 'machine reset released them');
  } finally {
    await g.end();
  }
  assert.ok(await kvmFdsSettled(fdsBefore) <= fdsBefore, 'no fd left open');
});

test('kvm irqfd: routes are bounded; past the limit, and with irqfd off, MSIs use KVM_SIGNAL_MSI', { skip: noKvm }, async () => {
  const fdsBefore = kvmFds();
  const mem = allocateKvmMemory(16 << 20);
  const logs: string[] = [];
  const accel = KvmAccelerator.create(mem, { cpus: 1, irqchip: true, maxMsiRoutes: 2, log: (l) => logs.push(l), debug: (l) => logs.push(l) });
  try {
    const routes = [0, 1, 2].map(() => accel.msi.openRoute?.());
    assert.ok(routes.every((r) => r));
    assert.ok(routes[0]!.program(LAPIC0, 0x40));
    assert.ok(routes[1]!.program(LAPIC0, 0x41));
    assert.equal(routes[2]!.program(LAPIC0, 0x42), false, 'table full');
    assert.equal(accel.msiStats().routes, 2);
    assert.ok(logs.some((l) => /all 2 MSI routes in use/.test(l)), logs.join(' | '));
    routes[0]!.release();
    assert.ok(routes[2]!.program(LAPIC0, 0x42), 'a released GSI is reused');
    assert.equal(accel.msiStats().routes, 2);
  } finally {
    accel.close();
  }
  const off = KvmAccelerator.create(allocateKvmMemory(16 << 20), { cpus: 1, irqchip: true, irqfd: false, log: () => {}, debug: (l) => logs.push(l) });
  try {
    assert.equal(off.msiStats().path, 'KVM_SIGNAL_MSI');
    assert.equal(off.msi.openRoute?.(), undefined);
    assert.ok(logs.some((l) => /MSI-X through KVM_SIGNAL_MSI: turned off/.test(l)));
  } finally {
    off.close();
  }
  assert.ok(await kvmFdsSettled(fdsBefore) <= fdsBefore, 'no fd left open');
});
