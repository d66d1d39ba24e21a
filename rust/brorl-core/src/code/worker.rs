//! One warm worker: a Python interpreter inside its envelope that forks a fresh sandboxed
//! child per sample (see `py/zygote.py`), and the framed JSON protocol to talk to it with a
//! deadline on every read and write.

use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::sandbox::{self, Envelope, EnvelopeSpec};

/// The worker program: the zygote loop plus the three harnesses, run with `python -c`.
pub const SCRIPT: &str = concat!(
    include_str!("py/zygote.py"),
    "\n",
    include_str!("py/harness_common.py"),
    "\n",
    include_str!("py/harness_humaneval.py"),
    "\n",
    include_str!("py/harness_stdio.py"),
    "\n",
    include_str!("py/harness_call.py"),
    "\nmain()\n",
);

/// Unprivileged uids for workers started by root: one per worker slot and parent process, so
/// RLIMIT_NPROC (counted per uid) of one worker's samples never starves another's.
const UID_BASE: u32 = 0x6000_0000;

pub fn sandbox_uid(slot: usize) -> u32 {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u32;
    UID_BASE + ((pid & 0xFFFF) << 8) + (slot as u32 & 0xFF)
}

/// Why a worker stopped answering.
#[derive(Debug)]
pub enum WorkerError {
    /// No complete answer before the deadline (the worker was killed).
    Timeout,
    /// The worker exited or sent garbage (it was killed).
    Lost(String),
}

pub struct Worker {
    env: Envelope,
    namespaces: bool,
    workdir: Option<PathBuf>,
    pub slot: usize,
    /// What the worker reported at start-up (pid 1 or not, uid).
    pub ready: Value,
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn wait_fd(fd: RawFd, events: i16, deadline: Instant) -> Result<(), WorkerError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(WorkerError::Timeout);
        }
        let mut p = libc::pollfd {
            fd,
            events,
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

fn write_all(fd: RawFd, mut data: &[u8], deadline: Instant) -> Result<(), WorkerError> {
    while !data.is_empty() {
        wait_fd(fd, libc::POLLOUT, deadline)?;
        // SAFETY: writing from a live slice to our non-blocking pipe end.
        let n = unsafe { libc::write(fd, data.as_ptr() as *const libc::c_void, data.len()) };
        if n < 0 {
            let e = errno();
            if e == libc::EAGAIN || e == libc::EINTR {
                continue;
            }
            return Err(WorkerError::Lost(format!("write failed: errno {e}")));
        }
        data = &data[n as usize..];
    }
    Ok(())
}

fn read_exact(fd: RawFd, buf: &mut [u8], deadline: Instant) -> Result<(), WorkerError> {
    let mut got = 0;
    while got < buf.len() {
        wait_fd(fd, libc::POLLIN, deadline)?;
        // SAFETY: reading into the unfilled tail of `buf`.
        let n = unsafe {
            libc::read(
                fd,
                buf[got..].as_mut_ptr() as *mut libc::c_void,
                buf.len() - got,
            )
        };
        if n == 0 {
            return Err(WorkerError::Lost("worker exited".into()));
        }
        if n < 0 {
            let e = errno();
            if e == libc::EAGAIN || e == libc::EINTR {
                continue;
            }
            return Err(WorkerError::Lost(format!("read failed: errno {e}")));
        }
        got += n as usize;
    }
    Ok(())
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: toggling a flag on a valid fd.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

/// A private directory for the samples' working directories when there is no mount
/// namespace (with one, the worker's own tmpfs `/tmp` is used).
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

impl Worker {
    /// Starts a worker in `slot` and waits for its ready message.
    pub fn start(
        python: &str,
        namespaces: bool,
        expose: &[PathBuf],
        tmpfs_mb: u64,
        slot: usize,
    ) -> Result<Worker, String> {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let drop_to = root.then(|| sandbox_uid(slot));
        let workdir = if namespaces {
            None
        } else {
            Some(basic_workdir(slot, drop_to).map_err(|e| format!("work directory: {e}"))?)
        };
        let base = workdir
            .as_ref()
            .map_or("/tmp".to_string(), |p| p.display().to_string());
        let spec = EnvelopeSpec {
            argv: vec![
                python.to_string(),
                "-I".into(),
                "-B".into(),
                "-X".into(),
                "utf8".into(),
                "-c".into(),
                SCRIPT.into(),
                base,
            ],
            namespaces,
            user_namespace: namespaces && !root,
            drop_to,
            expose: expose.to_vec(),
            tmpfs_mb,
            deny_sockets: !namespaces,
            nofile: 1024,
        };
        let env = sandbox::spawn(&spec).map_err(|e| {
            if let Some(dir) = &workdir {
                let _ = std::fs::remove_dir_all(dir);
            }
            format!("{e} (python {python:?})")
        })?;
        set_nonblocking(env.requests.as_raw_fd());
        set_nonblocking(env.responses.as_raw_fd());
        let mut w = Worker {
            env,
            namespaces,
            workdir,
            slot,
            ready: Value::Null,
        };
        match w.read_frame(Instant::now() + Duration::from_secs(60)) {
            Ok(v) if v.get("ready").is_some() => {
                w.ready = v;
                Ok(w)
            }
            Ok(v) => Err(format!("worker sent {v} instead of ready")),
            Err(e) => Err(format!("worker did not start: {e:?} (python {python:?})")),
        }
    }

    pub fn pid(&self) -> libc::pid_t {
        self.env.pid
    }

    fn read_frame(&mut self, deadline: Instant) -> Result<Value, WorkerError> {
        let fd = self.env.responses.as_raw_fd();
        let mut head = [0u8; 4];
        read_exact(fd, &mut head, deadline)?;
        let mut body = vec![0u8; u32::from_le_bytes(head) as usize];
        read_exact(fd, &mut body, deadline)?;
        serde_json::from_slice(&body).map_err(|e| WorkerError::Lost(format!("bad frame: {e}")))
    }

    /// Queues one request. The worker answers requests in order, so a caller may send the
    /// next one before reading an answer (the worker then never waits for us). On error the
    /// worker is already killed (with everything it started) and must be dropped.
    pub fn send(&mut self, req: &Value, deadline: Instant) -> Result<(), WorkerError> {
        let body = serde_json::to_vec(req).expect("JSON of a Value");
        let mut frame = (body.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&body);
        let out = write_all(self.env.requests.as_raw_fd(), &frame, deadline);
        if out.is_err() {
            self.kill();
        }
        out
    }

    /// Waits until `deadline` for the answer to the oldest unanswered request; on error the
    /// worker is already killed and must be dropped.
    pub fn recv(&mut self, deadline: Instant) -> Result<Value, WorkerError> {
        let out = self.read_frame(deadline);
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
        if let Some(dir) = &self.workdir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
