// npm dependencies that only some VMs use, loaded at their first use instead of at startup: every
// `tsvm run` imports the modules that may need them (the kernel loader, the qcow2 driver), and
// loading them at import cost each start ~14 ms (the xz decoder's native addon ~9 ms, fzstd ~5).
// Both packages ship CommonJS builds, so a synchronous require keeps the callers synchronous.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

type Lzma = typeof import('@napi-rs/lzma');
type Fzstd = typeof import('fzstd');

let lzma: Lzma | undefined;
let fzstd: Fzstd | undefined;

/** @napi-rs/lzma's LZMA2 decoder (xz kernels). */
export function lzma2(): Lzma['lzma2'] {
  return (lzma ??= require('@napi-rs/lzma') as Lzma).lzma2;
}

/** fzstd's decompress (zstd kernels, zstd-compressed qcow2 clusters). */
export function zstdDecompress(input: Uint8Array, out?: Uint8Array): Uint8Array {
  return (fzstd ??= require('fzstd') as Fzstd).decompress(input, out);
}
