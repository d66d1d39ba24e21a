//! The set-up of each sample process in native code, called once per fork by the template
//! (`py/template.py`) through ctypes from this very library, which brorl binds read-only into
//! the sandbox.
//!
//! Why: a fork of the template pays for every page its set-up writes (copy-on-write of the
//! reference counts of each Python object it touches) and for the interpreter's work. Done in
//! Python and ctypes, the steps below cost a forked process about 0.7 ms of CPU and 200 page
//! copies; done here, in one call, about 0.05 ms. Without this library (Rust's own tests,
//! where brorl-core is part of an executable that cannot be loaded) the template runs the
//! same steps in Python.

use std::ffi::CStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use libc::{c_char, c_int, c_void};

/// What one sample process sets up before the first line of its harness: filled by the
/// template before it forks (only 8-byte fields, so its ctypes mirror has no padding to get
/// wrong).
#[repr(C)]
pub struct SampleSetup {
    /// How many of `fds` there are; `fds[i]` becomes descriptor `i`, all others are closed.
    pub nfds: i64,
    pub fds: [i64; 8],
    /// The highest descriptor the template may hold (for kernels without close_range).
    pub top_fd: i64,
    /// Drop to this uid and gid with no groups (started by root), or -1.
    pub uid: i64,
    /// Root of a user namespace only: drop every capability and lock them out.
    pub userns: i64,
    /// Non-zero: PR_SET_DUMPABLE 0 (the test process).
    pub nondumpable: i64,
    pub umask: i64,
    /// (resource, soft, hard) triples; a negative resource ends the list.
    pub rlimits: [[i64; 3]; 6],
    /// Working directory (NUL-terminated).
    pub cwd: *const c_char,
    /// What to write to /proc/self/oom_score_adj (NUL-terminated), or null.
    pub oom: *const c_char,
    /// A `struct sock_fprog` to install on top of the template's filter, or null.
    pub filter: *const c_void,
}

/// The steps, numbered as in the error code `(step << 16) | errno`.
pub const STEPS: [&str; 9] = [
    "",
    "chdir",
    "dup",
    "dup2",
    "close",
    "setrlimit",
    "uid",
    "capabilities",
    "seccomp",
];

fn errno() -> c_int {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

const SYS_CLOSE_RANGE: libc::c_long = 436;

/// Sets up the calling (freshly forked) process as `s` says: OOM score, working directory,
/// descriptors, rlimits, uid or capabilities, dumpable flag, umask, seccomp filter, in that
/// order. Returns 0, or `(step << 16) | errno` of the first step that failed (see `STEPS`).
///
/// # Safety
/// `s` must point at a valid `SampleSetup` whose pointers are null or valid; the caller must
/// be a process that may lose every descriptor but those in `s.fds`.
#[no_mangle]
pub unsafe extern "C" fn brorl_sample_setup(s: *const SampleSetup) -> c_int {
    let s = &*s;
    let fail = |step: c_int| (step << 16) | errno();
    if !s.oom.is_null() {
        // The OOM killer takes samples first, never the template; best effort (a kernel
        // without the file still runs samples).
        let fd = libc::open(
            c"/proc/self/oom_score_adj".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        );
        if fd >= 0 {
            let text = CStr::from_ptr(s.oom).to_bytes();
            libc::write(fd, text.as_ptr() as *const c_void, text.len());
            libc::close(fd);
        }
    }
    if libc::chdir(s.cwd) != 0 {
        return fail(1);
    }
    let n = s.nfds.clamp(0, 8) as usize;
    let mut high = [0 as c_int; 8];
    for (slot, fd) in high.iter_mut().zip(&s.fds).take(n) {
        // Above every target first, so placing one cannot clobber another still to be placed.
        *slot = libc::fcntl(*fd as c_int, libc::F_DUPFD, 64 + n as c_int);
        if *slot < 0 {
            return fail(2);
        }
    }
    let mut top = s.top_fd as c_int;
    for (i, fd) in high.iter().enumerate().take(n) {
        if libc::dup2(*fd, i as c_int) < 0 {
            return fail(3);
        }
        top = top.max(*fd).max(s.fds[i] as c_int);
    }
    if libc::syscall(SYS_CLOSE_RANGE, n as u32, u32::MAX, 0u32) != 0 {
        for fd in n as c_int..=top {
            libc::close(fd);
        }
    }
    for [res, soft, hard] in s.rlimits {
        if res < 0 {
            break;
        }
        let lim = libc::rlimit {
            rlim_cur: soft as libc::rlim_t,
            rlim_max: hard as libc::rlim_t,
        };
        if libc::setrlimit(res as _, &lim) != 0 {
            return fail(5);
        }
    }
    if s.uid >= 0 {
        let id = s.uid as libc::uid_t;
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setresgid(id, id, id) != 0
            || libc::setresuid(id, id, id) != 0
        {
            return fail(6);
        }
    } else if s.userns != 0 {
        // Root only inside our own user namespace: drop every capability and lock root's
        // special treatment out (NOROOT, NO_SETUID_FIXUP, both locked), so not even an exec
        // brings them back.
        if libc::prctl(libc::PR_SET_SECUREBITS, 0x2f as libc::c_ulong, 0, 0, 0) != 0 {
            return fail(7);
        }
        for cap in 0..64 {
            if libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) != 0 {
                break; // past the last capability this kernel knows
            }
        }
        let header: [u32; 2] = [0x2008_0522, 0]; // _LINUX_CAPABILITY_VERSION_3, this process
        let data = [0u32; 6];
        if libc::syscall(libc::SYS_capset, header.as_ptr(), data.as_ptr()) != 0 {
            return fail(7);
        }
    }
    if s.nondumpable != 0 {
        libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong, 0, 0, 0);
    }
    libc::umask(s.umask as libc::mode_t);
    if !s.filter.is_null()
        && libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            s.filter as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        ) != 0
    {
        return fail(8);
    }
    0
}

/// The shared library this code was loaded from, when it is one (brorl's Python extension);
/// `None` inside an executable (Rust's test binaries), which the template cannot load.
pub fn library_path() -> Option<PathBuf> {
    // SAFETY: a zeroed Dl_info is a valid out-parameter.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let addr = brorl_sample_setup as *const c_void;
    // SAFETY: dladdr only reads the loader's tables; `info` is a valid out-parameter.
    if unsafe { libc::dladdr(addr, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr returned a NUL-terminated path owned by the loader.
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    let path = std::fs::canonicalize(std::ffi::OsStr::from_bytes(name.to_bytes())).ok()?;
    let exe = std::env::current_exe().and_then(std::fs::canonicalize).ok();
    (Some(&path) != exe.as_ref() && path.is_file()).then_some(path)
}
