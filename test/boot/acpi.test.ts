import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GuestMemory, MiB } from '../../src/memory/guest-memory.js';
import { BootError } from '../../src/boot/boot-plan.js';
import { buildAcpiTables } from '../../src/boot/acpi/builder.js';
import { FADT_OFF, FADT_SIZE } from '../../src/boot/acpi/fadt.js';
import { decodePkgLength } from '../../src/boot/acpi/aml.js';
import { newTable } from '../../src/boot/acpi/table.js';
import {
  ACPI_PM1_CNT, ACPI_PM1_EVT, ACPI_PM_TMR, ACPI_S5_SLP_TYP, ACPI_SCI_IRQ, ACPI_TABLES_END, ACPI_TABLES_START,
  IOAPIC_BASE, LAPIC_BASE, PIT_GSI, RESET_CONTROL_PORT,
} from '../../src/vmm/platform-layout.js';
import { findTable, scanRsdp, sig, sum8, table, xsdtEntries } from './acpi-helpers.js';

function build(cpus: number, extraTables?: Uint8Array[]) {
  const mem = new GuestMemory(16 * MiB);
  const layout = buildAcpiTables(mem, { cpus, extraTables });
  return { mem, layout };
}

test('the RSDP is first in the ACPI area, found by the 0xE0000-0xFFFFF scan, with both checksums', () => {
  const { mem, layout } = build(1);
  assert.equal(layout.rsdpAddr, ACPI_TABLES_START);
  assert.equal(layout.rsdpAddr % 16, 0);
  assert.equal(scanRsdp(mem), layout.rsdpAddr);
  const r = mem.read(layout.rsdpAddr, 36);
  assert.equal(sig(mem, layout.rsdpAddr, 8), 'RSD PTR ');
  assert.equal(sum8(r.subarray(0, 20)), 0, 'ACPI 1.0 checksum over 20 bytes');
  assert.equal(sum8(r), 0, 'extended checksum over 36 bytes');
  assert.equal(r[15], 2, 'revision 2');
  assert.equal(mem.readU32(layout.rsdpAddr + 20), 36, 'length');
  const xsdt = Number(mem.readU64(layout.rsdpAddr + 24));
  const rsdt = mem.readU32(layout.rsdpAddr + 16);
  assert.equal(sig(mem, xsdt), 'XSDT');
  assert.equal(sig(mem, rsdt), 'RSDT');
});

test('every table has a valid signature, length and checksum, and lies inside the ACPI area', () => {
  for (const cpus of [1, 2, 4, 64, 255]) {
    const { mem, layout } = build(cpus);
    const sigs = layout.tables.map((t) => t.signature);
    assert.deepEqual(sigs, ['RSD PTR ', 'FACS', 'DSDT', 'FACP', 'APIC', 'XSDT', 'RSDT']);
    for (const t of layout.tables) {
      assert.ok(t.addr >= ACPI_TABLES_START && t.addr + t.length <= ACPI_TABLES_END, `${t.signature} inside the area`);
      assert.equal(sig(mem, t.addr, t.signature.length), t.signature);
      if (t.signature === 'RSD PTR ') continue;
      // The FACS has a length but no checksum (ACPI 6.4 §5.2.10).
      assert.equal(mem.readU32(t.addr + 4), t.length, `${t.signature} header length`);
      if (t.signature !== 'FACS') assert.equal(sum8(table(mem, t.addr)), 0, `${t.signature} checksum`);
    }
  }
});

test('XSDT and RSDT list the FADT and MADT, each a valid table', () => {
  const { mem, layout } = build(2);
  const x = xsdtEntries(mem, layout.rsdpAddr);
  assert.deepEqual(x.map((a) => sig(mem, a)), ['FACP', 'APIC']);
  for (const a of x) assert.equal(sum8(table(mem, a)), 0);
  const rsdt = mem.readU32(layout.rsdpAddr + 16);
  const n = (mem.readU32(rsdt + 4) - 36) / 4;
  const r = Array.from({ length: n }, (_, i) => mem.readU32(rsdt + 36 + 4 * i));
  assert.deepEqual(r, x);
  assert.equal(mem.readU8(x[0] + 8), 6, 'FADT revision');
});

