//! Wall-clock helpers: timestamps in the formats ARM, Entra ID and Data Factory print, and ids.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    now_ms() / 1000
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn parts(ms: u64) -> (i64, u32, u32, u64, u64, u64, u64) {
    let secs = ms / 1000;
    let (y, mo, d) = civil((secs / 86_400) as i64);
    let rem = secs % 86_400;
    (y, mo, d, rem / 3600, (rem % 3600) / 60, rem % 60, ms % 1000)
}

/// ISO 8601 with seven fractional digits, as ARM and Data Factory print them:
/// `2024-05-01T10:00:00.1230000Z`.
pub fn iso(ms: u64) -> String {
    let (y, mo, d, h, mi, s, frac) = parts(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac:03}0000Z")
}

/// The `Timestamp:` format of Entra ID error descriptions: `2024-05-01 10:00:00Z`.
pub fn entra(ms: u64) -> String {
    let (y, mo, d, h, mi, s, _) = parts(ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}Z")
}

/// ISO 8601 duration as ARM prints deployment durations: `PT1.234S`.
pub fn duration(ms: u64) -> String {
    format!("PT{}.{:03}S", ms / 1000, ms % 1000)
}

/// A random GUID in the canonical lower-case form (version 4 layout).
pub fn guid() -> String {
    let a = fastrand::u64(..);
    let b = fastrand::u64(..);
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-4{}-{:x}{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        8 + (b >> 62) as u8 % 4,
        &hex[17..20],
        &hex[20..32]
    )
}

/// A random token of URL-safe characters.
pub fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..len)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        // 2021-04-01T12:34:56.789Z
        let ms = 1_617_280_496_789;
        assert_eq!(iso(ms), "2021-04-01T12:34:56.7890000Z");
        assert_eq!(entra(ms), "2021-04-01 12:34:56Z");
        assert_eq!(iso(0), "1970-01-01T00:00:00.0000000Z");
        // Leap day.
        assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00.0000000Z");
        assert_eq!(duration(1234), "PT1.234S");
    }

    #[test]
    fn guid_has_canonical_shape() {
        let g = guid();
        let groups: Vec<usize> = g.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_eq!(&g[14..15], "4");
        assert!("89ab".contains(&g[19..20]), "{g}");
    }
}
