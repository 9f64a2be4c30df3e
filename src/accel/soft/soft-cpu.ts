// The software x86-64 CPU: a TypeScript shell around the AssemblyScript core (src/accel/soft/as/,
// compiled to wasm; see docs/soft-cpu-strategy.md for why). The core executes against the guest
// RAM inside its shared WebAssembly.Memory (allocateSoftMemory) and calls back here for port
// I/O and MMIO, which go to the device bus. Architectural state moves in and out as CpuState.

import type { Bus } from '../../devices/bus.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import type { CpuState, SegmentState } from '../cpu-state.js';
import { formatCpuState } from '../register-dump.js';
import { coreModule } from './core-loader.js';
import {
  ATTR_AVL, ATTR_DB, ATTR_G, ATTR_L, ATTR_P, ATTR_S, ATTR_UNUSABLE, EXIT_BUDGET, EXIT_HLT, EXIT_INTR,
  EXIT_SHUTDOWN, GPR_ORDER, MAX_VCPUS, O, SEG_INDEX, STATE_AREA, STATE_SIZE,
} from './layout.js';
import { wasmMemoryOf, type WasmMemory } from './soft-memory.js';
import { SoftJit, jitWanted, newFunctionTable } from './jit/jit.js';

export type SoftExit =
  | { kind: 'budget' }
  | { kind: 'hlt' }
  | { kind: 'shutdown'; reason: string }
  | { kind: 'error'; message: string };

/** Where external interrupts come from (the platform's PIC/APIC model). */
export interface InterruptSource {
  /** True when an interrupt is waiting to be taken. */
  pending(): boolean;
  /** Takes the highest-priority pending interrupt and returns its vector. */
  acknowledge(): number;
}

export interface SoftCpuOptions {
  mem: GuestMemory;
  bus: Bus;
  vcpuId?: number;
  /** Host monotonic time in ns for the TSC (1 tick per ns); default performance.now(). The VMM passes the platform clock so the TSC, APIC timer and PIT agree. */
  nowNs?: () => number;
  /** The platform provides a local APIC for this CPU: CPUID says so. */
  apic?: boolean;
  /**
   * The local APIC's IA32_TSC_DEADLINE (with `apic`): `tscOffset` is this CPU's guest TSC minus
   * the clock's (IA32_TSC writes move it), for the APIC to turn a deadline into clock time.
   */
  tscDeadline?: { read(): bigint; write(value: bigint, tscOffset: bigint): void };
}

interface CoreExports {
  init(stateBase: number, apicId: number): void;
  syncIn(): void;
  syncOut(): void;
  run(budget: number, exact: number): number;
  requestExit(): void;
  setApic(present: boolean): void;
  pendingVector(): number;
  pendingError(): number;
  unsupportedCode(): number;
  clearFault(): void;
  instructionCount(): number;
  deliverPending(): number;
  deliverExternal(vec: number): void;
  deliveredVector(): number;
  deliveredError(): number;
  debugRead8(lin: number): number;
  setWallClockBase(ns: number): void;
}

interface WasmInstanceApi {
  Instance: new (m: object, imports: object) => { exports: object };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmInstanceApi }).WebAssembly;

/** Instructions per call into the core; between calls the host checks for interrupts. */
const SLICE = 100_000;
const SEG_NAMES = ['es', 'cs', 'ss', 'ds', 'fs', 'gs', 'ldt', 'tr'] as const;
const VECTOR_NAMES = ['#DE', '#DB', 'NMI', '#BP', '#OF', '#BR', '#UD', '#NM', '#DF', '', '#TS', '#NP', '#SS', '#GP', '#PF'];

const hex = (v: number | bigint) => `0x${v.toString(16)}`;

/** The x87 transcendentals the core asks the host for (fpu.ts, M_* codes). */
const FMATH: ((a: number, b: number) => number)[] = [
  (a) => Math.sin(a), (a) => Math.cos(a), (a) => Math.tan(a), (a, b) => Math.atan2(a, b), (a) => 2 ** a, (a) => Math.log2(a),
];

export class SoftCpu {
  readonly vcpuId: number;
  /** The platform's interrupt controller; consulted at instruction boundaries when IF=1. */
  interruptSource?: InterruptSource;
  private exitRequested = false;
  private readonly core: CoreExports;
  private readonly view: DataView;
  private readonly base: number;
  private readonly bus: Bus;
  private readonly mem: GuestMemory;
  /** The block compiler (vCPU 0 only; TSVM_SOFT_JIT=0 turns it off). */
  readonly jit?: SoftJit;
  /** The last exception delivered (for tests and diagnostics). */
  lastException?: { vector: number; errorCode?: number };

