// Crash consistency: a child process writes and flushes, reports it, keeps writing, and is
// killed with SIGKILL at a random moment. Reopened, the image has every flushed byte, and its
// metadata has no corruption (leaked clusters are allowed: that is the price of the ordering
// that keeps pointers from ever preceding what they point at).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDisk } from '../../src/block/open.js';
import { createQcow2 } from '../../src/block/qcow2/create.js';
import { checkImage } from '../../src/block/check.js';
import { pattern, tempDir } from './helpers.js';

const dir = tempDir('crash');
after(() => rmSync(dir, { recursive: true, force: true }));
const CHILD = fileURLToPath(new URL('./crash-child.js', import.meta.url));
const CHUNK = 64 * 1024;

/** Runs the child until it has flushed and taken `steps` more steps, then SIGKILLs it. */
function runAndKill(path: string, format: string, seed: number, steps: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, path, format, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let killed = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child did not get going in 60 s: ${out} ${err}`));
    }, 60_000);
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const m = [...out.matchAll(/step (\d+)/g)].pop();
      if (!killed && out.includes('FLUSHED') && (steps === 0 || (m && Number(m[1]) >= steps))) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL' && killed) resolve();
      else reject(new Error(`child exited (${code ?? signal}) before it was killed: ${err}`));
    });
  });
}

async function verify(path: string, size: number): Promise<void> {
  const d = await openDisk(path, { readonly: true });
  const b = new Uint8Array(CHUNK);
  for (let off = 0; off < size; off += 2 * CHUNK) {
    await d.read(off, b);
    assert.ok(Buffer.from(b).equals(Buffer.from(pattern(CHUNK, off / CHUNK))), `flushed chunk at ${off} survived`);
  }
  await d.close();
}

test('crash: flushed writes survive SIGKILL (qcow2), metadata never corrupt', { timeout: 240_000 }, async () => {
  const size = 4 << 20;
  for (const [i, steps] of [0, 7, 50, 150].entries()) {
    const path = join(dir, `crash-${i}.qcow2`);
    await createQcow2(path, { size, clusterBits: i % 2 === 0 ? 16 : 12 });
    await runAndKill(path, 'qcow2', i + 1, steps);
    const c = await checkImage(path);
    assert.equal(c.corruptions, 0, `after kill ${i}: ${c.messages.join('\n')}`);
    await verify(path, size);
    // And the image is still good to write to.
    const d = await openDisk(path);
    await d.write(CHUNK, new Uint8Array(CHUNK).fill(1));
    await d.close();
    assert.equal((await checkImage(path)).corruptions, 0);
  }
});

test('crash: flushed writes survive SIGKILL (raw)', { timeout: 120_000 }, async () => {
  const size = 2 << 20;
  const path = join(dir, 'crash.raw');
  writeFileSync(path, new Uint8Array(size));
  await runAndKill(path, 'raw', 9, 30);
  await verify(path, size);
});
