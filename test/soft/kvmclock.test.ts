// The KVM paravirtual clock on the software CPU (src/accel/soft/as/kvmclock.ts; Linux
// Documentation/virt/kvm/x86/cpuid.rst and msr.rst): the hypervisor CPUID leaves, and the
// structures the host fills in when the guest writes MSR_KVM_SYSTEM_TIME_NEW / _WALL_CLOCK_NEW.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allocateSoftMemory } from '../../src/accel/soft/soft-memory.js';
import { SoftCpu } from '../../src/accel/soft/soft-cpu.js';
import { Bus } from '../../src/devices/bus.js';
import type { GuestMemory } from '../../src/memory/guest-memory.js';
import { assemble, writeTables, stateFor, stubRip, CODE, DATA } from './harness.js';

const TIME = DATA; // pvclock_vcpu_time_info (32 bytes)
const WALL = DATA + 0x100; // pvclock_wall_clock (12 bytes)

/** The guest's view of kvmclock: ns = system_time + ((tsc - tsc_timestamp) << shift) * mul >> 32. */
function pvclockNs(b: Buffer, tsc: bigint): bigint {
  const delta = tsc - b.readBigUInt64LE(8);
  const shift = b.readInt8(28);
  const scaled = shift >= 0 ? delta << BigInt(shift) : delta >> BigInt(-shift);
  return b.readBigUInt64LE(16) + ((scaled * BigInt(b.readUInt32LE(24))) >> 32n);
}

async function run(program: string, clockNs: () => number, before?: (mem: GuestMemory) => void) {
  const mem = allocateSoftMemory(4 * 1024 * 1024);
  const cpu = new SoftCpu({ mem, bus: new Bus(), nowNs: clockNs });
  writeTables(mem);
  mem.write(CODE, await assemble(program, 64, CODE));
  cpu.setState(stateFor('long'));
  before?.(mem);
  cpu.run(10_000);
  const read = (gpa: number, n: number) => Buffer.from(mem.read(gpa, n));
  return { state: cpu.getState(), read, cpu, mem };
}

test('kvmclock: CPUID shows a hypervisor with KVM\'s signature and only its clock features', async () => {
  const { state } = await run(`
    mov eax, 1
    cpuid
    mov r8, rcx
    mov eax, 0x40000000
    cpuid
    mov r9, rax
    mov r10, rbx
    mov r11, rcx
    mov r12, rdx
    mov eax, 0x40000001
    cpuid
    mov r13, rax
    mov r14, rdx
    hlt
  `, () => 0);
  const g = state.regs;
  assert.equal(g.r8 >> 31n, 1n, 'CPUID.1:ECX.hypervisor');
  assert.equal(g.r9, 0x40000001n, 'largest hypervisor leaf');
  const sig = Buffer.alloc(12);
  [g.r10, g.r11, g.r12].forEach((v, i) => sig.writeUInt32LE(Number(v), i * 4));
  assert.equal(sig.toString('latin1'), 'KVMKVMKVM\0\0\0');
  assert.equal(g.r13, (1n << 3n) | (1n << 24n), 'CLOCKSOURCE2 and CLOCKSOURCE_STABLE_BIT, nothing else');
  assert.equal(g.r14, 0n, 'no hints');
});

