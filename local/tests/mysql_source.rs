//! MySQL sources against a real local MariaDB: the classicmodels pipeline's extraction (types,
//! incremental watermarks) through the transform into its Iceberg tables, every source row once;
//! each MySQL type's landing; a connection lost mid-read started over.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use arrow_array::Array;
use chrono::NaiveDate;
use deftunes::config::SongsExtractConfig;
use deftunes::extract::songs::SongsExtractor;
use deftunes::extract::{ExtractBatch, ExtractSummary};
use deftunes::storage::Lake;
use deftunes::transform::events::ObjectRef;
use deftunes::transform::{TransformConfig, Transformer};
use deftunes_local::classicmodels::{self, ClassicModels, ClassicScale};
use deftunes_local::mariadb::LocalMariaDb;
use mysql_async::prelude::Queryable;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

const CLASSICMODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../pipelines/classicmodels");

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// The transform's and the extractor's settings over `work`'s lake and catalog.
fn settings(
    work: &std::path::Path,
    db: &LocalMariaDb,
    pipeline: &str,
    extra: &[(&str, &str)],
) -> HashMap<String, String> {
    let mut env = common::env_of(work, &[("PIPELINE_DIR", pipeline)]);
    env.extend(db.env());
    env.insert("MYSQL_CONNECT_TIMEOUT_SECS".into(), "5".into());
    env.insert("SQL_RETRY_BASE_MS".into(), "10".into());
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn extractor(env: &HashMap<String, String>, work: &std::path::Path) -> SongsExtractor {
    SongsExtractor::new(
        SongsExtractConfig::from_env(env).unwrap(),
        Lake::local(work.join("lake")),
        None,
    )
}

async fn records(lake: &Lake, keys: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for k in keys {
        let body = lake.get_bytes(k).await.unwrap();
        for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            out.push(serde_json::from_slice(line).unwrap());
        }
    }
    out
}