test('FADT fields sit at their ACPI 6.4 offsets', () => {
  const { mem, layout } = build(1);
  const f = findTable(mem, layout.rsdpAddr, 'FACP');
  const u8 = (o: number) => mem.readU8(f + o);
  const u16 = (o: number) => mem.readU16(f + o);
  const u32 = (o: number) => mem.readU32(f + o);
  const u64 = (o: number) => Number(mem.readU64(f + o));
  assert.equal(u32(4), FADT_SIZE);
  assert.equal(FADT_SIZE, 276);
  assert.equal(u8(FADT_OFF.minorVersion), 4);
  assert.equal(u16(46), ACPI_SCI_IRQ, 'SCI_INT');
  assert.equal(u32(48), 0, 'SMI_CMD: no SMM, always in ACPI mode');
  assert.equal(u32(56), ACPI_PM1_EVT, 'PM1a_EVT_BLK');
  assert.equal(u32(64), ACPI_PM1_CNT, 'PM1a_CNT_BLK');
  assert.equal(u32(76), ACPI_PM_TMR, 'PM_TMR_BLK');
  assert.equal(u32(60), 0, 'no PM1b');
  assert.deepEqual([u8(88), u8(89), u8(91)], [4, 2, 4], 'PM1_EVT_LEN, PM1_CNT_LEN, PM_TMR_LEN');
  const boot = u16(109);
  assert.equal(boot & 1, 1, 'LEGACY_DEVICES');
  assert.equal(boot & 2, 2, '8042');
  const flags = u32(112);
  assert.equal(flags & (1 << 0), 1 << 0, 'WBINVD');
  assert.equal(flags & (1 << 4), 0, 'PWR_BUTTON clear: fixed-feature power button present');
  assert.equal(flags & (1 << 5), 1 << 5, 'SLP_BUTTON set: no sleep button');
  assert.equal(flags & (1 << 10), 1 << 10, 'RESET_REG_SUP');
  assert.equal(flags & (1 << 6), 1 << 6, 'FIX_RTC: no RTC_STS in PM1');
  assert.equal(flags & (1 << 20), 0, 'not hardware-reduced');
  // RESET_REG: Generic Address Structure, system I/O, 8 bits, byte access, port 0xCF9.
  assert.deepEqual([u8(116), u8(117), u8(118), u8(119)], [1, 8, 0, 1]);
  assert.equal(u64(120), RESET_CONTROL_PORT);
  assert.equal(u8(128), 0x06, 'RESET_VALUE');
  // DSDT and FACS pointers.
  const dsdt = u32(40);
  assert.equal(u64(140), dsdt, 'X_DSDT == DSDT');
  assert.equal(sig(mem, dsdt), 'DSDT');
  const facs = u32(36);
  assert.equal(facs % 64, 0, 'FACS 64-byte aligned');
  assert.equal(sig(mem, facs), 'FACS');
  assert.equal(mem.readU32(facs + 4), 64);
  assert.equal(u64(132), 0, 'X_FIRMWARE_CTRL zero when FIRMWARE_CTRL is used');
  // Extended blocks: same ports, widths equal to the *_LEN fields.
  const gas = (o: number) => [u8(o), u8(o + 1), u8(o + 2), u64(o + 4)];
  assert.deepEqual(gas(148), [1, 32, 0, ACPI_PM1_EVT]);
  assert.deepEqual(gas(172), [1, 16, 0, ACPI_PM1_CNT]);
  assert.deepEqual(gas(208), [1, 32, 0, ACPI_PM_TMR]);
});

