//! The process envelope of a code worker, built between fork and exec with raw syscalls.
//!
//! With namespaces (root, or an unprivileged user where the kernel allows user namespaces)
//! the worker becomes pid 1 of a new pid namespace (so every process a sample starts dies
//! with it and `kill(-1)` from the worker reaches exactly the samples), gets an empty
//! network namespace, and sees a read-only root with fresh private `/tmp`, `/dev/shm` and
//! `/proc`. Without namespaces ("basic") the seccomp filter also denies network sockets. In
//! both cases: a seccomp filter against syscalls that only widen the kernel surface (new
//! namespaces, mounts, ptrace, bpf, io_uring, ...; see `seccomp`), its own session and process
//! group, `PR_SET_NO_NEW_PRIVS`, no core dumps, a
//! bounded number of open files, an empty environment, all inherited descriptors closed, and
//! (when started as root) an unprivileged uid/gid with no supplementary groups.
//!
//! The child between clone and exec may not allocate (another thread of the parent may hold
//! the allocator lock), so everything it needs is prepared here first and it only issues
//! syscalls; uid/gid changes use raw syscalls because glibc's wrappers would try to
//! synchronise threads that do not exist in the child.

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use libc::{c_char, c_ulong, c_void};

use super::seccomp;

const SYS_CLOSE_RANGE: libc::c_long = 436; // same number on every architecture
const SYS_MOUNT_SETATTR: libc::c_long = 442;
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 4;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;

/// How a worker is contained.
#[derive(Clone, Debug)]
pub struct EnvelopeSpec {
    /// argv[0] is the interpreter path that is executed.
    pub argv: Vec<String>,
    /// New pid, mount, network and IPC namespaces.
    pub namespaces: bool,
    /// Also a new user namespace (needed for the others when not root).
    pub user_namespace: bool,
    /// Become this uid (= gid) before exec; only possible when root.
    pub drop_to: Option<u32>,
    /// Directories the interpreter needs that `drop_to` could not reach (e.g. a Python under
    /// `/root`): re-mounted, read-only, under a traversable tmpfs inside the mount namespace.
    pub expose: Vec<PathBuf>,
    /// Size of the private `/tmp` (the samples' working directories live there).
    pub tmpfs_mb: u64,
    /// Also deny network sockets in the seccomp filter (when there is no network namespace).
    pub deny_sockets: bool,
    /// RLIMIT_NOFILE of the worker.
    pub nofile: u64,
}

/// A started worker: its pid (pid 1 of its namespace seen from inside) and its two pipes.
#[derive(Debug)]
pub struct Envelope {
    pub pid: libc::pid_t,
    pub requests: OwnedFd,
    pub responses: OwnedFd,
}

/// Setting up the envelope failed at `step` with `errno`.
#[derive(Debug, Clone)]
pub struct SpawnError {
    pub step: String,
    pub errno: i32,
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let msg = std::io::Error::from_raw_os_error(self.errno);
        write!(f, "sandbox setup failed at {}: {msg}", self.step)
    }
}

enum Op {
    Write {
        path: CString,
        data: Vec<u8>,
    },
    Mount {
        src: CString,
        target: CString,
        fstype: CString,
        flags: c_ulong,
        data: CString,
    },
    Mkdir {
        path: CString,
    },
    Rmdir {
        path: CString,
    },
    Proc,
    ReadOnlyRoot,
}

struct Step {
    name: String,
    op: Op,
    optional: bool,
}

fn cstr(s: impl AsRef<[u8]>) -> CString {
    CString::new(s.as_ref().to_vec()).expect("no interior NUL in sandbox paths")
}

fn mount(src: &str, target: &Path, fstype: &str, flags: c_ulong, data: &str) -> Op {
    Op::Mount {
        src: cstr(src),
        target: cstr(target.as_os_str().as_bytes()),
        fstype: cstr(fstype),
        flags,
        data: cstr(data),
    }
}

/// The first ancestor of `path` that other users cannot traverse, if any.
fn blocked_ancestor(path: &Path) -> Option<PathBuf> {
    let mut cur = PathBuf::from("/");
    for comp in path.components().skip(1) {
        let mode = std::fs::metadata(&cur).ok()?.permissions().mode();
        if mode & 0o001 == 0 {
            return Some(cur);
        }
        cur.push(comp);
    }
    None
}

fn exposure_steps(expose: &[PathBuf]) -> Vec<Step> {
    let mut paths: Vec<PathBuf> = expose
        .iter()
        .filter_map(|p| p.canonicalize().ok())
        .collect();
    paths.sort();
    paths.dedup();
    let snapshot = paths.clone();
    paths.retain(|p| !snapshot.iter().any(|q| q != p && p.starts_with(q)));
    let planned: Vec<(PathBuf, PathBuf)> = paths
        .into_iter()
        .filter_map(|p| blocked_ancestor(&p).map(|a| (p, a)))
        .collect();
    let mut steps = Vec::new();
    let step = |name: String, op: Op| Step {
        name,
        op,
        optional: false,
    };
    for (i, (p, _)) in planned.iter().enumerate() {
        let stage = PathBuf::from(format!("/tmp/.brorl-expose-{i}"));
        steps.push(step(
            format!("mkdir {}", stage.display()),
            Op::Mkdir {
                path: cstr(stage.as_os_str().as_bytes()),
            },
        ));
        steps.push(step(
            format!("bind {}", p.display()),
            Op::Mount {
                src: cstr(p.as_os_str().as_bytes()),
                target: cstr(stage.as_os_str().as_bytes()),
                fstype: cstr(""),
                flags: libc::MS_BIND | libc::MS_REC,
                data: cstr(""),
            },
        ));
    }
    let mut covers: Vec<&PathBuf> = planned.iter().map(|(_, a)| a).collect();
    covers.sort();
    covers.dedup();
    for a in covers {
        steps.push(step(
            format!("tmpfs over {}", a.display()),
            mount(
                "tmpfs",
                a,
                "tmpfs",
                libc::MS_NOSUID | libc::MS_NODEV,
                "size=1m,mode=755",
            ),
        ));
    }
    for (i, (p, a)) in planned.iter().enumerate() {
        let mut dir = a.clone();
        for comp in p.strip_prefix(a).expect("ancestor").components() {
            dir.push(comp);
            steps.push(step(
                format!("mkdir {}", dir.display()),
                Op::Mkdir {
                    path: cstr(dir.as_os_str().as_bytes()),
                },
            ));
        }
        let stage = format!("/tmp/.brorl-expose-{i}");
        steps.push(step(
            format!("move {}", p.display()),
            Op::Mount {
                src: cstr(&stage),
                target: cstr(p.as_os_str().as_bytes()),
                fstype: cstr(""),
                flags: libc::MS_MOVE,
                data: cstr(""),
            },
        ));
        steps.push(step(
            format!("rmdir {stage}"),
            Op::Rmdir { path: cstr(&stage) },
        ));
    }
    steps
}

fn plan(spec: &EnvelopeSpec) -> Vec<Step> {
    let mut steps = Vec::new();
    let step = |name: &str, op: Op| Step {
        name: name.to_string(),
        op,
        optional: false,
    };
    if spec.user_namespace {
        // SAFETY: plain getters without side effects.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        steps.push(step(
            "setgroups deny",
            Op::Write {
                path: cstr("/proc/self/setgroups"),
                data: b"deny".to_vec(),
            },
        ));
        steps.push(step(
            "uid_map",
            Op::Write {
                path: cstr("/proc/self/uid_map"),
                data: format!("{uid} {uid} 1\n").into_bytes(),
            },
        ));
        steps.push(step(
            "gid_map",
            Op::Write {
                path: cstr("/proc/self/gid_map"),
                data: format!("{gid} {gid} 1\n").into_bytes(),
            },
        ));
    }
    if !spec.namespaces {
        return steps;
    }
    let tmp = format!("size={}m,nr_inodes=16384,mode=1777", spec.tmpfs_mb);
    let private = libc::MS_REC | libc::MS_PRIVATE;
    steps.push(step(
        "make / private",
        Op::Mount {
            src: cstr(""),
            target: cstr("/"),
            fstype: cstr(""),
            flags: private,
            data: cstr(""),
        },
    ));
    let nosuid = libc::MS_NOSUID | libc::MS_NODEV;
    steps.push(step(
        "stage tmpfs",
        mount("tmpfs", Path::new("/tmp"), "tmpfs", nosuid, &tmp),
    ));
    if spec.drop_to.is_some() {
        steps.extend(exposure_steps(&spec.expose));
    }
    steps.push(step("mount /proc", Op::Proc));
    steps.push(step("read-only /", Op::ReadOnlyRoot));
    steps.push(step(
        "private /tmp",
        mount("tmpfs", Path::new("/tmp"), "tmpfs", nosuid, &tmp),
    ));
    if Path::new("/dev/shm").is_dir() {
        let shm = mount(
            "tmpfs",
            Path::new("/dev/shm"),
            "tmpfs",
            nosuid,
            "size=16m,nr_inodes=4096,mode=1777",
        );
        steps.push(Step {
            name: "private /dev/shm".into(),
            op: shm,
            optional: true,
        });
    }
    steps
}

