//! A bounded pool of warm workers shared by every caller in the process, and the batch runner
//! that keeps all of them busy.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::worker::{Worker, WorkerError};
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
    /// Directories the interpreter needs (its prefix, a virtual environment) that the
    /// sandbox uid may not be able to reach; see `sandbox::EnvelopeSpec::expose`.
    pub expose: Vec<PathBuf>,
    /// Size of each worker's private `/tmp` in MiB.
    pub tmpfs_mb: u64,
}

impl SandboxConfig {
    pub fn new(python: impl Into<String>) -> Self {
        Self {
            python: python.into(),
            isolation: Isolation::Auto,
            expose: Vec::new(),
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

    /// Host pids of the live, idle workers (for diagnosis and the containment tests).
    pub fn idle_worker_pids(&self) -> Vec<i32> {
        self.lock().idle.iter().map(Worker::pid).collect()
    }

    fn start(&self, slot: usize, namespaces: Option<bool>) -> Result<(Worker, bool), CodeError> {
        let try_start = |ns: bool| {
            Worker::start(
                &self.cfg.python,
                ns,
                &self.cfg.expose,
                self.cfg.tmpfs_mb,
                slot,
            )
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

    /// Runs one request on a worker. A worker that timed out or died is killed (with every
    /// process it started) and replaced on the next checkout.
    pub fn run(
        &self,
        req: &Value,
        deadline: Instant,
    ) -> Result<Result<Value, WorkerError>, CodeError> {
        // A worker that died while idle (say, killed by the OOM killer) fails the send: that
        // is not the sample's fault, so it gets one fresh worker.
        for attempt in 0..2 {
            let mut w = self.checkout()?;
            let slot = w.slot;
            if let Err(e) = w.send(req, deadline) {
                self.checkin(None, slot);
                if attempt == 0 {
                    continue;
                }
                return Ok(Err(e));
            }
            let out = w.recv(deadline);
            self.checkin(out.is_ok().then_some(w), slot);
            return Ok(out);
        }
        unreachable!("the second attempt returns")
    }
}

/// A worker's answer, how the worker failed, or why no worker could start.
pub type Outcome = Result<Result<Value, WorkerError>, CodeError>;

impl Pool {
    /// Runs `reqs` (worker request, time budget) on up to `threads` workers at once, keeping
    /// two requests queued at each worker so it goes from one sample to the next without
    /// waiting for this side. Results in input order; a request whose worker died before
    /// starting it is retried on a fresh worker.
    pub fn run_many(&self, reqs: &[(Value, Duration)], threads: usize) -> Vec<Outcome> {
        let next = AtomicUsize::new(0);
        let slots: Vec<Mutex<Option<Outcome>>> = reqs.iter().map(|_| Mutex::new(None)).collect();
        let put = |i: usize, r| *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        std::thread::scope(|scope| {
            for _ in 0..threads.clamp(1, reqs.len().max(1)) {
                scope.spawn(|| {
                    let mut retry: VecDeque<usize> = VecDeque::new();
                    loop {
                        let mut w = match self.checkout() {
                            Ok(w) => w,
                            Err(e) => {
                                // No worker can start: every remaining item gets the error.
                                for i in retry.drain(..) {
                                    put(i, Err(e.clone()));
                                }
                                loop {
                                    let i = next.fetch_add(1, Ordering::Relaxed);
                                    if i >= reqs.len() {
                                        return;
                                    }
                                    put(i, Err(e.clone()));
                                }
                            }
                        };
                        let slot = w.slot;
                        let mut inflight: VecDeque<usize> = VecDeque::new();
                        let mut clock = Instant::now();
                        let mut alive = true;
                        loop {
                            while alive && inflight.len() < 2 {
                                let i = match retry.pop_front() {
                                    Some(i) => i,
                                    None => match next.fetch_add(1, Ordering::Relaxed) {
                                        i if i < reqs.len() => i,
                                        _ => break,
                                    },
                                };
                                let deadline = Instant::now() + Duration::from_secs(30) + reqs[i].1;
                                if w.send(&reqs[i].0, deadline).is_err() {
                                    retry.push_back(i);
                                    alive = false;
                                } else {
                                    inflight.push_back(i);
                                }
                            }
                            let Some(i) = inflight.pop_front() else { break };
                            if !alive {
                                retry.push_front(i);
                                continue;
                            }
                            // The worker starts on this request when it finishes the previous
                            // one, i.e. no earlier than the last answer we read.
                            let out = w.recv(
                                clock.max(Instant::now() - Duration::from_millis(1)) + reqs[i].1,
                            );
                            clock = Instant::now();
                            alive = out.is_ok();
                            put(i, Ok(out));
                        }
                        let done = retry.is_empty();
                        self.checkin(alive.then_some(w), slot);
                        if done && next.load(Ordering::Relaxed) >= reqs.len() {
                            return;
                        }
                    }
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
