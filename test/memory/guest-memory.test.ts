import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GiB, GuestMemory, GuestMemoryError, HIGH_RAM_START, MiB, MMIO_HOLE_START } from '../../src/memory/guest-memory.js';

test('small guests have one RAM region from 0', () => {
  const m = new GuestMemory(64 * MiB);
  assert.deepEqual(m.regions, [{ gpa: 0, size: 64 * MiB, offset: 0, readonly: false }]);
  assert.equal(m.gpaToOffset(0x1000, 8), 0x1000);
  assert.equal(m.gpaToOffset(64 * MiB - 4, 4), 64 * MiB - 4);
  assert.equal(m.gpaToOffset(64 * MiB - 4, 8), -1, 'a range running past the end is not RAM');
  assert.equal(m.gpaToOffset(64 * MiB), -1);
});

test('firmware ROM ends at 4 GiB and is read-only for the guest', () => {
  const m = new GuestMemory(16 * MiB, 64 * 1024);
  const rom = m.regions.find((r) => r.readonly)!;
  assert.equal(rom.gpa, HIGH_RAM_START - 64 * 1024);
  const img = new Uint8Array(64 * 1024);
  img[img.length - 16] = 0xea;
  m.loadRom(img);
  assert.equal(m.readU8(0xfffffff0), 0xea);
  assert.equal(m.writableOffset(0xfffffff0), -1);
  assert.equal(m.writableOffset(0x1000), 0x1000);
  assert.throws(() => m.loadRom(new Uint8Array(4096)), GuestMemoryError);
});

test('the layout leaves the 32-bit MMIO hole free and puts the rest above 4 GiB', () => {
  // Only the region arithmetic is checked: the buffer is allocated lazily by the OS.
  const size = MMIO_HOLE_START + 256 * MiB;
  let m: GuestMemory;
  try {
    m = new GuestMemory(size);
  } catch (e) {
    assert.ok(e instanceof GuestMemoryError);
    return;
  }
  assert.equal(m.regions.length, 2);
  assert.deepEqual(m.regions[1], { gpa: 4 * GiB, size: 256 * MiB, offset: MMIO_HOLE_START, readonly: false });
  assert.equal(m.gpaToOffset(MMIO_HOLE_START), -1, 'the hole is not RAM');
  assert.equal(m.gpaToOffset(4 * GiB + 16), MMIO_HOLE_START + 16);
});

test('views share bytes across rebasing and across threads (the same SharedArrayBuffer)', () => {
  const m = new GuestMemory(2 * MiB);
  const r = m.rebased(4096);
  r.writeU32(0x100, 0xdeadbeef);
  assert.equal(new DataView(m.buffer).getUint32(4096 + 0x100, true), 0xdeadbeef);
  const again = GuestMemory.fromShared(r.toShared());
  assert.equal(again.readU32(0x100), 0xdeadbeef);
  again.writeU64(0x200, 0x1122334455667788n);
  assert.equal(r.readU64(0x200), 0x1122334455667788n);
});

test('bad sizes and out-of-range accesses give clear errors', () => {
  assert.throws(() => new GuestMemory(4 * GiB), /more than tsvm supports yet.*use a smaller --memory/);
  assert.throws(() => new GuestMemory(1000), /multiple of 4 KiB/);
  assert.throws(() => new GuestMemory(4096, 100), /firmware size/);
  const m = new GuestMemory(1 * MiB);
  assert.throws(() => m.readU32(MiB), /not RAM/);
  assert.throws(() => m.write(MiB - 2, new Uint8Array(4)), /not RAM/);
});
