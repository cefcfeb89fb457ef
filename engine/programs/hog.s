; hog.s - idles first, then grabs 64 heap pages, touches each one, and exits.
;
; Made for overcommit (docs/vmm.md, "Overcommit"): it yields for a while (costing almost no memory),
; then its demand for 64 fresh pages arrives all at once. Run it in one VM while `heap` runs and
; exits in another, and the host has to get frames back from the VM that no longer needs them.

        .org 0x00400000

SYS_WRITE = 1
SYS_YIELD = 3
SYS_EXIT  = 4
SYS_SBRK  = 5
PAGES     = 64
IDLE      = 400                       ; yields before the hunger starts

_start:
        mov r4, IDLE
idle:
        mov r0, SYS_YIELD
        syscall
        sub r4, 1
        jnz idle

        mov r0, SYS_SBRK                  ; sbrk(PAGES * 4096)
        mov r1, PAGES * 4096
        syscall
        cmp r0, 0xffffffff
        jz failed
        mov r4, r0
        mov r5, 0
touch:
        mov r6, r5
        shl r6, 12
        add r6, r4
        st [r6], r5                       ; a demand-zero fault per page
        add r5, 1
        cmp r5, PAGES
        jnz touch

        mov r0, SYS_WRITE
        mov r1, success
        mov r2, success_end - success
        syscall
        mov r0, SYS_EXIT
        mov r1, 0
        syscall

failed:
        mov r0, SYS_WRITE
        mov r1, failure
        mov r2, failure_end - failure
        syscall
        mov r0, SYS_EXIT
        mov r1, 1
        syscall

success:
        .ascii "hog: 64 pages taken and touched\n"
success_end:
failure:
        .ascii "hog: FAILED\n"
failure_end:
