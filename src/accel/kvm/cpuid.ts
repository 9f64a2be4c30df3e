// The CPUID a vCPU sees: what KVM_GET_SUPPORTED_CPUID offers, adjusted per vCPU (APIC IDs,
// topology) and for known host limitations. Entry layout: struct kvm_cpuid_entry2 { u32 function,
// index, flags, eax, ebx, ecx, edx, padding[3] } (api.rst, KVM_SET_CPUID2).
import { KVM_CPUID_ENTRY2_SIZE } from './kvm-api.js';

export interface CpuidOptions {
  vcpuId: number;
  cpus: number;
  /**
   * Hide what a PVM host's instruction emulator cannot run when the guest kernel executes it:
   * CMPXCHG16B (CPUID.1:ECX.CX16, used by SLUB). PVM also cannot emulate XRSTOR, but it reports
   * XSAVE (CPUID.1:ECX bit 26 and leaf 0DH) whatever the VMM sets (measured), so Linux guests
   * there need `noxsave` on their command line instead (the VMM says so).
   */
  pvmQuirks: boolean;
}

const CPUID_1_ECX_CX16 = 1 << 13;
const CPUID_1_ECX_HYPERVISOR = 1 << 31;

/** Builds the kvm_cpuid2 struct (header + entries) for one vCPU. */
export function buildCpuid(supported: Uint8Array, o: CpuidOptions): Uint8Array {
  const n = supported.length / KVM_CPUID_ENTRY2_SIZE;
  const out = new Uint8Array(8 + supported.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, n, true);
  out.set(supported, 8);
  for (let i = 0; i < n; i++) {
    const e = 8 + i * KVM_CPUID_ENTRY2_SIZE;
    const fn = v.getUint32(e, true);
    const EAX = e + 12, EBX = e + 16, ECX = e + 20, EDX = e + 24;
    if (fn === 1) {
      // EBX[31:24] initial APIC ID, EBX[23:16] logical processors per package (SDM vol. 2A, CPUID leaf 01H).
      const ebx = (v.getUint32(EBX, true) & 0x0000ffff) | (o.vcpuId << 24) | ((o.cpus & 0xff) << 16);
      v.setUint32(EBX, ebx >>> 0, true);
      let ecx = v.getUint32(ECX, true) | CPUID_1_ECX_HYPERVISOR;
      if (o.pvmQuirks) ecx &= ~CPUID_1_ECX_CX16;
      v.setUint32(ECX, ecx >>> 0, true);
      // EDX bit 28 (HTT) means "EBX[23:16] is valid".
      if (o.cpus > 1) v.setUint32(EDX, (v.getUint32(EDX, true) | (1 << 28)) >>> 0, true);
    } else if (fn === 0xb || fn === 0x1f) {
      // Extended topology: EDX is the x2APIC ID of this logical processor.
      v.setUint32(EDX, o.vcpuId, true);
    } else if (fn === 4) {
      // Deterministic cache parameters, EAX[31:26] = cores per package - 1.
      const eax = (v.getUint32(EAX, true) & 0x03ffffff) | (((o.cpus - 1) & 0x3f) << 26);
      v.setUint32(EAX, eax >>> 0, true);
    }
  }
  return out;
}
