// The compiler thread's warm-up (compile-worker.ts): before the first batch arrives, it compiles
// a sample of x86-64 code over and over, so that V8 has optimized the block compiler's JavaScript
// by the time the guest's hot blocks come. Without it the first batches of a boot took ~0.5-0.8
// ms per block (the compiler still in V8's interpreter) against ~0.12 ms later, while the early
// boot's hot loops waited for them interpreted; with it, boots to Linux's /init were ~1 % faster
// (bench:ab-boot against the same build with the warm-up off, four runs of 10-12 rounds in both
// orders: 0.985x, 0.993x, 0.997x, 0.986x; the CPU's thread -1.1 %). Since node compiles wasm
// eagerly (cli/node-flags.ts), it measured without effect either way (12 rounds: medians 0.983x,
// per-round ratios 1.013x with it off). It runs while the VMM loads the kernel, when the second
// core is otherwise idle, and stops as soon as the first batch is posted.

import { BlockCompiler } from './compiler.js';
import { compileBatch, SIBLING_MIN_RUNS, type Batch } from './batch.js';

/**
 * Milliseconds of warm-up at most. The thread starts it ~50 ms after it is spawned; the guest's
 * first instruction comes ~30-50 ms later and its first batch later still, which usually ends the
 * warm-up first (40 ms ended before the guest's first instruction).
 */
export const WARM_UP_MS = 120;

/**
 * x86-64 code of the kinds a kernel runs: a prologue and epilogue, loads and stores with
 * displacements, SIB and RIP-relative operands, ALU operations whose flags a Jcc reads, CALL/RET,
 * a loop, SETcc/CMOVcc, shifts, a rotate, BT, IMUL, MOVZX/MOVSX, CDQE/CQO, ADC. Assembled by nasm
 * from this source (each line starts with the offset of its first instruction):
 *   00 push rbp / mov rbp,rsp / push rbx / push r12 / mov rbx,rdi / mov r12d,esi / mov eax,[rdi+0x10]
 *      test eax,eax / je .out / mov rcx,[rbx+8] / add rax,rcx / cmp rax,0x40 / jae .big
 *      lea rdx,[rax+rax*2] / mov [rbx+0x18],rdx / movzx esi,byte [rbx+4] / shl rsi,3 / or rdx,rsi
 *      xor edx,0x55 / sub r12d,1 / jnz .loop
 *   3d .big: mov rdi,rbx / call f2 / jmp .out
 *   47 .loop: inc dword [rbx+0x20] / dec r12d / jne .loop
 *   4f .out: pop r12 / pop rbx / pop rbp / ret
 *   54 f2: mov rax,[rdi] / mov rdx,[rdi+8] / imul rax,rdx / mov [rdi+0x28],rax / setne cl
 *      movsx ecx,cl / cmovz eax,ecx / and eax,0xfff / shr rdx,7 / rol rdx,3 / bt edx,5 / jc .c
 *      mov qword [rdi+0x30],0 / sar rax,2 / neg rax / not rdx / test rdx,rax / jg .c
 *      mov r8,[rel f1+0x100] / lea r9,[rel f1+0x200] / add r8,r9
 *   a7 .c: movzx eax,word [rdi+rcx*2+6] / cdqe / cqo / xchg rax,rdx / ret
 *   b3 f3: xor eax,eax / mov ecx,16
 *   ba .l: add eax,[rdi+rcx*4] / adc edx,0 / sub ecx,1 / jnz .l / mov [rsi],eax / ret
 */
