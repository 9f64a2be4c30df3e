// The LZ4 block decoder of lz4-legacy.ts compiled to WebAssembly (written out with the wasm
// writer), for the kernels that tsvm decompresses on the host: Debian's 53 MiB vmlinux came out
// of the JavaScript decoder in ~80 ms, a sizeable part of a soft-CPU boot's start.
//
// Same format (lz4 repository, doc/lz4_Block_format.md), same checks, different copies: short
// literal runs and matches whose offset is at least 8 move 8 bytes at a time and may write up
// to 15 bytes past their end ("wild copies", as the reference decoder does). Those bytes lie
// inside the output buffer (the checks below demand the room) and ahead of the output written
// so far, so the sequences that follow overwrite them. A match with an offset of 8 or more
// copied 8 bytes at a time forwards equals the byte-by-byte copy: every byte it reads was
// written before the chunk that reads it.
//
// The function returns -1 on anything wrong with the data; the caller then runs the JavaScript
// decoder on the same block for the precise error message (decompressLz4Legacy).
import { Bytes, Emitter, OP, section, T_I32 } from '../../wasm/writer.js';

interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (m: object, imports: object) => { exports: Record<string, unknown> };
  Memory: new (d: { initial: number; maximum?: number }) => { buffer: ArrayBuffer };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** decode(src, srcEnd, dst, dstEnd, dstStart) -> end of the output in dst, or -1. */
export type Lz4BlockDecode = (src: number, srcEnd: number, dst: number, dstEnd: number, dstStart: number) => number;

function decoderBody(): Emitter {
  const S = 0, SE = 1, D = 2, DE = 3, DS = 4; // parameters
  const TOK = 5, LIT = 6, B = 7, OFF = 8, LEN = 9, FROM = 10, END = 11; // locals
  const c = new Emitter();
  c.u32(1).u32(7).byte(T_I32);
  // structured control with named labels (a branch's depth is counted from the innermost)
  const labels: string[] = [];
  const open = (op: number, name: string) => { c.op(op).byte(0x40); labels.push(name); };
  const close = () => { c.op(OP.end); labels.pop(); };
  const brIf = (name: string) => c.op(OP.brIf).u32(labels.length - 1 - labels.lastIndexOf(name));
  const br = (name: string) => c.op(OP.br).u32(labels.length - 1 - labels.lastIndexOf(name));
  const inc = (local: number, by: number) => c.get(local).i32c(by).op(OP.i32Add).set(local);
  /** A length continued by bytes of 255 (Block format: "linear small-integer code"). */
  const longLength = (local: number) => {
    open(OP.loop, 'more');
    c.get(S).get(SE).op(OP.i32GeU); brIf('fail');
    c.get(S).mem(OP.i32Load8U, 0, 0).tee(B).get(local).op(OP.i32Add).set(local);
    inc(S, 1);
    c.get(B).i32c(255).op(OP.i32Eq); brIf('more');
    close();
  };

  /** Copy FROM.. to D.. forwards in `step`-byte moves (8 or 1) until D reaches END. */
  const copyForward = (step: 8 | 1) => {
    open(OP.loop, 'copy');
    if (step === 8) c.get(D).get(FROM).mem(OP.i64Load, 0, 0).mem(OP.i64Store, 0, 0);
    else c.get(D).get(FROM).mem(OP.i32Load8U, 0, 0).mem(OP.i32Store8, 0, 0);
    inc(D, step);
    inc(FROM, step);
    c.get(D).get(END).op(OP.i32LtU); brIf('copy');
    close();
  };

  open(OP.block, 'fail');
  open(OP.loop, 'seq');
  // token: literal count (high nibble), match length - 4 (low nibble)
  c.get(S).get(SE).op(OP.i32GeU); brIf('fail');
  c.get(S).mem(OP.i32Load8U, 0, 0).tee(TOK).i32c(4).op(OP.i32ShrU).set(LIT);
  inc(S, 1);
  c.get(LIT).i32c(15).op(OP.i32Eq); open(OP.if, 'if'); longLength(LIT); close();
  // literals
  c.get(LIT); open(OP.if, 'if');
  c.get(LIT).get(SE).get(S).op(OP.i32Sub).op(OP.i32GtU); brIf('fail');
  c.get(LIT).get(DE).get(D).op(OP.i32Sub).op(OP.i32GtU); brIf('fail');
  c.get(LIT).i32c(16).op(OP.i32LeU);
  c.get(SE).get(S).op(OP.i32Sub).i32c(16).op(OP.i32GeU).op(OP.i32And);
  c.get(DE).get(D).op(OP.i32Sub).i32c(16).op(OP.i32GeU).op(OP.i32And);
  open(OP.if, 'if');
  c.get(D).get(S).mem(OP.i64Load, 0, 0).mem(OP.i64Store, 0, 0);
  c.get(D).get(S).mem(OP.i64Load, 0, 8).mem(OP.i64Store, 0, 8);
  c.op(OP.else);
  c.get(D).get(S).get(LIT).memoryCopy();
  close();
  c.get(S).get(LIT).op(OP.i32Add).set(S);
  c.get(D).get(LIT).op(OP.i32Add).set(D);
  close();
  // the last sequence has literals only: the block ends exactly here
  c.get(S).get(SE).op(OP.i32Eq); open(OP.if, 'if'); c.get(D).op(OP.return); close();
  // match: offset (u16, not 0, not before the block's output), length
  c.get(SE).get(S).op(OP.i32Sub).i32c(2).op(OP.i32LtU); brIf('fail');
  c.get(S).mem(OP.i32Load16U, 0, 0).tee(OFF).op(OP.i32Eqz); brIf('fail');
  c.get(OFF).get(D).get(DS).op(OP.i32Sub).op(OP.i32GtU); brIf('fail');
  inc(S, 2);
  c.get(TOK).i32c(15).op(OP.i32And).i32c(4).op(OP.i32Add).set(LEN);
  c.get(TOK).i32c(15).op(OP.i32And).i32c(15).op(OP.i32Eq); open(OP.if, 'if'); longLength(LEN); close();
  c.get(LEN).get(DE).get(D).op(OP.i32Sub).op(OP.i32GtU); brIf('fail');
  c.get(D).get(OFF).op(OP.i32Sub).set(FROM);
  c.get(D).get(LEN).op(OP.i32Add).set(END);
  c.get(OFF).i32c(8).op(OP.i32GeU);
  c.get(DE).get(D).op(OP.i32Sub).get(LEN).i32c(8).op(OP.i32Add).op(OP.i32GeU).op(OP.i32And);
  open(OP.if, 'if');
  copyForward(8);
  c.op(OP.else);
  c.get(OFF).get(LEN).op(OP.i32GeU); open(OP.if, 'if');
  c.get(D).get(FROM).get(LEN).memoryCopy();
  c.op(OP.else);
  c.get(OFF).i32c(1).op(OP.i32Eq); open(OP.if, 'if');
  c.get(D).get(D).i32c(1).op(OP.i32Sub).mem(OP.i32Load8U, 0, 0).get(LEN).memoryFill();
  c.op(OP.else);
  // overlapping, offset 2..7: byte by byte (each byte read was written already)
  copyForward(1);
  close();
  close();
  close();
  c.get(END).set(D);
  br('seq');
  close(); // seq
  close(); // fail
  c.i32c(-1).op(OP.end);
  return c;
}

