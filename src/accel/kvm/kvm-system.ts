// Opening /dev/kvm and checking that it can run our guests, with errors that say what to do.
import { existsSync, readFileSync } from 'node:fs';
import * as api from './kvm-api.js';
import * as libc from './libc.js';

export class KvmUnavailableError extends Error {}

export const KVM_DEVICE = '/dev/kvm';

export interface KvmSystem {
  fd: number;
  vcpuMmapSize: number;
  /** KVM_GET_SUPPORTED_CPUID entries, 40 bytes each. */
  supportedCpuid: Uint8Array;
  maxVcpus: number;
  /** The host's KVM is PVM (kvm_pvm): guest ring 0 is emulated instruction by instruction. */
  isPvm: boolean;
}

/** Throws KvmUnavailableError with one line naming the problem and the fix. */
export function openKvm(path = KVM_DEVICE): KvmSystem {
  if (!existsSync(path)) {
    throw new KvmUnavailableError(
      `${path} does not exist: this host has no KVM (load kvm_intel or kvm_amd, enable virtualization in the firmware, or use --accel soft)`,
    );
  }
  const fd = libc.open(path, libc.O_RDWR | libc.O_CLOEXEC);
  if (fd < 0) {
    const e = libc.errno();
    if (e === libc.EACCES || e === libc.EPERM) {
      throw new KvmUnavailableError(
        `${path} is not writable by this user: add yourself to the group that owns it (often "kvm") or use --accel soft`,
      );
    }
    throw new KvmUnavailableError(`cannot open ${path}: ${libc.strerror(e)} (use --accel soft to run without KVM)`);
  }
  const version = libc.ioctlInt(fd, api.KVM_GET_API_VERSION, 0);
  if (version !== api.KVM_API_VERSION) {
    libc.close(fd);
    throw new KvmUnavailableError(`${path} speaks KVM API version ${version}; tsvm needs ${api.KVM_API_VERSION}`);
  }
  for (const [cap, name] of api.REQUIRED_CAPS) {
    if (libc.ioctlInt(fd, api.KVM_CHECK_EXTENSION, cap) <= 0) {
      libc.close(fd);
      throw new KvmUnavailableError(`the host's KVM lacks ${name}, which tsvm needs; use --accel soft`);
    }
  }
  const vcpuMmapSize = libc.ioctlInt(fd, api.KVM_GET_VCPU_MMAP_SIZE, 0);
  const maxVcpus = Math.max(1, libc.ioctlInt(fd, api.KVM_CHECK_EXTENSION, api.KVM_CAP_MAX_VCPUS));
  return { fd, vcpuMmapSize, supportedCpuid: getSupportedCpuid(fd), maxVcpus, isPvm: detectPvm() };
}

function getSupportedCpuid(fd: number): Uint8Array {
  // struct kvm_cpuid2 { u32 nent; u32 padding; struct kvm_cpuid_entry2 entries[nent]; }
  // The call fails with E2BIG when nent is too small; grow until it fits.
  for (let nent = 64; nent <= 1024; nent *= 2) {
    const buf = new Uint8Array(8 + nent * api.KVM_CPUID_ENTRY2_SIZE);
    new DataView(buf.buffer).setUint32(0, nent, true);
    if (libc.ioctlPtr(fd, api.KVM_GET_SUPPORTED_CPUID, buf) === 0) {
      const n = new DataView(buf.buffer).getUint32(0, true);
      return buf.slice(8, 8 + n * api.KVM_CPUID_ENTRY2_SIZE);
    }
  }
  throw new KvmUnavailableError('KVM_GET_SUPPORTED_CPUID failed: the host KVM reports no usable CPUID');
}

/** PVM registers as the kvm_pvm module; it changes what runs fast (see docs/ARCHITECTURE.md). */
function detectPvm(): boolean {
  if (existsSync('/sys/module/kvm_pvm')) return true;
  try {
    return /^kvm_pvm\b/m.test(readFileSync('/proc/modules', 'utf8'));
  } catch {
    return false;
  }
}

/** Whether KVM looks usable here, without throwing (for --accel auto). */
export function probeKvm(): { ok: true; isPvm: boolean } | { ok: false; reason: string } {
  try {
    const system = openKvm();
    libc.close(system.fd);
    return { ok: true, isPvm: system.isPvm };
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
}
