// Child process for crash.test.ts: opens a disk, writes generation-0 data everywhere it is told,
// flushes, says so on stdout, then keeps writing and discarding (unflushed, or flushed every few
// steps) until it is killed with SIGKILL.
import { openDisk } from '../../src/block/open.js';
import { pattern, rng } from './helpers.js';

const [path, format, seedArg] = process.argv.slice(2);
const seed = Number(seedArg);
const d = await openDisk(path, { format: format as 'raw' | 'qcow2' });
const size = d.sizeBytes;
const CHUNK = 64 * 1024;
// Generation 0: every other chunk, flushed, acknowledged.
for (let off = 0; off < size; off += 2 * CHUNK) await d.write(off, pattern(CHUNK, off / CHUNK));
await d.flush();
process.stdout.write('FLUSHED\n');
// Then chaos until killed: the odd chunks get written, discarded, zeroed; flushes now and then.
const r = rng(seed);
for (let i = 0; ; i++) {
  const off = (2 * r(size / (2 * CHUNK)) + 1) * CHUNK;
  const op = r(10);
  if (op < 6) await Promise.all([d.write(off, pattern(CHUNK, i + 1000)), d.write(off + 100, pattern(500, i))]);
  else if (op < 8) await d.discard!(off, CHUNK);
  else if (op < 9) await d.writeZeroes!(off, CHUNK, r(2) === 0);
  else await d.flush();
  if (i % 50 === 0) process.stdout.write(`step ${i}\n`);
}
