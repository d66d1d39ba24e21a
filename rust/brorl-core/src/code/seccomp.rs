//! The seccomp filter every worker (and so every sample) runs under. It denies what a
//! program under test never needs and what widens the kernel surface a sandbox escape would
//! go through: new namespaces (`unshare`/`clone` with namespace flags; `clone3` answers
//! ENOSYS so libc falls back to `clone`, whose flags can be checked), mounting, `ptrace`,
//! `bpf`, `perf_event_open`, `userfaultfd`, io_uring, keyrings, module and kexec loading,
//! reading other processes' memory. With `deny_sockets` it also limits `socket()` to AF_UNIX
//! (and AF_NETLINK in the template profile, whose worker has a network namespace of its own):
//! brorl always sets it, as a worker's network namespace outlives its samples and its IP
//! statistics would carry a number from one to the next. A foreign syscall ABI (i386 or x32
//! entry points) gets EPERM.
//!
//! It also closes the channels through which two samples running at the same time could pass
//! each other an answer without sharing any writable file: the read-only files every sample
//! sees (the standard library, site-packages) are the same inodes for all of them, so a lock
//! (`flock`, `fcntl` record and OFD locks, leases), a directory or inode watch (`fcntl`
//! F_NOTIFY, inotify, fanotify) or page-cache residency (`mincore`) on one of them is visible to
//! the others (one sample holding a lock on the Nth stdlib file, another probing which is
//! locked, passed the answer N). These get EPERM, and so does `sysinfo` (host-wide free
//! memory and process count: one sample allocating, another reading). The same counters in
//! procfs are hidden by mounting the samples' `/proc` with `subset=pid` (`sandbox`).
//!
//! Two profiles: the template process of a worker may still `mount`/`umount2` (each run's fresh
//! `/tmp` and `/dev/shm`) and `unshare` a mount or IPC namespace (each sample gets its own IPC
//! namespace before it runs anything); every sample process then adds, before the first line of
//! untrusted code, the short filter of what the sample profile denies beyond the template's
//! (`sample_on_template`), so the two stacked deny exactly what the sample profile does. (Each
//! installed filter is built and JIT-compiled by the kernel; the full one cost a fork ~0.1 ms.)
//! Without namespaces the template already runs under the sample profile, which forks inherit.

use libc::{c_ulong, sock_filter, sock_fprog};

const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_EPERM: u32 = 0x0005_0000 | libc::EPERM as u32;
const RET_ENOSYS: u32 = 0x0005_0000 | libc::ENOSYS as u32;
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARG0: u32 = 16; // low 32 bits of args[0] on little-endian
const OFF_ARG1: u32 = 24; // low 32 bits of args[1]
/// `fcntl` commands that lock, lease or watch: F_GETLK F_SETLK F_SETLKW F_OFD_GETLK
/// F_OFD_SETLK F_OFD_SETLKW F_SETLEASE F_GETLEASE F_NOTIFY.
const FCNTL_SHARED: [u32; 9] = [5, 6, 7, 36, 37, 38, 1024, 1025, 1026];

/// CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET.
const NS_FLAGS: u32 =
    0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000;
/// CLONE_NEWTIME: only for unshare (in clone's flags that bit is part of the exit signal).
const NEWTIME: u32 = 0x80;
const CLONE3: u32 = 435;
/// Numbers shared by every architecture (added after the tables were unified).
const GENERIC_DENY: [u32; 10] = [425, 426, 427, 428, 429, 430, 431, 432, 433, 442]; // io_uring_*, open_tree, move_mount, fs*, mount_setattr

struct Arch {
    audit: u32,
    socket: u32,
    clone: u32,
    unshare: u32,
    /// mount umount2 pivot_root chroot setns ptrace bpf perf_event_open keyctl add_key
    /// request_key userfaultfd kexec_load kexec_file_load init_module finit_module
    /// delete_module reboot swapon swapoff acct open_by_handle_at process_vm_readv
    /// process_vm_writev
    deny: [u32; 24],
    /// Channels between concurrent samples through shared read-only inodes: flock,
    /// inotify_init (x86_64 only), inotify_init1, inotify_add_watch, fanotify_init, mincore;
    /// and through host-wide counters: sysinfo (free memory, number of processes).
    shared_inode: &'static [u32],
    fcntl: u32,
}

