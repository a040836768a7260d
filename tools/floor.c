// wasp's C yardstick: the raw KVM work of a virtine's invocation done in C, the fastest plain way,
// so that `wasp bench --floor` can set each of wasp's series beside what KVM itself costs on the
// same machine in the same run. One JSON line per series on stdout, the same shape as wasp bench's:
//   {"name":"vmrun","unit":"us","n":1000,"median":24.90,"p99":40.10}
// Built by `npm run build:floor` (the bundled zig cc, static, musl) into dist/floor.bin, which
// dist/wasp embeds.
//
// The guest is what wasp runs its native images in: 64-bit long mode at CPL3 on page tables built
// here, a TSS whose I/O bitmap lets every port reach the host, exits by OUT (0xfa ends a call,
// 0xfb is a hypercall). Series:
//   create            KVM_CREATE_VM, memory, vCPU, CPUID, registers, one run to the exit, teardown
//   vmrun             one more run of a warm vCPU (registers through kvm_run's sync area)
//   hypercall         one OUT exit and re-entry, from a loop of 100
//   syscall           a `syscall` into a CPL0 stub that exits with OUT and returns with IRETQ
// and the candidates for answering a system call inside the VM, without an exit (issue 23), each
// per system call from a loop of 100, beside the plain exit (`hypercall`) in the same run:
//   syscall_bounce    `syscall` into a CPL0 stub that IRETQs to a CPL3 handler, which jumps back
//   int_ist_iretq     `int 0x80` through a DPL3 gate to CPL3 code on an IST stack (no privilege
//                     change, the red zone untouched), back with IRETQ
//   int_ist_jmp       the same, back by restoring RFLAGS and RSP from the frame and a jump
//   zpoline           `call *%rax` (the two bytes a rewritten `syscall` becomes) into a sled of
//                     NOPs at guest address 0, the handler's `ret` after it; RAX = 39 (getpid)
//   dirty_reset_K     a run writing K pages, then KVM_GET_DIRTY_LOG and the logged pages copied back
//   cow_reset_K       a run writing K pages of a MAP_PRIVATE view of a memfd, then MADV_DONTNEED
//   thread, process   pthread_create + join; fork + waitpid (what the host's own isolation costs)
// `floor.bin --determinism` instead probes what this KVM offers a recording of a CPL3 guest
// (docs/determinism.md): RDTSC under CR4.TSD, CPUID masking of RDRAND/RDSEED, guest debugging.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024u * 1024u)
#define MEM (16u * MIB)
#define PAGE 4096u

// Guest-physical layout.
#define PML4 0x1000u
#define PDPT 0x2000u
#define PD 0x3000u
#define GDT 0x4000u
#define TSS 0x5000u /* 104 bytes, then the I/O bitmap (8 KiB) and its 0xff terminator */
#define TSS_LIMIT (104u + 8192u)
#define KSTACK_TOP 0x9000u
#define IDT 0xa000u /* vectors 0..0x80: only 0x80 is present */
#define IST_TOP 0xc000u /* the IST stack of vector 0x80 (a user page: the handler runs at CPL3) */
#define INT_VECTOR 0x80u
#define PT4K 0xd000u /* the 4 KiB page table of region 2 (PROBE_PAGE's), for the PTE experiments */
#define PROBE_PAGE 0x400000u
#define SLED 0x200u /* NOPs at guest address 0 up to the zpoline handler */
#define CODE_INT 0x10400u
#define CODE_ZPOLINE 0x10500u
#define CODE_BOUNCE 0x10600u
#define CODE_RDTSC 0x10680u
#define CODE_POKE 0x106c0u
#define INT_IRETQ 0x10700u
#define INT_JMP 0x10710u
#define BOUNCE_HANDLER 0x10720u
#define BOUNCE_STUB 0x11100u
#define CODE_EXIT 0x10000u
#define CODE_HYPER 0x10100u
#define CODE_WRITE 0x10200u
#define CODE_SYSCALL 0x10300u
#define SYSCALL_STUB 0x11000u
#define TEMPLATE_END 0x12000u
#define WRITE_BASE 0x100000u
#define USTACK_TOP 0x800000u

#define PORT_EXIT 0xfa
#define PORT_HYPERCALL 0xfb
#define PORT_FAULT 0xfc /* an exception's CPL0 stub: AL = the vector */
#define FAULT_STUBS 0x10a00u /* 32 stubs of 8 bytes: mov al, VECTOR; out 0xfc */

static int kvm_fd;
static int run_size;
static struct kvm_cpuid2 *cpuid;
static uint8_t template_mem[TEMPLATE_END];

