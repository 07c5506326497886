//! What the kernel says about a process: CPU time (all threads) from
//! `/proc/<pid>/stat` and resident memory from `/proc/<pid>/status`.

use std::time::Instant;

/// Clock ticks per second of `utime`/`stime` (`USER_HZ`, fixed at 100 by the
/// Linux ABI on every architecture this runs on).
const USER_HZ: f64 = 100.0;

/// utime + stime in seconds from the text of a `/proc/<pid>/stat` file.
/// The command name (field 2) may hold spaces and parentheses, so fields are
/// counted from the last `)`.
pub fn parse_stat_cpu(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ") ": field 3 (state) is fields[0]; utime is field 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// `VmRSS` in KiB from the text of a `/proc/<pid>/status` file.
pub fn parse_status_rss(status: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// CPU seconds a process has used, all threads (`pid` 0: this process).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let path = if pid == 0 { "/proc/self/stat".to_owned() } else { format!("/proc/{pid}/stat") };
    parse_stat_cpu(&std::fs::read_to_string(path).ok()?)
}

/// Resident memory of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    parse_status_rss(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// CPU use of the server and of the load generator from one moment.
#[derive(Debug, Clone, Copy)]
pub struct CpuMark {
    at: Instant,
    server: Option<f64>,
    me: Option<f64>,
}

/// CPU used between two marks.
#[derive(Debug, Clone, Copy)]
pub struct CpuSpan {
    /// Wall-clock seconds.
    pub wall: f64,
    /// Server CPU seconds (`None` without `--server-pid`).
    pub server: Option<f64>,
    /// Load generator CPU seconds.
    pub me: Option<f64>,
}

impl CpuMark {
    /// Marks now; `server_pid` 0 means unknown.
    pub fn now(server_pid: u32) -> Self {
        let server = if server_pid == 0 { None } else { cpu_seconds(server_pid) };
        Self { at: Instant::now(), server, me: cpu_seconds(0) }
    }

    /// CPU used from `self` to `later`.
    pub fn to(&self, later: &CpuMark) -> CpuSpan {
        CpuSpan {
            wall: later.at.duration_since(self.at).as_secs_f64(),
            server: self.server.zip(later.server).map(|(a, b)| b - a),
            me: self.me.zip(later.me).map(|(a, b)| b - a),
        }
    }
}

impl CpuSpan {
    /// Server CPU in µs per unit of work (`None` without a pid or units).
    pub fn server_us_per(&self, units: u64) -> Option<f64> {
        (units > 0).then_some(())?;
        self.server.map(|s| s * 1e6 / units as f64)
    }

    /// Server CPU as a percentage of one core.
    pub fn server_pct(&self) -> Option<f64> {
        self.server.map(|s| 100.0 * s / self.wall.max(1e-9))
    }

    /// Load generator CPU as a percentage of one core.
    pub fn me_pct(&self) -> Option<f64> {
        self.me.map(|s| 100.0 * s / self.wall.max(1e-9))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (my (odd) server) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 125 0 0 20 0 9 0 12345 \
                    100000000 2500 18446744073709551615";
        assert_eq!(parse_stat_cpu(stat), Some(3.75));
        assert_eq!(parse_stat_cpu("garbage"), None);
        assert_eq!(parse_stat_cpu("1 (x) S 1 2"), None);
    }

    #[test]
    fn rss_comes_from_vmrss() {
        let status = "Name:\tserver\nVmPeak:\t  99999 kB\nVmRSS:\t   10416 kB\nThreads:\t5\n";
        assert_eq!(parse_status_rss(status), Some(10_416));
        assert_eq!(parse_status_rss("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_is_readable() {
        assert!(cpu_seconds(0).is_some());
        assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
    }

    #[test]
    fn per_unit_figures() {
        let span = CpuSpan { wall: 2.0, server: Some(0.5), me: Some(1.0) };
        assert_eq!(span.server_us_per(100_000), Some(5.0));
        assert_eq!(span.server_us_per(0), None);
        assert_eq!(span.server_pct(), Some(25.0));
        assert_eq!(span.me_pct(), Some(50.0));
        assert_eq!(CpuSpan { wall: 1.0, server: None, me: None }.server_us_per(10), None);
    }
}