#[cfg(target_arch = "x86_64")]
const ARCH: Option<Arch> = Some(Arch {
    audit: 0xC000_003E,
    socket: 41,
    clone: 56,
    unshare: 272,
    deny: [
        165, 166, 155, 161, 308, 101, 321, 298, 250, 248, 249, 323, 246, 320, 175, 313, 176, 169,
        167, 168, 163, 304, 310, 311,
    ],
    shared_inode: &[73, 253, 294, 254, 300, 27, 99],
    fcntl: 72,
});
#[cfg(target_arch = "aarch64")]
const ARCH: Option<Arch> = Some(Arch {
    audit: 0xC000_00B7,
    socket: 198,
    clone: 220,
    unshare: 97,
    deny: [
        40, 39, 41, 51, 268, 117, 280, 241, 219, 217, 218, 282, 104, 294, 105, 273, 106, 142, 224,
        225, 89, 265, 270, 271,
    ],
    shared_inode: &[32, 26, 27, 262, 232, 179],
    fcntl: 25,
});
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ARCH: Option<Arch> = None;

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

/// `nr` -> `action`, else fall through to the next rule.
fn rule(p: &mut Vec<sock_filter>, nr: u32, action: u32) {
    p.push(jump(JEQ_K, nr, 0, 1));
    p.push(stmt(RET_K, action));
}

/// `nr` with any of `mask` set in its first argument -> EPERM, without -> allowed.
fn flags_rule(p: &mut Vec<sock_filter>, nr: u32, mask: u32) {
    p.extend([
        jump(JEQ_K, nr, 0, 4),
        stmt(LD_W_ABS, OFF_ARG0),
        jump(JSET_K, mask, 0, 1),
        stmt(RET_K, RET_EPERM),
        stmt(RET_K, RET_ALLOW),
    ]);
}

/// Which filter: the template's (mount and unshare of mount/IPC namespaces still allowed),
/// or a sample's (everything denied).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Template,
    Sample,
}

/// CLONE_NEWNS | CLONE_NEWIPC: what the template may still unshare.
const TEMPLATE_NS: u32 = 0x0002_0000 | 0x0800_0000;

/// The BPF program, or `None` on an architecture we have no syscall numbers for.
pub fn program(deny_sockets: bool, profile: Profile) -> Option<Vec<sock_filter>> {
    let arch = ARCH?;
    let mut p = vec![
        stmt(LD_W_ABS, OFF_ARCH),
        jump(JEQ_K, arch.audit, 1, 0),
        stmt(RET_K, RET_EPERM),
        stmt(LD_W_ABS, OFF_NR),
        jump(JGE_K, 0x4000_0000, 0, 1), // x32 syscall numbers
        stmt(RET_K, RET_EPERM),
    ];
    // deny[0..2] are mount and umount2: the template needs them for each sample's /tmp.
    let skip = if profile == Profile::Template { 2 } else { 0 };
    for nr in arch.deny[skip..]
        .iter()
        .chain(&GENERIC_DENY)
        .chain(arch.shared_inode)
    {
        rule(&mut p, *nr, RET_EPERM);
    }
    rule(&mut p, CLONE3, RET_ENOSYS);
    // fcntl: the lock, lease and notify commands -> EPERM, the rest (descriptor flags,
    // F_DUPFD, pipe sizes, seals ...) allowed.
    let skip_fcntl = 1 + 2 * FCNTL_SHARED.len() + 1;
    p.push(jump(JEQ_K, arch.fcntl, 0, skip_fcntl as u8));
    p.push(stmt(LD_W_ABS, OFF_ARG1));
    for cmd in FCNTL_SHARED {
        p.push(jump(JEQ_K, cmd, 0, 1));
        p.push(stmt(RET_K, RET_EPERM));
    }
    p.push(stmt(RET_K, RET_ALLOW));
    flags_rule(&mut p, arch.clone, NS_FLAGS);
    let unshare_mask = match profile {
        Profile::Template => (NS_FLAGS & !TEMPLATE_NS) | NEWTIME,
        Profile::Sample => NS_FLAGS | NEWTIME,
    };
    flags_rule(&mut p, arch.unshare, unshare_mask);
    if deny_sockets {
        // AF_UNIX; with a network namespace of our own (the template profile) also AF_NETLINK,
        // which shows only that namespace's loopback (`socket.if_nameindex`, getaddrinfo).
        // Not AF_INET/AF_INET6 even there: the namespace outlives a sample, and its IP
        // statistics (`/proc/self/net/snmp`: a datagram sent while the loopback is down still
        // counts as OutNoRoutes) passed a number from one sample to the next on a worker.
        let second = match profile {
            Profile::Template => libc::AF_NETLINK,
            Profile::Sample => libc::AF_UNIX,
        };
        p.extend([
            jump(JEQ_K, arch.socket, 0, 5),
            stmt(LD_W_ABS, OFF_ARG0),
            jump(JEQ_K, libc::AF_UNIX as u32, 1, 0),
            jump(JEQ_K, second as u32, 0, 1),
            stmt(RET_K, RET_ALLOW),
            stmt(RET_K, RET_EPERM),
        ]);
    }
    p.push(stmt(RET_K, RET_ALLOW));
    Some(p)
}

