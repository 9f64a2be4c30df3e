// Which RFLAGS bits an instruction defines, leaves alone or leaves undefined, per the manuals.
// The oracle compares only bits that are defined after the last instruction that wrote them:
// an "undefined" flag may legitimately differ between two correct CPUs (and does: Intel and AMD
// disagree on several), so the soft CPU is free there.
//
// Rule used throughout: a bit is compared only if BOTH Intel's SDM (Vol. 2A/2B, each
// instruction's "Flags Affected" section, cited as "SDM <MNEMONIC>") and AMD's APM Vol. 3
// ("rFLAGS Affected" tables) define it. Where they differ, the table below says so.
//
// The bits themselves (SDM Vol. 1, 3.4.3 "EFLAGS Register").

export const CF = 0x1;
export const PF = 0x4;
export const AF = 0x10;
export const ZF = 0x40;
export const SF = 0x80;
export const TF = 0x100;
export const IF = 0x200;
export const DF = 0x400;
export const OF = 0x800;
export const NT = 0x4000;
export const RF = 0x10000;
export const AC = 0x40000;
export const ID = 0x200000;
/** The six status flags. */
export const STATUS = CF | PF | AF | ZF | SF | OF;

/**
 * RFLAGS bits compared at all: everything architectural (status flags, TF, IF, DF, IOPL, NT, RF,
 * AC, ID, and the always-one bit 1) minus what a case marks undefined.
 * RF (bit 16) matters only in exception frames: the processor sets it in the RFLAGS image it
 * pushes for fault-class exceptions (SDM Vol. 3A 6.12.1 and 18.3.1.1) and pushes it clear
 * for traps such as #BP; PUSHF never shows it.
 */
export const COMPARED = 0x3f7fd7;

export const FLAG_NAMES: [number, string][] = [
  [CF, 'CF'], [PF, 'PF'], [AF, 'AF'], [ZF, 'ZF'], [SF, 'SF'], [TF, 'TF'], [IF, 'IF'], [DF, 'DF'], [OF, 'OF'],
  [0x3000, 'IOPL'], [NT, 'NT'], [RF, 'RF'], [0x20000, 'VM'], [AC, 'AC'], [0x80000, 'VIF'], [0x100000, 'VIP'], [ID, 'ID'],
];

export function flagNames(mask: number): string {
  const out: string[] = [];
  for (const [bit, name] of FLAG_NAMES) if (mask & bit) out.push(name);
  return out.join(' ') || '-';
}

/** Flags as "CF=1 PF=0 ..." for the bits in `mask`. */
export function showFlags(value: number, mask = STATUS | DF): string {
  const out: string[] = [];
  for (const [bit, name] of FLAG_NAMES) {
    if (!(mask & bit)) continue;
    out.push(name === 'IOPL' ? `IOPL=${(value >> 12) & 3}` : `${name}=${value & bit ? 1 : 0}`);
  }
  return out.join(' ');
}

/** How an instruction leaves the flags: `defined` bits get a defined value, `undef` bits an undefined one; all others are unchanged. */
export interface FlagEffect {
  defined: number;
  undef: number;
}

export const NONE: FlagEffect = { defined: 0, undef: 0 };
const fx = (defined: number, undef = 0): FlagEffect => ({ defined, undef });

/**
 * The table. Entries marked (count) depend on the shift/rotate count; see shiftEffect.
 */
