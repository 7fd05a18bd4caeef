//! Reading columns the same way from SQLite and Postgres rows.

use sqlx::Row;

use crate::StoreResult;

/// Typed column access shared by both backends' row types.
pub(crate) trait RowExt {
    fn text(&self, column: &str) -> StoreResult<String>;
    fn opt_text(&self, column: &str) -> StoreResult<Option<String>>;
    fn int(&self, column: &str) -> StoreResult<i64>;
    fn opt_int(&self, column: &str) -> StoreResult<Option<i64>>;
}

macro_rules! impl_row_ext {
    ($row:ty) => {
        impl RowExt for $row {
            fn text(&self, column: &str) -> StoreResult<String> {
                Ok(self.try_get(column)?)
            }
            fn opt_text(&self, column: &str) -> StoreResult<Option<String>> {
                Ok(self.try_get(column)?)
            }
            fn int(&self, column: &str) -> StoreResult<i64> {
                Ok(self.try_get(column)?)
            }
            fn opt_int(&self, column: &str) -> StoreResult<Option<i64>> {
                Ok(self.try_get(column)?)
            }
        }
    };
}

impl_row_ext!(sqlx::sqlite::SqliteRow);
impl_row_ext!(sqlx::postgres::PgRow);
