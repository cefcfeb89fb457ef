; privileged.s - tries to turn interrupts off from user mode.
;
; `cli` is a privileged instruction: in ring 3 the CPU does not execute it but raises a
; privileged-instruction fault (vector 13). The kernel's handler kills the process and prints
; where it happened; the other processes carry on.

        .org 0x00400000

SYS_WRITE = 1
SYS_EXIT  = 4

_start:
        mov r0, SYS_WRITE
        mov r1, before
        mov r2, before_end - before
        syscall
try_cli:
        cli                               ; faults: the kernel kills us here
        mov r0, SYS_WRITE                 ; never reached
        mov r1, after
        mov r2, after_end - after
        syscall
        mov r0, SYS_EXIT
        mov r1, 1
        syscall

before:
        .ascii "privileged: executing cli in ring 3\n"
before_end:
after:
        .ascii "privileged: cli did not fault?!\n"
after_end:
