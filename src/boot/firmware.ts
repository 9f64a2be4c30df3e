// Firmware boot, as QEMU's `-bios`: a flat image (SeaBIOS, OVMF's OVMF.fd, a test ROM) mapped
// read-only so that it ends at 4 GiB, with the CPU starting at the reset vector 0xFFFFFFF0
// (the image's last 16 bytes). Its last 128 KiB (or all of it, if smaller) also appear below
// 1 MiB, ending at 0x100000, where real-mode code expects the BIOS (0xE0000-0xFFFFF): the reset
// vector's far jump to F000:xxxx lands there. QEMU maps that alias read-only too; we copy it into
// RAM, which is what SeaBIOS does to it anyway once it unlocks the "shadow" area.
import { resetState } from '../accel/cpu-state.js';
import { type GuestMemory, KiB, MiB } from '../memory/guest-memory.js';
import { BIOS_AREA_END } from '../vmm/platform-layout.js';
import { BootError, type BootPlan } from './boot-plan.js';

export const FIRMWARE_MIN_SIZE = 4 * KiB;
export const FIRMWARE_MAX_SIZE = 16 * MiB;
/** Size of the legacy BIOS window below 1 MiB (0xE0000-0xFFFFF). */
export const LEGACY_BIOS_WINDOW = 128 * KiB;

export interface FirmwareOptions {
  firmware: Uint8Array;
  /** The image's file name, for messages. */
  path: string;
}

function checkSize(size: number, path: string): void {
  if (size < FIRMWARE_MIN_SIZE || size > FIRMWARE_MAX_SIZE || size % (4 * KiB) !== 0) {
    throw new BootError(
      `${path}: firmware of the wrong size (${size} bytes): a firmware image must be a multiple of 4 KiB, ` +
        'at least 4 KiB and at most 16 MiB (it is mapped as a whole just below 4 GiB)',
    );
  }
}

/**
 * Validate a firmware image's size and return the ROM size to create the guest memory with
 * (`new GuestMemory(ram, firmwareRomSize(bytes))`): the image's own length.
 */
export function firmwareRomSize(bytes: Uint8Array, path = 'firmware'): number {
  checkSize(bytes.length, path);
  return bytes.length;
}

/**
 * Map the firmware into the ROM region and its legacy alias, and return the architectural reset
 * state (CS F000 with base FFFF0000, IP FFF0: the first fetch is at 0xFFFFFFF0).
 */
export function loadFirmware(mem: GuestMemory, opts: FirmwareOptions): BootPlan {
  const { firmware, path } = opts;
  checkSize(firmware.length, path);
  if (mem.romSize !== firmware.length) {
    throw new BootError(
      `${path}: the guest memory was created with a ${mem.romSize}-byte ROM region for a ${firmware.length}-byte ` +
        'firmware (create it with firmwareRomSize(image))',
    );
  }
  const alias = Math.min(firmware.length, LEGACY_BIOS_WINDOW);
  if (!mem.isRam(BIOS_AREA_END - alias, alias)) {
    throw new BootError(`${path}: the guest needs at least 1 MiB of RAM to hold the BIOS window below 1 MiB`);
  }
  mem.loadRom(firmware);
  mem.write(BIOS_AREA_END - alias, firmware.subarray(firmware.length - alias));
  return {
    cpu: resetState(),
    summary: `firmware ${path} (${firmware.length / KiB} KiB) mapped at 0x${(2 ** 32 - firmware.length).toString(16)}-0xffffffff, reset vector 0xfffffff0`,
  };
}
