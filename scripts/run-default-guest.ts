// `npm start`: fetch and build the default guest if needed (Debian's cloud kernel and a busybox
// initramfs, cached), then boot it with `tsvm run`, the console on this terminal.
// Extra arguments go to `tsvm run` (e.g. `npm start -- --accel kvm --cpus 2`).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDefaultGuest } from './build-guests.js';
import { tsvmNodeArgs } from '../src/cli/node-flags.js';

const guest = await ensureDefaultGuest({ flavor: 'cloud' });
const tsvm = join(fileURLToPath(new URL('../..', import.meta.url)), 'bin', 'tsvm');
const args = ['run', '--name', 'default', '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', guest.cmdline, ...process.argv.slice(2)];
process.stderr.write(`npm start: tsvm ${args.join(' ')}\n`);
const child = spawn(process.execPath, tsvmNodeArgs(tsvm, args), { stdio: 'inherit' });
// The VM handles the signals itself (ACPI power button); keep this wrapper alive until it exits.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => child.kill(sig));
child.on('close', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
