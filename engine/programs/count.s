; count.s - counts from 0 to 9, one line per number, and never gives the CPU away by itself.
;
; Between two lines it spins in a busy loop longer than the kernel's time slice (200
; instructions), so the timer interrupt has to preempt it: run two copies and their lines
; interleave. Each line carries the process id (from getpid) so you can tell them apart.

        .org 0x00400000

SYS_WRITE  = 1
SYS_GETPID = 2
SYS_EXIT   = 4
SPIN       = 100                      ; busy-loop rounds between lines (3 instructions each)

_start:
        mov r0, SYS_GETPID                ; patch the pid digit into the line (pid < 10)
        syscall
        add r0, 48                        ; '0' + pid
        mov r1, line
        stb [r1 + 4], r0                  ; "pid ?: count ?"
        mov r4, 0                         ; r4 = the counter
count_loop:
        mov r0, r4
        add r0, 48
        mov r1, line
        stb [r1 + 13], r0                 ; the counter digit
        mov r0, SYS_WRITE
        mov r2, line_end - line
        syscall
        mov r5, SPIN                      ; waste some time: the timer will fire in here
count_spin:
        sub r5, 1
        jnz count_spin
        add r4, 1
        cmp r4, 10
        jl count_loop
        mov r0, SYS_EXIT                  ; exit(0)
        mov r1, 0
        syscall

line:
        .ascii "pid ?: count ?\n"
line_end:
