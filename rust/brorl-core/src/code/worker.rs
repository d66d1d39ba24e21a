//! One warm worker: a template Python process inside its envelope (see `py/template.py`)
//! that forks the processes of each run, and the protocol to talk to it. brorl-core itself
//! is the relay: it writes each sample's job into memory files, hands the template only the
//! descriptors, and reads the outputs back once the run's processes are gone. The template
//! never reads or writes a sample's data, so a fork of it carries nothing from earlier
//! samples.

use std::ffi::CStr;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::cgroup::Cgroup;
use super::native;
use super::sandbox::{self, Envelope, EnvelopeSpec};
use super::seccomp;

/// The worker program: the template plus the codec and the harnesses, run with `python -c`.
pub const SCRIPT: &str = concat!(
    include_str!("py/template.py"),
    "\n",
    include_str!("py/codec.py"),
    "\n",
    include_str!("py/harness_common.py"),
    "\n",
    include_str!("py/harness_humaneval.py"),
    "\n",
    include_str!("py/harness_call.py"),
    "\n",
    include_str!("py/harness_stdio.py"),
    "\nmain()\n",
);

/// Unprivileged uids for samples started by root: one pair (candidate, test process) per
/// worker slot and parent process, so RLIMIT_NPROC (counted per uid) of one worker's samples
/// never starves another's, and a candidate cannot signal or inspect its test process.
const UID_BASE: u32 = 0x6000_0000;

pub fn sandbox_uid(slot: usize, check: bool) -> u32 {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u32;
    UID_BASE + ((pid & 0xFFFF) << 8) + ((slot as u32 & 0x7F) << 1) + u32::from(check)
}

/// Why a worker stopped answering.
#[derive(Debug)]
pub enum WorkerError {
    /// No answer before the deadline (the worker was killed).
    Timeout,
    /// The worker exited, sent garbage or reported an internal error (it was killed).
    Lost(String),
    /// The command could not even be sent (the worker died while idle).
    Unsent(String),
}

pub struct Worker {
    env: Envelope,
    namespaces: bool,
    workdir: Option<PathBuf>,
    pub slot: usize,
    /// What the worker reported at start-up (pid 1 or not, uid).
    pub ready: Value,
    pub cgroup: Option<Cgroup>,
    runs: u64,
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn wait_readable(fd: RawFd, deadline: Instant) -> Result<(), WorkerError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(WorkerError::Timeout);
        }
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n > 0 {
            return Ok(());
        }
        if n < 0 && errno() != libc::EINTR {
            return Err(WorkerError::Lost(format!("poll failed: errno {}", errno())));
        }
    }
}

/// Sends one message with `fds` attached (SCM_RIGHTS).
fn send_with_fds(sock: RawFd, data: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let payload = std::mem::size_of_val(fds) as u32;
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(payload) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    // SAFETY: a zeroed msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space as _;
        // SAFETY: the control buffer is CMSG_SPACE(payload) bytes, aligned, and we fill
        // exactly one header and its payload.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(payload) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr() as *const u8,
                libc::CMSG_DATA(cmsg),
                payload as usize,
            );
        }
    }
    // SAFETY: msg points at live buffers for the duration of the call.
    let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if n as usize != data.len() {
        return Err(std::io::Error::other("short send"));
    }
    Ok(())
}

/// A memory file (close-on-exec here; the template passes it on to a sample).
pub fn memfd(name: &CStr, sealable: bool) -> std::io::Result<File> {
    let mut flags = libc::MFD_CLOEXEC;
    if sealable {
        flags |= libc::MFD_ALLOW_SEALING;
    }
    // SAFETY: creating a new anonymous file.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor we own.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// A sealed, read-only memory file holding `data` (a job or a stdin): a sample cannot change
/// what a later run of the same sample reads.
pub fn sealed(name: &CStr, data: &[u8]) -> std::io::Result<File> {
    let f = memfd(name, true)?;
    f.write_all_at(data, 0)?;
    let seals = libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL;
    // SAFETY: sealing our own memfd.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(f)
}

/// The first `cap` bytes of a memory file, and whether it holds more.
pub fn read_capped(f: &File, cap: usize) -> (Vec<u8>, bool) {
    let size = f.metadata().map_or(0, |m| m.len()) as usize;
    let mut buf = vec![0u8; size.min(cap)];
    let mut got = 0;
    while got < buf.len() {
        match f.read_at(&mut buf[got..], got as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    buf.truncate(got);
    (buf, size > cap)
}

/// A connected pair of stream sockets (the channel between a test and its candidate).
pub fn stream_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fresh descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A private directory for the samples' working directories when there is no mount
/// namespace (with one, each sample mounts its own tmpfs `/tmp`).
fn basic_workdir(slot: usize, owner: Option<u32>) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("brorl-code-{}-{slot}-{n}", std::process::id()));
    std::fs::create_dir(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    if let Some(uid) = owner {
        std::os::unix::fs::chown(&dir, Some(uid), Some(uid))?;
    }
    Ok(dir)
}

/// Where the sandbox root has brorl's library and the environment's packages.
struct Layout {
    /// Bound at their own path.
    expose: Vec<PathBuf>,
    /// Bound elsewhere: `(host path, path in the sandbox)`.
    bind_at: Vec<(PathBuf, PathBuf)>,
    /// The package directories as samples see them (their `sys.path` additions).
    site: Vec<PathBuf>,
    /// brorl's library as the template sees it, if there is one.
    native: Option<PathBuf>,
}

/// Where brorl's own files go in a sandbox root: not under any host path a sample could
/// mistake for the host's, nor under `/tmp` or `/dev/shm`, which each run replaces.
const BRORL_DIR: &str = "/.brorl";

/// Whether a sample's fresh `/tmp` or `/dev/shm` would hide `p`.
fn hidden_by_run_tmpfs(p: &std::path::Path) -> bool {
    p.starts_with("/tmp") || p.starts_with("/dev/shm")
}

impl Layout {
    fn new(namespaces: bool, site: &[PathBuf], native: Option<PathBuf>) -> Layout {
        let mut out = Layout {
            expose: Vec::new(),
            bind_at: Vec::new(),
            site: Vec::new(),
            native: None,
        };
        for (i, dir) in site.iter().enumerate() {
            if namespaces && hidden_by_run_tmpfs(dir) {
                // A virtual environment under /tmp: its packages are bound read-only at a
                // neutral path instead, so samples still import them from their own /tmp.
                let at = PathBuf::from(format!("{BRORL_DIR}/site/{i}"));
                out.bind_at.push((dir.clone(), at.clone()));
                out.site.push(at);
            } else {
                out.expose.push(dir.clone());
                out.site.push(dir.clone());
            }
        }
        if let Some(lib) = native {
            if namespaces {
                let at = PathBuf::from(format!("{BRORL_DIR}/native.so"));
                out.bind_at.push((lib, at.clone()));
                out.native = Some(at);
            } else {
                out.native = Some(lib);
            }
        }
        out
    }
}

/// How to start a worker.
pub struct WorkerSpec<'a> {
    pub python: &'a str,
    pub namespaces: bool,
    pub expose: &'a [PathBuf],
    pub site: &'a [PathBuf],
    pub slot: usize,
}

impl Worker {
    /// Starts a worker in `spec.slot` and waits for its ready message.
    pub fn start(spec: &WorkerSpec<'_>) -> Result<Worker, String> {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let (namespaces, slot, python) = (spec.namespaces, spec.slot, spec.python);
        let uids = if root {
            let (cand, check) = (sandbox_uid(slot, false), sandbox_uid(slot, true));
            json!({"cand": cand, "call": cand, "stdio": cand, "check": check})
        } else {
            json!({})
        };
        let workdir = if namespaces {
            None
        } else {
            let owner = root.then(|| sandbox_uid(slot, false));
            Some(basic_workdir(slot, owner).map_err(|e| format!("work directory: {e}"))?)
        };
        // With namespaces the template runs under the template profile and each sample adds
        // the short rest of the sample profile; without, the template already runs under the
        // sample profile, which its forks inherit.
        let filter = if namespaces {
            seccomp::sample_on_template()
                .map(|p| seccomp::to_hex(&p))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let layout = Layout::new(namespaces, spec.site, native::library_path());
        let cfg = json!({
            "ns": namespaces,
            "userns": namespaces && !root,
            "uids": uids,
            "filter": filter,
            "site": layout.site,
            "native": layout.native,
            "workdir": workdir,
            "sys_capset": seccomp::SYS_CAPSET,
            "last_pid_fd": if namespaces { sandbox::LAST_PID_FD } else { -1 },
        });
        let mut expose = spec.expose.to_vec();
        expose.extend(layout.expose);
        let env_spec = EnvelopeSpec {
            argv: vec![
                python.to_string(),
                "-I".into(),
                // No `site`: the base interpreter's .pth files would run (and import) whatever
                // they hold in every template; the environment's package directories are added
                // by the template itself, and so are `exit`/`quit`.
                "-S".into(),
                "-B".into(),
                "-X".into(),
                "utf8".into(),
                "-c".into(),
                SCRIPT.into(),
                cfg.to_string(),
            ],
            namespaces,
            user_namespace: namespaces && !root,
            expose,
            bind_at: layout.bind_at,
            // Network sockets are denied with namespaces too: the worker's network namespace
            // outlives each sample, and its IP statistics passed a number to the next one.
            deny_sockets: true,
            nofile: 1024,
        };
        let env = sandbox::spawn(&env_spec).map_err(|e| {
            if let Some(dir) = &workdir {
                let _ = std::fs::remove_dir_all(dir);
            }
            format!("{e} (python {python:?})")
        })?;
        let cgroup = Cgroup::create(&slot.to_string()).filter(|cg| cg.add(env.pid).is_ok());
        let mut w = Worker {
            env,
            namespaces,
            workdir,
            slot,
            ready: Value::Null,
            cgroup,
            runs: 0,
        };
        match w.recv(Instant::now() + Duration::from_secs(60)) {
            Ok(v) if v.get("ready").is_some() => {
                w.ready = v;
                if let Some(cg) = w.cgroup.as_mut() {
                    cg.settle();
                }
                Ok(w)
            }
            Ok(v) => Err(format!("worker sent {v} instead of ready")),
            Err(e) => Err(format!("worker did not start: {e:?} (python {python:?})")),
        }
    }

    pub fn pid(&self) -> libc::pid_t {
        self.env.pid
    }

    pub fn namespaces(&self) -> bool {
        self.namespaces
    }

    fn recv(&mut self, deadline: Instant) -> Result<Value, WorkerError> {
        let fd = self.env.socket.as_raw_fd();
        wait_readable(fd, deadline)?;
        let mut buf = vec![0u8; 1 << 16];
        // SAFETY: receiving into our buffer.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
        if n <= 0 {
            return Err(WorkerError::Lost("worker exited".into()));
        }
        buf.truncate(n as usize);
        serde_json::from_slice(&buf).map_err(|e| WorkerError::Lost(format!("bad reply: {e}")))
    }

    /// Starts one set of processes: `header` (roles, wall-clock limit, rlimits) with their
    /// descriptors in order; `wait` then gives the template's report. On error the worker is
    /// already killed (with everything it started) and must be dropped.
    pub fn send(&mut self, mut header: Value, fds: &[RawFd]) -> Result<(), WorkerError> {
        self.runs += 1;
        header["n"] = self.runs.into();
        let body = header.to_string();
        send_with_fds(self.env.socket.as_raw_fd(), body.as_bytes(), fds).map_err(|e| {
            self.kill();
            WorkerError::Unsent(e.to_string())
        })
    }

    /// The template's report on the run started by `send` (wait statuses, timed out, time),
    /// once every process of the run is gone. On error the worker is already killed.
    pub fn wait(&mut self, deadline: Instant) -> Result<Value, WorkerError> {
        let out = self
            .recv(deadline)
            .and_then(|v| match v.get("internal_error") {
                Some(e) => Err(WorkerError::Lost(format!("worker error: {e}"))),
                None => Ok(v),
            });
        if out.is_err() {
            self.kill();
        }
        out
    }

    fn kill(&mut self) {
        if self.env.pid > 0 {
            sandbox::kill(&self.env, self.namespaces);
            self.env.pid = 0;
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
        self.cgroup.take();
        if let Some(dir) = &self.workdir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
