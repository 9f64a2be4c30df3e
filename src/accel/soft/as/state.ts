/* eslint-disable no-loss-of-precision -- AssemblyScript: integer literals are exact 64-bit values, not doubles */
// AssemblyScript. The architectural state of one vCPU and where it lives.
//
// Everything a debugger, the TypeScript wrapper (getState/setState) or a later JIT needs is in
// linear memory at `S` (a per-instance base set by init()), at the fixed offsets below; the
// TypeScript side mirrors them in src/accel/soft/layout.ts. Values used on every instruction
// (RIP, CPL, the mode, the lazy flags) are wasm globals, written back by syncOut().

// ---- layout (byte offsets from S); keep in sync with layout.ts
export const O_GPR: u32 = 0; // 16 x u64, x86 register order rax rcx rdx rbx rsp rbp rsi rdi r8..r15
export const O_RIP: u32 = 128;
export const O_RFLAGS: u32 = 136;
export const O_KVM_WALL_CLOCK: u32 = 144; // MSR_KVM_WALL_CLOCK_NEW as last written (kvmclock.ts)
export const O_KVM_SYSTEM_TIME: u32 = 152; // MSR_KVM_SYSTEM_TIME_NEW as last written (kvmclock.ts)
export const O_SEG: u32 = 256; // 8 x 32 bytes: ES CS SS DS FS GS LDTR TR
export const SEG_SEL: u32 = 0; // u32
export const SEG_ATTR: u32 = 4; // u32, see ATTR_* below
export const SEG_LIMIT: u32 = 8; // u32, byte granular
export const SEG_BASE: u32 = 16; // u64
export const O_GDTR_BASE: u32 = 512;
export const O_GDTR_LIMIT: u32 = 520;
export const O_IDTR_BASE: u32 = 528;
export const O_IDTR_LIMIT: u32 = 536;
export const O_CR0: u32 = 544;
export const O_CR2: u32 = 552;
export const O_CR3: u32 = 560;
export const O_CR4: u32 = 568;
export const O_CR8: u32 = 576;
export const O_EFER: u32 = 584;
export const O_DR: u32 = 592; // DR0..DR7
export const O_STAR: u32 = 656;
export const O_LSTAR: u32 = 664;
export const O_CSTAR: u32 = 672;
export const O_SFMASK: u32 = 680;
export const O_KGSBASE: u32 = 688;
export const O_APICBASE: u32 = 696;
export const O_TSC_OFFSET: u32 = 704;
export const O_PAT: u32 = 712;
export const O_MISC_ENABLE: u32 = 720;
export const O_SYSENTER_CS: u32 = 728;
export const O_SYSENTER_ESP: u32 = 736;
export const O_SYSENTER_EIP: u32 = 744;
export const O_TSC_AUX: u32 = 752;
export const O_MTRR_DEF: u32 = 760;
export const O_INTR_REQUEST: u32 = 768; // i32: set (by the host) when an external interrupt is pending
export const O_HALTED: u32 = 772; // i32
export const O_ICOUNT: u32 = 776; // u64 instructions retired
export const O_EXIT_RIP: u32 = 784; // u64 RIP of the instruction that stopped the core with an error
export const O_EXIT_INFO: u32 = 792; // u32 error detail (opcode)
export const O_SHADOW: u32 = 796; // i32 interrupt shadow (STI / MOV SS) active
export const O_MTRR_VAR: u32 = 800; // 16 x u64: PHYSBASE0, PHYSMASK0, ... (8 pairs)
export const O_MTRR_FIX: u32 = 928; // 11 x u64
export const O_REGIONS: u32 = 1024; // RAM map: count u32 @+0, then 4 x {gpa u64, size u64, offset u64, ro u64}
// the lazy flags (flags.ts), read and written by compiled blocks at these fixed offsets
export const O_LF_RES: u32 = 0x5b0; // u64
export const O_LF_A: u32 = 0x5b8; // u64
export const O_LF_B: u32 = 0x5c0; // u64
export const O_LF_OP: u32 = 0x5c8; // i32
export const O_LF_SIZE: u32 = 0x5cc; // i32
export const O_LF_CIN: u32 = 0x5d0; // u32
export const O_LF_EAGER: u32 = 0x5d4; // u32
/** i32 copy of `cpl` for the JIT's chain trampoline (src/accel/soft/jit/jit.ts), which reads it with one load. */
export const O_CPL: u32 = 0x5f0;
export const O_FX: u32 = 0x600; // 512 bytes: x87/SSE state in FXSAVE layout (vol. 1 table 10-2)
export const FX_FCW: u32 = 0;
export const FX_FSW: u32 = 2;
export const FX_FTW: u32 = 4; // abridged tag byte
export const FX_MXCSR: u32 = 24;
export const FX_MXCSR_MASK: u32 = 28;
export const FX_ST: u32 = 32; // ST0..ST7 / MM0..MM7, 16 bytes each
export const FX_XMM: u32 = 160; // XMM0..XMM15, 16 bytes each
export const O_SSE_TMP: u32 = 0x800; // 32 bytes of scratch for 128-bit operands
export const O_TLB: u32 = 4096; // software TLBs (see mmu.ts), 6 x 0x11000 bytes
export const O_FILL_LOG: u32 = 0x68000; // the TLBs' fill logs (mmu.ts), 0xc000 bytes
export const STATE_SIZE: u32 = 0x80000;

