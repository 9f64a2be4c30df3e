// The stock Debian cloud kernel under --accel kvm. On PVM hosts (our CI) KVM emulates guest
// ring-0 code one instruction at a time, so a full boot takes many minutes (npm run
// e2e:kvm-linux); this test checks the first stages: our boot_params, e820 map, command line and
// ACPI tables reach the kernel, within 120 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findDefaultGuest } from '../support/guests.js';
import { kvmUnavailableReason, startTsvm } from '../support/tsvm-process.js';

const noKvm = kvmUnavailableReason();

test('kvm: the Debian kernel starts and prints its first lines (earlyprintk) within 120 s', { skip: noKvm, timeout: 200_000 }, async () => {
  const guest = await findDefaultGuest();
  const run = startTsvm(
    ['run', '--accel', 'kvm', '--kernel', guest.kernel, '--initrd', guest.initrd, '--memory', '3584M',
      '--append', 'console=ttyS0 earlyprintk=ttyS0 panic=-1 tsvm.test=first-lines'],
    { timeoutMs: 180_000 },
  );
  try {
    await run.waitFor(/ACPI: APIC 0x/, 120_000);
    const out = run.stdout();
    assert.match(out, /Linux version 6\.\d+/);
    assert.match(out, /Command line: console=ttyS0 earlyprintk=ttyS0 panic=-1 tsvm\.test=first-lines/);
    // The e820 map we built: low RAM up to the EBDA, the BIOS hole reserved, RAM from 1 MiB up to
    // the 3 GiB MMIO hole, and the remaining 512 MiB from 4 GiB (a second KVM memory slot).
    assert.match(out, /BIOS-e820: \[mem 0x0000000000000000-0x000000000009fbff\] usable/);
    assert.match(out, /BIOS-e820: \[mem 0x000000000009fc00-0x00000000000fffff\] reserved/);
    assert.match(out, /BIOS-e820: \[mem 0x0000000000100000-0x00000000bfffffff\] usable/);
    assert.match(out, /BIOS-e820: \[mem 0x0000000100000000-0x000000011fffffff\] usable/);
    assert.match(out, /Hypervisor detected: KVM/);
    assert.match(out, /RAMDISK: \[mem /, 'the initrd was found');
    // Our ACPI tables, found through boot_params.acpi_rsdp_addr, checksums accepted.
    assert.match(out, /ACPI: RSDP 0x00000000000E0000 000024 \(v02 TSVM/);
    for (const sig of ['XSDT', 'FACP', 'DSDT', 'FACS', 'APIC']) assert.match(out, new RegExp(`ACPI: ${sig} 0x`));
    assert.doesNotMatch(out, /ACPI BIOS Error|Invalid checksum/i);
  } finally {
    run.child.kill('SIGKILL');
    await run.result;
  }
});
