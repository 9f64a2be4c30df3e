import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtioPciDevice, CC } from '../../src/devices/virtio/pci-transport.js';
import { VirtioRng } from '../../src/devices/virtio/rng.js';
import {
  F_RING_EVENT_IDX, F_RING_INDIRECT_DESC, F_VERSION_1, STATUS_DEVICE_NEEDS_RESET, STATUS_DRIVER_OK, STATUS_FEATURES_OK, bit,
} from '../../src/devices/virtio/constants.js';
import { intxGsi } from '../../src/devices/pci/layout.js';
import { TestMachine, VirtioDriver, settle } from './guest-driver.js';

function rngMachine(): { m: TestMachine; dev: VirtioPciDevice; drv: VirtioDriver; rng: VirtioRng } {
  const m = new TestMachine();
  const rng = new VirtioRng();
  const dev = new VirtioPciDevice(rng, { mem: m.mem, msi: m.msi, log: (l) => m.logs.push(l) });
  const slot = m.attach(dev);
  return { m, dev, drv: new VirtioDriver(m, slot), rng };
}

test('virtio-pci: IDs, capabilities as Linux finds them, 64-bit BAR', () => {
  const { m, drv } = rngMachine();
  assert.equal(m.cfgRead(drv.slot, 0, 2), 0x1af4);
  assert.equal(m.cfgRead(drv.slot, 2, 2), 0x1044, 'modern virtio-rng: 0x1040 + 4');
  assert.ok(m.cfgRead(drv.slot, 8, 1) >= 1, 'revision >= 1 (non-transitional)');
  assert.equal(m.cfgRead(drv.slot, 0x3d, 1), 1, 'INTA#');
  const ids = m.capabilities(drv.slot).map((c) => c.id);
  assert.deepEqual(ids.filter((i) => i === 0x09).length, 4, 'common, notify, isr, pci_cfg (no device cfg for rng)');
  assert.ok(ids.includes(0x11), 'MSI-X');
  const bar = m.sizeBar(drv.slot, 0);
  assert.equal(bar.is64, true);
  assert.equal(bar.size, 0x8000);
  drv.probe();
  assert.equal(drv.caps.notifyMultiplier, 4);
  const f = drv.deviceFeatures();
  for (const b of [F_VERSION_1, F_RING_INDIRECT_DESC, F_RING_EVENT_IDX]) assert.ok(f & bit(b));
});

test('virtio-pci: FEATURES_OK refused without VERSION_1 or with unoffered bits', () => {
  const { drv } = rngMachine();
  assert.throws(() => drv.init({ features: bit(F_RING_INDIRECT_DESC) }), /FEATURES_OK refused/);
  assert.throws(() => drv.init({ features: bit(F_VERSION_1) | bit(40) }), /FEATURES_OK refused/);
  drv.init();
  assert.equal(drv.status() & (STATUS_FEATURES_OK | STATUS_DRIVER_OK), STATUS_FEATURES_OK | STATUS_DRIVER_OK);
});

test('virtio-rng: fills the buffer, INTx + ISR read-to-clear', async () => {
  const { m, drv, dev } = rngMachine();
  drv.init();
  const q = drv.queues[0];
  const buf = drv.alloc.alloc(64);
  drv.mem.fill(buf, 64, 0);
  const head = q.add([{ addr: buf, len: 64, write: true }]);
  q.kick();
  await settle();
  assert.deepEqual(q.takeUsed(), [{ id: head, len: 64 }]);
  assert.ok(drv.mem.read(buf, 64).some((b) => b !== 0), 'random bytes');
  const gsi = intxGsi(drv.slot, 0);
  assert.deepEqual(m.irq.log.at(-1), { gsi, level: true });
  assert.equal(drv.readIsr(), 1, 'queue interrupt');
  assert.deepEqual(m.irq.log.at(-1), { gsi, level: false }, 'ISR read deasserts');
  assert.equal(drv.readIsr(), 0, 'and clears');
  assert.equal(dev.stats.notifies, 1);
});

test('virtio-pci: MSI-X per-queue vectors; NO_VECTOR for a vector out of range', async () => {
  const { m, drv } = rngMachine();
  drv.init({ msix: true });
  drv.setCommon(CC.QUEUE_SELECT, 2, 0);
  assert.equal(drv.common(CC.QUEUE_MSIX_VECTOR, 2), 1);
  const q = drv.queues[0];
  const buf = drv.alloc.alloc(16);
  q.add([{ addr: buf, len: 16, write: true }]);
  q.kick();
  await settle();
  assert.deepEqual(m.msi.log, [{ address: 0xfee00000, data: 0x41 }]);
  assert.equal(m.irq.log.length, 0, 'no INTx while MSI-X is on');
  drv.setCommon(CC.CONFIG_MSIX_VECTOR, 2, 99);
  assert.equal(drv.common(CC.CONFIG_MSIX_VECTOR, 2), 0xffff);
});

test('virtio-pci: a bad ring sets DEVICE_NEEDS_RESET with a config interrupt; reset recovers', async () => {
  const { m, drv } = rngMachine();
  drv.init();
  const q = drv.queues[0];
  q.publish(999); // head index out of range
  q.kick();
  await settle();
  assert.ok(drv.status() & STATUS_DEVICE_NEEDS_RESET);
  assert.equal(drv.readIsr() & 2, 2, 'configuration change interrupt');
  assert.ok(m.logs.some((l) => l.includes('needs reset')));
  // Further kicks do nothing.
  q.kick();
  assert.equal(q.usedIdx(), 0);
  // Reset and start over: works again.
  drv.init();
  assert.equal(drv.status() & STATUS_DEVICE_NEEDS_RESET, 0);
  const q2 = drv.queues[0];
  const buf = drv.alloc.alloc(8);
  q2.add([{ addr: buf, len: 8, write: true }]);
  q2.kick();
  await settle();
  assert.equal(q2.takeUsed().length, 1);
});

test('virtio-pci: rings outside RAM at queue_enable mark the device broken, not the VMM', () => {
  const { drv } = rngMachine();
  drv.probe();
  drv.setCommon(CC.DEVICE_STATUS, 1, 0);
  drv.setCommon(CC.DEVICE_STATUS, 1, 3);
  drv.setCommon(CC.DRIVER_FEATURE_SELECT, 4, 1);
  drv.setCommon(CC.DRIVER_FEATURE, 4, 1);
  drv.setCommon(CC.DEVICE_STATUS, 1, 3 | STATUS_FEATURES_OK);
  drv.setCommon(CC.QUEUE_SELECT, 2, 0);
  drv.setCommon(CC.QUEUE_DESC_LO, 4, 0xfff00000);
  drv.setCommon(CC.QUEUE_DESC_HI, 4, 0xffffffff);
  drv.setCommon(CC.QUEUE_ENABLE, 2, 1);
  assert.ok(drv.status() & STATUS_DEVICE_NEEDS_RESET);
  assert.equal(drv.common(CC.QUEUE_ENABLE, 2), 0);
  // Unknown queue: size 0, writes ignored.
  drv.setCommon(CC.QUEUE_SELECT, 2, 7);
  assert.equal(drv.common(CC.QUEUE_SIZE, 2), 0);
  drv.setCommon(CC.QUEUE_ENABLE, 2, 1);
});

test('virtio-pci: VIRTIO_PCI_CAP_PCI_CFG window reads the common config', () => {
  const { m, drv } = rngMachine();
  drv.probe();
  const c = drv.caps.pciCfg!;
  m.cfgWrite(drv.slot, c + 4, 1, 0);
  m.cfgWrite(drv.slot, c + 8, 4, CC.NUM_QUEUES);
  m.cfgWrite(drv.slot, c + 12, 4, 2);
  assert.equal(m.cfgRead(drv.slot, c + 16, 4) & 0xffff, 1, 'num_queues through the window');
  m.cfgWrite(drv.slot, c + 8, 4, CC.DEVICE_STATUS);
  m.cfgWrite(drv.slot, c + 12, 4, 1);
  m.cfgWrite(drv.slot, c + 16, 4, 1);
  assert.equal(drv.status(), 1, 'status written through the window');
});

test('virtio-pci: odd-sized and 64-bit split accesses to the common config', () => {
  const { drv } = rngMachine();
  drv.probe();
  drv.setCommon(CC.QUEUE_SELECT, 2, 0);
  drv.setCommon(CC.QUEUE_DESC_LO, 4, 0x12345000);
  drv.setCommon(CC.QUEUE_DESC_HI, 4, 0x1);
  assert.equal(drv.common(CC.QUEUE_DESC_LO, 4), 0x12345000);
  assert.equal(drv.common(CC.QUEUE_DESC_HI, 4), 1);
  drv.setCommon(CC.QUEUE_DESC_LO + 1, 1, 0xab);
  assert.equal(drv.common(CC.QUEUE_DESC_LO, 4), 0x1234ab00);
  assert.equal(drv.common(CC.QUEUE_SIZE, 1), 0, '256 & 0xff');
  assert.equal(drv.common(CC.QUEUE_SIZE + 1, 1), 1, '256 >> 8');
});
