# The Wasp paper's boot-time virtine (Table 1, Fig. 11): boots itself from 16-bit real mode to
# 64-bit long mode like raw_fib64, recording an rdtsc milestone at each step, then makes the
# snapshot hypercall and computes fib(n) recursively, n = the first argument (info page args[0]).
# Result in RAX, then `out 0xFA, al`.
#
# Milestone table (u64 TSC values, EDX:EAX of rdtsc), at 0x7100 in the info page:
#   [0] first instruction            [1] after lgdt (32-bit GDT)     [2] after CR0.PE is set
#   [3] first instruction in 32-bit  [4] after CR0.PG (identity map built, paging on)
#   [5] after lgdt of the 64-bit GDT (in compatibility mode)
#   [6] first instruction in 64-bit  [7] right before fib            [8] right after fib
# and the number of milestones (9) as a u64 at 0x70f8.
#
# Snapshot point: right after [6], with the stack set up, `mov $5, %eax; out %al, $0xfb`
# (hypercall 5). A host that captures the VM there resumes later calls right after the `out`
# with RAX = 1 (RAX = 0 on the capturing run, or when the host ignores the call). Everything
# after that point reads n from the info page again, so a resumed call computes fib of its own
# argument; it writes only [7], [8] and the count.
#
# Entered at 0x8000 in real mode with CS base 0. Memory it uses besides its own image:
#   0x7100-0x7147, 0x70f8  the milestone table and count (info page)
#   0x10000-0x12fff  page tables (PML4, PDPT, PD: identity map of the first 4 MiB, 2 MiB pages)
#   0x13000-0x1ffff  stack (RSP starts at 0x20000, grows down)
# so the virtine needs at least 128 KiB of RAM.

    .set INFO_ARG0, 0x7000 + 16
    .set MS_COUNT, 0x70f8
    .set MS_TABLE, 0x7100
    .set MS_N, 9
    .set PML4, 0x10000
    .set PDPT, 0x11000
    .set PD,   0x12000
    .set STACK_TOP, 0x20000

    # gdt32: 0x08 = 32-bit code, 0x10 = data; gdt64: 0x08 = 64-bit code, 0x10 = data
    .set SEL_CODE, 0x08
    .set SEL_DATA, 0x10

    .set HC_SNAPSHOT, 5

# Record milestone `slot`: rdtsc, EDX:EAX -> MS_TABLE[slot]. Clobbers EAX and EDX. The same
# source assembles in 16-bit (DS base 0), 32-bit and 64-bit code.
.macro MARK slot
    rdtsc
    movl %eax, MS_TABLE + 8 * \slot
    movl %edx, MS_TABLE + 8 * \slot + 4
.endm

    .text
    .globl _start

    .code16
_start:
    MARK 0
    cli
    lgdtl gdt32_desc                # DS is 0 at entry
    MARK 1
    movl %cr0, %eax
    orl $1, %eax                    # CR0.PE
    movl %eax, %cr0
    MARK 2
    ljmpl $SEL_CODE, $protected32

    .code32
protected32:
    MARK 3                          # DS still has its real-mode base 0 and limit 64 KiB
    movw $SEL_DATA, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss

    # Page tables: zero three pages, then PML4[0] -> PDPT, PDPT[0] -> PD, PD[0..1] -> 0, 2 MiB.
    cld
    movl $PML4, %edi
    xorl %eax, %eax
    movl $(3 * 4096 / 4), %ecx
    rep stosl
    movl $(PDPT | 0x3), PML4        # present | writable
    movl $(PD | 0x3), PDPT
    movl $(0x000000 | 0x83), PD     # present | writable | 2 MiB page
    movl $(0x200000 | 0x83), PD + 8

    movl %cr4, %eax
    orl $0x20, %eax                 # CR4.PAE
    movl %eax, %cr4
    movl $PML4, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx          # IA32_EFER
    rdmsr
    orl $0x100, %eax                # EFER.LME
    wrmsr
    movl %cr0, %eax
    orl $0x80000000, %eax           # CR0.PG (long mode becomes active: compatibility mode)
    movl %eax, %cr0
    MARK 4
    lgdtl gdt64_desc                # CS/DS/SS keep their cached descriptors until reloaded
    MARK 5
    ljmp $SEL_CODE, $long64

    .code64
long64:
    MARK 6
    movl $STACK_TOP, %esp
    movl $HC_SNAPSHOT, %eax
    outb %al, $0xfb                 # snapshot: later calls resume here, RAX = 1
snapshot_resume:
    movq INFO_ARG0, %rdi            # this call's n (not a register from before the snapshot)
    movq $MS_N, MS_COUNT
    MARK 7
    call fib
    movq %rax, %rbx
    MARK 8
    movq %rbx, %rax
    outb %al, $0xfa
1:  hlt
    jmp 1b

# fib(rdi) -> rax, by double recursion.
fib:
    cmpq $2, %rdi
    jb 2f
    pushq %rbx
    pushq %rdi
    decq %rdi
    call fib
    movq %rax, %rbx
    popq %rdi
    subq $2, %rdi
    call fib
    addq %rbx, %rax
    popq %rbx
    ret
2:  movq %rdi, %rax
    ret

    .p2align 3
gdt32:
    .quad 0                         # null
    .quad 0x00cf9a000000ffff        # 0x08: 32-bit code, base 0, 4 GiB
    .quad 0x00cf92000000ffff        # 0x10: data, base 0, 4 GiB
gdt32_end:
gdt64:
    .quad 0                         # null
    .quad 0x00af9a000000ffff        # 0x08: 64-bit code
    .quad 0x00cf92000000ffff        # 0x10: data
gdt64_end:
gdt32_desc:
    .word gdt32_end - gdt32 - 1
    .long gdt32
gdt64_desc:
    .word gdt64_end - gdt64 - 1
    .long gdt64
