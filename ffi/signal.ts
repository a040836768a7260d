// Layouts of the libc/kernel structs the deadline mechanism passes to timer_create, timer_settime
// and rt_sigtimedwait (checked against the C headers by tests/ffi-layout.test.ts).
import { Struct } from "./struct.ts";

export const sigevent = new Struct("struct sigevent", 64, {
  sigev_value: [0, "u64"],
  sigev_signo: [8, "u32"],
  sigev_notify: [12, "u32"],
  sigev_notify_thread_id: [16, "u32"],
});

export const itimerspec = new Struct("struct itimerspec", 32, {
  "it_interval.tv_sec": [0, "u64"],
  "it_interval.tv_nsec": [8, "u64"],
  "it_value.tv_sec": [16, "u64"],
  "it_value.tv_nsec": [24, "u64"],
});

export const timespec = new Struct("struct timespec", 16, { tv_sec: [0, "u64"], tv_nsec: [8, "u64"] });

export const siginfo = new Struct("siginfo_t", 128, { si_signo: [0, "u32"] });

/** libc's struct sigaction (the handler is a union member in glibc and musl alike). */
export const sigaction = new Struct("struct sigaction", 152, {
  sa_handler: [0, "u64"],
  sa_mask: [8, { bytes: 128 }],
  sa_flags: [136, "u32"],
});
