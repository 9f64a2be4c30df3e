import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApicBus } from '../../src/devices/platform/apic-bus.js';
import { IoApic } from '../../src/devices/platform/ioapic.js';
import { LocalApic } from '../../src/devices/platform/lapic.js';
import { PicPair } from '../../src/devices/platform/pic8259.js';
import { FakeTime, pickSize, rng } from './fake-time.js';

function setup(cpus = 2, pic?: PicPair) {
  const ft = new FakeTime();
  const bus = new ApicBus();
  const ioapic = new IoApic(bus, 0);
  bus.addEoiListener(ioapic);
  const apics: LocalApic[] = [];
  for (let i = 0; i < cpus; i++) {
    const a = new LocalApic({ id: i, bus, clock: ft.clock, bsp: i === 0, extInt: pic });
    a.mmioWrite(0xf0, 4, 0x1ff);
    apics.push(a);
  }
  const read = (index: number): number => {
    ioapic.mmioWrite(0x00, 4, index);
    return ioapic.mmioRead(0x10, 4);
  };
  const write = (index: number, value: number): void => {
    ioapic.mmioWrite(0x00, 4, index);
    ioapic.mmioWrite(0x10, 4, value);
  };
  const route = (pin: number, low: number, dest = 0): void => {
    write(0x11 + 2 * pin, dest << 24);
    write(0x10 + 2 * pin, low);
  };
  return { ioapic, apics, read, write, route };
}

const eoi = (a: LocalApic): void => a.mmioWrite(0xb0, 4, 0);

test('ID, version (0x11, 24 entries), arbitration, reset state masked', () => {
  const { ioapic, read, write } = setup();
  assert.equal(read(0x00), 0);
  assert.equal(read(0x01), 0x00170011);
  write(0x00, 0x0f000000 | 0xffffff);
  assert.equal(read(0x00), 0x0f000000);
  assert.equal(read(0x02), 0x0f000000);
  write(0x01, 0);
  assert.equal(read(0x01), 0x00170011, 'version is read-only');
  for (let pin = 0; pin < 24; pin++) {
    assert.equal(read(0x10 + 2 * pin), 0x10000);
    assert.equal(read(0x11 + 2 * pin), 0);
  }
  assert.equal(read(0x40), 0, 'beyond the table');
  ioapic.mmioWrite(0, 4, 0x12);
  assert.equal(ioapic.mmioRead(0, 4), 0x12, 'IOREGSEL reads back');
  assert.equal(ioapic.mmioRead(0x20, 4), 0);
  // Byte-wide IOWIN access reaches the selected register's bytes.
  write(0x10, 0x10031);
  ioapic.mmioWrite(0x00, 4, 0x10);
  ioapic.mmioWrite(0x12, 1, 0x00); // unmask through byte 2
  assert.equal(read(0x10), 0x31);
  assert.equal(ioapic.mmioRead(0x10, 1), 0x31);
});

test('edge entry delivers its vector to the destination APIC; masked edges are lost', () => {
  const { ioapic, apics, route, read } = setup();
  route(4, 0x34, 1); // fixed, physical, edge, active high, dest APIC 1
  ioapic.setIrq(4, true);
  ioapic.setIrq(4, false);
  assert.equal(apics[0].hasInterrupt(), false);
  assert.equal(apics[1].acknowledge(), 0x34);
  assert.equal(read(0x18) & 0x5000, 0, 'no delivery status, no remote IRR');
  eoi(apics[1]);
  ioapic.setIrq(4, true);
  assert.equal(apics[1].acknowledge(), 0x34);
  eoi(apics[1]);
  ioapic.setIrq(4, true); // held high: no new edge
  assert.equal(apics[1].hasInterrupt(), false);
  ioapic.setIrq(4, false);
  route(4, 0x10034, 1); // masked
  ioapic.setIrq(4, true);
  ioapic.setIrq(4, false);
  route(4, 0x34, 1);
  assert.equal(apics[1].hasInterrupt(), false, 'lost while masked');
});

