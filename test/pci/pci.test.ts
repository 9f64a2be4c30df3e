import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus } from '../../src/devices/bus.js';
import { NullIrqSink } from '../../src/devices/irq.js';
import { ResetControl } from '../../src/devices/legacy/reset-control.js';
import { PciRoot } from '../../src/devices/pci/pci-root.js';
import { PciDevice, type BarHandler } from '../../src/devices/pci/pci-device.js';
import { MsixCapability } from '../../src/devices/pci/msix.js';
import { PCI_ECAM_BASE, PCI_MMIO_WINDOW_BASE, PCI_MMIO_WINDOW_SIZE, intxGsi } from '../../src/devices/pci/layout.js';
import { buildMcfg, pciDsdtAml } from '../../src/devices/pci/acpi.js';
import { byteSum } from '../../src/boot/acpi/table.js';
import { buildAcpiTables } from '../../src/boot/acpi/builder.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { RecordingMachineControl } from '../../src/vmm/machine-control.js';
import { RecordingMsi, TestMachine } from '../virtio/guest-driver.js';

class Scratch implements BarHandler {
  readonly mem = new Uint8Array(0x4000);
  read(offset: number, size: 1 | 2 | 4): number {
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.mem[offset + i] << (8 * i);
    return v >>> 0;
  }
  write(offset: number, size: 1 | 2 | 4, value: number): void {
    for (let i = 0; i < size; i++) this.mem[offset + i] = (value >>> (8 * i)) & 0xff;
  }
}

class TestDevice extends PciDevice {
  readonly s32 = new Scratch();
  readonly s64 = new Scratch();
  readonly io = new Scratch();
  constructor() {
    super('testdev', { vendorId: 0x1234, deviceId: 0x5678, classCode: 0xff0000, revision: 3 });
    this.addBar(0, 'mem32', 0x1000, this.s32);
    this.addBar(2, 'mem64', 0x4000, this.s64, true);
    this.addBar(4, 'io', 0x20, this.io);
    this.setInterruptPin(1);
  }
  intx(level: boolean): void { this.setIntx(level); }
}

test('pci: host bridge 00:00.0 through 0xCF8/0xCFC and ECAM; missing devices read all ones', () => {
  const m = new TestMachine();
  assert.equal(m.cfgRead(0, 0, 4), 0x29c08086);
  assert.equal(m.cfgRead(0, 0x0a, 2), 0x0600, 'class: host bridge');
  assert.equal(m.cfgRead(0, 0x0e, 1), 0, 'header type 0');
  assert.equal(m.cfgRead(5, 0, 4), 0xffffffff, 'empty slot');
  assert.equal(m.bus.mmioRead(PCI_ECAM_BASE, 4), 0x29c08086);
  assert.equal(m.bus.mmioRead(PCI_ECAM_BASE + (3 << 15), 4), 0xffffffff);
  assert.equal(m.bus.mmioRead(PCI_ECAM_BASE + (1 << 12), 4), 0xffffffff, 'function 1 absent');
  // Enable bit clear: data port reads all ones.
  m.bus.pioWrite(0xcf8, 4, 0);
  assert.equal(m.bus.pioRead(0xcfc, 4), 0xffffffff);
  // Linux's pci_check_type1: byte write at 0xCFB, CONFIG_ADDRESS reads back.
  m.bus.pioWrite(0xcfb, 1, 1);
  m.bus.pioWrite(0xcf8, 4, 0x80000000);
  assert.equal(m.bus.pioRead(0xcf8, 4), 0x80000000);
  // Byte/word reads of config space at odd offsets.
  assert.equal(m.cfgRead(0, 1, 1), 0x80);
  assert.equal(m.cfgRead(0, 2, 2), 0x29c0);
});

test('pci: 0xCF9 byte accesses reach the reset control register', () => {
  const bus = new Bus();
  const control = new RecordingMachineControl();
  const root = new PciRoot({ bus, irq: new NullIrqSink() });
  root.attachToBus(new ResetControl(control));
  bus.pioWrite(0xcf8, 4, 0x80000000);
  bus.pioWrite(0xcf9, 1, 0x02);
  assert.equal(bus.pioRead(0xcf9, 1), 0x02);
  assert.equal(bus.pioRead(0xcf8, 4), 0x80000000, 'CONFIG_ADDRESS untouched by the byte write');
  bus.pioWrite(0xcf9, 1, 0x06);
  assert.deepEqual(control.requests, [{ kind: 'reset' }]);
});