test('MADT: one enabled local APIC per vCPU, the IOAPIC, and the IRQ0 and SCI overrides', () => {
  for (const cpus of [1, 3, 8]) {
    const { mem, layout } = build(cpus);
    const m = findTable(mem, layout.rsdpAddr, 'APIC');
    assert.equal(mem.readU32(m + 36), LAPIC_BASE);
    assert.equal(mem.readU32(m + 40) & 1, 1, 'PCAT_COMPAT');
    const len = mem.readU32(m + 4);
    const entries: { type: number; off: number }[] = [];
    for (let off = 44; off < len; off += mem.readU8(m + off + 1)) {
      assert.ok(mem.readU8(m + off + 1) > 0, 'entry length');
      entries.push({ type: mem.readU8(m + off), off: m + off });
    }
    assert.equal(entries.length, cpus + 1 + 2);
    const lapics = entries.filter((e) => e.type === 0);
    assert.equal(lapics.length, cpus);
    lapics.forEach((e, i) => {
      assert.equal(mem.readU8(e.off + 1), 8);
      assert.equal(mem.readU8(e.off + 2), i, 'processor UID');
      assert.equal(mem.readU8(e.off + 3), i, 'APIC ID');
      assert.equal(mem.readU32(e.off + 4) & 1, 1, 'enabled');
    });
    const io = entries.filter((e) => e.type === 1);
    assert.equal(io.length, 1);
    assert.equal(mem.readU8(io[0].off + 1), 12);
    assert.equal(mem.readU32(io[0].off + 4), IOAPIC_BASE);
    assert.equal(mem.readU32(io[0].off + 8), 0, 'GSI base');
    const iso = entries.filter((e) => e.type === 2).map((e) => ({
      len: mem.readU8(e.off + 1), bus: mem.readU8(e.off + 2), src: mem.readU8(e.off + 3),
      gsi: mem.readU32(e.off + 4), flags: mem.readU16(e.off + 8),
    }));
    assert.deepEqual(iso, [
      { len: 10, bus: 0, src: 0, gsi: PIT_GSI, flags: 0 },
      // Polarity 01 (active high) | trigger 11 << 2 (level) = 0x0D.
      { len: 10, bus: 0, src: ACPI_SCI_IRQ, gsi: ACPI_SCI_IRQ, flags: 0x0d },
    ]);
  }
});

/** Decode an AML integer (ZeroOp, OneOp, Byte/Word/DWord prefixes) at `off`. */
function amlInt(b: Uint8Array, off: number): { value: number; size: number } {
  switch (b[off]) {
    case 0x00: return { value: 0, size: 1 };
    case 0x01: return { value: 1, size: 1 };
    case 0x0a: return { value: b[off + 1], size: 2 };
    case 0x0b: return { value: b[off + 1] | (b[off + 2] << 8), size: 3 };
    case 0x0c: return { value: new DataView(b.buffer, b.byteOffset).getUint32(off + 1, true), size: 5 };
    default: throw new Error(`not an integer opcode: 0x${b[off].toString(16)}`);
  }
}

function indexOf(hay: Uint8Array, needle: number[]): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

test('the DSDT holds a well-formed \\_S5 package naming ACPI_S5_SLP_TYP', () => {
  const { mem, layout } = build(1);
  const f = findTable(mem, layout.rsdpAddr, 'FACP');
  const dsdt = table(mem, mem.readU32(f + 40));
  assert.equal(sum8(dsdt), 0);
  assert.equal(dsdt[8], 2, 'DSDT revision 2 (64-bit integers)');
  // NameOp, RootChar, "_S5_", PackageOp.
  const at = indexOf(dsdt, [0x08, 0x5c, 0x5f, 0x53, 0x35, 0x5f, 0x12]);
  assert.ok(at > 36, '\\_S5 found in the AML body');
  const pl = decodePkgLength(dsdt, at + 7);
  const pkgEnd = at + 7 + pl.length;
  assert.ok(pkgEnd <= dsdt.length, 'package ends inside the table');
  let off = at + 7 + pl.size;
  const count = dsdt[off++];
  assert.ok(count >= 2);
  const values: number[] = [];
  for (let i = 0; i < count; i++) {
    const v = amlInt(dsdt, off);
    values.push(v.value);
    off += v.size;
  }
  assert.equal(off, pkgEnd, 'the PkgLength covers exactly the elements');
  assert.equal(values[0], ACPI_S5_SLP_TYP, 'SLP_TYPa');
  assert.equal(values[1], ACPI_S5_SLP_TYP, 'SLP_TYPb');
});

