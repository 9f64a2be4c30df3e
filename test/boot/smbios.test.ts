// SMBIOS tables (src/boot/smbios.ts), read back the way an OS reads them (DSP0134 5.2.2 and 6.1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildSmbios } from '../../src/boot/smbios.js';
import { SMBIOS_START } from '../../src/vmm/platform-layout.js';

interface Structure { type: number; handle: number; formatted: Uint8Array; strings: string[] }

/** Walk the structure table: header, formatted area, string set (ended by a double NUL). */
function walk(table: Uint8Array): Structure[] {
  const out: Structure[] = [];
  let p = 0;
  while (p < table.length) {
    const type = table[p]!;
    const length = table[p + 1]!;
    assert.ok(length >= 4, `structure at ${p}: length ${length}`);
    const formatted = table.subarray(p, p + length);
    let q = p + length;
    const strings: string[] = [];
    if (table[q] === 0 && table[q + 1] === 0) {
      q += 2;
    } else {
      while (table[q] !== 0) {
        const end = table.indexOf(0, q);
        strings.push(Buffer.from(table.subarray(q, end)).toString('latin1'));
        q = end + 1;
      }
      q += 1;
    }
    out.push({ type, handle: formatted[2]! | (formatted[3]! << 8), formatted, strings });
    p = q;
    if (type === 127) break;
  }
  assert.equal(p, table.length, 'the table ends with the end-of-table structure');
  return out;
}

const str = (s: Structure, offset: number) => s.strings[s.formatted[offset]! - 1];

test('SMBIOS: a 64-bit entry point at 0xF0000 whose bytes sum to zero, pointing at the structure table', () => {
  const { addr, bytes } = buildSmbios({ name: 'web', version: '1.2.3' });
  assert.equal(addr, SMBIOS_START);
  assert.equal(addr, 0xf0000, 'where Linux starts scanning (dmi_scan_machine)');
  const ep = bytes.subarray(0, 0x18);
  assert.equal(Buffer.from(ep.subarray(0, 5)).toString('latin1'), '_SM3_');
  assert.equal(ep[6], 0x18);
  assert.deepEqual([ep[7], ep[8], ep[9]], [3, 0, 0], 'SMBIOS 3.0.0');
  assert.equal(ep.reduce((a, b) => (a + b) & 0xff, 0), 0, 'checksum');
  const v = new DataView(ep.buffer, ep.byteOffset, ep.byteLength);
  const tableAddr = Number(v.getBigUint64(0x10, true));
  const length = v.getUint32(0x0c, true);
  assert.equal(tableAddr % 16, 0);
  const table = bytes.subarray(tableAddr - addr, tableAddr - addr + length);
  assert.equal(tableAddr - addr + length, bytes.length);
  const s = walk(table);
  assert.deepEqual(s.map((x) => x.type), [0, 1, 3, 127]);
  assert.equal(new Set(s.map((x) => x.handle)).size, s.length, 'handles are unique');
  const [bios, system, chassis] = s as [Structure, Structure, Structure];
  assert.equal(bios.formatted[1], 0x18, 'type 0: the SMBIOS 2.4+ length');
  assert.equal(str(bios, 4), 'tsvm');
  assert.equal(str(bios, 5), '1.2.3');
  assert.match(str(bios, 8)!, /^\d\d\/\d\d\/\d{4}$/, 'release date mm/dd/yyyy');
  assert.equal(bios.formatted[0x13]! & 0x10, 0x10, 'BIOS characteristics extension byte 2, bit 4: a virtual machine');
  assert.equal(system.formatted[1], 0x1b, 'type 1: the SMBIOS 2.4+ length');
  assert.equal(str(system, 4), 'tsvm');
  assert.equal(str(system, 5), 'Virtual Machine');
  assert.equal(str(system, 7), 'web', 'the serial number is the VM name');
  assert.equal(str(chassis, 4), 'tsvm');
  assert.equal(chassis.formatted[5], 0x01, 'chassis type: other');
});

test('SMBIOS: the system UUID is a stable version-5 UUID of the VM name', () => {
  const uuid = (name: string) => {
    const { bytes } = buildSmbios({ name, version: '0' });
    const system = walk(bytes.subarray(0x20)).find((x) => x.type === 1)!;
    return system.formatted.subarray(8, 24);
  };
  assert.deepEqual(uuid('a'), uuid('a'));
  assert.notDeepEqual(uuid('a'), uuid('b'));
  const u = uuid('a');
  // SMBIOS stores the first three fields little-endian (DSP0134 7.2.1): the version nibble is the
  // high nibble of byte 7, the variant the top bits of byte 8
  assert.equal(u[7]! >> 4, 5, 'version 5');
  assert.equal(u[8]! >> 6, 2, 'RFC 4122 variant');
});
