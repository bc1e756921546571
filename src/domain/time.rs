//! Time arithmetic on the BSON dates every record carries.

use std::time::Duration;

use bson::DateTime;

/// `now + duration`, saturating instead of overflowing.
pub fn after(now: DateTime, duration: Duration) -> DateTime {
    let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
    DateTime::from_millis(now.timestamp_millis().saturating_add(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_and_saturates() {
        let now = DateTime::from_millis(1_000);
        assert_eq!(
            after(now, Duration::from_millis(500)),
            DateTime::from_millis(1_500)
        );
        assert_eq!(
            after(now, Duration::MAX).timestamp_millis(),
            i64::MAX,
            "saturates"
        );
    }
}
