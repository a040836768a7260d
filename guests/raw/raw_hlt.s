# Raw image: result 42 in EAX, then HLT. Entered in real mode at 0x8000.
    .code16
    .text
    .globl _start
_start:
    movl $42, %eax
    hlt
1:  jmp 1b
