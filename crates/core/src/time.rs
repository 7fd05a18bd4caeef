//! Millisecond timestamps, stored as integers and shown as RFC 3339.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds since the Unix epoch (UTC). Stored as `BIGINT`; serialised as RFC 3339.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        Timestamp(chrono::Utc::now().timestamp_millis())
    }

    /// The current wall-clock time in nanoseconds since the epoch (span times).
    pub fn now_nanos() -> i64 {
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
    }

    /// Whole seconds since the epoch (what JWT `iat`/`exp` use).
    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// Reads a time a person or client writes: RFC 3339, a `YYYY-MM-DD` day (its midnight,
    /// UTC) or Unix milliseconds.
    pub fn parse(text: &str) -> Option<Timestamp> {
        let text = text.trim();
        if let Ok(ms) = text.parse::<i64>() {
            return Some(Timestamp(ms));
        }
        if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return Some(Timestamp(day.and_time(chrono::NaiveTime::MIN).and_utc().timestamp_millis()));
        }
        chrono::DateTime::parse_from_rfc3339(text).ok().map(|dt| Timestamp(dt.timestamp_millis()))
    }

    /// The midnight (UTC) that starts this time's day.
    pub fn start_of_day(self) -> Timestamp {
        Timestamp(self.0 - self.0.rem_euclid(86_400_000))
    }

    /// RFC 3339 with millisecond precision and a `Z` suffix, e.g. `2026-11-22T08:00:00.000Z`.
    pub fn to_rfc3339(self) -> String {
        match chrono::DateTime::from_timestamp_millis(self.0) {
            Some(dt) => dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            None => String::from("1970-01-01T00:00:00.000Z"),
        }
    }
}

/// RFC 3339 in UTC with milliseconds, as on the wire.
impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        chrono::DateTime::parse_from_rfc3339(&text)
            .map(|dt| Timestamp(dt.timestamp_millis()))
            .map_err(|e| serde::de::Error::custom(format!("`{text}` is not an RFC 3339 time: {e}")))
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("UTC time with milliseconds, e.g. `2026-12-04T10:23:39.994Z`"))
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_rfc3339_millis_utc() {
        assert_eq!(Timestamp(1_700_000_000_123).to_rfc3339(), "2023-11-14T22:13:20.123Z");
        assert_eq!(Timestamp(1_700_000_000_123).unix_seconds(), 1_700_000_000);
        let back: Timestamp = serde_json::from_str("\"2023-11-14T22:13:20.123Z\"").unwrap();
        assert_eq!(back, Timestamp(1_700_000_000_123));
    }

    #[test]
    fn parses_days_times_and_millis() {
        assert_eq!(Timestamp::parse("2023-11-14"), Some(Timestamp(1_699_920_000_000)));
        assert_eq!(Timestamp::parse("2023-11-14T22:13:20.123Z"), Some(Timestamp(1_700_000_000_123)));
        assert_eq!(Timestamp::parse("1700000000123"), Some(Timestamp(1_700_000_000_123)));
        assert_eq!(Timestamp::parse("yesterday"), None);
        assert_eq!(Timestamp(1_700_000_000_123).start_of_day(), Timestamp(1_699_920_000_000));
    }
}
