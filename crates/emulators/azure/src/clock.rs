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

/// Days since 1970-01-01 of a civil date (the inverse of [`civil`]).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Milliseconds since the epoch of an RFC 3339 UTC time (`2024-05-01T10:00:00.123Z`, any
/// number of fractional digits, `Z` or `+00:00`), as clients send Data Factory query bounds.
pub fn parse_iso(text: &str) -> Option<u64> {
    let text = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.splitn(3, '-').map(str::parse::<u32>);
    let (y, mo, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(str::parse::<u64>);
    let (h, mi, sec) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let ms = frac
        .chars()
        .chain("000".chars())
        .take(3)
        .collect::<String>()
        .parse::<u64>()
        .ok()?;
    let days = u64::try_from(days_from_civil(i64::from(y), mo, day)).ok()?;
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) * 1000) + ms)
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
    fn parses_what_it_prints() {
        for ms in [0, 1_709_251_199_123, 951_782_400_000] {
            assert_eq!(parse_iso(&iso(ms)), Some(ms));
        }
        assert_eq!(
            parse_iso("2000-02-29T00:00:00+00:00"),
            Some(951_782_400_000)
        );
        assert_eq!(parse_iso("2000-02-29T00:00:00.5Z"), Some(951_782_400_500));
        assert_eq!(parse_iso("2000-02-29 00:00:00Z"), None);
        assert_eq!(parse_iso("2000-13-01T00:00:00Z"), None);
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
