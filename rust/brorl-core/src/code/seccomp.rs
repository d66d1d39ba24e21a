//! A seccomp filter that denies network sockets: the fallback when no network namespace can
//! be made. `socket()` is allowed only for AF_UNIX; io_uring (which can open sockets on its
//! own) is denied; a foreign syscall ABI (i386 or x32 entry points) gets EPERM as well.

use libc::{c_ulong, sock_filter, sock_fprog};

const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_EPERM: u32 = 0x0005_0000 | libc::EPERM as u32;
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARG0: u32 = 16; // low 32 bits of args[0] on little-endian
const SYS_IO_URING_SETUP: u32 = 425;

#[cfg(target_arch = "x86_64")]
const ARCH: Option<(u32, u32)> = Some((0xC000_003E, 41)); // AUDIT_ARCH_X86_64, SYS_socket
#[cfg(target_arch = "aarch64")]
const ARCH: Option<(u32, u32)> = Some((0xC000_00B7, 198)); // AUDIT_ARCH_AARCH64, SYS_socket
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ARCH: Option<(u32, u32)> = None;

const fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}
const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// The BPF program, or `None` on an architecture we have no syscall numbers for.
pub fn deny_sockets_program() -> Option<Vec<sock_filter>> {
    let (arch, sys_socket) = ARCH?;
    Some(vec![
        stmt(LD_W_ABS, OFF_ARCH),
        jump(JEQ_K, arch, 1, 0),
        stmt(RET_K, RET_EPERM),
        stmt(LD_W_ABS, OFF_NR),
        jump(JGE_K, 0x4000_0000, 0, 1), // x32 syscall numbers
        stmt(RET_K, RET_EPERM),
        jump(JEQ_K, SYS_IO_URING_SETUP, 0, 1),
        stmt(RET_K, RET_EPERM),
        jump(JEQ_K, sys_socket, 0, 3),
        stmt(LD_W_ABS, OFF_ARG0),
        jump(JEQ_K, libc::AF_UNIX as u32, 1, 0),
        stmt(RET_K, RET_EPERM),
        stmt(RET_K, RET_ALLOW),
    ])
}

/// Installs `program` on the calling thread. Async-signal-safe (used between fork and exec);
/// needs `PR_SET_NO_NEW_PRIVS` first. Returns the errno on failure.
pub fn install(program: &[sock_filter]) -> Result<(), i32> {
    let prog = sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut _,
    };
    // SAFETY: `prog` points at a live, correctly sized filter array for the whole call.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as c_ulong,
            &prog as *const sock_fprog as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}
