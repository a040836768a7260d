# Fig. 3 of the Wasp paper, 16-bit column: fib(n) by double recursion without leaving real mode.
# n = the low 32 bits of the first argument (info page args[0] at 0x7010); 32-bit arithmetic via
# operand-size prefixes, so the result is exact up to fib(47). Result in EAX (RAX), `out 0xFA, al`.
#
# rdtsc right before and right after the computation go to the milestone table: u64 at 0x7100
# and 0x7108, count (2) as a u64 at 0x70f8.
#
# Entered at 0x8000 in real mode with CS = DS = SS = 0. Memory it uses besides its own image and
# those info-page fields: the stack, SS = 0x1000, SP from 0xfff0 down (0x10000-0x1ffef).

    .set INFO_ARG0, 0x7000 + 16
    .set MS_COUNT, 0x70f8
    .set MS_TABLE, 0x7100
    .set STACK_SEG, 0x1000
    .set STACK_TOP, 0xfff0

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
    movw $STACK_SEG, %ax
    movw %ax, %ss
    movw $STACK_TOP, %sp
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

# fib(edi) -> eax, by double recursion (16-bit near calls, 32-bit values).
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
