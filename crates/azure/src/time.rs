//! RFC 3339 timestamps for request bodies (Data Factory's `lastUpdatedAfter`).

use std::time::SystemTime;

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC; times before 1970 clamp to the epoch.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    task_sdk::time::UtcTime::from(t).rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_709_251_199_123);
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.123Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.000Z");
    }
}
