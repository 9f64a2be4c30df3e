import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accessSync, constants } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { attachPciDevices } from '../../src/devices/pci/machine-pci.js';
import { MemoryBlockBackend } from '../../src/devices/virtio/block-backend.js';
import { buildAcpiTables } from '../../src/boot/acpi/builder.js';
import { ResetControl } from '../../src/devices/legacy/reset-control.js';
import { RecordingMachineControl } from '../../src/vmm/machine-control.js';
import { Bus } from '../../src/devices/bus.js';
import { NullIrqSink } from '../../src/devices/irq.js';
import { TapBackend, parseNetSpec } from '../../src/net/tap.js';
import { VirtioNet } from '../../src/devices/virtio/net.js';
import { VirtioPciDevice } from '../../src/devices/virtio/pci-transport.js';
import { VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_MAC } from '../../src/devices/virtio/net.js';
import { bit } from '../../src/devices/virtio/constants.js';
import { LoopbackNetBackend } from './net-helpers.js';
import { RecordingMsi, TestMachine, VirtioDriver, guardedMemory, settle } from './guest-driver.js';

test('attachPciDevices: slots, device IDs, ACPI pieces, reset control at 0xCF9, close()', async () => {
  const bus = new Bus();
  const { mem } = guardedMemory(16 << 20);
  const control = new RecordingMachineControl();
  const disk = new MemoryBlockBackend(1 << 20);
  const out: number[] = [];
  const pci = attachPciDevices({
    bus, mem, irq: new NullIrqSink(), msi: new RecordingMsi(), resetControl: new ResetControl(control),
    disks: [{ backend: disk, id: 'vda' }, { backend: new MemoryBlockBackend(1 << 20, true), queues: 2 }],
    nets: [{ backend: new LoopbackNetBackend(), mac: '52:54:00:00:00:01' }],
    rng: true,
    console: { onOutput: (b) => out.push(...b) },
  });
  const ids = pci.root.devices().map((d) => [d.slot, d.dev.deviceId]);
  assert.deepEqual(ids, [[0, 0x29c0], [1, 0x1042], [2, 0x1042], [3, 0x1041], [4, 0x1044], [5, 0x1043]]);
  assert.ok(pci.consoleDevice);
  const layout = buildAcpiTables(mem, { cpus: 2, extraTables: pci.acpiTables, extraDsdtAml: pci.dsdtAml });
  assert.ok(layout.tables.some((t) => t.signature === 'MCFG'));
  bus.pioWrite(0xcf9, 1, 0x06);
  assert.deepEqual(control.requests, [{ kind: 'reset' }]);
  pci.reset();
  await pci.close();
  await pci.close();
  assert.equal(disk.closed, true);
});

test('parseNetSpec', () => {
  assert.deepEqual(parseNetSpec('tap'), { kind: 'tap' });
  assert.deepEqual(parseNetSpec('tap,ifname=tap0,mac=52:54:00:12:34:56'), { kind: 'tap', ifname: 'tap0', mac: '52:54:00:12:34:56' });
  assert.throws(() => parseNetSpec('user'));
  assert.throws(() => parseNetSpec('tap,mac=zz'));
  assert.throws(() => parseNetSpec('tap,bogus=1'));
});

function canTap(): boolean {
  try {
    accessSync('/dev/net/tun', constants.R_OK | constants.W_OK);
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
    return process.getuid?.() === 0;
  } catch {
    return false;
  }
}

test('TAP backend: frames from the host kernel reach the guest\'s rx ring; guest frames go out', { skip: !canTap() && 'needs root, /dev/net/tun and ip(8)' }, async () => {
  const ifname = `tsvmt${process.pid % 10000}`;
  const tap = TapBackend.open({ ifname });
  try {
    assert.equal(tap.ifname, ifname);
    const m = new TestMachine();
    const net = new VirtioNet({ backend: tap });
    const dev = new VirtioPciDevice(net, { mem: m.mem, msi: m.msi });
    const drv = new VirtioDriver(m, m.attach(dev));
    drv.init({ extra: net.features });
    assert.ok(drv.deviceFeatures() & bit(VIRTIO_NET_F_MRG_RXBUF));
    assert.ok(net.features & bit(VIRTIO_NET_F_MAC));
    const [rx, tx] = drv.queues;
    for (let i = 0; i < 16; i++) rx.add([{ addr: drv.alloc.alloc(2048), len: 2048, write: true }]);
    rx.kick();
    // Link up with an IPv6 link-local address: the kernel sends router solicitations / MLD reports.
    execFileSync('ip', ['link', 'set', ifname, 'up']);
    const deadline = Date.now() + 5000;
    while (net.stats.rxPackets === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(net.stats.rxPackets > 0, 'a frame from the host arrived');
    const used = rx.takeUsed();
    assert.ok(used.length > 0 && used[0].len > 12 + 14);
    // Transmit a broadcast ARP-sized frame (12-byte header + 60 bytes).
    const pkt = new Uint8Array(12 + 60);
    pkt.fill(0xff, 12, 18);
    pkt.set([0x52, 0x54, 0, 0, 0, 1], 18);
    pkt[24] = 0x08; pkt[25] = 0x06;
    const a = drv.alloc.alloc(pkt.length);
    drv.mem.write(a, pkt);
    tx.add([{ addr: a, len: pkt.length }]);
    tx.kick();
    await settle();
    assert.equal(net.stats.txPackets, 1);
    assert.equal(tap.stats.txDropped, 0);
    await dev.close();
  } finally {
    await tap.close();
  }
});
