//! Reading a source row's text cells into our types, with errors that name the row.

use chrono::{DateTime, NaiveDateTime};
use sha2::{Digest, Sha256};

use super::{ImportError, source::TextRow};
use crate::store::{self, JsonObject};

/// A source row being read: its table and key for messages, and its cells.
pub(crate) struct Cells<'r> {
    /// The source table.
    pub table: &'static str,
    /// How the row is named in messages (its id, or e.g. a project name).
    pub row: String,
    /// The cells, by position.
    pub cells: &'r TextRow,
}

impl Cells<'_> {
    /// An error about this row.
    pub fn error(&self, reason: impl Into<String>) -> ImportError {
        ImportError::Row {
            table: self.table,
            row: self.row.clone(),
            reason: reason.into(),
        }
    }

    /// The text of cell `i`, `None` for NULL.
    pub fn text(&self, i: usize) -> Option<&str> {
        self.cells.get(i).and_then(Option::as_deref)
    }

    /// A non-NULL text cell.
    pub fn required(&self, i: usize, column: &str) -> Result<&str, ImportError> {
        self.text(i)
            .ok_or_else(|| self.error(format!("{column} is NULL")))
    }

    /// A whole number, or NULL.
    pub fn int(&self, i: usize, column: &str) -> Result<Option<i64>, ImportError> {
        self.text(i)
            .map(|t| {
                t.trim()
                    .parse::<i64>()
                    .map_err(|_| self.error(format!("{column} is not a whole number: {t:?}")))
            })
            .transpose()
    }

    /// A non-NULL whole number.
    pub fn required_int(&self, i: usize, column: &str) -> Result<i64, ImportError> {
        self.int(i, column)?
            .ok_or_else(|| self.error(format!("{column} is NULL")))
    }

    /// A boolean as SQLite (`1`, `0`, `'FALSE'`), PostgreSQL (`true`) or MariaDB write it.
    pub fn boolean(&self, i: usize, column: &str) -> Result<bool, ImportError> {
        let t = self.required(i, column)?;
        match t.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "t" => Ok(true),
            "0" | "false" | "f" => Ok(false),
            _ => Err(self.error(format!("{column} is not a boolean: {t:?}"))),
        }
    }

    /// A timestamp (naive UTC), or NULL.
    pub fn time(&self, i: usize, column: &str) -> Result<Option<NaiveDateTime>, ImportError> {
        self.text(i)
            .map(|t| {
                parse_time(t).ok_or_else(|| self.error(format!("{column} is not a time: {t:?}")))
            })
            .transpose()
    }

    /// A non-NULL timestamp.
    pub fn required_time(&self, i: usize, column: &str) -> Result<NaiveDateTime, ImportError> {
        self.time(i, column)?
            .ok_or_else(|| self.error(format!("{column} is NULL")))
    }

    /// A JSON object's text (validated), `{}` for NULL.
    pub fn json_object(&self, i: usize, column: &str) -> Result<JsonObject, ImportError> {
        match self.text(i) {
            None => Ok(JsonObject::default()),
            Some(t) => {
                JsonObject::try_from(t.to_owned()).map_err(|e| self.error(format!("{column}: {e}")))
            }
        }
    }

    /// A hash of every cell: equal means the row did not change.
    pub fn digest(&self) -> String {
        digest_of(self.cells.iter().map(Option::as_deref))
    }
}

/// A hash of a sequence of nullable texts (NULL and "" differ).
pub(crate) fn digest_of<'a>(cells: impl Iterator<Item = Option<&'a str>>) -> String {
    let mut hash = Sha256::new();
    for cell in cells {
        match cell {
            None => hash.update([0u8]),
            Some(t) => {
                hash.update([1u8]);
                hash.update((t.len() as u64).to_le_bytes());
                hash.update(t.as_bytes());
            }
        }
    }
    hex::encode(&hash.finalize()[..16])
}

/// A timestamp as the sources write them: `2022-01-01 12:00:00[.123456]`, with `T` too,
/// and an offset (converted to UTC) when one is given. Truncated to microseconds.
pub(crate) fn parse_time(text: &str) -> Option<NaiveDateTime> {
    let t = text.trim();
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(time) = NaiveDateTime::parse_from_str(t, format) {
            return Some(store::truncate(time));
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(time) = DateTime::parse_from_str(t, format) {
            return Some(store::truncate(time.naive_utc()));
        }
    }
    // A date alone (v2's `users.createdat`) is midnight.
    chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_spelling_the_sources_use() {
        let t = |s| parse_time(s).map(|t| t.to_string());
        assert_eq!(
            t("2022-01-01 12:00:00").as_deref(),
            Some("2022-01-01 12:00:00")
        );
        assert_eq!(
            t("2022-01-01 12:00:00.123456").as_deref(),
            Some("2022-01-01 12:00:00.123456")
        );
        assert_eq!(
            t("2022-01-01T12:00:00.1234567").as_deref(),
            Some("2022-01-01 12:00:00.123456")
        );
        assert_eq!(
            t("2022-01-01 12:00:00+02:00").as_deref(),
            Some("2022-01-01 10:00:00")
        );
        assert_eq!(t("2016-02-24").as_deref(), Some("2016-02-24 00:00:00"));
        assert_eq!(t("yesterday"), None);
    }

    #[test]
    fn digests_tell_null_from_empty_and_cells_apart() {
        let d = |c: &[Option<&str>]| digest_of(c.iter().copied());
        assert_ne!(d(&[None]), d(&[Some("")]));
        assert_ne!(d(&[Some("ab"), Some("c")]), d(&[Some("a"), Some("bc")]));
        assert_eq!(d(&[Some("x"), None]), d(&[Some("x"), None]));
    }
}
