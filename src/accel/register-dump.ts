// A readable dump of a vCPU's state, for the messages printed when a guest stops abnormally
// (triple fault, KVM entry failure or emulation failure, an unimplemented instruction).
import type { CpuState, SegmentState } from './cpu-state.js';

const hex = (v: bigint | number, width = 16) => v.toString(16).padStart(width, '0');

function segment(name: string, s: SegmentState): string {
  const flags = [
    `type=${s.type.toString(16)}`, s.s ? 'S' : 'sys', `dpl=${s.dpl}`, s.present ? 'P' : 'NP',
    s.db ? 'D' : '', s.l ? 'L' : '', s.g ? 'G' : '', s.unusable ? 'unusable' : '',
  ].filter(Boolean).join(' ');
  return `${name.toUpperCase().padEnd(3)}=${hex(s.selector, 4)} base=${hex(s.base)} limit=${hex(s.limit, 8)} ${flags}`;
}

export function formatCpuState(s: CpuState, vcpu = 0): string {
  const r = s.regs;
  const lines = [
    `vCPU ${vcpu} registers:`,
    `RAX=${hex(r.rax)} RBX=${hex(r.rbx)} RCX=${hex(r.rcx)} RDX=${hex(r.rdx)}`,
    `RSI=${hex(r.rsi)} RDI=${hex(r.rdi)} RBP=${hex(r.rbp)} RSP=${hex(r.rsp)}`,
    `R8 =${hex(r.r8)} R9 =${hex(r.r9)} R10=${hex(r.r10)} R11=${hex(r.r11)}`,
    `R12=${hex(r.r12)} R13=${hex(r.r13)} R14=${hex(r.r14)} R15=${hex(r.r15)}`,
    `RIP=${hex(r.rip)} RFLAGS=${hex(r.rflags, 8)}`,
    ...(['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldt'] as const).map((n) => segment(n, s[n])),
    `GDT=${hex(s.gdt.base)} limit=${hex(s.gdt.limit, 4)}  IDT=${hex(s.idt.base)} limit=${hex(s.idt.limit, 4)}`,
    `CR0=${hex(s.cr0, 8)} CR2=${hex(s.cr2)} CR3=${hex(s.cr3)} CR4=${hex(s.cr4, 8)}`,
    `EFER=${hex(s.efer, 8)} APIC_BASE=${hex(s.apicBase, 8)}`,
  ];
  return lines.join('\n');
}
