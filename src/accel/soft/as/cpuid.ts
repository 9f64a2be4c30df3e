 
// AssemblyScript. CPUID (SDM vol. 2A CPUID): reports exactly the features this core implements.
// FPU (x87 computed in double precision, see fpu.ts), MMX, FXSR, SSE, SSE2, SERIALIZE, IA32_ARCH_CAPABILITIES, ERMS/FSRM; no SSE3+; the APIC bit only when the platform provides a local
// APIC (xAPIC MMIO, its timer's TSC-deadline mode through IA32_TSC_DEADLINE; no x2APIC); no MTRR bit (the MTRR MSRs read back
// but do nothing). The hypervisor bit and leaves 0x40000000-1 offer KVM's paravirtual clock (kvmclock.ts).

import { MAXPHYADDR } from './mmu';
import { KVM_FEATURES, KVM_SIGNATURE_EBX, KVM_SIGNATURE_ECX, KVM_SIGNATURE_EDX } from './kvmclock';

export let outA: u32 = 0;
export let outB: u32 = 0;
export let outC: u32 = 0;
export let outD: u32 = 0;
let apicId: u32 = 0;
export function setApicId(v: u32): void { apicId = v; }
/** Whether the platform gives this CPU a local APIC (the VMM's src/devices/platform model). */
export let apicPresent: bool = false;
export function setApicPresent(v: bool): void { apicPresent = v; }

function set(a: u32, b: u32, c: u32, d: u32): void { outA = a; outB = b; outC = c; outD = d; }

// "GenuineIntel" would make guests assume Intel errata and MSRs; name ourselves instead.
// EBX, EDX, ECX spell "TsvmSoftCPU!"
const V0: u32 = 0x6d767354; // "Tsvm"
const V1: u32 = 0x74666f53; // "Soft"
const V2: u32 = 0x21555043; // "CPU!"

export function cpuid(leaf: u32, sub: u32): void {
  switch (leaf) {
    case 0: set(7, V0, V2, V1); return;
    case 1: {
      // family 6, model 0x0f, stepping 1
      const eax: u32 = 0x000006f1;
      const ebx: u32 = (apicId << 24) | (1 << 16) | (8 << 8); // CLFLUSH line 8*8 bytes
      // CX16(13); TSC_Deadline(24) with the local APIC (its timer's TSC-deadline mode, IA32_TSC_DEADLINE);
      // hypervisor present (31): leaves 0x40000000+ describe it (kvmclock.ts)
      const ecx: u32 = (1 << 13) | (apicPresent ? 1 << 24 : 0) | (1 << 31);
      // FPU(0) PSE(3) TSC(4) MSR(5) PAE(6) CX8(8) PGE(13) CMOV(15) PAT(16) PSE36(17) CLFSH(19)
      // MMX(23) FXSR(24) SSE(25) SSE2(26)
      const edx: u32 = 1 | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 8) | (1 << 13) | (1 << 15) | (1 << 16) | (1 << 17) | (1 << 19) |
        (1 << 23) | (1 << 24) | (1 << 25) | (1 << 26) | (apicPresent ? 1 << 9 : 0); // APIC(9)
      set(eax, ebx, ecx, edx);
      return;
    }
    // structured extended features, sub-leaf 0 (the only one): SERIALIZE (EDX 14), which Linux's
    // sync_core() uses instead of an IRET to itself (~90,000 of them while it patches its text at
    // boot); IA32_ARCH_CAPABILITIES (EDX 29, msr.ts ARCH_CAPABILITIES); ERMS (EBX 9) and FSRM
    // (EDX 4), "enhanced" and "fast short" REP MOVSB/STOSB: performance hints, true here (REP MOVS
    // and STOS copy or fill a page at a time, string.ts bulk, in compiled blocks too), so that
    // Linux's memcpy, memset, clear_page and user copies are one REP instruction each instead of
    // an unrolled loop (boot to /init, 6 and 8 interleaved pairs: 2.212 -> 2.164 s, 2.234 -> 2.202
    // s; 18 M fewer instructions)
    case 7: set(0, sub == 0 ? 1 << 9 : 0, 0, sub == 0 ? (1 << 14) | (1 << 29) | (1 << 4) : 0); return;
    // the hypervisor leaves: KVM's signature and, of its features, only the clock (kvmclock.ts)
    case 0x40000000: set(0x40000001, KVM_SIGNATURE_EBX, KVM_SIGNATURE_ECX, KVM_SIGNATURE_EDX); return;
    case 0x40000001: set(KVM_FEATURES, 0, 0, 0); return;
    case 0x80000000: set(0x80000008, 0, 0, 0); return;
    // LAHF/SAHF in 64-bit mode (ECX 0); SYSCALL(11) NX(20) LM(29) (EDX)
    case 0x80000001: set(0, 0, 1, (1 << 11) | (1 << 20) | (1 << 29)); return;
    // brand string "tsvm soft CPU" (16 bytes per leaf)
    case 0x80000002: set(0x6d767374, 0x666f7320, 0x50432074, 0x00000055); return;
    case 0x80000003: set(0, 0, 0, 0); return;
    case 0x80000004: set(0, 0, 0, 0); return;
    case 0x80000008: set((48 << 8) | MAXPHYADDR, 0, 0, 0); return;
    default:
      set(0, 0, 0, 0); // unknown leaves (and sub-leaves) read as zero

  }
}
