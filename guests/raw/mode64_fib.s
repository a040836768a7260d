# Fig. 3 of the Wasp paper, 64-bit column: boots from real mode through protected mode to 64-bit
# long mode (as raw_fib64), then fib(n) by double recursion, n = the first argument (info page
# args[0] at 0x7010, a full u64). Result in RAX, `out 0xFA, al`.
#
# rdtsc right before and right after the computation go to the milestone table: u64 at 0x7100
# and 0x7108, count (2) as a u64 at 0x70f8.
#
# Entered at 0x8000 in real mode with CS base 0. Memory it uses besides its own image and those
# info-page fields:
#   0x10000-0x12fff  page tables (PML4, PDPT, PD: identity map of the first 4 MiB, 2 MiB pages)
#   0x13000-0x1ffff  stack (RSP starts at 0x20000, grows down)

    .set INFO_ARG0, 0x7000 + 16
    .set MS_COUNT, 0x70f8
    .set MS_TABLE, 0x7100
    .set PML4, 0x10000
    .set PDPT, 0x11000
    .set PD,   0x12000
    .set STACK_TOP, 0x20000

    .set SEL_CODE32, 0x08
    .set SEL_DATA,   0x10
    .set SEL_CODE64, 0x18

.macro MARK slot
    rdtsc
    movl %eax, MS_TABLE + 8 * \slot
    movl %edx, MS_TABLE + 8 * \slot + 4
.endm

    .text
    .globl _start

    .code16
_start:
    cli
    lgdtl gdt_desc                  # DS is 0 at entry
    movl %cr0, %eax
    orl $1, %eax                    # CR0.PE
    movl %eax, %cr0
    ljmpl $SEL_CODE32, $protected32

    .code32
protected32:
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
    orl $0x80000000, %eax           # CR0.PG (long mode becomes active)
    movl %eax, %cr0
    ljmp $SEL_CODE64, $long64

    .code64
long64:
    movl $STACK_TOP, %esp
    movq $2, MS_COUNT
    movq INFO_ARG0, %rdi
    MARK 0
    call fib
    movq %rax, %rbx
    MARK 1
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
gdt:
    .quad 0                         # null
    .quad 0x00cf9a000000ffff        # 0x08: 32-bit code, base 0, 4 GiB
    .quad 0x00cf92000000ffff        # 0x10: data, base 0, 4 GiB
    .quad 0x00af9a000000ffff        # 0x18: 64-bit code
gdt_end:
gdt_desc:
    .word gdt_end - gdt - 1
    .long gdt
