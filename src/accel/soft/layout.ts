// Where the software CPU keeps things in its shared WebAssembly.Memory. The byte offsets of the
// per-vCPU state block mirror src/accel/soft/as/state.ts (the AssemblyScript core); keep the two
// in sync.

/** First per-vCPU state block; block k starts at STATE_AREA + k * STATE_SIZE. */
export const STATE_AREA = 0x10000;
export const STATE_SIZE = 0x80000;
export const MAX_VCPUS = 8;
/** Guest-physical RAM starts here inside the wasm memory (GuestMemory.base). */
export const GUEST_BASE = 0x800000;
export const WASM_PAGE = 0x10000;

export const O = {
  GPR: 0, // 16 x u64 in x86 encoding order
  RIP: 128,
  RFLAGS: 136,
  KVM_WALL_CLOCK: 144,
  KVM_SYSTEM_TIME: 152,
  SEG: 256, // 8 x 32 bytes: ES CS SS DS FS GS LDTR TR; sel u32 @0, attr u32 @4, limit u32 @8, base u64 @16
  GDTR_BASE: 512,
  GDTR_LIMIT: 520,
  IDTR_BASE: 528,
  IDTR_LIMIT: 536,
  CR0: 544,
  CR2: 552,
  CR3: 560,
  CR4: 568,
  CR8: 576,
  EFER: 584,
  DR: 592,
  STAR: 656,
  LSTAR: 664,
  CSTAR: 672,
  SFMASK: 680,
  KGSBASE: 688,
  APICBASE: 696,
  TSC_OFFSET: 704,
  PAT: 712,
  MISC_ENABLE: 720,
  SYSENTER_CS: 728,
  SYSENTER_ESP: 736,
  SYSENTER_EIP: 744,
  TSC_AUX: 752,
  MTRR_DEF: 760,
  INTR_REQUEST: 768,
  HALTED: 772,
  ICOUNT: 776,
  EXIT_RIP: 784,
  EXIT_INFO: 792,
  SHADOW: 796,
  REGIONS: 1024,
  /** the lazy flags (as/state.ts O_LF_*, as/flags.ts): result, operands (u64), operation, size (i32), carry-in, eager status (u32) */
  LF_RES: 0x5b0,
  LF_A: 0x5b8,
  LF_B: 0x5c0,
  LF_OP: 0x5c8,
  LF_SIZE: 0x5cc,
  LF_CIN: 0x5d0,
  LF_EAGER: 0x5d4,
  /** i32 copy of the CPL (as/state.ts O_CPL) */
  CPL: 0x5f0,
} as const;

/** Segment register numbers as instructions encode them. */
export const SEG_INDEX = { es: 0, cs: 1, ss: 2, ds: 3, fs: 4, gs: 5, ldt: 6, tr: 7 } as const;

/** GPR names in x86 encoding order (the order of the state block). */
export const GPR_ORDER = [
  'rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15',
] as const;

// segment attribute word (descriptor bits 40..55 plus "unusable" at bit 16)
export const ATTR_S = 1 << 4;
export const ATTR_P = 1 << 7;
export const ATTR_AVL = 1 << 12;
export const ATTR_L = 1 << 13;
export const ATTR_DB = 1 << 14;
export const ATTR_G = 1 << 15;
export const ATTR_UNUSABLE = 1 << 16;

export const EXIT_BUDGET = 0;
export const EXIT_HLT = 1;
export const EXIT_SHUTDOWN = 2;
export const EXIT_UNSUPPORTED = 3;
export const EXIT_INTR = 4;

/**
 * The JIT's data (vCPU 0 only), between the state blocks and GUEST_BASE; mirrors as/jit.ts:
 * the compile queue, the jump cache's epoch, the block table, the chain trampoline's jump cache
 * (jit/jit.ts), and a 16-bit generation per 4 KiB page of this memory.
 */
export const JIT_AREA = { QUEUE: 0x410000, EPOCH: 0x41f000, TABLE: 0x420000, JUMP_CACHE: 0x520000, GEN: 0x600000 } as const;
