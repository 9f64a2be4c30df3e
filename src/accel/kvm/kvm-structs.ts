// Encoding CpuState to and from the KVM register structs (api.rst: struct kvm_regs,
// struct kvm_sregs, struct kvm_segment, struct kvm_dtable; x86-64 layouts, little-endian).
import type { CpuState, GeneralRegisters, SegmentState, TableState } from '../cpu-state.js';
import { KVM_REGS_SIZE, KVM_SREGS_SIZE } from './kvm-api.js';

const REG_ORDER = [
  'rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'rip', 'rflags',
] as const satisfies readonly (keyof GeneralRegisters)[];

export function encodeRegs(r: GeneralRegisters): Uint8Array {
  const b = new Uint8Array(KVM_REGS_SIZE);
  const v = new DataView(b.buffer);
  REG_ORDER.forEach((name, i) => v.setBigUint64(i * 8, BigInt.asUintN(64, r[name]), true));
  return b;
}

export function decodeRegs(b: Uint8Array): GeneralRegisters {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const r = {} as GeneralRegisters;
  REG_ORDER.forEach((name, i) => { r[name] = v.getBigUint64(i * 8, true); });
  return r;
}

// struct kvm_segment: u64 base; u32 limit; u16 selector; u8 type, present, dpl, db, s, l, g, avl,
// unusable, padding  (24 bytes)
const SEGMENT_SIZE = 24;
const SEGMENT_ORDER = ['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldt'] as const;

function putSegment(v: DataView, off: number, s: SegmentState): void {
  v.setBigUint64(off, BigInt.asUintN(64, s.base), true);
  v.setUint32(off + 8, s.limit >>> 0, true);
  v.setUint16(off + 12, s.selector, true);
  v.setUint8(off + 14, s.type);
  v.setUint8(off + 15, s.present ? 1 : 0);
  v.setUint8(off + 16, s.dpl);
  v.setUint8(off + 17, s.db ? 1 : 0);
  v.setUint8(off + 18, s.s ? 1 : 0);
  v.setUint8(off + 19, s.l ? 1 : 0);
  v.setUint8(off + 20, s.g ? 1 : 0);
  v.setUint8(off + 21, s.avl ? 1 : 0);
  v.setUint8(off + 22, s.unusable ? 1 : 0);
}

function getSegment(v: DataView, off: number): SegmentState {
  return {
    base: v.getBigUint64(off, true),
    limit: v.getUint32(off + 8, true),
    selector: v.getUint16(off + 12, true),
    type: v.getUint8(off + 14),
    present: v.getUint8(off + 15) !== 0,
    dpl: v.getUint8(off + 16),
    db: v.getUint8(off + 17) !== 0,
    s: v.getUint8(off + 18) !== 0,
    l: v.getUint8(off + 19) !== 0,
    g: v.getUint8(off + 20) !== 0,
    avl: v.getUint8(off + 21) !== 0,
    unusable: v.getUint8(off + 22) !== 0,
  };
}

// struct kvm_dtable: u64 base; u16 limit; u16 padding[3]  (16 bytes)
const DTABLE_OFFSET = SEGMENT_SIZE * 8; // gdt, then idt
const CR_OFFSET = DTABLE_OFFSET + 32; // cr0 cr2 cr3 cr4 cr8 efer apic_base, then interrupt_bitmap[4]
const CR_ORDER = ['cr0', 'cr2', 'cr3', 'cr4', 'cr8', 'efer', 'apicBase'] as const;

export function encodeSregs(s: CpuState): Uint8Array {
  const b = new Uint8Array(KVM_SREGS_SIZE);
  const v = new DataView(b.buffer);
  SEGMENT_ORDER.forEach((name, i) => putSegment(v, i * SEGMENT_SIZE, s[name]));
  const tables: TableState[] = [s.gdt, s.idt];
  tables.forEach((t, i) => {
    v.setBigUint64(DTABLE_OFFSET + i * 16, BigInt.asUintN(64, t.base), true);
    v.setUint16(DTABLE_OFFSET + i * 16 + 8, t.limit, true);
  });
  CR_ORDER.forEach((name, i) => v.setBigUint64(CR_OFFSET + i * 8, BigInt.asUintN(64, s[name]), true));
  return b;
}

/** Decodes kvm_sregs into everything of CpuState but the general registers. */
export function decodeSregs(b: Uint8Array): Omit<CpuState, 'regs'> {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const seg = (i: number) => getSegment(v, i * SEGMENT_SIZE);
  const table = (i: number): TableState => ({
    base: v.getBigUint64(DTABLE_OFFSET + i * 16, true),
    limit: v.getUint16(DTABLE_OFFSET + i * 16 + 8, true),
  });
  const cr = (i: number) => v.getBigUint64(CR_OFFSET + i * 8, true);
  return {
    cs: seg(0), ds: seg(1), es: seg(2), fs: seg(3), gs: seg(4), ss: seg(5), tr: seg(6), ldt: seg(7),
    gdt: table(0), idt: table(1),
    cr0: cr(0), cr2: cr(1), cr3: cr(2), cr4: cr(3), cr8: cr(4), efer: cr(5), apicBase: cr(6),
  };
}

/** struct kvm_msrs { u32 nmsrs; u32 pad; struct kvm_msr_entry { u32 index; u32 reserved; u64 data; } entries[] } */
export function encodeMsrs(msrs: readonly [number, bigint][]): Uint8Array {
  const b = new Uint8Array(8 + msrs.length * 16);
  const v = new DataView(b.buffer);
  v.setUint32(0, msrs.length, true);
  msrs.forEach(([index, data], i) => {
    v.setUint32(8 + i * 16, index, true);
    v.setBigUint64(8 + i * 16 + 8, BigInt.asUintN(64, data), true);
  });
  return b;
}
