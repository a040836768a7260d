// The yardstick of `start_noop` below wasp: the least a standalone Bun program does to run one
// call in a VM through bun:ffi, compiled at bench time with `bun build --compile` like the hello
// world (src/bench/density.ts, start_bun_kvm). It opens libc with bun:ffi, opens /dev/kvm, makes a
// VM with 64 KiB of memory and one vCPU in real mode at address 0, where `out 0xfa, al; hlt`
// waits; runs it to the OUT, prints the port and exits, closing nothing itself (the kernel tears
// the VM down at exit, as it would after a close). No checks beyond the return values, no sandbox,
// no image, no page tables: whatever wasp's `wasp invoke noop` costs beyond this is wasp's own.
// It imports nothing of wasp's; wasp embeds the file (JavaScript: nothing to type-check it against).
import { dlopen, ptr, toArrayBuffer } from "bun:ffi";

const libc = dlopen("libc.so.6", {
  open: { args: ["cstring", "i32"], returns: "i32" },
  ioctl: { args: ["i32", "u64", "u64"], returns: "i32" },
  mmap: { args: ["u64", "u64", "i32", "i32", "i32", "i64"], returns: "ptr" },
}).symbols;

const KVM_CREATE_VM = 0xae01;
const KVM_GET_VCPU_MMAP_SIZE = 0xae04;
const KVM_CREATE_VCPU = 0xae41;
const KVM_SET_USER_MEMORY_REGION = 0x4020ae46;
const KVM_RUN = 0xae80;
const KVM_GET_SREGS = 0x8138ae83;
const KVM_SET_SREGS = 0x4138ae84;
const KVM_SET_REGS = 0x4090ae82;
const O_RDWR = 2;
const O_CLOEXEC = 0o2000000;
const PROT_RW = 3;
const MAP_PRIVATE_ANON = 0x22;
const MAP_SHARED = 0x01;
const MEM = 0x10000;

function check(r, what) {
  if (r < 0) throw new Error(`${what} failed`);
  return r;
}

const kvm = check(libc.open(Buffer.from("/dev/kvm\0"), O_RDWR | O_CLOEXEC), "open /dev/kvm");
const vm = check(libc.ioctl(kvm, KVM_CREATE_VM, 0), "KVM_CREATE_VM");
const mem = libc.mmap(0, MEM, PROT_RW, MAP_PRIVATE_ANON, -1, 0);
if (mem === null) throw new Error("mmap failed");
const code = new Uint8Array(toArrayBuffer(mem, 0, MEM));
code.set([0xe6, 0xfa, 0xf4]); // out 0xfa, al; hlt
// struct kvm_userspace_memory_region: slot, flags, guest_phys_addr, memory_size, userspace_addr
const region = new BigUint64Array([0n, 0n, BigInt(MEM), BigInt(mem)]);
check(libc.ioctl(vm, KVM_SET_USER_MEMORY_REGION, BigInt(ptr(region))), "KVM_SET_USER_MEMORY_REGION");
const vcpu = check(libc.ioctl(vm, KVM_CREATE_VCPU, 0), "KVM_CREATE_VCPU");
const runSize = check(libc.ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0), "KVM_GET_VCPU_MMAP_SIZE");
const runPtr = libc.mmap(0, runSize, PROT_RW, MAP_SHARED, vcpu, 0);
if (runPtr === null) throw new Error("mmap of kvm_run failed");
const run = new DataView(toArrayBuffer(runPtr, 0, runSize));
// real mode at 0: CS's base and selector (struct kvm_sregs starts with cs: base u64, limit u32, selector u16)
const sregs = new Uint8Array(312);
check(libc.ioctl(vcpu, KVM_GET_SREGS, BigInt(ptr(sregs))), "KVM_GET_SREGS");
const sdv = new DataView(sregs.buffer);
sdv.setBigUint64(0, 0n, true);
sdv.setUint16(12, 0, true);
check(libc.ioctl(vcpu, KVM_SET_SREGS, BigInt(ptr(sregs))), "KVM_SET_SREGS");
// struct kvm_regs: 16 general registers, then rip and rflags
const regs = new BigUint64Array(18);
regs[16] = 0n;
regs[17] = 2n;
check(libc.ioctl(vcpu, KVM_SET_REGS, BigInt(ptr(regs))), "KVM_SET_REGS");
check(libc.ioctl(vcpu, KVM_RUN, 0), "KVM_RUN");
// struct kvm_run: exit_reason at 8 (KVM_EXIT_IO = 2), then io.port at 34
if (run.getUint32(8, true) !== 2) throw new Error(`exit reason ${run.getUint32(8, true)}, not KVM_EXIT_IO`);
console.log(run.getUint16(34, true));
