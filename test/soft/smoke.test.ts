import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runAsm } from './harness.js';

test('smoke: 64-bit add and hlt', async () => {
  const r = await runAsm('long', 'mov rax, 5\nadd rax, 7\nhlt');
  assert.deepEqual(r.exit, { kind: 'hlt' });
  assert.equal(r.state.regs.rax, 12n);
});
