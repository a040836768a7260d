// Pools, snapshots and reset: a call never sees anything of the call before it, and a reset puts
// a shell back to its snapshot byte for byte.
import { describe, expect, test } from "bun:test";
import { Runner } from "../src/virtine/runner.ts";
import { Shell } from "../src/shell/shell.ts";
import { Snapshot } from "../src/snapshot/snapshot.ts";
import { parseImage } from "../src/image/image.ts";
import { Kvm, kvmDevicePath, systemKvm } from "../src/kvm/system.ts";
import { userSelectorsVisible } from "../src/shell/probe.ts";
import { KVM_EXIT } from "../ffi/kvm.ts";
import { Layout } from "../src/abi/guest-abi.ts";
import { X86, guest, nativeImage, wasp, fdTable, fdsOpenedSince } from "./support.ts";
import { GuestFaultError } from "../src/errors.ts";

const load = (name: string, opts = {}) => Runner.fromFile(guest(name), opts);
const idle = () => new Promise((resolve) => setImmediate(resolve));

// --- a guest that leaves a secret everywhere a call can leave state, or looks for one ---------
// rdi = 1: write rsi into memory (heap and stack), six callee-saved registers, xmm0-15, MXCSR
//          and the x87 stack; rdi = 2: count the places where rsi is found (rax).
const SECRET_ADDR = 0x200000;
function secretGuest(): Uint8Array {
  const imm32 = (v: number) => [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];
  const movqXmm = (n: number) => [0x66, n < 8 ? 0x48 : 0x4c, 0x0f, 0x6e, 0xc6 | ((n & 7) << 3)]; // movq xmmN, rsi
  const movqFromXmm = (n: number) => [0x66, n < 8 ? 0x48 : 0x4c, 0x0f, 0x7e, 0xc2 | ((n & 7) << 3)]; // movq rdx, xmmN
  const count = [0x0f, 0x94, 0xc1, 0x0f, 0xb6, 0xc9, 0x01, 0xc8]; // sete cl; movzx ecx, cl; add eax, ecx
  const countNe = [0x0f, 0x95, 0xc1, 0x0f, 0xb6, 0xc9, 0x01, 0xc8]; // setne cl; ...
  const regs = [[0x49, 0xf4], [0x49, 0xf5], [0x49, 0xf6], [0x49, 0xf7], [0x48, 0xf3], [0x48, 0xf5]]; // r12-r15, rbx, rbp
  const write: number[] = [
    0x48, 0x89, 0x34, 0x25, ...imm32(SECRET_ADDR), // mov [SECRET_ADDR], rsi
    0x56, // push rsi (a secret on the stack)
    ...regs.flatMap(([p, m]) => [p, 0x89, m]), // mov r, rsi
    ...Array.from({ length: 16 }, (_, n) => movqXmm(n)).flat(),
    0xc7, 0x04, 0x25, ...imm32(SECRET_ADDR + 0x100), ...imm32(0x7f80), // mov dword [..], 0x7f80 (round toward zero)
    0x0f, 0xae, 0x14, 0x25, ...imm32(SECRET_ADDR + 0x100), // ldmxcsr [..]
    0xd9, 0xe8, // fld1 (an x87 register in use)
    // flip each data segment selector between null and the user data selector 0x23:
    // mov dx, seg; xor dx, 0x23; mov seg, dx
    ...[0xda, 0xc2, 0xe2, 0xea].flatMap((m) => [0x8c, m, 0x66, 0x83, 0xf2, 0x23, 0x8e, m]),
    ...X86.exit,
  ];
  const check: number[] = [
    0x31, 0xc0, // xor eax, eax
    ...regs.flatMap(([p, m]) => [p, 0x39, m, ...count]), // cmp r, rsi
    0x48, 0x39, 0x34, 0x25, ...imm32(SECRET_ADDR), ...count, // cmp [SECRET_ADDR], rsi
    0x48, 0x8b, 0x54, 0x24, 0xf8, 0x48, 0x39, 0xf2, ...count, // mov rdx, [rsp-8]; cmp rdx, rsi (the stack slot)
    ...Array.from({ length: 16 }, (_, n) => [...movqFromXmm(n), 0x48, 0x39, 0xf2, ...count]).flat(),
    0x0f, 0xae, 0x1c, 0x25, ...imm32(SECRET_ADDR + 0x200), // stmxcsr [..]
    0x81, 0x3c, 0x25, ...imm32(SECRET_ADDR + 0x200), ...imm32(0x1f80), ...countNe, // MXCSR changed?
    0xdd, 0x3c, 0x25, ...imm32(SECRET_ADDR + 0x300), // fnstsw [..]
    0x66, 0x8b, 0x14, 0x25, ...imm32(SECRET_ADDR + 0x300), // mov dx, [..]
    0x66, 0x81, 0xe2, 0x00, 0x38, 0x66, 0x83, 0xfa, 0x00, ...countNe, // x87 stack top moved?
    // the selectors as bits 8-11 (1: not 0x23), to compare with a fresh call's:
    // mov dx, seg; cmp dx, 0x23; setne cl; movzx ecx, cl; shl ecx, 8+i; or eax, ecx
    ...[0xda, 0xc2, 0xe2, 0xea].flatMap((m, i) => [0x8c, m, 0x66, 0x83, 0xfa, 0x23, 0x0f, 0x95, 0xc1, 0x0f, 0xb6, 0xc9, 0xc1, 0xe1, 8 + i, 0x09, 0xc8]),
    ...X86.exit,
  ];
  // cmp rdi, 1; je write (rel32 over the check code)
  const head = [0x48, 0x83, 0xff, 0x01, 0x0f, 0x84, ...imm32(check.length)];
  return nativeImage([...head, ...check, ...write]);
}

/** Places the secret guest checks by count (bits 0-7): 6 registers, heap, stack, 16 XMM, MXCSR, x87. */
const PLACES = 6 + 1 + 1 + 16 + 1 + 1;
/** What a fresh virtine's check call returns: no secret anywhere, the selectors as at entry. */
function freshCheck(): bigint {
  using v = new Runner(parseImage(secretGuest(), "secret"));
  return v.run([2, SECRET]).value;
}
const SECRET = 0x5ec2e75ec2e7n;

describe("reset is proof: nothing of call N is visible to call N+1", () => {
  test("the secret guest finds its own secret when nothing is reset (it can see)", () => {
    // the check path run right after the write path in one VM, without the host's reset
    const kvm = systemKvm();
    using snap = Snapshot.entry(parseImage(secretGuest(), "secret"), 16 << 20, kvm.vcpuResetState());
    using shell = new Shell(kvm, snap);
    shell.loadRegisters([1n, SECRET]);
    expect(shell.vcpu.enter()).toBe(KVM_EXIT.IO);
    // enter the check path by hand with the registers and memory as the write path left them
    // straight at the image's entry, past the trampoline (which would reset the FPU/SSE state)
    shell.vcpu.setReg("rip", BigInt(Layout.NATIVE_LOAD + 80));
    shell.vcpu.setReg("rdi", 2n);
    shell.vcpu.setReg("rsi", SECRET);
    shell.vcpu.setReg("rsp", BigInt(16 << 20));
    shell.vcpu.markRegsDirty(false);
    expect(shell.vcpu.enter()).toBe(KVM_EXIT.IO);
    // (the selector bits are not asserted here: KVM on PVM shows a CPL3 guest null data selectors
    // whatever it loads, so they may read as at entry)
    expect(shell.vcpu.reg("rax") & 0xffn).toBe(BigInt(PLACES));
  });

  test("a second call on the same warm shell finds none of it (reset on demand)", () => {
    const fresh = freshCheck();
    expect(fresh & 0xffn).toBe(0n);
    using v = new Runner(parseImage(secretGuest(), "secret"), { poolSize: 1 });
    v.run([1, SECRET]);
    expect(v.run([2, SECRET]).value).toBe(fresh);
    expect(v.poolStats.created).toBe(1);
  });

  test("a second call finds none of it when the shell was cleaned in idle time", async () => {
    const fresh = freshCheck();
    using v = new Runner(parseImage(secretGuest(), "secret"), { poolSize: 1 });
    v.run([1, SECRET]);
    await idle();
    expect(v.poolStats.cleanedIdle).toBe(1);
    expect(v.run([2, SECRET]).value).toBe(fresh);
    expect(v.poolStats.created).toBe(1);
  });

  test("where KVM shows a guest its data selectors, the reset reloads the special registers", () => {
    // forced on (this machine's KVM hides them, see src/shell/probe.ts): the secret is still gone
    const kvm = systemKvm();
    using snap = Snapshot.entry(parseImage(secretGuest(), "secret"), 16 << 20, kvm.vcpuResetState());
    using shell = new Shell(kvm, snap, { selectorsVisible: true });
    shell.writeInfo([1n, SECRET], 0x200000);
    shell.loadRegisters([1n, SECRET]);
    expect(shell.vcpu.enter()).toBe(KVM_EXIT.IO);
    shell.reset();
    shell.writeInfo([2n, SECRET], 0x200000);
    shell.loadRegisters([2n, SECRET]);
    expect(shell.vcpu.enter()).toBe(KVM_EXIT.IO);
    expect(shell.vcpu.reg("rax")).toBe(freshCheck());
  });

  test("a one-shot shell's VM is the one the reset state was read from, as fresh as a new one; a kept VM closes with its Kvm", () => {
    const expected = freshCheck();
    const fds = fdTable();
    {
      using kvm = new Kvm(kvmDevicePath());
      const reset = kvm.vcpuResetState({ keepVm: true });
      using snap = Snapshot.entry(parseImage(secretGuest(), "secret"), 16 << 20, reset);
      const kept = fdTable();
      using shell = new Shell(kvm, snap, { oneShot: true });
      // no VM made for the shell: it took the kept one, whose vCPU is still in its reset state
      expect(fdsOpenedSince(kept)).toEqual([]); // a one-shot shell's RAM is anonymous memory: no fd of its own
      expect(kvm.takeFreshVm()).toBeUndefined();
      expect(Buffer.from(shell.vcpu.getSregs()).equals(Buffer.from(reset.sregs))).toBe(true);
      shell.writeInfo([2n, SECRET], 0x200000);
      shell.loadRegisters([2n, SECRET]);
      expect(shell.vcpu.enter()).toBe(KVM_EXIT.IO);
      expect(shell.vcpu.reg("rax")).toBe(expected);
    }
    {
      // kept and never taken: closing the Kvm closes it
      using kvm = new Kvm(kvmDevicePath());
      kvm.vcpuResetState({ keepVm: true });
    }
    expect(fdsOpenedSince(fds)).toEqual([]);
  });

  test("the selector probe gives an answer for this KVM", () => {
    expect(typeof userSelectorsVisible(systemKvm())).toBe("boolean");
  });

  for (const strategy of ["dirty-log", "cow"] as const) {
    test(`a reset (${strategy}) restores the snapshot exactly, byte for byte`, () => {
      const kvm = systemKvm();
      using snap = Snapshot.entry(readImage("writes"), 16 << 20, kvm.vcpuResetState());
      using shell = new Shell(kvm, snap);
      for (const k of [64, 1, 300]) {
        shell.writeInfo([BigInt(k)], 0x200000);
        shell.loadRegisters([BigInt(k)]);
        expect(shell.vcpu.enter()).toBe(KVM_EXIT.IO);
        expect(shell.vcpu.reg("rax")).toBe(BigInt(k));
        expect(Buffer.compare(shell.mem.bytes, snap.memory)).not.toBe(0);
        const restored = shell.reset(strategy);
        if (strategy === "dirty-log") expect(restored).toBeGreaterThanOrEqual(k);
        expect(Buffer.compare(shell.mem.bytes, snap.memory)).toBe(0);
      }
    });
  }
});

function readImage(name: string) {
  return parseImage(new Uint8Array(require("node:fs").readFileSync(guest(name))), name);
}

describe("pools of warm shells", () => {
  test("calls reuse one shell; a new one is made only when none is free", () => {
    using v = load("fib", { poolSize: 2 });
    for (let i = 0; i < 20; i++) expect(v.run([10]).value).toBe(55n);
    expect(v.poolStats.created).toBe(1);
    expect(v.poolStats.cleaned).toBe(19);
  });

  test("ensure(n) pre-provisions shells up to the pool size", () => {
    using v = load("noop", { poolSize: 3 });
    v.ensure(5);
    expect(v.pool.ready).toBe(3);
    expect(v.poolStats.created).toBe(3);
    v.run();
    expect(v.poolStats.created).toBe(3);
  });

  test("the result is returned before the reset; the reset happens in idle time, before reuse", async () => {
    using v = load("noop", { poolSize: 2 });
    v.ensure(2);
    v.run();
    expect(v.pool.pending).toBe(1); // returned dirty: not cleaned on the caller's path
    await idle();
    expect(v.pool.pending).toBe(0);
    expect(v.pool.ready).toBe(2);
    expect(v.poolStats.cleanedIdle).toBe(1);
  });

  test("a pool size out of range is refused", () => {
    expect(() => load("noop", { poolSize: 0 }).run()).toThrow(/pool size 0 is not between 1 and/);
  });
});

