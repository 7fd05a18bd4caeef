//! Erdo's dataset filters (`{"key","operator","value":[..]}`) and the parameterised SQL they become.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::sandbox::Param;
use crate::upload::{ColumnKind, parse_bool, parse_integer, parse_number};
use crate::{DatasetError, quote_ident};

/// One condition on a column; a query's filters are combined with AND.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Filter {
    /// The column name.
    pub key: String,
    /// The comparison.
    pub operator: FilterOp,
    /// The operand(s), as strings (numbers and booleans in the JSON are accepted and stringified):
    /// one for most operators, one or more for `equals`/`not_equals` (any of them), two for
    /// `between`.
    #[serde(deserialize_with = "string_values")]
    pub value: Vec<String>,
}

/// A filter's comparison, named as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FilterOp {
    /// The column equals (any of) the value(s).
    Equals,
    /// The column equals none of the value(s); rows where it is empty are kept.
    NotEquals,
    /// The column is greater than the value.
    GreaterThan,
    /// The column is less than the value.
    LessThan,
    /// The column's text contains the value, ignoring ASCII case.
    Contains,
    /// The column's text does not contain the value, ignoring ASCII case; empty cells are kept.
    NotContains,
    /// The column lies between the two values, inclusive.
    Between,
}

impl FilterOp {
    fn wire_name(self) -> &'static str {
        match self {
            FilterOp::Equals => "equals",
            FilterOp::NotEquals => "not_equals",
            FilterOp::GreaterThan => "greater_than",
            FilterOp::LessThan => "less_than",
            FilterOp::Contains => "contains",
            FilterOp::NotContains => "not_contains",
            FilterOp::Between => "between",
        }
    }
}

/// Accepts an array of strings, numbers and booleans (UIs send all three).
fn string_values<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    struct Values;
    impl<'de> Visitor<'de> for Values {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of strings, numbers or booleans")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(value) = seq.next_element::<serde_json::Value>()? {
                out.push(match value {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    other => return Err(de::Error::custom(format!("a filter value cannot be {other}"))),
                });
            }
            Ok(out)
        }
    }
    deserializer.deserialize_seq(Values)
}

/// Builds `SELECT * FROM data WHERE …` for `filters` over a table with `schema`, every operand a
/// bound parameter. Operands are converted to the column's type, so `"10"` compares as a number on
/// a numeric column and `"true"` as 1 on a boolean one.
pub(crate) fn filter_sql(
    schema: &[(String, ColumnKind)],
    filters: &[Filter],
    limit: usize,
) -> Result<(String, Vec<Param>), DatasetError> {
    let mut conditions = Vec::with_capacity(filters.len());
    let mut params = Vec::new();
    for filter in filters {
        let (name, kind) = schema
            .iter()
            .find(|(name, _)| *name == filter.key)
            .or_else(|| schema.iter().find(|(name, _)| name.eq_ignore_ascii_case(&filter.key)))
            .ok_or_else(|| DatasetError::Query(format!("unknown column {:?} in filter", filter.key)))?;
        let column = quote_ident(name);
        let op = filter.operator;
        let arity_error = |expected: &str| {
            DatasetError::Query(format!(
                "filter {} on {:?} needs {expected}, got {}",
                op.wire_name(),
                filter.key,
                filter.value.len()
            ))
        };
        let single = || match filter.value.as_slice() {
            [one] => Ok(one.as_str()),
            _ => Err(arity_error("exactly one value")),
        };
        let condition = match op {
            FilterOp::Equals | FilterOp::NotEquals => {
                if filter.value.is_empty() {
                    return Err(arity_error("at least one value"));
                }
                for value in &filter.value {
                    params.push(typed_param(*kind, value, name)?);
                }
                let placeholders = vec!["?"; filter.value.len()].join(", ");
                if op == FilterOp::Equals {
                    format!("{column} IN ({placeholders})")
                } else {
                    format!("({column} IS NULL OR {column} NOT IN ({placeholders}))")
                }
            }
            FilterOp::GreaterThan | FilterOp::LessThan => {
                params.push(typed_param(*kind, single()?, name)?);
                format!("{column} {} ?", if op == FilterOp::GreaterThan { ">" } else { "<" })
            }
            FilterOp::Between => {
                let [low, high] = filter.value.as_slice() else {
                    return Err(arity_error("exactly two values"));
                };
                params.push(typed_param(*kind, low, name)?);
                params.push(typed_param(*kind, high, name)?);
                format!("{column} BETWEEN ? AND ?")
            }
            FilterOp::Contains | FilterOp::NotContains => {
                params.push(Param::Text(format!("%{}%", escape_like(single()?))));
                if op == FilterOp::Contains {
                    format!("{column} LIKE ? ESCAPE '\\'")
                } else {
                    format!("({column} IS NULL OR {column} NOT LIKE ? ESCAPE '\\')")
                }
            }
        };
        conditions.push(condition);
    }
    let mut sql = String::from("SELECT * FROM data");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    // One more than the cap, so the runner can tell the result was truncated.
    sql.push_str(&format!(" LIMIT {}", limit.saturating_add(1)));
    Ok((sql, params))
}

/// The operand as the column's type.
fn typed_param(kind: ColumnKind, value: &str, column: &str) -> Result<Param, DatasetError> {
    let trimmed = value.trim();
    match kind {
        ColumnKind::Integer | ColumnKind::Real => parse_integer(trimmed)
            .map(Param::Int)
            .or_else(|| parse_number(trimmed).map(Param::Real))
            .or_else(|| trimmed.parse::<f64>().ok().filter(|n| n.is_finite()).map(Param::Real))
            .ok_or_else(|| DatasetError::Query(format!("{value:?} is not a number (column {column:?})"))),
        ColumnKind::Bool => match (parse_bool(trimmed), trimmed) {
            (Some(b), _) => Ok(Param::Int(i64::from(b))),
            (None, "1") => Ok(Param::Int(1)),
            (None, "0") => Ok(Param::Int(0)),
            _ => Err(DatasetError::Query(format!("{value:?} is not true or false (column {column:?})"))),
        },
        ColumnKind::Date => Ok(Param::Text(trimmed.to_owned())),
        ColumnKind::Text => Ok(Param::Text(value.to_owned())),
    }
}

/// Escapes `LIKE` wildcards so the operand matches literally (with `ESCAPE '\'`).
fn escape_like(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Vec<(String, ColumnKind)> {
        vec![
            ("product".into(), ColumnKind::Text),
            ("revenue".into(), ColumnKind::Real),
            ("active".into(), ColumnKind::Bool),
            ("day".into(), ColumnKind::Date),
        ]
    }

    fn filter(key: &str, operator: FilterOp, value: &[&str]) -> Filter {
        Filter { key: key.into(), operator, value: value.iter().map(|v| v.to_string()).collect() }
    }

    #[test]
    fn wire_shape_round_trips_with_lenient_values() {
        let parsed: Vec<Filter> = serde_json::from_str(
            r#"[{"key":"revenue","operator":"greater_than","value":[10]},
                {"key":"active","operator":"not_equals","value":[true]},
                {"key":"product","operator":"not_contains","value":["x"]}]"#,
        )
        .unwrap();
        assert_eq!(parsed[0], filter("revenue", FilterOp::GreaterThan, &["10"]));
        assert_eq!(parsed[1], filter("active", FilterOp::NotEquals, &["true"]));
        assert_eq!(serde_json::to_value(&parsed[2]).unwrap()["operator"], "not_contains");
        assert!(serde_json::from_str::<Filter>(r#"{"key":"a","operator":"like","value":[]}"#).is_err());
    }

    #[test]
    fn operands_are_bound_and_typed() {
        let (sql, params) = filter_sql(
            &schema(),
            &[
                filter("Revenue", FilterOp::Between, &["10", "20.5"]),
                filter("active", FilterOp::Equals, &["TRUE"]),
                filter("product", FilterOp::Contains, &["50%_off"]),
            ],
            100,
        )
        .unwrap();
        assert_eq!(
            sql,
            "SELECT * FROM data WHERE \"revenue\" BETWEEN ? AND ? AND \"active\" IN (?) AND \"product\" LIKE ? ESCAPE '\\' LIMIT 101"
        );
        assert_eq!(params, vec![Param::Int(10), Param::Real(20.5), Param::Int(1), Param::Text("%50\\%\\_off%".into())]);
    }

    #[test]
    fn bad_filters_are_query_errors() {
        for bad in [
            filter("nope", FilterOp::Equals, &["x"]),
            filter("revenue", FilterOp::GreaterThan, &["ten"]),
            filter("revenue", FilterOp::Between, &["1"]),
            filter("product", FilterOp::Equals, &[]),
            filter("active", FilterOp::Equals, &["maybe"]),
        ] {
            assert!(
                matches!(filter_sql(&schema(), std::slice::from_ref(&bad), 10), Err(DatasetError::Query(_))),
                "{bad:?}"
            );
        }
    }
}
