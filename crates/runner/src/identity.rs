//! The identity of a run, as the service gives it: a new `System.PlanId` and build id for
//! every run, a new `System.JobId` for every job and `System.TaskInstanceId` for every step.
//! Tasks derive idempotency tokens from these (executenotebook's `runs/submit`), so reusing
//! them would hand a second run the first run's result.

use std::path::{Path, PathBuf};

/// What stays the same for the whole run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunIdentity {
    /// `System.PlanId` (and `System.TimelineId`, as in a build).
    pub plan_id: String,
    /// `Build.BuildId`: one more than the previous run of the same sources folder.
    pub build_id: u64,
    /// `Build.BuildNumber`: the service's default format, `yyyyMMdd.<build id>`.
    pub build_number: String,
    /// `System.JobAttempt` (and stage/phase attempts): 1, or `--attempt N`.
    pub attempt: u32,
    /// `pipeline.startTime` of runtime expressions: when this run started, UTC, ISO 8601.
    pub start_time: String,
}

impl RunIdentity {
    /// A new identity; the build id comes from the counter in `state_dir`.
    pub fn new(state_dir: &Path, attempt: u32) -> RunIdentity {
        let build_id = next_build_id(state_dir);
        let start_time = now_iso8601();
        // The build number's date is the start time's, so the two never straddle midnight.
        let day: String = start_time[..10].chars().filter(|c| *c != '-').collect();
        RunIdentity {
            plan_id: guid(),
            build_id,
            build_number: format!("{day}.{build_id}"),
            start_time,
            attempt,
        }
    }
}

/// A random version-4 GUID in the agent's `D` format (lower case, with hyphens).
pub fn guid() -> String {
    let mut bytes = fastrand::u128(..).to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Where the build counter of a sources folder lives: under `$XDG_STATE_HOME` (or
/// `~/.local/state`), one folder per sources folder, so that nothing is written into the
/// checkout and a temporary work folder does not reset it.
pub fn state_dir(sources_dir: &Path) -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local").join("state"))
        })
        .unwrap_or_else(std::env::temp_dir);
    let name = sources_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("root");
    base.join("azp-local").join(format!(
        "{name}-{:016x}",
        fnv1a(sources_dir.as_os_str().as_encoded_bytes())
    ))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Reads, increments and writes the counter in `dir/last-build-id`. A counter that cannot be
/// read starts again at 1; one that cannot be written still gives a number (the plan id,
/// not the build id, is what makes a run unique).
pub fn next_build_id(dir: &Path) -> u64 {
    let file = dir.join("last-build-id");
    let last = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let next = last + 1;
    if std::fs::create_dir_all(dir).is_ok() {
        // Write then rename, so a concurrent reader never sees half a number.
        let tmp = dir.join(format!("last-build-id.{:08x}", fastrand::u32(..)));
        if std::fs::write(&tmp, format!("{next}\n")).is_ok()
            && std::fs::rename(&tmp, &file).is_err()
        {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    next
}

/// Now (UTC) as `yyyy-MM-ddTHH:mm:ssZ`.
fn now_iso8601() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let t = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_version_4_and_differ() {
        let a = guid();
        let b = guid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'), "{a}");
        assert!("89ab".contains(&parts[3][..1]), "{a}");
        assert!(a
            .chars()
            .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn build_ids_increase_per_folder() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one");
        let two = dir.path().join("two");
        assert_eq!(next_build_id(&one), 1);
        assert_eq!(next_build_id(&one), 2);
        assert_eq!(next_build_id(&two), 1);
        std::fs::write(one.join("last-build-id"), "garbage").unwrap();
        assert_eq!(next_build_id(&one), 1);
        let id = RunIdentity::new(&one, 3);
        assert_eq!(id.build_id, 2);
        assert!(id.build_number.ends_with(".2"), "{}", id.build_number);
        assert_eq!(id.build_number.len(), "yyyyMMdd.2".len());
        assert_eq!(id.attempt, 3);
    }

    #[test]
    fn state_dirs_differ_per_sources_folder() {
        assert_ne!(
            state_dir(Path::new("/a/src")),
            state_dir(Path::new("/b/src"))
        );
        assert!(state_dir(Path::new("/a/src"))
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("src-"));
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }
}
