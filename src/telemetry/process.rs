//! Process metrics in the names Prometheus' own clients use (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, …), read from `/proc/self` at each scrape.
//!
//! They are rendered as text next to the recorder's output rather than through the `metrics`
//! facade, whose counters are integers: CPU seconds are fractional, and they must keep the
//! `counter` type that `rate()` expects.

use std::fmt::Write as _;

/// Appends the process metrics to a Prometheus text exposition. Metrics that cannot be read
/// (another OS, a restricted `/proc`) are left out.
pub fn render(out: &mut String) {
    let Some(sample) = Sample::read() else {
        return;
    };
    let mut metric = |name: &str, kind: &str, help: &str, value: Option<f64>| {
        if let Some(value) = value {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n\n"
            );
        }
    };
    metric(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        sample.cpu_seconds,
    );
    metric(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        sample.resident_bytes,
    );
    metric(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        sample.virtual_bytes,
    );
    metric(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        sample.open_fds,
    );
    metric(
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
        sample.max_fds,
    );
    metric(
        "process_threads",
        "gauge",
        "Number of OS threads in the process.",
        sample.threads,
    );
    metric(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        sample.start_time,
    );
}

#[derive(Debug, Default, PartialEq)]
struct Sample {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<f64>,
    virtual_bytes: Option<f64>,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
    threads: Option<f64>,
    start_time: Option<f64>,
}

/// Clock ticks per second in `/proc` times. The kernel reports in USER_HZ, which is 100 on
/// every architecture Linux still runs on (Prometheus' procfs library assumes the same).
const USER_HZ: f64 = 100.0;

impl Sample {
    #[cfg(target_os = "linux")]
    fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let mut sample = parse_stat(&stat)?;
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            sample.resident_bytes = parse_vm_rss(&status);
        }
        if let Some(started_ticks) = sample.start_time.take()
            && let Ok(system) = std::fs::read_to_string("/proc/stat")
            && let Some(boot) = parse_boot_time(&system)
        {
            sample.start_time = Some(boot + started_ticks / USER_HZ);
        }
        sample.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|entries| entries.count() as f64);
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
            sample.max_fds = parse_max_fds(&limits);
        }
        Some(sample)
    }

    #[cfg(not(target_os = "linux"))]
    fn read() -> Option<Self> {
        None
    }
}

/// `/proc/self/stat`: CPU time, threads, virtual size and the start time in ticks after boot
/// (left in `start_time` for the caller to turn into epoch seconds). The command name in
/// parentheses may contain spaces, so fields are counted from the last `)`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_stat(stat: &str) -> Option<Sample> {
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts at field 3 (state); see proc(5) for the numbering.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let utime = field(14)?;
    let stime = field(15)?;
    Some(Sample {
        cpu_seconds: Some((utime + stime) / USER_HZ),
        threads: field(20),
        start_time: field(22),
        virtual_bytes: field(23),
        ..Sample::default()
    })
}

/// `VmRSS:   12345 kB` from `/proc/self/status`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_vm_rss(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// `btime 1700000000` from `/proc/stat`: boot time, epoch seconds.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_boot_time(stat: &str) -> Option<f64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_max_fds(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (users api (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 \
                    7 0 12345 104857600 2560 18446744073709551615";
        let sample = parse_stat(stat).unwrap();
        assert_eq!(sample.cpu_seconds, Some(3.0));
        assert_eq!(sample.threads, Some(7.0));
        assert_eq!(sample.start_time, Some(12345.0));
        assert_eq!(sample.virtual_bytes, Some(104_857_600.0));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn status_limits_and_boot_time_parse() {
        assert_eq!(
            parse_vm_rss("Name:\tusers-api\nVmRSS:\t   2048 kB\n"),
            Some(2048.0 * 1024.0)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(limits), Some(1024.0));
        assert_eq!(parse_boot_time("cpu  1 2 3\nbtime 1700000000\n"), Some(1.7e9));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reports_every_metric() {
        let mut out = String::new();
        render(&mut out);
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(out.contains(&format!("\n{name} ")), "{name} missing from:\n{out}");
        }
    }
}
