// Help texts for the command line.
export const MAIN_USAGE = `Usage: tsvm <command> [options]

Commands:
  run        boot a virtual machine (tsvm run --help)
  help       show this text
  version    print the version

The guest's console is on stdout/stdin; tsvm's own messages go to stderr.
`;

export const RUN_USAGE = `Usage: tsvm run [options]

Boot a virtual machine; its serial console (COM1) is this terminal.

Boot source (one of):
  --kernel PATH        Linux bzImage or vmlinux (ELF), or a multiboot v1 ELF
  --firmware PATH      flat firmware image (like QEMU -bios): size a multiple of 4 KiB,
                       ends at 4 GiB, starts in real mode at F000:FFF0
Options:
  --initrd PATH        initial ramdisk for a Linux kernel (or module for multiboot)
  --append STR         kernel command line (default: "console=ttyS0")
  --memory SIZE        guest RAM, e.g. 512M or 2G (default 512M; a bare number is MiB)
  --cpus N             number of vCPUs (default 1)
  --accel ACCEL        kvm, soft or auto (default auto: KVM when usable)
  --name NAME          VM name; the process shows as tsvm:NAME in ps and top
  --boot-mode MODE     how a bzImage is entered: elf (decompress on the host, default),
                       bzimage-64 (the kernel decompresses itself) or pvh
  --no-reboot          exit instead of resetting when the guest reboots
  --no-irqchip         KVM: no in-kernel interrupt controller (HLT then exits to tsvm)
  --testdev            add kvm-unit-tests' pc-testdev (scratch ports 0xe0-0xe8, MMIO 0xff000000)
  --grace SECONDS      after SIGTERM, how long the guest may take to power off (default 10)
  -h, --help           show this text

Console: on a terminal, Ctrl-A x quits, Ctrl-A h shows the keys.

Exit status:
  0                    the guest powered off (or rebooted with --no-reboot)
  (v << 1) | 1         the guest wrote v to isa-debug-exit (port 0xf4)
  1                    tsvm error (bad option or file, KVM unavailable, ...), one line on stderr
  2                    the guest crashed: triple fault with --no-reboot, halted with nothing
                       to wake it, or the accelerator could not run it (a register dump follows)
  129/130/143          stopped by SIGHUP/SIGINT/SIGTERM (the guest did not power off
                       within the grace period, or did not listen to the power button)
`;
