// The architectural state a vCPU starts from, independent of the accelerator. The boot loaders
// (Linux 64-bit entry, PVH, multiboot, firmware reset vector) produce one; KVM turns it into
// KVM_SET_REGS/KVM_SET_SREGS, the software CPU loads it directly. Register values are bigint
// because they are 64-bit; segment attributes use the layout of the descriptor's type/flags
// bits as in Intel SDM vol. 3A section 3.4.5.

export interface SegmentState {
  selector: number;
  base: bigint;
  limit: number; // byte-granular limit (already expanded when G=1)
  type: number; // 4-bit type field
  present: boolean;
  dpl: number;
  db: boolean; // default operation size (D/B)
  s: boolean; // 1 = code/data, 0 = system
  l: boolean; // 64-bit code segment
  g: boolean; // granularity
  avl?: boolean;
  unusable?: boolean;
}

export interface TableState {
  base: bigint;
  limit: number;
}

export interface GeneralRegisters {
  rax: bigint; rbx: bigint; rcx: bigint; rdx: bigint;
  rsi: bigint; rdi: bigint; rsp: bigint; rbp: bigint;
  r8: bigint; r9: bigint; r10: bigint; r11: bigint;
  r12: bigint; r13: bigint; r14: bigint; r15: bigint;
  rip: bigint; rflags: bigint;
}

export interface CpuState {
  regs: GeneralRegisters;
  cs: SegmentState; ds: SegmentState; es: SegmentState; fs: SegmentState;
  gs: SegmentState; ss: SegmentState; tr: SegmentState; ldt: SegmentState;
  gdt: TableState; idt: TableState;
  cr0: bigint; cr2: bigint; cr3: bigint; cr4: bigint; cr8: bigint;
  efer: bigint;
  apicBase: bigint;
}

export const GP_REGISTER_NAMES = [
  'rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15',
] as const;

// CR0/CR4/EFER bits used when building initial states (SDM vol. 3A 2.5, 2.2.1).
export const CR0_PE = 1n << 0n;
export const CR0_MP = 1n << 1n;
export const CR0_ET = 1n << 4n;
export const CR0_NE = 1n << 5n;
export const CR0_WP = 1n << 16n;
export const CR0_PG = 1n << 31n;
export const CR4_PAE = 1n << 5n;
export const CR4_OSFXSR = 1n << 9n;
export const CR4_OSXMMEXCPT = 1n << 10n;
export const EFER_SCE = 1n << 0n;
export const EFER_LME = 1n << 8n;
export const EFER_LMA = 1n << 10n;
export const EFER_NXE = 1n << 11n;
/** xAPIC at its default address, enabled (bit 11); the BSP flag (bit 8) is added for vCPU 0. */
export const APIC_BASE_DEFAULT = 0xfee00000n | (1n << 11n);

function zeroRegs(): GeneralRegisters {
  return {
    rax: 0n, rbx: 0n, rcx: 0n, rdx: 0n, rsi: 0n, rdi: 0n, rsp: 0n, rbp: 0n,
    r8: 0n, r9: 0n, r10: 0n, r11: 0n, r12: 0n, r13: 0n, r14: 0n, r15: 0n,
    rip: 0n, rflags: 2n,
  };
}

/** A real-mode data segment as left by reset: base = selector * 16, 64 KiB limit. */
export function realModeSegment(selector: number, type = 3): SegmentState {
  return {
    selector, base: BigInt(selector) << 4n, limit: 0xffff, type, present: true, dpl: 0,
    db: false, s: true, l: false, g: false,
  };
}

/**
 * The state after RESET (SDM vol. 3A table 9-1): real mode, CS selector F000 with base FFFF0000,
 * IP FFF0, so the first fetch is at physical FFFFFFF0.
 */
export function resetState(): CpuState {
  const cs = realModeSegment(0xf000, 0xb);
  cs.base = 0xffff0000n;
  const data = realModeSegment(0);
  return {
    regs: { ...zeroRegs(), rip: 0xfff0n, rdx: 0x600n },
    cs, ds: { ...data }, es: { ...data }, fs: { ...data }, gs: { ...data }, ss: { ...data },
    tr: { selector: 0, base: 0n, limit: 0xffff, type: 0xb, present: true, dpl: 0, db: false, s: false, l: false, g: false },
    ldt: { selector: 0, base: 0n, limit: 0xffff, type: 0x2, present: true, dpl: 0, db: false, s: false, l: false, g: false },
    gdt: { base: 0n, limit: 0xffff }, idt: { base: 0n, limit: 0xffff },
    cr0: 0x60000010n, cr2: 0n, cr3: 0n, cr4: 0n, cr8: 0n, efer: 0n,
    apicBase: APIC_BASE_DEFAULT,
  };
}

/** A flat 4 GiB segment for protected/long mode entry states. */
export function flatSegment(selector: number, code: boolean, long = false): SegmentState {
  return {
    selector, base: 0n, limit: 0xffffffff, type: code ? 0xb : 0x3, present: true, dpl: 0,
    db: !long, s: true, l: long && code, g: true,
  };
}

/** A 32-bit TSS placeholder (busy), needed because VMX refuses a null TR. */
export function defaultTss(): SegmentState {
  return { selector: 0, base: 0n, limit: 0x67, type: 0xb, present: true, dpl: 0, db: false, s: false, l: false, g: false };
}

/**
 * Flat 32-bit protected mode with paging off, as PVH (start_info in EBX) and multiboot
 * (magic in EAX, info in EBX) require: CS 0x10, data 0x18 (the selectors only matter if the guest reloads them).
 */
export function protectedModeState(entry: bigint): CpuState {
  const s = resetState();
  const data = flatSegment(0x18, false);
  return {
    ...s,
    regs: { ...zeroRegs(), rip: entry },
    cs: flatSegment(0x10, true),
    ds: { ...data }, es: { ...data }, fs: { ...data }, gs: { ...data }, ss: { ...data },
    tr: defaultTss(),
    cr0: CR0_PE | CR0_ET,
  };
}

/**
 * 64-bit long mode with paging on; the caller has built page tables at `cr3` and a GDT at `gdtBase`
 * with 64-bit code at 0x10 and data at 0x18 (boot.rst, "64-bit boot protocol").
 */
export function longModeState(entry: bigint, cr3: bigint, gdtBase: bigint, gdtLimit: number): CpuState {
  const s = resetState();
  const data = flatSegment(0x18, false);
  return {
    ...s,
    regs: { ...zeroRegs(), rip: entry },
    cs: flatSegment(0x10, true, true),
    ds: { ...data }, es: { ...data }, fs: { ...data }, gs: { ...data }, ss: { ...data },
    tr: defaultTss(),
    gdt: { base: gdtBase, limit: gdtLimit },
    idt: { base: 0n, limit: 0 },
    cr0: CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG,
    cr3,
    cr4: CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT,
    efer: EFER_LME | EFER_LMA | EFER_SCE | EFER_NXE,
  };
}