  constructor(opts: SoftCpuOptions) {
    const memory: WasmMemory | undefined = wasmMemoryOf(opts.mem);
    if (!memory) {
      throw new Error('the software CPU needs guest memory from allocateSoftMemory() (src/accel/soft/soft-memory.ts)');
    }
    this.vcpuId = opts.vcpuId ?? 0;
    if (this.vcpuId < 0 || this.vcpuId >= MAX_VCPUS) throw new Error(`vCPU id ${this.vcpuId} is out of range`);
    this.mem = opts.mem;
    this.bus = opts.bus;
    this.base = STATE_AREA + this.vcpuId * STATE_SIZE;
    this.view = new DataView(memory.buffer as SharedArrayBuffer);
    new Uint8Array(memory.buffer as SharedArrayBuffer, this.base, STATE_SIZE).fill(0);
    const bus = opts.bus;
    const view = this.view;
    const intr = this.base + O.INTR_REQUEST;
    // After a device write the interrupt controller may have something new to deliver (an EOI, a
    // device raising its line): refresh the request flag the core checks at instruction boundaries.
    const refresh = () => { if (this.interruptSource) view.setInt32(intr, this.interruptSource.pending() ? 1 : 0, true); };
    const host = {
      pioRead: (port: number, size: number) => bus.pioRead(port, size as 1 | 2 | 4),
      pioWrite: (port: number, size: number, value: number) => { bus.pioWrite(port, size as 1 | 2 | 4, value); refresh(); },
      mmioRead: (addr: number, size: number) => bus.mmioRead(addr, size as 1 | 2 | 4),
      mmioWrite: (addr: number, size: number, value: number) => { bus.mmioWrite(addr, size as 1 | 2 | 4, value); refresh(); },
      hostNanos: opts.nowNs ?? (() => performance.now() * 1e6),
      fmath: (op: number, a: number, b: number) => FMATH[op]?.(a, b) ?? NaN,
      jitFlush: () => this.jit?.flush(),
      tscDeadlineRead: () => opts.tscDeadline?.read() ?? 0n,
      tscDeadlineWrite: (value: bigint) => {
        opts.tscDeadline?.write(BigInt.asUintN(64, value), BigInt.asIntN(64, this.u64(O.TSC_OFFSET)));
        refresh(); // a deadline in the past fires at once
      },
    };
    const table = newFunctionTable();
    const inst = new wasm.Instance(coreModule(), { env: { memory, table }, host });
    this.core = inst.exports as CoreExports;
    if (this.vcpuId === 0 && jitWanted()) {
      this.jit = new SoftJit(memory, table, inst.exports as Record<string, unknown>);
      this.jit.watchHostWrites(opts.mem);
    }
    this.writeRegions();
    this.core.init(this.base, this.vcpuId);
    if (opts.apic) this.core.setApic(true);
    // kvmclock's wall clock (as/kvmclock.ts): the host's time of day when the TSC's clock read 0,
    // from the same source as the CMOS RTC (performance.timeOrigin + performance.now()).
    const nowNs = host.hostNanos;
    this.core.setWallClockBase((performance.timeOrigin + performance.now()) * 1e6 - nowNs());
  }

  private writeRegions(): void {
    const v = this.view;
    const p = this.base + O.REGIONS;
    const regions = this.mem.regions;
    v.setUint32(p, regions.length, true);
    regions.forEach((r, i) => {
      const e = p + 8 + i * 32;
      v.setBigUint64(e, BigInt(r.gpa), true);
      v.setBigUint64(e + 8, BigInt(r.size), true);
      v.setBigUint64(e + 16, BigInt(this.mem.base + r.offset), true);
      v.setBigUint64(e + 24, r.readonly ? 1n : 0n, true);
    });
  }

  // ------------------------------------------------------------------ state

  private u64(off: number): bigint { return this.view.getBigUint64(this.base + off, true); }
  private setU64(off: number, v: bigint): void { this.view.setBigUint64(this.base + off, BigInt.asUintN(64, v), true); }

  private readSeg(i: number): SegmentState {
    const p = this.base + O.SEG + i * 32;
    const attr = this.view.getUint32(p + 4, true);
    return {
      selector: this.view.getUint32(p, true) & 0xffff,
      base: this.view.getBigUint64(p + 16, true),
      limit: this.view.getUint32(p + 8, true),
      type: attr & 0xf,
      present: (attr & ATTR_P) !== 0,
      dpl: (attr >> 5) & 3,
      db: (attr & ATTR_DB) !== 0,
      s: (attr & ATTR_S) !== 0,
      l: (attr & ATTR_L) !== 0,
      g: (attr & ATTR_G) !== 0,
      avl: (attr & ATTR_AVL) !== 0,
      unusable: (attr & ATTR_UNUSABLE) !== 0,
    };
  }