// segment register numbers (the encoding used by instructions, SDM vol. 2A 3.1.1.3 / table 2-?)
export const ES: i32 = 0;
export const CS: i32 = 1;
export const SS: i32 = 2;
export const DS: i32 = 3;
export const FS: i32 = 4;
export const GS: i32 = 5;
export const LDTR: i32 = 6;
export const TR: i32 = 7;

// segment attribute word: descriptor bits 40..55 (type, S, DPL, P, AVL, L, D/B, G), plus "unusable"
export const ATTR_S: u32 = 1 << 4;
export const ATTR_P: u32 = 1 << 7;
export const ATTR_L: u32 = 1 << 13;
export const ATTR_DB: u32 = 1 << 14;
export const ATTR_G: u32 = 1 << 15;
export const ATTR_UNUSABLE: u32 = 1 << 16;

// control register bits (SDM vol. 3A 2.5)
export const CR0_PE: u64 = 1;
export const CR0_MP: u64 = 2;
export const CR0_EM: u64 = 4;
export const CR0_TS: u64 = 8;
export const CR0_ET: u64 = 16;
export const CR0_NE: u64 = 32;
export const CR0_WP: u64 = 1 << 16;
export const CR0_AM: u64 = 1 << 18;
export const CR0_NW: u64 = 1 << 29;
export const CR0_CD: u64 = 1 << 30;
export const CR0_PG: u64 = 1 << 31;
export const CR4_VME: u64 = 1;
export const CR4_PVI: u64 = 2;
export const CR4_TSD: u64 = 4;
export const CR4_DE: u64 = 8;
export const CR4_PSE: u64 = 16;
export const CR4_PAE: u64 = 32;
export const CR4_MCE: u64 = 64;
export const CR4_PGE: u64 = 128;
export const CR4_PCE: u64 = 256;
export const CR4_OSFXSR: u64 = 512;
export const CR4_OSXMMEXCPT: u64 = 1024;
export const EFER_SCE: u64 = 1;
export const EFER_LME: u64 = 1 << 8;
export const EFER_LMA: u64 = 1 << 10;
export const EFER_NXE: u64 = 1 << 11;

// RFLAGS bits (SDM vol. 1 3.4.3)
export const F_CF: u32 = 1;
export const F_PF: u32 = 4;
export const F_AF: u32 = 16;
export const F_ZF: u32 = 64;
export const F_SF: u32 = 128;
export const F_TF: u32 = 256;
export const F_IF: u32 = 512;
export const F_DF: u32 = 1024;
export const F_OF: u32 = 2048;
export const F_IOPL: u32 = 3 << 12;
export const F_NT: u32 = 1 << 14;
export const F_RF: u32 = 1 << 16;
export const F_VM: u32 = 1 << 17;
export const F_AC: u32 = 1 << 18;
export const F_VIF: u32 = 1 << 19;
export const F_VIP: u32 = 1 << 20;
export const F_ID: u32 = 1 << 21;
export const F_STATUS: u32 = F_CF | F_PF | F_AF | F_ZF | F_SF | F_OF;

// ---- per-instance base and hot copies
export let S: u32 = 0;
export let cpl: i32 = 0;
/** 16, 32 or 64: the default operand/address size of the code segment. */
export let codeBits: i32 = 16;
/** The operand and address sizes of an instruction without 66, 67 or REX.W in this mode (updateMode). */
export let opsizeDefault: i32 = 2;
export let adsizeDefault: i32 = 2;
/**
 * Whether the interpreter's prefix-dependent globals (decode.ts has66, segOvr, rep, lock,
 * adsize) may differ from an unprefixed instruction's in the current mode: after a prefixed
 * instruction or a mode change. Step.run (interp.ts) stores them only then.
 */
export let prefixDirty: bool = true;
export function setPrefixDirty(v: bool): void { prefixDirty = v; }
/** true when SS.B (or 64-bit mode) makes the stack pointer 32/64 bits wide; see stackMask. */
export let stackMask: u64 = 0xffff;
export let longMode: bool = false; // EFER.LMA
export let protMode: bool = false; // CR0.PE
export let pagingOn: bool = false; // CR0.PG

export function setS(v: u32): void { S = v; }
/**
 * RIP lives in the state block (O_RIP), where compiled blocks store it at their exits. While the
 * interpreter executes an instruction it holds that instruction's address: Step.run stores the
 * next RIP only when the instruction completes, and what changes RIP on the way (exception
 * delivery, SYSCALL, IRET) does it after its last possible fault. So a fault leaves it where the
 * instruction restarts (fault.ts), with no copy of the start address to keep per instruction.
 */
