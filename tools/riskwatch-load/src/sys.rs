//! What the operating system tells and allows: the open-file limit, a
//! process's resident memory, the machine, and whether a compiler is busy
//! (which would spoil a measurement on a 2-core machine).

use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::unistd::{SysconfVar, sysconf};
use serde::{Deserialize, Serialize};

/// The open-file limit before and after raising it.
#[derive(Debug, Clone, Serialize)]
pub struct NoFile {
    /// Descriptors the run needs (connections plus a margin).
    pub wanted: u64,
    pub soft_before: u64,
    pub hard: u64,
    /// The soft limit now in force; a child hub inherits it.
    pub soft: u64,
    /// Whether `soft` covers `wanted`.
    pub enough: bool,
}

impl NoFile {
    /// One line for the human summary.
    pub fn describe(&self) -> String {
        let base = format!(
            "open files: soft {} -> {} (hard {}), this run needs ~{}",
            self.soft_before, self.soft, self.hard, self.wanted
        );
        if self.enough {
            base
        } else {
            format!(
                "{base}: NOT ENOUGH. The hard limit cannot be raised without CAP_SYS_RESOURCE; \
                 each process (this tool and the hub) stops at about {} sockets",
                self.soft.saturating_sub(FD_MARGIN)
            )
        }
    }
}

/// Descriptors a process needs besides its sockets (epoll, eventfds,
/// stdio, the binary, the HTTP client).
pub const FD_MARGIN: u64 = 64;

/// Raises RLIMIT_NOFILE's soft limit to the hard limit, first raising the
/// hard limit to what `connections` need when the process may
/// (CAP_SYS_RESOURCE).
pub fn raise_nofile(connections: u64) -> io::Result<NoFile> {
    let wanted = connections + FD_MARGIN;
    let (soft_before, mut hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    // Failure (EPERM) is expected without CAP_SYS_RESOURCE and leaves the
    // limit as it was.
    if hard < wanted && setrlimit(Resource::RLIMIT_NOFILE, wanted, wanted).is_ok() {
        hard = wanted;
    }
    let soft = hard.max(soft_before);
    if soft != soft_before {
        setrlimit(Resource::RLIMIT_NOFILE, soft, hard)?;
    }
    Ok(NoFile {
        wanted,
        soft_before,
        hard,
        soft,
        enough: soft >= wanted,
    })
}

/// Resident memory of a process, from `/proc/<pid>/status`, in KiB.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Rss {
    /// VmRSS: everything resident (anonymous, file-backed, shared).
    pub vm_rss_kib: u64,
    /// RssAnon: heap and stacks; what connections add to.
    pub rss_anon_kib: u64,
}

pub fn rss(pid: u32) -> io::Result<Rss> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(Rss {
        vm_rss_kib: field("VmRSS:"),
        rss_anon_kib: field("RssAnon:"),
    })
}

/// The soft open-file limit of another process, from `/proc/<pid>/limits`.
pub fn nofile_of(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The machine a result was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub mem_total_kib: u64,
    /// UTC, RFC 3339.
    pub date: String,
    /// Compilers running when the run started (should be empty).
    pub busy: Vec<String>,
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    let mem_total_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0);
    Machine {
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model,
        kernel,
        mem_total_kib,
        date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        busy: busy_compilers(),
    }
}

/// `rustc`, `cargo`, `cc` or `ld` processes other than our parent (which
/// may be the `cargo run` that started us, idle by now).
pub fn busy_compilers() -> Vec<String> {
    const NAMES: [&str; 5] = ["rustc", "cargo", "cc1", "ld", "cc"];
    let parent = std::os::unix::process::parent_id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    // /proc lists one entry per process: a bounded walk.
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if pid == parent {
            continue;
        }
        if let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) {
            let comm = comm.trim();
            if NAMES.contains(&comm) {
                found.push(format!("{comm}({pid})"));
            }
        }
    }
    found
}

/// The machine's cores (2 when unknown): the default for thread counts.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Wall-clock nanoseconds since the Unix epoch: the probe timestamp, read
/// by the publisher and every subscriber on the same machine.
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// CPU time used, in seconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Cpu {
    pub user_s: f64,
    pub system_s: f64,
}

impl Cpu {
    pub fn total(&self) -> f64 {
        self.user_s + self.system_s
    }

