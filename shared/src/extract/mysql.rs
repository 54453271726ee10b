//! MySQL and MariaDB sources: one read of a table or query, its rows rendered as JSON lines.
//!
//! Rows come over the text protocol, so every value arrives as the server's own text of it; the
//! column types of the result decide how that text lands: integers and floats as JSON numbers,
//! DECIMAL as a JSON string of its exact digits (a JSON number would pass through a binary float
//! in most readers), dates and times as the server writes them, binary strings in base64, NULL
//! as null. Sessions read in UTC, so TIMESTAMP columns land as UTC.

use std::io::Write;
use std::time::Duration;

use base64::Engine as _;
use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable;
use mysql_async::{Column, Conn, OptsBuilder, SslOpts, Value};

use super::ndjson::PartSpooler;
use super::songs::{ReadPlan, SourceRead};
use crate::config::{DbConfig, SslMode};
use crate::error::{Error, Result};

/// The collation id of binary strings (BLOB, BINARY, VARBINARY).
const BINARY_CHARSET: u16 = 63;

/// How one result column's text becomes JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Render {
    /// The text is a number: written as is.
    Number,
    /// DECIMAL: the exact digits, as a JSON string.
    DecimalText,
    /// BIT(n): the big-endian bytes, as a JSON number.
    Bits,
    /// Binary strings: base64.
    Base64,
    /// Everything else: a JSON string of the text.
    Text,
}

fn render_of(c: &Column) -> Render {
    use ColumnType::*;
    match c.column_type() {
        MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_LONG | MYSQL_TYPE_INT24
        | MYSQL_TYPE_LONGLONG | MYSQL_TYPE_YEAR | MYSQL_TYPE_FLOAT | MYSQL_TYPE_DOUBLE => {
            Render::Number
        }
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => Render::DecimalText,
        MYSQL_TYPE_BIT => Render::Bits,
        MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
        | MYSQL_TYPE_BLOB
        | MYSQL_TYPE_STRING
        | MYSQL_TYPE_VAR_STRING
        | MYSQL_TYPE_VARCHAR
            if c.character_set() == BINARY_CHARSET
                && c.flags().contains(ColumnFlags::BINARY_FLAG) =>
        {
            Render::Base64
        }
        _ => Render::Text,
    }
}

/// The type name a watermark keeps (`DATE`, `LONGLONG`, ...): a changed column type is noticed.
fn type_name(c: &Column) -> String {
    let raw = format!("{:?}", c.column_type());
    raw.trim_start_matches("MYSQL_TYPE_").to_string()
}

/// Writes rows of one result as JSON objects, keys in column order.
struct RowWriter {
    /// `"name":` of each column, escaped once.
    keys: Vec<Vec<u8>>,
    renders: Vec<Render>,
    line: Vec<u8>,
}

