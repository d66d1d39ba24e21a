//! A bounded pool of warm workers shared by every caller in the process, and the batch runner
//! that keeps all of them busy.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use super::cgroup;
use super::worker::{Worker, WorkerError, WorkerSpec};
use super::CodeError;

/// How much of the sandbox the kernel must provide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isolation {
    /// Namespaces where possible, else the basic envelope.
    Auto,
    /// Pid, mount, network and IPC namespaces (a user namespace too when not root); an error
    /// if the kernel refuses.
    Namespaces,
    /// No namespaces: process group, rlimits, uid drop when root, seccomp socket filter.
    Basic,
}

impl Isolation {
    pub const NAMES: [&'static str; 3] = ["auto", "namespaces", "basic"];

    pub fn parse(name: &str) -> Result<Self, CodeError> {
        match name {
            "auto" => Ok(Self::Auto),
            "namespaces" => Ok(Self::Namespaces),
            "basic" => Ok(Self::Basic),
            _ => Err(CodeError::invalid(
                "isolation",
                name,
                "one of auto, namespaces, basic",
            )),
        }
    }
}

/// What a pool's workers run and how they are contained.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SandboxConfig {
    /// The Python interpreter of the workers.
    pub python: String,
    pub isolation: Isolation,
    /// Directories bound read-only into the sandbox (the interpreter's prefix, its own
    /// directory); see `sandbox::EnvelopeSpec::expose`.
    pub expose: Vec<PathBuf>,
    /// The environment's site-packages: bound read-only and put on the samples' `sys.path`.
    pub site: Vec<PathBuf>,
    /// Size of each sample's private `/tmp` in MiB.
    pub tmpfs_mb: u64,
}

impl SandboxConfig {
    pub fn new(python: impl Into<String>) -> Self {
        Self {
            python: python.into(),
            isolation: Isolation::Auto,
            expose: Vec::new(),
            site: Vec::new(),
            tmpfs_mb: 64,
        }
    }
}

struct State {
    idle: Vec<Worker>,
    free_slots: Vec<usize>,
    live: usize,
    max: usize,
    /// Decided by the first successful start under `Isolation::Auto`.
    namespaces: Option<bool>,
    /// The kind of memory limit the last started worker got.
    memory_limit: Option<&'static str>,
}

pub struct Pool {
    cfg: SandboxConfig,
    /// The process that started the workers: after a fork, the child must not talk to them.
    owner: u32,
    state: Mutex<State>,
    freed: Condvar,
}