export const FLAG_TABLE: Record<string, { effect: FlagEffect | '(count)' | '(see note)'; cite: string; note?: string }> = {
  'add adc sub sbb cmp neg xadd cmpxchg cmps scas': { effect: fx(STATUS), cite: 'SDM ADD/ADC/SUB/SBB/CMP/NEG/XADD/CMPXCHG/CMPS/SCAS: OF SF ZF AF CF PF set according to the result' },
  'and or xor test': { effect: fx(OF | CF | SF | ZF | PF, AF), cite: 'SDM AND/OR/XOR/TEST: OF and CF cleared; SF ZF PF per result; AF undefined' },
  'inc dec': { effect: fx(OF | SF | ZF | AF | PF), cite: 'SDM INC/DEC: CF not affected; OF SF ZF AF PF per result' },
  'not bswap mov movzx movsx movsxd lea xchg cbw cwde cdqe cwd cdq cqo setcc cmovcc jcc push pop call ret movs stos lods': {
    effect: NONE, cite: 'SDM: "None" / "flags not affected"',
  },
  'mul imul': { effect: fx(CF | OF, SF | ZF | AF | PF), cite: 'SDM MUL/IMUL: OF CF per the upper half; SF ZF AF PF undefined' },
  'div idiv': { effect: fx(0, STATUS), cite: 'SDM DIV/IDIV: CF OF SF ZF AF PF undefined' },
  'bt bts btr btc': {
    effect: fx(CF, OF | SF | AF | PF | ZF),
    cite: 'SDM BT/BTS/BTR/BTC: CF = the bit; ZF unaffected; OF SF AF PF undefined',
    note: 'ZF is not compared either: AMD APM lists it as undefined for the BT family',
  },
  'bsf bsr': {
    effect: fx(ZF, CF | OF | SF | AF | PF),
    cite: 'SDM BSF/BSR: ZF set if the source is 0, else cleared; CF OF SF AF PF undefined',
    note: 'a zero source leaves the destination "undefined" (SDM) / "unchanged" (APM); the oracle compares it: the hardware here (and Linux) rely on "unchanged"',
  },
  'shl sal shr sar': {
    effect: '(count)',
    cite: 'SDM SAL/SAR/SHL/SHR: masked count 0: flags unaffected; else CF = last bit out (undefined for SHL/SHR when the count >= operand size), OF defined for 1-bit shifts only, SF ZF PF per result, AF undefined',
  },
  'rol ror rcl rcr': {
    effect: '(count)',
    cite: 'SDM RCL/RCR/ROL/ROR: masked count 0: flags unaffected; else CF = last bit rotated, OF defined for 1-bit rotates only; SF ZF AF PF unaffected',
  },
  'shld shrd': {
    effect: '(count)',
    cite: 'SDM SHLD/SHRD: masked count 0: flags unaffected; count > operand size: result and flags undefined; else CF = last bit out, OF defined for 1-bit shifts only, SF ZF PF per result, AF undefined',
  },
  'cmpxchg8b cmpxchg16b': { effect: fx(ZF), cite: 'SDM CMPXCHG8B/CMPXCHG16B: ZF set if equal; CF PF AF SF OF unaffected' },
  sahf: { effect: fx(SF | ZF | AF | PF | CF), cite: 'SDM SAHF: SF ZF AF PF CF from AH' },
  'clc stc cmc': { effect: fx(CF), cite: 'SDM CLC/STC/CMC: CF cleared/set/complemented' },
  'cld std': { effect: fx(DF), cite: 'SDM CLD/STD: DF cleared/set' },
  popf: { effect: '(see note)', cite: 'SDM POPF: at CPL 3 with IOPL 0, IF and IOPL are left unchanged; the other non-reserved flags are loaded (VM, VIF, VIP, RF cleared)' },
};

/** A flag effect by mnemonic, for the instructions whose effect does not depend on a count. */
export function effectOf(mnemonic: string): FlagEffect {
  for (const [names, e] of Object.entries(FLAG_TABLE)) {
    if (names.split(' ').includes(mnemonic) && typeof e.effect !== 'string') return e.effect;
  }
  throw new Error(`no flag effect for ${mnemonic}`);
}

export type ShiftOp = 'shl' | 'shr' | 'sar' | 'rol' | 'ror' | 'rcl' | 'rcr' | 'shld' | 'shrd';

/**
 * Flag effect of a shift/rotate by a known count (masked to 5 bits, 6 for 64-bit operands) or an
 * unknown one (count = undefined: the union over every count).
 */
export function shiftEffect(op: ShiftOp, size: number, count: number | undefined): FlagEffect & { resultUndefined: boolean } {
  const cmask = size === 64 ? 63 : 31;
  if (count === undefined) {
    // The union over every count: nothing becomes defined for sure (count 0 changes nothing), and
    // whatever any count leaves undefined is undefined.
    let undef = 0;
    let resultUndefined = false;
    for (let c = 1; c <= cmask; c++) {
      const e = shiftEffect(op, size, c);
      undef |= e.undef;
      resultUndefined ||= e.resultUndefined;
    }
    return { defined: 0, undef, resultUndefined };
  }
  const mc = count & cmask;
  if (mc === 0) return { defined: 0, undef: 0, resultUndefined: false };
  const ofBit = mc === 1 ? OF : 0;
  const ofUndef = mc === 1 ? 0 : OF;
  switch (op) {
    case 'shl':
    case 'shr': {
      const cfUndef = mc >= size; // only possible for 8- and 16-bit operands
      return {
        defined: (cfUndef ? 0 : CF) | ofBit | SF | ZF | PF,
        undef: (cfUndef ? CF : 0) | ofUndef | AF,
        resultUndefined: false,
      };
    }
    case 'sar':
      return { defined: CF | ofBit | SF | ZF | PF, undef: ofUndef | AF, resultUndefined: false };
    case 'rol':
    case 'ror':
    case 'rcl':
    case 'rcr':
      return { defined: CF | ofBit, undef: ofUndef, resultUndefined: false };
    case 'shld':
    case 'shrd':
      if (mc > size) return { defined: 0, undef: STATUS, resultUndefined: true };
      return { defined: CF | ofBit | SF | ZF | PF, undef: ofUndef | AF, resultUndefined: false };
  }
}

/** Flags each condition code reads (SDM Vol. 1, appendix B, table B-1). */
export const CONDITIONS: [string, number][] = [
  ['o', OF], ['no', OF], ['b', CF], ['ae', CF], ['e', ZF], ['ne', ZF], ['be', CF | ZF], ['a', CF | ZF],
  ['s', SF], ['ns', SF], ['p', PF], ['np', PF], ['l', SF | OF], ['ge', SF | OF], ['le', ZF | SF | OF], ['g', ZF | SF | OF],
];
