import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PostPort } from '../../src/devices/legacy/post-port.js';

test('post-port: writes are accepted and ignored, reads are all ones', () => {
  const p = new PostPort();
  p.pioWrite(0, 1, 0x42);
  assert.equal(p.lastCode, 0x42);
  assert.equal(p.pioRead(0, 1), 0xff);
  assert.equal(p.pioRead(0, 2), 0xffff);
  assert.equal(p.pioRead(0, 4), 0xffffffff);
});

test('post-port: hostile input never throws', () => {
  const p = new PostPort();
  const sizes = [1, 2, 4] as const;
  for (let i = 0; i < 5000; i++) {
    p.pioWrite(i % 7, sizes[i % 3], i * 7919);
    assert.ok(p.pioRead(i % 5, sizes[i % 3]) > 0);
  }
});