async fn count(conn: &mut mysql_async::Conn, sql: &str) -> u64 {
    conn.query_first::<u64, _>(sql).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classicmodels_lands_typed_rows_incrementally_and_each_table_holds_each_source_row_once() {
    let work = tempfile::tempdir().unwrap();
    let db = LocalMariaDb::start(&work.path().join("mariadb"))
        .await
        .unwrap();
    let mut conn = db.connect().await.unwrap();
    let data = ClassicModels::generate(5, &ClassicScale::times(1));
    let first_cut = d("2004-06-30");
    let loaded = classicmodels::load(&mut conn, &data, Some(first_cut), true)
        .await
        .unwrap();
    assert_eq!(loaded.tables["customers"], 122);

    let env = settings(work.path(), &db, CLASSICMODELS, &[]);
    let ex = extractor(&env, work.path());
    let lake = Lake::local(work.path().join("lake"));
    let batch: ExtractBatch = serde_json::from_value(
        ex.handle(&json!({"ingest_date": "2004-07-01"}))
            .await
            .unwrap(),
    )
    .unwrap();
    let by_source: BTreeMap<String, &ExtractSummary> = batch
        .extracts
        .iter()
        .map(|s| (s.source.trim_start_matches("mysql/").to_string(), s))
        .collect();
    assert_eq!(by_source.len(), 8);
    for (table, rows) in &loaded.tables {
        assert_eq!(
            by_source[table].records, *rows,
            "{table}: landed = source rows"
        );
    }

    // Types land as the source has them: exact decimals in strings, dates, nulls, numbers.
    let products = records(&lake, &by_source["products"].keys).await;
    let p0 = products
        .iter()
        .find(|r| r["productCode"] == data.products[0].code.as_str())
        .unwrap();
    assert_eq!(
        p0["buyPrice"],
        classicmodels::money(data.products[0].buy_cents)
    );
    assert_eq!(p0["quantityInStock"], data.products[0].stock);
    let orders = records(&lake, &by_source["orders"].keys).await;
    let o0 = orders.iter().find(|r| r["orderNumber"] == 10100).unwrap();
    assert_eq!(o0["orderDate"], data.orders[0].date.to_string());
    assert!(orders.iter().any(|r| r["shippedDate"].is_null()));
    let employees = records(&lake, &by_source["employees"].keys).await;
    assert!(employees.iter().any(|r| r["reportsTo"].is_null()));
    let watermark: Value = serde_json::from_slice(
        &lake
            .get_bytes("state/classicmodels/orders.watermark.json")
            .await
            .unwrap(),
    )
    .unwrap();
    let last_early = data
        .orders
        .iter()
        .map(|o| o.date)
        .filter(|&x| x <= first_cut)
        .max()
        .unwrap();
    assert_eq!(watermark["value"], last_early.to_string());
    assert_eq!(watermark["type"], "DATE");

    // New business arrives; the next run reads from the watermarks on (inclusive).
    let all = classicmodels::load(&mut conn, &data, None, false)
        .await
        .unwrap();
    assert!(all.tables["orders"] > loaded.tables["orders"]);
    let second: ExtractBatch = serde_json::from_value(
        ex.handle(&json!({"ingest_date": "2005-06-01"}))
            .await
            .unwrap(),
    )
    .unwrap();
    let since = |s: &str| {
        second
            .extracts
            .iter()
            .find(|e| e.source == s)
            .unwrap()
            .records
    };
    assert_eq!(
        since("mysql/orders"),
        count(
            &mut conn,
            &format!("SELECT COUNT(*) FROM classicmodels.orders WHERE orderDate >= '{last_early}'")
        )
        .await,
        "only the orders from the watermark on"
    );
    assert_eq!(
        since("mysql/customers"),
        122,
        "reference tables are read whole"
    );

    // Through the transform: each table holds each source row once, decimals exact.
    let cfg = TransformConfig::from_env(&env).unwrap();
    let t = Transformer::new(cfg, &env as &dyn deftunes::config::Env)
        .await
        .unwrap();
    let mut keys: Vec<String> = batch.keys.iter().chain(&second.keys).cloned().collect();
    keys.sort();
    for key in &keys {
        let o = t
            .transform_object(&ObjectRef {
                key: key.clone(),
                version: None,
            })
            .await
            .unwrap();
        assert_eq!(o.records_quarantined, 0, "{key}");
    }
    for (table, rows) in &all.tables {
        let ice = t.catalog().load_table(&t.table_ident(table)).await.unwrap();
        let batches = common::read_table(&ice, None).await;
        let n: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(n as u64, *rows, "{table}: table rows = source rows");
        if table == "orderdetails" {
            let mut cents: i128 = 0;
            let mut keys = std::collections::HashSet::new();
            for b in &batches {
                let q = common::col::<arrow_array::Int32Array>(b, "quantity_ordered");
                let p = common::col::<arrow_array::Decimal128Array>(b, "price_each");
                let o = common::col::<arrow_array::Int32Array>(b, "order_number");
                let c = common::col::<arrow_array::StringArray>(b, "product_code");
                for i in 0..b.num_rows() {
                    cents += i128::from(q.value(i)) * p.value(i);
                    assert!(
                        keys.insert((o.value(i), c.value(i).to_string())),
                        "one row per key"
                    );
                }
            }
            let source: String = conn
                .query_first(
                    "SELECT CAST(SUM(quantityOrdered * priceEach) AS CHAR) FROM classicmodels.orderdetails",
                )
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                classicmodels::money(cents as i64),
                source,
                "revenue to the cent"
            );
        }
    }
}

