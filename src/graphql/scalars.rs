//! Scalars the schema defines, described for the people who write clients.
//!
//! async-graphql's own `DateTime<Utc>` scalar describes itself in Rust terms
//! ("Implement the DateTime<Utc> scalar"), and that text lands in every
//! generated client; a newtype of the same name and wire format says what a
//! client needs to know instead.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::{DateTime, Utc};

/// The schema's `DateTime`: a point in time, sent as RFC 3339 text in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp(pub DateTime<Utc>);

/// A point in time: an RFC 3339 string in UTC, e.g.
/// `2026-03-14T15:09:26.535+00:00`. The fraction of a second has 0, 3, 6 or
/// 9 digits, as precise as the stored value; JavaScript's `new Date(value)`
/// reads it.
#[Scalar(
    name = "DateTime",
    specified_by_url = "https://datatracker.ietf.org/doc/html/rfc3339"
)]
impl ScalarType for Timestamp {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => Ok(Self(s.parse::<DateTime<Utc>>()?)),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_rfc3339())
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(time: DateTime<Utc>) -> Self {
        Self(time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_keeps_the_wire_format_of_async_graphqls_datetime() {
        let time: DateTime<Utc> = "2026-03-14T15:09:26.535123Z".parse().unwrap();
        let ours = Timestamp(time).to_value();
        assert_eq!(ours, <DateTime<Utc> as ScalarType>::to_value(&time));
        assert_eq!(
            ours,
            Value::String("2026-03-14T15:09:26.535123+00:00".into())
        );
        assert_eq!(Timestamp::parse(ours).unwrap(), Timestamp(time));
        assert!(Timestamp::parse(Value::String("yesterday".into())).is_err());
    }
}
