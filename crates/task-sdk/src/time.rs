//! UTC calendar fields of a `SystemTime`, for names and messages, without a date library:
//! the civil-from-days algorithm is a few lines.
//! Also [`tenths`]: elapsed seconds (and other ratios) with one decimal, without floats.

use std::time::{Duration, SystemTime};

/// A point in time split into UTC calendar fields. Times before 1970 clamp to the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millisecond: u32,
}

impl From<SystemTime> for UtcTime {
    fn from(t: SystemTime) -> UtcTime {
        let since = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let secs = since.as_secs();
        let (days, rem) = (secs / 86_400, (secs % 86_400) as u32);
        let (year, month, day) = civil_from_days(days as i64);
        UtcTime {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
            millisecond: since.subsec_millis(),
        }
    }
}

impl UtcTime {
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millisecond
        )
    }

    /// `YYYY-MM-DD HH:MM:SS UTC`, for messages.
    pub fn readable(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `n / d` with one decimal, rounded half up (`4.1`; `d` = 0 reads as 1): elapsed seconds and
/// sizes in messages.
/// Integer arithmetic: `format!("{:.1}", …)` of a float would bring core's float formatting
/// into the task binary (BENCHMARKS.md, "Binary size after the cuts").
pub fn tenths(n: u128, d: u128) -> String {
    let tenths = (n * 10 + d / 2) / d.max(1);
    format!("{}.{}", tenths / 10, tenths % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(
            UtcTime::from(SystemTime::UNIX_EPOCH).rfc3339(),
            "1970-01-01T00:00:00.000Z"
        );
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_709_251_199_123);
        assert_eq!(UtcTime::from(t).rfc3339(), "2024-02-29T23:59:59.123Z");
        assert_eq!(UtcTime::from(t).readable(), "2024-02-29 23:59:59 UTC");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(UtcTime::from(t).rfc3339(), "2000-02-29T00:00:00.000Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(4_107_542_400); // 2100-03-01
        assert_eq!((UtcTime::from(t).month, UtcTime::from(t).day), (3, 1));
    }

    #[test]
    fn tenths_round_half_up() {
        assert_eq!(tenths(4_149, 1000), "4.1");
        assert_eq!(tenths(4_150, 1000), "4.2");
        assert_eq!(tenths(0, 1000), "0.0");
        assert_eq!(tenths(11 * 1_048_576, 1_048_576), "11.0");
        assert_eq!(tenths(10 * 1_048_576 + 1, 1_048_576), "10.0");
        assert_eq!(tenths(7, 0), "7.0");
    }
}