  private writeSeg(i: number, s: SegmentState): void {
    const p = this.base + O.SEG + i * 32;
    let attr = (s.type & 0xf) | ((s.dpl & 3) << 5);
    if (s.s) attr |= ATTR_S;
    if (s.present) attr |= ATTR_P;
    if (s.avl) attr |= ATTR_AVL;
    if (s.l) attr |= ATTR_L;
    if (s.db) attr |= ATTR_DB;
    if (s.g) attr |= ATTR_G;
    if (s.unusable || (!s.present && i !== SEG_INDEX.cs)) attr |= ATTR_UNUSABLE;
    this.view.setUint32(p, s.selector & 0xffff, true);
    this.view.setUint32(p + 4, attr, true);
    this.view.setUint32(p + 8, s.limit >>> 0, true);
    this.view.setBigUint64(p + 16, BigInt.asUintN(64, s.base), true);
  }

  setState(s: CpuState): void {
    GPR_ORDER.forEach((name, i) => this.setU64(O.GPR + i * 8, s.regs[name]));
    this.setU64(O.RIP, s.regs.rip);
    this.setU64(O.RFLAGS, (s.regs.rflags & 0x3f7fd7n) | 2n);
    SEG_NAMES.forEach((n, i) => this.writeSeg(i, s[n]));
    this.setU64(O.GDTR_BASE, s.gdt.base);
    this.setU64(O.GDTR_LIMIT, BigInt(s.gdt.limit));
    this.setU64(O.IDTR_BASE, s.idt.base);
    this.setU64(O.IDTR_LIMIT, BigInt(s.idt.limit));
    this.setU64(O.CR0, s.cr0);
    this.setU64(O.CR2, s.cr2);
    this.setU64(O.CR3, s.cr3);
    this.setU64(O.CR4, s.cr4);
    this.setU64(O.CR8, s.cr8);
    this.setU64(O.EFER, s.efer);
    this.setU64(O.APICBASE, s.apicBase | (this.vcpuId === 0 ? 1n << 8n : 0n));
    this.setU64(O.PAT, 0x0007040600070406n); // power-up PAT (SDM vol. 3A 13.12.4)
    this.view.setInt32(this.base + O.HALTED, 0, true);
    this.core.syncIn();
  }

  getState(): CpuState {
    this.core.syncOut();
    const regs = { rip: this.u64(O.RIP), rflags: this.u64(O.RFLAGS) } as CpuState['regs'];
    GPR_ORDER.forEach((name, i) => { regs[name] = this.u64(O.GPR + i * 8); });
    const seg = (n: (typeof SEG_NAMES)[number]) => this.readSeg(SEG_INDEX[n]);
    return {
      regs,
      cs: seg('cs'), ds: seg('ds'), es: seg('es'), fs: seg('fs'), gs: seg('gs'), ss: seg('ss'), tr: seg('tr'), ldt: seg('ldt'),
      gdt: { base: this.u64(O.GDTR_BASE), limit: Number(this.u64(O.GDTR_LIMIT)) },
      idt: { base: this.u64(O.IDTR_BASE), limit: Number(this.u64(O.IDTR_LIMIT)) },
      cr0: this.u64(O.CR0), cr2: this.u64(O.CR2), cr3: this.u64(O.CR3), cr4: this.u64(O.CR4), cr8: this.u64(O.CR8),
      efer: this.u64(O.EFER),
      apicBase: this.u64(O.APICBASE),
    };
  }

  /** Read an MSR value from the state block (for tests and the differential oracle). */
  msr(name: 'STAR' | 'LSTAR' | 'CSTAR' | 'SFMASK' | 'KGSBASE' | 'PAT' | 'SYSENTER_CS' | 'SYSENTER_ESP' | 'SYSENTER_EIP'): bigint {
    return this.u64(O[name]);
  }

  /** Instructions retired since the state was last set. */
  get instructions(): number { return this.core.instructionCount(); }

  get halted(): boolean { return this.view.getInt32(this.base + O.HALTED, true) !== 0; }

  // ------------------------------------------------------------------ running

  /**
   * Execute up to `maxInstructions` instructions. Stops early on HLT (with no interrupt to
   * take), a triple fault, or something the core does not implement.
   */
  /**
   * Ends the current `run` at the next instruction boundary, returning { kind: 'budget' }. Devices
   * call this (through the accelerator) when they stop the VM in the middle of a slice, e.g.
   * isa-debug-exit, so no guest instruction after the stopping one executes.
   */
  requestExit(): void {
    this.exitRequested = true;
    this.core.requestExit();
  }

