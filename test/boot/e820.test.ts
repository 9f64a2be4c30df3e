import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildE820, E820_ACPI, E820_RAM, E820_RESERVED, E820_ZEROPAGE_ENTRY_SIZE, writeE820ZeroPage,
} from '../../src/boot/e820.js';
import { GiB, GuestMemory, MiB } from '../../src/memory/guest-memory.js';
import { EBDA_START } from '../../src/vmm/platform-layout.js';

test('512 MiB guest: low RAM, reserved EBDA..1 MiB, RAM above', () => {
  const mem = new GuestMemory(512 * MiB);
  assert.deepEqual(buildE820(mem), [
    { addr: 0, size: 0x9fc00, type: E820_RAM },
    { addr: 0x9fc00, size: 0x100000 - 0x9fc00, type: E820_RESERVED },
    { addr: 0x100000, size: 511 * MiB, type: E820_RAM },
  ]);
  assert.equal(EBDA_START, 0x9fc00);
});

test('a guest larger than 3 GiB gets RAM above 4 GiB; ROM is reserved', () => {
  // Describe the regions without allocating 4+ GiB: buildE820 only reads `regions`.
  const fake = {
    regions: [
      { gpa: 0, size: 3 * GiB, offset: 0, readonly: false },
      { gpa: 4 * GiB, size: 1 * GiB, offset: 3 * GiB, readonly: false },
      { gpa: 4 * GiB - 256 * 1024, size: 256 * 1024, offset: 4 * GiB, readonly: true },
    ],
  } as unknown as GuestMemory;
  assert.deepEqual(buildE820(fake), [
    { addr: 0, size: 0x9fc00, type: E820_RAM },
    { addr: 0x9fc00, size: 0x60400, type: E820_RESERVED },
    { addr: 0x100000, size: 3 * GiB - MiB, type: E820_RAM },
    { addr: 4 * GiB - 256 * 1024, size: 256 * 1024, type: E820_RESERVED },
    { addr: 4 * GiB, size: 1 * GiB, type: E820_RAM },
  ]);
});

test('caller ranges are carved out of RAM', () => {
  const mem = new GuestMemory(64 * MiB);
  const map = buildE820(mem, [
    { addr: 32 * MiB, size: MiB, type: E820_ACPI },
    { addr: 0xe0000, size: 0x10000, type: E820_RESERVED }, // inside the reserved BIOS area: merges away
  ]);
  assert.deepEqual(map, [
    { addr: 0, size: 0x9fc00, type: E820_RAM },
    { addr: 0x9fc00, size: 0x60400, type: E820_RESERVED },
    { addr: MiB, size: 31 * MiB, type: E820_RAM },
    { addr: 32 * MiB, size: MiB, type: E820_ACPI },
    { addr: 33 * MiB, size: 31 * MiB, type: E820_RAM },
  ]);
});

test('zero-page encoding: 20-byte packed entries {u64 addr, u64 size, u32 type}', () => {
  assert.equal(E820_ZEROPAGE_ENTRY_SIZE, 20);
  const buf = new DataView(new ArrayBuffer(64));
  writeE820ZeroPage(buf, 4, [
    { addr: 0x100000, size: 0x200000, type: 1 },
    { addr: 0x123456789a, size: 0x1000, type: 2 },
  ]);
  assert.equal(buf.getBigUint64(4, true), 0x100000n);
  assert.equal(buf.getBigUint64(12, true), 0x200000n);
  assert.equal(buf.getUint32(20, true), 1);
  assert.equal(buf.getBigUint64(24, true), 0x123456789an);
  assert.equal(buf.getBigUint64(32, true), 0x1000n);
  assert.equal(buf.getUint32(40, true), 2);
});
