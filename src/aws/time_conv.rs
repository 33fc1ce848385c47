//! Conversions between the SDK's `DateTime` and `time::OffsetDateTime`, the timestamp type of the
//! domain.

use aws_smithy_types::DateTime;
use time::OffsetDateTime;

/// SDK timestamp to domain timestamp; `None` for a value outside `OffsetDateTime`'s range (which a
/// service would only send by mistake; dropping one timestamp beats failing a whole listing).
pub(crate) fn to_offset(value: &DateTime) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(value.as_nanos()).ok()
}

/// Domain timestamp to SDK timestamp.
pub(crate) fn to_sdk(value: OffsetDateTime) -> DateTime {
    DateTime::from_nanos(value.unix_timestamp_nanos())
        // `time` only represents years ±9999, far inside the SDK's range, so this never fails;
        // falling back to whole seconds keeps the function total without a panic path.
        .unwrap_or_else(|_| DateTime::from_secs(value.unix_timestamp()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn round_trips() {
        let t = datetime!(2026-11-28 13:45:01.5 UTC);
        assert_eq!(to_offset(&to_sdk(t)), Some(t));
    }
}
