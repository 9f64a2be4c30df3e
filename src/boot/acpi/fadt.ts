// Fixed ACPI Description Table, signature "FACP" (ACPI 6.4 §5.2.9, "FADT Format"), in the
// revision-6 layout (276 bytes, ACPI 6.0+: it ends with the Hypervisor Vendor Identity).
//
// This is a full (not hardware-reduced) ACPI platform: the PM1a event/control blocks and the PM
// timer are I/O port blocks served by our ACPI PM device (vmm/platform-layout.ts), the SCI is ISA
// IRQ 9, and reset goes through the PIIX-style reset control register at 0xCF9. SMI_CMD is zero,
// which tells the OS that there is no SMM hand-off: the machine is always in ACPI mode, so the PM
// device must report SCI_EN set in PM1_CNT from reset.
import {
  ACPI_PM1_CNT, ACPI_PM1_EVT, ACPI_PM_TMR, ACPI_SCI_IRQ, RESET_CONTROL_PORT,
} from '../../vmm/platform-layout.js';
import {
  GAS_ACCESS_BYTE, GAS_ACCESS_DWORD, GAS_ACCESS_WORD, finishTable, ioGas, newTable, putAscii, writeGas,
} from './table.js';

export const FADT_SIZE = 276; // revision 6 length (ACPICA calls it "FADT V6 size: 0x114")
export const FADT_REVISION = 6; // "Major Version" is the header revision
export const FADT_MINOR_VERSION = 4; // ACPI 6.4

// Field offsets (§5.2.9, FADT Format).
export const FADT_OFF = {
  firmwareCtrl: 36,
  dsdt: 40,
  preferredPmProfile: 45,
  sciInt: 46,
  smiCmd: 48,
  acpiEnable: 52,
  acpiDisable: 53,
  pm1aEvtBlk: 56,
  pm1bEvtBlk: 60,
  pm1aCntBlk: 64,
  pm1bCntBlk: 68,
  pm2CntBlk: 72,
  pmTmrBlk: 76,
  gpe0Blk: 80,
  gpe1Blk: 84,
  pm1EvtLen: 88,
  pm1CntLen: 89,
  pm2CntLen: 90,
  pmTmrLen: 91,
  gpe0BlkLen: 92,
  gpe1BlkLen: 93,
  pLvl2Lat: 96,
  pLvl3Lat: 98,
  dayAlrm: 106,
  monAlrm: 107,
  century: 108,
  iapcBootArch: 109,
  flags: 112,
  resetReg: 116,
  resetValue: 128,
  armBootArch: 129,
  minorVersion: 131,
  xFirmwareCtrl: 132,
  xDsdt: 140,
  xPm1aEvtBlk: 148,
  xPm1bEvtBlk: 160,
  xPm1aCntBlk: 172,
  xPm1bCntBlk: 184,
  xPm2CntBlk: 196,
  xPmTmrBlk: 208,
  xGpe0Blk: 220,
  xGpe1Blk: 232,
  sleepControlReg: 244,
  sleepStatusReg: 256,
  hypervisorVendorId: 268,
} as const;

// Fixed Feature Flags (§5.2.9, "Fixed ACPI Description Table Fixed Feature Flags"): bit numbers.
export const FADT_F_WBINVD = 1 << 0;
export const FADT_F_PROC_C1 = 1 << 2;
/** Clear = the power button is the fixed-feature one (PWRBTN_STS/EN in PM1); set = control method or none. */
export const FADT_F_PWR_BUTTON = 1 << 4;
/** Set = no fixed-feature sleep button (and none as a control-method device either). */
export const FADT_F_SLP_BUTTON = 1 << 5;
/** Set = RTC wake status is not in the fixed PM1 registers (RTC_STS/RTC_EN not usable). */
export const FADT_F_FIX_RTC = 1 << 6;
/** Set = the PM timer is 32 bits wide; clear = 24 bits. */
export const FADT_F_TMR_VAL_EXT = 1 << 8;
export const FADT_F_RESET_REG_SUP = 1 << 10;
export const FADT_F_HW_REDUCED_ACPI = 1 << 20;

// IA-PC Boot Architecture Flags (§5.2.9.3).
export const IAPC_LEGACY_DEVICES = 1 << 0;
export const IAPC_8042 = 1 << 1;
export const IAPC_VGA_NOT_PRESENT = 1 << 2;

