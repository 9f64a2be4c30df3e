// The JIT's block compiler: decodes a run of 64-bit guest instructions (SDM vol. 2, same rules as
// the interpreter in src/accel/soft/as/interp.ts and decode.ts) and emits one wasm function that
// performs them against the state in the shared memory: registers in the vCPU state block, guest
// RAM through the software TLB, RIP and the lazy flags at fixed offsets of the state block.
//
// Contract with the core (src/accel/soft/as/jit.ts): the function returns n >= 0 after n
// instructions with RIP set to the next one, or -(n + 1) after n instructions with RIP set to an
// instruction it did not execute ("side exit": TLB miss, page-crossing access, non-canonical
// branch target): nothing of that instruction has been done, and the interpreter executes it.
// So a compiled block never faults, and every instruction either completes or has no effect.
// Compilation stops before the first instruction it does not know (the interpreter runs it),
// after a branch, at the end of the code page and after MAX_INSNS instructions. An instruction
// that runs on into the next page ends the block, behind a guard that the next page is still
// mapped and unwritten (pageGuard).

import { Bytes, Emitter, OP, T_I32, T_I64 } from '../../../wasm/writer.js';
import { GUEST_BASE, JIT_AREA, O, SEG_INDEX, STATE_AREA } from '../layout.js';

/** Instructions per block at most (E_LEN in as/jit.ts is a byte). */
export const MAX_INSNS = 64;

// where things are for vCPU 0 (the only one that runs the JIT)
const S = STATE_AREA;
/** The TLBs in the state block (as/mmu.ts): offset, bytes per TLB, entries (tags, then addends). */
export const O_TLB = 4096;
export const TLB_BYTES = 0x11000;
export const TLB_N = 4096;
/** A 16-bit generation per 4 KiB host page (as/jit.ts JIT_GEN). */
const JIT_GEN = JIT_AREA.GEN;
const K_READ = 0;
const K_WRITE = 1;

// imported globals (index = import order, see batch.ts GLOBAL_NAMES)
export const G = { flagsOther: 0 } as const;
// RIP and the lazy flags (as/state.ts O_RIP, O_LF_*; as/flags.ts), stored and loaded at these
// absolute addresses (address operand i32.const 0): one machine store each, where the imported
// mutable globals they were cost a load of the global's cell first.
const RIP_AT = S + O.RIP;
const LF = { op: S + O.LF_OP, size: S + O.LF_SIZE, res: S + O.LF_RES, a: S + O.LF_A, b: S + O.LF_B, cin: S + O.LF_CIN, eager: S + O.LF_EAGER } as const;
// flushFlags writes the operation and the size with one little-endian i64 store
if (LF.size !== LF.op + 4) throw new Error('soft CPU layout: LF_SIZE must follow LF_OP');
// helpers (batch.ts FUNCS), reached through the helper table, but for the chain trampoline
export const F = { cond: 0, getCF: 1, shift: 2, bitScan: 3, getFlags: 4, patchStatus: 5, rdtsc: 6, sys: 7, rep: 8, chain: 9 } as const;
/** A guest page as the fetch TLB maps it: its TLB addend, host address and page generation. */
interface PageMap { addend: bigint; host: number; gen: number }
/**
 * The batch's index of a branch target's function (batch.ts compileBatch), or -1: `other` is
 * null for a target on the block's page, else where the target's page is and its generation.
 */
export type SiblingFn = (target: bigint, other: { host: number; gen: number } | null) => number;
/**
 * Function 0 of every block module: the chain trampoline, imported as a function (batch.ts
 * modulePrelude), which a block's exits tail-call directly; blocks are functions 1, 2, ...
 */
export const CHAIN_FUNC = 0;
/** i32x4.splat (SIMD proposal, prefix 0xFD, opcode 0x11). */
const I32X4_SPLAT = 0x11;

/**
 * Tail-call the chain trampoline with the arguments already pushed (target, budget left, count
 * retired) and its fourth, unused one: a v128, which keeps the trampoline's signature out of
 * JavaScript's reach, so that V8 does not compile a JavaScript call wrapper for the import with
 * every block module (batch.ts FUNCS). `i32.const 0; i32x4.splat` is the shortest v128 (4 bytes).
 */
function returnCallChain(c: Emitter): void {
  c.i32c(0).byte(0xfd).u32(I32X4_SPLAT).op(OP.returnCall).u32(CHAIN_FUNC);
}
// lazy flag operations (as/flags.ts)
/** RFLAGS bits (SDM vol. 1 3.4.3). */
const F_CF = 1, F_OF = 1 << 11;
const OP_ADD = 1, OP_ADC = 2, OP_SUB = 3, OP_SBB = 4, OP_LOGIC = 5, OP_INC = 6, OP_DEC = 7, OP_IMUL = 8, OP_MUL = 9;
/** Not a core operation: the block's own tag for "a shift by a constant set the flags" (Pend.shiftOp), so cond() reads ZF and SF from FR. */
const OP_SHIFT = 100;

// locals of a block function
// parameter 0: the instruction budget (the block may loop while it lasts)
// parameter 1: instructions retired by the blocks that tail-called this one since the core's loop
// (a block returns the total, so the core learns what the whole chain retired)
const LEFT = 0, ACC = 1;
const L = 2, V = 3, A = 4, B = 5, R = 6, T = 7; // i64
const I = 8, H = 9, C = 10, N = 11; // i32; N: instructions retired by earlier iterations of the block's loop
// the lazy flags of the block's last flag-setting instruction, until they are stored in the state
// block (see Pend): operands and result (i64), the operation when it is only known at run time
// (ADC/SBB) and INC/DEC's carry-in (i32)
const FA = 12, FB = 13, FR = 14, FOP = 15, FCIN = 16;
/** CF and OF (RFLAGS bits 0 and 11) a rotate by a constant set, until they are patched in (Pend.patch). */
const PATCH = 17;
/** Which path reached a join of kept branches whose flags states differ (Pend.alts). */
const SEL = 18;
export const BLOCK_LOCALS: [number, number][] = [[6, T_I64], [4, T_I32], [3, T_I64], [4, T_I32]]; // after the 2 parameters
// Blocks that loop keep the guest's general registers in locals RG..RG+15 (see `regs`) and leave
// through one epilogue: XT the target of a chaining exit (i64), XV the instructions this pass of
// the loop retired before the exit, XK the kind of exit (EXIT_*; side exits leave it 0, as
// locals start at 0 and side exits are the most numerous exits).
const RG = 19, XT = 35, XV = 36, XK = 37;
const LOOP_LOCALS: [number, number][] = [...BLOCK_LOCALS, [17, T_I64], [2, T_I32]];
const EXIT_SIDE = 0, EXIT_CHAIN = 1, EXIT_RETURN = 2;
/** XK = EXIT_SIBLING + i: tail-call the block's i-th distinct sibling (see `siblingExits`). */
const EXIT_SIBLING = 3;

/**
 * Flags a compiled instruction produced and the block keeps in locals (FA FB FR, FOP, FCIN)
 * instead of the state block. Storing the five lazy flags after every ALU instruction
 * cost more than the instruction itself, and most flags are overwritten before anything reads
 * them; so they are stored only where something outside the block's code may read them: before
 * a call into the core that reads or sets flags, and at every exit (side exits, the end, chaining,
 * the loop's back edge, whose head expects the state block to be current).
 */
interface Pend {
  op: number; // the lazy operation (as/flags.ts), unless `dyn`
  size: number;
  dyn: boolean; // the operation is in FOP (ADC/SBB: which one depends on the carry-in)
  cin: boolean; // INC/DEC: lfCin from FCIN
  noB: boolean; // MUL: lfB is not part of it
  synced: boolean; // already stored in the state block
  /**
   * SHL/SHR/SAR by a constant: the flags are worked out from FA (the operand) and FR (the result)
   * only when stored (shiftFlags), as eager flags (`op` is unused). Three shifts in
   * the bignum loops Linux's crypto self-tests spend their time in had each computed and stored
   * all six flags, and all were overwritten by the next ADD unread.
   */
  shiftOp: number; // 0: none; else the /r of the shift (4 SHL, 5 SHR, 7 SAR)
  shiftN: number; // its count
  /**
   * ROL/ROR by a constant came after the flags above: CF and OF are those in local PATCH (the
   * rotate changes only those two), the rest are as described. Storing means storing the flags
   * above (unless `baseSynced`: they are in the state block already) and then having the core patch
   * CF and OF in (patchStatus). Most rotates' flags are overwritten unread (blake2s, ChaCha, SHA:
   * an ADD or XOR follows), so this costs nothing there, where calling the core's shift for
   * every rotate did.
   */
  patch: boolean;
  baseSynced: boolean;
  /**
   * After a kept branch joins the fall-through path with different flags states (see
   * joinAt): the state is alts[j] where j is local SEL, set by each path. Storing them tests
   * SEL; a state that is never stored (the next instruction sets new flags, the usual case) costs
   * one local.set per path. The other fields are unused.
   */
  alts: (Pend | null)[] | null;
}

/**
 * A Pend with every field set (one object shape, so that V8 keeps the accesses fast). Variants are
 * made with pendLike, never with an object spread: V8 gives a spread's copy a map of its own, and
 * code optimized for one map was deoptimized at the other ("wrong map" in flushFlags, twice a boot,
 * each time followed by another TurboFan compile on V8's worker).
 */
function pendOf(op: number, size: number, dyn: boolean, cin: boolean, noB: boolean, shiftOp = 0, shiftN = 0): Pend {
  return { op, size, dyn, cin, noB, synced: false, shiftOp, shiftN, patch: false, baseSynced: false, alts: null };
}

/** A copy of `p` (a new object: Pends are shared by reference, never changed) with `change` applied. */
function pendLike(p: Pend, change: Partial<Pick<Pend, 'synced' | 'patch' | 'baseSynced' | 'alts'>>): Pend {
  const q = { op: p.op, size: p.size, dyn: p.dyn, cin: p.cin, noB: p.noB, synced: p.synced, shiftOp: p.shiftOp, shiftN: p.shiftN, patch: p.patch, baseSynced: p.baseSynced, alts: p.alts };
  if (change.synced !== undefined) q.synced = change.synced;
  if (change.patch !== undefined) q.patch = change.patch;
  if (change.baseSynced !== undefined) q.baseSynced = change.baseSynced;
  if (change.alts !== undefined) q.alts = change.alts;
  return q;
}

/** Address of segment register `seg`'s base in the state block (layout.ts O.SEG: 32 bytes each, base at 16). */
const segBase = (seg: number): number => S + O.SEG + seg * 32 + 16;

/** Thrown when an instruction cannot be compiled (not an Error: capturing a stack trace per block end cost more than compiling an instruction). */
class Bail {}
const BAIL = new Bail();
const bail = (): never => { throw BAIL; };

type FlagsKnown = { op: number; size: number } | null;

/**
 * A forward branch kept inside its block (see BlockCompiler.compile): the Jcc, JMP or CALL at
 * position `k` of the block goes to `target`, a later address on the block's page. `pend`/`fk`:
 * the flags state it leaves with.
 */
interface Edge { k: number; target: bigint; pend: Pend | null; fk: FlagsKnown }

/** A target of kept branches: `p` is its position in the block once compiled, -1 until then. */
interface Target { rip: bigint; edges: Edge[]; p: number }

/**
 * A branch depth that is known only when the block is complete (how many wasm blocks of kept
 * branches are open around it): written as a 2-byte padded LEB128 and filled in at the end. `at`: its
 * offset in the block's code; `base`: the depth without those blocks; `pos`: the position of the
 * instruction it is in; `edge`: for a kept branch, the branch (its own wasm block is the target).
 */
interface Fix { at: number; base: number; pos: number; edge: Edge | null }

/** Whether two flags states are the same (same operation, same locals in use, same sync state). */
function samePend(a: Pend | null, b: Pend | null): boolean {
  if (a === b) return true;
  if (!a || !b) return false;
  return a.op === b.op && a.size === b.size && a.dyn === b.dyn && a.cin === b.cin && a.noB === b.noB && a.synced === b.synced
    && a.shiftOp === b.shiftOp && a.shiftN === b.shiftN && a.patch === b.patch && a.baseSynced === b.baseSynced && a.alts === b.alts;
}

interface Mem { base: number; index: number; scale: number; disp: bigint; ripRel: boolean }
/** A decoded ModR/M operand; `mem` null for the register form (one object shape for both: V8 optimizes its reads monomorphic). */
interface ModRM { mod: number; reg: number; rm: number; mem: Mem | null }

const MASK = (size: number): bigint => (size === 8 ? 0xffffffffffffffffn : (1n << BigInt(size * 8)) - 1n);
/**
 * An immediate as the unsigned value of `size` bytes: `v & MASK(size)`, written so that V8 does not
 * speculate the AND on 64-bit BigInts (MASK(8) is not one: the compiler thread's optimized one1 was
 * thrown away the first time a 64-bit instruction with an immediate came along, "not a BigInt64").
 */
const uimm = (v: bigint, size: number): bigint => BigInt.asUintN(size * 8, v);
const canonical = (a: bigint): boolean => BigInt.asIntN(48, a) === BigInt.asIntN(64, a);

/** Code emitter for one instruction (discarded when the instruction turns out unsupported). */
class Code extends Emitter {
  /** Structured-control nesting (if/block/loop) this instruction's code has open. */
  depth = 0;
  /**
   * Where the last `local.set` starts and ends, and its local, while nothing has been written
   * after it (see get). The buffer must be emptied with clear(), which forgets it, never by
   * setting `length`.
   */
  private setAt = -1;
  private setEnd = -1;
  private setLocal = -1;