static void die(const char *what) {
  fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int xioctl(int fd, unsigned long request, void *arg, const char *what) {
  for (;;) {
    int r = ioctl(fd, request, arg);
    if (r >= 0) return r;
    if (errno != EINTR) die(what);
  }
}

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void report(const char *name, const char *unit, double *samples, int n) {
  qsort(samples, (size_t)n, sizeof *samples, cmp_double);
  int p99 = (n * 99 + 99) / 100 - 1;
  if (p99 >= n) p99 = n - 1;
  printf("{\"name\":\"%s\",\"unit\":\"%s\",\"n\":%d,\"median\":%.2f,\"p99\":%.2f}\n", name, unit, n, samples[n / 2], samples[p99]);
  fflush(stdout);
}

static void put64(uint8_t *mem, uint32_t at, uint64_t v) { memcpy(mem + at, &v, 8); }

static void put_code(uint8_t *mem, uint32_t at, const uint8_t *code, size_t n) { memcpy(mem + at, code, n); }

/** A 64-bit gate of the IDT: `attr` 0x8e an interrupt gate for CPL0, 0xee one software may raise at CPL3. */
static void set_gate(uint8_t *mem, int vector, uint64_t handler, uint8_t selector, uint8_t ist, uint8_t attr) {
  uint8_t *g = mem + IDT + vector * 16;
  memset(g, 0, 16);
  g[0] = handler & 0xff;
  g[1] = (handler >> 8) & 0xff;
  g[2] = selector;
  g[4] = ist;
  g[5] = attr;
  g[6] = (handler >> 16) & 0xff;
  g[7] = (handler >> 24) & 0xff;
}

/** Points vector 0x80 at `handler`: a DPL3 interrupt gate to CPL3 code (selector 0x1b), on IST1. */
static void set_int_gate(uint8_t *mem, uint64_t handler) { set_gate(mem, INT_VECTOR, handler, 0x1b, 1, 0xee); }

/** Page tables (16 MiB identity-mapped in 2 MiB user pages), GDT, TSS with an all-ports I/O bitmap, and the code. */
static void build_template(void) {
  uint8_t *m = template_mem;
  const uint64_t P = 1, RW = 2, US = 4, A = 0x20, D = 0x40, PS = 0x80;
  put64(m, PML4, PDPT | P | RW | US | A);
  put64(m, PDPT, PD | P | RW | US | A);
  for (uint32_t i = 0; i < MEM / (2 * MIB); i++) put64(m, PD + i * 8, (uint64_t)i * 2 * MIB | P | RW | US | A | D | PS);
  // region 2 in 4 KiB pages, so that the host can change one page's permission (PROBE_PAGE's)
  put64(m, PD + 2 * 8, PT4K | P | RW | US | A);
  for (uint32_t i = 0; i < 512; i++) put64(m, PT4K + i * 8, (uint64_t)(PROBE_PAGE + i * PAGE) | P | RW | US | A | D);
  put64(m, GDT + 0x08, 0x00af9b000000ffffull); // 64-bit code, DPL0
  put64(m, GDT + 0x10, 0x00cf93000000ffffull); // data, DPL0
  put64(m, GDT + 0x18, 0x00affb000000ffffull); // 64-bit code, DPL3
  put64(m, GDT + 0x20, 0x00cff3000000ffffull); // data, DPL3
  uint64_t base = TSS, limit = TSS_LIMIT;
  put64(m, GDT + 0x28, (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x8bull << 40) | (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56));
  put64(m, GDT + 0x30, base >> 32);
  put64(m, TSS + 4, KSTACK_TOP);        // RSP0
  m[TSS + 102] = 104;                   // the I/O bitmap's offset (u16, little-endian)
  m[TSS + 103] = 0;
  m[TSS + 104 + 8192] = 0xff;           // the byte after the bitmap must have every bit set
  // a nop first: the next call's RIP must differ from this OUT's, or KVM (with VMX/SVM) completes
  // the OUT at the next KVM_RUN by skipping it, and the guest runs on past it
  static const uint8_t exit_code[] = {0x90, 0xe6, PORT_EXIT};
  // loop rsi times: out 0xfb; then out 0xfa
  static const uint8_t hyper[] = {0xe6, PORT_HYPERCALL, 0x48, 0xff, 0xce, 0x75, 0xf9, 0xe6, PORT_EXIT};
  // mov ebx, WRITE_BASE; loop rsi times: mov [rbx], al; add rbx, 4096; then out 0xfa
  static const uint8_t write[] = {0xbb, 0x00, 0x00, 0x10, 0x00, 0x88, 0x03, 0x48, 0x81, 0xc3, 0x00, 0x10, 0x00, 0x00,
                                  0x48, 0xff, 0xce, 0x75, 0xf2, 0xe6, PORT_EXIT};
  // loop rsi times: syscall; then out 0xfa
  static const uint8_t sys[] = {0x0f, 0x05, 0x48, 0xff, 0xce, 0x75, 0xf9, 0xe6, PORT_EXIT};
  // CPL0 (LSTAR): build an IRETQ frame from what SYSCALL left (RCX = RIP, R11 = RFLAGS, RSP
  // unchanged), exit with out 0xfb, return to CPL3 with iretq (SYSRETQ is not emulated under PVM)
  static const uint8_t stub[] = {0x49, 0x89, 0xe2, 0x6a, 0x23, 0x41, 0x52, 0x41, 0x53, 0x6a, 0x1b, 0x51, 0xe6, PORT_HYPERCALL, 0x48, 0xcf};
  put_code(m, CODE_EXIT, exit_code, sizeof exit_code);
  put_code(m, CODE_HYPER, hyper, sizeof hyper);
  put_code(m, CODE_WRITE, write, sizeof write);
  put_code(m, CODE_SYSCALL, sys, sizeof sys);
  put_code(m, SYSCALL_STUB, stub, sizeof stub);

  // the candidates of an in-VM system call layer (issue 23)
  // loop rsi times: int 0x80; then out 0xfa
  static const uint8_t int_loop[] = {0xcd, INT_VECTOR, 0x48, 0xff, 0xce, 0x75, 0xf9, 0xe6, PORT_EXIT};
  // loop rsi times: mov eax, 39; call rax; then out 0xfa
  static const uint8_t zp_loop[] = {0xb8, 39, 0, 0, 0, 0xff, 0xd0, 0x48, 0xff, 0xce, 0x75, 0xf4, 0xe6, PORT_EXIT};
  // CPL3 handler of the IST gate, back by iretq
  static const uint8_t int_iretq[] = {0x48, 0xcf};
  // ... or by hand: mov rcx, [rsp] (RIP); add rsp, 16; popfq (RFLAGS); mov rsp, [rsp] (RSP); jmp rcx
  static const uint8_t int_jmp[] = {0x48, 0x8b, 0x0c, 0x24, 0x48, 0x83, 0xc4, 0x10, 0x9d, 0x48, 0x8b, 0x24, 0x24, 0xff, 0xe1};
  // CPL0 (LSTAR) stub of the bounce: an IRETQ frame to the CPL3 handler, which jumps back to RCX
  static const uint8_t bounce[] = {0x49, 0x89, 0xe2, 0x6a, 0x23, 0x41, 0x52, 0x41, 0x53, 0x6a, 0x1b,
                                   0x68, BOUNCE_HANDLER & 0xff, (BOUNCE_HANDLER >> 8) & 0xff, (BOUNCE_HANDLER >> 16) & 0xff, 0, 0x48, 0xcf};
  static const uint8_t bounce_handler[] = {0xff, 0xe1}; // jmp rcx
  // loop rsi times: rdtsc; then out 0xfa
  static const uint8_t rdtsc_loop[] = {0x0f, 0x31, 0x48, 0xff, 0xce, 0x75, 0xf9, 0xe6, PORT_EXIT};
  // mov byte [PROBE_PAGE], al; out 0xfa
  static const uint8_t poke[] = {0x88, 0x04, 0x25, PROBE_PAGE & 0xff, (PROBE_PAGE >> 8) & 0xff, (PROBE_PAGE >> 16) & 0xff, 0, 0xe6, PORT_EXIT};
  put_code(m, CODE_RDTSC, rdtsc_loop, sizeof rdtsc_loop);
  put_code(m, CODE_POKE, poke, sizeof poke);
  put_code(m, CODE_INT, int_loop, sizeof int_loop);
  put_code(m, CODE_ZPOLINE, zp_loop, sizeof zp_loop);
  put_code(m, CODE_BOUNCE, sys, sizeof sys);
  put_code(m, INT_IRETQ, int_iretq, sizeof int_iretq);
  put_code(m, INT_JMP, int_jmp, sizeof int_jmp);
  put_code(m, BOUNCE_HANDLER, bounce_handler, sizeof bounce_handler);
  put_code(m, BOUNCE_STUB, bounce, sizeof bounce);
  memset(m, 0x90, SLED);
  m[SLED] = 0xc3; // ret
  put64(m, TSS + 36, IST_TOP); // IST1
  // every exception vector reports itself to the host (a candidate's gate that fails shows how)
  for (int v = 0; v < 32; v++) {
    uint8_t stub[] = {0xb0, (uint8_t)v, 0xe6, PORT_FAULT};
    put_code(m, FAULT_STUBS + (uint32_t)v * 8, stub, sizeof stub);
    set_gate(m, v, FAULT_STUBS + (uint32_t)v * 8, 0x08, 0, 0x8e);
  }
}



static void segment(struct kvm_segment *s, uint16_t selector, uint8_t type, uint8_t dpl, uint8_t l, uint8_t db) {
  memset(s, 0, sizeof *s);
  s->base = 0;
  s->limit = 0xffffffff;
  s->selector = selector;
  s->type = type;
  s->present = 1;
  s->dpl = dpl;
  s->db = db;
  s->s = 1;
  s->l = l;
  s->g = 1;
}

struct vm {
  int fd, vcpu;
  struct kvm_run *run;
  uint8_t *mem;
};

/** A VM whose RAM is `mem` (MEM bytes, the template already in it), with one vCPU in CPL3 long mode. */
static void vm_open(struct vm *v, uint8_t *mem, uint32_t slot_flags) {
  v->mem = mem;
  v->fd = xioctl(kvm_fd, KVM_CREATE_VM, 0, "KVM_CREATE_VM");
  struct kvm_userspace_memory_region region = {.slot = 0, .flags = slot_flags, .guest_phys_addr = 0, .memory_size = MEM, .userspace_addr = (uint64_t)(uintptr_t)mem};
  xioctl(v->fd, KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION");
  v->vcpu = xioctl(v->fd, KVM_CREATE_VCPU, 0, "KVM_CREATE_VCPU");
  v->run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu, 0);
  if (v->run == MAP_FAILED) die("mmap kvm_run");
  xioctl(v->vcpu, KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2");
  struct kvm_sregs sr;
  xioctl(v->vcpu, KVM_GET_SREGS, &sr, "KVM_GET_SREGS");
  segment(&sr.cs, 0x1b, 11, 3, 1, 0);
  segment(&sr.ds, 0x23, 3, 3, 0, 1);
  sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
  memset(&sr.tr, 0, sizeof sr.tr);
  sr.tr.base = TSS;
  sr.tr.limit = TSS_LIMIT;
  sr.tr.selector = 0x28;
  sr.tr.type = 11;
  sr.tr.present = 1;
  sr.gdt.base = GDT;
  sr.gdt.limit = 7 * 8 - 1;
  sr.idt.base = IDT;
  sr.idt.limit = INT_VECTOR * 16 + 15;
  sr.cr0 = 0x80050033; // PG | AM | WP | NE | ET | MP | PE
  sr.cr3 = PML4;
  sr.cr4 = 0x620;      // OSXMMEXCPT | OSFXSR | PAE
  sr.efer = 0x501;     // LMA | LME | SCE
  xioctl(v->vcpu, KVM_SET_SREGS, &sr, "KVM_SET_SREGS");
  v->run->kvm_valid_regs = KVM_SYNC_X86_REGS;
}

static void vm_close(struct vm *v) {
  munmap(v->run, (size_t)run_size);
  close(v->vcpu);
  close(v->fd);
}

/** Enters at `rip` with `rsi` (a loop count) until the exit port; returns the exits taken. */
static int vm_call(struct vm *v, uint64_t rip, uint64_t rsi) {
  struct kvm_regs *r = &v->run->s.regs.regs;
  memset(r, 0, sizeof *r);
  r->rip = rip;
  r->rsi = rsi;
  r->rsp = USTACK_TOP;
  r->rflags = 0x3002; // IOPL 3, bit 1
  v->run->kvm_dirty_regs = KVM_SYNC_X86_REGS;
  for (int exits = 1;; exits++) {
    if (ioctl(v->vcpu, KVM_RUN, 0) < 0) {
      if (errno == EINTR) continue;
      die("KVM_RUN");
    }
    if (v->run->exit_reason != KVM_EXIT_IO || v->run->io.direction != KVM_EXIT_IO_OUT) {
      fprintf(stderr, "floor: unexpected exit %u at RIP 0x%llx\n", v->run->exit_reason, (unsigned long long)v->run->s.regs.regs.rip);
      exit(1);
    }
    if (v->run->io.port == PORT_EXIT) return exits;
    if (v->run->io.port == PORT_FAULT) return -1 - (int)(v->run->s.regs.regs.rax & 0xff);
    if (v->run->io.port != PORT_HYPERCALL) {
      fprintf(stderr, "floor: exit on port 0x%x\n", v->run->io.port);
      exit(1);
    }
  }
}

static uint8_t *anon(size_t size) {
  uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) die("mmap");
  return p;
}

static void series_create(int n) {
  double *s = calloc((size_t)n, sizeof *s);
  for (int i = -5; i < n; i++) {
    double t = now_us();
    uint8_t *mem = anon(MEM);
    memcpy(mem, template_mem, sizeof template_mem);
    struct vm v;
    vm_open(&v, mem, 0);
    vm_call(&v, CODE_EXIT, 0);
    vm_close(&v);
    munmap(mem, MEM);
    if (i >= 0) s[i] = now_us() - t;
  }
  report("create", "us", s, n);
  free(s);
}

static void set_lstar(struct vm *v, uint64_t at) {
  struct kvm_msrs *msrs = calloc(1, sizeof *msrs + sizeof(struct kvm_msr_entry));
  msrs->nmsrs = 1;
  msrs->entries[0] = (struct kvm_msr_entry){.index = 0xc0000082, .data = at};
  if (xioctl(v->vcpu, KVM_SET_MSRS, msrs, "KVM_SET_MSRS") != 1) die("KVM_SET_MSRS (LSTAR)");
  free(msrs);
}

static void series_runs(int n) {
  uint8_t *mem = anon(MEM);
  memcpy(mem, template_mem, sizeof template_mem);
  struct vm v;
  vm_open(&v, mem, 0);
  struct kvm_msrs *msrs = calloc(1, sizeof *msrs + 3 * sizeof(struct kvm_msr_entry));
  msrs->nmsrs = 3;
  msrs->entries[0] = (struct kvm_msr_entry){.index = 0xc0000081, .data = 0x08ull << 32}; // STAR: SYSCALL's CS
  msrs->entries[1] = (struct kvm_msr_entry){.index = 0xc0000082, .data = SYSCALL_STUB}; // LSTAR
  msrs->entries[2] = (struct kvm_msr_entry){.index = 0xc0000084, .data = 0};            // SFMASK
  if (xioctl(v.vcpu, KVM_SET_MSRS, msrs, "KVM_SET_MSRS") != 3) die("KVM_SET_MSRS set fewer than 3");
  free(msrs);
  double *s = calloc((size_t)n, sizeof *s);
  for (int i = -20; i < n; i++) {
    double t = now_us();
    vm_call(&v, CODE_EXIT, 0);
    if (i >= 0) s[i] = now_us() - t;
  }
  report("vmrun", "us", s, n);
  const int loop = 100, m = n / 4 > 10 ? n / 4 : 10;
  for (int i = -3; i < m; i++) {
    double t = now_us();
    if (vm_call(&v, CODE_HYPER, loop) != loop + 1) die("hypercall loop");
    if (i >= 0) s[i] = (now_us() - t) / loop;
  }
  report("hypercall", "us", s, m);
  for (int i = -3; i < m; i++) {
    double t = now_us();
    if (vm_call(&v, CODE_SYSCALL, loop) != loop + 1) die("syscall loop");
    if (i >= 0) s[i] = (now_us() - t) / loop;
  }
  report("syscall", "us", s, m);
  // the loop's one exit is spread over its iterations: 100 for the candidates that cost microseconds, 10,000 for zpoline's
  struct { const char *name; uint64_t code; uint64_t handler; uint64_t lstar; int loop; } cands[] = {
      {"syscall_bounce", CODE_BOUNCE, 0, BOUNCE_STUB, 100},
      {"int_ist_iretq", CODE_INT, INT_IRETQ, 0, 100},
      {"int_ist_jmp", CODE_INT, INT_JMP, 0, 100},
      {"zpoline", CODE_ZPOLINE, 0, 0, 10000},
  };
  for (size_t c = 0; c < sizeof cands / sizeof cands[0]; c++) {
    if (cands[c].handler) set_int_gate(mem, cands[c].handler);
    if (cands[c].lstar) set_lstar(&v, cands[c].lstar);
    int fault = 0;
    for (int i = -3; i < m && !fault; i++) {
      double t = now_us();
      int r = vm_call(&v, cands[c].code, (uint64_t)cands[c].loop);
      if (r < 0) {
        fault = -r;
        // the fault's stub left the vCPU at CPL0: back to the user segments for the next candidate
        struct kvm_sregs sr;
        xioctl(v.vcpu, KVM_GET_SREGS, &sr, "KVM_GET_SREGS");
        segment(&sr.cs, 0x1b, 11, 3, 1, 0);
        segment(&sr.ss, 0x23, 3, 3, 0, 1);
        xioctl(v.vcpu, KVM_SET_SREGS, &sr, "KVM_SET_SREGS");
      }
      else if (r != 1) die(cands[c].name);
      if (i >= 0) s[i] = (now_us() - t) / cands[c].loop;
    }
    if (fault) {
      // not a figure: how this KVM delivered the candidate instead (PVM raises #UD for INT n at CPL3)
      printf("{\"name\":\"%s\",\"unit\":\"us\",\"n\":0,\"median\":0,\"p99\":0,\"note\":\"not available: arrives as exception vector %d\"}\n", cands[c].name, fault - 1);
      fflush(stdout);
    } else report(cands[c].name, "us", s, m);
    if (cands[c].lstar) set_lstar(&v, SYSCALL_STUB);
  }
  for (int i = -3; i < m; i++) {
    double t = now_us();
    vm_call(&v, CODE_RDTSC, 10000);
    if (i >= 0) s[i] = (now_us() - t) / 10000;
  }
  report("rdtsc", "us", s, m);
  free(s);
  vm_close(&v);
  munmap(mem, MEM);
}

static void series_dirty_reset(int k, int n) {
  uint8_t *mem = anon(MEM), *golden = anon(MEM);
  memcpy(mem, template_mem, sizeof template_mem);
  memcpy(golden, template_mem, sizeof template_mem);
  struct vm v;
  vm_open(&v, mem, KVM_MEM_LOG_DIRTY_PAGES);
  size_t pages = MEM / PAGE, words = (pages + 63) / 64;
  uint64_t *bitmap = calloc(words, 8);
  struct kvm_dirty_log log = {.slot = 0, .dirty_bitmap = bitmap};
  double *s = calloc((size_t)n, sizeof *s);
  for (int i = -10; i < n; i++) {
    double t = now_us();
    vm_call(&v, CODE_WRITE, (uint64_t)k);
    xioctl(v.fd, KVM_GET_DIRTY_LOG, &log, "KVM_GET_DIRTY_LOG");
    for (size_t w = 0; w < words; w++) {
      for (uint64_t bits = bitmap[w]; bits; bits &= bits - 1) {
        size_t at = (w * 64 + (size_t)__builtin_ctzll(bits)) * PAGE;
        memcpy(mem + at, golden + at, PAGE);
      }
    }
    if (i >= 0) s[i] = now_us() - t;
  }
  char name[32];
  snprintf(name, sizeof name, "dirty_reset_%d", k);
  report(name, "us", s, n);
  free(s);
  free(bitmap);
  vm_close(&v);
  munmap(mem, MEM);
  munmap(golden, MEM);
}

static void series_cow_reset(int k, int n) {
  int fd = (int)syscall(SYS_memfd_create, "floor", 0);
  if (fd < 0) die("memfd_create");
  if (ftruncate(fd, MEM) < 0) die("ftruncate");
  if (pwrite(fd, template_mem, sizeof template_mem, 0) != (ssize_t)sizeof template_mem) die("pwrite");
  uint8_t *mem = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  if (mem == MAP_FAILED) die("mmap memfd");
  struct vm v;
  vm_open(&v, mem, 0);
  double *s = calloc((size_t)n, sizeof *s);
  for (int i = -10; i < n; i++) {
    double t = now_us();
    vm_call(&v, CODE_WRITE, (uint64_t)k);
    if (madvise(mem, MEM, MADV_DONTNEED) < 0) die("madvise");
    if (i >= 0) s[i] = now_us() - t;
  }
  char name[32];
  snprintf(name, sizeof name, "cow_reset_%d", k);
  report(name, "us", s, n);
  free(s);
  vm_close(&v);
  munmap(mem, MEM);
  close(fd);
}

// ---------------------------------------------------------------------------------------------
// Changing a page's permission behind KVM's back (the host writes the guest's page table): on a
// KVM that shadows the guest's tables, the change takes effect only once KVM drops what it derived
// from the old entry. Which operations make it do so, and what each costs (issue 23: mprotect
// honoured; the reset of guests whose tables a call changed).

enum flush { FLUSH_NONE, FLUSH_SLOT, FLUSH_NOTIFY, FLUSH_SREGS };
static const char *flush_name[] = {"none", "slot", "notify", "sregs"};

/** Drops KVM's translations of PROBE_PAGE by `how`. */
static void flush(struct vm *v, uint8_t *mem, enum flush how) {
  if (how == FLUSH_SLOT) {
    // what wasp's reset of a privileged guest does: the slot deleted (every shadow page dropped), then added again
    struct kvm_userspace_memory_region r = {.slot = 0, .memory_size = 0, .userspace_addr = (uint64_t)(uintptr_t)mem};
    xioctl(v->fd, KVM_SET_USER_MEMORY_REGION, &r, "KVM_SET_USER_MEMORY_REGION (delete)");
    r.memory_size = MEM;
    xioctl(v->fd, KVM_SET_USER_MEMORY_REGION, &r, "KVM_SET_USER_MEMORY_REGION (add)");
  } else if (how == FLUSH_NOTIFY) {
    // the host's own mapping of the page made read-only and back: KVM's MMU notifier zaps its translations
    if (mprotect(mem + PROBE_PAGE, PAGE, PROT_READ) < 0 || mprotect(mem + PROBE_PAGE, PAGE, PROT_READ | PROT_WRITE) < 0) die("mprotect");
  } else if (how == FLUSH_SREGS) {
    // the special registers loaded again (CR3 included)
    struct kvm_sregs sr;
    xioctl(v->vcpu, KVM_GET_SREGS, &sr, "KVM_GET_SREGS");
    xioctl(v->vcpu, KVM_SET_SREGS, &sr, "KVM_SET_SREGS");
  }
}

/** PROBE_PAGE's PTE: writable or read-only. */
static void set_probe_pte(uint8_t *mem, int writable) {
  const uint64_t P = 1, RW = 2, US = 4, A = 0x20, D = 0x40;
  put64(mem, PT4K, PROBE_PAGE | P | US | A | D | (writable ? RW : 0));
}

/** A run that writes PROBE_PAGE: 1 when it wrote, 0 when it faulted (the CPL0 stub's report). */
static int poke(struct vm *v) {
  int r = vm_call(v, CODE_POKE, 0);
  if (r > 0) return 1;
  struct kvm_sregs sr;
  xioctl(v->vcpu, KVM_GET_SREGS, &sr, "KVM_GET_SREGS");
  segment(&sr.cs, 0x1b, 11, 3, 1, 0);
  segment(&sr.ss, 0x23, 3, 3, 0, 1);
  xioctl(v->vcpu, KVM_SET_SREGS, &sr, "KVM_SET_SREGS");
  return 0;
}

/**
 * For each way of flushing: a page written (so KVM maps it writable), its PTE made read-only by
 * the host, the flush, a write again — "fresh" when it faults as the new PTE says, "stale" when
 * the old writable translation survived. Then the PTE made writable again and a write: KVM must
 * fix a stricter stale translation by itself (a fault it handles), or the guest faults.
 */
static void probe_pte_flush(void) {
  for (int how = FLUSH_NONE; how <= FLUSH_SREGS; how++) {
    uint8_t *mem = anon(MEM);
    memcpy(mem, template_mem, sizeof template_mem);
    struct vm v;
    vm_open(&v, mem, 0);
    int before = poke(&v);
    set_probe_pte(mem, 0);
    flush(&v, mem, (enum flush)how);
    int stale = poke(&v);
    set_probe_pte(mem, 1);
    int relaxed = poke(&v);
    printf("{\"probe\":\"pte_restrict_%s\",\"outcome\":\"%s\",\"detail\":\"a writable page made read-only by the host, then flushed by %s: the next write %s; made writable again, the next write %s\"}\n",
           flush_name[how], !before ? "broken" : stale ? "stale" : "fresh", flush_name[how], stale ? "went through" : "faulted", relaxed ? "went through" : "faulted");
    vm_close(&v);
    munmap(mem, MEM);
  }
}

/** What each flush costs, with the run after it (which rebuilds what KVM dropped). */
static void series_flush(int n) {
  double *s = calloc((size_t)n, sizeof *s);
  for (int how = FLUSH_SLOT; how <= FLUSH_NOTIFY; how++) {
    uint8_t *mem = anon(MEM);
    memcpy(mem, template_mem, sizeof template_mem);
    struct vm v;
    vm_open(&v, mem, 0);
    for (int i = -10; i < n; i++) {
      double t = now_us();
      flush(&v, mem, (enum flush)how);
      poke(&v);
      if (i >= 0) s[i] = now_us() - t;
    }
    char name[32];
    snprintf(name, sizeof name, "flush_%s", flush_name[how]);
    report(name, "us", s, n);
    vm_close(&v);
    munmap(mem, MEM);
  }
  free(s);
}

static void *nothing(void *arg) { return arg; }

static void series_thread(int n) {
  double *s = calloc((size_t)n, sizeof *s);
  for (int i = -5; i < n; i++) {
    double t = now_us();
    pthread_t th;
    if (pthread_create(&th, NULL, nothing, NULL) != 0) die("pthread_create");
    pthread_join(th, NULL);
    if (i >= 0) s[i] = now_us() - t;
  }
  report("thread", "us", s, n);
  free(s);
}

static void series_process(int n) {
  double *s = calloc((size_t)n, sizeof *s);
  for (int i = -3; i < n; i++) {
    double t = now_us();
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) _exit(0);
    int status;
    waitpid(pid, &status, 0);
    if (i >= 0) s[i] = now_us() - t;
  }
  report("process", "us", s, n);
  free(s);
}

// floor.bin [D]: every series with 1/D of its runs (at least 5): a quick check, not figures
// ---------------------------------------------------------------------------------------------
// `floor.bin --determinism`: what this KVM offers a recording of a CPL3 guest (issue 16, part 3),
// one JSON line per probe: {"probe":NAME,"outcome":...,"detail":...}. Each probe runs a few
// instructions in a fresh VM of the template (its IDT is empty, so a guest exception ends the run
// as a triple fault: KVM_EXIT_SHUTDOWN, or an emulation failure where KVM emulates the delivery).

#define PROBE_CODE 0x10800u
#define CR4_TSD 0x4u

struct probe {
  uint32_t reason;        /* the last exit's reason */
  uint32_t port;          /* its port, for an I/O exit */
  struct kvm_regs regs;   /* the registers at the last exit */
  int debug_exits;        /* KVM_EXIT_DEBUG exits before it */
  uint32_t exception;     /* the last debug exit's exception vector */
  uint64_t debug_pc;      /* and its RIP */
  double us_per_debug;    /* the mean time of a debug exit's round trip */
};

/**
 * Runs `code` at CPL3 in a fresh VM: with CR4 bits `cr4_or` set, CPUID table `cpu`, and guest
 * debugging `dbg` (NULL: none). Debug exits are counted and resumed up to `max_debug`; the run ends
 * at the exit port, any other exit, or the debug exit past `max_debug`.
 */
static struct probe probe_run(const uint8_t *code, size_t n, uint32_t cr4_or, struct kvm_cpuid2 *cpu, struct kvm_guest_debug *dbg, int max_debug) {
  struct probe out = {0};
  uint8_t *mem = anon(MEM);
  memcpy(mem, template_mem, sizeof template_mem);
  memcpy(mem + PROBE_CODE, code, n);
  struct kvm_cpuid2 *saved = cpuid;
  cpuid = cpu;
  struct vm v;
  vm_open(&v, mem, 0);
  cpuid = saved;
  if (cr4_or) {
    struct kvm_sregs sr;
    xioctl(v.vcpu, KVM_GET_SREGS, &sr, "KVM_GET_SREGS");
    sr.cr4 |= cr4_or;
    xioctl(v.vcpu, KVM_SET_SREGS, &sr, "KVM_SET_SREGS");
  }
  if (dbg && ioctl(v.vcpu, KVM_SET_GUEST_DEBUG, dbg) < 0) {
    out.reason = 0xffffffffu; /* refused */
    vm_close(&v);
    munmap(mem, MEM);
    return out;
  }
  struct kvm_regs *r = &v.run->s.regs.regs;
  memset(r, 0, sizeof *r);
  r->rip = PROBE_CODE;
  r->rsp = USTACK_TOP;
  r->rflags = 0x3002;
  v.run->kvm_dirty_regs = KVM_SYNC_X86_REGS;
  double debug_time = 0;
  for (;;) {
    double t = now_us();
    if (ioctl(v.vcpu, KVM_RUN, 0) < 0) {
      if (errno == EINTR) continue;
      die("KVM_RUN");
    }
    out.reason = v.run->exit_reason;
    if (out.reason == KVM_EXIT_DEBUG) {
      debug_time += now_us() - t;
      out.debug_exits++;
      out.exception = v.run->debug.arch.exception;
      out.debug_pc = v.run->debug.arch.pc;
      if (out.debug_exits > max_debug) break;
      continue;
    }
    if (out.reason == KVM_EXIT_IO) out.port = v.run->io.port;
    break;
  }
  out.regs = *r;
  if (out.debug_exits > 0) out.us_per_debug = debug_time / out.debug_exits;
  vm_close(&v);
  munmap(mem, MEM);
  return out;
}

