# Fig. 3 of the Wasp paper, 32-bit column: switches from real mode to 32-bit protected mode (flat
# segments, no paging), then fib(n) by double recursion, n = the low 32 bits of the first argument
# (info page args[0] at 0x7010); exact up to fib(47). Result in EAX (RAX), `out 0xFA, al`.
#
# rdtsc right before and right after the computation go to the milestone table: u64 at 0x7100
# and 0x7108, count (2) as a u64 at 0x70f8.
#
# Entered at 0x8000 in real mode with CS base 0. Memory it uses besides its own image and those
# info-page fields: the stack, ESP from 0x20000 down.

    .set INFO_ARG0, 0x7000 + 16
    .set MS_COUNT, 0x70f8
    .set MS_TABLE, 0x7100
    .set STACK_TOP, 0x20000

    .set SEL_CODE32, 0x08
    .set SEL_DATA,   0x10

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
    movl $STACK_TOP, %esp
    movl $2, MS_COUNT
    movl $0, MS_COUNT + 4
    movl INFO_ARG0, %edi
    MARK 0
    call fib
    movl %eax, %esi
    MARK 1
    movl %esi, %eax
    outb %al, $0xfa
1:  hlt
    jmp 1b

# fib(edi) -> eax, by double recursion.
fib:
    cmpl $2, %edi
    jb 2f
    pushl %ebx
    pushl %edi
    decl %edi
    call fib
    movl %eax, %ebx
    popl %edi
    subl $2, %edi
    call fib
    addl %ebx, %eax
    popl %ebx
    ret
2:  movl %edi, %eax
    ret

    .p2align 3
gdt:
    .quad 0                         # null
    .quad 0x00cf9a000000ffff        # 0x08: 32-bit code, base 0, 4 GiB
    .quad 0x00cf92000000ffff        # 0x10: data, base 0, 4 GiB
gdt_end:
gdt_desc:
    .word gdt_end - gdt - 1
    .long gdt
