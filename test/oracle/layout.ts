// The differential oracle's guest memory layout, in one place: the guest (guests/oracle/harness.asm,
// which receives these numbers as a generated `layout.inc`), the image builder (image.ts) and the
// result reader (run.ts) must all agree on it. Everything is identity-mapped (virtual = physical).
//
//   0x000000-0x0fffff  low memory (multiboot info, ACPI tables): supervisor RW
//   0x100000           IMAGE_BASE: the multiboot image starts here (kernel code, supervisor)
//   0x108000-0x118fff  system tables inside the image, filled by image.ts: GDT, IDT, TSS,
//                      page tables, the kernel stack and the panic page
//   0x1f0000           CONTROL page (user RW, NX): the driver's variables, the scratch result
//                      header that the epilogue / fault handler fill, the harness stack
//   0x1f1000           not present
//   0x1f2000           SUPERVISOR page (present, RW, U/S=0): user access -> #PF (protection)
//   0x1f3000           READONLY page (user, read-only): user writes -> #PF (protection)
//   0x1f4000           not present
//   0x1f5000           DATA page (user RW, NX); its last WINDOW_SIZE bytes are the per-case
//                      memory window: a stack part [WINDOW_START, STACK_LIMIT) and a data part
//                      [STACK_LIMIT, WINDOW_END). The window is filled from the pool before each
//                      case and copied into the result record after it.
//   0x1f6000-0x1fffff  not present (an access running off the end of the window -> #PF)
//   0x200000           USER_CODE: the ring-3 driver, the snippets, the case table and the pool
//                      (user, read-only, executable; 2 MiB pages)
//   RESULTS            (2 MiB aligned, after the user part): one RESULT_SIZE record per case
//                      (user RW, NX; 2 MiB pages)
// Nothing else is mapped: every other canonical address gives #PF, non-canonical ones #GP/#SS.

export const IMAGE_BASE = 0x100000;
export const GDT_ADDR = 0x108000;
export const IDT_ADDR = 0x109000;
export const TSS_ADDR = 0x10a000;
export const PML4_ADDR = 0x10b000;
export const PDPT_ADDR = 0x10c000;
export const PD_ADDR = 0x10d000;
/** 4 KiB page table for the first 2 MiB (the only region not mapped with 2 MiB pages). */
export const PT0_ADDR = 0x10e000;
export const KSTACK_BOTTOM = 0x110000;
export const KSTACK_TOP = 0x118000;
/** Written by the kernel when the harness itself fails (see harness.asm `panic`). */
export const PANIC_ADDR = 0x118000;
/** End of the kernel part of the image (all of the above is supervisor-only). */
export const KERNEL_END = 0x119000;

export const CONTROL_ADDR = 0x1f0000;
export const SUPERVISOR_PAGE = 0x1f2000;
export const READONLY_PAGE = 0x1f3000;
export const UNMAPPED_PAGE = 0x1f1000;
export const DATA_PAGE = 0x1f5000;
export const GUARD_PAGE = 0x1f6000;

export const WINDOW_SIZE = 0x300;
export const WINDOW_END = DATA_PAGE + 0x1000;
export const WINDOW_START = WINDOW_END - WINDOW_SIZE; // 0x1f5d00
/** The stack part of the window: [WINDOW_START, STACK_LIMIT); RSP starts at STACK_INIT. */
export const STACK_LIMIT = WINDOW_START + 0x100; // 0x1f5e00
export const STACK_INIT = WINDOW_START + 0x80; // 0x1f5d80: 128 bytes to push, 128 to pop
/** The data part of the window and the default pointer into its middle. */
export const DATA_START = STACK_LIMIT;
export const DATA_MID = DATA_START + 0x100; // 0x1f5f00

export const USER_CODE = 0x200000;

// ---- The control page (offsets from CONTROL_ADDR) ----
export const CTL = {
  index: 0x00, // u64: the case being run (the driver's loop counter)
  count: 0x08, // u64: number of cases (image.ts)
  cases: 0x10, // u64: address of the case table (image.ts)
  results: 0x18, // u64: address of the result table (image.ts)
  result: 0x20, // u64: this case's result record
  target: 0x28, // u64: this case's snippet
  snipStart: 0x30, // u64: [snipStart, snipEnd) = all snippets (image.ts); faults elsewhere are harness faults
  snipEnd: 0x38,
  faults: 0x40, // u64: exceptions taken so far (the kernel counts them)
  scratch: 0x100, // the result header under construction (RESULT_HEADER_SIZE bytes)
  hstackTop: 0x1000, // the harness stack grows down from the end of the page
} as const;

