// Per-function table of a software-CPU guest profile (src/accel/soft/guest-profile.ts).
// Usage: node dist/scripts/guest-profile.js PROFILE.json KALLSYMS [TOP]
// KALLSYMS: the guest's /proc/kallsyms, e.g. from
//   tsvm run --accel soft ... --append 'console=ttyS0 quiet tsvm.run="echo 0 > /proc/sys/kernel/kptr_restrict; grep -i \" t \" /proc/kallsyms"' > kallsyms.txt
import { readFileSync } from 'node:fs';

const [profilePath, symsPath, topText] = process.argv.slice(2);
if (!profilePath || !symsPath) {
  process.stderr.write('usage: node dist/scripts/guest-profile.js PROFILE.json KALLSYMS [TOP]\n');
  process.exit(1);
}
const syms: { addr: bigint; name: string }[] = [];
for (const line of readFileSync(symsPath, 'utf8').split('\n')) {
  const m = /^([0-9a-f]{16}) [tTwW] (\S+)/.exec(line.trim());
  if (m) syms.push({ addr: BigInt(`0x${m[1]}`), name: m[2] });
}
syms.sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0));

/** The symbol at or below `rip` (binary search), or the 1 MiB region for addresses without one. */
function symbolOf(rip: bigint): string {
  let lo = 0;
  let hi = syms.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (syms[mid].addr <= rip) { found = mid; lo = mid + 1; } else hi = mid - 1;
  }
  if (found >= 0 && rip - syms[found].addr < 0x100000n) return syms[found].name;
  return `?${(rip >> 20n).toString(16)}xxxxx`;
}

const profile = JSON.parse(readFileSync(profilePath, 'utf8')) as Record<string, number>;
const byName = new Map<string, number>();
let total = 0;
for (const [rip, ms] of Object.entries(profile)) {
  total += ms;
  const name = symbolOf(BigInt(`0x${rip}`));
  byName.set(name, (byName.get(name) ?? 0) + ms);
}
console.log(`${total.toFixed(0)} ms of run slices`);
for (const [name, ms] of [...byName].sort((a, b) => b[1] - a[1]).slice(0, Number(topText ?? 40))) {
  console.log(`${ms.toFixed(1).padStart(9)} ms ${((ms / total) * 100).toFixed(1).padStart(5)}%  ${name}`);
}
