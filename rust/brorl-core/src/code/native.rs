//! The template's per-run work in native code, called by the template (`py/template.py`)
//! through ctypes from this very library, which brorl binds read-only into the sandbox:
//! `brorl_sample_setup`, the set-up of one forked sample process, and `brorl_serve`, the
//! template's whole command loop (receive, IPC namespace, tmpfs, forks, wait, reap, reply)
//! when the template is pid 1 of its own namespaces.
//!
//! Why: a fork of the template pays for every page its set-up writes (copy-on-write of the
//! reference counts of each Python object it touches) and for the interpreter's work. Done in
//! Python and ctypes, the set-up cost a forked process about 0.7 ms of CPU and 200 page
//! copies; done here, in one call, about 0.05 ms. Likewise the template itself: its Python
//! loop wrote about 220 pages per run, each copied while a sample lived or faulted again
//! after (write-protected by the fork); `brorl_serve` writes about 40. Without this library
//! (Rust's own tests, where brorl-core is part of an executable that cannot be loaded) the
//! template runs the same steps in Python.

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

/// One run of the template: its processes' set-ups, with the results written back.
#[repr(C)]
pub struct RunPlan {
    /// How many of `setups` there are; one process is forked for each, in order.
    pub nprocs: i64,
    pub setups: [*const SampleSetup; 4],
    /// The process whose exit ends the run.
    pub main: i64,
    /// Wall-clock limit on `main` in milliseconds.
    pub wall_ms: i64,
    /// Non-zero: move into a new IPC namespace first (the previous run's SysV objects are
    /// freed with its processes).
    pub unshare_ipc: i64,
    /// Mount options of the run's fresh /tmp (NUL-terminated), or null for no per-run tmpfs.
    pub tmp_opts: *const c_char,
    /// Out: the wait status of each process (-1 if it was never forked).
    pub wstatus: [i64; 4],
    /// Out: non-zero when `main` was still running at `wall_ms`.
    pub timed_out: i64,
    /// Out: nanoseconds from the first fork until `main` exited or timed out.
    pub elapsed_ns: i64,
    /// Out: 0, or `(step << 16) | errno` of the first step that failed (see `RUN_STEPS`).
    pub error: i64,
    /// `/proc/sys/kernel/ns_last_pid` (see `sandbox::LAST_PID_FD`), or -1.
    pub last_pid_fd: i64,
}

/// The steps of a run (`run`), numbered as in `RunPlan::error`.
pub const RUN_STEPS: [&str; 7] = [
    "",
    "unshare",
    "mount",
    "fork",
    "pidfd_open",
    "poll",
    "umount",
];

fn monotonic_ns() -> i64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-parameter.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec * 1_000_000_000 + t.tv_nsec
}

/// The template's whole run in native code: IPC namespace, fresh /tmp and /dev/shm, one fork
/// per process (each set up by `brorl_sample_setup`), the wall-clock wait on `main`, then
/// every process of the namespace killed and reaped and the tmpfs mounts detached.
///
/// Returns `i` in the forked process `i` (set up, ready for its harness), and -1 in the
/// template once the run is over (results and any error in `p`). A process whose set-up fails
/// exits with status 121.
///
/// Why native: after the first fork every page the template writes is copied while a sample
/// lives, and after the samples exit each page it writes faults once more (the fork left it
/// write-protected). The Python version of these steps wrote about 200 pages per run.
///
/// # Safety
/// `p.setups` must be valid (see `brorl_sample_setup`); see `brorl_serve` for the caller.
unsafe fn run(p: &mut RunPlan) -> c_int {
    let fail = |step: i64| (step << 16) | errno() as i64;
    let n = p.nprocs.clamp(0, 4) as usize;
    p.wstatus = [-1; 4];
    p.timed_out = 0;
    p.elapsed_ns = 0;
    p.error = 0;
    let close_fds = |p: &RunPlan| {
        // Our copies of the descriptors: the socket between the two processes must see EOF.
        for &s in p.setups.iter().take(n) {
            let s = &*s;
            for &fd in s.fds.iter().take(s.nfds.clamp(0, 8) as usize) {
                libc::close(fd as c_int);
            }
        }
    };
    if p.unshare_ipc != 0 && libc::unshare(libc::CLONE_NEWIPC) != 0 {
        p.error = fail(1);
        close_fds(p);
        return -1;
    }
    let tmp = !p.tmp_opts.is_null();
    if tmp {
        let flags = (libc::MS_NOSUID | libc::MS_NODEV) as libc::c_ulong;
        let tmpfs = c"tmpfs".as_ptr();
        if libc::mount(
            tmpfs,
            c"/tmp".as_ptr(),
            tmpfs,
            flags,
            p.tmp_opts as *const c_void,
        ) != 0
            || libc::mount(
                tmpfs,
                c"/dev/shm".as_ptr(),
                tmpfs,
                flags,
                c"size=16m,nr_inodes=4096,mode=1777".as_ptr() as *const c_void,
            ) != 0
        {
            p.error = fail(2);
            close_fds(p);
            return -1;
        }
    }
    if p.last_pid_fd >= 0 {
        // Every run's processes get the same pids (2, 3, ...): the pid counter of our namespace
        // would otherwise carry how many processes the previous sample made. All of them were
        // reaped, so the pids after 1 are free. Best effort, like its descriptor.
        libc::pwrite(p.last_pid_fd as c_int, b"1".as_ptr() as *const c_void, 1, 0);
    }
    let start = monotonic_ns();
    let mut pids: [libc::pid_t; 4] = [0; 4];
    for (i, pid) in pids.iter_mut().enumerate().take(n) {
        // glibc's fork: its own at-fork work (malloc's locks) runs, so the child's allocator
        // is consistent.
        let child = libc::fork();
        if child == 0 {
            if brorl_sample_setup(p.setups[i]) != 0 {
                libc::_exit(121);
            }
            return i as c_int;
        }
        if child < 0 {
            p.error = fail(3);
            break;
        }
        *pid = child;
    }
    close_fds(p);
    let main = pids[p.main.clamp(0, 3) as usize];
    if p.error == 0 && main > 0 {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, main, 0) as c_int;
        if pidfd < 0 {
            p.error = fail(4);
        } else {
            let deadline = monotonic_ns() + p.wall_ms.max(1) * 1_000_000;
            loop {
                let left_ms = (deadline - monotonic_ns() + 999_999) / 1_000_000;
                let mut pfd = libc::pollfd {
                    fd: pidfd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                let r = libc::poll(&mut pfd, 1, left_ms.clamp(0, i32::MAX as i64) as c_int);
                if r < 0 && errno() == libc::EINTR {
                    continue;
                }
                if r < 0 {
                    p.error = fail(5);
                }
                p.timed_out = (r == 0) as i64;
                break;
            }
            libc::close(pidfd);
        }
    }
    p.elapsed_ns = monotonic_ns() - start;
    loop {
        // pid 1 of our namespace: reaches every process in it, whatever its group or session.
        libc::kill(-1, libc::SIGKILL);
        let mut status: c_int = 0;
        let pid = libc::waitpid(-1, &mut status, 0);
        if pid < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            break; // ECHILD: all gone
        }
        for (i, &q) in pids.iter().enumerate().take(n) {
            if q == pid {
                p.wstatus[i] = status as i64;
            }
        }
    }
    if tmp {
        // Whatever a sample left there goes with the mounts, with nothing to walk or delete.
        for path in [c"/dev/shm", c"/tmp"] {
            if libc::umount2(path.as_ptr(), libc::MNT_DETACH) != 0 && p.error == 0 {
                p.error = fail(6);
            }
        }
    }
    -1
}

/// What the template tells `brorl_serve` once (only 8-byte fields, mirrored in ctypes).
#[repr(C)]
pub struct ServeConfig {
    /// The command socket (SOCK_SEQPACKET): one JSON header plus descriptors per run.
    pub sock: i64,
    /// The uid of the test process and of every other role (started by root), or -1.
    pub uid_check: i64,
    pub uid_cand: i64,
    /// Root of a user namespace only (see `SampleSetup::userns`).
    pub userns: i64,
    /// The highest descriptor the template held before its first command.
    pub top_fd: i64,
    /// The seccomp filter each sample adds (`struct sock_fprog`), or null.
    pub filter: *const c_void,
    /// `/proc/sys/kernel/ns_last_pid` (see `sandbox::LAST_PID_FD`), or -1.
    pub last_pid_fd: i64,
}

/// The roles, in the order of `brorl_serve`'s return value (the harnesses of `py/`).
pub const ROLES: [&str; 4] = ["check", "cand", "call", "stdio"];

const MAX_FDS: usize = 64;

/// Receives one command: its bytes (into `buf`) and descriptors. `Ok(None)` at end of file.
unsafe fn recv_command(
    sock: c_int,
    buf: &mut [u8],
) -> std::io::Result<Option<(usize, Vec<c_int>)>> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut c_void,
        iov_len: buf.len(),
    };
    let space = libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<c_int>()) as u32) as usize;
    let mut control = [0u64; 64]; // 512 bytes, 8-aligned, above `space`
    debug_assert!(space <= std::mem::size_of_val(&control));
    let mut msg: libc::msghdr = std::mem::zeroed();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut c_void;
    msg.msg_controllen = space as _;
    let n = loop {
        let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n >= 0 || errno() != libc::EINTR {
            break n;
        }
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    let mut c = libc::CMSG_FIRSTHDR(&msg);
    while !c.is_null() {
        if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
            let data = libc::CMSG_DATA(c) as *const c_int;
            let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                / std::mem::size_of::<c_int>();
            for i in 0..count {
                fds.push(std::ptr::read_unaligned(data.add(i)));
            }
        }
        c = libc::CMSG_NXTHDR(&msg, c);
    }
    if n == 0 && fds.is_empty() {
        return Ok(None);
    }
    if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
        for fd in fds {
            libc::close(fd);
        }
        return Err(std::io::Error::other("command truncated"));
    }
    Ok(Some((n as usize, fds)))
}

/// What became of one command.
enum Outcome {
    /// In the forked process that must run the harness `ROLES[i]`.
    Child(usize),
    /// In the template: the reply.
    Reply(serde_json::Value),
    /// In the template: the command could not run (brorl replaces the worker).
    Failed(String),
}

/// The command's numbers (`run.rs` `run_procs`).
fn number(v: &serde_json::Value, key: &str) -> Result<i64, String> {
    v.get(key)
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| format!("ValueError: command: no integer {key:?}"))
}

/// A command that cannot run: its descriptors are closed (nothing else holds them).
unsafe fn failed(fds: &[c_int], why: String) -> Outcome {
    for &fd in fds {
        libc::close(fd);
    }
    Outcome::Failed(why)
}

/// The run of one command (`fds` in the order of its processes).
unsafe fn serve_one(cfg: &ServeConfig, cmd: &[u8], fds: &[c_int]) -> Outcome {
    let cmd: serde_json::Value = match serde_json::from_slice(cmd) {
        Ok(c) => c,
        Err(e) => return failed(fds, format!("ValueError: command: {e}")),
    };
    let procs = cmd.get("procs").and_then(serde_json::Value::as_array);
    let Some(procs) = procs.filter(|p| !p.is_empty() && p.len() <= 4) else {
        return failed(fds, "ValueError: command: bad process list".into());
    };
    let n = procs.len();
    let mut roles = [0usize; 4];
    let mut nfds = [0usize; 4];
    for (i, p) in procs.iter().enumerate() {
        let role = p
            .get("role")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        match ROLES.iter().position(|r| *r == role) {
            Some(r) => roles[i] = r,
            None => return failed(fds, format!("KeyError: role {role:?}")),
        }
        match number(p, "nfds") {
            Ok(k) if (0..=8).contains(&k) => nfds[i] = k as usize,
            _ => return failed(fds, "ValueError: command: bad nfds".into()),
        }
    }
    let main = cmd
        .get("main")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0) as usize;
    if nfds.iter().sum::<usize>() != fds.len() || main >= n {
        return failed(fds, "ValueError: command: descriptors do not match".into());
    }
    let (Some(wall), Some(l)) = (
        cmd.get("wall").and_then(serde_json::Value::as_f64),
        cmd.get("limits"),
    ) else {
        return failed(fds, "ValueError: command: no wall or limits".into());
    };
    let (fsize, nofile, nproc, tmpfs_mb) = match (
        number(l, "fsize"),
        number(l, "nofile"),
        number(l, "nproc"),
        number(&cmd, "tmpfs_mb"),
    ) {
        (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
        _ => return failed(fds, "ValueError: command: bad limits".into()),
    };
    let address_space = l.get("as").and_then(serde_json::Value::as_i64);
    let cpu = wall as i64 + 1;
    let mut rlimits = [[-1i64, 0, 0]; 6];
    let mut items = vec![
        [libc::RLIMIT_CORE as i64, 0, 0],
        [libc::RLIMIT_CPU as i64, cpu, cpu + 1],
        [libc::RLIMIT_FSIZE as i64, fsize, fsize],
        [libc::RLIMIT_NOFILE as i64, nofile, nofile],
        [libc::RLIMIT_NPROC as i64, nproc, nproc],
    ];
    if let Some(a) = address_space.filter(|&a| a != 0) {
        items.push([libc::RLIMIT_AS as i64, a, a]); // no memory cgroup: the per-process fallback
    }
    rlimits[..items.len()].copy_from_slice(&items);
    let top_fd = fds.iter().fold(cfg.top_fd, |t, &fd| t.max(fd as i64));
    let mut setups: Vec<SampleSetup> = Vec::with_capacity(n);
    let mut pos = 0;
    for (&k, &role) in nfds.iter().zip(&roles).take(n) {
        let check = role == 0;
        let mut s = SampleSetup {
            nfds: k as i64,
            fds: [0; 8],
            top_fd,
            uid: if check { cfg.uid_check } else { cfg.uid_cand },
            userns: 0,
            nondumpable: check as i64, // no /proc/<pid>/mem, fd, environ for anyone else
            umask: 0o077,
            rlimits,
            cwd: if check {
                c"/".as_ptr()
            } else {
                c"/tmp".as_ptr()
            },
            oom: if check {
                c"500".as_ptr()
            } else {
                c"1000".as_ptr()
            }, // samples go first
            filter: cfg.filter,
        };
        s.userns = (s.uid < 0 && cfg.userns != 0) as i64;
        for (slot, &fd) in s.fds.iter_mut().zip(&fds[pos..pos + k]) {
            *slot = fd as i64;
        }
        pos += k;
        setups.push(s);
    }
    let tmp_opts = std::ffi::CString::new(format!("size={tmpfs_mb}m,nr_inodes=16384,mode=1777"))
        .unwrap_or_default();
    let mut plan = RunPlan {
        nprocs: n as i64,
        setups: [std::ptr::null(); 4],
        main: main as i64,
        wall_ms: ((wall * 1000.0) as i64 + 1).max(1),
        unshare_ipc: 1,
        tmp_opts: if roles[..n].iter().any(|&r| r != 0) {
            tmp_opts.as_ptr()
        } else {
            std::ptr::null()
        },
        wstatus: [-1; 4],
        timed_out: 0,
        elapsed_ns: 0,
        error: 0,
        last_pid_fd: cfg.last_pid_fd,
    };
    for (slot, s) in plan.setups.iter_mut().zip(&setups) {
        *slot = s;
    }
    let i = run(&mut plan);
    if i >= 0 {
        return Outcome::Child(roles[i as usize]);
    }
    if plan.error != 0 {
        let e = (plan.error & 0xFFFF) as i32;
        let step = RUN_STEPS.get((plan.error >> 16) as usize).unwrap_or(&"?");
        return Outcome::Failed(format!(
            "OSError: run: {step}: {}",
            std::io::Error::from_raw_os_error(e)
        ));
    }
    let wstatus: Vec<serde_json::Value> = plan.wstatus[..n]
        .iter()
        .map(|&w| {
            if w < 0 {
                serde_json::Value::Null
            } else {
                w.into()
            }
        })
        .collect();
    Outcome::Reply(serde_json::json!({
        "wstatus": wstatus,
        "timed_out": plan.timed_out != 0,
        "elapsed": plan.elapsed_ns as f64 / 1e9,
    }))
}

