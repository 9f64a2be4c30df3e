import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BootError } from '../../src/boot/boot-plan.js';
import {
  elfLoadExtent, elfNotes, findElfNote, isElf, loadElfSegments, parseElf, pvhEntry, PT_LOAD, PT_NOTE,
  XEN_ELFNOTE_PHYS32_ENTRY,
} from '../../src/boot/elf.js';
import { GuestMemory, MiB } from '../../src/memory/guest-memory.js';
import { makeElf, makeVmlinux } from './fixtures.js';

function assertBootError(f: () => unknown, re?: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof BootError, `expected a BootError, got ${String(e)}`);
    if (re) assert.match(e.message, re);
    return true;
  });
}

test('ELF64 vmlinux-like image: header, segments, notes and PVH entry', () => {
  const bytes = makeVmlinux();
  assert.ok(isElf(bytes));
  const elf = parseElf(bytes, 'vmlinux');
  assert.equal(elf.class, 64);
  assert.equal(elf.machine, 62);
  assert.equal(elf.entry, 0x1000000);
  const loads = elf.segments.filter((s) => s.type === PT_LOAD);
  assert.equal(loads.length, 2);
  assert.equal(loads[0].paddr, 0x1000000);
  assert.equal(loads[0].vaddr64, 0xffffffff81000000n);
  assert.equal(loads[1].memsz, 0x3000);
  assert.equal(elf.segments.filter((s) => s.type === PT_NOTE).length, 1);
  assert.deepEqual(elfNotes(elf).map((n) => [n.name, n.type]), [['Xen', 6], ['Xen', 18]]);
  assert.equal(Buffer.from(findElfNote(elf, 'Xen', 6)!).toString('latin1'), 'linux\0');
  assert.equal(pvhEntry(elf), 0x1000850);
  assert.deepEqual(elfLoadExtent(elf), { start: 0x1000000, end: 0x1203000 });
  assert.equal(pvhEntry(parseElf(makeVmlinux({ pvh: false }), 'vmlinux')), undefined);
});

test('loading copies file data to p_paddr and zeroes bss', () => {
  const mem = new GuestMemory(64 * MiB);
  mem.fill(0x1200000, 0x3000, 0xee); // stale bytes where the bss goes
  const elf = parseElf(makeVmlinux(), 'vmlinux');
  const extent = loadElfSegments(mem, elf, 'vmlinux');
  assert.deepEqual(extent, { start: 0x1000000, end: 0x1203000 });
  assert.equal(mem.readU8(0x1000000), 3);
  assert.equal(mem.readU8(0x1000001), 10);
  assert.equal(mem.readU8(0x1200fff), 0xdd);
  assert.equal(mem.readU8(0x1201000), 0);
  assert.equal(mem.readU8(0x1202fff), 0);
});

test('ELF32 (multiboot-style) image with a 4-byte PVH note', () => {
  const desc = new Uint8Array(4);
  new DataView(desc.buffer).setUint32(0, 0x100040, true);
  const bytes = makeElf({
    cls: 32, entry: 0x100000,
    segments: [{ paddr: 0x100000, data: Uint8Array.from([1, 2, 3, 4]), memsz: 0x2000 }],
    notes: [{ name: 'GNU', type: 3, desc: new Uint8Array(20) }, { name: 'Xen', type: XEN_ELFNOTE_PHYS32_ENTRY, desc }],
  });
  const elf = parseElf(bytes, 'k.elf');
  assert.equal(elf.class, 32);
  assert.equal(elf.machine, 3);
  assert.equal(elf.entry, 0x100000);
  assert.equal(pvhEntry(elf), 0x100040);
  const mem = new GuestMemory(4 * MiB);
  loadElfSegments(mem, elf, 'k.elf');
  assert.deepEqual([...mem.read(0x100000, 5)], [1, 2, 3, 4, 0]);
});

test('bad ELF files give clear errors', () => {
  assertBootError(() => parseElf(Uint8Array.from([1, 2, 3, 4]), 'x'), /not an ELF file/);
  const good = makeVmlinux();
  const bigEndian = good.slice();
  bigEndian[5] = 2;
  assertBootError(() => parseElf(bigEndian, 'x'), /big-endian/);
  const arm = good.slice();
  arm[18] = 183; // EM_AARCH64
  assertBootError(() => parseElf(arm, 'x'), /not x86/);
  assertBootError(() => parseElf(good.subarray(0, 100), 'x'), /program headers lie outside|truncated/);
  const overlong = good.slice();
  new DataView(overlong.buffer).setBigUint64(64 + 32, 1n << 40n, true); // first segment's filesz
  assertBootError(() => parseElf(overlong, 'x'), /segment 0 lies outside the file/);
  const shrunk = good.slice();
  new DataView(shrunk.buffer).setBigUint64(64 + 40, 1n, true); // memsz < filesz
  assertBootError(() => parseElf(shrunk, 'x'), /memsz smaller than filesz/);
  const corruptNote = good.slice();
  // namesz of the first note far too large: notes are parsed up to the damage, never beyond.
  const noteSeg = parseElf(good, 'x').segments.find((s) => s.type === PT_NOTE)!;
  new DataView(corruptNote.buffer).setUint32(noteSeg.offset, 0xffffffff, true);
  assert.deepEqual(elfNotes(parseElf(corruptNote, 'x')), []);
});

test('a kernel larger than guest RAM asks for more memory; the MMIO hole is named', () => {
  const elf = parseElf(makeVmlinux(), 'vmlinux');
  assertBootError(() => loadElfSegments(new GuestMemory(16 * MiB), elf, 'vmlinux'),
    /vmlinux needs more memory: .*at least 19 MiB of RAM but has 16 MiB; use --memory/);
  const hole = parseElf(makeElf({ cls: 32, entry: 0xd0000000, segments: [{ paddr: 0xd0000000, data: new Uint8Array(16) }] }), 'k');
  assertBootError(() => loadElfSegments(new GuestMemory(16 * MiB), hole, 'k'), /MMIO hole/);
});