/** Lengths of the PM register blocks in bytes (§5.2.9: PM1_EVT_LEN >= 4, PM1_CNT_LEN >= 2, PM_TMR_LEN = 4). */
export const PM1_EVT_LEN = 4;
export const PM1_CNT_LEN = 2;
export const PM_TMR_LEN = 4;
/** The value written to RESET_REG: PIIX/ICH reset control, "full reset" bit 2 + "system reset" bit 1. */
export const FADT_RESET_VALUE = 0x06;
/** CMOS index of the century byte, as on every PC RTC since the AT (the CMOS model keeps it there). */
export const CMOS_CENTURY_INDEX = 0x32;

export interface FadtOptions {
  facsAddr: number;
  dsdtAddr: number;
  /** A VGA-compatible adapter exists (clear VGA Not Present). We have none yet. */
  vga?: boolean;
}

export function buildFadt(o: FadtOptions): Uint8Array {
  const { bytes, view } = newTable('FACP', FADT_SIZE, FADT_REVISION);
  const O = FADT_OFF;
  // FIRMWARE_CTRL holds the FACS address; X_FIRMWARE_CTRL must then stay zero ("If the
  // FIRMWARE_CTRL field contains a non zero value then this field must be zero").
  view.setUint32(O.firmwareCtrl, o.facsAddr, true);
  view.setUint32(O.dsdt, o.dsdtAddr, true);
  // Preferred_PM_Profile 0 = Unspecified; SMI_CMD/ACPI_ENABLE/ACPI_DISABLE 0 = no SMM, always in ACPI mode.
  view.setUint16(O.sciInt, ACPI_SCI_IRQ, true);
  view.setUint32(O.pm1aEvtBlk, ACPI_PM1_EVT, true);
  view.setUint32(O.pm1aCntBlk, ACPI_PM1_CNT, true);
  view.setUint32(O.pmTmrBlk, ACPI_PM_TMR, true);
  bytes[O.pm1EvtLen] = PM1_EVT_LEN;
  bytes[O.pm1CntLen] = PM1_CNT_LEN;
  bytes[O.pmTmrLen] = PM_TMR_LEN;
  // No PM1b, PM2 or GPE blocks (lengths zero).
  // "A value > 100 indicates the system does not support a C2 state"; "> 1000 ... C3".
  view.setUint16(O.pLvl2Lat, 101, true);
  view.setUint16(O.pLvl3Lat, 1001, true);
  // DAY_ALRM / MON_ALRM 0: the RTC has no day/month alarm registers.
  bytes[O.century] = CMOS_CENTURY_INDEX;
  view.setUint16(O.iapcBootArch, IAPC_LEGACY_DEVICES | IAPC_8042 | (o.vga ? 0 : IAPC_VGA_NOT_PRESENT), true);
  // WBINVD works, HLT (C1) works on every CPU, the power button is the fixed-feature one
  // (PWR_BUTTON clear), there is no sleep button, the PM timer is 24 bits (TMR_VAL_EXT clear:
  // promising only 24 bits is right whether the PM device counts 24 or 32), RESET_REG is usable.
  // FIX_RTC is set because our PM device never raises RTC_STS (the RTC's alarm does not wake the
  // machine), so the OS should not count on the fixed RTC wake event.
  view.setUint32(
    O.flags,
    FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_SLP_BUTTON | FADT_F_FIX_RTC | FADT_F_RESET_REG_SUP,
    true,
  );
  writeGas(view, O.resetReg, ioGas(RESET_CONTROL_PORT, 1, GAS_ACCESS_BYTE));
  bytes[O.resetValue] = FADT_RESET_VALUE;
  bytes[O.minorVersion] = FADT_MINOR_VERSION;
  view.setBigUint64(O.xDsdt, BigInt(o.dsdtAddr), true);
  // The extended blocks repeat the legacy ones; their bit widths must equal the *_LEN fields or
  // ACPICA reports a 32/64X length mismatch. PM1 event is a 16-bit status and a 16-bit enable
  // register, PM1 control 16 bits, the timer one 32-bit read.
  writeGas(view, O.xPm1aEvtBlk, ioGas(ACPI_PM1_EVT, PM1_EVT_LEN, GAS_ACCESS_WORD));
  writeGas(view, O.xPm1aCntBlk, ioGas(ACPI_PM1_CNT, PM1_CNT_LEN, GAS_ACCESS_WORD));
  writeGas(view, O.xPmTmrBlk, ioGas(ACPI_PM_TMR, PM_TMR_LEN, GAS_ACCESS_DWORD));
  // SLEEP_CONTROL_REG / SLEEP_STATUS_REG are for hardware-reduced platforms only: zero.
  putAscii(bytes, O.hypervisorVendorId, 'TSVM', 8, 0);
  return finishTable(bytes);
}
