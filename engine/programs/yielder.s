; yielder.s - counts from 0 to 4 and politely yields the CPU after every line.
;
; Run two copies: their lines alternate exactly, because each `yield` system call makes the
; kernel switch to the next runnable process right away (cooperative multitasking).

        .org 0x00400000

SYS_WRITE  = 1
SYS_GETPID = 2
SYS_YIELD  = 3
SYS_EXIT   = 4

_start:
        mov r0, SYS_GETPID
        syscall
        add r0, 48                        ; '0' + pid
        mov r1, line
        stb [r1 + 4], r0                  ; "pid ?: turn ?"
        mov r4, 0
yield_loop:
        mov r0, r4
        add r0, 48
        mov r1, line
        stb [r1 + 12], r0
        mov r0, SYS_WRITE
        mov r2, line_end - line
        syscall
        mov r0, SYS_YIELD                 ; let the others run
        syscall
        add r4, 1
        cmp r4, 5
        jl yield_loop
        mov r0, SYS_EXIT
        mov r1, 0
        syscall

line:
        .ascii "pid ?: turn ?\n"
line_end:
