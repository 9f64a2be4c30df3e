// Every guests/asm/*.asm assembles (with Debian's nasm) to a 64 KiB firmware image whose last
// 16 bytes start with the reset-vector far jump to F000:<entry>.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { ASM_GUESTS, assembleGuest, GUEST_IMAGE_SIZE, listAsmGuests, RESET_VECTOR_OFFSET } from '../support/guests.js';

test('assembly guests: each one has an expected-output entry', async () => {
  assert.deepEqual(await listAsmGuests(), Object.keys(ASM_GUESTS).sort());
});

test('assembly guests: 64 KiB images with the reset vector jump in the last 16 bytes', async () => {
  const names = await listAsmGuests();
  assert.ok(names.length >= 6, `found ${names.join(', ')}`);
  for (const name of names) {
    const path = await assembleGuest(name);
    const img = await readFile(path);
    assert.equal(img.length, GUEST_IMAGE_SIZE, `${name}: image size`);
    const rv = img.subarray(RESET_VECTOR_OFFSET);
    assert.equal(rv[0], 0xea, `${name}: jmp far ptr16:16 at 0xfff0`);
    const offset = rv.readUInt16LE(1);
    const segment = rv.readUInt16LE(3);
    assert.equal(segment, 0xf000, `${name}: jumps into segment F000`);
    assert.ok(offset < RESET_VECTOR_OFFSET, `${name}: entry 0x${offset.toString(16)} is inside the image`);
    assert.notEqual(img[offset], 0, `${name}: there is code at the entry point`);
  }
});

test('assembly guests: assembling is cached by content', async () => {
  const a = await assembleGuest('hello');
  const b = await assembleGuest('hello');
  assert.equal(a, b);
  assert.match(a, /hello-[0-9a-f]{16}\.bin$/);
});