describe("snapshots", () => {
  test("the snapshot is captured on the first call and never overwritten by a later one", () => {
    using v = load("snaptwice");
    // call 1: counter 1, captured (first = 0), counter 11, the second hypercall captures nothing (1)
    expect(v.run().value).toBe(1101n);
    expect(v.snapshotTaken).toBe(true);
    // later calls resume after the first hypercall, with the memory of that moment (counter = 1)
    expect(v.run().value).toBe(1111n);
    expect(v.run().value).toBe(1111n);
  });

  test("a captured snapshot's FPU/SSE state is what every later call resumes with", () => {
    const code = [
      0x66, 0x48, 0x0f, 0x6e, 0xc6, // movq xmm0, rsi (the first call's second argument)
      ...X86.movRax(5), ...X86.hypercall, // snapshot
      0x66, 0x48, 0x0f, 0x7e, 0xc2, // movq rdx, xmm0
      0x66, 0x48, 0x0f, 0x6e, 0xc7, // movq xmm0, rdi (dirty it)
      0x48, 0x89, 0xd0, // mov rax, rdx
      ...X86.exit,
    ];
    using v = new Runner(parseImage(nativeImage(code), "fpu-snapshot"), { poolSize: 1 });
    expect(v.run([0x9999, 0x1234]).value).toBe(0x1234n);
    expect(v.snapshotTaken).toBe(true);
    expect(v.run([0x7777, 0x5555]).value).toBe(0x1234n);
    expect(v.run([0x7777, 0x5555]).value).toBe(0x1234n);
  });

  test("the entry trampoline is read-only for the guest", () => {
    using v = new Runner(parseImage(nativeImage([...X86.writeAt(Layout.TRAMPOLINE), ...X86.exit]), "tramp"));
    expect(() => v.run()).toThrow(/page fault \(#PF, vector 14\) on a write to 0x1c000 \(protection violation\)/);
  });

  test("with snapshots off every call starts at the entry", () => {
    using v = load("snaptwice", { snapshot: false });
    expect(v.run().value).toBe(1100n);
    expect(v.run().value).toBe(1100n);
    expect(v.snapshotTaken).toBe(false);
  });

  test("a self-booting guest resumes after its boot: fewer exits, same results, its own arguments", () => {
    using v = load("boot_fib", { timeoutMs: 30_000 });
    const first = v.run([10]);
    expect(first.value).toBe(55n);
    expect(first.exits).toBe(2); // the snapshot hypercall and the exit
    for (const [n, f] of [[20, 6765n], [0, 0n], [12, 144n]] as const) {
      const r = v.run([n]);
      expect(r.value).toBe(f);
      expect(r.exits).toBe(1); // resumed after the snapshot: no boot, no hypercall
    }
  });

  test("wasp invoke: one call per process, so the snapshot hypercall captures nothing (and --no-snapshot agrees)", () => {
    // the CLI's single call runs one-shot: no later call could resume from a capture
    expect(wasp(["invoke", guest("snaptwice")]).stdout).toBe("1100\n");
    expect(wasp(["invoke", guest("snaptwice"), "--no-snapshot"]).stdout).toBe("1100\n");
  });

  test("a one-shot virtine starts every call in a new VM at the entry state", () => {
    using v = load("snaptwice", { oneShot: true });
    expect(v.run().value).toBe(1100n);
    expect(v.run().value).toBe(1100n);
    expect(v.snapshotTaken).toBe(false);
  });
});

describe("privileged (raw) guests", () => {
  // real mode: ecx = 0xC0000082 (LSTAR); rdi = 1: write edi:... as LSTAR's low half = the second
  // argument; else read LSTAR's low half into eax. hlt.
  const code = [
    0x66, 0xb9, 0x82, 0x00, 0x00, 0xc0, // mov ecx, 0xc0000082
    0x66, 0x83, 0xff, 0x01, // cmp edi, 1
    0x75, 0x0a, // jne read
    0x66, 0x89, 0xf0, // mov eax, esi
    0x66, 0x31, 0xd2, // xor edx, edx
    0x0f, 0x30, // wrmsr
    0xf4, // hlt
    0x90, // (pad)
    0x0f, 0x32, // read: rdmsr
    0xf4, // hlt
  ];

  test("a model-specific register a raw guest wrote is reset before the next call", () => {
    using v = new Runner(parseImage(new Uint8Array(code), "msr"), { poolSize: 1 });
    const before = v.run([2]).value;
    v.run([1, 0x5ec2e7]);
    expect(v.run([2]).value).toBe(before);
    expect(v.poolStats.created).toBe(1);
  });
  test("a raw guest's debug registers are reset before the next call", () => {
    // rdi = 1: DR0 = esi; else: return DR0
    const write = [
      0x66, 0x89, 0xf0, // mov eax, esi
      0x0f, 0x23, 0xc0, // mov dr0, eax
      0xf4, // hlt
    ];
    const read = [
      0x0f, 0x21, 0xc0, // mov eax, dr0
      0xf4, // hlt
    ];
    const code = [0x66, 0x83, 0xff, 0x01, 0x75, write.length, ...write, ...read]; // cmp edi, 1; jne read
    using v = new Runner(parseImage(new Uint8Array(code), "dr0"), { poolSize: 1 });
    expect(v.run([2]).value & 0xffffffffn).toBe(0n);
    v.run([1, 0x5ec000]);
    expect(v.run([2]).value & 0xffffffffn).toBe(0n);
    expect(v.poolStats.created).toBe(1);
  });

  test("a raw guest's XCR0 is reset before the next call (or, where KVM cannot run XSETBV for it, the call fails cleanly)", () => {
    // rdi = 1: CR4.OSXSAVE, XCR0 = x87|SSE|AVX; else: CR4.OSXSAVE, return XCR0
    const osxsave = [
      0x0f, 0x20, 0xe0, // mov eax, cr4
      0x66, 0x0d, 0x00, 0x00, 0x04, 0x00, // or eax, 0x40000 (CR4.OSXSAVE)
      0x0f, 0x22, 0xe0, // mov cr4, eax
      0x66, 0x31, 0xc9, // xor ecx, ecx
    ];
    const write = [
      ...osxsave,
      0x66, 0x31, 0xd2, // xor edx, edx
      0x66, 0xb8, 0x07, 0x00, 0x00, 0x00, // mov eax, 7
      0x0f, 0x01, 0xd1, // xsetbv
      0xf4, // hlt
    ];
    const read = [
      ...osxsave,
      0x0f, 0x01, 0xd0, // xgetbv
      0xf4, // hlt
    ];
    const code = [0x66, 0x83, 0xff, 0x01, 0x75, write.length, ...write, ...read]; // cmp edi, 1; jne read
    using v = new Runner(parseImage(new Uint8Array(code), "xcr0"), { poolSize: 1 });
    let before: bigint | undefined;
    try {
      before = v.run([2]).value & 0xffffffffn;
    } catch (e) {
      // KVM on PVM emulates real-mode code, and its emulator runs XSETBV but has no XGETBV: that
      // call fails as a typed fault, the virtine goes on, and XCR0 is read from the host's side —
      // from the shell the next call would get.
      expect(e).toBeInstanceOf(GuestFaultError);
      expect((e as Error).message).toMatch(/^KVM reported an internal error \(suberror 1\) at RIP 0x80/);
      const xcr0 = () => {
        const shell = v.pool.acquire();
        try {
          return new DataView(shell.vcpu.getXcrs().buffer).getBigUint64(16, true); // kvm_xcrs.xcrs[0].value
        } finally {
          v.pool.release(shell);
        }
      };
      const fresh = xcr0();
      expect(fresh & 1n).toBe(1n); // x87, always
      v.run([1]);
      expect(xcr0()).toBe(fresh);
      return;
    }
    expect(before).toBe(1n); // x87 only
    v.run([1]);
    expect(v.run([2]).value & 0xffffffffn).toBe(before);
    expect(v.poolStats.created).toBe(1);
  });

  // raw_remap builds a page table of its own and captures its snapshot; a call with 1 remaps linear
  // 0x300000 from physical 0x300000 (0xaaaa0001) to 0x301000 (0xbbbb0002) and reads it.
  for (const strategy of ["dirty-log", "cow"] as const) {
    test(`a call sees exactly the snapshot's page tables, whatever the call before it remapped (${strategy} reset)`, async () => {
      using v = load("raw_remap", { poolSize: 1, resetStrategy: strategy });
      expect(v.run([0]).value & 0xffffffffn).toBe(0xaaaa0001n); // the capture, then a read
      expect(v.snapshotTaken).toBe(true);
      for (let i = 0; i < 3; i++) {
        expect(v.run([1]).value & 0xffffffffn).toBe(0xbbbb0002n); // this call remaps...
        await idle(); // (the reset in idle time)
        expect(v.run([0]).value & 0xffffffffn).toBe(0xaaaa0001n); // ...the next one must not see it
        await idle();
      }
      // one shell for the capture, then one reused by every later call
      expect(v.poolStats.created).toBe(2);
      expect(v.poolStats.cleaned).toBeGreaterThanOrEqual(6);
      // every remapping call left an entry KVM used that the snapshot lacks: the slot was re-added
      // (the "cow" reset re-adds it after every call)
      expect(v.poolStats.translationFlushes).toBeGreaterThanOrEqual(3);
    });
  }

  // raw_transient: 0 reads linear 0x300000 through the snapshot's tables; 1 builds a hierarchy of
  // its own in pages no snapshot table points to, uses it and loads the snapshot's CR3 back; 2 loads
  // that hierarchy's CR3 again (zero pages now: a triple fault); 3 remaps an entry of the
  // snapshot's own table and puts it back without invalidating it. (On KVM on PVM the guest's CPL0
  // code is emulated and walks its tables afresh, so these pass there whatever the reset does;
  // on a KVM that shadows them — tools/kvm-vm.sh — each fails without what the reset does for it.)
  test("a call that changes no page table leaves KVM its translations: the slot is not re-added", async () => {
    using v = load("raw_transient", { poolSize: 1 });
    expect(v.run([0]).value & 0xffffffffn).toBe(0xaaaa0001n);
    for (let i = 0; i < 3; i++) {
      expect(v.run([0]).value & 0xffffffffn).toBe(0xaaaa0001n);
      await idle();
    }
    expect(v.poolStats.pagesRestored).toBeGreaterThan(0); // the info page, written by the host
    expect(v.poolStats.translationFlushes).toBe(0);
  });

  test("a page-table hierarchy a call used and abandoned leaves the next call nothing", async () => {
    using v = load("raw_transient", { poolSize: 1 });
    v.run([0]);
    for (let i = 0; i < 3; i++) {
      const flushes = v.poolStats.translationFlushes;
      expect(v.run([1]).value & 0xffffffffn).toBe(0xbbbb0002n); // through its own tables
      await idle();
      // its tables are in no table of the snapshot's, but hold entries KVM used: the slot re-added
      expect(v.poolStats.translationFlushes).toBe(flushes + 1);
      // the same CR3 again: its pages are zero now, nothing is mapped
      expect(() => v.run([2])).toThrow(/triple-faulted/);
      expect(v.run([0]).value & 0xffffffffn).toBe(0xaaaa0001n);
      await idle();
    }
  });

  test("an entry a call changed and put back without invalidating it is not the next call's", async () => {
    using v = load("raw_transient", { poolSize: 1 });
    v.run([0]);
    for (let i = 0; i < 3; i++) {
      expect(v.run([3]).value & 0xffffffffn).toBe(0xbbbb0002n);
      await idle();
      expect(v.run([0]).value & 0xffffffffn).toBe(0xaaaa0001n);
      await idle();
    }
    // the memory ends as the snapshot's: no re-add, but KVM reloads its MMU at the next entry and
    // reads again the table the guest wrote unseen
    expect(v.poolStats.translationFlushes).toBe(0);
  });
});
