//! The two date forms of the HERE API: HTTP dates for `Last-Modified` and
//! RFC 3339 (UTC, milliseconds) for `lastModified` in listings. Times before
//! 1970 (which the engine never stores) print as 1970; nothing here panics.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch, 0 for earlier times.
fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01
/// (H. Hinnant's `civil_from_days`, for non-negative day counts).
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

struct Parts {
    year: u64,
    month: u64,
    day: u64,
    weekday: usize,
    hour: u64,
    minute: u64,
    second: u64,
    milli: u64,
}

fn parts(t: SystemTime) -> Parts {
    let ms = epoch_ms(t);
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil(days);
    Parts {
        year,
        month,
        day,
        // 1970-01-01 was a Thursday.
        weekday: ((days + 4) % 7) as usize,
        hour: rem / 3_600,
        minute: rem % 3_600 / 60,
        second: rem % 60,
        milli: ms % 1000,
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 IMF-fixdate; whole seconds).
pub fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let p = parts(t);
    let month = MONTHS
        .get((p.month as usize).saturating_sub(1))
        .unwrap_or(&"Jan");
    let weekday = DAYS.get(p.weekday).unwrap_or(&"Thu");
    format!(
        "{weekday}, {:02} {month} {:04} {:02}:{:02}:{:02} GMT",
        p.day, p.year, p.hour, p.minute, p.second
    )
}

/// `1994-11-06T08:49:37.123Z` (RFC 3339, UTC, milliseconds).
pub fn rfc3339(t: SystemTime) -> String {
    let p = parts(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        p.year, p.month, p.day, p.hour, p.minute, p.second, p.milli
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn known_dates() {
        assert_eq!(http_date(at(0)), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(at(784_111_777_000)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(rfc3339(at(784_111_777_123)), "1994-11-06T08:49:37.123Z");
        // A leap day, and the day after.
        assert_eq!(rfc3339(at(951_782_400_000)), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(at(951_868_800_000)), "2000-03-01T00:00:00.000Z");
        assert_eq!(
            http_date(at(1_735_689_599_999)),
            "Tue, 31 Dec 2024 23:59:59 GMT"
        );
        // Before the epoch: clamped, no panic.
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(rfc3339(before), "1970-01-01T00:00:00.000Z");
    }

    /// Every day of 1970..2100 against a day-by-day count.
    #[test]
    fn civil_matches_a_calendar_walk() {
        let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
        for days in 0..47_482u64 {
            assert_eq!(civil(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }
}