test('pci: BAR sizing of 32-bit, 64-bit and I/O BARs as Linux does it; decode follows the command register', () => {
  const m = new TestMachine();
  const dev = new TestDevice();
  const slot = m.attach(dev);
  assert.equal(slot, 1);
  const b0 = m.sizeBar(slot, 0);
  assert.equal(b0.size, 0x1000);
  assert.equal(b0.is64, false);
  const b2 = m.sizeBar(slot, 2);
  assert.equal(b2.size, 0x4000);
  assert.equal(b2.is64, true);
  assert.equal(m.cfgRead(slot, 0x18, 4) & 0xf, 0xc, '64-bit prefetchable type bits');
  const b4 = m.sizeBar(slot, 4);
  assert.equal(b4.io, true);
  assert.equal(b4.size, 0x20);
  for (const b of [b0, b2]) {
    assert.ok(b.addr >= PCI_MMIO_WINDOW_BASE && b.addr + b.size <= PCI_MMIO_WINDOW_BASE + PCI_MMIO_WINDOW_SIZE);
    assert.equal(b.addr % b.size, 0, 'naturally aligned');
  }
  // Not decoded until the command register enables memory space.
  assert.equal(m.bus.mmioRead(b0.addr, 4), 0xffffffff);
  m.cfgWrite(slot, 4, 2, 0x3);
  m.bus.mmioWrite(b0.addr + 8, 4, 0xdeadbeef);
  assert.equal(dev.s32.read(8, 4), 0xdeadbeef);
  m.bus.mmioWrite(b2.addr + 0x3ffc, 4, 0x12345678);
  assert.equal(dev.s64.read(0x3ffc, 4), 0x12345678);
  m.bus.pioWrite(b4.addr + 4, 2, 0xabcd);
  assert.equal(dev.io.read(4, 2), 0xabcd);
  // Move BAR0: the old address stops decoding, the new one starts.
  const moved = b0.addr + 0x100000;
  m.cfgWrite(slot, 0x10, 4, moved);
  assert.equal(m.bus.mmioRead(b0.addr + 8, 4), 0xffffffff);
  assert.equal(m.bus.mmioRead(moved + 8, 4), 0xdeadbeef);
  // Decode off: nothing mapped.
  m.cfgWrite(slot, 4, 2, 0);
  assert.equal(m.bus.mmioRead(moved + 8, 4), 0xffffffff);
  // A 64-bit BAR above 4 GiB.
  m.cfgWrite(slot, 0x18, 4, 0);
  m.cfgWrite(slot, 0x1c, 4, 0x10);
  m.cfgWrite(slot, 4, 2, 2);
  assert.equal(m.bus.mmioRead(0x10_0000_0000 + 0x3ffc, 4), 0x12345678);
});

test('pci: a BAR moved onto another device stays unmapped, never throws', () => {
  const m = new TestMachine();
  const a = new TestDevice();
  const b = new TestDevice();
  const sa = m.attach(a);
  const sb = m.attach(b);
  m.cfgWrite(sa, 4, 2, 2);
  m.cfgWrite(sb, 4, 2, 2);
  const aAddr = (m.cfgRead(sa, 0x10, 4) & ~0xf) >>> 0;
  m.cfgWrite(sb, 0x10, 4, aAddr);
  assert.ok(m.logs.some((l) => l.includes('overlaps')));
  a.s32.write(0, 4, 0x11111111);
  assert.equal(m.bus.mmioRead(aAddr, 4), 0x11111111, 'the first device keeps its range');
  // Move it over the ECAM window too.
  m.cfgWrite(sb, 0x10, 4, PCI_ECAM_BASE);
  assert.equal(m.bus.mmioRead(PCI_ECAM_BASE, 4), 0x29c08086);
});