  override op(o: number): this {
    if (o === OP.if || o === OP.block || o === OP.loop) this.depth++;
    else if (o === OP.end) this.depth--;
    return this.byte(o);
  }

  override set(i: number): this {
    const at = this.length;
    super.set(i);
    this.setAt = at;
    this.setEnd = this.length;
    this.setLocal = i;
    return this;
  }

  /**
   * `local.set x` right before `local.get x` becomes `local.tee x`: the same (core spec 4.4.5),
   * two bytes shorter, and Liftoff keeps the value where it is instead of reloading it.
   */
  override get(i: number): this {
    if (i === this.setLocal && this.length === this.setEnd) {
      this.patchByte(this.setAt, OP.localTee);
      this.setEnd = -1;
      return this;
    }
    return super.get(i);
  }

  /** Empty the buffer for the next instruction's code. */
  clear(): void {
    this.length = 0;
    this.depth = 0;
    this.setEnd = -1;
  }

  /** RIP := a constant or a local's value (the state block's O_RIP, as/state.ts rip()). */
  setRip(v: bigint | { local: number }): this {
    this.i32c(0);
    if (typeof v === 'bigint') this.i64c(v); else this.get(v.local);
    return this.mem(OP.i64Store, 3, RIP_AT);
  }

  /** Mask the i64 on the stack to `size` bytes. */
  mask(size: number): this {
    if (size === 8) return this;
    // 32 bits: wrap and zero-extend (2 bytes; an i64.const 0xffffffff and i64.and take 7)
    if (size === 4) return this.op(OP.i32WrapI64).op(OP.i64ExtendI32U);
    return this.i64c(MASK(size)).op(OP.i64And);
  }

  /** Sign-extend the (masked) i64 on the stack from `size` bytes. */
  sext(size: number): this {
    if (size === 1) return this.op(OP.i64Extend8S);
    if (size === 2) return this.op(OP.i64Extend16S);
    if (size === 4) return this.op(OP.i64Extend32S);
    return this;
  }

  /** Load host memory at the i32 address on the stack, zero-extended to i64. */
  load(size: number, offset = 0): this {
    switch (size) {
      case 1: return this.mem(OP.i64Load8U, 0, offset);
      case 2: return this.mem(OP.i64Load16U, 1, offset);
      case 4: return this.mem(OP.i64Load32U, 2, offset);
      default: return this.mem(OP.i64Load, 3, offset);
    }
  }

  /** Store the i64 on the stack (low `size` bytes) at the i32 address below it. */
  store(size: number, offset = 0): this {
    switch (size) {
      case 1: return this.mem(OP.i64Store8, 0, offset);
      case 2: return this.mem(OP.i64Store16, 1, offset);
      case 4: return this.mem(OP.i64Store32, 2, offset);
      default: return this.mem(OP.i64Store, 3, offset);
    }
  }
}

/** Reads guest code bytes from the host memory: within one page, and into the next when allowed. */
class Cursor {
  pos = 0;
  /** Bytes of the current instruction read so far. */
  n = 0;
  /** The instruction went on into the next page (at `next`). */
  crossed = false;
  private end = 0;
  private next = -1;
  constructor(private readonly mem: Uint8Array) {}
  /**
   * Start reading an instruction at host address `at`; its page ends at `end`, and the next
   * linear page starts at host address `next` (-1: it may not be read).
   */
  reset(at: number, end: number, next: number): void {
    this.pos = at;
    this.n = 0;
    this.end = end;
    this.next = next;
    this.crossed = false;
  }
  u8(): number {
    if (this.n >= 15) bail();
    if (this.pos >= this.end) {
      if (this.next < 0 || this.crossed) bail();
      this.pos = this.next;
      this.end = this.next + 0x1000;
      this.crossed = true;
    }
    this.n++;
    return this.mem[this.pos++]!;
  }
  s8(): bigint { return BigInt((this.u8() << 24) >> 24); }
  u16(): number { const lo = this.u8(); return lo | (this.u8() << 8); }
  s32(): bigint { const lo = this.u16(); return BigInt(((this.u16() << 16) | lo) | 0); }
  u64(): bigint { const lo = BigInt(this.s32()) & 0xffffffffn; return lo | ((BigInt(this.s32()) & 0xffffffffn) << 32n); }
}

/** Compiles blocks for one CPL (which selects the user or supervisor TLBs). */
export class BlockCompiler {
  private code = new Code();
  private readonly cur: Cursor;
  private start = 0n; // RIP of the instruction being compiled
  private next = 0n; // RIP after it
  private k = 0; // instructions already in the block
  private user = false;
  private cpl = 0;
  /** Set by a direct JMP/CALL to a later address on the block's page (blocks that do not loop): compilation continues there. */
  private follow: bigint | null = null;
  private blockPage = 0n;
  private blockStart = 0n;
  /** What the lazy flags hold at this point of the block, when a compiled instruction set them. */
  private fk: FlagsKnown = null;
  /** Flags held in locals (see Pend), and what they were when the current instruction started. */
  private pend: Pend | null = null;
  private pendAtStart: Pend | null = null;
  // prefixes of the current instruction
  private rex = 0;
  private os = 4;
  private h66 = false;
  private lock = false;
  private rep = 0;
  private seg = -1;

  /**
   * For the block being compiled: the wasm function index of the block at a same-page target in
   * the same module (the caller then compiles that block too), or -1 (see compile()).
   */
  private sibling: SiblingFn | null = null;

  /**
   * Registers in locals ("loop mode"), for blocks that branch back to their start: a first pass
   * compiles the block as usual, and one that loops is compiled again this way. The prologue
   * loads every register the block uses (`used`), so code inside a wasm `if` may use any of them,
   * and every exit branches to one epilogue that stores the registers the block writes
   * (`written`): an instruction changes nothing before its last possible side exit, so at any exit
   * the locals hold the state the interpreter must see. Only loops: the loads and stores around
   * each run cost more than they save in blocks that run once per entry, and V8 spends more time
   * optimizing the larger functions (measured on the boot: 4.9 vs 4.7 s with every block this way),
   * while the kernel's bignum loop (bench/soft-loop.ts) runs 17% faster.
   */
  private regs = false;
  private used = 0;
  private written = 0;
  private loops = false;
  /**
   * Whether N (instructions retired by earlier passes, less what kept branches skipped) may be
   * other than 0 where code is being emitted: only after a join that skips instructions or in a
   * block that loops. Until then exits leave it out (blocks with neither are most of them).
   */
  private nTouched = false;
  /** Loop mode: the function indices of the siblings the block calls, in order of first use. */
  private siblingExits: { fn: number; rip: bigint; guard: PageMap | null }[] = [];

  /**
   * Forward branches kept inside the block. A Jcc whose target is further on the block's page
   * branches (br_if) out of a wasm block of its own instead of leaving the block; that wasm block
   * ends at the target instruction, if compilation reaches it, where the paths join (joinAt), or
   * else after the block's tail, where it becomes an exit to the target (the branch's "stub").
   * Blocks that loop (the pass with the registers in locals) go further: a forward JMP or CALL
   * on the page is a kept branch too, and after an instruction that leaves (RET, JMP) compilation
   * goes on at the nearest target ahead, so both arms of an if-else and the code after an early
   * return stay in the loop. Other blocks follow a forward JMP to its target and end after an
   * instruction that leaves: going on there grew the compiled code 11 % with mostly cold paths,
   * the compiler thread's time 30 %, and the boot 3 %. The wasm blocks are opened at the
   * function's start, so the depths of the branches that cross them are filled in at the end
   * (`fixes`).
   */
  private targets = new Map<bigint, Target>();
  private order: Target[] = [];
  private fixes: Fix[] = [];
  /** The current instruction's kept branches and depth fixes (dropped if it cannot be compiled). */
  private newEdges: Edge[] = [];
  private newFixes: Fix[] = [];
  /** Whether the instruction before the current one falls through to it. */
  private fallsThrough = true;
  /** Position of a compiled STI in the block (-1: none): the block ends after the next instruction, its shadow (see 0xfb). */
  private stiAt = -1;
  /** Set while the stubs are emitted: the kept branches' wasm blocks still open (else -1). */
  private stubOpen = -1;
  /**
   * The side exits' shared code (blocks without the registers in locals): one stub per flags state
   * pending at a side exit (null: none), in the order first needed; stub j's wasm block is the
   * (j + 1)-th around the block's outermost label (see sideExit).
   */
  private sideStubs: (Pend | null)[] = [];
  /** The first pass (it records backPend). */
  private first = false;
  /** The flags state the first pass's first back edge had (null: none, or no back edge). */
  private backPend: Pend | null = null;
  /** Second pass of a loop: the flags state back edges keep in the locals (backPend), or null. */
  private loopPend: Pend | null = null;

  /** When set, counts the instructions compilation stopped at (their first bytes), for tuning. */
  stops?: Map<string, number>;

  /** The instructions' code of the block being compiled (reused: copied into the body at the end). */
  private readonly out = new Bytes(8192);

  private readonly view: DataView;

  constructor(private readonly mem: Uint8Array) {
    this.cur = new Cursor(mem);
    this.view = new DataView(mem.buffer, mem.byteOffset, mem.byteLength);
  }

  /** Where the fetch TLB of the block's CPL keeps linear page `page`'s tag and addend (as/jit.ts codeHost). */
  private fetchTlbSlot(page: bigint): { tag: number; addend: number } {
    const i = Number(page & BigInt(TLB_N - 1)) * 8;
    const tb = S + O_TLB + (4 + (this.user ? 1 : 0)) * TLB_BYTES;
    return { tag: tb + i, addend: tb + TLB_N * 8 + i };
  }

  /**
   * The page after the block's, as the fetch TLB maps it now: its TLB addend, host address and
   * page generation, or null when an instruction may not run on into it. It must be a code page
   * (odd generation: a write to it changes the generation) so that a guard can tell whether its
   * bytes are still those compiled; a page that holds no compiled code yet is not one. The CPU
   * runs while this reads its TLB, so the values may be stale or torn: the guard (pageGuard)
   * compares them with the live ones every time, and runs the instruction only on a match.
   */
  private nextPage(): PageMap | null {
    return this.pageAt(this.blockPage + 1n);
  }

  /** Page `page` as the fetch TLB maps it now, if it is a code page (see nextPage). */
  private pageAt(page: bigint): PageMap | null {
    if (page >= 1n << 52n) return null;
    const slot = this.fetchTlbSlot(page);
    if (this.view.getBigUint64(slot.tag, true) !== page) return null;
    const addend = this.view.getBigUint64(slot.addend, true);
    const host = Number(BigInt.asUintN(32, (page << 12n) + addend));
    if (host < GUEST_BASE || host + 0x1000 > this.mem.length) return null;
    const gen = this.view.getUint16(JIT_GEN + (host >>> 12) * 2, true);
    return (gen & 1) !== 0 ? { addend, host, gen } : null;
  }

  /**
   * Before an instruction that runs on into the next page: side exit unless the fetch TLB still
   * maps that page to the host page its bytes were read from (same tag, same addend) and that
   * page's generation is still the one they were read under (not written since).
   */
  private pageGuard(next: PageMap): void {
    this.pageChanged(this.code, this.blockPage + 1n, next);
    this.sideExitIf();
  }

  /** Push whether the fetch TLB no longer maps `page` as `was` (another host page, or the page written since). */
  private pageChanged(c: Code, page: bigint, was: PageMap): void {
    const slot = this.fetchTlbSlot(page);
    c.i32c(0).mem(OP.i64Load, 3, slot.tag).i64c(BigInt.asIntN(64, page)).op(OP.i64Ne);
    c.i32c(0).mem(OP.i64Load, 3, slot.addend).i64c(BigInt.asIntN(64, was.addend)).op(OP.i64Ne).op(OP.i32Or);
    c.i32c(0).mem(OP.i32Load16U, 1, JIT_GEN + (was.host >>> 12) * 2).i32c(was.gen).op(OP.i32Ne).op(OP.i32Or);
  }

  /**
   * Compile the block at `rip` whose first byte is at host address `host`. Returns the function
   * body (locals + code + end) and the number of instructions, or null when the first
   * instruction cannot be compiled.
   *
   * `sibling`, when given, is asked for each target of a taken conditional branch on the block's
   * page; when it returns a function index (>= 0) the block tail-calls that function directly
   * instead of going through the chain trampoline and the core's lookup. The caller promises that
   * the function is the block at that target, compiled from the same page under the same
   * generation and CPL: it is then current whenever this block is (same page, so the same
   * translation and the same code bytes), and needs no lookup.
   *
   * `kept`: the forward branches kept inside the block whose target it reached (see `targets`).
   */
  compile(rip: bigint, host: number, cpl: number, sibling: SiblingFn | null = null): { body: Bytes; count: number; kept: number } | null {
    const r = this.compileOnce(rip, host, cpl, sibling, false, true);
    return r && this.loops ? this.compileOnce(rip, host, cpl, sibling, true, false) : r;
  }

  /**
   * Emit a branch whose depth is filled in at the end (see Fix): `base` levels plus the kept
   * branches' wasm blocks open around it (for a kept branch, those inside its own).
   */
  private padBr(op: number, base: number, edge: Edge | null): void {
    const c = this.code;
    c.op(op);
    this.newFixes.push({ at: c.length, base, pos: this.k, edge });
    c.byte(0x80).byte(0x00); // 2 bytes: a depth is at most a few hundred (patchU14)
  }