    pub fn minus(&self, earlier: &Cpu) -> Cpu {
        Cpu {
            user_s: self.user_s - earlier.user_s,
            system_s: self.system_s - earlier.system_s,
        }
    }
}

/// A process's CPU time so far, from `/proc/<pid>/stat` (utime, stime).
pub fn cpu(pid: u32) -> io::Result<Cpu> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields after it do not.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let tck = sysconf(SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100)
        .max(1) as f64;
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    Ok(Cpu {
        user_s: field(11) / tck,
        system_s: field(12) / tck,
    })
}

/// The CPU of several processes together; none if any cannot be read.
pub fn cpu_sum(pids: &[u32]) -> Option<Cpu> {
    if pids.is_empty() {
        return None;
    }
    let mut sum = Cpu::default();
    for &p in pids {
        let c = cpu(p).ok()?;
        sum.user_s += c.user_s;
        sum.system_s += c.system_s;
    }
    Some(sum)
}

/// The resident memory of several processes, summed; none if any cannot
/// be read.
pub fn rss_sum(pids: &[u32]) -> Option<Rss> {
    if pids.is_empty() {
        return None;
    }
    let mut sum = Rss::default();
    for &p in pids {
        let r = rss(p).ok()?;
        sum.vm_rss_kib += r.vm_rss_kib;
        sum.rss_anon_kib += r.rss_anon_kib;
    }
    Some(sum)
}

/// Open sockets of a process (its `/proc/<pid>/fd` links to `socket:`):
/// one per connection it holds, plus its listener and a few more. A walk
/// over at most the process's open-file limit of entries.
pub fn sockets_of(pid: u32) -> Option<u64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let mut n = 0;
    for entry in dir.flatten() {
        if std::fs::read_link(entry.path())
            .is_ok_and(|l| l.as_os_str().as_encoded_bytes().starts_with(b"socket:"))
        {
            n += 1;
        }
    }
    Some(n)
}

/// Open file descriptors of a process (entries of `/proc/<pid>/fd`).
pub fn fds_of(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// TCP sockets listening on `port` (any IPv4 address), from
/// `/proc/net/tcp`: with SO_REUSEPORT, one per hub process.
pub fn listeners_on(port: u16) -> usize {
    let Ok(text) = std::fs::read_to_string("/proc/net/tcp") else {
        return 0;
    };
    let port_hex = format!(":{port:04X}");
    text.lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().take(4).collect();
            // local_address is field 1, st (0A = LISTEN) field 3.
            f.len() == 4 && f[1].ends_with(&port_hex) && f[3] == "0A"
        })
        .count()
}

/// CPU used by the hub and by this tool over one phase of a run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuUse {
    pub hub: Option<Cpu>,
    pub tool: Cpu,
}

/// Measures [`CpuUse`] from `start` to `stop`.
#[derive(Debug)]
pub struct CpuMeter {
    hub_pids: Vec<u32>,
    hub: Option<Cpu>,
    tool: Cpu,
}

impl CpuMeter {
    /// `hub_pids`: every hub process (their CPU is summed); none when
    /// unknown.
    pub fn start(hub_pids: &[u32]) -> CpuMeter {
        CpuMeter {
            hub_pids: hub_pids.to_vec(),
            hub: cpu_sum(hub_pids),
            tool: cpu(std::process::id()).unwrap_or_default(),
        }
    }

    pub fn stop(&self) -> CpuUse {
        let hub = match (cpu_sum(&self.hub_pids), &self.hub) {
            (Some(now), Some(then)) => Some(now.minus(then)),
            _ => None,
        };
        CpuUse {
            hub,
            tool: cpu(std::process::id())
                .unwrap_or_default()
                .minus(&self.tool),
        }
    }
}

impl CpuUse {
    /// One line for summaries; per item (delivery, connection) when
    /// `items` is given.
    pub fn describe(&self, items: Option<(u64, &str)>) -> String {
        let one = |c: &Cpu| {
            let mut s = format!("{:.2} s user + {:.2} s system", c.user_s, c.system_s);
            if let Some((n, what)) = items.filter(|(n, _)| *n > 0) {
                s += &format!(" = {:.1} µs per {what}", c.total() * 1e6 / n as f64);
            }
            s
        };
        format!(
            "CPU: hub {}; tool {}",
            self.hub.as_ref().map_or("unknown (no pid)".into(), one),
            one(&self.tool)
        )
    }
}
