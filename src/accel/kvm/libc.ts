// The few libc calls the KVM backend needs, through koffi. Each module-level binding is made
// once per thread (koffi loads fine inside worker threads). Pointer arguments are typed arrays:
// koffi passes the address of their memory without copying, which is what ioctl structs need.
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

export const O_RDWR = 2;
export const O_CLOEXEC = 0o2000000;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;

export const open = libc.func('int open(const char *path, int flags)') as (path: string, flags: number) => number;
export const close = libc.func('int close(int fd)') as (fd: number) => number;
/** ioctl with no argument or an integer argument. */
export const ioctlInt = libc.func('int ioctl(int fd, unsigned long req, unsigned long arg)') as (
  fd: number, req: number, arg: number | bigint,
) => number;
/** ioctl whose argument is a struct in a typed array (in, out or both). */
export const ioctlPtr = libc.func('int ioctl(int fd, unsigned long req, void *arg)') as (
  fd: number, req: number, arg: Uint8Array,
) => number;
export const mmap = libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)') as (
  addr: null, len: number, prot: number, flags: number, fd: number, off: number,
) => unknown;
export const munmap = libc.func('int munmap(void *addr, size_t len)') as (addr: unknown, len: number) => number;
/** write(2); used for the 8-byte counter writes that signal an eventfd (eventfd(2)). */
export const write = libc.func('long write(int fd, const void *buf, size_t count)') as (fd: number, buf: Uint8Array, count: number) => number;
export const eventfd = libc.func('int eventfd(unsigned int initval, int flags)') as (init: number, flags: number) => number;
const strerrorFn = libc.func('const char *strerror(int errnum)') as (e: number) => string;
const identity = libc.func('uint64_t memset(void *s, int c, size_t n)') as (s: Uint8Array, c: number, n: number) => bigint | number;
export const getpid = libc.func('int getpid()') as () => number;
const syscall0 = libc.func('long syscall(long nr)') as (nr: number) => number;

export function errno(): number {
  return koffi.errno();
}

export function strerror(e: number): string {
  return strerrorFn(e);
}

/** The host virtual address of a typed array's first byte (memset with length 0 returns its argument). */
export function addressOf(bytes: Uint8Array): bigint {
  return BigInt(identity(bytes, 0, 0));
}

/** A view of native memory (e.g. the mmapped kvm_run page) as an ArrayBuffer, without copying. */
export function viewOf(ptr: unknown, len: number): ArrayBuffer {
  return koffi.view(ptr, len);
}

export function addressOfPointer(ptr: unknown): bigint {
  return koffi.address(ptr);
}

const SYS_gettid = 186; // x86-64 syscall table
export function gettid(): number {
  return syscall0(SYS_gettid);
}

export const ENOENT = 2;
export const EINTR = 4;
export const EAGAIN = 11;
export const EACCES = 13;
export const EPERM = 1;
