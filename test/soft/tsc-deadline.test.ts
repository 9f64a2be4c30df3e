// IA32_TSC_DEADLINE on the software CPU: with a local APIC, CPUID.1:ECX.TSC_Deadline[24] is set
// and RDMSR/WRMSR 0x6E0 reach the APIC model's hooks (with the CPU's TSC offset, so the APIC can
// turn the deadline into clock time); without one the bit is clear and the MSR raises #GP
// (SDM vol. 3A 10.5.4.1, vol. 4 table 2-2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allocateSoftMemory } from '../../src/accel/soft/soft-memory.js';
import { SoftCpu } from '../../src/accel/soft/soft-cpu.js';
import { Bus } from '../../src/devices/bus.js';
import { assemble, writeTables, stateFor, stubRip, CODE } from './harness.js';

const PROGRAM = `
  mov eax, 1
  cpuid
  mov r8, rcx
  mov ecx, 0x6e0
  mov eax, 0x89abcdef
  mov edx, 1
  wrmsr
  rdmsr
  hlt
`;

async function run(withApic: boolean) {
  const mem = allocateSoftMemory(4 * 1024 * 1024);
  const writes: [bigint, bigint][] = [];
  const cpu = new SoftCpu({
    mem, bus: new Bus(), apic: withApic,
    tscDeadline: withApic ? { read: () => 0x1234_5678_9an, write: (v, off) => { writes.push([v, off]); } } : undefined,
  });
  writeTables(mem);
  mem.write(CODE, await assemble(PROGRAM, 64, CODE));
  const s = stateFor('long');
  cpu.setState(s);
  cpu.run(10_000);
  return { state: cpu.getState(), writes };
}

test('soft CPU: TSC-deadline MSR and CPUID bit follow the local APIC', async () => {
  const withApic = await run(true);
  assert.equal((withApic.state.regs.r8 >> 24n) & 1n, 1n, 'CPUID.1:ECX.TSC_Deadline');
  assert.equal(withApic.writes.length, 1);
  assert.equal(withApic.writes[0][0], 0x1_89ab_cdefn, 'EDX:EAX reaches the APIC');
  assert.equal(withApic.state.regs.rax, 0x3456_789an, 'RDMSR: low half from the APIC');
  assert.equal(withApic.state.regs.rdx, 0x12n, 'RDMSR: high half');

  const without = await run(false);
  assert.equal((without.state.regs.r8 >> 24n) & 1n, 0n, 'no APIC: no TSC-deadline bit');
  assert.equal(without.state.regs.rip, stubRip(13), 'WRMSR 0x6E0 without an APIC raises #GP');
  assert.equal(without.writes.length, 0);
});