  /** A kept branch to `target` from the current instruction (br_if when `cond`, else br). */
  private keep(target: bigint, cond: boolean): void {
    const e: Edge = { k: this.k, target, pend: this.pend, fk: this.fk };
    this.newEdges.push(e);
    this.padBr(cond ? OP.brIf : OP.br, this.code.depth, e);
  }

  /**
   * Before the instruction at position `p`: the kept branches to it (all from earlier
   * instructions) join the path that falls through to it, if any. When every path leaves the same
   * flags state (same operation in the same locals) it stays as it is; when the flags are in the state
   * block on every path, they are; otherwise each path sets SEL to say which of their states
   * holds (Pend.alts), so nothing is stored unless something reads them. Each branch also takes
   * the instructions it skipped off N, the count every exit adds. The target's wasm blocks are the
   * innermost open ones here: one the fall-through path leaves, and inside it one per branch.
   */
  private joinAt(t: Target, p: number): void {
    t.p = p;
    const edges = [...t.edges].reverse(); // innermost first
    const fall = this.fallsThrough ? { pend: this.pend, fk: this.fk } : null;
    const ins = [...(fall ? [fall] : []), ...edges];
    const same = (a: FlagsKnown, b: FlagsKnown) => a === b || (a !== null && b !== null && a.op === b.op && a.size === b.size);
    const keep = ins.every((x) => samePend(x.pend, ins[0]!.pend) && same(x.fk, ins[0]!.fk));
    const stored = ins.every((x) => !x.pend || x.pend.synced);
    const select = !keep && !stored;
    const c = new Code();
    // a path whose state is itself a join stores it now (SEL is about to mean this join)
    const path = (q: Pend | null, j: number): Pend | null => {
      if (!select) return q;
      if (q?.alts) { this.flushFlags(c, q); q = null; }
      c.i32c(j).set(SEL);
      return q;
    };
    const alts = [fall ? path(fall.pend, 0) : null];
    c.byte(OP.br).u32(edges.length);
    edges.forEach((e, x) => {
      c.byte(OP.end); // the landing of branch e
      alts.push(path(e.pend, x + 1));
      const skipped = p - e.k - 1;
      if (skipped > 0) { c.get(N).i32c(skipped).op(OP.i32Sub).set(N); this.nTouched = true; }
      if (x < edges.length - 1) c.byte(OP.br).u32(edges.length - 1 - x);
    });
    c.byte(OP.end);
    this.out.append(c);
    this.pend = keep ? ins[0]!.pend : select ? pendLike(pendOf(0, 0, false, false, false), { alts }) : null;
    // Paths whose flags came from the same kind of operation at different sizes (a TEST of a byte
    // skipping an XOR of a qword) leave CF, ZF and the unsigned conditions computable inline from
    // the lazy locals, whose operands and result are masked to each path's size: size 0 says the
    // size is unknown (cond() then calls the core for S, L and LE). Without this, a DEC or ADC
    // after such a join stored the flags and called the core's getCF on every pass.
    const op0 = ins[0]!.fk?.op;
    const mixed = !keep && (op0 === OP_SUB || op0 === OP_ADD || op0 === OP_LOGIC) && ins.every((x) => x.fk?.op === op0);
    this.fk = keep ? ins[0]!.fk : mixed ? { op: op0, size: 0 } : null;
    this.fallsThrough = true;
  }

  /** The nearest target of kept branches at or after `from` not compiled yet, or null. */
  private nextTarget(from: bigint): bigint | null {
    let best: bigint | null = null;
    for (const t of this.order) if (t.p < 0 && t.rip >= from && (best === null || t.rip < best)) best = t.rip;
    return best;
  }

  private compileOnce(rip: bigint, host: number, cpl: number, sibling: SiblingFn | null, regs: boolean, first: boolean): { body: Bytes; count: number; kept: number } | null {
    this.sibling = sibling;
    this.regs = regs;
    this.first = first;
    this.targets.clear();
    this.order = [];
    this.fixes = [];
    this.fallsThrough = true;
    this.stiAt = -1;
    this.stubOpen = -1;
    this.sideStubs = [];
    this.used = 0;
    this.written = 0;
    this.loops = false;
    this.nTouched = regs;
    this.siblingExits = [];
    this.user = cpl === 3;
    this.cpl = cpl;
    this.fk = null;
    this.pend = null;
    if (first) this.backPend = null;
    // second pass of a loop: the flags at the loop's head are in the state block when the block is
    // entered (SEL 0, as locals start at 0) and in the locals after a back edge that kept them
    const lp = this.backPend;
    this.loopPend = !first && regs && lp && !lp.synced && !lp.alts ? lp : null;
    if (this.loopPend) this.pend = pendLike(pendOf(0, 0, false, false, false), { alts: [null, this.loopPend] });
    this.blockPage = rip >> 12n;
    this.blockStart = rip;
    const pageBase = host & ~0xfff;
    const pageEnd = pageBase + 0x1000;
    const out = this.out;
    out.length = 0;
    let pc = rip;
    let count = 0;
    let ended = false;
    // the next page, for an instruction that runs on into it (read when one does; null: none may)
    let next: { addend: bigint; host: number; gen: number } | null | undefined;
    while (count < MAX_INSNS) {
      if (pc >> 12n !== this.blockPage) break;
      const t = this.targets.get(pc);
      if (t && t.p < 0) this.joinAt(t, count);
      const at = pageBase + Number(pc & 0xfffn);
      if (next === undefined && pageEnd - at < 15) next = this.nextPage();
      this.cur.reset(at, pageEnd, next ? next.host : -1);
      this.code.clear();
      this.start = pc;
      this.k = count;
      const savedFk = this.fk;
      const cur = this.pend as Pend | null; // (assigned by the emitters: TypeScript's narrowing cannot see it)
      this.pendAtStart = cur;
      this.newEdges = [];
      this.newFixes = [];
      this.follow = null;
      let r: boolean;
      try {
        r = this.one();
      } catch (e) {
        if (!(e instanceof Bail)) throw e;
        this.fk = savedFk;
        this.pend = cur;
        if (this.stops) {
          const bytes = [...this.mem.subarray(at, Math.min(at + 4, pageEnd))].map((x) => x.toString(16).padStart(2, '0')).join(' ');
          this.stops.set(bytes, (this.stops.get(bytes) ?? 0) + 1);
        }
        break;
      }
      if (this.cur.crossed) {
        // the instruction's bytes came from two pages: guard the second. After it `pc` is on that
        // page, which ends the block, unless the instruction jumps back onto the block's page.
        const body = this.code;
        const bodyFixes = this.newFixes;
        this.newFixes = [];
        this.code = new Code();
        this.pageGuard(next!);
        this.place(this.code);
        this.code = body;
        this.newFixes = bodyFixes;
      }
      this.place(this.code);
      for (const e of this.newEdges) {
        let tg = this.targets.get(e.target);
        if (!tg) { tg = { rip: e.target, edges: [], p: -1 }; this.targets.set(e.target, tg); this.order.push(tg); }
        tg.edges.push(e);
      }
      count++;
      if (this.stiAt >= 0 && count > this.stiAt + 1) {
        // the instruction in STI's shadow (a NOP) ran: end the block here, so that an interrupt
        // request is seen (the chain trampoline and the core's loop check it) at this boundary
        pc = this.next;
        this.fallsThrough = true;
        break;
      }
      if (r) {
        // it leaves (or branches on inside the block): go on at the nearest kept target ahead
        const t2 = this.regs ? this.nextTarget(this.next) : null;
        if (t2 === null) { ended = true; break; }
        pc = t2;
        this.fallsThrough = false;
      } else {
        pc = this.follow ?? this.next;
        this.fallsThrough = true;
      }
    }
    if (count === 0) return null;
    const unreached = this.order.filter((x) => x.p < 0);
    const reached = this.order.filter((x) => x.p >= 0).sort((a, b) => a.p - b.p);
    // the kept branches' wasm blocks, outermost first: the targets never reached (they close
    // after the tail, into their stubs), then the reached ones, the farthest first
    const blocks: { edge: Edge | null; close: number }[] = [];
    for (let x = unreached.length - 1; x >= 0; x--) for (const e of unreached[x]!.edges) blocks.push({ edge: e, close: Infinity });
    for (let x = reached.length - 1; x >= 0; x--) {
      const tg = reached[x]!;
      blocks.push({ edge: null, close: tg.p });
      for (const e of tg.edges) blocks.push({ edge: e, close: tg.p });
    }
    for (const f of this.fixes) {
      const from = f.edge ? blocks.findIndex((b) => b.edge === f.edge) + 1 : 0;
      let d = f.base;
      for (let x = from; x < blocks.length; x++) if (blocks[x]!.close > f.pos) d++;
      out.patchU14(f.at, d);
    }
    const stubBlocks = unreached.reduce((n, x) => n + x.edges.length, 0);
    const tail = this.code;
    tail.clear();
    this.stubOpen = stubBlocks;
    // the block's end when its last instruction goes on, then the kept branches whose target was
    // not compiled: each leaves the block to it
    if (!ended && this.fallsThrough) {
      this.k = count - 1;
      tail.setRip(pc);
      if (canonical(pc)) this.exitTo(pc);
      else this.retired();
    }
    for (const tg of unreached) {
      for (const e of [...tg.edges].reverse()) {
        tail.byte(OP.end);
        this.stubOpen--;
        this.k = e.k;
        this.pend = e.pend;
        this.fk = e.fk;
        this.leaveTo(tg.rip);
      }
    }
    const kept = reached.reduce((n, x) => n + x.edges.length, 0);
    const body = new Bytes(out.length + tail.length + blocks.length + 512);
    const locals = this.regs ? LOOP_LOCALS : BLOCK_LOCALS;
    body.u32(locals.length);
    for (const [n, t] of locals) body.u32(n).byte(t);
    if (!this.regs) {
      // The outermost label is where a back edge to the block's start goes (backEdge). A block
      // without one gets a plain `block` there instead (same nesting, so the same branch depths;
      // nothing branches to it): for a `loop`, TurboFan builds a loop header with a phi for every
      // local and runs its loop analysis, which cost ~15 % of its time on the boot's blocks
      // (all the blocks of a boot to /init compiled by TurboFan: 2.39 -> 2.04 s).
      for (let x = 0; x < this.sideStubs.length; x++) body.byte(OP.block).byte(0x40);
      body.byte(this.loops ? OP.loop : OP.block).byte(0x40);
      for (let x = 0; x < blocks.length; x++) body.byte(OP.block).byte(0x40);
      body.append(out);
      body.append(tail);
      body.byte(OP.end);
      body.byte(OP.unreachable);
      for (const p of this.sideStubs) {
        body.byte(OP.end);
        const stub = new Code();
        this.sideStub(stub, p);
        body.append(stub);
      }
      body.byte(OP.end);
      return { body, count, kept };
    }
    // prologue: the registers the block uses, into locals
    const pro = new Code();
    for (let r = 0; r < 16; r++) {
      if (this.used & (1 << r)) pro.i32c(0).mem(OP.i64Load, 3, S + O.GPR + r * 8).set(RG + r);
    }
    body.append(pro);
    // every exit sets XV/XK (XT) and branches out of this wasm block to the epilogue
    body.byte(OP.block).byte(0x40).byte(OP.loop).byte(0x40);
    for (let x = 0; x < blocks.length; x++) body.byte(OP.block).byte(0x40);
    body.append(out);
    body.append(tail);
    body.byte(OP.end);
    body.byte(OP.end);
    this.epilogue(body);
    body.byte(OP.end);
    return { body, count, kept };
  }

  /** Append an instruction's code to the block, with its depth fixes. */
  private place(code: Code): void {
    const base = this.out.length;
    for (const f of this.newFixes) { f.at += base; this.fixes.push(f); }
    this.newFixes = [];
    this.out.append(code);
  }

  /**
   * Loop mode's one way out: store the registers the block wrote, then (XV + N instructions
   * retired by this run of the block) return -(retired + 1) for a side exit, tail-call the chain
   * trampoline for a chaining exit, or return the count.
   */
  private epilogue(body: Bytes): void {
    const c = new Code();
    for (let r = 0; r < 16; r++) {
      if (this.written & (1 << r)) c.i32c(0).get(RG + r).store(8, S + O.GPR + r * 8);
    }
    c.get(XV).get(N).op(OP.i32Add).set(XV);
    c.get(XK).i32c(EXIT_SIDE).op(OP.i32Eq).op(OP.if).byte(0x40).i32c(-1).get(XV).get(ACC).op(OP.i32Add).op(OP.i32Sub).op(OP.return).op(OP.end);
    // the budget left and the count retired, for the next block or the trampoline
    const nextArgs = () => c.get(LEFT).get(XV).op(OP.i32Sub).get(ACC).get(XV).op(OP.i32Add);
    c.get(XK).i32c(EXIT_CHAIN).op(OP.i32Eq).op(OP.if).byte(0x40).get(XT);
    nextArgs();
    returnCallChain(c);
    c.op(OP.end);
    this.siblingExits.forEach(({ fn, rip, guard }, i) => {
      // as exitTo's direct call: only when the budget holds any block and no interrupt is pending
      // (and, on another page, while the fetch TLB maps it as compiled: else the trampoline)
      c.get(XK).i32c(EXIT_SIBLING + i).op(OP.i32Eq).op(OP.if).byte(0x40);
      c.get(XV).i32c(MAX_INSNS).op(OP.i32Add).get(LEFT).op(OP.i32GtS);
      c.i32c(0).mem(OP.i32Load, 2, S + O.INTR_REQUEST).op(OP.i32Or);
      c.op(OP.if).byte(0x40).get(XV).get(ACC).op(OP.i32Add).op(OP.return).op(OP.end);
      if (guard) {
        this.pageChanged(c, rip >> 12n, guard);
        c.op(OP.if).byte(0x40).i64c(rip);
        nextArgs();
        returnCallChain(c);
        c.op(OP.end);
      }
      nextArgs();
      c.op(OP.returnCall).u32(fn);
      c.op(OP.end);
    });
    c.get(XV).get(ACC).op(OP.i32Add);
    body.append(c);
  }