/// A spec of one query source over `shop.types`, for the type test.
const TYPES_SPEC: &str = r#"
name = "shop"
namespace = "shop"
[sources.types]
kind = "sql"
engine = "mysql"
landing = "mysql/types"
table = "shop.types"
source_from = "mysql"
[tables.types]
source = "types"
key = ["id"]
partition = { column = "ingest_on" }
columns = [
  { name = "id", type = "int" },
  { name = "amount", type = "decimal(20,6)" },
  { name = "day", type = "date" },
  { name = "at", type = "timestamp" },
]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mysql_type_lands_as_json_and_a_lost_connection_is_read_again_from_the_start() {
    let work = tempfile::tempdir().unwrap();
    let db = LocalMariaDb::start(&work.path().join("mariadb"))
        .await
        .unwrap();
    let mut conn = db.connect().await.unwrap();
    conn.query_drop(
        "CREATE DATABASE shop;
         CREATE TABLE shop.types (
           id int PRIMARY KEY, tiny tinyint, big bigint unsigned, amount decimal(20,6),
           f float, dbl double, day date, at datetime(6), ts timestamp NULL, t time, y year,
           b bit(10), bin varbinary(8), blb blob, j json, txt text);
         SET time_zone = '+02:00';
         INSERT INTO shop.types VALUES
           (1, -128, 18446744073709551615, 12345678901234.123456, 0.1, 2.5e-300,
            '2004-02-29', '2004-02-29 23:59:59.123456', '2020-01-01 02:00:00', '-01:30:00', 2004,
            b'1000000001', x'00ff10', x'deadbeef', '{\"a\": [1, 2]}', 'quote \" backslash \\\\ é 漢字'),
           (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
    )
    .await
    .unwrap();
    let spec = work.path().join("shop");
    std::fs::create_dir_all(&spec).unwrap();
    std::fs::write(spec.join("pipeline.toml"), TYPES_SPEC).unwrap();
    let spec = spec.display().to_string();
    let env = settings(work.path(), &db, &spec, &[]);
    let ex = extractor(&env, work.path());
    let lake = Lake::local(work.path().join("lake"));
    let s: ExtractSummary = serde_json::from_value(
        ex.handle(&json!({"ingest_date": "2020-01-01"}))
            .await
            .unwrap(),
    )
    .unwrap();
    let rows = records(&lake, &s.keys).await;
    let one = rows.iter().find(|r| r["id"] == 1).unwrap();
    let text = serde_json::to_string(one).unwrap();
    assert_eq!(one["tiny"], -128);
    assert_eq!(one["big"].as_u64(), Some(u64::MAX), "{text}");
    assert_eq!(one["amount"], "12345678901234.123456");
    assert_eq!(one["f"].as_f64(), Some(0.1));
    assert_eq!(one["dbl"].as_f64(), Some(2.5e-300));
    assert_eq!(one["day"], "2004-02-29");
    assert_eq!(one["at"], "2004-02-29 23:59:59.123456");
    assert_eq!(one["ts"], "2020-01-01 00:00:00", "TIMESTAMP in UTC");
    assert_eq!(one["t"], "-01:30:00");
    assert_eq!(one["y"], 2004);
    assert_eq!(one["b"], 513);
    assert_eq!(one["bin"], "AP8Q");
    assert_eq!(one["blb"], "3q2+7w==");
    assert_eq!(one["j"], "{\"a\": [1, 2]}");
    assert_eq!(one["txt"], "quote \" backslash \\ é 漢字");
    let two = rows.iter().find(|r| r["id"] == 2).unwrap();
    assert!(two
        .as_object()
        .unwrap()
        .iter()
        .all(|(k, v)| k == "id" || v.is_null()));
    // The decimal and the datetime reach the table exactly.
    let cfg = TransformConfig::from_env(&env).unwrap();
    let t = Transformer::new(cfg, &env as &dyn deftunes::config::Env)
        .await
        .unwrap();
    for key in &s.keys {
        t.transform_object(&ObjectRef {
            key: key.clone(),
            version: None,
        })
        .await
        .unwrap();
    }
    let ice = t
        .catalog()
        .load_table(&t.table_ident("types"))
        .await
        .unwrap();
    let batches = common::read_table(&ice, None).await;
    let amounts: Vec<Option<i128>> = batches
        .iter()
        .flat_map(|b| {
            let a = common::col::<arrow_array::Decimal128Array>(b, "amount");
            (0..b.num_rows())
                .map(|i| a.is_valid(i).then(|| a.value(i)))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        amounts.contains(&Some(12_345_678_901_234_123_456)),
        "{amounts:?}"
    );

    // A proxy that cuts the first connection once the rows start flowing.
    conn.query_drop("CREATE TABLE shop.big (id int PRIMARY KEY, pad varchar(200))")
        .await
        .unwrap();
    for chunk in (1..=20_000).collect::<Vec<i32>>().chunks(2_000) {
        let values: Vec<String> = chunk
            .iter()
            .map(|i| format!("({i}, REPEAT('x', 100))"))
            .collect();
        conn.query_drop(format!("INSERT INTO shop.big VALUES {}", values.join(",")))
            .await
            .unwrap();
    }
    let proxy = CuttingProxy::start(db.port(), 200_000).await;
    let spec_big = work.path().join("big");
    std::fs::create_dir_all(&spec_big).unwrap();
    std::fs::write(
        spec_big.join("pipeline.toml"),
        TYPES_SPEC
            .replace("shop.types", "shop.big")
            .replace("mysql/types", "mysql/big")
            .replace(
                r#"  { name = "amount", type = "decimal(20,6)" },
  { name = "day", type = "date" },
  { name = "at", type = "timestamp" },"#,
                r#"  { name = "pad", type = "string" },"#,
            ),
    )
    .unwrap();
    let spec_big = spec_big.display().to_string();
    let port = proxy.port.to_string();
    let through_proxy = |attempts: &str| {
        settings(
            work.path(),
            &db,
            &spec_big,
            &[("MYSQL_PORT", &port), ("SQL_MAX_ATTEMPTS", attempts)],
        )
    };
    // One attempt: the cut read fails as retryable and lands nothing.
    let e = extractor(&through_proxy("1"), work.path())
        .handle(&json!({"ingest_date": "2020-01-01"}))
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), "SourceUnavailable", "{e}");
    assert!(lake
        .list("landing_zone/mysql/big/")
        .await
        .unwrap()
        .is_empty());
    // Three attempts: the second reads it all, once.
    proxy.arm();
    let s: ExtractSummary = serde_json::from_value(
        extractor(&through_proxy("3"), work.path())
            .handle(&json!({"ingest_date": "2020-01-01"}))
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        proxy.cuts() >= 2,
        "the proxy cut a read each time it was armed"
    );
    assert_eq!(s.records, 20_000);
    let mut ids: Vec<i64> = records(&lake, &s.keys)
        .await
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20_000, "every row once");
}

