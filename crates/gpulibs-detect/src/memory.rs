//! Host memory: how much RAM can be allocated now, as the kernel reports it in `/proc/meminfo`.
//! The rule (`MemAvailable`, not `MemFree`) is [`parse_mem_available`], a plain function over
//! the file's text; [`mem_available_bytes`] reads the file.

use std::path::Path;

/// The kernel's memory report.
pub const MEMINFO: &str = "/proc/meminfo";

/// `MemAvailable` of a `/proc/meminfo` text, in bytes: what the kernel says can be allocated
/// without swapping (`MemFree` leaves out reclaimable caches). `None` when the line is missing
/// or does not parse (kernels before 3.14 lack it).
pub fn parse_mem_available(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib.saturating_mul(1024))
}

/// [`parse_mem_available`] of the file at `path` (normally [`MEMINFO`]); `None` when it cannot
/// be read.
pub fn mem_available_bytes_at(path: &Path) -> Option<u64> {
    parse_mem_available(&std::fs::read_to_string(path).ok()?)
}

/// The RAM this machine can allocate now without swapping ([`MEMINFO`]'s `MemAvailable`), in
/// bytes; `None` when it cannot be learned.
pub fn mem_available_bytes() -> Option<u64> {
    mem_available_bytes_at(Path::new(MEMINFO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_available_in_bytes() {
        let text = "MemTotal:       32790536 kB\nMemFree:         1234567 kB\n\
                    MemAvailable:   20971520 kB\nBuffers:          123456 kB\n";
        assert_eq!(parse_mem_available(text), Some(20971520 * 1024));
    }

    #[test]
    fn without_mem_available_there_is_no_answer() {
        assert_eq!(parse_mem_available("MemTotal: 1 kB\nMemFree: 1 kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: lots kB\n"), None);
        assert_eq!(parse_mem_available(""), None);
    }

    #[test]
    fn an_unreadable_file_is_no_answer() {
        assert_eq!(
            mem_available_bytes_at(Path::new("/nonexistent/meminfo")),
            None
        );
    }
}