  /** Loop mode: branch to the epilogue (the wasm block around the loop). */
  private toEpilogue(): void {
    if (this.stubOpen >= 0) this.code.op(OP.br).u32(this.code.depth + this.stubOpen + 1);
    else this.padBr(OP.br, this.code.depth + 1, null);
  }

  /** Push the 64-bit register r. */
  private reg64(r: number): void {
    if (!this.regs) { this.code.i32c(0).mem(OP.i64Load, 3, S + O.GPR + r * 8); return; }
    this.used |= 1 << r;
    this.code.get(RG + r);
  }

  /** Local `src` becomes the whole 64-bit register r. */
  private setReg64(r: number, src: number): void {
    if (!this.regs) { this.code.i32c(0).get(src).store(8, S + O.GPR + r * 8); return; }
    this.used |= 1 << r;
    this.written |= 1 << r;
    this.code.get(src).set(RG + r);
  }

  // ---------------------------------------------------------------- decoding helpers

  /** Whether the bytes right after the current instruction, on this page, are a NOP (90, or 0F 1F and its ModR/M: a hint NOP to the compiler). */
  private nopAhead(): boolean {
    const p = this.cur.pos;
    if ((p & 0xfff) > 0xffd) return false;
    const b0 = this.mem[p];
    return b0 === 0x90 || (b0 === 0x0f && this.mem[p + 1] === 0x1f);
  }

  private modrm(): ModRM {
    const m = this.cur.u8();
    const mod = m >> 6;
    const reg = ((m >> 3) & 7) | ((this.rex & 4) << 1);
    let rm = m & 7;
    if (mod === 3) return { mod, reg, rm: rm | ((this.rex & 1) << 3), mem: null };
    const mem: Mem = { base: -1, index: -1, scale: 0, disp: 0n, ripRel: false };
    if (rm === 4) {
      const sib = this.cur.u8();
      mem.scale = sib >> 6;
      const idx = ((sib >> 3) & 7) | ((this.rex & 2) << 2);
      const base = sib & 7;
      if (base === 5 && mod === 0) mem.disp = this.cur.s32();
      else mem.base = base | ((this.rex & 1) << 3);
      if (idx !== 4) mem.index = idx;
    } else if (rm === 5 && mod === 0) {
      mem.disp = this.cur.s32();
      mem.ripRel = true;
    } else {
      rm |= (this.rex & 1) << 3;
      mem.base = rm;
    }
    if (mod === 1) mem.disp += this.cur.s8();
    else if (mod === 2) mem.disp += this.cur.s32();
    return { mod, reg, rm: -1, mem };
  }

  /** Decoding is complete: the instruction ends here. */
  private done(): void { this.next = this.start + BigInt(this.cur.n); }

  private immZ(size: number): bigint {
    if (size === 1) return BigInt(this.cur.u8());
    if (size === 2) return BigInt(this.cur.u16());
    const v = this.cur.s32();
    return size === 4 ? v & 0xffffffffn : BigInt.asUintN(64, v);
  }

  // ---------------------------------------------------------------- emission helpers

  /** Emit the stores that put flags `p` (held in locals) into the state block. */
  private flushFlags(c: Code, p: Pend | null): void {
    if (!p || p.synced) return;
    if (p.alts) {
      p.alts.forEach((q, j) => {
        if (!q || q.synced) return;
        c.get(SEL).i32c(j).op(OP.i32Eq).op(OP.if).byte(0x40);
        this.flushFlags(c, q);
        c.op(OP.end);
      });
      return;
    }
    if (p.shiftOp !== 0 && !p.baseSynced) {
      c.i32c(0);
      this.shiftFlags(c, p.shiftOp, p.size, p.shiftN);
      c.mem(OP.i32Store, 2, LF.eager).i32c(0).i32c(0).mem(OP.i32Store, 2, LF.op);
    } else if (!p.baseSynced) {
      // the operation and the size: two adjacent u32s (layout.ts LF_OP, LF_SIZE), one store
      if (p.dyn) c.i32c(0).get(FOP).mem(OP.i32Store, 2, LF.op).i32c(0).i32c(p.size).mem(OP.i32Store, 2, LF.size);
      else c.i32c(0).i64c((BigInt(p.size) << 32n) | BigInt(p.op)).mem(OP.i64Store, 3, LF.op);
      // OP_LOGIC: the core reads only the result (as/flags.ts); FA and FB were not set (setLazy)
      const logic = !p.dyn && p.op === OP_LOGIC;
      if (!logic) c.i32c(0).get(FA).mem(OP.i64Store, 3, LF.a);
      c.i32c(0).get(FR).mem(OP.i64Store, 3, LF.res);
      if (!p.noB && !logic) c.i32c(0).get(FB).mem(OP.i64Store, 3, LF.b);
      if (p.cin) c.i32c(0).get(FCIN).mem(OP.i32Store, 2, LF.cin);
    }
    if (p.patch) c.i32c(F_CF | F_OF).get(PATCH).callHelper(F.patchStatus);
  }

  /** On the straight path before a call into the core that reads the flags: store them now. */
  private syncFlags(): void {
    this.flushFlags(this.code, this.pend);
    // a new object: Pend objects are never changed, so the state at an instruction's start can be
    // kept by reference
    if (this.pend && !this.pend.synced) this.pend = pendLike(this.pend, { synced: true });
  }

  /** The flags were just computed into locals FA/FB/FR (and FOP/FCIN) by the current instruction. */
  private produced(p: Pend): void {
    this.pend = p;
  }

  /** A side exit when the branch target in local `x` is not canonical: the interpreter raises #GP (vol. 1 3.3.7.1). */
  private sideExitNonCanonical(x: number): void {
    this.code.get(x).i64c(16n).op(OP.i64Shl).i64c(16n).op(OP.i64ShrS).get(x).op(OP.i64Ne);
    this.sideExitIf();
  }

  /** A side exit (sideExit) taken when the i32 on the stack is non-zero. */
  private sideExitIf(): void {
    this.code.op(OP.if).byte(0x40);
    this.sideExit();
    this.code.op(OP.end);
  }

  /**
   * The interpreter takes over at the current instruction: it must see the flags as they were
   * when that instruction started (a compiled instruction sets its flags only after its last
   * possible side exit, so the locals still hold them).
   */
  private sideExit(): void {
    const c = this.code;
    if (this.regs) {
      this.flushFlags(c, this.pendAtStart);
      c.setRip(this.start);
      c.i32c(this.k).set(XV);
      this.toEpilogue(); // XK is still EXIT_SIDE: nothing sets it before an exit
      return;
    }
    // Side exits are the most numerous code in a block (a TLB check at every memory access), and
    // rarely taken: each branches to a stub shared by the exits with the same flags pending,
    // with its instruction's count and offset in local I, instead of storing flags and RIP and
    // computing the result inline (bench:jit-compile's recording of a boot: 5.31 -> 5.05 MB of
    // wasm, TurboFan 1,366 -> 1,309 ms; with 2-byte branch depths, 4.96 MB and 1,263 ms).
    let j = this.sideStubs.indexOf(this.pendAtStart);
    if (j < 0) { j = this.sideStubs.length; this.sideStubs.push(this.pendAtStart); }
    // every instruction of a block starts on its page, at or after its start (kept branches go forward)
    const offset = Number(this.start - this.blockStart);
    if (offset < 0 || offset > 0xfff) throw new Error(`side exit at ${this.start.toString(16)}: not on the page of the block at ${this.blockStart.toString(16)}`);
    c.i32c((this.k << 12) | offset).set(I);
    if (this.stubOpen >= 0) c.op(OP.br).u32(c.depth + this.stubOpen + 1 + j);
    else this.padBr(OP.br, c.depth + 1 + j, null);
  }

  /**
   * Stub j of sideExit (after its wasm block's `end`): the flags pending there into the state
   * block, RIP = the block's start + the offset in I, and the result -(count + 1): the count in I,
   * N (earlier passes of the block's loop) and ACC (the blocks that tail-called this one).
   */
  private sideStub(c: Code, p: Pend | null): void {
    this.flushFlags(c, p);
    c.i32c(0).i64c(this.blockStart).get(I).i32c(0xfff).op(OP.i32And).op(OP.i64ExtendI32U).op(OP.i64Add).mem(OP.i64Store, 3, RIP_AT);
    c.i32c(-1).get(I).i32c(12).op(OP.i32ShrU).op(OP.i32Sub).get(N).op(OP.i32Sub).get(ACC).op(OP.i32Sub).op(OP.return);
  }

  /** Effective (linear) address of a memory operand into local L. */
  private ea(m: Mem, withSeg = true): void {
    const c = this.code;
    if (m.ripRel) {
      c.i64c(BigInt.asUintN(64, this.next + m.disp));
    } else {
      let have = false;
      if (m.base >= 0) { this.reg64(m.base); have = true; }
      if (m.index >= 0) {
        this.reg64(m.index);
        if (m.scale) c.i64c(BigInt(m.scale)).op(OP.i64Shl);
        if (have) c.op(OP.i64Add);
        have = true;
      }
      if (!have) c.i64c(BigInt.asUintN(64, m.disp));
      else if (m.disp !== 0n) c.i64c(m.disp).op(OP.i64Add);
    }
    if (withSeg && this.seg >= 4) c.i32c(0).mem(OP.i64Load, 3, segBase(this.seg)).op(OP.i64Add);
    c.set(L);
  }

  /** Translate local L through the TLB of `kind` into host address local `h`; side exit on a miss. */
  private tlb(kind: number, size: number, h: number): void {
    const c = this.code;
    const tb = S + O_TLB + (kind * 2 + (this.user ? 1 : 0)) * TLB_BYTES;
    // the entry's byte offset, ((lin >> 12) & (TLB_N - 1)) * 8, as (lin >> 9) & ((TLB_N - 1) << 3)
    c.get(L).op(OP.i32WrapI64).i32c(9).op(OP.i32ShrU).i32c((TLB_N - 1) << 3).op(OP.i32And).tee(I);
    c.mem(OP.i64Load, 3, tb);
    // the tag must be the page of the access's last byte: one compare also sends an access that
    // crosses into the next page (or wraps around) to the interpreter, as QEMU's TLB check does
    if (size > 1) c.get(L).i64c(BigInt(size - 1)).op(OP.i64Add).i64c(12n).op(OP.i64ShrU);
    else c.get(L).i64c(12n).op(OP.i64ShrU);
    c.op(OP.i64Ne);
    this.sideExitIf();
    c.get(I).mem(OP.i64Load, 3, tb + TLB_N * 8).get(L).op(OP.i64Add).op(OP.i32WrapI64).set(h);
  }

  /** Whether byte register number r is AH..BH (4..7 without a REX prefix; vol. 2A 3.7.2.1). */
  private highByte(size: number, r: number): boolean { return size === 1 && this.rex === 0 && r >= 4 && r < 8; }

  /** Push a register operand of `size` (byte registers without REX: AH..BH for 4..7). */
  private getReg(size: number, r: number): void {
    if (!this.regs) {
      if (this.highByte(size, r)) this.code.i32c(0).load(1, S + (r - 4) * 8 + 1);
      else this.code.i32c(0).load(size, S + r * 8);
      return;
    }
    if (this.highByte(size, r)) { this.reg64(r - 4); this.code.i64c(8n).op(OP.i64ShrU).mask(1); return; }
    this.reg64(r);
    this.code.mask(size);
  }

  /** Write local `src` to a register with the merge/zero-extension rules of the size. */
  private setReg(size: number, r: number, src: number): void {
    const c = this.code;
    if (!this.regs) {
      if (this.highByte(size, r)) { c.i32c(0).get(src).store(1, S + (r - 4) * 8 + 1); return; }
      c.i32c(0).get(src);
      if (size === 4) c.mask(4);
      c.store(size === 4 ? 8 : size, S + r * 8);
      return;
    }
    if (size === 8) { this.setReg64(r, src); return; }
    let shift = 0n;
    if (this.highByte(size, r)) { r -= 4; shift = 8n; }
    this.used |= 1 << r;
    this.written |= 1 << r;
    if (size === 4) { c.get(src).mask(4).set(RG + r); return; }
    // 8- and 16-bit writes keep the rest of the register
    const m = MASK(size) << shift;
    c.get(RG + r).i64c(BigInt.asIntN(64, ~m)).op(OP.i64And).get(src).mask(size);
    if (shift) c.i64c(shift).op(OP.i64Shl);
    c.op(OP.i64Or).set(RG + r);
  }

  /**
   * Read an r/m operand into local `dst`. For read-modify-write (`rmw`) the memory is translated
   * through the write TLB, and the host address stays in local H for writeRm.
   */
  private readRm(m: ModRM, size: number, dst: number, rmw: boolean): void {
    if (!m.mem) { this.getReg(size, m.rm); this.code.set(dst); return; }
    this.ea(m.mem);
    this.tlb(rmw ? K_WRITE : K_READ, size, H);
    this.code.get(H).load(size).set(dst);
  }

