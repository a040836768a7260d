# Raw image that triple-faults on purpose (for the host's fault tests): it switches to 32-bit
# protected mode, loads an IDT with a limit of zero and executes ud2. The #UD cannot be delivered
# (#GP), nor can that (#DF), so the CPU shuts down: KVM_EXIT_SHUTDOWN.
    .set SEL_CODE32, 0x08
    .set SEL_DATA,   0x10

    .text
    .globl _start

    .code16
_start:
    cli
    xorw %ax, %ax
    movw %ax, %ds
    lgdtl gdt_desc
    movl %cr0, %eax
    orl $1, %eax                    # CR0.PE
    movl %eax, %cr0
    ljmp $SEL_CODE32, $protected32

    .code32
protected32:
    movw $SEL_DATA, %ax
    movw %ax, %ds
    movw %ax, %ss
    lidtl idt_desc
    ud2
1:  jmp 1b

    .balign 8
gdt:
    .quad 0
    .quad 0x00cf9a000000ffff        # 0x08: 32-bit code, base 0, limit 4 GiB
    .quad 0x00cf92000000ffff        # 0x10: data, base 0, limit 4 GiB
gdt_end:
gdt_desc:
    .word gdt_end - gdt - 1
    .long gdt
idt_desc:
    .word 0
    .long 0
