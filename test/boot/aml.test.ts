import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  buffer, decodePkgLength, device, eisaId, integer, irqNoFlags, method, name, nameSeg, nameString, pkg, pkgLength, ret,
  scope, string,
} from '../../src/boot/acpi/aml.js';

test('PkgLength: one byte up to 63, then 2, 3, 4 bytes, counting itself', () => {
  assert.deepEqual([...pkgLength(0)], [1]);
  assert.deepEqual([...pkgLength(62)], [63]);
  // 63 body bytes + 2 length bytes = 65 = 0x41: lead 0x40 | 1, then 0x41 >> 4 = 4.
  assert.deepEqual([...pkgLength(63)], [0x41, 0x04]);
  for (const n of [0, 1, 62, 63, 64, 100, 4092, 4093, 4094, 5000, 1 << 20, (1 << 28) - 5]) {
    const enc = pkgLength(n);
    const dec = decodePkgLength(enc, 0);
    assert.equal(dec.size, enc.length);
    assert.equal(dec.length, n + enc.length, `body ${n}`);
  }
  assert.throws(() => pkgLength(2 ** 28), RangeError);
});

test('integers use the smallest encoding', () => {
  assert.deepEqual([...integer(0)], [0x00]);
  assert.deepEqual([...integer(1)], [0x01]);
  assert.deepEqual([...integer(5)], [0x0a, 5]);
  assert.deepEqual([...integer(0x3f8)], [0x0b, 0xf8, 0x03]);
  assert.deepEqual([...integer(0x12345678)], [0x0c, 0x78, 0x56, 0x34, 0x12]);
  assert.deepEqual([...integer(0x100000000n)], [0x0e, 0, 0, 0, 0, 1, 0, 0, 0]);
  assert.throws(() => integer(-1), RangeError);
});

test('names: segments are padded, root and multi-segment paths are prefixed', () => {
  assert.deepEqual([...nameSeg('_S5')], [0x5f, 0x53, 0x35, 0x5f]);
  assert.deepEqual([...nameString('\\_S5_')], [0x5c, 0x5f, 0x53, 0x35, 0x5f]);
  assert.deepEqual([...nameString('\\_SB_.COM1')], [0x5c, 0x2e, ...Buffer.from('_SB_COM1')]);
  assert.equal(nameString('\\_SB_.PCI0.ISA_')[1], 0x2f);
  assert.equal(nameString('\\_SB_.PCI0.ISA_')[2], 3);
  assert.deepEqual([...nameString('^FOO')], [0x5e, 0x46, 0x4f, 0x4f, 0x5f]);
  assert.throws(() => nameSeg('1ABC'), RangeError);
  assert.throws(() => nameSeg('abcd'), RangeError);
});

test('EisaId compresses like ASL', () => {
  assert.deepEqual([...eisaId('PNP0501')], [0x0c, 0x41, 0xd0, 0x05, 0x01]); // 0x0105D041
  assert.deepEqual([...eisaId('PNP0A03')], [0x0c, 0x41, 0xd0, 0x0a, 0x03]); // 0x030AD041
});

test('containers wrap their bodies with a PkgLength', () => {
  const p = pkg([integer(5), integer(5), integer(0), integer(0)]);
  assert.deepEqual([...p], [0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00]);
  assert.deepEqual([...name('_UID', integer(1))], [0x08, 0x5f, 0x55, 0x49, 0x44, 0x01]);
  assert.deepEqual([...string('ab')], [0x0d, 0x61, 0x62, 0x00]);
  assert.deepEqual([...buffer(Uint8Array.of(0x79, 0))], [0x11, 0x05, 0x0a, 0x02, 0x79, 0x00]);
  const d = device('COM1', [name('_UID', integer(1))]);
  assert.deepEqual([...d.subarray(0, 3)], [0x5b, 0x82, d.length - 2]);
  const s = scope('\\_SB_', [d]);
  assert.equal(s[0], 0x10);
  assert.equal(decodePkgLength(s, 1).length, s.length - 1);
  const m = method('_STA', 0, false, [ret(integer(0x0f))]);
  assert.deepEqual([...m], [0x14, 0x09, 0x5f, 0x53, 0x54, 0x41, 0x00, 0xa4, 0x0a, 0x0f]);
  // A long body takes a two-byte PkgLength.
  const big = buffer(new Uint8Array(100));
  assert.equal(big[1] >> 6, 1);
  assert.equal(decodePkgLength(big, 1).length, big.length - 1);
  assert.deepEqual([...irqNoFlags([4])], [0x22, 0x10, 0x00]);
});
