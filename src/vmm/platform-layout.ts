// Where the PC platform's pieces live, in one place, because the device models, the ACPI tables
// that describe them to the guest, and the boot loaders must all agree.

// ---- Port I/O ----
export const COM1_PORT = 0x3f8; // 16550A, 8 ports
export const COM1_IRQ = 4;
export const I8042_DATA_PORT = 0x60; // keyboard controller: data 0x60, command/status 0x64
export const I8042_COMMAND_PORT = 0x64;
export const KEYBOARD_IRQ = 1;
export const MOUSE_IRQ = 12;
export const CMOS_PORT = 0x70; // index 0x70, data 0x71
export const RTC_IRQ = 8;
export const POST_PORT = 0x80; // BIOS POST codes; written as an I/O delay, ignored
export const DEBUG_EXIT_PORT = 0xf4; // QEMU isa-debug-exit (iobase 0xf4, iosize 4)
export const RESET_CONTROL_PORT = 0xcf9; // PIIX/ICH reset control register; the FADT reset register points here
/** ACPI fixed-hardware register block (ACPI 6.4 section 4.8): PM1a_EVT (4), PM1a_CNT (2), PM_TMR (4). */
export const ACPI_PM_BASE = 0x600;
export const ACPI_PM1_EVT = ACPI_PM_BASE; // PM1a status (2 bytes) then enable (2 bytes)
export const ACPI_PM1_CNT = ACPI_PM_BASE + 4;
export const ACPI_PM_TMR = ACPI_PM_BASE + 8;
export const ACPI_PM_LENGTH = 12;
/** SCI: ISA IRQ 9, level-triggered active-high (announced by a MADT interrupt source override). */
export const ACPI_SCI_IRQ = 9;
/** The SLP_TYP value our DSDT's \_S5 package names, so writing it with SLP_EN powers off. */
export const ACPI_S5_SLP_TYP = 5;
/** pc-testdev (kvm-unit-tests): scratch ports 0xe0-0xe3, 0xe4 flush, 0xe8 byte; IRQ raise at 0x2000+n. */
export const TESTDEV_PORT = 0xe0;
export const TESTDEV_IRQ_PORT = 0x2000;
export const FW_CFG_PORT = 0x510;

// ---- MMIO ----
export const IOAPIC_BASE = 0xfec00000;
export const LAPIC_BASE = 0xfee00000;
/** pc-testdev's 64 KiB scratch MMIO window. */
export const TESTDEV_MMIO_BASE = 0xff000000;
export const TESTDEV_MMIO_SIZE = 0x10000;

// ---- Guest-physical memory used by the boot loaders ----
/** Start of the region the BIOS would own; e820 marks 0x9FC00-0xFFFFF reserved. */
export const EBDA_START = 0x9fc00;
export const BIOS_AREA_END = 0x100000;
/** ACPI tables (RSDP first, so that a scan of 0xE0000-0xFFFFF finds it). */
export const ACPI_TABLES_START = 0xe0000;
export const ACPI_TABLES_END = 0xf0000;
/** SMBIOS entry point and tables (boot/smbios.ts): the start of 0xF0000-0xFFFFF, where Linux's scan looks first. */
export const SMBIOS_START = 0xf0000;
/** Boot structures built by the loaders (below the EBDA, above the real-mode IVT/BDA). */
export const BOOT_GDT_ADDR = 0x500;
export const BOOT_PARAMS_ADDR = 0x7000; // Linux zero page ("boot_params"), 4 KiB
export const BOOT_CMDLINE_ADDR = 0x20000; // up to 64 KiB of kernel command line
export const BOOT_SETUP_DATA_ADDR = 0x30000; // Linux setup_data list (the RNG seed), 4 KiB
export const BOOT_PAGE_TABLES_ADDR = 0x9000; // PML4, PDPT, PDs for the 64-bit identity map (up to 0x10000+)
export const PVH_START_INFO_ADDR = 0x6000; // hvm_start_info + memory map for PVH entry
export const MULTIBOOT_INFO_ADDR = 0x6000;

// ---- Interrupt routing (GSIs, see devices/irq.ts) ----
/** ISA IRQ 0 (PIT) is wired to IOAPIC pin 2, as on every PC since the IOAPIC; the MADT says so. */
export const PIT_GSI = 2;