test('kvmclock: the system-time structure turns the TSC into the platform clock, and a TSC write restates it', async () => {
  let now = 5_000_000; // ns of the platform clock; each read moves it on 1 us
  const clock = () => (now += 1000);
  const { state, read } = await run(`
    mov ecx, 0x4b564d01
    mov eax, ${TIME + 1}        ; enable bit 0
    xor edx, edx
    wrmsr
    rdmsr
    mov r8, rax
    mov rsi, [${TIME}]          ; version and pad after the first update
    mov r9, rsi
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov r10, rax
    mov ecx, 0x10               ; IA32_TIME_STAMP_COUNTER: move the TSC ahead
    mov eax, 0
    mov edx, 1                  ; 2^32
    wrmsr
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov r11, rax
    mov ecx, 0x4b564d01         ; disable: the structure keeps what it had
    mov eax, ${TIME}
    xor edx, edx
    wrmsr
    mov ecx, 0x10
    xor eax, eax
    xor edx, edx
    wrmsr
    hlt
  `, clock);
  const g = state.regs;
  assert.equal(g.r8, BigInt(TIME + 1), 'RDMSR returns what was written');
  const first = Number(g.r9 & 0xffffffffn);
  assert.ok(first > 0 && first % 2 === 0, `an even, non-zero version after an update (${first})`);
  const b = read(TIME, 32);
  assert.equal(b.readUInt32LE(24), 0x80000000, 'tsc_to_system_mul');
  assert.equal(b.readInt8(28), 1, 'tsc_shift: 1 ns per tick');
  assert.equal(b[29], 1, 'flags: PVCLOCK_TSC_STABLE_BIT');
  const version = b.readUInt32LE(0);
  assert.ok(version > first && version % 2 === 0, `the TSC write bumped the version (${first} -> ${version})`);
  // After the TSC write the structure maps the new TSC values to the same clock as before: the
  // TSC read 2^32 when the platform clock was somewhere in the program's run.
  const atWrite = pvclockNs(b, 1n << 32n);
  assert.ok(atWrite > 5_000_000n && atWrite < BigInt(now), `kvmclock at the TSC write: ${atWrite} ns (clock ${now})`);
  assert.ok(b.readBigUInt64LE(8) > 1n << 32n, 'tsc_timestamp is a value of the new TSC');
  const t = pvclockNs(b, g.r11);
  assert.ok(t > atWrite && t <= BigInt(now), `kvmclock follows the platform clock (${t} ns, clock at ${now})`);
  assert.ok(g.r10 < 1n << 32n && g.r11 >= 1n << 32n, 'RDTSC follows the write');
});

test('kvmclock: the wall clock structure gives the time of day at which the clock read 0', async () => {
  const { state, read } = await run(`
    mov ecx, 0x4b564d00
    mov eax, ${WALL}
    xor edx, edx
    wrmsr
    rdmsr
    mov r8, rax
    hlt
  `, () => 0);
  assert.equal(state.regs.r8, BigInt(WALL));
  const b = read(WALL, 12);
  assert.equal(b.readUInt32LE(0) % 2, 0, 'even version');
  const sec = b.readUInt32LE(4);
  assert.ok(Math.abs(sec - Date.now() / 1000) < 60, `seconds since the epoch (${sec})`);
  assert.ok(b.readUInt32LE(8) < 1e9, 'nanoseconds below one second');
});

test('kvmclock: addresses outside RAM are remembered but nothing is written; other KVM MSRs raise #GP', async () => {
  let below = new Uint8Array(0);
  const { state, read, mem } = await run(`
    mov ecx, 0x4b564d01
    mov eax, 0xfee00001         ; the local APIC's page, not RAM
    xor edx, edx
    wrmsr
    mov ecx, 0x4b564d01
    mov eax, ${0x400000 - 16 + 1} ; the structure would run past the end of RAM
    wrmsr
    rdmsr
    mov r8, rax
    mov ecx, 0x4b564d00
    mov eax, 0xffffff00
    mov edx, 0xff               ; far beyond RAM
    wrmsr
    rdmsr
    mov r9, rdx
    mov ecx, 0x4b564d01
    mov eax, 0xfffffff1         ; the structure would wrap around the address space
    mov edx, 0xffffffff
    wrmsr
    mov ecx, 0x12               ; MSR_KVM_SYSTEM_TIME (the old one): not offered
    rdmsr
    hlt
  `, () => 0, (mem) => { below = new Uint8Array(mem.buffer, mem.base - 64, 64).slice(); });
  assert.equal(state.regs.r8, BigInt(0x400000 - 16 + 1));
  assert.equal(state.regs.r9, 0xffn);
  assert.equal(read(0x400000 - 16, 16).every((x) => x === 0), true, 'the end of RAM is untouched');
  assert.deepEqual(new Uint8Array(mem.buffer, mem.base - 64, 64), below, 'nothing below guest RAM (the core\'s own data) changed');
  assert.equal(state.regs.rip, stubRip(13), 'RDMSR 0x12 raised #GP');
});
