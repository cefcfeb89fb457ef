; hello.s - the smallest user program: one write system call, then exit.
;
; User programs run in ring 3 at virtual address 0x00400000 (the kernel copies them there and
; starts them at their first instruction). They talk to the kernel only through `syscall`:
; r0 = system-call number, r1..r3 = arguments, result in r0.

        .org 0x00400000

SYS_WRITE = 1
SYS_EXIT  = 4

_start:
        mov r0, SYS_WRITE                 ; write(message, length)
        mov r1, message
        mov r2, message_end - message
        syscall
        mov r0, SYS_EXIT                  ; exit(0)
        mov r1, 0
        syscall

message:
        .ascii "Hello from user space!\n"
message_end:
