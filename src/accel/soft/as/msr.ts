 
// AssemblyScript. RDMSR/WRMSR (SDM vol. 4 for the MSR list; vol. 2B RDMSR/WRMSR: #GP(0) for
// an MSR that does not exist or a reserved value). EFER changes follow vol. 3A 2.2.1 and 9.8.5.

import {
  ld64, st64, O_EFER, O_STAR, O_LSTAR, O_CSTAR, O_SFMASK, O_KGSBASE, O_APICBASE, O_TSC_OFFSET,
  O_PAT, O_MISC_ENABLE, O_SYSENTER_CS, O_SYSENTER_ESP, O_SYSENTER_EIP, O_TSC_AUX, O_MTRR_DEF,
  O_MTRR_VAR, O_MTRR_FIX, O_KVM_WALL_CLOCK, O_KVM_SYSTEM_TIME, FS, GS, segBase, setSegBase, cr0, CR0_PG, EFER_SCE, EFER_LME, EFER_LMA, EFER_NXE,
  updateMode,
} from './state';
import { gp } from './fault';
import { hostNanos, tscDeadlineRead, tscDeadlineWrite } from './host';
import { apicPresent } from './cpuid';
import { isCanonical } from './seg';
import { tlbFlush } from './mmu';
import {
  MSR_KVM_WALL_CLOCK_NEW, MSR_KVM_SYSTEM_TIME_NEW, kvmWallClockWrite, kvmSystemTimeWrite, kvmSystemTimeUpdate,
} from './kvmclock';

export function readTsc(): u64 {
  return <u64><i64>hostNanos() + ld64(O_TSC_OFFSET);
}

function fixedIndex(msr: u32): i32 {
  if (msr == 0x250) return 0;
  if (msr == 0x258) return 1;
  if (msr == 0x259) return 2;
  if (msr >= 0x268 && msr <= 0x26f) return <i32>(msr - 0x268) + 3;
  return -1;
}

/**
 * IA32_ARCH_CAPABILITIES (MSR 0x10A, SDM vol. 4 table 2-2): this core executes nothing
 * speculatively, so it reports itself free of the speculative-execution flaws the MSR can rule
 * out: RDCL_NO (0, Meltdown), SSB_NO (4), MDS_NO (5), IF_PSCHANGE_MC_NO (6), TAA_NO (8),
 * SBDR_SSDP_NO (13), FBSDP_NO (14), PSDP_NO (15), BHI_NO (20), PBRSB_NO (24), GDS_NO (26), RFDS_NO
 * (27). Without it a guest that does not know the vendor assumes the worst: Linux turned on
 * page-table isolation (a CR3 switch and a flush of the kernel's TLB entries on every kernel
 * entry and exit, and around each of its ~16,000 text patches at boot) and VERW on every return
 * to user mode. Not claimed: IBRS_ALL (no IA32_SPEC_CTRL here), so Linux keeps its retpolines,
 * as it does under QEMU's default CPU model.
 */
export const ARCH_CAPABILITIES: u64 = (1 << 0) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 8) | (1 << 13) | (1 << 14) | (1 << 15) |
  (1 << 20) | (1 << 24) | (1 << 26) | (1 << 27);

/** Value of an MSR; raises #GP(0) for one that does not exist. */
export function rdmsr(msr: u32): u64 {
  switch (msr) {
    case 0x10: return readTsc(); // IA32_TIME_STAMP_COUNTER
    case 0x1b: return ld64(O_APICBASE); // IA32_APIC_BASE
    case 0x3a: return 1; // IA32_FEATURE_CONTROL: locked, nothing enabled
    case 0x8b: return 0; // IA32_BIOS_SIGN_ID (microcode revision)
    case 0x10a: return ARCH_CAPABILITIES; // read-only: WRMSR raises #GP (the default below)
    case 0xfe: return 0x500 | 8; // IA32_MTRRCAP: fixed ranges, WC, 8 variable ranges
    case 0x174: return ld64(O_SYSENTER_CS);
    case 0x175: return ld64(O_SYSENTER_ESP);
    case 0x176: return ld64(O_SYSENTER_EIP);
    case 0x179: return 0; // IA32_MCG_CAP: no banks
    case 0x17a: return 0; // IA32_MCG_STATUS
    case 0x1a0: return ld64(O_MISC_ENABLE);
    case 0x277: return ld64(O_PAT);
    case 0x2ff: return ld64(O_MTRR_DEF);
    case 0xc0000080: return ld64(O_EFER);
    case 0xc0000081: return ld64(O_STAR);
    case 0xc0000082: return ld64(O_LSTAR);
    case 0xc0000083: return ld64(O_CSTAR);
    case 0xc0000084: return ld64(O_SFMASK);
    case 0xc0000100: return segBase(FS);
    case 0xc0000101: return segBase(GS);
    case 0xc0000102: return ld64(O_KGSBASE);
    case 0xc0000103: return ld64(O_TSC_AUX);
    case 0x6e0: // IA32_TSC_DEADLINE: the local APIC's (CPUID.1:ECX.TSC_Deadline with an APIC)
      if (!apicPresent) gp(0);
      return tscDeadlineRead();
    case MSR_KVM_WALL_CLOCK_NEW: return ld64(O_KVM_WALL_CLOCK);
    case MSR_KVM_SYSTEM_TIME_NEW: return ld64(O_KVM_SYSTEM_TIME);
    default:
      if (msr >= 0x200 && msr < 0x210) return ld64(O_MTRR_VAR + (msr - 0x200) * 8);
      if (fixedIndex(msr) >= 0) return ld64(O_MTRR_FIX + <u32>fixedIndex(msr) * 8);
      gp(0);
      return 0;
  }
}

function needCanonical(v: u64): void { if (!isCanonical(v)) gp(0); }

export function wrmsr(msr: u32, v: u64): void {
  switch (msr) {
    case 0x10:
      st64(O_TSC_OFFSET, v - <u64><i64>hostNanos());
      kvmSystemTimeUpdate(); // the kvmclock's tsc_timestamp is a TSC value: restate it
      return;
    case 0x1b: st64(O_APICBASE, v & 0xffffff000 | (v & 0xd00)); return;
    case 0x8b: return;
    case 0x174: st64(O_SYSENTER_CS, v & 0xffff); return;
    case 0x175: needCanonical(v); st64(O_SYSENTER_ESP, v); return;
    case 0x176: needCanonical(v); st64(O_SYSENTER_EIP, v); return;
    case 0x17a: return;
    case 0x1a0: st64(O_MISC_ENABLE, v); return;
    case 0x277: {
      // each PAT entry must be a valid memory type (0, 1, 4, 5, 6, 7)
      for (let i: u64 = 0; i < 8; i++) {
        const t = (v >> (i * 8)) & 0xff;
        if (t == 2 || t == 3 || t > 7) gp(0);
      }
      st64(O_PAT, v);
      return;
    }
    case 0x2ff: st64(O_MTRR_DEF, v & 0xcff); return;
    case 0xc0000080: {
      // EFER: SCE, LME, NXE are writable; LMA follows CR0.PG (9.8.5); LME cannot change with paging on
      if ((v & ~(EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE)) != 0) gp(0);
      const old = ld64(O_EFER);
      if ((cr0() & CR0_PG) != 0 && ((old ^ v) & EFER_LME) != 0) gp(0);
      const nv = (v & (EFER_SCE | EFER_LME | EFER_NXE)) | (old & EFER_LMA);
      st64(O_EFER, nv);
      if (((old ^ nv) & EFER_NXE) != 0) tlbFlush(true);
      updateMode();
      return;
    }
    case 0xc0000081: st64(O_STAR, v); return;
    case 0xc0000082: needCanonical(v); st64(O_LSTAR, v); return;
    case 0xc0000083: needCanonical(v); st64(O_CSTAR, v); return;
    case 0xc0000084: st64(O_SFMASK, v & 0xffffffff); return;
    case 0xc0000100: needCanonical(v); setSegBase(FS, v); return;
    case 0xc0000101: needCanonical(v); setSegBase(GS, v); return;
    case 0xc0000102: needCanonical(v); st64(O_KGSBASE, v); return;
    case 0xc0000103: st64(O_TSC_AUX, v & 0xffffffff); return;
    case 0x6e0:
      if (!apicPresent) gp(0);
      tscDeadlineWrite(v);
      return;
    case MSR_KVM_WALL_CLOCK_NEW: kvmWallClockWrite(v); return;
    case MSR_KVM_SYSTEM_TIME_NEW: kvmSystemTimeWrite(v); return;
    default:
      if (msr >= 0x200 && msr < 0x210) { st64(O_MTRR_VAR + (msr - 0x200) * 8, v); return; }
      if (fixedIndex(msr) >= 0) { st64(O_MTRR_FIX + <u32>fixedIndex(msr) * 8, v); return; }
      gp(0);
  }
}
