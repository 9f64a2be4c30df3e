// tsvm as a library: build a VmConfig, create a Vm, run it.
//
//   import { Vm, defaultConfig, validateConfig } from 'tsvm';
//   const vm = await Vm.create(validateConfig({ ...defaultConfig(), kernel: 'bzImage', initrd: 'initrd.img' }),
//                              { consoleOutput: (bytes) => process.stdout.write(bytes) });
//   const exit = await vm.run();   // { code, reason, message }
export { Vm, type VmExit, type VmIo, type VmState, EXIT_POWEROFF, EXIT_VMM_ERROR, EXIT_GUEST_CRASH } from './vmm/vm.js';
export { defaultConfig, validateConfig, parseMemorySize, ConfigError, type VmConfig } from './vmm/vm-config.js';
export { BootError } from './boot/boot-plan.js';
export { KvmUnavailableError } from './accel/kvm/kvm-system.js';
