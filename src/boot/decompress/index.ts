// Kernel payload decompression: recognise the format by its magic and decode it on the host, so
// the guest never runs the kernel's own decompressor (which under an emulated CPU costs seconds).
//
// The formats are those arch/x86/boot/compressed/Makefile can produce (CONFIG_KERNEL_*). Each
// payload ends with the decompressed size as a u32-LE (the Makefile's `size_append`, read back
// by arch/x86/boot/compressed/mkpiggy.c); `decompressKernelPayload` uses it to allocate once, to
// cap the work, and to check the result.
import { gunzipSync } from 'node:zlib';
import { BootError } from '../boot-plan.js';
import { decompressLz4Legacy, isLz4Legacy } from './lz4-legacy.js';
import { decompressXz } from './xz.js';
import { decompressZstd } from './zstd.js';

export type CompressionFormat =
  | 'lz4-legacy' | 'gzip' | 'xz' | 'zstd' // decoded here
  | 'bzip2' | 'lzma' | 'lzo' | 'lz4-frame' // recognised, to say what to do instead
  | 'none'; // an ELF image stored uncompressed (CONFIG_KERNEL_UNCOMPRESSED)

/** Human names, for messages. */
const NAMES: Record<CompressionFormat, string> = {
  'lz4-legacy': 'LZ4', gzip: 'gzip', xz: 'xz', zstd: 'zstd',
  bzip2: 'bzip2', lzma: 'lzma', lzo: 'LZO', 'lz4-frame': 'LZ4 (frame format)', none: 'uncompressed',
};

export function compressionName(f: CompressionFormat): string {
  return NAMES[f];
}

function startsWith(b: Uint8Array, magic: readonly number[]): boolean {
  if (b.length < magic.length) return false;
  for (let i = 0; i < magic.length; i++) if (b[i] !== magic[i]) return false;
  return true;
}

/**
 * The format of `bytes`, from its first bytes, or null when it is none we know. The magics are the
 * ones lib/decompress.c matches (and each format's own specification):
 * gzip 1F 8B (RFC 1952 2.3.1), xz FD 37 7A 58 5A 00, zstd frame 28 B5 2F FD (RFC 8878 3.1.1),
 * LZ4 legacy 02 21 4C 18, LZ4 frame 04 22 4D 18, bzip2 "BZh", lzop 89 4C 5A 4F, lzma 5D 00 00
 * (the usual properties byte and a dictionary size below 16 MiB), ELF 7F "ELF".
 */
export function detectCompression(bytes: Uint8Array): CompressionFormat | null {
  if (isLz4Legacy(bytes)) return 'lz4-legacy';
  if (startsWith(bytes, [0x1f, 0x8b])) return 'gzip';
  if (startsWith(bytes, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return 'xz';
  if (startsWith(bytes, [0x28, 0xb5, 0x2f, 0xfd])) return 'zstd';
  if (startsWith(bytes, [0x04, 0x22, 0x4d, 0x18])) return 'lz4-frame';
  if (startsWith(bytes, [0x42, 0x5a, 0x68])) return 'bzip2';
  if (startsWith(bytes, [0x89, 0x4c, 0x5a, 0x4f])) return 'lzo';
  if (startsWith(bytes, [0x5d, 0x00, 0x00])) return 'lzma';
  if (startsWith(bytes, [0x7f, 0x45, 0x4c, 0x46])) return 'none';
  return null;
}

export interface DecompressOptions {
  /** Exact decompressed size when known; the result is checked against it. */
  expectedSize?: number;
  /** Refuse to produce more than this (default 1 GiB). */
  maxSize?: number;
  /** Names the data in error messages, e.g. "/boot/vmlinuz: kernel payload". */
  what?: string;
}

const DEFAULT_MAX_SIZE = 1024 * 1024 * 1024;

function unsupported(what: string, f: CompressionFormat): never {
  const fix = f === 'lz4-frame'
    ? 'Linux itself writes LZ4 as a legacy frame (`lz4 -l`); recompress it that way'
    : 'rebuild the kernel with CONFIG_KERNEL_LZ4, CONFIG_KERNEL_ZSTD, CONFIG_KERNEL_GZIP or CONFIG_KERNEL_XZ';
  throw new BootError(
    `${what} is ${NAMES[f]}-compressed, which tsvm does not decompress: ${fix}, ` +
      'or boot with --boot-mode bzimage-64 so the kernel decompresses itself',
  );
}

/** Decompress `bytes`, whose format is found from its magic. Every failure is a BootError. */
export function decompress(bytes: Uint8Array, opts: DecompressOptions = {}): Uint8Array {
  const what = opts.what ?? 'compressed data';
  const maxSize = opts.maxSize ?? DEFAULT_MAX_SIZE;
  const expected = opts.expectedSize;
  if (expected !== undefined && expected > maxSize) {
    throw new BootError(`${what} claims to decompress to ${expected} bytes, more than the ${maxSize} allowed`);
  }
  const format = detectCompression(bytes);
  if (format === null) {
    const head = Array.from(bytes.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new BootError(`${what}: unknown compression format (first bytes ${head || 'none'})`);
  }
  let out: Uint8Array;
  switch (format) {
    case 'lz4-legacy':
      return decompressLz4Legacy(bytes, { expectedSize: expected, maxSize, what });
    case 'none':
      out = bytes;
      break;
    case 'gzip':
      try {
        out = gunzipSync(bytes, { maxOutputLength: maxSize });
      } catch (e) {
        throw new BootError(`${what}: corrupt gzip data (${(e as Error).message})`);
      }
      break;
    case 'xz':
      out = decompressXz(bytes, { maxSize, what });
      break;
    case 'zstd':
      out = decompressZstd(bytes, { expectedSize: expected, maxSize, what });
      break;
    default:
      unsupported(what, format);
  }
  if (expected !== undefined && out.length !== expected) {
    throw new BootError(`${what}: decompressed to ${out.length} bytes but ${expected} were recorded (truncated or corrupt)`);
  }
  return out;
}

/**
 * A bzImage payload split in two: the compressed data, and the u32-LE decompressed size the kernel
 * build appends to it (`size_append`; mkpiggy.c reads it as the output length). The payload holds
 * at least the 4 bytes of that size.
 */
export function splitKernelPayload(payload: Uint8Array): { compressed: Uint8Array; size: number } {
  const n = payload.length;
  const size = (payload[n - 4] | (payload[n - 3] << 8) | (payload[n - 2] << 16) | (payload[n - 1] << 24)) >>> 0;
  return { compressed: payload.subarray(0, n - 4), size };
}

/**
 * Decompress a bzImage payload (splitKernelPayload: compressed data, then its decompressed size).
 * @param maxSize typically the guest's RAM: a kernel larger than that cannot be loaded anyway
 */
export function decompressKernelPayload(
  payload: Uint8Array, opts: { what?: string; maxSize?: number } = {},
): { data: Uint8Array; format: CompressionFormat } {
  const what = opts.what ?? 'kernel payload';
  const format = detectCompression(payload);
  if (format === 'none') return { data: payload, format };
  if (payload.length < 8) throw new BootError(`${what} is truncated (${payload.length} bytes)`);
  const { compressed, size } = splitKernelPayload(payload);
  if (size === 0) throw new BootError(`${what} records a decompressed size of 0 (corrupt)`);
  const data = decompress(compressed, {
    what, expectedSize: size, maxSize: opts.maxSize ?? DEFAULT_MAX_SIZE,
  });
  return { data, format: format ?? 'none' };
}