test('pci: capability list walk, read-only IDs, write masks, status W1C', () => {
  const m = new TestMachine();
  const msi = new RecordingMsi();
  const dev = new TestDevice();
  new MsixCapability(dev, { vectors: 4, tableBar: 0, tableOffset: 0, pbaBar: 0, pbaOffset: 0x800 }, msi);
  const slot = m.attach(dev);
  assert.deepEqual(m.capabilities(slot).map((c) => c.id), [0x11]);
  m.cfgWrite(slot, 0, 4, 0);
  assert.equal(m.cfgRead(slot, 0, 4), 0x56781234, 'IDs are read-only');
  m.cfgWrite(slot, 0x08, 4, 0);
  assert.equal(m.cfgRead(slot, 0x08, 1), 3, 'revision read-only');
  m.cfgWrite(slot, 0x3c, 1, 0x42);
  assert.equal(m.cfgRead(slot, 0x3c, 1), 0x42, 'interrupt line is writable');
  m.cfgWrite(slot, 0x3d, 1, 0x4);
  assert.equal(m.cfgRead(slot, 0x3d, 1), 1, 'interrupt pin is read-only');
  m.cfgWrite(slot, 0x30, 4, 0xffffffff);
  assert.equal(m.cfgRead(slot, 0x30, 4), 0, 'no expansion ROM');
  // Random garbage writes everywhere never throw, and the IDs survive.
  let seed = 1;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8);
  for (let i = 0; i < 5000; i++) {
    const size = ([1, 2, 4] as const)[rnd() % 3];
    m.bus.pioWrite(0xcf8, 4, (0x80000000 | (rnd() & 0xffffff)) >>> 0);
    m.bus.pioWrite(0xcfc + (rnd() & 3), size, rnd());
    m.bus.mmioWrite(PCI_ECAM_BASE + (rnd() % 0x100000), size, rnd());
    m.bus.mmioRead(PCI_ECAM_BASE + (rnd() % 0x100000), size);
  }
  assert.equal(m.cfgRead(slot, 0, 4), 0x56781234);
  assert.equal(m.cfgRead(0, 0, 4), 0x29c08086);
});

test('pci: INTx goes to the swizzled GSI, is wire-ORed, and obeys Interrupt Disable', () => {
  const m = new TestMachine();
  const a = new TestDevice();
  const sa = m.attach(a, 3);
  const b = new TestDevice();
  const sb = m.attach(b, 11); // (11 + 0) % 8 == 3 == (3 + 0) % 8: same GSI
  const gsi = intxGsi(sa, 0);
  assert.equal(gsi, intxGsi(sb, 0));
  assert.equal(m.cfgRead(sa, 0x3c, 1), gsi);
  a.intx(true);
  b.intx(true);
  a.intx(false);
  assert.deepEqual(m.irq.log, [{ gsi, level: true }], 'still asserted by b');
  b.intx(false);
  assert.deepEqual(m.irq.log.at(-1), { gsi, level: false });
  assert.equal(m.cfgRead(sa, 6, 2) & 8, 0);
  a.intx(true);
  assert.equal(m.cfgRead(sa, 6, 2) & 8, 8, 'status.interrupt');
  m.cfgWrite(sa, 4, 2, 0x400);
  assert.deepEqual(m.irq.log.at(-1), { gsi, level: false }, 'interrupt disable lowers the pin');
  assert.equal(m.cfgRead(sa, 6, 2) & 8, 8, 'status still shows the request');
  m.cfgWrite(sa, 4, 2, 0);
  assert.deepEqual(m.irq.log.at(-1), { gsi, level: true });
});