/// What a sample process adds on top of the template's filter (namespaces): exactly what
/// `Profile::Sample` denies beyond `Profile::Template` (mount, umount2, unshare of any
/// namespace). Short, so installing it in every fork costs little (the kernel builds and
/// JIT-compiles each filter); the two stacked deny what `Profile::Sample` alone denies (tested).
pub fn sample_on_template() -> Option<Vec<sock_filter>> {
    let arch = ARCH?;
    let mut p = vec![
        stmt(LD_W_ABS, OFF_ARCH),
        jump(JEQ_K, arch.audit, 1, 0),
        stmt(RET_K, RET_EPERM),
        stmt(LD_W_ABS, OFF_NR),
    ];
    for nr in &arch.deny[..2] {
        rule(&mut p, *nr, RET_EPERM);
    }
    flags_rule(&mut p, arch.unshare, NS_FLAGS | NEWTIME);
    p.push(stmt(RET_K, RET_ALLOW));
    Some(p)
}

/// The program as hex bytes (`struct sock_filter` in native layout), for the template to
/// install in each sample.
pub fn to_hex(program: &[sock_filter]) -> String {
    let mut out = String::with_capacity(program.len() * 16);
    for f in program {
        for b in f
            .code
            .to_ne_bytes()
            .iter()
            .chain(&[f.jt, f.jf])
            .chain(&f.k.to_ne_bytes())
        {
            out.push_str(&format!("{b:02x}"));
        }
    }
    out
}