  /** Write local `src` to the r/m operand (memory: through host address H from readRm/prepWrite). */
  private writeRm(m: ModRM, size: number, src: number): void {
    if (!m.mem) { this.setReg(size, m.rm, src); return; }
    this.code.get(H).get(src).store(size);
  }

  /** Translate a memory destination for writing (before anything is changed). */
  private prepWrite(m: ModRM, size: number): void {
    if (!m.mem) return;
    this.ea(m.mem);
    this.tlb(K_WRITE, size, H);
  }

  /**
   * The lazy flags of `op` on locals A, B and R (R = A op B): into FA, FB and FR. OP_LOGIC's flags
   * depend on the result alone (as/flags.ts), so its FA and FB are not set (flushFlags does not
   * store them either).
   */
  private setLazy(op: number, size: number): void {
    const c = this.code;
    if (op !== OP_LOGIC) c.get(A).set(FA).get(B).set(FB);
    c.get(R).set(FR);
    this.lazyProduced(op, size);
  }

  /** The current instruction left the lazy flags of `op` in FA, FB and FR (as setLazy). */
  private lazyProduced(op: number, size: number): void {
    this.produced(pendOf(op, size, false, false, false));
    this.fk = { op, size };
  }

  /**
   * R = the truncated signed product of A and B (IMUL r, r/m[, imm]), with the lazy flags of the
   * core's imulTrunc (as/flags.ts OP_IMUL: the sign-extended factors and the result; CF/OF are
   * worked out only if something reads them).
   */
  private imul(size: number): void {
    const c = this.code;
    c.get(A).sext(size).tee(A).get(B).sext(size).tee(B).op(OP.i64Mul).mask(size).set(R);
    this.setLazy(OP_IMUL, size);
    this.fk = null; // no inline condition code knows OP_IMUL: conditions go through the core
  }

  /**
   * MUL r/m32 / r/m64 (vol. 2B MUL): rDX:rAX = rAX * r/m, unsigned; the lazy flags of the
   * interpreter's MUL (as/flags.ts OP_MUL: CF = OF = "the high half is not zero", SF/ZF/PF of the
   * low half, AF clear). The Linux kernel's bignum code (RSA signature checks of its
   * certificates) runs MUL in its inner loops, so leaving the block there cost a lot.
   */
  private mul(m: ModRM, size: number): boolean {
    const c = this.code;
    this.readRm(m, size, A, false);
    this.getReg(size, 0); c.set(B); // rAX
    if (size === 4) {
      c.get(A).get(B).op(OP.i64Mul).set(V); // exact in 64 bits
      c.get(V).i64c(32n).op(OP.i64ShrU).set(T);
      c.get(V).mask(4).set(R);
    } else {
      // the high 64 bits of the 128-bit product from four 32 x 32 -> 64 products (as alu.ts mulHiU)
      const lo32 = (x: number) => c.get(x).mask(4);
      const hi32 = (x: number) => c.get(x).i64c(32n).op(OP.i64ShrU);
      lo32(A); lo32(B); c.op(OP.i64Mul).set(V); // ll
      lo32(A); hi32(B); c.op(OP.i64Mul).set(L); // lh
      hi32(A); lo32(B); c.op(OP.i64Mul).set(T); // hl
      // mid = (ll >> 32) + (lh & 0xffffffff) + (hl & 0xffffffff)
      hi32(V); lo32(L); c.op(OP.i64Add); lo32(T); c.op(OP.i64Add).set(V);
      // hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32)
      hi32(A); hi32(B); c.op(OP.i64Mul); hi32(L); c.op(OP.i64Add); hi32(T); c.op(OP.i64Add); hi32(V); c.op(OP.i64Add).set(T);
      c.get(A).get(B).op(OP.i64Mul).set(R);
    }
    // rAX, rDX (a 32-bit write zero-extends into the 64-bit register)
    this.setReg64(0, R);
    this.setReg64(2, T);
    c.get(R).set(FR).get(T).set(FA);
    this.produced(pendOf(OP_MUL, size, false, false, true));
    this.fk = null;
    return false;
  }

  /**
   * DIV / IDIV (`signed`) of rDX:rAX by a 32- or 64-bit r/m (vol. 2A DIV, IDIV): quotient to rAX,
   * remainder to rDX, flags unchanged (as the interpreter leaves them). What a 64-bit division
   * cannot do is left to the interpreter by a side exit: a zero divisor or a quotient that does not
   * fit (#DE), and a 64-bit DIV whose dividend has a high half (RDX != 0; IDIV: RDX not the sign
   * of RAX), which needs its 128-by-64 division. (Checked before dividing: wasm traps on a zero
   * divisor and on INT64_MIN / -1.)
   */
  private divide(m: ModRM, size: number, signed: boolean): boolean {
    const c = this.code;
    const MIN = -(1n << 63n);
    this.readRm(m, size, B, false);
    this.getReg(size, 0); c.set(A);
    this.getReg(size, 2); c.set(T);
    if (size === 8) {
      c.get(B).op(OP.i64Eqz);
      if (signed) {
        c.get(T).get(A).i64c(63n).op(OP.i64ShrS).op(OP.i64Ne).op(OP.i32Or);
        c.get(A).i64c(MIN).op(OP.i64Eq).get(B).i64c(-1n).op(OP.i64Eq).op(OP.i32And).op(OP.i32Or);
      } else {
        c.get(T).i64c(0n).op(OP.i64Ne).op(OP.i32Or);
      }
      this.sideExitIf();
      c.get(A).get(B).op(signed ? OP.i64DivS : OP.i64DivU).set(R);
      c.get(A).get(B).op(signed ? OP.i64RemS : OP.i64RemU).set(V);
    } else {
      c.get(T).i64c(32n).op(OP.i64Shl).get(A).op(OP.i64Or).set(L); // EDX:EAX
      if (signed) {
        c.get(B).sext(4).set(B);
        c.get(B).op(OP.i64Eqz).get(L).i64c(MIN).op(OP.i64Eq).get(B).i64c(-1n).op(OP.i64Eq).op(OP.i32And).op(OP.i32Or);
        this.sideExitIf();
        c.get(L).get(B).op(OP.i64DivS).tee(R).i64c(0x7fffffffn).op(OP.i64GtS);
        c.get(R).i64c(-0x80000000n).op(OP.i64LtS).op(OP.i32Or);
        this.sideExitIf();
        c.get(L).get(B).op(OP.i64RemS).set(V);
      } else {
        c.get(B).op(OP.i64Eqz);
        this.sideExitIf();
        c.get(L).get(B).op(OP.i64DivU).tee(R).i64c(0xffffffffn).op(OP.i64GtU);
        this.sideExitIf();
        c.get(L).get(B).op(OP.i64RemU).set(V);
      }
    }
    this.setReg(size, 0, R);
    this.setReg(size, 2, V);
    return false;
  }

  /** R = A op B (operands already masked), with the lazy flags of alu() in as/alu.ts. */
  private alu(op: number, size: number): void {
    const c = this.code;
    switch (op) {
      // (the flags go straight into FA, FB, FR: nothing between here and the end of the
      // instruction can leave the block, which would need the previous instruction's flags)
      case 0: c.get(A).tee(FA).get(B).tee(FB).op(OP.i64Add).mask(size).tee(FR).set(R); this.lazyProduced(OP_ADD, size); return;
      case 1: c.get(A).get(B).op(OP.i64Or).tee(FR).set(R); this.lazyProduced(OP_LOGIC, size); return;
      case 4: c.get(A).get(B).op(OP.i64And).tee(FR).set(R); this.lazyProduced(OP_LOGIC, size); return;
      case 6: c.get(A).get(B).op(OP.i64Xor).tee(FR).set(R); this.lazyProduced(OP_LOGIC, size); return;
      case 5: case 7: c.get(A).tee(FA).get(B).tee(FB).op(OP.i64Sub).mask(size).tee(FR).set(R); this.lazyProduced(OP_SUB, size); return;
      case 2: case 3: {
        this.carry();
        c.set(C);
        c.get(A).get(B).op(op === 2 ? OP.i64Add : OP.i64Sub).get(C).op(OP.i64ExtendI32U).op(op === 2 ? OP.i64Add : OP.i64Sub).mask(size).set(R);
        c.i32c(op === 2 ? OP_ADC : OP_SBB).i32c(op === 2 ? OP_ADD : OP_SUB).get(C).op(OP.select).set(FOP);
        c.get(A).set(FA).get(B).set(FB).get(R).set(FR);
        this.produced(pendOf(0, size, true, false, false));
        this.fk = null;
        return;
      }
      default: bail();
    }
  }

  /** Push CF (i32 0/1) as getCF() in as/flags.ts computes it. */
  private carry(): void {
    const c = this.code;
    const fk = this.fk;
    if (fk?.op === OP_SUB) { c.get(FA).get(FB).op(OP.i64LtU); return; }
    if (fk?.op === OP_LOGIC) { c.i32c(0); return; }
    if (fk?.op === OP_ADD) { c.get(FR).get(FA).op(OP.i64LtU); return; }
    this.syncFlags();
    c.callHelper(F.getCF);
  }

  /** Push the condition `cc` (i32 0/1), inline when the block knows what set the flags. */
  private cond(cc: number): void {
    const c = this.code;
    const fk = this.fk;
    const base = cc >> 1;
    const signBit = (size: number) => c.i64c(1n << BigInt(size * 8 - 1)).op(OP.i64And).i64c(0n).op(OP.i64Ne);
    let done = false;
    if (fk && fk.op !== OP_ADC && fk.op !== OP_SBB) {
      const { op, size } = fk;
      done = true;
      if (base === 2) { // Z
        c.get(FR).op(OP.i64Eqz);
      } else if (size === 0 && (base === 4 || base >= 6)) {
        done = false; // paths of different operand sizes joined (joinAt): S, L and LE need the size
      } else if (base === 4) { // S
        c.get(FR); signBit(size);
      } else if (op === OP_SUB && base === 1) {
        c.get(FA).get(FB).op(OP.i64LtU);
      } else if (op === OP_SUB && base === 3) {
        c.get(FA).get(FB).op(OP.i64LeU);
      } else if (op === OP_SUB && base === 6) {
        c.get(FA).sext(size).get(FB).sext(size).op(OP.i64LtS);
      } else if (op === OP_SUB && base === 7) {
        c.get(FA).sext(size).get(FB).sext(size).op(OP.i64LeS);
      } else if (op === OP_LOGIC && (base === 0 || base === 1)) {
        c.i32c(0);
      } else if (op === OP_LOGIC && base === 3) {
        c.get(FR).op(OP.i64Eqz);
      } else if (op === OP_LOGIC && base === 6) {
        c.get(FR); signBit(size);
      } else if (op === OP_LOGIC && base === 7) {
        c.get(FR).op(OP.i64Eqz).get(FR); signBit(size); c.op(OP.i32Or);
      } else if (op === OP_ADD && base === 1) {
        c.get(FR).get(FA).op(OP.i64LtU);
      } else {
        done = false;
      }
      if (done && (cc & 1)) c.op(OP.i32Eqz);
    }
    if (!done) {
      this.syncFlags();
      c.i32c(cc).callHelper(F.cond);
    }
  }

  /** RIP := `target`, then leave the block for it (exitTo). */
  private leaveTo(target: bigint | { local: number }): void {
    this.code.setRip(target);
    this.exitTo(target);
  }

  /**
   * Leave the block for `target` (a constant or, for RET and indirect branches, an i64 local; RIP
   * already set): tail-call the chain trampoline (jit.ts chainTrampoline) with the remaining budget
   * and what the chain has retired so far. It runs the target's compiled block when the core's
   * jitLookup finds a current one (the same checks as jitTry: TLB, entry, page generation, budget,
   * no pending interrupt request), else returns the count to the core's loop. Tail calls keep the
   * wasm stack flat however long the chain runs.
   */
  private exitTo(target: bigint | { local: number }, tail = false): void {
    const c = this.code;
    const k1 = this.k + 1;
    this.flushFlags(c, this.pend);
    const { fn, guard } = this.siblingFor(target);
    if (this.regs) {
      if (fn >= 0) {
        // the epilogue stores the registers, then makes the call (one branch per sibling)
        let i = this.siblingExits.findIndex((x) => x.fn === fn);
        if (i < 0) i = this.siblingExits.push({ fn, rip: target as bigint, guard }) - 1;
        c.i32c(k1).set(XV).i32c(EXIT_SIBLING + i).set(XK);
      } else {
        if (typeof target === 'bigint') c.i64c(target);
        else c.get(target.local);
        c.set(XT).i32c(k1).set(XV).i32c(EXIT_CHAIN).set(XK);
      }
      if (!tail) this.toEpilogue(); // (the block's tail falls into the epilogue)
      return;
    }
    if (fn >= 0) {
      // a block of this module: call it directly when the budget has room for any block and no
      // interrupt request is pending (jitLookup's conditions), else return to the core's loop
      this.mustStop(k1);
      c.op(OP.if).byte(0x40);
      this.count(k1);
      c.op(OP.return).op(OP.end);
      if (guard) {
        // on another page: only while the fetch TLB maps it as compiled, else the trampoline
        this.pageChanged(c, target as bigint >> 12n, guard);
        c.op(OP.if).byte(0x40).i64c(target as bigint);
        this.nextArgs(k1);
        returnCallChain(c);
        c.op(OP.end);
      }
      this.nextArgs(k1);
      c.op(OP.returnCall).u32(fn);
      return;
    }
    if (typeof target === 'bigint') c.i64c(target);
    else c.get(target.local);
    this.nextArgs(k1);
    returnCallChain(c);
  }

