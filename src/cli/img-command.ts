// `tsvm img create|info|check|convert`: the basics of qemu-img for raw and qcow2 images.
// Exit statuses: 0 success, 1 error (one line on stderr); `check` as qemu-img: 0 clean,
// 2 corruptions found, 3 leaks only, 63 the format has no metadata to check.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BlockError } from '../block/errors.js';
import type { DiskFormat } from '../block/backend.js';
import { parseFormat } from '../block/open.js';
import { createImage } from '../block/create.js';
import { imageInfo, type ImageInfo } from '../block/info.js';
import { checkExitCode, checkImage } from '../block/check.js';
import { convertImage } from '../block/convert.js';

export const IMG_USAGE = `Usage: tsvm img COMMAND [options]

Commands:
  create [-f raw|qcow2] [-b BACKING [-F FMT]] [-o OPTIONS] PATH [SIZE]
      Create an empty image (default format qcow2). SIZE takes k, M, G, T suffixes
      (powers of 1024); with a backing file it defaults to the backing file's size.
      A relative BACKING is relative to PATH's directory. -o: cluster_size=BYTES,
      compat=0.10|1.1 (qcow2 version 2 or 3).
  info [--json] [-f FMT] PATH
      Format, virtual size, disk size, cluster size and the backing chain.
  check [-f FMT] [-r leaks|all] PATH
      Check qcow2 metadata: refcounts, leaks, offsets past the end of the file.
      -r leaks frees leaked clusters; -r all also rebuilds the refcounts (and clears
      the dirty bit). Exit status (after any repair) 0: no errors, 2: corruptions,
      3: leaked clusters only, 63: raw.
  convert [-f FMT] -O raw|qcow2 [-c] [-o cluster_size=BYTES] SRC DST
      Copy SRC (through its backing chain) into a new image DST; zero areas stay sparse.
      -c stores qcow2 clusters compressed (deflate).

Formats are probed when -f is not given.
`;

class UsageError extends Error {}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50, e: 2 ** 60 };

/** "10G", "512M", "1048576", "1.5G" (qemu-img's suffixes, powers of 1024). */
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgtpe]?)(?:i?b)?$/i.exec(s.trim());
  if (!m) throw new UsageError(`"${s}" is not a size (e.g. 10G, 512M, 1048576)`);
  const v = Number(m[1]) * UNITS[m[2].toLowerCase()];
  if (!Number.isSafeInteger(Math.ceil(v))) throw new UsageError(`size "${s}" is too large`);
  return Math.ceil(v);
}

function humanSize(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let u = 0;
  let v = n;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${Number.isInteger(v) ? v : v.toFixed(2).replace(/\.?0+$/, '')} ${units[u]}`;
}

function fmtOpt(v: string | undefined, what: string): DiskFormat | undefined {
  if (v === undefined) return undefined;
  try {
    return parseFormat(v);
  } catch {
    throw new UsageError(`${what} "${v}" is not a format tsvm knows (raw, qcow2)`);
  }
}

function parse(argv: string[], options: NonNullable<ParseArgsConfig['options']>) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/\. To specify a positional.*$/s, ''));
  }
}

async function create(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    format: { type: 'string', short: 'f' },
    backing: { type: 'string', short: 'b' },
    'backing-format': { type: 'string', short: 'F' },
    options: { type: 'string', short: 'o' },
  });
  const [path, sizeArg, ...extra] = positionals;
  if (!path) throw new UsageError('img create: missing PATH');
  if (extra.length > 0) throw new UsageError(`img create: unexpected argument "${extra[0]}"`);
  let clusterSize: number | undefined;
  let version: 2 | 3 | undefined;
  for (const kv of (values.options as string | undefined)?.split(',').filter(Boolean) ?? []) {
    const [k, v = ''] = kv.split('=');
    if (k === 'cluster_size') clusterSize = parseSize(v);
    else if (k === 'compat') {
      if (v === '0.10' || v === 'v2') version = 2;
      else if (v === '1.1' || v === 'v3') version = 3;
      else throw new UsageError(`compat=${v}: use 0.10 or 1.1`);
    } else throw new UsageError(`unknown -o option "${k}" (known: cluster_size, compat)`);
  }
  const format = fmtOpt(values.format as string | undefined, '-f') ?? 'qcow2';
  const backingFile = values.backing as string | undefined;
  if (values['backing-format'] !== undefined && backingFile === undefined) throw new UsageError('-F needs -b');
  await createImage(path, {
    format,
    size: sizeArg !== undefined ? parseSize(sizeArg) : undefined,
    backingFile,
    backingFormat: fmtOpt(values['backing-format'] as string | undefined, '-F'),
    clusterSize,
    version,
  });
  process.stdout.write(
    `Formatting '${path}', fmt=${format}${backingFile !== undefined ? ` backing_file=${backingFile}` : ''}` +
      `${sizeArg !== undefined ? ` size=${parseSize(sizeArg)}` : ''}\n`,
  );
  return 0;
}

function infoText(i: ImageInfo): string {
  const lines = [
    `image: ${i.filename}`,
    `file format: ${i.format}`,
    `virtual size: ${humanSize(i.virtualSize)} (${i.virtualSize} bytes)`,
    `disk size: ${humanSize(i.actualSize)}`,
  ];
  if (i.clusterSize !== undefined) lines.push(`cluster_size: ${i.clusterSize}`);
  if (i.backingFilename !== undefined) {
    lines.push(`backing file: ${i.backingFilename}${i.fullBackingFilename !== i.backingFilename ? ` (actual path: ${i.fullBackingFilename})` : ''}`);
    if (i.backingFilenameFormat !== undefined) lines.push(`backing file format: ${i.backingFilenameFormat}`);
  }
  if (i.format === 'qcow2') {
    lines.push('Format specific information:');
    lines.push(`    compat: ${i.qcow2Version === 2 ? '0.10' : '1.1'}`);
    lines.push(`    refcount bits: ${i.refcountBits}`);
    lines.push(`    corrupt: ${i.corrupt}`);
    if (i.dirty) lines.push('    dirty: true');
    if (i.snapshots) lines.push(`    snapshots: ${i.snapshots}`);
  }
  return lines.join('\n') + '\n';
}

function infoJson(i: ImageInfo): Record<string, unknown> {
  const o: Record<string, unknown> = {
    filename: i.filename,
    format: i.format,
    'virtual-size': i.virtualSize,
    'actual-size': i.actualSize,
  };
  if (i.clusterSize !== undefined) o['cluster-size'] = i.clusterSize;
  if (i.backingFilename !== undefined) {
    o['backing-filename'] = i.backingFilename;
    o['full-backing-filename'] = i.fullBackingFilename;
    if (i.backingFilenameFormat !== undefined) o['backing-filename-format'] = i.backingFilenameFormat;
  }
  if (i.format === 'qcow2') {
    o['format-specific'] = {
      type: 'qcow2',
      data: { compat: i.qcow2Version === 2 ? '0.10' : '1.1', 'refcount-bits': i.refcountBits, corrupt: i.corrupt, dirty: i.dirty },
    };
  }
  if (i.backing) o['backing-image'] = infoJson(i.backing);
  return o;
}

async function info(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    json: { type: 'boolean' },
    format: { type: 'string', short: 'f' },
    output: { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError('img info: give exactly one PATH');
  const json = values.json === true || values.output === 'json';
  const i = await imageInfo(positionals[0], fmtOpt(values.format as string | undefined, '-f'));
  if (json) process.stdout.write(JSON.stringify(infoJson(i), null, 2) + '\n');
  else {
    let text = infoText(i);
    for (let b = i.backing; b; b = b.backing) text += '\n' + infoText(b);
    process.stdout.write(text);
  }
  return 0;
}

async function check(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { format: { type: 'string', short: 'f' }, repair: { type: 'string', short: 'r' } });
  if (positionals.length !== 1) throw new UsageError('img check: give exactly one PATH');
  const repair = values.repair as string | undefined;
  if (repair !== undefined && repair !== 'leaks' && repair !== 'all') throw new UsageError(`-r ${repair}: use -r leaks or -r all`);
  const r = await checkImage(positionals[0], fmtOpt(values.format as string | undefined, '-f'), repair);
  if (!r.supported) {
    process.stderr.write(`tsvm img: ${positionals[0]}: the ${r.format} format has no metadata to check\n`);
    return checkExitCode(r);
  }
  const out: string[] = [];
  if (r.repaired) {
    out.push('The following inconsistencies were found and repaired:', '', `    ${r.repaired.leaks} leaked clusters`,
      `    ${r.repaired.corruptions} corruptions`, '', 'Double checking the fixed image now...');
  }
  out.push(...r.messages);
  if (r.corruptions === 0 && r.leaks === 0) out.push('No errors were found on the image.');
  if (r.corruptions > 0) {
    out.push(`\n${r.corruptions} errors were found on the image.`, 'Data may be corrupted, or further writes to the image may corrupt it.');
  }
  if (r.leaks > 0) out.push(`\n${r.leaks} leaked clusters were found on the image.`, 'This means waste of disk space, but no harm to data.');
  if (r.totalClusters > 0) {
    const pct = (n: number) => ((100 * n) / r.totalClusters).toFixed(2);
    out.push(`${r.allocatedClusters}/${r.totalClusters} = ${pct(r.allocatedClusters)}% allocated, ${pct(r.compressedClusters)}% compressed clusters`);
  }
  out.push(`Image end offset: ${r.imageEndOffset}`);
  process.stdout.write(out.join('\n') + '\n');
  return checkExitCode(r);
}

async function convert(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    format: { type: 'string', short: 'f' },
    'output-format': { type: 'string', short: 'O' },
    options: { type: 'string', short: 'o' },
    progress: { type: 'boolean', short: 'p' },
    compress: { type: 'boolean', short: 'c' },
  });
  if (positionals.length !== 2) throw new UsageError('img convert: give SRC and DST');
  const target = fmtOpt((values['output-format'] as string | undefined) ?? 'raw', '-O')!;
  let clusterBits: number | undefined;
  for (const kv of (values.options as string | undefined)?.split(',').filter(Boolean) ?? []) {
    const [k, v = ''] = kv.split('=');
    if (k === 'cluster_size') clusterBits = Math.log2(parseSize(v));
    else throw new UsageError(`unknown -o option "${k}" (known: cluster_size)`);
  }
  if (clusterBits !== undefined && !Number.isInteger(clusterBits)) throw new UsageError('cluster_size must be a power of two');
  const [src, dst] = positionals;
  if (src === dst) throw new UsageError('img convert: SRC and DST are the same file');
  await convertImage(src, dst, {
    sourceFormat: fmtOpt(values.format as string | undefined, '-f'),
    targetFormat: target,
    clusterBits,
    compress: values.compress === true,
    onProgress: values.progress ? (d, t) => process.stderr.write(`\r    (${((100 * d) / Math.max(1, t)).toFixed(2)}/100%)`) : undefined,
  });
  if (values.progress) process.stderr.write('\n');
  return 0;
}

/** `tsvm img ...`: returns the exit status; errors are printed as one line on stderr. */
export async function imgCommand(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(IMG_USAGE);
    return 0;
  }
  try {
    switch (cmd) {
      case 'create':
        return await create(rest);
      case 'info':
        return await info(rest);
      case 'check':
        return await check(rest);
      case 'convert':
        return await convert(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(IMG_USAGE);
        return cmd === undefined ? 1 : 0;
      default:
        throw new UsageError(`unknown img command "${cmd}" (commands: create, info, check, convert)`);
    }
  } catch (e) {
    if (e instanceof UsageError || e instanceof BlockError) {
      process.stderr.write(`tsvm img: ${e.message}${e instanceof UsageError ? ' (tsvm img --help)' : ''}\n`);
      return 1;
    }
    throw e;
  }
}
