// tsvm runs node with --no-wasm-stack-checks (src/cli/node-flags.ts): no wasm function checks the
// stack limit on entry. That is safe only while the wasm this process runs cannot recurse without
// bound, so this test reads the core's call graph and fails when a new cycle appears.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import binaryen from 'binaryen';
import { coreModule } from '../../src/accel/soft/core-loader.js';
import { distSrcUrl } from '../../src/paths.js';

interface CallGraph {
  calls: Map<string, Set<string>>;
  /** Functions that contain a call_indirect (a call through the block table). */
  indirect: string[];
}

/** Direct calls (call, return_call) of every function defined in the module, from its text form. */
function callGraph(bytes: Uint8Array): CallGraph {
  const m = binaryen.readBinary(bytes);
  const text = m.emitText();
  m.dispose();
  const calls = new Map<string, Set<string>>();
  const indirect: string[] = [];
  let cur: Set<string> | null = null;
  let name = '';
  for (const line of text.split('\n')) {
    const f = /^ \(func \$(\S+)/.exec(line);
    if (f) {
      name = f[1]!;
      cur = new Set();
      calls.set(name, cur);
      continue;
    }
    if (!cur) continue;
    for (const c of line.matchAll(/\((?:return_)?call \$([^\s)]+)/g)) cur.add(c[1]!);
    if (line.includes('call_indirect') && !indirect.includes(name)) indirect.push(name);
  }
  return { calls, indirect };
}

/** Every cycle through more than one function, and the functions that call themselves. */
function cycles(calls: Map<string, Set<string>>): { long: string[][]; self: string[] } {
  const state = new Map<string, 1 | 2>();
  const long: string[][] = [];
  const self: string[] = [];
  const visit = (u: string, path: string[]): void => {
    state.set(u, 1);
    path.push(u);
    for (const v of calls.get(u) ?? []) {
      if (v === u) self.push(u);
      else if (state.get(v) === 1) long.push([...path.slice(path.indexOf(v)), v]);
      else if (!state.has(v)) visit(v, path);
    }
    path.pop();
    state.set(u, 2);
  };
  for (const f of calls.keys()) if (!state.has(f)) visit(f, []);
  return { long, self };
}

test('the soft CPU core cannot recurse without bound (what --no-wasm-stack-checks relies on)', () => {
  coreModule(); // builds the core if it is missing or stale
  const bytes = readFileSync(fileURLToPath(distSrcUrl('accel/soft/soft-core.wasm')));
  const { calls, indirect } = callGraph(bytes);
  assert.ok(calls.size > 50, `read ${calls.size} functions from the core: the text form was not parsed`);
  const { long, self } = cycles(calls);
  assert.deepEqual(long, [], 'a cycle of calls in the core: bound its depth and update src/cli/node-flags.ts, or remove --no-wasm-stack-checks');
  // readLinSlow and writeLinSlow split a page-crossing access into single bytes, which never
  // cross: one level of recursion each.
  assert.equal(self.length, 2, `functions calling themselves: ${self.join(', ')} (expected readLinSlow and writeLinSlow only)`);
  // jitTry calls the compiled block (through the table); blocks call the core's exported helpers,
  // so none of those may lead back to jitTry: only the run loop calls it
  assert.equal(indirect.length, 1, `call_indirect in ${indirect.join(', ')} (expected jitTry only)`);
  const callers = new Set<string>();
  const grow = (f: string): void => {
    for (const [g, out] of calls) if (out.has(f) && !callers.has(g)) { callers.add(g); grow(g); }
  };
  grow(indirect[0]!);
  const run = exportedAs(bytes, 'run');
  assert.deepEqual([...callers], run === indirect[0] ? [] : [run], 'only the exported run() may reach the call into compiled blocks');
});

/** The internal name of the function exported as `name`. */
function exportedAs(bytes: Uint8Array, name: string): string {
  const m = binaryen.readBinary(bytes);
  try {
    const e = m.getExport(name);
    return binaryen.getExportInfo(e).value;
  } finally {
    m.dispose();
  }
}
