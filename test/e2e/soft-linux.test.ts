// The stock Debian kernel under the software CPU, end to end: boot to the busybox shell on ttyS0,
// type commands through the serial console, check what they print, power off (exit status 0).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findDefaultGuest } from '../support/guests.js';
import { guestShell, startTsvm } from '../support/tsvm-process.js';

const READY = 'tsvm-initramfs: ready';
const PROMPT = '~ # ';

test('soft: Debian kernel boots to a shell; ls /proc, cpuinfo, date, sleep 1, dmesg, DMI work; poweroff exits 0', { timeout: 600_000 }, async () => {
  const guest = await findDefaultGuest();
  const run = startTsvm(
    ['run', '--accel', 'soft', '--name', 'soft-linux-e2e', '--kernel', guest.kernel, '--initrd', guest.initrd, '--memory', '256M', '--append', 'console=ttyS0 panic=-1'],
    { timeoutMs: 540_000 },
  );
  const sh = guestShell(run);
  try {
    await run.waitFor(READY, 480_000);
    await run.waitFor(PROMPT, 30_000);
    const stderr = run.stderr();
    assert.match(stderr, /Linux 6\.\d+.* bzImage/);

    const proc = await sh('ls /proc');
    for (const entry of ['cpuinfo', 'meminfo', 'interrupts', 'uptime', 'self']) assert.match(proc, new RegExp(`\\b${entry}\\b`), `ls /proc: ${proc}`);

    const cpuinfo = await sh('cat /proc/cpuinfo');
    assert.match(cpuinfo, /model name\s*: tsvm soft CPU/);
    assert.match(cpuinfo, /flags\s*:.*\bsse2\b/);
    assert.match(cpuinfo, /flags\s*:.*\bapic\b/);

    // The guest's clock follows the host's (CMOS RTC), within a minute.
    const date = await sh('date +%s');
    const guestNow = Number(/(\d{9,})/.exec(date)?.[1]);
    assert.ok(Math.abs(guestNow - Date.now() / 1000) < 60, `guest date ${date} vs host ${Date.now() / 1000}`);

    // `sleep 1` takes a second of real time: the APIC timer and the clocksource follow the host clock.
    const t0 = performance.now();
    await sh('sleep 1');
    const slept = (performance.now() - t0) / 1000;
    assert.ok(slept >= 0.9 && slept < 10, `sleep 1 took ${slept.toFixed(2)} s`);

    const dmesg = await sh('dmesg | grep -E "ACPI: RSDP|Run /init|crng init done"');
    assert.match(dmesg, /ACPI: RSDP 0x00000000000E0000/);
    assert.match(dmesg, /Run \/init as init process/);
    // the boot loader's RNG seed (setup_data SETUP_RNG_SEED) made the kernel's RNG ready at once
    assert.match(dmesg, /\[\s*0\.000000\] random: crng init done/);

    // the SMBIOS tables (boot/smbios.ts): the kernel's DMI data, under the VM's name
    const dmi = await sh('cat /sys/class/dmi/id/sys_vendor /sys/class/dmi/id/product_name /sys/class/dmi/id/product_serial; dmesg | grep -E "SMBIOS|DMI:"');
    assert.match(dmi, /\ntsvm\r?\nVirtual Machine\r?\nsoft-linux-e2e\r?\n/);
    assert.match(dmi, /SMBIOS 3\.0\.0 present/);
    assert.match(dmi, /DMI: tsvm Virtual Machine, BIOS /);

    // IA32_ARCH_CAPABILITIES (as/msr.ts): the kernel sees a CPU that does not speculate, so no
    // page-table isolation (a CR3 switch on every kernel entry and exit) and no VERW on return to user
    const vuln = await sh('cd /sys/devices/system/cpu/vulnerabilities && grep . meltdown mds tsx_async_abort spec_store_bypass');
    for (const flaw of ['meltdown', 'mds', 'tsx_async_abort', 'spec_store_bypass']) assert.match(vuln, new RegExp(`${flaw}:Not affected`), vuln);

    const interrupts = await sh('cat /proc/interrupts');
    assert.match(interrupts, /LOC:\s+[1-9]\d*/, 'local APIC timer interrupts are delivered');
    assert.match(interrupts, /4:\s+[1-9]\d*\s+IO-APIC\s+4-edge\s+ttyS0/, 'the UART interrupts through the IOAPIC');

    run.child.stdin!.write('poweroff\n');
    const r = await run.result;
    assert.equal(r.status, 0, `exit status; stderr:\n${r.stderr}`);
    assert.match(r.stdout, /reboot: Power down/);
  } finally {
    if (run.child.exitCode === null) run.child.kill('SIGKILL');
    await run.result;
  }
});
