//! Helpers of the `partstore` command: size and duration parsing, time and
//! size formatting, progress bars, and the mapping of errors to exit codes.
//! (Digests of local bytes come from the engine's own hasher, through
//! `harness::digest_of`.)

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressStyle};
use partstore::{Error, ErrorKind};

/// The exit code of an error of `kind`; see the crate docs of the binary for
/// the table. A kind added to the engine later exits with 1.
pub fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::BadRequest => 3,
        ErrorKind::NotFound => 4,
        ErrorKind::Conflict => 5,
        ErrorKind::TooLarge => 6,
        ErrorKind::RangeNotSatisfiable => 7,
        ErrorKind::Corrupt => 8,
        ErrorKind::Io => 9,
        _ => 1,
    }
}

/// An I/O error of the command itself (a local file, stdout), with what was
/// being done.
pub fn io_err(context: impl Into<String>, source: std::io::Error) -> Error {
    Error::Io {
        context: context.into(),
        source,
    }
}

/// Parses a size: a whole number of bytes with an optional binary unit,
/// `B`, `KiB`, `MiB`, `GiB` or `TiB` (also `K`, `KB`, `M`, `MB`, ...: as in
/// the SPEC, 1 MB = 1 MiB), case-insensitively, e.g. `8MiB`, `1GiB`, `4096`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "size {s:?} does not start with a number (e.g. 8MiB, 1GiB, 4096)"
        ));
    }
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => {
            return Err(format!(
                "size {s:?} has unknown unit {other:?}; use B, KiB, MiB, GiB or TiB"
            ))
        }
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("size {s:?} is too large"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// Parses a duration: a whole number with a unit `ms`, `s`, `m`, `h` or `d`,
/// e.g. `30s`, `24h`, `7d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "duration {s:?} does not start with a number (e.g. 30s, 24h)"
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("duration {s:?} is too large"))?;
    let secs = |mul: u64| {
        n.checked_mul(mul)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("duration {s:?} is too large"))
    };
    match unit.trim().to_ascii_lowercase().as_str() {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        "" if n == 0 => Ok(Duration::ZERO),
        "" => Err(format!(
            "duration {s:?} needs a unit: ms, s, m, h or d (e.g. 24h)"
        )),
        other => Err(format!(
            "duration {s:?} has unknown unit {other:?}; use ms, s, m, h or d"
        )),
    }
}

/// `bytes` in binary units, e.g. `20.00 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    indicatif::BinaryBytes(bytes).to_string()
}

/// A time as UTC ISO 8601 with seconds, e.g. `2026-04-01T12:00:00Z`.
pub fn fmt_time(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A duration in the unit that suits it: `1.234 s`, `12.3 ms`, `45.6 µs`.
pub fn fmt_secs(secs: f64) -> String {
    if secs >= 1.0 {
        format!("{secs:.3} s")
    } else if secs >= 1e-3 {
        format!("{:.2} ms", secs * 1e3)
    } else {
        format!("{:.1} µs", secs * 1e6)
    }
}

/// A progress bar on stderr over `len` bytes (drawn only when stderr is a
/// terminal).
pub fn bytes_bar(len: u64, msg: &'static str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>10} [{bar:32.cyan/blue}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(msg);
    pb
}

/// A byte counter on stderr for a stream of unknown length (drawn only when
/// stderr is a terminal).
pub fn bytes_counter(msg: &'static str) -> ProgressBar {
    let pb = ProgressBar::no_length();
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {msg:>10} {binary_bytes} {binary_bytes_per_sec} {elapsed}",
    ) {
        pb.set_style(style);
    }
    pb.set_message(msg);
    pb.enable_steady_tick(Duration::from_millis(100));
    pb
}

/// A spinner on stderr for work of unknown length (drawn only when stderr is
/// a terminal).
pub fn spinner(msg: &'static str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
        pb.set_style(style);
    }
    pb.set_message(msg);
    pb.enable_steady_tick(Duration::from_millis(100));
    pb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1gb"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("5 MiB"), Ok(5 << 20));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("1.5GiB").is_err());
        assert!(parse_size("1PiB").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("24").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("3w").is_err());
    }

    #[test]
    fn times() {
        assert_eq!(fmt_time(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(fmt_time(t), "2024-02-29T12:34:56Z");
    }
}