/// A test CA and a server certificate it signs for 127.0.0.1, as PEM files in `dir`:
/// (CA, certificate, key).
fn tls_files(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "deftunes test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server-key.pem"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    (paths.0, paths.1, paths.2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_modes_against_a_server_that_requires_tls() {
    let work = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_files(work.path());
    let db = LocalMariaDb::start_with(&work.path().join("mariadb"), Some((&cert, &key)))
        .await
        .unwrap();
    let spec = work.path().join("shop");
    std::fs::create_dir_all(&spec).unwrap();
    std::fs::write(
        spec.join("pipeline.toml"),
        TYPES_SPEC.replace("table = \"shop.types\"", "query = \"SELECT 1 AS id\""),
    )
    .unwrap();
    let spec = spec.display().to_string();
    let ca = ca.display().to_string();
    let run = |extra: &[(&str, &str)]| {
        let env = settings(work.path(), &db, &spec, extra);
        let ex = extractor(&env, work.path());
        async move { ex.handle(&json!({"ingest_date": "2020-01-01"})).await }
    };
    // The account refuses a plain connection.
    let e = run(&[]).await.unwrap_err();
    assert_eq!(e.error_type(), "SourceRejected", "{e}");
    assert!(e.to_string().contains("Access denied"), "{e}");
    // require: encrypted, certificate not checked; verify-full: checked against the CA.
    for extra in [
        vec![("MYSQL_SSLMODE", "require")],
        vec![
            ("MYSQL_SSLMODE", "verify-full"),
            ("MYSQL_SSL_ROOT_CERT", ca.as_str()),
        ],
    ] {
        let out = run(&extra).await.unwrap();
        assert_eq!(out["records"], 1, "{extra:?}");
    }
    // verify-full without the CA: the certificate is not trusted, a configuration error.
    let e = run(&[("MYSQL_SSLMODE", "verify-full")]).await.unwrap_err();
    assert_eq!(e.error_type(), "Configuration", "{e}");
    assert!(e.to_string().contains("MYSQL_SSL_ROOT_CERT"), "{e}");
}

/// Forwards TCP to the server; while armed, the first connection that has sent more than
/// `limit` bytes to the client is cut (and the proxy disarms).
struct CuttingProxy {
    port: u16,
    armed: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttingProxy {
    async fn start(target: u16, limit: usize) -> CuttingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(true));
        let cuts = Arc::new(AtomicUsize::new(0));
        let (a, c) = (armed.clone(), cuts.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (armed, cuts) = (a.clone(), c.clone());
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut cr, &mut sw).await;
                    });
                    let mut sent = 0usize;
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match sr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        sent += n;
                        if sent > limit && armed.swap(false, Ordering::SeqCst) {
                            cuts.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                    }
                    up.abort();
                });
            }
        });
        CuttingProxy {
            port,
            armed,
            cuts,
            task,
        }
    }

    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
