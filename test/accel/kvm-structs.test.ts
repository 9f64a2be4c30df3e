import { test } from 'node:test';
import assert from 'node:assert/strict';
import { longModeState, resetState } from '../../src/accel/cpu-state.js';
import { buildCpuid } from '../../src/accel/kvm/cpuid.js';
import { decodeRegs, decodeSregs, encodeMsrs, encodeRegs, encodeSregs } from '../../src/accel/kvm/kvm-structs.js';

test('kvm_regs: 18 u64 in api.rst order, round trip', () => {
  const s = longModeState(0x1000200n, 0x9000n, 0x500n, 31);
  s.regs.rsi = 0x7000n;
  s.regs.r15 = 0xffffffffffffffffn;
  const b = encodeRegs(s.regs);
  assert.equal(b.length, 144);
  const v = new DataView(b.buffer);
  assert.equal(v.getBigUint64(4 * 8, true), 0x7000n, 'rsi is the 5th register');
  assert.equal(v.getBigUint64(16 * 8, true), 0x1000200n, 'rip follows r15');
  assert.equal(v.getBigUint64(17 * 8, true), 2n, 'rflags last, reserved bit 1 set');
  assert.deepEqual(decodeRegs(b), s.regs);
});

test('kvm_sregs: 312 bytes; segments, tables and control registers at their offsets; round trip', () => {
  const s = longModeState(0x1000200n, 0x9000n, 0x500n, 31);
  const b = encodeSregs(s);
  assert.equal(b.length, 312);
  const v = new DataView(b.buffer);
  // cs is the first kvm_segment: selector at +12, type at +14, l at +19.
  assert.equal(v.getUint16(12, true), 0x10);
  assert.equal(v.getUint8(14), 0xb);
  assert.equal(v.getUint8(19), 1);
  // gdt (kvm_dtable) follows the 8 segments.
  assert.equal(v.getBigUint64(192, true), 0x500n);
  assert.equal(v.getUint16(200, true), 31);
  // cr0 at 224, cr3 at 240, efer at 264.
  assert.equal(v.getBigUint64(224, true), s.cr0);
  assert.equal(v.getBigUint64(240, true), 0x9000n);
  assert.equal(v.getBigUint64(264, true), s.efer);
  const back = decodeSregs(b);
  assert.equal(back.cs.l, true);
  assert.equal(back.cr3, 0x9000n);
  assert.equal(back.gdt.limit, 31);
  const r = decodeSregs(encodeSregs(resetState()));
  assert.equal(r.cs.base, 0xffff0000n);
  assert.equal(r.cs.selector, 0xf000);
});

test('kvm_msrs header and entries', () => {
  const b = encodeMsrs([[0x1a0, 1n], [0x277, 0x0007040600070406n]]);
  const v = new DataView(b.buffer);
  assert.equal(v.getUint32(0, true), 2);
  assert.equal(v.getUint32(8, true), 0x1a0);
  assert.equal(v.getBigUint64(16, true), 1n);
  assert.equal(v.getUint32(24, true), 0x277);
});

test('CPUID per vCPU: APIC ID in leaf 1 EBX, hypervisor bit, CX16 hidden on request', () => {
  const entry = (fn: number, ecx: number) => {
    const e = new Uint8Array(40);
    const v = new DataView(e.buffer);
    v.setUint32(0, fn, true);
    v.setUint32(16, 0x00010800, true); // ebx
    v.setUint32(20, ecx, true);
    return e;
  };
  const supported = new Uint8Array([...entry(0, 0), ...entry(1, 1 << 13)]);
  const out = buildCpuid(supported, { vcpuId: 3, cpus: 4, pvmQuirks: true });
  const v = new DataView(out.buffer);
  assert.equal(v.getUint32(0, true), 2);
  const leaf1 = 8 + 40;
  assert.equal(v.getUint32(leaf1 + 16, true) >>> 24, 3);
  assert.equal((v.getUint32(leaf1 + 16, true) >>> 16) & 0xff, 4);
  assert.equal(v.getUint32(leaf1 + 20, true) & (1 << 13), 0);
  assert.notEqual(v.getUint32(leaf1 + 20, true) & (1 << 31), 0);
  const keep = new DataView(buildCpuid(supported, { vcpuId: 0, cpus: 1, pvmQuirks: false }).buffer);
  assert.notEqual(keep.getUint32(leaf1 + 20, true) & (1 << 13), 0);
});
