//! Every sample event in `events/` is accepted by the handler input parsing of its function
//! (the file name starts with the function name).

use chrono::{TimeZone, Utc};
use deftunes::window::{Granularity, Tz};

#[test]
fn sample_events_parse_into_handler_inputs() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let now = Utc.with_ymd_and_hms(2020, 4, 2, 0, 0, 0).unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".json") {
            continue;
        }
        let payload: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if name.starts_with("api-extract") {
            let pipeline = deftunes::pipeline::repo_pipeline("deftunes").unwrap();
            let endpoints = deftunes::extract::api::Endpoint::all(&pipeline).unwrap();
            let jobs =
                deftunes::extract::api::plan(&payload, &endpoints, Granularity::Day, Tz::UTC, now)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!jobs.is_empty(), "{name}");
        } else if name.starts_with("songs-extract") {
            deftunes::extract::songs::plan(&payload, Tz::UTC, now)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        } else if name.starts_with("run-control") {
            deftunes::run_control::Event::parse(&payload).unwrap_or_else(|e| panic!("{name}: {e}"));
        } else if name.starts_with("redshift-setup") {
            // The setup takes no input: the handler ignores the payload.
            assert!(payload.is_object(), "{name}");
        } else {
            // Events of functions whose crates have their own tests are checked there.
            continue;
        }
        checked += 1;
    }
    assert!(
        checked >= 8,
        "only {checked} sample events found in {}",
        dir.display()
    );
}
