// tsvm as a library (docs/API.md has a complete example that the tests run):
//
//   import { Vm } from 'tsvm';
//   const vm = await Vm.create({ kernel: 'bzImage', initrd: 'initrd.img', memoryBytes: 1 << 30 });
//   await vm.start();
//   vm.console.onData((bytes) => process.stdout.write(bytes));
//   const exit = await vm.stop();   // or vm.shutdown(), or vm.wait(): { code, reason, message }
export { Vm, type VmConsole, type VmExit, type VmIo, type VmState, EXIT_POWEROFF, EXIT_VMM_ERROR, EXIT_GUEST_CRASH } from './vmm/vm.js';
export { defaultConfig, validateConfig, parseMemorySize, ConfigError, type VmConfig, type DiskConfig, type NetConfig, type ConsoleKind } from './vmm/vm-config.js';
export type { VmMetrics } from './vmm/runtime-metrics.js';
export { loadConfigFile, documentFromConfig, type VmConfigDocument } from './vmm/config-file.js';
export { apiRequest, type ApiResponse } from './api/client.js';
// A managed VM as `tsvm run` hosts it: runtime directory, API socket, console socket.
export { VmInstance, type VmInstanceOptions } from './vmm/runtime-instance.js';
export { BootError } from './boot/boot-plan.js';
export { KvmUnavailableError } from './accel/kvm/kvm-system.js';
export { openDisk, createImage, checkImage, convertImage, imageInfo, BlockError, CorruptImageError } from './block/index.js';