test('the DSDT describes COM1 as PNP0501 at 0x3F8 length 8, IRQ 4', () => {
  const { mem, layout } = build(1);
  const f = findTable(mem, layout.rsdpAddr, 'FACP');
  const dsdt = table(mem, mem.readU32(f + 40));
  assert.ok(indexOf(dsdt, [0x5b, 0x82]) > 0, 'a Device()');
  assert.ok(indexOf(dsdt, [0x43, 0x4f, 0x4d, 0x31]) > 0, 'named COM1');
  assert.ok(indexOf(dsdt, [0x0c, 0x41, 0xd0, 0x05, 0x01]) > 0, 'EisaId("PNP0501")');
  assert.ok(indexOf(dsdt, [0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08]) > 0, 'IO(Decode16, 0x3F8, 0x3F8, 1, 8)');
  assert.ok(indexOf(dsdt, [0x22, 0x10, 0x00, 0x79]) > 0, 'IRQNoFlags(){4} then the end tag');
});

test('extra tables are listed in the XSDT with their checksum fixed', () => {
  const { bytes } = newTable('MCFG', 60, 1);
  bytes[44] = 0x12; // some body byte; checksum left zero on purpose
  const { mem, layout } = build(2, [bytes]);
  const mcfg = findTable(mem, layout.rsdpAddr, 'MCFG');
  assert.equal(mem.readU32(mcfg + 4), 60);
  assert.equal(sum8(table(mem, mcfg)), 0);
  assert.equal(mem.readU8(mcfg + 44), 0x12);
  assert.ok(layout.tables.some((t) => t.signature === 'MCFG' && t.addr === mcfg));
  assert.equal(bytes[9], 0, "the caller's buffer is not modified");
});

test('bad extra tables and overflow give clear errors', () => {
  assert.throws(() => build(1, [new Uint8Array(10)]), BootError);
  assert.throws(() => build(1, [newTable('APIC', 40, 1).bytes]), /builds that table itself/);
  const lying = newTable('SSDT', 40, 1).bytes;
  assert.throws(() => build(1, [lying.subarray(0, 39)]), BootError);
  const huge = newTable('SSDT', 70000, 2).bytes;
  assert.throws(() => build(1, [huge]), (e: unknown) => e instanceof BootError && /ACPI tables need \d+ bytes/.test(e.message));
  assert.throws(() => build(0), BootError);
  assert.throws(() => build(256), BootError);
});

test('the builder refuses a guest without RAM at the ACPI area', () => {
  const mem = new GuestMemory(512 * 1024);
  assert.throws(() => buildAcpiTables(mem, { cpus: 1 }), /at least 1 MiB/);
});

test('rebuilding clears stale bytes in the ACPI area', () => {
  const mem = new GuestMemory(2 * MiB);
  mem.fill(ACPI_TABLES_START, ACPI_TABLES_END - ACPI_TABLES_START, 0xee);
  const layout = buildAcpiTables(mem, { cpus: 1 });
  const last = layout.tables[layout.tables.length - 1];
  assert.equal(mem.readU8(last.addr + last.length), 0);
  assert.equal(mem.readU8(ACPI_TABLES_END - 1), 0);
});
