import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GuestMemory, KiB, MiB } from '../../src/memory/guest-memory.js';
import { BootError } from '../../src/boot/boot-plan.js';
import { firmwareRomSize, loadFirmware } from '../../src/boot/firmware.js';

function image(size: number): Uint8Array {
  const b = Uint8Array.from({ length: size }, (_, i) => (i * 13 + (i >> 12)) & 0xff);
  // A recognizable reset vector: jmp far F000:E05B, as a PC BIOS has at its last 16 bytes.
  b.set([0xea, 0x5b, 0xe0, 0x00, 0xf0], size - 16);
  return b;
}

test('firmware size rules: a multiple of 4 KiB, from 4 KiB to 16 MiB', () => {
  assert.equal(firmwareRomSize(image(4 * KiB)), 4 * KiB);
  assert.equal(firmwareRomSize(image(2 * MiB)), 2 * MiB);
  assert.equal(firmwareRomSize(new Uint8Array(16 * MiB)), 16 * MiB);
  for (const size of [0, 100, 4 * KiB - 1, 4 * KiB + 1, 64 * KiB + 512, 16 * MiB + 4 * KiB]) {
    assert.throws(
      () => firmwareRomSize(new Uint8Array(size), 'bios.bin'),
      (e: unknown) => e instanceof BootError && /^bios\.bin: firmware of the wrong size \(\d+ bytes\): .*multiple of 4 KiB.*at least 4 KiB.*at most 16 MiB/.test(e.message),
      `size ${size}`,
    );
  }
});

test('the image ends at 4 GiB, its reset vector at 0xFFFFFFF0, and the CPU starts at F000:FFF0', () => {
  const fw = image(64 * KiB);
  const mem = new GuestMemory(4 * MiB, firmwareRomSize(fw));
  const plan = loadFirmware(mem, { firmware: fw, path: 'bios.bin' });
  assert.deepEqual(mem.read(2 ** 32 - fw.length, fw.length), fw);
  assert.equal(mem.readU8(0xfffffff0), 0xea);
  const c = plan.cpu;
  assert.equal(c.cs.selector, 0xf000);
  assert.equal(c.cs.base, 0xffff0000n);
  assert.equal(c.regs.rip, 0xfff0n);
  assert.equal(c.cr0 & 1n, 0n, 'real mode');
  // A small image appears whole below 1 MiB, ending at 0x100000.
  assert.deepEqual(mem.read(0x100000 - fw.length, fw.length), fw);
  assert.equal(mem.readU8(0xffff0), 0xea);
  assert.equal(mem.readU8(0x100000 - fw.length - 1), 0, 'nothing below the alias');
  assert.match(plan.summary, /bios\.bin/);
});

test('a large image: only its last 128 KiB appear at 0xE0000-0xFFFFF', () => {
  const fw = image(2 * MiB);
  const mem = new GuestMemory(4 * MiB, firmwareRomSize(fw));
  mem.fill(0xd0000, 0x10000, 0x77);
  loadFirmware(mem, { firmware: fw, path: 'OVMF.fd' });
  assert.deepEqual(mem.read(0xe0000, 128 * KiB), fw.subarray(fw.length - 128 * KiB));
  assert.equal(mem.readU8(0xdffff), 0x77, 'RAM below 0xE0000 untouched');
  assert.deepEqual(mem.read(0xffe00000, fw.length), fw);
});

test('mismatched ROM region and too little RAM are boot errors', () => {
  const fw = image(64 * KiB);
  assert.throws(() => loadFirmware(new GuestMemory(4 * MiB, 128 * KiB), { firmware: fw, path: 'b' }), /firmwareRomSize/);
  assert.throws(() => loadFirmware(new GuestMemory(512 * KiB, 64 * KiB), { firmware: fw, path: 'b' }), /at least 1 MiB/);
  assert.throws(() => loadFirmware(new GuestMemory(4 * MiB), { firmware: new Uint8Array(100), path: 'b' }), /wrong size/);
});