// ---- A case record (CASE_SIZE bytes, in the case table; read-only to the guest) ----
//   +0   16 GPRs in encoding order (rax rcx rdx rbx rsp rbp rsi rdi r8..r15)
//   +128 RFLAGS, +136 snippet address, +144 address of the window's initial bytes (in the pool)
export const CASE_SIZE = 160;
export const CASE_RFLAGS = 128;
export const CASE_CODE = 136;
export const CASE_POOL = 144;

// ---- A result record (RESULT_SIZE bytes) ----
//   +0   16 GPRs (encoding order), +128 RFLAGS, +136 vector (all ones: none), +144 error code,
//   +152 CR2, +160 RIP (of the fault; 0 when the snippet ran to its end), +168 marker,
//   +176 reserved, +192 the window after the case.
export const RESULT_HEADER_SIZE = 192;
export const RESULT_SIZE = RESULT_HEADER_SIZE + WINDOW_SIZE;
export const RES = { rflags: 128, vector: 136, error: 144, cr2: 152, rip: 160, marker: 168, window: RESULT_HEADER_SIZE } as const;
/** marker = MARKER_MAGIC << 32 | case index: tells a record that was written from one never reached. */
export const MARKER_MAGIC = 0x4f52434cn; // "ORCL"
export const NO_VECTOR = 0xffffffffffffffffn;

// ---- GDT selectors ----
export const SEL_KCODE = 0x08;
export const SEL_KDATA = 0x10;
export const SEL_UDATA = 0x18 | 3;
export const SEL_UCODE = 0x20 | 3;
export const SEL_TSS = 0x28;

// ---- isa-debug-exit values the harness writes ----
export const EXIT_DONE = 0x10; // every case ran
export const EXIT_PANIC = 0x3f; // the harness faulted (see PANIC_ADDR)
export const exitStatusOf = (v: number): number => ((v << 1) | 1) & 0xff;

/** Register names in encoding order (the order of the case and result records). */
export const REG64 = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const;
export const RSP = 4;

export const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to;

/** The numbers above as nasm `equ`s, for harness.asm's `%include "layout.inc"`. */
export function layoutInc(): string {
  const hex = (n: number) => `0x${n.toString(16)}`;
  const lines: string[] = ['; generated by test/oracle/layout.ts: do not edit'];
  const def = (name: string, v: number) => lines.push(`${name} equ ${hex(v)}`);
  def('IMAGE_BASE', IMAGE_BASE);
  def('GDT_ADDR', GDT_ADDR);
  def('IDT_ADDR', IDT_ADDR);
  def('PML4_ADDR', PML4_ADDR);
  def('KSTACK_TOP', KSTACK_TOP);
  def('PANIC_ADDR', PANIC_ADDR);
  def('KERNEL_END', KERNEL_END);
  def('CONTROL_ADDR', CONTROL_ADDR);
  def('USER_CODE', USER_CODE);
  def('WINDOW_START', WINDOW_START);
  def('WINDOW_QWORDS', WINDOW_SIZE / 8);
  def('HEADER_QWORDS', RESULT_HEADER_SIZE / 8);
  def('RESULT_SIZE', RESULT_SIZE);
  def('CASE_SIZE', CASE_SIZE);
  def('CASE_RFLAGS', CASE_RFLAGS);
  def('CASE_CODE', CASE_CODE);
  def('CASE_POOL', CASE_POOL);
  for (const [k, v] of Object.entries(CTL)) {
    def(`CTL_${k.toUpperCase()}`, CONTROL_ADDR + v); // absolute (ring 0)
    def(`CTLO_${k.toUpperCase()}`, v); // offset from the `control` label (ring 3, RIP-relative)
  }
  for (const [k, v] of Object.entries(RES)) def(`RES_${k.toUpperCase()}`, v);
  def('MARKER_MAGIC', Number(MARKER_MAGIC));
  def('SEL_KCODE', SEL_KCODE);
  def('SEL_KDATA', SEL_KDATA);
  def('SEL_UDATA', SEL_UDATA);
  def('SEL_UCODE', SEL_UCODE);
  def('SEL_TSS', SEL_TSS);
  def('EXIT_DONE', EXIT_DONE);
  def('EXIT_PANIC', EXIT_PANIC);
  return lines.join('\n') + '\n';
}