export const WARM_CODE: readonly number[] = [
  0x55, 0x48, 0x89, 0xe5, 0x53, 0x41, 0x54, 0x48, 0x89, 0xfb, 0x41, 0x89, 0xf4, 0x8b, 0x47, 0x10, 0x85, 0xc0, 0x74, 0x3b,
  0x48, 0x8b, 0x4b, 0x08, 0x48, 0x01, 0xc8, 0x48, 0x83, 0xf8, 0x40, 0x73, 0x1c, 0x48, 0x8d, 0x14, 0x40, 0x48, 0x89, 0x53,
  0x18, 0x0f, 0xb6, 0x73, 0x04, 0x48, 0xc1, 0xe6, 0x03, 0x48, 0x09, 0xf2, 0x83, 0xf2, 0x55, 0x41, 0x83, 0xec, 0x01, 0x75,
  0x0a, 0x48, 0x89, 0xdf, 0xe8, 0x0f, 0x00, 0x00, 0x00, 0xeb, 0x08, 0xff, 0x43, 0x20, 0x41, 0xff, 0xcc, 0x75, 0xf8, 0x41,
  0x5c, 0x5b, 0x5d, 0xc3, 0x48, 0x8b, 0x07, 0x48, 0x8b, 0x57, 0x08, 0x48, 0x0f, 0xaf, 0xc2, 0x48, 0x89, 0x47, 0x28, 0x0f,
  0x95, 0xc1, 0x0f, 0xbe, 0xc9, 0x0f, 0x44, 0xc1, 0x25, 0xff, 0x0f, 0x00, 0x00, 0x48, 0xc1, 0xea, 0x07, 0x48, 0xc1, 0xc2,
  0x03, 0x0f, 0xba, 0xe2, 0x05, 0x72, 0x28, 0x48, 0xc7, 0x47, 0x30, 0x00, 0x00, 0x00, 0x00, 0x48, 0xc1, 0xf8, 0x02, 0x48,
  0xf7, 0xd8, 0x48, 0xf7, 0xd2, 0x48, 0x85, 0xc2, 0x7f, 0x11, 0x4c, 0x8b, 0x05, 0x63, 0x00, 0x00, 0x00, 0x4c, 0x8d, 0x0d,
  0x5c, 0x01, 0x00, 0x00, 0x4d, 0x01, 0xc8, 0x0f, 0xb7, 0x44, 0x4f, 0x06, 0x48, 0x98, 0x48, 0x99, 0x48, 0x92, 0xc3, 0x31,
  0xc0, 0xb9, 0x10, 0x00, 0x00, 0x00, 0x03, 0x04, 0x8f, 0x83, 0xd2, 0x00, 0x83, 0xe9, 0x01, 0x75, 0xf5, 0x89, 0x06, 0xc3,
];
/** Offsets in WARM_CODE where blocks start (the labels above), each queued as a hot block. */
export const WARM_STARTS: readonly number[] = [0x00, 0x3d, 0x47, 0x4f, 0x54, 0xa7, 0xb3, 0xba];

interface WasmModuleApi { Module: new (bytes: Uint8Array) => object }
const wasm = (globalThis as unknown as { WebAssembly: WasmModuleApi }).WebAssembly;

/**
 * One pass over the sample: every block start compiled as a queued block (calls between them are
 * direct, as between siblings), in a memory of its own. The compiler reads no more than the code and the
 * fetch TLB's slots (zero here: no next page is mapped).
 */
export function compileWarmSample(compiler: BlockCompiler = warmCompiler()): Batch {
  const items = WARM_STARTS.map((s) => ({ e: 0, rip: SAMPLE_RIP + BigInt(s), host: SAMPLE_HOST + s, cpl: 0, gen: 1, count: 0 }));
  // every branch target has run often enough to be compiled along (as a sibling)
  return compileBatch(compiler, items, () => 50, SIBLING_MIN_RUNS);
}

const SAMPLE_HOST = 0x80000;
const SAMPLE_RIP = 0xffffffff81000000n;

function warmCompiler(): BlockCompiler {
  const mem = new Uint8Array(0x100000);
  mem.set(WARM_CODE, SAMPLE_HOST);
  return new BlockCompiler(mem);
}

/** Compile the sample again and again for at most `ms`, or until `stop()`; V8 validates the last module. */
export function warmUp(ms: number, stop: () => boolean): void {
  const compiler = warmCompiler();
  const end = performance.now() + ms;
  let bytes: Uint8Array | null = null;
  while (performance.now() < end && !stop()) bytes = compileWarmSample(compiler).bytes;
  if (bytes) new wasm.Module(bytes);
}
