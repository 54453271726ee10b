//! The function URL request the pipeline sends (`events/api-emulator.json`: GET /sessions for
//! January 2020) goes through lambda_http exactly as `run_with_streaming_response` handles it,
//! and the emulator answers with the window's sessions as a JSON array.

use std::collections::HashMap;
use std::sync::Arc;

use api_emulator::EmulatorConfig;
use deftunes_local::{Dataset, Scale};
use futures::StreamExt;
use lambda_http::request::LambdaRequest;
use lambda_http::tower::Service;
use lambda_http::{Context, LambdaEvent, RequestExt, StreamAdapter};
use serde_json::Value;

fn sample_event() -> String {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/api-emulator.json");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn small_dataset() -> Arc<Dataset> {
    Arc::new(Dataset::generate(
        7,
        &Scale {
            songs: 300,
            users: 60,
            sessions: 900,
            ..Scale::default()
        },
    ))
}

/// One invocation through lambda_http's streaming adapter: (status, content type, body).
async fn invoke(dataset: Arc<Dataset>, event: &str) -> (u16, Option<String>, Vec<u8>) {
    let payload: LambdaRequest = serde_json::from_str(event).expect("a function URL event");
    let mut adapter = StreamAdapter::from(api_emulator::app(dataset));
    let response = adapter
        .call(LambdaEvent::new(payload, Context::default()))
        .await
        .unwrap_or_else(|e| match e {});
    let prelude = response.metadata_prelude;
    let content_type = prelude
        .headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let mut body = Vec::new();
    let mut stream = response.stream;
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.expect("body chunk"));
    }
    (prelude.status_code.as_u16(), content_type, body)
}

fn with(event: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(event).unwrap();
    edit(&mut v);
    v.to_string()
}

#[test]
fn sample_event_is_a_function_url_request() {
    let event = sample_event();
    let payload: LambdaRequest = serde_json::from_str(&event).unwrap();
    assert!(matches!(payload, LambdaRequest::ApiGatewayV2(_)));
    let request = lambda_http::request::from_str(&event).unwrap();
    assert_eq!(request.method(), "GET");
    assert_eq!(request.uri().path(), "/sessions");
    assert_eq!(request.raw_http_path(), "/sessions");
    assert_eq!(
        request.uri().query(),
        Some("start_date=2020-01-01&end_date=2020-01-31")
    );
    let params = request.query_string_parameters();
    assert_eq!(params.first("start_date"), Some("2020-01-01"));
    assert_eq!(params.first("end_date"), Some("2020-01-31"));
}

#[tokio::test]
async fn sessions_of_the_window_come_back_as_a_json_array() {
    let dataset = small_dataset();
    let (start, end) = ("2020-01-01".parse().unwrap(), "2020-01-31".parse().unwrap());
    let expected = serde_json::to_value(dataset.sessions_between(start, end)).unwrap();
    assert!(expected.as_array().is_some_and(|a| !a.is_empty()));

    let (status, content_type, body) = invoke(dataset, &sample_event()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let got: Value = serde_json::from_slice(&body).unwrap();
    assert!(got.is_array());
    assert_eq!(got, expected);
}

#[tokio::test]
async fn routes_on_the_path_at_the_url_root_whatever_the_stage() {
    // lambda_http would route this on /prod/users; the function URL path is /users.
    let event = with(&sample_event(), |v| {
        v["rawPath"] = "/users".into();
        v["requestContext"]["http"]["path"] = "/users".into();
        v["requestContext"]["stage"] = "prod".into();
    });
    let (status, _, body) = invoke(small_dataset(), &event).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(serde_json::from_slice::<Value>(&body).unwrap().is_array());
}

#[tokio::test]
async fn validation_errors_and_no_fault_control() {
    let no_dates = with(&sample_event(), |v| {
        v["rawQueryString"] = "".into();
        v.as_object_mut().unwrap().remove("queryStringParameters");
    });
    let (status, _, body) = invoke(small_dataset(), &no_dates).await;
    assert_eq!(status, 422);
    let detail: Value = serde_json::from_slice(&body).unwrap();
    assert!(detail["detail"].as_str().unwrap().contains("start_date"));

    // Faults cannot be switched on through the public URL.
    let put_faults = with(&sample_event(), |v| {
        v["rawPath"] = "/_emulator/faults".into();
        v["rawQueryString"] = "".into();
        v["requestContext"]["http"]["method"] = "PUT".into();
        v["requestContext"]["http"]["path"] = "/_emulator/faults".into();
        v["body"] = r#"{"error_rate": 1.0}"#.into();
    });
    let (status, _, _) = invoke(small_dataset(), &put_faults).await;
    assert_eq!(status, 404);
    let (status, _, _) = invoke(small_dataset(), &sample_event()).await;
    assert_eq!(status, 200);
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn config_defaults_to_the_local_defaults() {
    let cfg = EmulatorConfig::from_env(&env(&[])).unwrap();
    assert_eq!(cfg.seed, 42);
    assert_eq!(cfg.scale, Scale::default());

    let cfg = EmulatorConfig::from_env(&env(&[
        ("DATA_SEED", "7"),
        ("DATA_SONGS", "500"),
        ("DATA_USERS", "50"),
        ("DATA_SESSIONS", "100"),
        ("DATA_FROM", "2021-01-01"),
        ("DATA_TO", "2021-06-30"),
    ]))
    .unwrap();
    assert_eq!(cfg.seed, 7);
    assert_eq!(
        cfg.scale,
        Scale {
            songs: 500,
            users: 50,
            sessions: 100,
            start: "2021-01-01".parse().unwrap(),
            end: "2021-06-30".parse().unwrap(),
        }
    );
}

#[test]
fn config_errors_name_the_variable() {
    for (pairs, name) in [
        (vec![("DATA_SONGS", "many")], "DATA_SONGS"),
        (vec![("DATA_FROM", "2020-13-01")], "DATA_FROM"),
        (
            vec![("DATA_FROM", "2020-04-01")],
            "DATA_FROM=2020-04-01 is after DATA_TO",
        ),
    ] {
        let e = EmulatorConfig::from_env(&env(&pairs)).unwrap_err();
        assert_eq!(e.error_type(), "Configuration");
        assert!(e.to_string().contains(name), "{e}");
    }
}