static const char *exit_name(uint32_t reason) {
  switch (reason) {
    case KVM_EXIT_IO: return "IO";
    case KVM_EXIT_DEBUG: return "DEBUG";
    case KVM_EXIT_SHUTDOWN: return "SHUTDOWN";
    case KVM_EXIT_INTERNAL_ERROR: return "INTERNAL_ERROR";
    case KVM_EXIT_FAIL_ENTRY: return "FAIL_ENTRY";
    case 0xffffffffu: return "KVM_SET_GUEST_DEBUG refused";
    default: return "other";
  }
}

/** "runs" when the code reached the exit port, "faults" when it ended otherwise. */
static void probe_print(const char *name, struct probe p, const char *detail) {
  int ran = p.reason == KVM_EXIT_IO && p.port == PORT_EXIT;
  printf("{\"probe\":\"%s\",\"outcome\":\"%s\",\"exit\":\"%s\",\"rip\":\"0x%llx\",\"detail\":\"%s\"}\n", name, ran ? "runs" : "faults", exit_name(p.reason),
         (unsigned long long)p.regs.rip, detail);
}

/** A copy of the supported CPUID table with `bit` of register `reg` (0 EAX .. 3 EDX) of leaf `fn`/0 cleared. */
static struct kvm_cpuid2 *cpuid_without(uint32_t fn, int reg, int bit) {
  size_t size = sizeof *cpuid + cpuid->nent * sizeof(struct kvm_cpuid_entry2);
  struct kvm_cpuid2 *c = malloc(size);
  if (!c) die("malloc");
  memcpy(c, cpuid, size);
  for (uint32_t i = 0; i < c->nent; i++) {
    struct kvm_cpuid_entry2 *e = &c->entries[i];
    if (e->function != fn || e->index != 0) continue;
    uint32_t *regs[] = {&e->eax, &e->ebx, &e->ecx, &e->edx};
    *regs[reg] &= ~(1u << bit);
  }
  return c;
}

