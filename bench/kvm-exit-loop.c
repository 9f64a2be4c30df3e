/*
 * The anchor for `npm run bench:exits`: the smallest C program that runs a flat firmware image
 * under KVM the way tsvm does (in-kernel irqchip and PIT, image mapped read-only so it ends at
 * 4 GiB, vCPU in its reset state at F000:FFF0) and counts port-I/O exits until the guest writes
 * to port 0xf4. Prints "exits=N seconds=S" for the time between the first KVM_RUN and that write.
 * Compiled by bench/exits.ts with the machine's gcc; error handling is minimal on purpose.
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) { perror(what); exit(1); }

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: %s IMAGE\n", argv[0]); return 1; }
  int img = open(argv[1], O_RDONLY);
  if (img < 0) die("open image");
  off_t size = lseek(img, 0, SEEK_END);
  void *rom = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, img, 0);
  if (rom == MAP_FAILED) die("mmap image");

  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) die("/dev/kvm");
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) die("KVM_CREATE_VM");
  if (ioctl(vm, KVM_SET_TSS_ADDR, 0xfeffd000UL) < 0) die("KVM_SET_TSS_ADDR");
  __u64 idmap = 0xfeffc000;
  if (ioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0) die("KVM_SET_IDENTITY_MAP_ADDR");
  if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) die("KVM_CREATE_IRQCHIP");
  struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
  if (ioctl(vm, KVM_CREATE_PIT2, &pit) < 0) die("KVM_CREATE_PIT2");

  size_t ram_size = 64 << 20;
  void *ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  struct kvm_userspace_memory_region r0 = { .slot = 0, .guest_phys_addr = 0, .memory_size = ram_size, .userspace_addr = (__u64)ram };
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r0) < 0) die("slot 0");
  struct kvm_userspace_memory_region r1 = { .slot = 1, .flags = KVM_MEM_READONLY, .guest_phys_addr = (1ULL << 32) - size, .memory_size = size, .userspace_addr = (__u64)rom };
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r1) < 0) die("slot 1");

  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  if (vcpu < 0) die("KVM_CREATE_VCPU");
  int mmap_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  struct kvm_run *run = mmap(NULL, mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (run == MAP_FAILED) die("mmap kvm_run");

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  unsigned long exits = 0;
  for (;;) {
    if (ioctl(vcpu, KVM_RUN, 0) < 0) die("KVM_RUN");
    exits++;
    if (run->exit_reason == KVM_EXIT_IO) {
      if (run->io.port == 0xf4) break;
      continue; /* any other port: ignored, as tsvm ignores port 0x80 */
    }
    fprintf(stderr, "unexpected exit reason %u\n", run->exit_reason);
    return 1;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("exits=%lu seconds=%.6f\n", exits, (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
  return 0;
}