/// The capset syscall number (the template drops capabilities with it in a user namespace).
pub const SYS_CAPSET: libc::c_long = libc::SYS_capset;

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic-BPF interpreter for the instructions these programs use.
    fn eval(p: &[sock_filter], nr: u32, arch: u32, arg0: u32) -> u32 {
        eval2(p, nr, arch, arg0, arg0)
    }

    fn eval2(p: &[sock_filter], nr: u32, arch: u32, arg0: u32, arg1: u32) -> u32 {
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let f = p[pc];
            pc += 1;
            match f.code {
                LD_W_ABS => {
                    acc = match f.k {
                        OFF_NR => nr,
                        OFF_ARCH => arch,
                        OFF_ARG0 => arg0,
                        OFF_ARG1 => arg1,
                        k => panic!("load at {k}"),
                    }
                }
                RET_K => return f.k,
                JEQ_K | JGE_K | JSET_K => {
                    let hit = match f.code {
                        JEQ_K => acc == f.k,
                        JGE_K => acc >= f.k,
                        _ => acc & f.k != 0,
                    };
                    pc += usize::from(if hit { f.jt } else { f.jf });
                }
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    /// The kernel runs every stacked filter and takes the most restrictive action; for
    /// ALLOW vs ERRNO that is the ERRNO (lower action value).
    fn stacked(a: u32, b: u32) -> u32 {
        if a & 0xffff_0000 < b & 0xffff_0000 {
            a
        } else if b & 0xffff_0000 < a & 0xffff_0000 {
            b
        } else {
            a.min(b)
        }
    }

    #[test]
    fn shared_inode_channels_are_denied_and_plain_fcntl_is_not() {
        let Some(arch) = ARCH else { return };
        #[cfg(target_arch = "x86_64")]
        {
            let want = [
                libc::SYS_flock,
                libc::SYS_inotify_init,
                libc::SYS_inotify_init1,
                libc::SYS_inotify_add_watch,
                libc::SYS_fanotify_init,
                libc::SYS_mincore,
                libc::SYS_sysinfo,
            ];
            assert_eq!(arch.shared_inode, want.map(|n| n as u32));
            assert_eq!(arch.fcntl, libc::SYS_fcntl as u32);
        }
        let cmds = [
            libc::F_GETLK,
            libc::F_SETLK,
            libc::F_SETLKW,
            libc::F_OFD_GETLK,
            libc::F_OFD_SETLK,
            libc::F_OFD_SETLKW,
            libc::F_SETLEASE,
            libc::F_GETLEASE,
            libc::F_NOTIFY,
        ];
        assert_eq!(FCNTL_SHARED, cmds.map(|c| c as u32));
        for profile in [Profile::Template, Profile::Sample] {
            for deny_sockets in [false, true] {
                let p = program(deny_sockets, profile).unwrap();
                for &nr in arch.shared_inode {
                    assert_eq!(eval2(&p, nr, arch.audit, 3, 0), RET_EPERM, "syscall {nr}");
                }
                for cmd in FCNTL_SHARED {
                    assert_eq!(
                        eval2(&p, arch.fcntl, arch.audit, 3, cmd),
                        RET_EPERM,
                        "fcntl {cmd}"
                    );
                }
                for cmd in [
                    libc::F_DUPFD,
                    libc::F_GETFD,
                    libc::F_SETFD,
                    libc::F_GETFL,
                    libc::F_SETFL,
                    libc::F_DUPFD_CLOEXEC,
                    libc::F_GETPIPE_SZ,
                    libc::F_ADD_SEALS,
                ] {
                    assert_eq!(
                        eval2(&p, arch.fcntl, arch.audit, 3, cmd as u32),
                        RET_ALLOW,
                        "fcntl {cmd}"
                    );
                }
                // a syscall after the fcntl block is still judged (the block skips cleanly)
                let denied = if deny_sockets { RET_EPERM } else { RET_ALLOW };
                for family in [libc::AF_INET, libc::AF_INET6, libc::AF_PACKET] {
                    let got = eval2(&p, arch.socket, arch.audit, family as u32, 0);
                    assert_eq!(got, denied, "socket family {family}");
                }
                assert_eq!(
                    eval2(&p, arch.socket, arch.audit, libc::AF_UNIX as u32, 0),
                    RET_ALLOW
                );
                // netlink only inside a network namespace of our own (the template profile)
                let netlink = eval2(&p, arch.socket, arch.audit, libc::AF_NETLINK as u32, 0);
                let own_netns = profile == Profile::Template;
                assert_eq!(
                    netlink,
                    if deny_sockets && !own_netns {
                        RET_EPERM
                    } else {
                        RET_ALLOW
                    }
                );
                // the syscall after the socket block is still judged
                assert_eq!(eval2(&p, arch.unshare, arch.audit, NEWTIME, 0), RET_EPERM);
            }
        }
    }

    #[test]
    fn template_plus_sample_delta_denies_what_the_sample_profile_denies() {
        let (Some(t), Some(d), Some(s)) = (
            program(false, Profile::Template),
            sample_on_template(),
            program(false, Profile::Sample),
        ) else {
            return; // no syscall tables for this architecture
        };
        let arch = ARCH.unwrap();
        let mut args: Vec<u32> = vec![0, 1, libc::AF_UNIX as u32, libc::AF_INET as u32, NEWTIME];
        args.extend((0..32).map(|b| 1u32 << b));
        args.push(NS_FLAGS);
        for nr in (0..600).chain([0x4000_0000, 0x4000_0010]) {
            for audit in [arch.audit, 0x4000_0003] {
                for &a in &args {
                    let want = eval(&s, nr, audit, a);
                    let got = stacked(eval(&t, nr, audit, a), eval(&d, nr, audit, a));
                    assert_eq!(got, want, "syscall {nr} arch {audit:#x} arg0 {a:#x}");
                }
            }
        }
        assert!(
            d.len() < s.len() / 3,
            "the delta stays short: {} vs {}",
            d.len(),
            s.len()
        );
    }
}