static void probe_determinism(void) {
  char detail[160];
  static const uint8_t rdtsc[] = {0x0f, 0x31, 0xe6, PORT_EXIT};                  // rdtsc; out
  static const uint8_t rdtscp[] = {0x0f, 0x01, 0xf9, 0xe6, PORT_EXIT};           // rdtscp; out
  static const uint8_t rdrand[] = {0x48, 0x0f, 0xc7, 0xf0, 0xe6, PORT_EXIT};     // rdrand rax; out
  static const uint8_t rdseed[] = {0x48, 0x0f, 0xc7, 0xf8, 0xe6, PORT_EXIT};     // rdseed rax; out
  // mov eax, 1; xor ecx, ecx; cpuid; mov esi, ecx; mov eax, 7; xor ecx, ecx; cpuid; out
  static const uint8_t leaves[] = {0xb8, 1, 0, 0, 0, 0x31, 0xc9, 0x0f, 0xa2, 0x89, 0xce, 0xb8, 7, 0, 0, 0, 0x31, 0xc9, 0x0f, 0xa2, 0xe6, PORT_EXIT};
  static const uint8_t nops[] = {0x90, 0x90, 0x90, 0xe6, PORT_EXIT};             // three nops; out
  static const uint8_t bp[] = {0x90, 0xcc, 0x90, 0xe6, PORT_EXIT};               // nop; int3; nop; out

  probe_print("rdtsc", probe_run(rdtsc, sizeof rdtsc, 0, cpuid, NULL, 0), "RDTSC at CPL3, CR4.TSD clear");
  probe_print("rdtsc_tsd", probe_run(rdtsc, sizeof rdtsc, CR4_TSD, cpuid, NULL, 0), "RDTSC at CPL3 with CR4.TSD set: #GP expected");
  probe_print("rdtscp_tsd", probe_run(rdtscp, sizeof rdtscp, CR4_TSD, cpuid, NULL, 0), "RDTSCP at CPL3 with CR4.TSD set: #GP expected");

  struct kvm_cpuid2 *no_rdrand = cpuid_without(1, 2, 30);
  struct kvm_cpuid2 *masked = no_rdrand;
  {
    struct kvm_cpuid2 *both = cpuid_without(7, 1, 18);
    for (uint32_t i = 0; i < both->nent; i++)
      if (both->entries[i].function == 1 && both->entries[i].index == 0) both->entries[i].ecx &= ~(1u << 30);
    masked = both;
  }
  struct probe p = probe_run(leaves, sizeof leaves, 0, cpuid, NULL, 0);
  snprintf(detail, sizeof detail, "CPUID as KVM supports it: leaf 1 ECX.RDRAND=%llu, leaf 7 EBX.RDSEED=%llu (leaf 1 ECX 0x%llx)", (unsigned long long)((p.regs.rsi >> 30) & 1), (unsigned long long)((p.regs.rbx >> 18) & 1), (unsigned long long)(p.regs.rsi & 0xffffffffu));
  probe_print("cpuid", p, detail);
  p = probe_run(leaves, sizeof leaves, 0, masked, NULL, 0);
  snprintf(detail, sizeof detail, "CPUID masked by KVM_SET_CPUID2: leaf 1 ECX.RDRAND=%llu, leaf 7 EBX.RDSEED=%llu (leaf 1 ECX 0x%llx)", (unsigned long long)((p.regs.rsi >> 30) & 1), (unsigned long long)((p.regs.rbx >> 18) & 1), (unsigned long long)(p.regs.rsi & 0xffffffffu));
  probe_print("cpuid_masked", p, detail);
  p = probe_run(rdrand, sizeof rdrand, 0, masked, NULL, 0);
  probe_print("rdrand_masked", p, "RDRAND at CPL3 with CPUID saying it is absent");
  p = probe_run(rdseed, sizeof rdseed, 0, masked, NULL, 0);
  probe_print("rdseed_masked", p, "RDSEED at CPL3 with CPUID saying it is absent");
  free(masked);
  free(no_rdrand);

  struct kvm_guest_debug dbg = {0};
  dbg.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP;
  p = probe_run(nops, sizeof nops, 0, cpuid, &dbg, 100);
  snprintf(detail, sizeof detail, "KVM_GUESTDBG_SINGLESTEP over 3 nops and an out: %d debug exits, %.1f us each", p.debug_exits, p.us_per_debug);
  probe_print("singlestep", p, detail);

  memset(&dbg, 0, sizeof dbg);
  dbg.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_SW_BP;
  p = probe_run(bp, sizeof bp, 0, cpuid, &dbg, 0);
  snprintf(detail, sizeof detail, "KVM_GUESTDBG_USE_SW_BP, int3 at 0x%x: %d debug exits, vector %u at 0x%llx", PROBE_CODE + 1, p.debug_exits, p.exception, (unsigned long long)p.debug_pc);
  probe_print("sw_breakpoint", p, detail);

  memset(&dbg, 0, sizeof dbg);
  dbg.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP;
  dbg.arch.debugreg[0] = PROBE_CODE + 2;
  dbg.arch.debugreg[7] = 0x1; /* L0: an instruction breakpoint at DR0 */
  p = probe_run(nops, sizeof nops, 0, cpuid, &dbg, 0);
  snprintf(detail, sizeof detail, "KVM_GUESTDBG_USE_HW_BP, DR0 = 0x%x: %d debug exits, vector %u at 0x%llx", PROBE_CODE + 2, p.debug_exits, p.exception, (unsigned long long)p.debug_pc);
  probe_print("hw_breakpoint", p, detail);
  probe_pte_flush();
}

static int divisor = 1;
static int runs(int n) { return n / divisor > 5 ? n / divisor : 5; }

int main(int argc, char **argv) {
  int determinism = argc > 1 && strcmp(argv[1], "--determinism") == 0;
  if (argc > 1 && !determinism) divisor = atoi(argv[1]) > 0 ? atoi(argv[1]) : 1;
  kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm_fd < 0) die("open /dev/kvm");
  run_size = xioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE");
  int nent = 256;
  cpuid = calloc(1, sizeof *cpuid + (size_t)nent * sizeof(struct kvm_cpuid_entry2));
  cpuid->nent = (uint32_t)nent;
  xioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid, "KVM_GET_SUPPORTED_CPUID");
  build_template();
  if (determinism) {
    probe_determinism();
    return 0;
  }
  series_create(runs(200));
  series_runs(runs(1000));
  const int ks[] = {1, 16, 64};
  for (int i = 0; i < 3; i++) series_dirty_reset(ks[i], runs(500));
  for (int i = 0; i < 3; i++) series_cow_reset(ks[i], runs(500));
  series_flush(runs(500));
  series_thread(runs(200));
  series_process(runs(100));
  return 0;
}
