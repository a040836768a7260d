# Raw image that triple-faults on purpose (for the host's fault tests): it switches to 32-bit
# protected mode, loads an IDT with a limit of zero and executes ud2. The #UD cannot be delivered
# (#GP), nor can that (#DF), so the CPU shuts down: KVM_EXIT_SHUTDOWN.

    .include "boot.inc"

    .text
    .globl _start

    .code16
_start:
    cli
    xorw %ax, %ax
    movw %ax, %ds
    lgdtl gdt_desc                  # the steps of ENTER_PROTECTED_MODE, loading DS and SS only
    ENABLE_PE
    JUMP_CODE32 ljmp
    movw $SEL_DATA, %ax
    movw %ax, %ds
    movw %ax, %ss
    lidtl idt_desc
    ud2
1:  jmp 1b

    GDT gdt, DESC_CODE32, DESC_DATA
    GDT_DESC gdt
idt_desc:
    .word 0
    .long 0