  /** Push the budget left and the count retired after `k1` instructions of this pass, for the next block or the trampoline. */
  private nextArgs(k1: number): void {
    const c = this.code;
    c.get(LEFT);
    if (this.nTouched) c.get(N).op(OP.i32Sub);
    c.i32c(k1).op(OP.i32Sub);
    this.count(k1);
  }

  /** Push the count retired after `k1` instructions of this pass: N + k1 + ACC. */
  private count(k1: number): void {
    const c = this.code;
    c.get(ACC);
    if (this.nTouched) c.get(N).op(OP.i32Add);
    c.i32c(k1).op(OP.i32Add);
  }

  /**
   * The function of this module to call for a constant `target` (a sibling, batch.ts), or -1;
   * for a target on another page, also that page's mapping, which the call must check first.
   */
  private siblingFor(target: bigint | { local: number }): { fn: number; guard: PageMap | null } {
    if (typeof target !== 'bigint' || !this.sibling) return { fn: -1, guard: null };
    const page = target >> 12n;
    if (page === this.blockPage) return { fn: this.sibling(target, null), guard: null };
    const at = this.pageAt(page);
    if (!at) return { fn: -1, guard: null };
    const fn = this.sibling(target, { host: at.host + Number(target & 0xfffn), gen: at.gen });
    return { fn, guard: fn >= 0 ? at : null };
  }

  /**
   * Push whether the block must return to the core's loop instead of running another block (or
   * its loop's next pass) after `more` further instructions: the budget may not hold a block of
   * MAX_INSNS, or an interrupt request is pending (jitLookup's conditions).
   */
  private mustStop(more: number): void {
    const c = this.code;
    if (this.nTouched) c.get(N).i32c(more + MAX_INSNS).op(OP.i32Add); else c.i32c(more + MAX_INSNS);
    c.get(LEFT).op(OP.i32GtS);
    c.i32c(0).mem(OP.i32Load, 2, S + O.INTR_REQUEST).op(OP.i32Or);
  }

  /** Return the number of instructions retired, this one included. */
  private retired(tail = false): void {
    this.flushFlags(this.code, this.pend);
    if (this.regs) {
      this.code.i32c(this.k + 1).set(XV).i32c(EXIT_RETURN).set(XK);
      if (!tail) this.toEpilogue();
      return;
    }
    this.count(this.k + 1);
    if (!tail) this.code.op(OP.return); // (the block's tail leaves the count as the function's result)
  }

  /**
   * Branch back to the block's start (the function body is one wasm loop, `depth` levels out).
   * The next iteration runs only if it fits the budget and no interrupt request is pending.
   */
  private backEdge(depth: number): void {
    const c = this.code;
    if (this.first && !this.backPend) this.backPend = this.pend;
    // The loop's head expects the flags in the state block (SEL 0), or, in the second pass, in the
    // locals as the first pass's back edge left them (SEL 1, see loopPend): stored only on the way out.
    const keep = this.loopPend !== null && samePend(this.pend, this.loopPend);
    if (!keep) this.flushFlags(c, this.pend);
    this.nTouched = true;
    c.get(N).i32c(this.k + 1).op(OP.i32Add).set(N);
    this.mustStop(0);
    c.op(OP.if).byte(0x40);
    if (keep) this.flushFlags(c, this.pend);
    c.setRip(this.blockStart);
    if (this.regs) {
      c.i32c(0).set(XV).i32c(EXIT_RETURN).set(XK); // N already counts this pass
      this.toEpilogue();
    } else {
      c.get(N).get(ACC).op(OP.i32Add).op(OP.return);
    }
    c.op(OP.end);
    if (this.loopPend) c.i32c(keep ? 1 : 0).set(SEL);
    this.padBr(OP.br, depth, null);
    this.loops = true;
  }

  private jumpTo(target: bigint): boolean {
    if (!canonical(target)) bail();
    if (target === this.blockStart) { this.backEdge(0); return true; }
    if (target >> 12n === this.blockPage && target > this.start && this.k + 1 < MAX_INSNS) {
      // a block that loops keeps it as a branch (see `targets`); others compile on at the target
      if (!this.regs) { this.follow = target; return false; }
      this.keep(target, false);
      return true;
    }
    this.leaveTo(target);
    return true;
  }

  /**
   * A 64-bit POP into register `dst` from the stack top in register `top` (RSP for POP, RBP for
   * LEAVE): RSP becomes top + 8, then `dst` the loaded value (so POP RSP loads RSP). Nothing
   * changes when the load side-exits.
   */
  private pop(top: number, dst: number): void {
    const c = this.code;
    this.reg64(top); c.set(L);
    this.tlb(K_READ, 8, H);
    c.get(H).load(8).set(A);
    c.get(L).i64c(8n).op(OP.i64Add).set(L);
    this.setReg64(4, L);
    this.setReg64(dst, A);
  }

  /** Stack push of 8 bytes of local `src` (rSP - 8 translated first). */
  private push(src: number): void {
    const c = this.code;
    this.reg64(4); c.i64c(8n).op(OP.i64Sub).set(L);
    this.tlb(K_WRITE, 8, H);
    c.get(H).get(src).store(8);
    this.setReg64(4, L);
  }

  // ---------------------------------------------------------------- one instruction

  /** Decode and emit one instruction. Returns true when it ends the block. */
  private one(): boolean {
    const cur = this.cur;
    let b = cur.u8();
    let rex = 0;
    let h66 = false;
    let lock = false;
    let rep = 0;
    let seg = -1;
    for (;;) {
      if ((b & 0xf0) === 0x40) { rex = b; b = cur.u8(); if ((b & 0xf0) === 0x40 || isLegacy(b)) { rex = 0; continue; } break; }
      if (!isLegacy(b)) break;
      rex = 0;
      switch (b) {
        case 0x66: h66 = true; break;
        case 0x67: bail(); break;
        case 0x64: seg = 4; break;
        case 0x65: seg = 5; break;
        case 0x26: case 0x2e: case 0x36: case 0x3e: seg = -1; break;
        case 0xf0: lock = true; break;
        default: rep = b;
      }
      b = cur.u8();
    }
    this.rex = rex;
    this.h66 = h66;
    this.lock = lock;
    this.rep = rep;
    this.seg = seg;
    this.os = (rex & 8) !== 0 ? 8 : h66 ? 2 : 4;
    if (b === 0x0f) return this.two(cur.u8());
    if (rep !== 0 && (b === 0xa4 || b === 0xa5 || b === 0xaa || b === 0xab)) return this.repString(b);
    if (rep !== 0 && b !== 0x90 && b !== 0xc3) bail();
    return this.one1(b);
  }

  /**
   * REP MOVS / REP STOS (F3, or F2, which repeats these two the same way: vol. 2B REP) through the
   * core's `rep` (as/string.ts blockRepString): the interpreter's page-at-a-time copy or fill, on
   * TLB hits only, so that it never faults. It returns 0 when it stopped before RCX reached 0 (DF
   * set, a TLB miss, a page-crossing or overlapping element, MMIO): RCX, RSI and RDI then say how far
   * it went, as after a repeat suspended between iterations, and a side exit leaves the rest to the
   * interpreter. The block ends after it (a call in the middle of a block costs the code after it
   * more than the call). Not with the registers in locals (the helper works on the state block):
   * such a block ends before.
   */
  private repString(b: number): boolean {
    if (this.regs || this.lock) bail();
    const c = this.code;
    this.done();
    const size = (b & 1) === 0 ? 1 : this.os;
    // as/string.ts S_MOVS, S_STOS; the source's segment: an FS or GS override, else DS (no base)
    c.i32c(b >= 0xaa ? 2 : 0).i32c(size).i32c(this.seg >= 4 ? this.seg : SEG_INDEX.ds);
    c.callHelper(F.rep).op(OP.i32Eqz);
    this.sideExitIf();
    this.leaveTo(this.next);
    return true;
  }

