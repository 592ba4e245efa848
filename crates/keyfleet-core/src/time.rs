//! Time at the precision keyfleet stores and shows: whole microseconds, UTC.

use chrono::{DateTime, TimeZone, Utc};

/// Now, truncated to microseconds so that what is stored equals what is shown.
pub fn now() -> DateTime<Utc> {
    from_micros(Utc::now().timestamp_micros())
}

pub fn from_micros(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

pub fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}