/// The default number of workers: one per CPU.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Pool {
    pub fn new(cfg: SandboxConfig, max_workers: usize) -> Self {
        let namespaces = match cfg.isolation {
            Isolation::Auto => None,
            Isolation::Namespaces => Some(true),
            Isolation::Basic => Some(false),
        };
        let max = max_workers.max(1);
        Self {
            cfg,
            owner: std::process::id(),
            state: Mutex::new(State {
                idle: Vec::new(),
                free_slots: (0..max).rev().collect(),
                live: 0,
                max,
                namespaces,
                memory_limit: None,
            }),
            freed: Condvar::new(),
        }
    }

    /// The process-wide pool for `cfg`, grown to at least `workers` workers.
    pub fn shared(cfg: &SandboxConfig, workers: usize) -> Arc<Pool> {
        static POOLS: OnceLock<Mutex<Vec<Arc<Pool>>>> = OnceLock::new();
        let mut pools = POOLS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // A forked child finds its parent's pools here; it starts its own (and never drops
        // the parent's: that would kill the parent's workers).
        let me = std::process::id();
        let pool = match pools.iter().find(|p| &p.cfg == cfg && p.owner == me) {
            Some(p) => p.clone(),
            None => {
                let p = Arc::new(Pool::new(cfg.clone(), workers));
                pools.push(p.clone());
                p
            }
        };
        pool.grow(workers);
        pool
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.cfg
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn grow(&self, workers: usize) {
        let mut s = self.lock();
        while s.max < workers {
            let slot = s.max;
            s.free_slots.push(slot);
            s.max += 1;
        }
    }

    /// Whether the workers run in namespaces (`None` before the first one started).
    pub fn uses_namespaces(&self) -> Option<bool> {
        self.lock().namespaces
    }

    /// How samples' memory is limited: "cgroup2 memory.max", "cgroup1 memory.limit_in_bytes"
    /// or "rlimit_as" (`None` before the first worker started).
    pub fn memory_limit(&self) -> Option<&'static str> {
        self.lock().memory_limit
    }

    /// Host pids of the live, idle workers (for diagnosis and the containment tests).
    pub fn idle_worker_pids(&self) -> Vec<i32> {
        self.lock().idle.iter().map(Worker::pid).collect()
    }

    fn start(&self, slot: usize, namespaces: Option<bool>) -> Result<(Worker, bool), CodeError> {
        let try_start = |ns: bool| {
            Worker::start(&WorkerSpec {
                python: &self.cfg.python,
                namespaces: ns,
                expose: &self.cfg.expose,
                site: &self.cfg.site,
                slot,
            })
        };
        match namespaces {
            Some(ns) => try_start(ns).map(|w| (w, ns)).map_err(CodeError::Sandbox),
            None => match try_start(true) {
                Ok(w) => Ok((w, true)),
                Err(first) => try_start(false).map(|w| (w, false)).map_err(|second| {
                    CodeError::Sandbox(format!("{first}; without namespaces: {second}"))
                }),
            },
        }
    }

    fn checkout(&self) -> Result<Worker, CodeError> {
        let mut s = self.lock();
        loop {
            if let Some(w) = s.idle.pop() {
                return Ok(w);
            }
            if s.live < s.max {
                let slot = s.free_slots.pop().expect("a free slot while below max");
                s.live += 1;
                let ns = s.namespaces;
                drop(s);
                let started = self.start(slot, ns);
                let mut s = self.lock();
                return match started {
                    Ok((w, ns)) => {
                        s.namespaces.get_or_insert(ns);
                        s.memory_limit = Some(cgroup::describe(w.cgroup.as_ref()));
                        Ok(w)
                    }
                    Err(e) => {
                        s.live -= 1;
                        s.free_slots.push(slot);
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            s = self.freed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn checkin(&self, worker: Option<Worker>, slot: usize) {
        let mut s = self.lock();
        match worker {
            Some(w) => s.idle.push(w),
            None => {
                s.live -= 1;
                s.free_slots.push(slot);
            }
        }
        self.freed.notify_one();
    }

    /// Runs `job` on a worker. A worker that failed in any way (timed out, died, reported an
    /// internal error) is dropped (killed with everything it started) and replaced on the
    /// next checkout; a worker that died while idle gets the job retried once on a fresh one.
    pub fn with_worker<T>(
        &self,
        job: impl Fn(&mut Worker) -> Result<T, WorkerError>,
    ) -> Result<Result<T, WorkerError>, CodeError> {
        for attempt in 0..2 {
            let mut w = self.checkout()?;
            let slot = w.slot;
            let out = job(&mut w);
            let healthy = out.is_ok();
            self.checkin(healthy.then_some(w), slot);
            match out {
                Err(WorkerError::Unsent(_)) if attempt == 0 => continue,
                out => return Ok(out),
            }
        }
        unreachable!("the second attempt returns")
    }

    /// Runs `job` on every item with up to `threads` workers at once; results in order.
    pub fn map<I: Sync, T: Send>(
        &self,
        items: &[I],
        threads: usize,
        job: impl Fn(&mut Worker, &I) -> Result<T, WorkerError> + Sync,
    ) -> Vec<Result<Result<T, WorkerError>, CodeError>> {
        let next = AtomicUsize::new(0);
        let slots: Vec<Mutex<Option<_>>> = items.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|scope| {
            for _ in 0..threads.clamp(1, items.len().max(1)) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items.len() {
                        return;
                    }
                    let out = self.with_worker(|w| job(w, &items[i]));
                    *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(out);
                });
            }
        });
        slots
            .into_iter()
            .map(|m| {
                m.into_inner()
                    .unwrap_or_else(|e| e.into_inner())
                    .expect("every item ran")
            })
            .collect()
    }
}