/// The template's command loop in native code, for a template that is pid 1 of its own
/// namespaces: per command, the steps of `py/template.py`'s `run` (IPC namespace, fresh
/// /tmp and /dev/shm, one fork per process set up by `brorl_sample_setup`, the wall-clock
/// wait, every process killed and reaped, the mounts detached) and the JSON reply.
///
/// Returns, in a forked process, the index in `ROLES` of the harness it must run (already set
/// up); in the template, -1 once brorl closed the socket (or it failed).
///
/// Why: after a fork every page the template writes is copied while a sample lives, and once
/// the samples are gone each page it writes faults once more (the fork left it
/// write-protected). The Python loop wrote about 220 pages per run; this one writes a few.
///
/// # Safety
/// `cfg` must be valid, its filter null or a valid `sock_fprog`; the caller must be pid 1 of
/// its own pid namespace (`kill(-1)` reaches every process in it) with no other thread, and
/// must hold the interpreter lock across the call (ctypes.PyDLL), so that a forked process
/// resumes the interpreter as its only thread, holding the lock.
#[no_mangle]
pub unsafe extern "C" fn brorl_serve(cfg: *const ServeConfig) -> c_int {
    let cfg = &*cfg;
    let sock = cfg.sock as c_int;
    // No fast bins: the small blocks this loop frees are coalesced here and now, instead of
    // by the first large allocation of every forked process (glibc's malloc_consolidate walks
    // them all, copying each heap page it writes; 30% of a sample's page faults otherwise).
    libc::mallopt(libc::M_MXFAST, 0);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let (len, fds) = match recv_command(sock, &mut buf) {
            Ok(Some(c)) => c,
            Ok(None) | Err(_) => return -1,
        };
        let reply = match serve_one(cfg, &buf[..len], &fds) {
            Outcome::Child(role) => return role as c_int,
            Outcome::Reply(v) => v,
            Outcome::Failed(e) => serde_json::json!({ "internal_error": e }),
        };
        let body = reply.to_string();
        if libc::send(
            sock,
            body.as_ptr() as *const c_void,
            body.len(),
            libc::MSG_NOSIGNAL,
        ) < 0
        {
            return -1;
        }
    }
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
