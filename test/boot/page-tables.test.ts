import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  GDT_CODE32, GDT_CODE64, GDT_DATA, maxIdentityMapBytes, setupLongModePaging, writeBootGdt,
} from '../../src/boot/page-tables.js';
import { GiB, GuestMemory, MiB } from '../../src/memory/guest-memory.js';
import { BOOT_CMDLINE_ADDR, BOOT_GDT_ADDR, BOOT_PAGE_TABLES_ADDR, EBDA_START } from '../../src/vmm/platform-layout.js';

/** Decode a descriptor's fields (SDM vol. 3A figure 3-8). */
function decode(d: bigint): { base: number; limit: number; type: number; s: number; dpl: number; p: number; l: number; db: number; g: number } {
  const lo = Number(d & 0xffffffffn);
  const hi = Number(d >> 32n);
  return {
    limit: (lo & 0xffff) | (hi & 0xf0000),
    base: ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) >>> 0,
    type: (hi >>> 8) & 0xf, s: (hi >>> 12) & 1, dpl: (hi >>> 13) & 3, p: (hi >>> 15) & 1,
    l: (hi >>> 21) & 1, db: (hi >>> 22) & 1, g: (hi >>> 23) & 1,
  };
}

test('GDT descriptors: flat 64-bit code at 0x10, flat data at 0x18', () => {
  const code = decode(GDT_CODE64);
  assert.deepEqual(code, { base: 0, limit: 0xfffff, type: 0xb, s: 1, dpl: 0, p: 1, l: 1, db: 0, g: 1 });
  const data = decode(GDT_DATA);
  assert.deepEqual(data, { base: 0, limit: 0xfffff, type: 0x3, s: 1, dpl: 0, p: 1, l: 0, db: 1, g: 1 });
  const code32 = decode(GDT_CODE32);
  assert.equal(code32.l, 0);
  assert.equal(code32.db, 1);
  const mem = new GuestMemory(8 * MiB);
  const g = writeBootGdt(mem, '32');
  assert.equal(g.gdtBase, BigInt(BOOT_GDT_ADDR));
  assert.equal(g.gdtLimit, 31);
  assert.equal(mem.readU64(BOOT_GDT_ADDR + 0x10), GDT_CODE32);
});

test('identity map of the first 4 GiB with 2 MiB pages', () => {
  const mem = new GuestMemory(64 * MiB);
  mem.fill(BOOT_PAGE_TABLES_ADDR, 0x8000, 0xff); // stale data must not survive
  const s = setupLongModePaging(mem);
  assert.equal(s.cr3, BigInt(BOOT_PAGE_TABLES_ADDR));
  assert.equal(s.mappedBytes, 4 * GiB);
  assert.equal(s.gdtBase, BigInt(BOOT_GDT_ADDR));
  assert.equal(s.gdtLimit, 4 * 8 - 1);
  assert.equal(mem.readU64(BOOT_GDT_ADDR), 0n);
  assert.equal(mem.readU64(BOOT_GDT_ADDR + 8), 0n);
  assert.equal(mem.readU64(BOOT_GDT_ADDR + 0x10), GDT_CODE64);
  assert.equal(mem.readU64(BOOT_GDT_ADDR + 0x18), GDT_DATA);

  const pml4 = BOOT_PAGE_TABLES_ADDR;
  const pdpt = pml4 + 0x1000;
  assert.equal(mem.readU64(pml4), BigInt(pdpt) | 3n);
  for (let i = 1; i < 512; i++) assert.equal(mem.readU64(pml4 + i * 8), 0n);
  for (let g = 0; g < 4; g++) {
    const pd = pdpt + 0x1000 * (1 + g);
    assert.equal(mem.readU64(pdpt + g * 8), BigInt(pd) | 3n);
    for (const i of [0, 1, 255, 511]) {
      assert.equal(mem.readU64(pd + i * 8), BigInt(g * GiB + i * 2 * MiB) | 0x83n, `PD ${g} entry ${i}`);
    }
  }
  assert.equal(mem.readU64(pdpt + 4 * 8), 0n);
  // A translation by hand: 0x1234_5678 -> PML4[0] -> PDPT[0] -> PD0[0x91] -> 2 MiB page 0x12200000.
  const va = 0x12345678;
  const pde = mem.readU64(pdpt + 0x1000 + ((va >>> 21) & 511) * 8);
  assert.equal((pde & ~0x1fffffn & 0xfffffffffn) + BigInt(va & 0x1fffff), BigInt(va));
});

test('the tables stay below the command line and the EBDA', () => {
  const end = BOOT_PAGE_TABLES_ADDR + (2 + maxIdentityMapBytes() / GiB) * 0x1000;
  assert.ok(end <= Math.min(EBDA_START, BOOT_CMDLINE_ADDR > BOOT_PAGE_TABLES_ADDR ? BOOT_CMDLINE_ADDR : EBDA_START));
  assert.ok(maxIdentityMapBytes() >= 4 * GiB);
  assert.throws(() => setupLongModePaging(new GuestMemory(8 * MiB), maxIdentityMapBytes() + GiB), /past/);
});
