//! What a measured profile says of the machine: its description and the date.

/// `<CPU model>, <cores> cores, <os> <arch>`.
pub fn machine_description() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!(
        "{cpu}, {cores} cores, {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// Today (UTC), `YYYY-MM-DD`.
pub fn today() -> String {
    // Days since the epoch to a civil date (Howard Hinnant's algorithm), to avoid a date crate.
    let days = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        / 86400) as i64;
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!("{y:04}-{m:02}-{d:02}")
}

/// The private cache per core (MB, as [`Figures`](crate::cost::profile::Figures) counts them):
/// the first core's level-2 data or unified cache, from Linux's (and Android's) sysfs. None
/// where the system does not say.
pub(super) fn cache_mb() -> Option<f64> {
    let dir = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    std::fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
        let read = |file: &str| std::fs::read_to_string(entry.path().join(file)).ok();
        let level = read("level")?;
        let kind = read("type")?;
        (level.trim() == "2" && kind.trim() != "Instruction")
            .then(|| parse_size(read("size")?.trim()))?
    })
}

/// `2048K`, `1M` or bytes, to MB.
fn parse_size(s: &str) -> Option<f64> {
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let n: f64 = digits.parse().ok()?;
    let bytes = match unit {
        "" => n,
        "K" => n * 1024.0,
        "M" => n * 1024.0 * 1024.0,
        _ => return None,
    };
    (bytes > 0.0).then_some(bytes / 1e6)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cache_sizes_as_sysfs_writes_them() {
        assert_eq!(super::parse_size("2048K"), Some(2.097152));
        assert_eq!(super::parse_size("1M"), Some(1.048576));
        assert_eq!(super::parse_size("512"), Some(0.000512));
        assert_eq!(super::parse_size("0K"), None);
        assert_eq!(super::parse_size("2G"), None);
        assert_eq!(super::parse_size(""), None);
    }
}
