// `npm run e2e:kvm-linux`: boots the stock Debian cloud kernel with the busybox initramfs under
// `tsvm run --accel kvm`, runs a command in the guest and waits for it to power off, printing how
// long each stage took. On hosts whose KVM emulates guest ring 0 (PVM, see docs/BENCHMARKS.md)
// this takes many minutes; on real VT-x/AMD-V it is well under a second to the shell.
// Options (environment): E2E_TIMEOUT_MIN (default 90), E2E_CPUS (default 1), E2E_MEMORY (default 512M).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ensureDefaultGuest } from './build-guests.js';
import { INIT_STARTED_LINE, RUN_STATUS_PREFIX } from './lib/initramfs.js';
import { fileURLToPath } from 'node:url';

const timeoutMin = Number(process.env.E2E_TIMEOUT_MIN ?? 90);
const guest = await ensureDefaultGuest({ flavor: 'cloud' });
const tsvm = join(fileURLToPath(new URL('../..', import.meta.url)), 'bin', 'tsvm');
// noxsave: PVM hosts report XSAVE but cannot emulate XRSTOR (docs/BENCHMARKS.md); harmless elsewhere.
const append = 'console=ttyS0 earlyprintk=ttyS0 panic=-1 noxsave tsvm.run="uname -a; cat /proc/cmdline; echo e2e-kvm-linux-ok"';
const args = [
  tsvm, 'run', '--accel', 'kvm', '--kernel', guest.kernel, '--initrd', guest.initrd,
  '--memory', process.env.E2E_MEMORY ?? '512M', '--cpus', process.env.E2E_CPUS ?? '1', '--append', append, '--name', 'e2e-kvm-linux',
];
const log = (s: string) => process.stderr.write(`e2e:kvm-linux: ${s}\n`);
log(`kernel ${guest.kernelVersion}; timeout ${timeoutMin} min`);
const t0 = performance.now();
const marks: [string, number][] = [];
const milestones: [string, RegExp | string][] = [
  ['first console line', /\S/],
  ['ACPI tables found', 'ACPI: RSDP'],
  ['FPU set up', 'x86/fpu: Enabled'],
  ['IOAPIC set up', /IOAPIC\[0\]|IO-APIC/],
  ['timer calibrated', /tsc: Refined TSC|clocksource: Switched to/],
  ['unpacking initramfs', 'Unpacking initramfs'],
  ['kernel runs /init', 'Run /init as init process'],
  ['initramfs /init started', INIT_STARTED_LINE],
  ['command finished in the guest', RUN_STATUS_PREFIX],
];
let out = '';
const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
child.stdout.setEncoding('utf8').on('data', (d: string) => {
  process.stdout.write(d);
  out += d;
  for (const [name, pat] of milestones) {
    if (marks.some(([n]) => n === name) || !(typeof pat === 'string' ? out.includes(pat) : pat.test(out))) continue;
    const s = (performance.now() - t0) / 1000;
    marks.push([name, s]);
    log(`${s.toFixed(1)} s: ${name}`);
  }
});
const timer = setTimeout(() => { log(`timed out after ${timeoutMin} min`); child.kill('SIGKILL'); }, timeoutMin * 60_000);
const status = await new Promise<number | null>((r) => child.on('close', (code) => r(code)));
clearTimeout(timer);
const total = (performance.now() - t0) / 1000;
const ok = status === 0 && out.includes('e2e-kvm-linux-ok');
console.log(`\ne2e:kvm-linux ${ok ? 'PASSED' : 'FAILED'} (exit status ${status}) in ${total.toFixed(1)} s`);
for (const [name, s] of marks) console.log(`  ${s.toFixed(1).padStart(8)} s  ${name}`);
process.exit(ok ? 0 : 1);