  private one1(b: number): boolean {
    const c = this.code;
    const os = this.os;
    const lk = this.lock;
    if (b < 0x40 && (b & 7) < 6) {
      const op = b >> 3;
      const form = b & 7;
      const size = (form & 1) === 0 ? 1 : os;
      if (form < 2) { // op r/m, r
        const m = this.modrm();
        this.done();
        if (lk && (!m.mem || op === 7)) bail();
        this.getReg(size, m.reg); c.set(B);
        this.readRm(m, size, A, op !== 7);
        this.alu(op, size);
        if (op !== 7) this.writeRm(m, size, R);
        return false;
      }
      if (lk) bail();
      if (form < 4) { // op r, r/m
        const m = this.modrm();
        this.done();
        this.readRm(m, size, B, false);
        this.getReg(size, m.reg); c.set(A);
        this.alu(op, size);
        if (op !== 7) this.setReg(size, m.reg, R);
        return false;
      }
      // op AL/eAX, imm
      const imm = uimm(this.immZ(size), size);
      this.done();
      this.getReg(size, 0); c.set(A);
      c.i64c(imm).set(B);
      this.alu(op, size);
      if (op !== 7) this.setReg(size, 0, R);
      return false;
    }
    if (lk && !(b >= 0x80 && b <= 0x83) && b !== 0x86 && b !== 0x87 && b !== 0xf6 && b !== 0xf7 && b !== 0xfe && b !== 0xff) bail();
    switch (b) {
      case 0x50: case 0x51: case 0x52: case 0x53: case 0x54: case 0x55: case 0x56: case 0x57: {
        if (this.h66) bail();
        this.done();
        this.reg64((b & 7) | ((this.rex & 1) << 3)); c.set(A);
        this.push(A);
        return false;
      }
      case 0x58: case 0x59: case 0x5a: case 0x5b: case 0x5c: case 0x5d: case 0x5e: case 0x5f: {
        if (this.h66) bail();
        this.done();
        this.pop(4, (b & 7) | ((this.rex & 1) << 3));
        return false;
      }
      case 0xc9: { // LEAVE: RSP = RBP, then POP RBP (nothing changes when the load side-exits)
        if (this.h66) bail();
        this.done();
        this.pop(5, 5);
        return false;
      }
      case 0x63: { // MOVSXD
        const m = this.modrm();
        this.done();
        if (os === 8) { this.readRm(m, 4, A, false); c.get(A).sext(4).set(A); this.setReg(8, m.reg, A); } else { this.readRm(m, os, A, false); this.setReg(os, m.reg, A); }
        return false;
      }
      case 0x68: case 0x6a: {
        if (this.h66) bail();
        const v = b === 0x68 ? BigInt.asUintN(64, this.cur.s32()) : BigInt.asUintN(64, this.cur.s8());
        this.done();
        c.i64c(v).set(A);
        this.push(A);
        return false;
      }
      case 0x69: case 0x6b: {
        const m = this.modrm();
        const imm = b === 0x69 ? this.immZ(os) : BigInt.asUintN(64, this.cur.s8());
        this.done();
        this.readRm(m, os, A, false);
        c.i64c(imm).set(B);
        this.imul(os);
        this.setReg(os, m.reg, R);
        return false;
      }
      case 0x70: case 0x71: case 0x72: case 0x73: case 0x74: case 0x75: case 0x76: case 0x77:
      case 0x78: case 0x79: case 0x7a: case 0x7b: case 0x7c: case 0x7d: case 0x7e: case 0x7f: {
        const d = this.cur.s8();
        this.done();
        return this.jcc(b & 15, BigInt.asUintN(64, this.next + d));
      }
      case 0x80: case 0x81: case 0x83: {
        const m = this.modrm();
        const size = b === 0x80 ? 1 : os;
        const imm = uimm(b === 0x83 ? this.cur.s8() : this.immZ(size), size);
        this.done();
        const op = m.reg & 7;
        if (lk && (!m.mem || op === 7)) bail();
        this.readRm(m, size, A, op !== 7);
        c.i64c(imm).set(B);
        this.alu(op, size);
        if (op !== 7) this.writeRm(m, size, R);
        return false;
      }
      case 0x84: case 0x85: {
        const size = b === 0x84 ? 1 : os;
        const m = this.modrm();
        this.done();
        this.readRm(m, size, A, false);
        this.getReg(size, m.reg); c.set(B);
        c.get(A).get(B).op(OP.i64And).set(R);
        this.setLazy(OP_LOGIC, size);
        return false;
      }
      case 0x86: case 0x87: {
        const size = b === 0x86 ? 1 : os;
        const m = this.modrm();
        this.done();
        if (lk && !m.mem) bail();
        this.readRm(m, size, A, true);
        this.getReg(size, m.reg); c.set(B);
        this.writeRm(m, size, B);
        this.setReg(size, m.reg, A);
        return false;
      }
      case 0x88: case 0x89: {
        const size = b === 0x88 ? 1 : os;
        const m = this.modrm();
        this.done();
        this.getReg(size, m.reg); c.set(A);
        this.prepWrite(m, size);
        this.writeRm(m, size, A);
        return false;
      }
      case 0x8a: case 0x8b: {
        const size = b === 0x8a ? 1 : os;
        const m = this.modrm();
        this.done();
        this.readRm(m, size, A, false);
        this.setReg(size, m.reg, A);
        return false;
      }
      case 0x8d: {
        const m = this.modrm();
        this.done();
        if (!m.mem) bail();
        this.ea(m.mem!, false);
        this.setReg(os, m.reg, L);
        return false;
      }
      case 0x90:
        this.done();
        if ((this.rex & 1) !== 0) { this.xchgAcc(8); return false; }
        return false;
      case 0x91: case 0x92: case 0x93: case 0x94: case 0x95: case 0x96: case 0x97:
        this.done();
        this.xchgAcc((b & 7) | ((this.rex & 1) << 3));
        return false;
      case 0x98: // CBW / CWDE / CDQE
        this.done();
        this.getReg(os >> 1, 0); c.sext(os >> 1).set(A);
        this.setReg(os, 0, A);
        return false;
      case 0x99: // CWD / CDQ / CQO
        this.done();
        this.getReg(os, 0); c.i64c(1n << BigInt(os * 8 - 1)).op(OP.i64And).op(OP.i64Eqz);
        c.op(OP.if).byte(T_I64).i64c(0n).op(OP.else).i64c(-1n).op(OP.end).set(A);
        this.setReg(os, 2, A);
        return false;
      case 0xa8: case 0xa9: {
        const size = b === 0xa8 ? 1 : os;
        const imm = uimm(this.immZ(size), size);
        this.done();
        this.getReg(size, 0); c.set(A);
        c.i64c(imm).set(B);
        c.get(A).get(B).op(OP.i64And).set(R);
        this.setLazy(OP_LOGIC, size);
        return false;
      }
      case 0xb0: case 0xb1: case 0xb2: case 0xb3: case 0xb4: case 0xb5: case 0xb6: case 0xb7: {
        const v = BigInt(this.cur.u8());
        this.done();
        c.i64c(v).set(A);
        this.setReg(1, (b & 7) | ((this.rex & 1) << 3), A);
        return false;
      }
      case 0xb8: case 0xb9: case 0xba: case 0xbb: case 0xbc: case 0xbd: case 0xbe: case 0xbf: {
        const v = os === 8 ? this.cur.u64() : this.immZ(os);
        this.done();
        c.i64c(v).set(A);
        this.setReg(os, (b & 7) | ((this.rex & 1) << 3), A);
        return false;
      }
      case 0xc0: case 0xc1: case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        const size = (b & 1) === 0 ? 1 : os;
        const m = this.modrm();
        let cnt = -1;
        if (b <= 0xc1) cnt = this.cur.u8();
        else if (b <= 0xd1) cnt = 1;
        this.done();
        const cmask = size === 8 ? 0x3f : 0x1f;
        this.readRm(m, size, A, true);
        const op = m.reg & 7;
        if (cnt >= 0 && (cnt & cmask) > 0 && (cnt & cmask) < size * 8 && (op === 4 || op === 5 || op === 6 || op === 7)) {
          this.shiftConst(op, size, cnt & cmask);
          this.writeRm(m, size, R);
          return false;
        }
        if (cnt >= 0 && (cnt & cmask) > 0 && (cnt & cmask) < size * 8 && (op === 0 || op === 1)) {
          this.rotateConst(op === 0, size, cnt & cmask);
          this.writeRm(m, size, R);
          return false;
        }
        c.i32c(m.reg & 7).i32c(size).get(A);
        if (cnt >= 0) c.i32c(cnt & cmask);
        else { this.reg64(1); c.op(OP.i32WrapI64).i32c(cmask).op(OP.i32And); }
        this.syncFlags(); // a count of 0 keeps them, others keep some (ROL/ROR)
        c.callHelper(F.shift).set(R);
        this.pend = null; // the core holds them now
        this.fk = null;
        this.writeRm(m, size, R);
        return false;
      }
      case 0xc3: case 0xc2: { // RET near
        if (this.h66) bail();
        const imm = b === 0xc2 ? BigInt(this.cur.u16()) : 0n;
        this.done();
        this.reg64(4); c.set(L);
        this.tlb(K_READ, 8, H);
        c.get(H).load(8).set(A);
        this.sideExitNonCanonical(A); // the return address
        c.get(L).i64c(8n + imm).op(OP.i64Add).set(L);
        this.setReg64(4, L);
        this.leaveTo({ local: A });
        return true;
      }
      case 0xc6: case 0xc7: {
        const size = b === 0xc6 ? 1 : os;
        const m = this.modrm();
        if ((m.reg & 7) !== 0) bail();
        const imm = uimm(this.immZ(size), size);
        this.done();
        c.i64c(imm).set(A);
        this.prepWrite(m, size);
        this.writeRm(m, size, A);
        return false;
      }
      case 0xe8: { // CALL rel32
        if (this.h66) bail();
        const d = this.cur.s32();
        this.done();
        const t = BigInt.asUintN(64, this.next + d);
        if (!canonical(t)) bail();
        c.i64c(this.next).set(A);
        this.push(A);
        return this.jumpTo(t);
      }
      case 0xe9: case 0xeb: {
        if (this.h66) bail();
        const d = b === 0xe9 ? this.cur.s32() : this.cur.s8();
        this.done();
        return this.jumpTo(BigInt.asUintN(64, this.next + d));
      }
      case 0x9c: { // PUSHF (64-bit mode: VM is 0; RF is not pushed)
        if (this.h66) bail();
        this.done();
        this.syncFlags();
        c.callHelper(F.getFlags).i32c(~0x30000).op(OP.i32And).op(OP.i64ExtendI32U).set(A);
        this.push(A);
        return false;
      }
      case 0xfb: { // STI at CPL 0, when its shadow is a NOP (Linux's local_irq_enable(): STI, then a NOP)
        // The instruction after STI runs before an interrupt can be taken (vol. 2B STI). Only a
        // NOP (90, or 0F 1F) is accepted there, so the pair is always compiled together: the NOP
        // follows in this block, which then ends (stiAt), and the trampoline or the core's
        // loop sees a pending interrupt at the boundary after it. Any other shadow instruction
        // leaves STI to the interpreter, which keeps the shadow itself.
        if (this.user || this.cpl !== 0 || this.stiAt >= 0 || this.k + 1 >= MAX_INSNS || !this.nopAhead()) bail();
        this.done();
        c.gget(G.flagsOther).i32c(0x200).op(OP.i32Or).gset(G.flagsOther);
        this.stiAt = this.k;
        return false;
      }
      case 0xfa: // CLI at CPL 0 (IOPL cannot forbid it there)
        if (this.user || this.cpl !== 0) bail();
        this.done();
        c.gget(G.flagsOther).i32c(~0x200).op(OP.i32And).gset(G.flagsOther);
        return false;
      case 0xf6: case 0xf7: return this.group3(b === 0xf6 ? 1 : os);
      case 0xfe: case 0xff: return this.group5(b === 0xfe ? 1 : os, b === 0xfe);
      default: bail();
    }
    return false;
  }

  /** BT/BTS/BTR/BTC (as bitOp in as/interp.ts): CF = the bit; a register offset can reach other words. */
  private bitOp(op: number, imm: boolean): boolean {
    const c = this.code;
    const os = this.os;
    const bits = os * 8;
    const m = this.modrm();
    let bit = 0;
    if (imm) {
      if ((m.reg & 7) < 4) bail();
      op = (m.reg & 7) - 4;
      bit = this.cur.u8() & (bits - 1);
    }
    this.done();
    if (this.lock && (op === 0 || !m.mem)) bail();
    if (imm) c.i64c(BigInt(bit)).set(B);
    else { this.getReg(os, m.reg); c.tee(T).i64c(BigInt(bits - 1)).op(OP.i64And).set(B); }
    if (!m.mem) {
      this.getReg(os, m.rm); c.set(A);
    } else {
      this.ea(m.mem);
      if (!imm) {
        const log = os === 2 ? 4 : os === 4 ? 5 : 6;
        c.get(L).get(T).sext(os).i64c(BigInt(log)).op(OP.i64ShrS).i64c(BigInt(Math.log2(os))).op(OP.i64Shl).op(OP.i64Add).set(L);
      }
      this.tlb(op === 0 ? K_READ : K_WRITE, os, H);
      c.get(H).load(os).set(A);
    }
    c.get(A).get(B).op(OP.i64ShrU).i64c(1n).op(OP.i64And).op(OP.i32WrapI64).set(C);
    if (op !== 0) {
      c.i64c(1n).get(B).op(OP.i64Shl);
      if (op === 1) c.get(A).op(OP.i64Or);
      else if (op === 2) c.i64c(-1n).op(OP.i64Xor).get(A).op(OP.i64And);
      else c.get(A).op(OP.i64Xor);
      c.set(R);
      this.writeRm(m, os, R);
    }
    this.syncFlags(); // only CF changes
    c.i32c(1).get(C).callHelper(F.patchStatus);
    this.pend = null;
    this.fk = null;
    return false;
  }

  /**
   * SHL/SHR/SAR of local A (masked) by a constant 0 < n < bits into R. The flags wait in FA/FR
   * (Pend.shift) until something reads or stores them (shiftFlags).
   */
  private shiftConst(op: number, size: number, n: number): void {
    const c = this.code;
    const nb = BigInt(n);
    if (op === 5) c.get(A).i64c(nb).op(OP.i64ShrU).set(R); // SHR
    else if (op === 7) c.get(A).sext(size).i64c(nb).op(OP.i64ShrS).mask(size).set(R); // SAR
    else c.get(A).i64c(nb).op(OP.i64Shl).mask(size).set(R); // SHL / SAL
    c.get(A).set(FA).get(R).set(FR);
    this.produced(pendOf(0, size, false, false, true, op, n));
    // ZF and SF read straight from FR (cond); the others through the core
    this.fk = { op: OP_SHIFT, size };
  }

  /**
   * Push the eager status flags (i32) of SHL/SHR/SAR by a constant 0 < n < bits, from FA (the
   * operand, masked) and FR (the result), as shift() in as/alu.ts sets them: SF ZF PF of the
   * result, CF the last bit out, OF as for a count of 1 (SHL: CF != new sign, SHR: old sign,
   * SAR: 0), AF 0 (vol. 2B SAL/SAR/SHL/SHR "Flags Affected").
   */
  private shiftFlags(c: Code, op: number, size: number, n: number): void {
    const bits = size * 8;
    const nb = BigInt(n);
    if (op === 5) { // SHR
      c.get(FA).i64c(nb - 1n).op(OP.i64ShrU).op(OP.i32WrapI64).i32c(1).op(OP.i32And); // CF
      c.get(FA).i64c(BigInt(bits - 1)).op(OP.i64ShrU).op(OP.i32WrapI64).i32c(11).op(OP.i32Shl).op(OP.i32Or); // OF
    } else if (op === 7) { // SAR
      c.get(FA).sext(size).i64c(nb - 1n).op(OP.i64ShrS).op(OP.i32WrapI64).i32c(1).op(OP.i32And);
    } else { // SHL / SAL
      c.get(FA).i64c(BigInt(bits - n)).op(OP.i64ShrU).op(OP.i32WrapI64).i32c(1).op(OP.i32And); // CF
      c.get(FR).i64c(BigInt(bits - 1)).op(OP.i64ShrU).op(OP.i32WrapI64);
      c.get(FA).i64c(BigInt(bits - n)).op(OP.i64ShrU).op(OP.i32WrapI64).op(OP.i32Xor).i32c(1).op(OP.i32And);
      c.i32c(11).op(OP.i32Shl).op(OP.i32Or); // OF = CF xor the new sign
    }
    // ZF, SF, PF of the result
    c.get(FR).op(OP.i64Eqz).i32c(6).op(OP.i32Shl).op(OP.i32Or);
    c.get(FR).i64c(BigInt(bits - 1)).op(OP.i64ShrU).op(OP.i32WrapI64).i32c(7).op(OP.i32Shl).op(OP.i32Or);
    c.get(FR).i64c(0xffn).op(OP.i64And).op(OP.i64Popcnt).op(OP.i32WrapI64).i32c(1).op(OP.i32And).i32c(1).op(OP.i32Xor).i32c(2).op(OP.i32Shl).op(OP.i32Or);
  }

  /**
   * ROL (`left`) / ROR of local A by a constant 0 < n < bits into R. Only CF and OF change
   * (shift() in as/alu.ts: ROL CF = bit 0 of the result, OF = CF xor its sign; ROR CF = the
   * result's sign, OF = its top two bits differ; OF as for a count of 1 whatever the count): they
   * go into local PATCH and the flags become "the previous ones, CF and OF patched" (Pend.patch),
   * so nothing is stored unless something reads them.
   */
  private rotateConst(left: boolean, size: number, n: number): void {
    const c = this.code;
    const bits = size * 8;
    if (size === 8) {
      c.get(A).i64c(BigInt(n)).op(left ? OP.i64Rotl : OP.i64Rotr).set(R);
    } else if (size === 4) {
      c.get(A).op(OP.i32WrapI64).i32c(n).op(left ? OP.i32Rotl : OP.i32Rotr).op(OP.i64ExtendI32U).set(R);
    } else {
      c.get(A).mask(size).i64c(BigInt(left ? n : bits - n)).op(OP.i64Shl);
      c.get(A).mask(size).i64c(BigInt(left ? bits - n : n)).op(OP.i64ShrU);
      c.op(OP.i64Or).mask(size).set(R);
    }
    const bit = (k: number) => c.get(R).i64c(BigInt(k)).op(OP.i64ShrU).op(OP.i32WrapI64).i32c(1).op(OP.i32And);
    if (left) {
      bit(0).tee(C); // CF
      bit(bits - 1).get(C).op(OP.i32Xor).i32c(11).op(OP.i32Shl).op(OP.i32Or).set(PATCH);
    } else {
      bit(bits - 1).tee(C); // CF
      bit(bits - 2).get(C).op(OP.i32Xor).i32c(11).op(OP.i32Shl).op(OP.i32Or).set(PATCH);
    }
    if (this.pend?.alts) this.syncFlags(); // (patch describes one state, not one per path)
    const p = this.pend;
    this.pend = p && !p.synced
      ? pendLike(p, { patch: true })
      : pendLike(pendOf(0, 0, false, false, false), { patch: true, baseSynced: true });
    this.fk = null; // conditions go through the core, after the flags are stored
  }

  private xchgAcc(r: number): void {
    const os = this.os;
    this.getReg(os, 0); this.code.set(A);
    this.getReg(os, r); this.code.set(B);
    this.setReg(os, 0, B);
    this.setReg(os, r, A);
  }

  private jcc(cc: number, target: bigint): boolean {
    if (!canonical(target)) bail();
    const c = this.code;
    this.cond(cc);
    if (target === this.blockStart) {
      // a loop back to the start of the block: iterate inside the function while the budget lasts
      c.op(OP.if).byte(0x40);
      this.backEdge(1);
      c.op(OP.end);
      return false;
    }
    if (this.k + 1 >= MAX_INSNS) {
      c.op(OP.if).byte(0x40).setRip(target).op(OP.else).setRip(this.next).op(OP.end);
      this.retired();
      return true;
    }
    if (target >> 12n === this.blockPage && target > this.start) {
      // further on the page: kept inside the block (see `targets`)
      this.keep(target, true);
      return false;
    }
    // taken: leave the block; not taken: go on with the next instruction
    c.op(OP.if).byte(0x40);
    this.leaveTo(target);
    c.op(OP.end);
    return false;
  }

  private group3(size: number): boolean {
    const c = this.code;
    const m = this.modrm();
    const op = m.reg & 7;
    if (op === 0 || op === 1) {
      const imm = uimm(this.immZ(size), size);
      this.done();
      if (this.lock) bail();
      this.readRm(m, size, A, false);
      c.i64c(imm).set(B);
      c.get(A).get(B).op(OP.i64And).set(R);
      this.setLazy(OP_LOGIC, size);
      return false;
    }
    this.done();
    if (op === 4 && (size === 4 || size === 8) && !this.lock) return this.mul(m, size);
    if ((op === 6 || op === 7) && (size === 4 || size === 8) && !this.lock) return this.divide(m, size, op === 7);
    if (op > 3 || (this.lock && !m.mem)) bail();
    this.readRm(m, size, A, true);
    if (op === 2) { // NOT
      c.get(A).i64c(-1n).op(OP.i64Xor).mask(size).set(R);
    } else { // NEG
      c.i64c(0n).get(A).op(OP.i64Sub).mask(size).set(R);
      c.get(A).set(B).i64c(0n).set(A);
    }
    this.writeRm(m, size, R);
    if (op === 3) this.setLazy(OP_SUB, size);
    return false;
  }

  private group5(size: number, fe: boolean): boolean {
    const c = this.code;
    const m = this.modrm();
    const op = m.reg & 7;
    this.done();
    if (op <= 1) { // INC / DEC
      if (this.lock && !m.mem) bail();
      this.readRm(m, size, A, true);
      c.get(A).i64c(1n).op(op === 0 ? OP.i64Add : OP.i64Sub).mask(size).set(R);
      this.writeRm(m, size, R);
      this.carry();
      c.set(FCIN);
      c.get(A).set(FA).i64c(1n).set(FB).get(R).set(FR);
      this.produced(pendOf(op === 0 ? OP_INC : OP_DEC, size, false, true, false));
      this.fk = { op: op === 0 ? OP_INC : OP_DEC, size };
      return false;
    }
    if (fe || this.lock || this.h66) bail();
    if (op === 2 || op === 4) { // CALL / JMP near indirect
      this.readRm(m, 8, T, false);
      this.sideExitNonCanonical(T);
      if (op === 2) { c.i64c(this.next).set(A); this.push(A); }
      this.leaveTo({ local: T });
      return true;
    }
    if (op === 6) { // PUSH r/m
      this.readRm(m, 8, A, false);
      this.push(A);
      return false;
    }
    bail();
    return false;
  }

  // ---------------------------------------------------------------- two-byte opcodes

  private two(b: number): boolean {
    const c = this.code;
    const os = this.os;
    if (this.rep !== 0 && b !== 0xbc && b !== 0xbd && !(b >= 0x18 && b <= 0x1f)) bail();
    if (this.lock && b !== 0xab && b !== 0xb3 && b !== 0xbb && b !== 0xba && b !== 0xb0 && b !== 0xb1 && b !== 0xc0 && b !== 0xc1) bail();
    if (b >= 0x80 && b <= 0x8f) {
      const d = this.cur.s32();
      this.done();
      return this.jcc(b & 15, BigInt.asUintN(64, this.next + d));
    }
    if (b === 0x01) {
      // SWAPGS (0F 01 F8) at CPL 0: GS's base and IA32_KERNEL_GS_BASE trade places (vol. 2B
      // SWAPGS; both live in the state block, which the core reads them from too). Linux runs it
      // at every system call's entry and exit. The rest of group 7 stays in the interpreter.
      if (this.cur.u8() !== 0xf8 || this.user || this.cpl !== 0 || this.h66) bail();
      this.done();
      const gsBase = segBase(SEG_INDEX.gs);
      c.i32c(0).mem(OP.i64Load, 3, gsBase).set(A);
      c.i32c(0).i32c(0).mem(OP.i64Load, 3, S + O.KGSBASE).store(8, gsBase);
      c.i32c(0).get(A).store(8, S + O.KGSBASE);
      return false;
    }
    if (b === 0x31) {
      // RDTSC at CPL 0 (CR4.TSD restricts only the other levels, vol. 2B RDTSC): the core's clock
      // through a helper, then the block ends (a call in the middle of a block costs the code
      // after it more than the call). Linux reads the TSC on every return to user mode (its
      // random kernel-stack offset) and in its clock.
      if (this.user || this.cpl !== 0) bail();
      this.done();
      c.callHelper(F.rdtsc).set(A);
      c.get(A).mask(4).set(B);
      this.setReg64(0, B);
      c.get(A).i64c(32n).op(OP.i64ShrU).set(B);
      this.setReg64(2, B);
      this.leaveTo(this.next);
      return true;
    }
    if (b === 0x05 || (b === 0x07 && os === 8 && !this.user)) {
      // SYSCALL, and SYSRET back to 64-bit code at CPL 0 (REX.W 0F 07), through the core's
      // `sys` (as/system.ts blockSys), which does what the interpreter does, or nothing when the
      // instruction would fault (a side exit leaves it to the interpreter). The CPL changes, so the
      // block ends, and the flags are the helper's from here: stored before it, none pending after.
      // Linux's every system call runs both. Not with the registers in locals (the helper reads
      // and writes RCX and R11 in the state block): such a block ends before.
      if (this.regs) bail();
      this.done();
      this.syncFlags();
      c.i32c(b === 0x05 ? 0 : 1).i64c(this.next).callHelper(F.sys).op(OP.i32Eqz);
      this.sideExitIf();
      this.pend = null;
      this.fk = null;
      c.i32c(0).mem(OP.i64Load, 3, RIP_AT).set(A);
      this.exitTo({ local: A });
      return true;
    }
    if (b === 0xae) {
      // LFENCE, MFENCE, SFENCE (0F AE E8-FF: ModR/M mod 3, /5 /6 /7): ordering only, and a block
      // runs on one thread in program order, so nothing to do (vol. 2A LFENCE/MFENCE, vol. 2B
      // SFENCE). Linux uses them as barriers (LFENCE after SWAPGS on an exception's entry from
      // user mode, its Spectre-v1 mitigation; MFENCE for mb()). The memory forms (FXSAVE,
      // CLFLUSH, XSAVE...) stay in the interpreter.
      const m = this.cur.u8();
      if (m < 0xe8 || this.h66) bail();
      this.done();
      return false;
    }
    if (b >= 0xc8 && b <= 0xcf) { // BSWAP r32 / r64 (flags unchanged; the 16-bit form is undefined)
      if (this.h66) bail();
      this.done();
      const r = (b & 7) | ((this.rex & 1) << 3);
      const size = this.rex & 8 ? 8 : 4;
      this.getReg(size, r); c.set(A);
      if (size === 4) {
        // bytes 0 and 2 move up by 8 (rotl), bytes 1 and 3 down by 8 (rotr)
        c.get(A).op(OP.i32WrapI64).tee(I).i32c(8).op(OP.i32Rotr).i32c(0xff00ff00 | 0).op(OP.i32And);
        c.get(I).i32c(8).op(OP.i32Rotl).i32c(0x00ff00ff).op(OP.i32And).op(OP.i32Or).op(OP.i64ExtendI32U).set(R);
      } else {
        // swap adjacent bytes, then adjacent 16-bit pairs, then the two halves
        const swap = (k: bigint, mask: bigint) => {
          c.get(A).i64c(k).op(OP.i64ShrU).i64c(mask).op(OP.i64And);
          c.get(A).i64c(mask).op(OP.i64And).i64c(k).op(OP.i64Shl).op(OP.i64Or).set(A);
        };
        swap(8n, 0x00ff00ff00ff00ffn);
        swap(16n, 0x0000ffff0000ffffn);
        c.get(A).i64c(32n).op(OP.i64Rotl).set(R);
      }
      this.setReg(size, r, R);
      return false;
    }
    if (b >= 0x40 && b <= 0x4f) { // CMOVcc: the source is read even when the condition is false
      const m = this.modrm();
      this.done();
      this.readRm(m, os, A, false);
      this.getReg(os, m.reg); c.set(B);
      c.get(A).get(B);
      this.cond(b & 15);
      c.op(OP.select).set(R);
      this.setReg(os, m.reg, R);
      return false;
    }
    if (b >= 0x90 && b <= 0x9f) { // SETcc
      const m = this.modrm();
      this.done();
      this.prepWrite(m, 1);
      this.cond(b & 15);
      c.op(OP.i64ExtendI32U).set(A);
      this.writeRm(m, 1, A);
      return false;
    }
    switch (b) {
      case 0x0d: case 0x18: case 0x19: case 0x1a: case 0x1b: case 0x1c: case 0x1d: case 0x1e: case 0x1f: {
        // hint NOPs (NOP r/m, PREFETCHh, PREFETCHW, ENDBR): the operand is decoded, not accessed
        this.modrm();
        this.done();
        return false;
      }
      case 0xa3: case 0xab: case 0xb3: case 0xbb: return this.bitOp(b === 0xa3 ? 0 : b === 0xab ? 1 : b === 0xb3 ? 2 : 3, false);
      case 0xba: return this.bitOp(-1, true);
      case 0xaf: {
        const m = this.modrm();
        this.done();
        this.readRm(m, os, B, false);
        this.getReg(os, m.reg);
        c.set(A);
        this.imul(os);
        this.setReg(os, m.reg, R);
        return false;
      }
      case 0xb0: case 0xb1: { // CMPXCHG
        const size = b === 0xb0 ? 1 : os;
        const m = this.modrm();
        this.done();
        if (this.lock && !m.mem) bail();
        this.getReg(size, m.reg); c.set(T);
        this.readRm(m, size, B, true); // dst
        this.getReg(size, 0); c.set(A); // acc
        c.get(A).get(B).op(OP.i64Sub).mask(size).set(R);
        this.setLazy(OP_SUB, size);
        c.get(A).get(B).op(OP.i64Eq).op(OP.if).byte(0x40);
        this.writeRm(m, size, T);
        c.op(OP.else);
        // failure: a memory destination is written back (the locked cycle); a register one is
        // left alone (as the interpreter, following AMD: no zero-extension of a 32-bit register)
        if (m.mem) this.writeRm(m, size, B);
        this.setReg(size, 0, B);
        c.op(OP.end);
        return false;
      }
      case 0xb6: case 0xb7: case 0xbe: case 0xbf: {
        const src = (b & 1) === 0 ? 1 : 2;
        const m = this.modrm();
        this.done();
        this.readRm(m, src, A, false);
        if (b >= 0xbe) c.get(A).sext(src).mask(os).set(A);
        this.setReg(os, m.reg, A);
        return false;
      }
      case 0xbc: case 0xbd: {
        const m = this.modrm();
        this.done();
        this.readRm(m, os, B, false);
        c.i32c(b === 0xbd ? 1 : 0).i32c(os).get(B);
        this.getReg(os, m.reg);
        this.syncFlags();
        c.callHelper(F.bitScan).set(R);
        this.pend = null;
        this.fk = null;
        // a zero source leaves the destination alone, all 64 bits (as the interpreter)
        c.get(B).mask(os).op(OP.i64Eqz).op(OP.i32Eqz).op(OP.if).byte(0x40);
        this.setReg(os, m.reg, R);
        c.op(OP.end);
        return false;
      }
      case 0xc0: case 0xc1: { // XADD
        const size = b === 0xc0 ? 1 : os;
        const m = this.modrm();
        this.done();
        if (this.lock && !m.mem) bail();
        this.getReg(size, m.reg); c.set(B);
        this.readRm(m, size, A, true);
        this.alu(0, size);
        this.setReg(size, m.reg, A);
        this.writeRm(m, size, R);
        return false;
      }
      default: bail();
    }
    return false;
  }
}

function isLegacy(b: number): boolean {
  return b === 0x66 || b === 0x67 || b === 0x26 || b === 0x2e || b === 0x36 || b === 0x3e || b === 0x64 || b === 0x65 ||
    b === 0xf0 || b === 0xf2 || b === 0xf3;
}
