//! Pipeline specs: the DeFtunes spec describes exactly the tables, landing folders and rules the
//! code builds today; broken specs are refused with the file, the line and what is wrong; the
//! published JSON Schema is the one the code generates.

use std::path::{Path, PathBuf};

use deftunes::extract::api::Endpoint;
use deftunes::extract::songs::SqlSource;
use deftunes::pipeline::{json_schema, Pipeline, SpecError, DEPLOY_FILE, SPEC_FILE};
use deftunes::transform::tables::Tables;

fn pipelines() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines")
}

fn deftunes_dir() -> PathBuf {
    pipelines().join("deftunes")
}

fn deftunes_text() -> String {
    std::fs::read_to_string(deftunes_dir().join(SPEC_FILE)).unwrap()
}

#[test]
fn the_deftunes_spec_declares_its_three_tables_from_three_sources() {
    let p = Pipeline::load(&deftunes_dir()).unwrap();
    assert_eq!(p.spec.namespace, "deftunes_transform");
    let tables = Tables::compile(&p).unwrap();
    let landing: Vec<(&str, &str)> = tables.iter().map(|t| (t.name(), t.landing())).collect();
    assert_eq!(
        landing,
        [
            ("sessions", "api/sessions"),
            ("songs", "rds/songs"),
            ("users", "api/users")
        ]
    );
    for t in tables.iter() {
        assert!(p.rules.contains_key(t.name()), "{}: rules", t.name());
    }
}

/// Asserts that the file at `path` holds `generated` (rewritten first with
/// `DEFTUNES_WRITE_SCHEMA=1`); returns what it holds.
fn published_is_generated(path: &Path, generated: &str) -> String {
    if std::env::var_os("DEFTUNES_WRITE_SCHEMA").is_some() {
        std::fs::write(path, generated).unwrap();
    }
    let published = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        published == generated,
        "{} is stale: DEFTUNES_WRITE_SCHEMA=1 cargo test --test pipeline_specs",
        path.display()
    );
    published
}

/// Every pipeline folder's `deploy.json` (what Terraform wires) is the one its spec gives;
/// `DEFTUNES_WRITE_SCHEMA=1` rewrites them with the JSON Schema.
#[test]
fn each_pipelines_deploy_file_is_generated_from_its_spec() {
    let mut seen = 0;
    for entry in std::fs::read_dir(pipelines()).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join(SPEC_FILE).is_file() {
            continue;
        }
        seen += 1;
        let p = Pipeline::load(&dir).unwrap();
        let generated = serde_json::to_string_pretty(&p.deploy_plan()).unwrap() + "\n";
        published_is_generated(&dir.join(DEPLOY_FILE), &generated);
    }
    assert!(seen >= 2, "the deftunes and sparkify pipelines");
}

#[test]
fn the_published_json_schema_is_the_generated_one() {
    let path = pipelines().join("pipeline.schema.json");
    let generated = json_schema();
    let published = published_is_generated(&path, &generated);
    let schema: serde_json::Value = serde_json::from_str(&published).unwrap();
    for field in ["sources", "tables", "namespace"] {
        assert!(schema["properties"][field].is_object(), "{field}");
    }
}

/// The spec with `from` replaced by `to` (once), loaded from a copy of the DeFtunes folder.
fn load_changed(from: &str, to: &str) -> (SpecError, String) {
    let text = deftunes_text();
    assert!(text.contains(from), "{from:?} not in the spec");
    let changed = text.replacen(from, to, 1);
    load_text(&changed)
}

fn load_text(text: &str) -> (SpecError, String) {
    let dir = deftunes_dir();
    let file = dir.join(SPEC_FILE);
    let err = Pipeline::from_str_in(&dir, &file, text).unwrap_err();
    (err, text.to_string())
}

/// 1-based line of the first occurrence of `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text.find(needle).unwrap();
    text[..at].matches('\n').count() + 1
}

/// Lines of the section headed `[<header>]`.
fn section(text: &str, header: &str) -> std::ops::Range<usize> {
    let start = line_of(text, &format!("[{header}]"));
    let end = text
        .lines()
        .enumerate()
        .skip(start)
        .find(|(_, l)| l.starts_with('['))
        .map_or(text.lines().count() + 1, |(i, _)| i + 1);
    start..end
}

fn assert_names(err: &SpecError, line: std::ops::Range<usize>, what: &str) {
    let shown = err.to_string();
    assert!(shown.contains("pipeline.toml:"), "{shown}");
    let l = err.line.unwrap_or_else(|| panic!("no line in {shown}"));
    assert!(line.contains(&l), "line {l} not in {line:?}: {shown}");
    assert!(shown.contains(what), "{shown:?} does not say {what:?}");
}

