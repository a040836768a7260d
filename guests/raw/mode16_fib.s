# Fig. 3 of the Wasp paper, 16-bit column: fib(n) by double recursion without leaving real mode.
# n = the low 32 bits of the first argument (info page args[0] at 0x7010); 32-bit arithmetic via
# operand-size prefixes, so the result is exact up to fib(47). Result in EAX (RAX), `out 0xFA, al`.
#
# rdtsc right before and right after the computation go to the milestone table: u64 at 0x7100
# and 0x7108, count (2) as a u64 at 0x70f8.
#
# Entered at 0x8000 in real mode with CS = DS = SS = 0. Memory it uses besides its own image and
# those info-page fields: the stack, SS = 0x1000, SP from 0xfff0 down (0x10000-0x1ffef).

    .include "fib.inc"

    .set STACK_SEG, 0x1000
    .set STACK_SP,  0xfff0

    .text
    .globl _start

    .code16
_start:
    cli
    movw $STACK_SEG, %ax
    movw %ax, %ss
    movw $STACK_SP, %sp
    MEASURED_FIB32 fib

# 16-bit near calls, 32-bit values.
    FIB32 fib