impl RowWriter {
    fn new(columns: &[Column]) -> Result<Self> {
        let keys = columns
            .iter()
            .map(|c| {
                let mut k = serde_json::to_vec(&*c.name_str()).map_err(json_err)?;
                k.push(b':');
                Ok(k)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RowWriter {
            keys,
            renders: columns.iter().map(render_of).collect(),
            line: Vec::with_capacity(1024),
        })
    }

    fn render(&mut self, row: &mysql_async::Row, what: &str) -> Result<&[u8]> {
        self.line.clear();
        self.line.push(b'{');
        for (i, (key, render)) in self.keys.iter().zip(&self.renders).enumerate() {
            if i > 0 {
                self.line.push(b',');
            }
            self.line.extend_from_slice(key);
            match row.as_ref(i) {
                None | Some(Value::NULL) => self.line.extend_from_slice(b"null"),
                Some(Value::Bytes(b)) => write_value(&mut self.line, *render, b).map_err(|m| {
                    Error::InvalidSourcePayload(format!(
                        "{what}: column {}: {m}",
                        String::from_utf8_lossy(&key[..key.len() - 1])
                    ))
                })?,
                // The text protocol sends bytes only; anything else is a driver change.
                Some(other) => {
                    let text = other.as_sql(false);
                    serde_json::to_writer(&mut self.line, &text).map_err(json_err)?
                }
            }
        }
        self.line.push(b'}');
        Ok(&self.line)
    }
}

fn write_value(out: &mut Vec<u8>, render: Render, b: &[u8]) -> std::result::Result<(), String> {
    match render {
        Render::Number => {
            // MySQL prints finite numbers only; anything else would break the JSON line.
            if is_json_number(b) {
                out.extend_from_slice(b);
            } else {
                return Err(format!("{:?} is not a number", String::from_utf8_lossy(b)));
            }
        }
        Render::DecimalText => {
            if !is_json_number(b) {
                return Err(format!(
                    "{:?} is not a decimal number",
                    String::from_utf8_lossy(b)
                ));
            }
            out.push(b'"');
            out.extend_from_slice(b);
            out.push(b'"');
        }
        Render::Bits => {
            if b.len() > 8 {
                return Err(format!("BIT value of {} bytes", b.len()));
            }
            let v = b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
            write!(out, "{v}").map_err(|e| e.to_string())?;
        }
        Render::Base64 => {
            out.push(b'"');
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(b)
                    .as_bytes(),
            );
            out.push(b'"');
        }
        Render::Text => {
            let s = std::str::from_utf8(b).map_err(|e| format!("not UTF-8 text: {e}"))?;
            serde_json::to_writer(&mut *out, s).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// `-12`, `3.5`, `1e-7`: the shapes MySQL prints numbers in, all valid JSON numbers.
fn is_json_number(b: &[u8]) -> bool {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Number>(s).ok())
        .is_some()
}

fn json_err(e: serde_json::Error) -> Error {
    Error::InvalidSourcePayload(format!("cannot write a row as JSON: {e}"))
}

/// MySQL server errors worth another attempt: lock waits and deadlocks, statement timeouts,
/// too many connections, shutdowns. Everything else (SQL, access) is the request's fault.
const RETRYABLE_SERVER_CODES: &[u16] = &[
    1040, // ER_CON_COUNT_ERROR
    1053, // ER_SERVER_SHUTDOWN
    1205, // ER_LOCK_WAIT_TIMEOUT
    1213, // ER_LOCK_DEADLOCK
    1969, // MariaDB ER_STATEMENT_TIMEOUT
    3024, // MySQL ER_QUERY_TIMEOUT (max_execution_time)
];

/// Classifies driver failures as the PostgreSQL path does: connection trouble is retryable,
/// a TLS setup that cannot work is configuration, server refusals are rejections.
pub(crate) fn mysql_err(context: &str, e: mysql_async::Error, db: &DbConfig) -> Error {
    use mysql_async::{DriverError, Error as E};
    let msg = format!("{context}: {e}");
    match &e {
        E::Server(s) if RETRYABLE_SERVER_CODES.contains(&s.code) => Error::SourceUnavailable(msg),
        E::Server(_) => Error::SourceRejected(msg),
        _ if is_tls_setup_failure(&e) => Error::Configuration(format!(
            "{msg} (check {p}_SSLMODE and {p}_SSL_ROOT_CERT against the server)",
            p = db.prefix()
        )),
        E::Io(_) | E::Driver(DriverError::ConnectionClosed) => Error::SourceUnavailable(msg),
        E::Url(_) => Error::Configuration(msg),
        _ => Error::SourceUnavailable(msg),
    }
}

/// A TLS handshake refused for a reason of configuration (untrusted or mismatched certificate,
/// a server without TLS), not a network interruption: retrying cannot help.
fn is_tls_setup_failure(e: &mysql_async::Error) -> bool {
    use mysql_async::{DriverError, Error as E, IoError};
    match e {
        E::Io(IoError::Tls(_)) | E::Driver(DriverError::NoClientSslFlagFromServer) => true,
        // rustls reports through the stream: an I/O error wrapping its own error.
        E::Io(IoError::Io(io)) => io
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()),
        _ => false,
    }
}

/// Opens a session: TLS per `sslmode`, UTC, utf8mb4, the statement time limit.
pub async fn connect(db: &DbConfig, password: Option<&str>) -> Result<Conn> {
    let ssl = match db.sslmode {
        SslMode::Disable => None,
        mode => {
            // mysql_async builds its rustls config from the process's default provider.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let mut ssl = SslOpts::default();
            if let Some(ca) = &db.ssl_root_cert {
                ssl = ssl.with_root_certs(vec![ca.clone().into()]);
            }
            if mode == SslMode::Require {
                // As libpq's `require`: encrypted, the server not authenticated.
                ssl = ssl
                    .with_danger_accept_invalid_certs(true)
                    .with_danger_skip_domain_validation(true);
            }
            Some(ssl)
        }
    };
    let opts = OptsBuilder::default()
        .ip_or_hostname(db.host.clone())
        .tcp_port(db.port)
        .user(Some(db.user.clone()))
        .pass(password.map(str::to_string))
        .db_name((!db.database.is_empty()).then(|| db.database.clone()))
        .prefer_socket(false)
        .ssl_opts(ssl)
        .tcp_keepalive(Some(Duration::from_secs(30)));
    let context = format!("connecting to {}", db.target());
    let mut conn = tokio::time::timeout(db.connect_timeout, Conn::new(opts))
        .await
        .map_err(|_| {
            Error::SourceUnavailable(format!(
                "{context}: no answer within {:?}",
                db.connect_timeout
            ))
        })?
        .map_err(|e| mysql_err(&context, e, db))?;
    conn.query_drop("SET time_zone = '+00:00', NAMES utf8mb4")
        .await
        .map_err(|e| mysql_err(&context, e, db))?;
    // MySQL limits SELECTs in milliseconds, MariaDB any statement in seconds.
    let ms = db.statement_timeout.as_millis();
    if conn
        .query_drop(format!("SET SESSION max_execution_time = {ms}"))
        .await
        .is_err()
    {
        conn.query_drop(format!(
            "SET SESSION max_statement_time = {}",
            db.statement_timeout.as_secs_f64()
        ))
        .await
        .map_err(|e| mysql_err(&context, e, db))?;
    }
    Ok(conn)
}

/// Quotes a plain identifier for MySQL (validated by the caller).
pub fn quote(ident: &str) -> String {
    format!("`{ident}`")
}

/// A string literal of `v` (the server compares it with the column's own type).
fn literal(v: &str) -> String {
    Value::Bytes(v.as_bytes().to_vec()).as_sql(false)
}

/// Reads the relation of `plan` in one consistent snapshot into `spooler`.
pub(crate) async fn read(
    db: &DbConfig,
    password: Option<&str>,
    plan: &ReadPlan<'_>,
    spooler: &mut PartSpooler,
) -> Result<SourceRead> {
    let what = &plan.what;
    let context = format!("reading {what}");
    let err = |e| mysql_err(&context, e, db);
    let mut conn = connect(db, password).await?;
    conn.query_drop(
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ; \
         START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
    )
    .await
    .map_err(err)?;
    let from = &plan.from;
    let (sql, upto) = match &plan.column {
        None => (format!("SELECT * FROM {from} AS t"), None),
        Some(col) => {
            let mut max = conn
                .query_iter(format!("SELECT MAX(t.{col}) FROM {from} AS t"))
                .await
                .map_err(err)?;
            let columns = max.columns().ok_or_else(|| {
                Error::InvalidSourcePayload(format!("{context}: MAX() returned no column"))
            })?;
            let ty = columns.first().map(type_name).unwrap_or_default();
            let row = max.next().await.map_err(err)?;
            max.drop_result().await.map_err(err)?;
            let value = match row.as_ref().and_then(|r| r.as_ref(0)) {
                Some(Value::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            };
            plan.check_type(&ty)?;
            let Some(value) = value else {
                conn.query_drop("COMMIT").await.map_err(err)?;
                return Ok(SourceRead {
                    rows: false,
                    upto: None,
                });
            };
            let mut cond = format!("t.{col} <= {}", literal(&value));
            if let Some(w) = plan.since {
                cond.push_str(&format!(" AND t.{col} >= {}", literal(&w.value)));
            }
            (
                format!("SELECT * FROM {from} AS t WHERE {cond}"),
                Some((value, ty)),
            )
        }
    };
    let mut rows = conn.query_iter(sql).await.map_err(err)?;
    let columns = rows.columns().unwrap_or_else(|| Vec::new().into());
    let mut writer = RowWriter::new(&columns)?;
    let mut n: u64 = 0;
    while let Some(row) = rows.next().await.map_err(err)? {
        spooler.write_line(writer.render(&row, what)?)?;
        n += 1;
        if n.is_multiple_of(100_000) {
            tracing::info!(rows = n, relation = %what, "streaming");
        }
    }
    drop(rows);
    conn.query_drop("COMMIT").await.map_err(err)?;
    let _ = conn.disconnect().await;
    Ok(SourceRead { rows: true, upto })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_render_by_column_kind() {
        let mut out = Vec::new();
        write_value(&mut out, Render::Number, b"-12.5e3").unwrap();
        out.push(b' ');
        write_value(&mut out, Render::DecimalText, b"98765432.10").unwrap();
        out.push(b' ');
        write_value(&mut out, Render::Bits, &[1, 0]).unwrap();
        out.push(b' ');
        write_value(&mut out, Render::Base64, &[0, 255]).unwrap();
        out.push(b' ');
        write_value(&mut out, Render::Text, "a \"q\"\n é".as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"-12.5e3 "98765432.10" 256 "AP8=" "a \"q\"\n é""#
        );
        assert!(write_value(&mut Vec::new(), Render::Number, b"inf").is_err());
        assert!(write_value(&mut Vec::new(), Render::Text, &[0xff]).is_err());
        assert_eq!(literal("it's"), "'it\\'s'");
    }
}