test('msix: masking, pending bits, function mask, delivery on unmask', () => {
  const m = new TestMachine();
  const dev = new TestDevice();
  const msix = new MsixCapability(dev, { vectors: 3, tableBar: 0, tableOffset: 0, pbaBar: 0, pbaOffset: 0x800 }, m.msi);
  // Route the table/PBA through BAR0 (the test device's scratch handler is replaced).
  (dev.bars[0] as { handler: BarHandler }).handler = {
    read: (o, s) => (o >= 0x800 ? msix.pbaHandler.read(o - 0x800, s) : msix.tableHandler.read(o, s)),
    write: (o, s, v) => (o >= 0x800 ? msix.pbaHandler.write(o - 0x800, s, v) : msix.tableHandler.write(o, s, v)),
  };
  const slot = m.attach(dev);
  const cap = m.capabilities(slot)[0].off;
  assert.equal(m.cfgRead(slot, cap + 2, 2) & 0x7ff, 2, 'table size - 1');
  assert.equal(m.cfgRead(slot, cap + 4, 4), 0, 'table in BAR0 at 0');
  assert.equal(m.cfgRead(slot, cap + 8, 4), 0x800);
  const bar = m.sizeBar(slot, 0).addr;
  m.cfgWrite(slot, 4, 2, 2);
  assert.equal(m.bus.mmioRead(bar + 12, 4), 1, 'vectors start masked');
  assert.equal(msix.notify(0), false, 'MSI-X disabled: caller falls back to INTx');
  m.cfgWrite(slot, cap + 2, 2, 0x8000);
  assert.ok(msix.enabled);
  m.bus.mmioWrite(bar + 16, 4, 0xfee01000);
  m.bus.mmioWrite(bar + 16 + 8, 4, 0x4041);
  assert.equal(msix.notify(1), true);
  assert.equal(m.msi.log.length, 0, 'masked: pending');
  assert.equal(m.bus.mmioRead(bar + 0x800, 4), 0b10, 'PBA bit 1');
  m.bus.mmioWrite(bar + 16 + 12, 4, 0);
  assert.deepEqual(m.msi.log, [{ address: 0xfee01000, data: 0x4041 }], 'sent on unmask');
  assert.equal(m.bus.mmioRead(bar + 0x800, 4), 0);
  // Function mask.
  m.cfgWrite(slot, cap + 2, 2, 0xc000);
  msix.notify(1);
  assert.equal(m.msi.log.length, 1);
  assert.ok(msix.isPending(1));
  m.cfgWrite(slot, cap + 2, 2, 0x8000);
  assert.equal(m.msi.log.length, 2);
  // Out-of-range vectors and odd accesses are harmless.
  assert.equal(msix.notify(7), false);
  m.bus.mmioWrite(bar + 0x2ff, 4, 0xffffffff);
  m.bus.mmioWrite(bar + 0x800, 4, 0xffffffff);
  assert.equal(m.bus.mmioRead(bar + 0x800, 4), 0, 'PBA is read-only');
  m.bus.mmioWrite(bar + 16 + 12, 4, 0xfffffffe);
  assert.equal(m.bus.mmioRead(bar + 16 + 12, 4), 0, 'reserved vector control bits read 0');
});

test('acpi: MCFG checksums and points at the ECAM window; DSDT AML with PCI0 builds into the tables', () => {
  const mcfg = buildMcfg();
  assert.equal(String.fromCharCode(...mcfg.subarray(0, 4)), 'MCFG');
  assert.equal(byteSum(mcfg), 0);
  const v = new DataView(mcfg.buffer);
  assert.equal(Number(v.getBigUint64(44, true)), PCI_ECAM_BASE);
  assert.equal(mcfg[54], 0);
  assert.equal(mcfg[55], 0);
  const aml = pciDsdtAml();
  const text = String.fromCharCode(...aml);
  for (const s of ['PCI0', '_PRT', '_CRS', '_SEG', '_BBN', 'PRES']) assert.ok(text.includes(s), s);
  const mem = new GuestMemory(2 << 20);
  const layout = buildAcpiTables(mem, { cpus: 1, extraTables: [mcfg], extraDsdtAml: [aml] });
  const m = layout.tables.find((t) => t.signature === 'MCFG');
  assert.ok(m);
  const d = layout.tables.find((t) => t.signature === 'DSDT');
  assert.ok(d);
  assert.equal(byteSum(mem.read(d.addr, d.length)), 0);
  // The _PRT entry for slot 1 pin A: Package(4){0x0001FFFF, Zero, Zero, GSI}.
  const needle = [0x12, 0x0b, 0x04, 0x0c, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00, 0x0a, intxGsi(1, 0)];
  const dsdt = mem.read(d.addr, d.length);
  const found = dsdt.findIndex((_, i) => needle.every((b, k) => dsdt[i + k] === b));
  assert.ok(found > 0, '_PRT entry for 00:01 INTA');
});