fn nullable(s: &CString) -> *const c_char {
    if s.as_bytes().is_empty() {
        std::ptr::null()
    } else {
        s.as_ptr()
    }
}

/// errno of the last failed call, without allocating.
fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Runs one step in the child; async-signal-safe.
unsafe fn run_op(op: &Op) -> Result<(), i32> {
    let ok = |rc: libc::c_long| if rc == 0 { Ok(()) } else { Err(errno()) };
    match op {
        Op::Write { path, data } => {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(errno());
            }
            let n = libc::write(fd, data.as_ptr() as *const c_void, data.len());
            let e = errno();
            libc::close(fd);
            if n == data.len() as isize {
                Ok(())
            } else {
                Err(e)
            }
        }
        Op::Mount {
            src,
            target,
            fstype,
            flags,
            data,
        } => ok(libc::mount(
            nullable(src),
            target.as_ptr(),
            nullable(fstype),
            *flags,
            nullable(data) as *const c_void,
        ) as libc::c_long),
        Op::Mkdir { path } => {
            if libc::mkdir(path.as_ptr(), 0o755) == 0 || errno() == libc::EEXIST {
                Ok(())
            } else {
                Err(errno())
            }
        }
        Op::Rmdir { path } => ok(libc::rmdir(path.as_ptr()) as libc::c_long),
        Op::Proc => {
            let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
            let proc_ = c"/proc".as_ptr();
            if libc::mount(
                c"proc".as_ptr(),
                proc_,
                c"proc".as_ptr(),
                flags,
                std::ptr::null(),
            ) == 0
            {
                return Ok(());
            }
            // The kernel refuses a fresh procfs here (e.g. parts of /proc are masked): hide the
            // host's instead, so samples cannot read other processes' environments.
            let data = c"size=4k,mode=555".as_ptr() as *const c_void;
            ok(
                libc::mount(c"tmpfs".as_ptr(), proc_, c"tmpfs".as_ptr(), flags, data)
                    as libc::c_long,
            )
        }
        Op::ReadOnlyRoot => {
            // struct mount_attr { attr_set, attr_clr, propagation, userns_fd }
            let attr: [u64; 4] = [MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, 0, 0];
            let rc = libc::syscall(
                SYS_MOUNT_SETATTR,
                libc::AT_FDCWD,
                c"/".as_ptr(),
                AT_RECURSIVE,
                attr.as_ptr(),
                std::mem::size_of_val(&attr),
            );
            if rc == 0 {
                return Ok(());
            }
            // Older kernels: at least the root mount itself becomes read-only.
            let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID;
            ok(libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                flags,
                std::ptr::null(),
            ) as libc::c_long)
        }
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A copy of `fd` numbered 10 or above, so the child's dup2 onto 0/1 cannot clobber it.
fn high(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    // SAFETY: duplicating a valid fd.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fresh fd from fcntl.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

fn spawn_error(step: &str, e: std::io::Error) -> SpawnError {
    SpawnError {
        step: step.to_string(),
        errno: e.raw_os_error().unwrap_or(libc::EIO),
    }
}

/// Starts `spec.argv` inside the envelope. Returns once the interpreter has been exec'd (or
/// with the step that failed).
pub fn spawn(spec: &EnvelopeSpec) -> Result<Envelope, SpawnError> {
    use std::os::fd::AsRawFd;
    let steps = plan(spec);
    let argv_c: Vec<CString> = spec.argv.iter().map(cstr).collect();
    let mut argv: Vec<*const c_char> = argv_c.iter().map(|s| s.as_ptr()).collect();
    argv.push(std::ptr::null());
    let envp: [*const c_char; 1] = [std::ptr::null()];
    // The hardening filter is skipped on an architecture without syscall tables, unless it
    // is the only thing keeping the network out.
    let filter = match seccomp::program(spec.deny_sockets) {
        None if spec.deny_sockets => {
            return Err(SpawnError {
                step: "seccomp (unsupported architecture)".into(),
                errno: libc::ENOSYS,
            })
        }
        filter => filter,
    };
    let nofile = libc::rlimit {
        rlim_cur: spec.nofile,
        rlim_max: spec.nofile,
    };
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };

    let (req_r, req_w) = pipe().map_err(|e| spawn_error("pipe", e))?;
    let (resp_r, resp_w) = pipe().map_err(|e| spawn_error("pipe", e))?;
    let (err_r, err_w) = pipe().map_err(|e| spawn_error("pipe", e))?;
    let req_r = high(req_r).map_err(|e| spawn_error("dup", e))?;
    let resp_w = high(resp_w).map_err(|e| spawn_error("dup", e))?;
    let (child_in, child_out, err_fd) = (req_r.as_raw_fd(), resp_w.as_raw_fd(), err_w.as_raw_fd());

    let mut flags = libc::SIGCHLD as c_ulong;
    if spec.namespaces {
        flags |= (libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWNET | libc::CLONE_NEWIPC)
            as c_ulong;
    }
    if spec.user_namespace {
        flags |= libc::CLONE_NEWUSER as c_ulong;
    }
    // SAFETY: a fork-like clone (no new stack: the child continues on a copy of this one).
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    if pid < 0 {
        return Err(SpawnError {
            step: "clone".into(),
            errno: errno(),
        });
    }
    if pid == 0 {
        // Child: only syscalls from here on. Report (step, errno) on the error pipe and exit.
        unsafe {
            let fail = |step: usize, e: i32| -> ! {
                let msg: [i32; 2] = [step as i32, e];
                libc::write(err_fd, msg.as_ptr() as *const c_void, 8);
                libc::_exit(127)
            };
            for (i, s) in steps.iter().enumerate() {
                if let Err(e) = run_op(&s.op) {
                    if !s.optional {
                        fail(i, e);
                    }
                }
            }
            let base = steps.len();
            if libc::setsid() < 0 {
                fail(base, errno());
            }
            if libc::setrlimit(libc::RLIMIT_NOFILE, &nofile) != 0
                || libc::setrlimit(libc::RLIMIT_CORE, &no_core) != 0
            {
                fail(base + 1, errno());
            }
            if libc::dup2(child_in, 0) < 0 || libc::dup2(child_out, 1) < 0 {
                fail(base + 2, errno());
            }
            if libc::syscall(SYS_CLOSE_RANGE, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) != 0 {
                for fd in 3..spec.nofile.min(65536) as i32 {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            if libc::chdir(c"/".as_ptr()) != 0 {
                fail(base + 3, errno());
            }
            if libc::prctl(
                libc::PR_SET_NO_NEW_PRIVS,
                1 as c_ulong,
                0 as c_ulong,
                0 as c_ulong,
                0 as c_ulong,
            ) != 0
            {
                fail(base + 4, errno());
            }
            if let Some(id) = spec.drop_to {
                if libc::syscall(libc::SYS_setgroups, 0usize, 0usize) != 0
                    || libc::syscall(libc::SYS_setresgid, id, id, id) != 0
                    || libc::syscall(libc::SYS_setresuid, id, id, id) != 0
                {
                    fail(base + 5, errno());
                }
            }
            if let Some(f) = &filter {
                if let Err(e) = seccomp::install(f) {
                    fail(base + 6, e);
                }
            }
            libc::execve(argv[0], argv.as_ptr(), envp.as_ptr());
            fail(base + 7, errno());
        }
    }
    let pid = pid as libc::pid_t;
    drop((req_r, resp_w, err_w));
    let mut msg = [0u8; 8];
    let mut got = 0;
    while got < 8 {
        // SAFETY: reading into the owned buffer from our end of the error pipe.
        let n = unsafe {
            libc::read(
                err_r.as_raw_fd(),
                msg[got..].as_mut_ptr() as *mut c_void,
                8 - got,
            )
        };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        got += n as usize;
    }
    if got == 8 {
        let step = i32::from_ne_bytes(msg[..4].try_into().unwrap()) as usize;
        let e = i32::from_ne_bytes(msg[4..].try_into().unwrap());
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let tail = [
            "setsid",
            "rlimits",
            "dup2",
            "chdir",
            "no_new_privs",
            "drop uid",
            "seccomp",
            "exec",
        ];
        let name = match steps.get(step) {
            Some(s) => s.name.clone(),
            None => tail.get(step - steps.len()).unwrap_or(&"?").to_string(),
        };
        return Err(SpawnError {
            step: name,
            errno: e,
        });
    }
    Ok(Envelope {
        pid,
        requests: req_w,
        responses: resp_r,
    })
}

/// Kills a worker and everything it started, and reaps it. With namespaces, killing pid 1 of
/// the namespace kills every process in it; otherwise the worker's process group goes.
pub fn kill(env: &Envelope, namespaces: bool) {
    // SAFETY: signalling and reaping our own child (and, without namespaces, its group).
    unsafe {
        if !namespaces {
            libc::killpg(env.pid, libc::SIGKILL);
        }
        libc::kill(env.pid, libc::SIGKILL);
        let mut status = 0;
        libc::waitpid(env.pid, &mut status, 0);
    }
}
