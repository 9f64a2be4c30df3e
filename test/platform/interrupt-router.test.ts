import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApicBus } from '../../src/devices/platform/apic-bus.js';
import { InterruptRouter, ioapicPinForGsi, picIrqForGsi } from '../../src/devices/platform/interrupt-router.js';
import { IoApic } from '../../src/devices/platform/ioapic.js';
import { PicPair } from '../../src/devices/platform/pic8259.js';

function setup() {
  const pic = new PicPair();
  for (const [dev, base, cascade] of [[pic.masterPorts, 0x20, 0x04], [pic.slavePorts, 0x28, 0x02]] as const) {
    dev.pioWrite(0, 1, 0x11);
    dev.pioWrite(1, 1, base);
    dev.pioWrite(1, 1, cascade);
    dev.pioWrite(1, 1, 0x01);
  }
  const sent: { vector: number; level: boolean }[] = [];
  const ioapic = new IoApic({ deliver: (m) => sent.push({ vector: m.vector, level: m.level }) });
  new ApicBus().addEoiListener(ioapic);
  const router = new InterruptRouter(pic, ioapic);
  const route = (pin: number, low: number): void => {
    ioapic.mmioWrite(0, 4, 0x10 + 2 * pin);
    ioapic.mmioWrite(0x10, 4, low);
  };
  return { pic, ioapic, router, sent, route };
}

test('the ISA -> GSI map: GSI 2 is PIC IRQ 0 and pin 2, IRQ 2 is unreachable', () => {
  assert.equal(picIrqForGsi(2), 0);
  assert.equal(ioapicPinForGsi(2), 2);
  assert.equal(picIrqForGsi(0), 0);
  assert.equal(ioapicPinForGsi(0), 2);
  for (let g = 0; g < 24; g++) assert.notEqual(picIrqForGsi(g), 2);
  assert.equal(picIrqForGsi(9), 9);
  assert.equal(picIrqForGsi(16), -1);
  assert.equal(ioapicPinForGsi(23), 23);
  assert.equal(ioapicPinForGsi(24), -1);
});

test('GSI 2 (the PIT) reaches PIC IRQ 0 and I/O APIC pin 2', () => {
  const { pic, router, sent, route } = setup();
  route(2, 0x30);
  router.setIrq(2, true);
  router.setIrq(2, false);
  assert.equal(pic.acknowledge(), 0x20, 'PIC IRQ 0');
  assert.deepEqual(sent, [{ vector: 0x30, level: false }]);
  assert.equal(router.level(2), false);
});

test('GSI 9 (the SCI, level) reaches both controllers as a level', () => {
  const { pic, router, sent, route } = setup();
  pic.elcrPorts.pioWrite(1, 1, 0x02);
  route(9, 0x8039);
  router.setIrq(9, true);
  assert.equal(router.level(9), true);
  assert.equal(pic.acknowledge(), 0x29);
  assert.deepEqual(sent, [{ vector: 0x39, level: true }]);
  router.setIrq(9, false);
  assert.equal(pic.intrPending(), false);
});

test('GSI 16-23 go to the I/O APIC only; bad GSIs are ignored', () => {
  const { pic, router, sent, route } = setup();
  route(20, 0x54);
  router.setIrq(20, true);
  assert.equal(pic.intrPending(), false);
  assert.deepEqual(sent, [{ vector: 0x54, level: false }]);
  for (const g of [-1, 24, 1000, 2.5, NaN]) router.setIrq(g, true);
  assert.equal(pic.intrPending(), false);
  assert.equal(sent.length, 1);
});