/** The decoder module, per kind of memory import, compiled once; null where WebAssembly refuses it. */
const compiled = new Map<'own' | 'shared', object | null>();

/**
 * The decoder module; null where WebAssembly refuses it (the caller decodes in JavaScript).
 * @param kind 'own': it imports an ordinary memory of its own; 'shared': a shared memory (the soft
 *   CPU's, which holds guest RAM: decompressLz4LegacyInto decodes straight into it)
 */
function decoderModule(kind: 'own' | 'shared'): object | null {
  const known = compiled.get(kind);
  if (known !== undefined) return known;
  let mod: object | null;
  try {
    const out = new Bytes();
    out.bytes([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
    section(out, 1, new Bytes().u32(1).byte(0x60).u32(5).bytes([T_I32, T_I32, T_I32, T_I32, T_I32]).u32(1).byte(T_I32));
    // A memory import's limits (wasm core spec 5.3.8 "Limits"; threads proposal: flag 3 = shared,
    // which needs a maximum): min 1 page; the shared one up to 65,536 pages (4 GiB), so any memory fits.
    const limits = kind === 'own' ? new Bytes().byte(0x00).u32(1) : new Bytes().byte(0x03).u32(1).u32(65536);
    section(out, 2, new Bytes().u32(1).name('e').name('m').byte(0x02).append(limits));
    section(out, 3, new Bytes().u32(1).u32(0));
    section(out, 7, new Bytes().u32(1).name('decode').byte(0x00).u32(0));
    const body = decoderBody();
    section(out, 10, new Bytes().u32(1).u32(body.length).append(body));
    mod = new wasm.Module(out.view());
  } catch {
    mod = null;
  }
  compiled.set(kind, mod);
  return mod;
}

/** A wasm memory of at least `bytes` bytes with the decoder bound to it, or null (no such memory). */
export function lz4WasmDecoder(bytes: number): { memory: ArrayBuffer; decode: Lz4BlockDecode } | null {
  const mod = decoderModule('own');
  if (!mod) return null;
  const pages = Math.ceil(bytes / 65536);
  if (pages > 32768) return null; // addresses stay below 2 GiB: the function returns them as i32
  try {
    const memory = new wasm.Memory({ initial: pages, maximum: pages });
    const inst = new wasm.Instance(mod, { e: { m: memory } });
    return { memory: memory.buffer, decode: inst.exports.decode as Lz4BlockDecode };
  } catch {
    return null; // not enough memory for one more buffer of that size: the JavaScript decoder allocates its own
  }
}

/**
 * The decoder bound to an existing shared WebAssembly.Memory (addresses are offsets in it), or
 * null where that cannot be. Only addresses below 2 GiB may be used: the function returns them as i32.
 */
export function lz4WasmDecoderOn(memory: object): Lz4BlockDecode | null {
  const mod = decoderModule('shared');
  if (!mod) return null;
  try {
    const inst = new wasm.Instance(mod, { e: { m: memory } });
    return inst.exports.decode as Lz4BlockDecode;
  } catch {
    return null;
  }
}
