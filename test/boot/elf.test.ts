import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BootError } from '../../src/boot/boot-plan.js';
import {
  elfLoadExtent, elfNotes, findElfNote, isElf, loadElfSegments, parseElf, placeElfSegments, pvhEntry, PT_LOAD, PT_NOTE,
  XEN_ELFNOTE_PHYS32_ENTRY,
} from '../../src/boot/elf.js';
import { GuestMemory, MiB } from '../../src/memory/guest-memory.js';
import { makeElf, makeVmlinux, sampleData } from './fixtures.js';

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

test('an image already in guest RAM is placed as loadElfSegments would, and the rest of it is cleared', () => {
  // Headers take 64 + 4 * 56 bytes; the segments' file bytes follow one another from 0x120.
  const parts = [sampleData(0x3000, 1), sampleData(0x2000, 2), sampleData(0x1800, 3), sampleData(0x1000, 4)];
  const G = 0x100000; // where the image lies
  const off = [0x120, 0x3120, 0x5120, 0x6920];
  const image = makeElf({
    cls: 64, entry: G + off[0],
    segments: [
      { paddr: G + off[0], data: parts[0] }, // already in place
      { paddr: G + off[2], data: parts[1], memsz: 0x5000 }, // lands on segment 2's bytes ...
      { paddr: G + off[1], data: parts[2] }, // ... which land on segment 1's: a cycle
      { paddr: G + 0x20000, data: parts[3] }, // elsewhere
    ],
  });
  const elfSeen = parseElf(image, 'img');
  assert.deepEqual(elfSeen.segments.map((s) => s.offset), off);
  const mem = new GuestMemory(4 * MiB);
  mem.fill(0, 4 * MiB, 0xaa);
  mem.write(G, image);
  const junk = { gpa: G + 0x10000, len: 0x1000 }; // e.g. where a decoder's input was
  mem.write(junk.gpa, sampleData(junk.len, 5));
  const ext = placeElfSegments(mem, parseElf(mem.slice(G, image.length), 'img'), G, [{ gpa: G, len: image.length }, junk], 'img');
  assert.deepEqual(ext, { start: G + off[0], end: G + 0x21000 });
  assert.deepEqual(mem.read(G + off[0], 0x3000), parts[0]);
  assert.deepEqual(mem.read(G + off[2], 0x2000), parts[1]);
  assert.ok(mem.slice(G + off[2] + 0x2000, 0x3000).every((b) => b === 0), '.bss zeroed');
  assert.deepEqual(mem.read(G + off[1], 0x1800), parts[2]);
  assert.deepEqual(mem.read(G + 0x20000, 0x1000), parts[3]);
  assert.ok(mem.slice(G, off[0]).every((b) => b === 0), 'the ELF headers are cleared');
  assert.ok(mem.slice(G + off[1] + 0x1800, off[2] - off[1] - 0x1800).every((b) => b === 0), 'a gap between segments is cleared');
  assert.ok(mem.slice(junk.gpa, junk.len).every((b) => b === 0), 'the other scratch range is cleared');
  assert.ok(mem.slice(junk.gpa + junk.len, 0x1000).every((b) => b === 0xaa), 'nothing past the scratch ranges');
  assert.ok(mem.slice(G + 0xa120, junk.gpa - G - 0xa120).every((b) => b === 0xaa), 'nothing between them');
  assert.ok(mem.slice(0, G).every((b) => b === 0xaa), 'nothing below the image');
});

test('segments that each fit but add up to more than RAM are refused, not copied for minutes', () => {
  const data = sampleData(0x10000, 7);
  const segments = Array.from({ length: 80 }, () => ({ paddr: 0x100000, data }));
  const image = makeElf({ cls: 64, entry: 0x100000, segments });
  const mem = new GuestMemory(4 * MiB); // 80 x 64 KiB = 5 MiB of segments, all at 1 MiB
  assertBootError(() => loadElfSegments(mem, parseElf(image, 'img'), 'img'), /add up to more than the guest's 4 MiB/);
  const ok = new GuestMemory(16 * MiB);
  loadElfSegments(ok, parseElf(image, 'img'), 'img'); // the same file fits 16 MiB: overlapping segments are legal
  assert.deepEqual(ok.read(0x100000, data.length), data);
  // More segments than placeElfSegments orders one by one: written from a copy of the image.
  ok.fill(0, 16 * MiB, 0);
  ok.write(0x400000, image);
  placeElfSegments(ok, parseElf(ok.slice(0x400000, image.length), 'img'), 0x400000, [{ gpa: 0x400000, len: image.length }], 'img');
  assert.deepEqual(ok.read(0x100000, data.length), data);
  assert.ok(ok.slice(0x400000, image.length).every((b) => b === 0), 'the image is cleared');
});