export function rip(): u64 { return load<u64>(S + O_RIP); }
export function setRip(v: u64): void { store<u64>(S + O_RIP, v); }

// ---- general registers
export function gpr(i: i32): u64 { return load<u64>(S + (<u32>i << 3)); }
export function setGpr(i: i32, v: u64): void { store<u64>(S + (<u32>i << 3), v); }

export function maskOf(size: i32): u64 {
  return size == 8 ? 0xffffffffffffffff : size == 4 ? 0xffffffff : size == 2 ? 0xffff : 0xff;
}
export function signOf(size: i32): u64 {
  const n = <u64>(size * 8 - 1);
  return (<u64>1) << n;
}
/** Sign-extend the low `size` bytes of v to 64 bits. */
export function sext(v: u64, size: i32): u64 {
  if (size == 1) return <u64><i64><i8>v;
  if (size == 2) return <u64><i64><i16>v;
  if (size == 4) return <u64><i64><i32>v;
  return v;
}

/**
 * Read a register operand. Without REX, byte registers 4..7 are AH CH DH BH (SDM vol. 2A 3.1.1.1).
 */
export function readReg(size: i32, i: i32, rex: bool): u64 {
  if (size == 1) {
    if (!rex && i >= 4 && i < 8) return (gpr(i - 4) >> 8) & 0xff;
    return gpr(i) & 0xff;
  }
  return gpr(i) & maskOf(size);
}

/** Write a register operand; 32-bit writes zero the upper half, 8/16-bit writes merge (vol. 1 3.4.1.1). */
export function writeReg(size: i32, i: i32, v: u64, rex: bool): void {
  if (size == 8) { setGpr(i, v); return; }
  if (size == 4) { setGpr(i, v & 0xffffffff); return; }
  if (size == 2) { setGpr(i, (gpr(i) & 0xffffffffffff0000) | (v & 0xffff)); return; }
  if (!rex && i >= 4 && i < 8) {
    setGpr(i - 4, (gpr(i - 4) & 0xffffffffffff00ff) | ((v & 0xff) << 8));
    return;
  }
  setGpr(i, (gpr(i) & 0xffffffffffffff00) | (v & 0xff));
}

// ---- segments
export function segSel(s: i32): u32 { return load<u32>(S + O_SEG + (<u32>s << 5) + SEG_SEL); }
export function segAttr(s: i32): u32 { return load<u32>(S + O_SEG + (<u32>s << 5) + SEG_ATTR); }
export function segLimit(s: i32): u32 { return load<u32>(S + O_SEG + (<u32>s << 5) + SEG_LIMIT); }
export function segBase(s: i32): u64 { return load<u64>(S + O_SEG + (<u32>s << 5) + SEG_BASE); }
export function setSeg(s: i32, sel: u32, base: u64, limit: u32, attr: u32): void {
  const p = S + O_SEG + (<u32>s << 5);
  store<u32>(p + SEG_SEL, sel);
  store<u32>(p + SEG_ATTR, attr);
  store<u32>(p + SEG_LIMIT, limit);
  store<u64>(p + SEG_BASE, base);
}
export function setSegBase(s: i32, base: u64): void { store<u64>(S + O_SEG + (<u32>s << 5) + SEG_BASE, base); }

// ---- control registers
export function cr0(): u64 { return load<u64>(S + O_CR0); }
export function cr4(): u64 { return load<u64>(S + O_CR4); }
export function efer(): u64 { return load<u64>(S + O_EFER); }
export function st64(off: u32, v: u64): void { store<u64>(S + off, v); }
export function ld64(off: u32): u64 { return load<u64>(S + off); }

/** Recompute the cached mode globals from CR0/EFER/CS/SS (after any of them changes). */
export function updateMode(): void {
  const c0 = cr0();
  protMode = (c0 & CR0_PE) != 0;
  pagingOn = (c0 & CR0_PG) != 0;
  longMode = (efer() & EFER_LMA) != 0;
  const csa = segAttr(CS);
  if (longMode && (csa & ATTR_L) != 0) codeBits = 64;
  else codeBits = (csa & ATTR_DB) != 0 ? 32 : 16;
  opsizeDefault = codeBits == 16 ? 2 : 4;
  adsizeDefault = codeBits == 64 ? 8 : codeBits == 32 ? 4 : 2;
  prefixDirty = true; // the interpreter sets adsize again (interp.ts Step.run)
  if (codeBits == 64) stackMask = 0xffffffffffffffff;
  else stackMask = (segAttr(SS) & ATTR_DB) != 0 ? 0xffffffff : 0xffff;
  // CPL is kept as SS.DPL, as VMX does (SS.DPL always equals CPL, SDM vol. 3A 5.5)
  cpl = protMode ? <i32>((segAttr(SS) >> 5) & 3) : 0;
  store<i32>(S + O_CPL, cpl);
}
export function setCpl(v: i32): void { cpl = v; store<i32>(S + O_CPL, v); }
