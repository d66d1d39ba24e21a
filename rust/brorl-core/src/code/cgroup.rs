//! Per-worker memory cgroups: every process of a sample (and its memory files, tmpfs files
//! and SysV segments, which the kernel charges to the cgroup of the process that touches the
//! pages) counts against one limit, set before each run to the template's own usage plus the
//! sample's `memory_mb`. cgroup v2 (`memory.max`) where this process may create a child of
//! its own cgroup with the memory controller; else cgroup v1's memory hierarchy
//! (`memory.limit_in_bytes`) under the same rule; else none, and samples fall back to
//! per-process RLIMIT_AS (see the README's code-verifier section).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A memory cgroup holding one worker and its samples; removed on drop.
#[derive(Debug)]
pub struct Cgroup {
    dir: PathBuf,
    v2: bool,
    base: u64,
    limit: Option<u64>,
}

/// Which kind of memory limit a worker got (reported for diagnosis and in benchmarks).
pub fn describe(cg: Option<&Cgroup>) -> &'static str {
    match cg {
        Some(c) if c.v2 => "cgroup2 memory.max",
        Some(_) => "cgroup1 memory.limit_in_bytes",
        None => "rlimit_as",
    }
}

fn own_paths() -> (Option<String>, Option<String>) {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let (mut v2, mut v1) = (None, None);
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (id, ctrl, path) = (parts.next(), parts.next(), parts.next());
        match (id, ctrl, path) {
            (Some("0"), Some(""), Some(p)) => v2 = Some(p.to_string()),
            (_, Some(c), Some(p)) if c.split(',').any(|c| c == "memory") => {
                v1 = Some(p.to_string())
            }
            _ => {}
        }
    }
    (v2, v1)
}

fn join(root: &str, rel: &str) -> PathBuf {
    Path::new(root).join(rel.trim_start_matches('/'))
}

/// Removes the (empty) cgroups of brorl processes that are gone: the process-wide pools are
/// never dropped, so a process that exits leaves its workers' cgroups behind.
fn sweep_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("brorl-")) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

impl Cgroup {
    /// A fresh cgroup for worker `name`, or None where the kernel or permissions refuse.
    pub fn create(name: &str) -> Option<Cgroup> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let leaf = format!("brorl-{}-{name}-{n}", std::process::id());
        let (v2, v1) = own_paths();
        let mut candidates = Vec::new();
        if let Some(p) = &v2 {
            if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
                candidates.push((join("/sys/fs/cgroup", p), true));
            }
        }
        if let Some(p) = &v1 {
            candidates.push((join("/sys/fs/cgroup/memory", p), false));
        }
        for (parent, v2) in candidates {
            sweep_stale(&parent);
            let dir = parent.join(&leaf);
            if std::fs::create_dir(&dir).is_err() {
                continue;
            }
            let probe = if v2 {
                "memory.max"
            } else {
                "memory.limit_in_bytes"
            };
            if dir.join(probe).exists() {
                let cg = Cgroup {
                    dir,
                    v2,
                    base: 0,
                    limit: None,
                };
                if v2 {
                    let _ = std::fs::write(cg.dir.join("memory.swap.max"), "0");
                }
                return Some(cg);
            }
            let _ = std::fs::remove_dir(&dir);
        }
        None
    }

    pub fn add(&self, pid: libc::pid_t) -> std::io::Result<()> {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
    }

    fn read_u64(&self, file: &str) -> Option<u64> {
        std::fs::read_to_string(self.dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Records the template's own usage (the limit of a run is this plus its memory).
    pub fn settle(&mut self) {
        let file = if self.v2 {
            "memory.current"
        } else {
            "memory.usage_in_bytes"
        };
        self.base = self.read_u64(file).unwrap_or(0);
    }

    /// Sets the limit of the next run to the template's usage plus `bytes`.
    pub fn set_limit(&mut self, bytes: u64) -> std::io::Result<()> {
        let limit = self.base + bytes;
        if self.limit == Some(limit) {
            return Ok(());
        }
        let file = if self.v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        std::fs::write(self.dir.join(file), limit.to_string())?;
        self.limit = Some(limit);
        Ok(())
    }

    /// How many processes the OOM killer took in this cgroup so far.
    pub fn oom_kills(&self) -> u64 {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Whether the cgroup reached its limit since the last call (v1's failcnt or v2's
    /// `max` events), for runs that died of a failed allocation rather than the OOM killer.
    pub fn hit_limit(&self) -> u64 {
        if self.v2 {
            std::fs::read_to_string(self.dir.join("memory.events"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("max "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        } else {
            self.read_u64("memory.failcnt").unwrap_or(0)
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // The worker was killed and reaped just before; the kernel may take a moment to
        // release the last of its processes.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}
