// What one oracle test case is: a snippet of ring-3 code (nasm syntax), the state it starts from
// and what the comparison may ignore. generate.ts makes them, image.ts turns them into a guest
// image, run.ts compares their outcomes.

/** One line of a snippet: an instruction, or a local label (`.L3:`) that jumps may target. */
export interface AsmLine {
  text: string;
  label?: boolean;
  /**
   * RFLAGS bits whose value is undefined (per the SDM) when this instruction starts, on any path
   * that reaches it: if the instruction faults, these bits of the saved RFLAGS are not compared.
   */
  undefBefore: number;
  /** A comment shown next to the instruction in reports (e.g. "count 0: flags unchanged"). */
  comment?: string;
}

export interface OracleCase {
  /** Stable name within a seed: "<family>#<n>" for directed cases, "random#<k>" for random sequences. */
  id?: string;
  /** Family (directed cases: the instruction family; random sequences: "random"). */
  family: string;
  /** Short human name, e.g. "adc r/m32, imm8 (sign-extended) [CF=1]". */
  name: string;
  lines: AsmLine[];
  /** The 16 GPRs in encoding order (rax rcx rdx rbx rsp rbp rsi rdi r8-r15), as unsigned 64-bit. */
  regs: bigint[];
  rflags: bigint;
  /** Byte offset in the pool of the window's initial contents (a multiple of 8). */
  poolOffset: number;
  /** RFLAGS bits undefined when the snippet ends normally. */
  undefEnd: number;
  /** GPRs (bit i = register i) whose final value the SDM leaves undefined: not compared. */
  ignoreRegs?: number;
  /** Shown in the report (e.g. why a field is or is not compared). */
  note?: string;
}

/** The instruction lines of a case (labels excluded), in order. */
export function instructions(c: OracleCase): AsmLine[] {
  return c.lines.filter((l) => !l.label);
}