test('level entry: remote IRR until EOI, re-delivery while asserted, none after', () => {
  const { ioapic, apics, route, read } = setup();
  route(9, 0x8000 | 0x39, 0); // level, fixed, dest 0
  ioapic.setIrq(9, true);
  assert.equal(read(0x10 + 18) & 0x4000, 0x4000, 'remote IRR set');
  const a = apics[0];
  assert.equal(a.acknowledge(), 0x39);
  assert.equal(((a.mmioRead(0x180 + 0x10, 4) >>> (0x39 - 32)) & 1), 1, 'TMR set for a level vector');
  eoi(a);
  assert.equal(read(0x10 + 18) & 0x4000, 0x4000, 'still asserted: delivered again');
  assert.equal(a.acknowledge(), 0x39);
  ioapic.setIrq(9, false);
  eoi(a);
  assert.equal(read(0x10 + 18) & 0x4000, 0, 'remote IRR cleared by the EOI broadcast');
  assert.equal(a.hasInterrupt(), false);
  // Unmasking an asserted level pin delivers it.
  route(9, 0x18000 | 0x39, 0);
  ioapic.setIrq(9, true);
  assert.equal(a.hasInterrupt(), false);
  route(9, 0x8000 | 0x39, 0);
  assert.equal(a.acknowledge(), 0x39);
  // Remote IRR is read-only.
  route(9, 0x8000 | 0x39, 0);
  assert.equal(read(0x10 + 18) & 0x4000, 0x4000);
});

test('logical destination, lowest priority, NMI and INIT delivery modes', () => {
  const { ioapic, apics, route } = setup(3);
  apics.forEach((a, i) => a.mmioWrite(0xd0, 4, (1 << i) << 24));
  route(5, 0x800 | 0x45, 0x04); // logical, flat, APIC 2
  ioapic.setIrq(5, true);
  assert.equal(apics[2].acknowledge(), 0x45);
  assert.equal(apics[0].hasInterrupt(), false);
  apics[0].mmioWrite(0x80, 4, 0x20);
  apics[2].mmioWrite(0x80, 4, 0x30);
  route(6, 0x900 | 0x46, 0x05); // lowest priority among APICs 0 and 2
  ioapic.setIrq(6, true);
  assert.equal(apics[0].hasInterrupt(), true);
  route(7, 0x400, 1); // NMI to APIC 1 (physical)
  ioapic.setIrq(7, true);
  assert.equal(apics[1].takeNmi(), true);
  route(10, 0x500, 0xff); // INIT, broadcast
  ioapic.setIrq(10, true);
  assert.ok(apics.every((a) => a.takeInit()));
});

test('ExtINT delivery mode hands the INTA to the PIC', () => {
  const pic = new PicPair();
  pic.masterPorts.pioWrite(0, 1, 0x11);
  pic.masterPorts.pioWrite(1, 1, 0x20);
  pic.masterPorts.pioWrite(1, 1, 0x04);
  pic.masterPorts.pioWrite(1, 1, 0x01);
  const { ioapic, apics, route } = setup(2, pic);
  apics[0].mmioWrite(0x350, 4, 0x10700); // LINT0 masked: only the IOAPIC path is left
  route(0, 0x700, 0);
  pic.setIrq(3, true);
  assert.equal(apics[0].hasInterrupt(), false);
  ioapic.setIrq(0, true); // the PIC's INTR on pin 0
  assert.equal(apics[0].hasInterrupt(), true);
  assert.equal(apics[0].acknowledge(), 0x23);
});

test('hostile MMIO accesses and pin wiggles never throw', () => {
  const { ioapic, apics } = setup();
  const r = rng(82093);
  for (let i = 0; i < 30000; i++) {
    const off = r() % 4 === 0 ? r() % 0x1000 : [0, 0x10][r() & 1] + (r() % 4);
    const size = pickSize(r());
    if (r() & 1) ioapic.mmioWrite(off, size, r());
    else assert.ok(ioapic.mmioRead(off, size) <= 0xffffffff);
    if (r() % 3 === 0) ioapic.setIrq((r() % 30) - 3, (r() & 1) === 1);
    if (r() % 5 === 0) ioapic.eoi(r() & 0xff);
    for (const a of apics) if (a.hasInterrupt()) a.acknowledge();
    if (r() % 7 === 0) for (const a of apics) eoi(a);
  }
  ioapic.setIrq(NaN, true);
});
