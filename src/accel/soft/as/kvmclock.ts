// AssemblyScript. The KVM paravirtual clock ("kvmclock"), which the software CPU offers so that a
// guest reads its TSC frequency instead of measuring it. Linux otherwise calibrates the TSC
// against the PIT in loops that fail whenever one iteration takes ten times longer than the
// shortest (arch/x86/kernel/tsc.c pit_calibrate_tsc), which an emulated CPU's time slices always
// cause: ~70 ms of every boot went to three failing attempts before it fell back to the ACPI PM
// timer. With kvmclock it knows the frequency at once (X86_FEATURE_TSC_KNOWN_FREQ).
//
// The interface is KVM's (Linux Documentation/virt/kvm/x86/cpuid.rst and msr.rst), the one
// guests already speak to KVM, so tsvm's two accelerators show a guest the same clock:
//   CPUID 0x40000000: EAX the largest hypervisor leaf, EBX ECX EDX "KVMKVMKVM\0\0\0"
//   CPUID 0x40000001: EAX feature bits: CLOCKSOURCE2 (3) = the MSRs below,
//                     CLOCKSOURCE_STABLE_BIT (24) = the guest may trust PVCLOCK_TSC_STABLE_BIT
//   MSR_KVM_WALL_CLOCK_NEW  0x4b564d00: write the guest-physical address of a pvclock_wall_clock
//     {u32 version; u32 sec; u32 nsec} and the host fills in the wall-clock time at which the
//     system time below was 0.
//   MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01: bit 0 enables, the rest is the guest-physical address
//     of a pvclock_vcpu_time_info {u32 version; u32 pad; u64 tsc_timestamp; u64 system_time;
//     u32 tsc_to_system_mul; s8 tsc_shift; u8 flags; u8 pad[2]} (32 bytes). The guest's time in
//     ns is system_time + (((tsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul >> 32).
// No other KVM feature is offered (no steal time, PV EOI, async page faults, hypercalls), so a
// guest has nothing else to use; feature bits gate each of them in Linux.
//
// This TSC counts nanoseconds of the platform clock plus the guest's offset (msr.ts readTsc),
// so the scale is exactly one (mul 2^31, shift 1) and the structure never needs refreshing while
// the TSC keeps its rate; a WRMSR to the TSC rewrites it (the offset moved). Values the guest
// cannot have put in RAM (an address outside it, or a ROM) are remembered but nothing is written,
// as KVM ignores a failed guest write.

import { ld64, st64, O_KVM_WALL_CLOCK, O_KVM_SYSTEM_TIME, O_TSC_OFFSET } from './state';
import { physToHost } from './mmu';
import { jitNoteWrite } from './jit';
import { hostNanos } from './host';

export const MSR_KVM_WALL_CLOCK_NEW: u32 = 0x4b564d00;
export const MSR_KVM_SYSTEM_TIME_NEW: u32 = 0x4b564d01;

/** CPUID 0x40000001 EAX: KVM_FEATURE_CLOCKSOURCE2 (bit 3) | KVM_FEATURE_CLOCKSOURCE_STABLE_BIT (bit 24). */
export const KVM_FEATURES: u32 = (1 << 3) | (1 << 24);
/** "KVMKVMKVM\0\0\0" as EBX, ECX, EDX of CPUID 0x40000000. */
export const KVM_SIGNATURE_EBX: u32 = 0x4b4d564b;
export const KVM_SIGNATURE_ECX: u32 = 0x564b4d56;
export const KVM_SIGNATURE_EDX: u32 = 0x0000004d;

/** pvclock flags bit 0: the TSC is the same on every vCPU and never goes back. */
const PVCLOCK_TSC_STABLE_BIT: u8 = 1;

/** Host wall-clock time, in ns since the Unix epoch, at which the platform clock read 0. */
let wallBaseNs: f64 = 0;
export function setWallClockBase(ns: f64): void { wallBaseNs = ns; }

/**
 * Host address of `len` bytes of guest RAM at `gpa`, made ready for the host to write (a page
 * holding compiled code forgets it), or -1 when they are not all writable RAM.
 */
function ramFor(gpa: u64, len: u32): i64 {
  const h = physToHost(gpa, len, true);
  if (h < 0) return -1;
  jitNoteWrite(<u32>h);
  jitNoteWrite(<u32>h + len - 1);
  return h;
}

/** Mark the structure at `p` as being updated: an odd version tells a reader to retry. */
function beginUpdate(p: usize): u32 {
  const odd = load<u32>(p) | 1;
  store<u32>(p, odd);
  return odd;
}

/** The update is complete: the next even version (a reader that saw another one retries). */
function endUpdate(p: usize, odd: u32): void { store<u32>(p, odd + 1); }

export function kvmWallClockWrite(v: u64): void {
  st64(O_KVM_WALL_CLOCK, v);
  const h = ramFor(v, 12);
  if (h < 0) return;
  const p = <usize>h;
  const ns = <u64>wallBaseNs;
  const odd = beginUpdate(p);
  store<u32>(p, <u32>(ns / 1_000_000_000), 4);
  store<u32>(p, <u32>(ns % 1_000_000_000), 8);
  endUpdate(p, odd);
}

/** Fill the vCPU's pvclock_vcpu_time_info if the guest enabled one (after either MSR write). */
export function kvmSystemTimeUpdate(): void {
  const v = ld64(O_KVM_SYSTEM_TIME);
  if ((v & 1) == 0) return;
  const h = ramFor(v & ~(<u64>1), 32);
  if (h < 0) return;
  const p = <usize>h;
  const now = <u64><i64>hostNanos();
  const odd = beginUpdate(p);
  store<u64>(p, now + ld64(O_TSC_OFFSET), 8); // tsc_timestamp: the TSC at `now` (msr.ts readTsc)
  store<u64>(p, now, 16); // system_time
  store<u32>(p, 0x80000000, 24); // tsc_to_system_mul: 0.5 as a 0.32 fraction...
  store<i8>(p, 1, 28); // ...after tsc_shift 1: one ns per TSC tick
  store<u8>(p, PVCLOCK_TSC_STABLE_BIT, 29);
  endUpdate(p, odd);
}

export function kvmSystemTimeWrite(v: u64): void {
  st64(O_KVM_SYSTEM_TIME, v);
  kvmSystemTimeUpdate();
}
