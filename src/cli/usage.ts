// Help texts for the command line.
export const MAIN_USAGE = `Usage: tsvm <command> [options]

Commands:
  run        boot a virtual machine (tsvm run --help)
  ps         list the VMs (--json for details and counters)
  stop       shut a VM down: ACPI power button, forced stop after a timeout
  kill       end a VM's process at once (SIGKILL)
  pause      pause a VM's vCPUs
  resume     resume a paused VM
  console    attach this terminal to a VM's console (Ctrl-] detaches)
  img        create, inspect, check and convert disk images (tsvm img --help)
  help       show this text
  version    print the version

The guest's console is on stdout/stdin; tsvm's own messages go to stderr.
VMs are found through their runtime directories: $TSVM_RUNTIME_DIR, else
$XDG_RUNTIME_DIR/tsvm, else /run/tsvm (root) or $TMPDIR/tsvm-UID.
`;

export const RUN_USAGE = `Usage: tsvm run [options]

Boot a virtual machine; its console (COM1, or hvc0 with --console virtio) is this terminal.

Boot source (one of):
  --kernel PATH        Linux bzImage or vmlinux (ELF), or a multiboot v1 ELF
  --firmware PATH      flat firmware image (like QEMU -bios): size a multiple of 4 KiB,
                       ends at 4 GiB, starts in real mode at F000:FFF0
Options:
  --initrd PATH        initial ramdisk for a Linux kernel (or module for multiboot)
  --append STR         kernel command line (default: "console=ttyS0", with --console
                       virtio "console=hvc0")
  --memory SIZE        guest RAM, e.g. 512M or 2G (default 512M; a bare number is MiB)
  --cpus N             number of vCPUs (default 1)
  --accel ACCEL        kvm, soft or auto (default auto: KVM when usable)
  --name NAME          VM name; the process shows as tsvm:NAME in ps and top
  --boot-mode MODE     how a bzImage is entered: elf (decompress on the host, default),
                       bzimage-64 (the kernel decompresses itself) or pvh
  --no-reboot          exit instead of resetting when the guest reboots
  --no-irqchip         KVM: no in-kernel interrupt controller (HLT then exits to tsvm)
  --console KIND       the guest's console on this terminal: serial (COM1, Linux ttyS0;
                       default) or virtio (a virtio-console, Linux hvc0; COM1 stays, and
                       what the guest writes there goes to stderr)
  --testdev            add kvm-unit-tests' pc-testdev (scratch ports 0xe0-0xe8, MMIO 0xff000000)
  --grace SECONDS      after SIGTERM, how long the guest may take to power off (default 10)
  --disk PATH[,ro][,root][,id=ID][,format=raw|qcow2]
                       a virtio-blk disk (repeatable: vda, vdb, ... in this order);
                       root adds root=/dev/vdX to a kernel's command line
  --net TAP[,mac=MAC][,id=ID]
                       a virtio-net interface over the host TAP device (repeatable)
  --config FILE        read the configuration from a JSON file (the API's schema, see
                       docs/API.md); flags given as well override it
  --api-sock PATH      serve the HTTP API on this Unix socket (default: api.sock in the
                       VM's runtime directory); with no --kernel/--firmware, wait for the
                       configuration and InstanceStart on it, as Firecracker does
  -d, --detach         run in the background; print the VM's name once it runs
  --id NAME, --config-file FILE
                       Firecracker's spellings of --name and --config
  -h, --help           show this text

Console: on a terminal, Ctrl-A x quits, Ctrl-A h shows the keys. Other terminals can
attach with tsvm console NAME.

Exit status:
  0                    the guest powered off (or rebooted with --no-reboot), or was
                       stopped through the API (tsvm stop, PUT /actions Stop)
  (v << 1) | 1         the guest wrote v to isa-debug-exit (port 0xf4)
  1                    tsvm error (bad option or file, KVM unavailable, ...), one line on stderr
  2                    the guest crashed: triple fault with --no-reboot, halted with nothing
                       to wake it, or the accelerator could not run it (a register dump follows)
  129/130/143          stopped by SIGHUP/SIGINT/SIGTERM (the guest did not power off
                       within the grace period, or did not listen to the power button)
`;

export const PS_USAGE = `Usage: tsvm ps [--json]

List the VMs: name, pid, state (running, paused, created = waiting for InstanceStart,
unresponsive = its API does not answer, gone = its process died; its runtime directory
is removed now), vCPUs, memory, accelerator and uptime. --json adds the sockets, the
runtime directory and each VM's counters (as GET /metrics).
`;

export const STOP_USAGE = `Usage: tsvm stop NAME [--timeout SECONDS]

Press the VM's ACPI power button and wait for the guest to power off; stop it by force
after --timeout seconds (default: the VM's --grace, 10), at once if the guest does not
listen to the button. Prints the name when the VM's process has ended.
`;

export const KILL_USAGE = `Usage: tsvm kill NAME

End the VM's process at once (SIGKILL) and remove its runtime directory.
`;

export const PAUSE_USAGE = `Usage: tsvm pause NAME

Pause the VM's vCPUs (its devices and API keep answering). tsvm resume NAME continues it.
`;

export const RESUME_USAGE = `Usage: tsvm resume NAME

Resume a VM paused with tsvm pause.
`;

export const CONSOLE_USAGE = `Usage: tsvm console NAME

Attach to the VM's console (COM1, or hvc0 for a VM run with --console virtio): what you
type goes to the guest, what it prints comes here. Ctrl-] detaches (with input from a pipe, its end does); the VM keeps running. Output
the guest printed while nobody was attached (the last 64 KiB) comes first.
`;