  /** Release what outlives a run: the JIT's compiler thread. */
  close(): void {
    this.jit?.close();
  }

  /**
   * Run up to `maxInstructions` instructions (exactly that many unless the guest halts, exits or
   * faults out). With `exact` false it may return earlier, before a compiled block longer than
   * what is left, instead of interpreting that block (what a time slice wants).
   */
  run(maxInstructions: number, exact = true): SoftExit {
    const core = this.core;
    this.exitRequested = false;
    const intr = this.base + O.INTR_REQUEST;
    let left = maxInstructions;
    let start = core.instructionCount();
    while (left > 0) {
      if (this.exitRequested) {
        this.exitRequested = false;
        return { kind: 'budget' };
      }
      this.jit?.poll(); // install what the compiler thread finished
      this.view.setInt32(intr, this.interruptSource?.pending() ? 1 : 0, true);
      let code: number;
      const asked = Math.min(left, SLICE);
      try {
        code = core.run(asked, exact ? 1 : 0);
      } catch (e) {
        const exit = this.afterTrap(e);
        if (exit) return exit;
        const now = core.instructionCount();
        left -= now - start;
        start = now;
        continue;
      }
      const now = core.instructionCount();
      const ran = now - start;
      left -= ran;
      start = now;
      if (this.exitRequested) {
        this.exitRequested = false;
        return { kind: 'budget' };
      }
      // fewer than asked (only when not `exact`): the core stopped before a compiled block longer
      // than what was left (as/index.ts run); the caller's next slice runs it with a full budget
      if (code === EXIT_BUDGET) {
        if (ran < asked) return { kind: 'budget' };
        continue;
      }
      if (code === EXIT_HLT) return { kind: 'hlt' };
      if (code === EXIT_INTR) {
        const source = this.interruptSource;
        if (!source) continue;
        const vec = source.acknowledge() & 0xff;
        try {
          core.deliverExternal(vec);
        } catch (e) {
          const exit = this.afterTrap(e);
          if (exit) return exit;
        }
        continue;
      }
      if (code === EXIT_SHUTDOWN) return { kind: 'shutdown', reason: 'triple fault' };
      return { kind: 'error', message: `software CPU core returned ${code}` };
    }
    return { kind: 'budget' };
  }

  /** A trap out of the core: deliver a guest exception, or turn it into an exit. */
  private afterTrap(e: unknown): SoftExit | undefined {
    const core = this.core;
    for (let nested = 0; nested < 4; nested++) {
      const vec = core.pendingVector();
      if (vec < 0) {
        if (core.unsupportedCode() !== 0) return { kind: 'error', message: this.unsupportedMessage() };
        return { kind: 'error', message: `software CPU core failed: ${(e as Error).message ?? String(e)}\n${this.dump()}` };
      }
      let shutdown = false;
      try {
        shutdown = core.deliverPending() === EXIT_SHUTDOWN;
      } catch (e2) {
        e = e2; // a fault while delivering: the core combines it (double-fault rules); go again
        continue;
      } finally {
        const dv = core.deliveredVector();
        const de = core.deliveredError();
        if (dv >= 0) this.lastException = de >= 0 ? { vector: dv, errorCode: de } : { vector: dv };
      }
      if (shutdown) return { kind: 'shutdown', reason: `triple fault (${VECTOR_NAMES[vec] || `vector ${vec}`} while delivering a double fault)` };
      return undefined;
    }
    return { kind: 'shutdown', reason: 'repeated faults while delivering an exception' };
  }

  private unsupportedMessage(): string {
    const st = this.getState();
    const rip = this.u64(O.EXIT_RIP);
    const info = this.view.getUint32(this.base + O.EXIT_INFO, true);
    const bytes: string[] = [];
    const lin = st.cs.base + rip;
    for (let i = 0; i < 15; i++) {
      try {
        bytes.push(this.core.debugRead8(Number(BigInt.asUintN(64, lin + BigInt(i)))).toString(16).padStart(2, '0'));
      } catch {
        this.core.clearFault();
        break;
      }
    }
    this.core.clearFault();
    const mode = (st.cr0 & 1n) === 0n ? 'real mode' : st.cs.l && (st.efer & (1n << 10n)) !== 0n ? '64-bit mode' : st.cs.db ? '32-bit protected mode' : '16-bit protected mode';
    return `unimplemented instruction (opcode ${hex(info)}) at ${hex(st.cs.selector)}:${hex(rip)} in ${mode}; bytes: ${bytes.join(' ')}\n${formatCpuState(st, this.vcpuId)}`;
  }

  /** A readable register dump (for error messages). */
  dump(): string {
    return formatCpuState(this.getState(), this.vcpuId);
  }
}