/// Where an error must point: the line holding a text, or a table's section.
enum Place {
    Line(&'static str),
    Table(&'static str),
    Source(&'static str),
}

#[test]
fn a_corpus_of_broken_specs_is_refused_naming_the_place() {
    use Place::*;
    let corpus = [
        (
            r#"{ name = "duration", type = "float" }"#,
            r#"{ name = "duration", type = "real" }"#,
            Line(r#"type = "real""#),
            "table songs: column duration: unknown type \"real\"",
        ),
        (
            r#"key = ["track_id"]"#,
            r#"key = ["track"]"#,
            Table("songs"),
            "key column \"track\" is not a column",
        ),
        (
            r#"path = "user_location[1]""#,
            r#"path = "user_location[1""#,
            Line(r#"path = "user_location[1""#),
            "bad path \"user_location[1\"",
        ),
        (
            r#"path = "session_items[].price""#,
            r#"path = "items[].price""#,
            Line(r#""items[].price""#),
            "[] must follow the explode path",
        ),
        (
            r#"source = "songs""#,
            r#"source = "catalogue""#,
            Table("songs"),
            "unknown source \"catalogue\" (declared: sessions, songs, users)",
        ),
        (
            "explode = ",
            "explodes = ",
            Line("explodes = "),
            "unknown field `explodes`",
        ),
        (
            r#"{ name = "user_agent", type = "string" }"#,
            r#"{ name = "user_id", type = "string" }"#,
            Table("sessions"),
            "column user_id: declared twice",
        ),
        (
            r#"{ name = "user_agent", type = "string" }"#,
            r#"{ name = "ingest_on", type = "date" }"#,
            Table("sessions"),
            "column ingest_on: the name is reserved",
        ),
        (
            r#"partition = { column = "session_start_time", transform = "day" }"#,
            r#"partition = { column = "price", transform = "day" }"#,
            Table("sessions"),
            "partition day of \"price\" needs a date or timestamp, not double",
        ),
        (
            r#"{ name = "item_index", type = "int", from = "item_index" }"#,
            r#"{ name = "item_index", type = "string", from = "item_index" }"#,
            Table("sessions"),
            "item_index is an int or long column",
        ),
        (
            "path = \"/users\"\n",
            "path = \"/users\"\nrecords = \"data.items[]\"\n",
            Source("users"),
            "source users: records \"data.items[]\": [] has no place here",
        ),
        (
            "path = \"/users\"\n",
            "path = \"/users\"\nrecords = \"data..items\"\n",
            Source("users"),
            "source users: bad path \"data..items\": an empty field name",
        ),
        (
            "path = \"/users\"\n",
            "path = \"/users\"\npaging = { style = \"next_url\", next = \"next\" }\n",
            Source("users"),
            "source users: paging needs records",
        ),
        (
            "path = \"/users\"\n",
            "path = \"/users\"\nrecords = \"items\"\npaging = { style = \"offset\", limit = 0 }\n",
            Source("users"),
            "source users: paging limit must be at least 1",
        ),
        (
            "path = \"/users\"\n",
            "path = \"/users\"\nauth = \"basic\"\n",
            Source("users"),
            "unknown variant `basic`",
        ),
    ];
    for (from, to, place, what) in corpus {
        let (e, text) = load_changed(from, to);
        let lines = match place {
            Line(needle) => {
                let l = line_of(&text, needle);
                l..l + 1
            }
            Table(name) => section(&text, &format!("tables.{name}")),
            Source(name) => section(&text, &format!("sources.{name}")),
        };
        assert_names(&e, lines, what);
    }
}

#[test]
fn a_duplicate_table_is_refused_where_it_repeats() {
    let mut text = deftunes_text();
    text.push_str("\n[tables.songs]\nsource = \"songs\"\n");
    let (e, text) = load_text(&text);
    let second = text.rfind("[tables.songs]").unwrap();
    let l = text[..second].matches('\n').count() + 1;
    assert_names(&e, l..l + 2, "duplicate");
}

#[test]
fn a_missing_dbt_project_is_refused() {
    let (e, _) = load_changed("../../dbt_modeling", "../../no_such_project");
    assert!(e.to_string().contains("dbt project"), "{e}");
}

#[test]
fn rules_naming_an_unknown_column_are_refused_in_the_rules_file() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    for t in ["users", "sessions", "songs"] {
        let raw = std::fs::read_to_string(deftunes_dir().join(format!("rules/{t}.json"))).unwrap();
        let raw = if t == "songs" {
            raw.replace(r#""column": "track_id""#, r#""column": "trackid""#)
        } else {
            raw
        };
        std::fs::write(rules.join(format!("{t}.json")), raw).unwrap();
    }
    std::fs::create_dir_all(tmp.path().join("dbt")).unwrap();
    let text = deftunes_text().replace("../../dbt_modeling", "dbt");
    let err = Pipeline::from_str_in(tmp.path(), &tmp.path().join(SPEC_FILE), &text).unwrap_err();
    assert!(err.file.ends_with("rules/songs.json"), "{err}");
    assert!(
        err.to_string().contains("unknown column \"trackid\""),
        "{err}"
    );
}

/// DeFtunes' Iceberg tables and landing keys as they were when pipelines became specs
/// (`tests/golden/deftunes.json`): moving the tables and sources into the spec must not change
/// them. `DEFTUNES_WRITE_GOLDEN=1` rewrites the file (on purpose only).
#[test]
fn deftunes_tables_and_landing_keys_are_unchanged() {
    use chrono::NaiveDate;
    use deftunes::extract::api::ApiJob;
    use deftunes::extract::part_key;
    use deftunes::window::Window;
    let day = |d: u32| NaiveDate::from_ymd_opt(2020, 1, d).unwrap();
    let window = Window::new(day(1), day(31)).unwrap();
    let endpoints = Endpoint::all(&Pipeline::load(&deftunes_dir()).unwrap()).unwrap();
    let endpoint = |name: &str| endpoints.iter().find(|e| e.name == name).unwrap().clone();
    let mut tables = serde_json::Map::new();
    let deftunes = Tables::compile(&Pipeline::load(&deftunes_dir()).unwrap()).unwrap();
    for kind in deftunes.iter() {
        let mut schema = serde_json::to_value(kind.schema()).unwrap();
        // A set in iceberg's schema: its serialized order varies from run to run.
        if let Some(ids) = schema["identifier-field-ids"].as_array_mut() {
            ids.sort_by_key(|v| v.as_i64());
        }
        tables.insert(
            kind.name().to_string(),
            serde_json::json!({
                "schema": schema,
                "partition_spec": kind.partition_spec(),
                "source_from": kind.source_from(),
            }),
        );
    }
    let keys = serde_json::json!({
        "users": part_key(&ApiJob::new(endpoint("users"), window, None).stem(), 0),
        "sessions": part_key(&ApiJob::new(endpoint("sessions"), window, Some(day(2))).stem(), 3),
        "songs": part_key(&SqlSource::all(&Pipeline::load(&deftunes_dir()).unwrap()).unwrap()[0].stem(day(1)), 0),
    });
    let current = serde_json::json!({ "tables": tables, "landing_keys": keys });
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/deftunes.json");
    if std::env::var_os("DEFTUNES_WRITE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&current).unwrap() + "\n",
        )
        .unwrap();
    }
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(current, golden, "DeFtunes' tables or landing keys changed");
}

/// A report chart that cannot be a chart's query is refused, naming the chart and its lines.
#[test]
fn a_broken_report_chart_is_refused_where_it_is() {
    let cases = [
        (
            "bars = 15\nunit = \"$\"\n\n[[report.charts]]\ntitle = \"Top 15 buyer",
            "bars = 0\nunit = \"$\"\n\n[[report.charts]]\ntitle = \"Top 15 buyer",
            "Top 15 artists by sales",
            "bars = 0 must be between 1 and 200",
        ),
        (
            "SELECT artist_name, SUM(total_sales) AS sales",
            "DELETE FROM {bi}.x; SELECT artist_name, SUM(total_sales) AS sales",
            "Top 15 artists by sales",
            "sql must be one SELECT",
        ),
        (
            "SELECT artist_name, SUM(total_sales) AS sales",
            "SELECT artist_name, SUM(total_sales) AS sales; DROP TABLE x",
            "Top 15 artists by sales",
            "sql must be one statement",
        ),
        (
            "FROM {bi}.sales_per_artist_per_year",
            "FROM {gold}.sales_per_artist_per_year",
            "Top 15 artists by sales",
            "unknown placeholder at \"{gold}",
        ),
        (
            "title = \"Top 15 artists by sales\"",
            "title = \" \"",
            "\" \"",
            "title is empty",
        ),
    ];
    for (from, to, chart, what) in cases {
        let (e, text) = load_changed(from, to);
        // The chart's own [[report.charts]] block: from its header to the next one.
        let at = text.find(to).unwrap();
        let start = text[..at].rfind("[[report.charts]]").unwrap();
        let first = text[..start].matches('\n').count() + 1;
        let last = first + text[start..].lines().take_while(|l| !l.is_empty()).count();
        assert_names(&e, first..last + 1, what);
        assert!(e.to_string().contains(chart), "{e}");
    }
}
