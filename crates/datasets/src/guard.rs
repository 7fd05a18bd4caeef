//! The first, lexical gate for user SQL: one statement, starting with `SELECT`, `WITH` or `VALUES`,
//! calling none of the functions that touch files or load code.
//!
//! This is not what makes queries safe — the read-only connection and SQLite's authorizer are (see
//! [`crate::sandbox`]) — but it rejects the obvious attempts early with a precise message, and it
//! catches statements the authorizer has no action code for (`VACUUM INTO` writes a file and is
//! allowed on a read-only connection; `EXPLAIN` is not a query).

use crate::DatasetError;

/// The longest SQL text accepted (also set as `SQLITE_LIMIT_SQL_LENGTH`).
pub(crate) const MAX_SQL_BYTES: usize = 100_000;

/// Functions refused by name even before SQLite sees them. Most do not exist in this build (they are
/// the `sqlite3` shell's); the authorizer's allowlist refuses the others again.
const DENIED_FUNCTIONS: &[&str] = &[
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
    "fts5",
    "zipfile",
    "sqlar_compress",
    "sqlar_uncompress",
    "sqlite_dbpage",
    "sqlite_dbdata",
    "sqlite_compileoption_get",
    "sqlite_compileoption_used",
];

/// A lexical token; trivia (whitespace and comments) is dropped.
#[derive(Debug, PartialEq)]
enum Token {
    /// A bare word (keyword or identifier), lowercased.
    Word(String),
    /// A `"…"`, `` `…` `` or `[…]` identifier, unquoted and lowercased.
    QuotedIdent(String),
    /// A `'…'` string or a number: neither matters here.
    Literal,
    /// `;`
    Semicolon,
    /// `(`
    OpenParen,
    /// Any other punctuation.
    Other,
}

/// Checks that `sql` is a single `SELECT`/`WITH`/`VALUES` statement calling no denied function.
pub(crate) fn check_single_select(sql: &str) -> Result<(), DatasetError> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(DatasetError::Query(format!("the query is longer than {MAX_SQL_BYTES} bytes")));
    }
    let tokens = tokenize(sql);
    let Some(first) = tokens.first() else {
        return Err(DatasetError::Query("the query is empty".into()));
    };
    match first {
        Token::Word(word) if matches!(word.as_str(), "select" | "with" | "values") => {}
        Token::Word(word) => {
            return Err(DatasetError::Forbidden(format!(
                "only a read-only SELECT (or WITH … SELECT) is allowed, not {}",
                word.to_ascii_uppercase()
            )));
        }
        _ => return Err(DatasetError::Forbidden("only a read-only SELECT (or WITH … SELECT) is allowed".into())),
    }
    if let Some(semicolon) = tokens.iter().position(|t| *t == Token::Semicolon)
        && tokens[semicolon..].iter().any(|t| *t != Token::Semicolon)
    {
        return Err(DatasetError::Forbidden("only one statement is allowed".into()));
    }
    for pair in tokens.windows(2) {
        if let [Token::Word(name) | Token::QuotedIdent(name), Token::OpenParen] = pair
            && DENIED_FUNCTIONS.contains(&name.as_str())
        {
            return Err(DatasetError::Forbidden(format!("the function {name}() is not allowed")));
        }
    }
    Ok(())
}

/// Splits SQL into tokens the way SQLite's tokenizer does for the cases that matter: string
/// literals, the three identifier quotes, both comment forms. An unterminated literal or comment
/// runs to the end (SQLite then reports the syntax error).
fn tokenize(sql: &str) -> Vec<Token> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    // Reads a quoted run starting after `open`, where a doubled `close` is an escaped one.
    let quoted = |i: &mut usize, close: char, doubling: bool| -> String {
        let mut text = String::new();
        while *i < chars.len() {
            let c = chars[*i];
            *i += 1;
            if c == close {
                if doubling && chars.get(*i) == Some(&close) {
                    text.push(close);
                    *i += 1;
                } else {
                    break;
                }
            } else {
                text.push(c);
            }
        }
        text
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i = (i + 2).min(chars.len());
            }
            '\'' => {
                i += 1;
                quoted(&mut i, '\'', true);
                tokens.push(Token::Literal);
            }
            '"' | '`' => {
                i += 1;
                tokens.push(Token::QuotedIdent(quoted(&mut i, c, true).to_lowercase()));
            }
            '[' => {
                i += 1;
                tokens.push(Token::QuotedIdent(quoted(&mut i, ']', false).to_lowercase()));
            }
            ';' => {
                i += 1;
                tokens.push(Token::Semicolon);
            }
            '(' => {
                i += 1;
                tokens.push(Token::OpenParen);
            }
            c if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                tokens.push(Token::Literal);
            }
            c if c.is_alphabetic() || c == '_' || !c.is_ascii() => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$' || !chars[i].is_ascii())
                {
                    i += 1;
                }
                tokens.push(Token::Word(chars[start..i].iter().collect::<String>().to_lowercase()));
            }
            _ => {
                i += 1;
                tokens.push(Token::Other);
            }
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(sql: &str) -> bool {
        matches!(check_single_select(sql), Err(DatasetError::Forbidden(_)))
    }

    #[test]
    fn plain_selects_pass() {
        for sql in [
            "SELECT * FROM data",
            "  select product, sum(revenue) from data group by product;",
            "WITH t AS (SELECT 1) SELECT * FROM t;;  -- trailing comment",
            "VALUES (1, 2)",
            "/* leading */ SELECT ';' AS semi, \"a;b\" FROM data",
            "SELECT 'readfile(' || x FROM data",
            "SELECT [weird;name] FROM data",
        ] {
            assert_eq!(check_single_select(sql).map_err(|e| e.to_string()), Ok(()), "{sql}");
        }
    }

    #[test]
    fn other_statements_are_forbidden() {
        for sql in [
            "DELETE FROM data",
            "PRAGMA writable_schema=1",
            "ATTACH DATABASE 'x' AS y",
            "VACUUM INTO '/tmp/x'",
            "EXPLAIN SELECT 1",
            "(SELECT 1)",
            "-- hidden\nDROP TABLE data",
        ] {
            assert!(forbidden(sql), "{sql}");
        }
    }

    #[test]
    fn a_second_statement_is_forbidden() {
        assert!(forbidden("SELECT 1; DELETE FROM data"));
        assert!(forbidden("SELECT 1;/* c */SELECT 2"));
        assert!(forbidden("SELECT ''';'; DROP TABLE data"));
    }

    #[test]
    fn denied_functions_are_forbidden_however_quoted() {
        assert!(forbidden("SELECT load_extension('x')"));
        assert!(forbidden("SELECT READFILE ('/etc/passwd')"));
        assert!(forbidden("SELECT \"writefile\"('/tmp/x', 'y')"));
        assert!(forbidden("SELECT `edit`(1)"));
    }

    #[test]
    fn empty_and_overlong_queries_are_query_errors() {
        assert!(matches!(check_single_select(" -- nothing "), Err(DatasetError::Query(_))));
        let long = format!("SELECT '{}'", "x".repeat(MAX_SQL_BYTES));
        assert!(matches!(check_single_select(&long), Err(DatasetError::Query(_))));
    }
}
