//! Answers the emulator does not give: gateway HTML, plain text, empty bodies, a 403 for a
//! missing permission, a 200 that is not the API's JSON; and the headers each `Auth` sends.
//! A tiny axum server plays the workspace.

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use common::{assert_no_token, http, TOKEN};
use databricks::{Auth, Error, TokenSource, Workspace};

type Seen = Arc<Mutex<Vec<HeaderMap>>>;

/// `GET /api/2.0/workspace/get-status?path=/<case>` answers the case.
async fn answer(Query(q): Query<HashMap<String, String>>) -> Response {
    let html = |status: u16, title: &str| {
        let body = format!("<!DOCTYPE html>\n<html><head><title>{title}</title></head><body><h1>{title}</h1><p>{}</p></body></html>", "padding ".repeat(200));
        (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "text/html")],
            body,
        )
            .into_response()
    };
    let json = |status: u16, body: &str| {
        (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            body.to_owned(),
        )
            .into_response()
    };
    match q.get("path").map(String::as_str).unwrap_or("") {
        "/html404" => html(404, "404 Not Found"),
        "/html502" => html(502, "502 Bad Gateway"),
        "/html200" => html(200, "Sign in to your account"),
        "/text" => (
            StatusCode::BAD_REQUEST,
            "Bad Request: malformed path\nat line 2: details nobody needs",
        )
            .into_response(),
        "/empty" => StatusCode::BAD_REQUEST.into_response(),
        "/401" => json(
            401,
            r#"{"error_code":"UNAUTHENTICATED","message":"Token is expired."}"#,
        ),
        "/401-empty" => StatusCode::UNAUTHORIZED.into_response(),
        "/403" => json(
            403,
            r#"{"error_code":"PERMISSION_DENIED","message":"User does not have permission to view /Shared/secret."}"#,
        ),
        "/shape" => json(200, r#"{"object_type": 42, "path": "/shape"}"#),
        _ => json(200, r#"{"object_type":"DIRECTORY","path":"/"}"#),
    }
}

async fn serve(seen: Seen) -> String {
    let app = Router::new().route(
        "/api/2.0/workspace/get-status",
        get(move |headers: HeaderMap, q| {
            seen.lock().unwrap().push(headers);
            answer(q)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn failure(ws: &Workspace, case: &str) -> Error {
    let e = ws.get_status(case).await.expect_err(case);
    assert_no_token(&e);
    e
}

#[tokio::test]
async fn odd_bodies_become_typed_errors_with_summaries() {
    let url = serve(Seen::default()).await;
    let ws = Workspace::new(
        &url,
        Auth::Token(TOKEN.into()),
        http(Duration::from_millis(300)),
    )
    .unwrap();

    let e = failure(&ws, "/html404").await;
    assert!(
        matches!(e, Error::UnexpectedBody { status: 404, .. }),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains(&url)
            && text.contains("HTML page titled \"404 Not Found\"")
            && text.contains("bytes"),
        "{text}"
    );
    assert!(
        !text.contains("padding") && !text.contains("<h1>"),
        "{text}"
    );

    // Retried until the budget, then reported.
    let e = failure(&ws, "/html502").await;
    assert!(
        e.to_string()
            .contains("(HTTP 502): an HTML page titled \"502 Bad Gateway\""),
        "{e}"
    );

    // A 200 that is not JSON: a login page or a proxy, not a workspace.
    let e = failure(&ws, "/html200").await;
    assert!(
        matches!(e, Error::UnexpectedBody { status: 200, .. }),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("Sign in to your account")
            && e.to_string().contains("Databricks workspace"),
        "{e}"
    );

    let e = failure(&ws, "/text").await;
    let text = e.to_string();
    assert!(
        text.contains("\"Bad Request: malformed path\"") && !text.contains("nobody needs"),
        "{text}"
    );

    let e = failure(&ws, "/empty").await;
    assert!(e.to_string().contains("(HTTP 400): an empty body"), "{e}");

    let e = failure(&ws, "/shape").await;
    assert!(matches!(e, Error::Decode { .. }), "{e:?}");
}

#[tokio::test]
async fn authentication_and_permission_failures_say_what_to_do() {
    let url = serve(Seen::default()).await;
    let ws = Workspace::new(
        &url,
        Auth::Token(TOKEN.into()),
        http(Duration::from_millis(300)),
    )
    .unwrap();

    let e = failure(&ws, "/401").await;
    assert!(e.is_auth());
    assert_eq!(
        e.to_string().split(". Create").next().unwrap(),
        format!("authentication failed for {url}: the token is invalid or expired (HTTP 401: Token is expired.)")
    );
    assert!(e.to_string().contains("Create a new token"), "{e}");

    let e = failure(&ws, "/401-empty").await;
    assert!(matches!(e, Error::Auth { status: 401, .. }), "{e:?}");
    assert!(e.to_string().contains("an empty body"), "{e}");

    let e = failure(&ws, "/403").await;
    assert!(matches!(e, Error::Forbidden { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!(
            "permission denied by {url}: the token is valid but lacks permission"
        )),
        "{e}"
    );
    assert!(e.to_string().contains("/Shared/secret"), "{e}");
}

struct Rotating(Mutex<u32>);

impl TokenSource for Rotating {
    fn token(&self) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>> {
        Box::pin(async move {
            let mut n = self.0.lock().unwrap();
            *n += 1;
            if *n > 2 {
                return Err("the service connection's secret has expired".into());
            }
            Ok(format!("entra-token-{n}"))
        })
    }
}

#[tokio::test]
async fn each_auth_sends_its_headers() {
    let seen = Seen::default();
    let url = serve(seen.clone()).await;
    let h = || http(Duration::from_secs(1));

    Workspace::new(&url, Auth::Token(format!(" {TOKEN}\n")), h())
        .unwrap()
        .get_status("/")
        .await
        .unwrap();
    let sp = Auth::AzureSp {
        token: "entra-db".into(),
        management_token: "entra-mgmt".into(),
        resource_id:
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Databricks/workspaces/w".into(),
    };
    Workspace::new(&url, sp, h())
        .unwrap()
        .get_status("/")
        .await
        .unwrap();
    let source =
        Workspace::new(&url, Auth::Source(Arc::new(Rotating(Mutex::new(0)))), h()).unwrap();
    source.get_status("/").await.unwrap();
    source.get_status("/").await.unwrap();
    let e = source.get_status("/").await.unwrap_err();
    assert!(
        matches!(e, Error::Token { .. }) && e.to_string().contains("secret has expired"),
        "{e:?}"
    );

    let seen = seen.lock().unwrap();
    let header = |i: usize, name: &str| seen[i].get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(seen.len(), 4, "the token source's failure sends nothing");
    assert_eq!(header(0, "authorization"), Some(format!("Bearer {TOKEN}")));
    assert_eq!(header(0, "x-databricks-azure-sp-management-token"), None);
    assert_eq!(
        header(1, "authorization").as_deref(),
        Some("Bearer entra-db")
    );
    assert_eq!(
        header(1, "x-databricks-azure-sp-management-token").as_deref(),
        Some("entra-mgmt")
    );
    assert!(header(1, "x-databricks-azure-workspace-resource-id")
        .unwrap()
        .ends_with("/workspaces/w"));
    assert_eq!(
        header(2, "authorization").as_deref(),
        Some("Bearer entra-token-1")
    );
    assert_eq!(
        header(3, "authorization").as_deref(),
        Some("Bearer entra-token-2")
    );
}

#[tokio::test]
async fn an_unreachable_host_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let ws = Workspace::new(
        &format!("http://{addr}"),
        Auth::Token(TOKEN.into()),
        http(Duration::from_millis(300)),
    )
    .unwrap();
    let e = ws.check_credentials().await.unwrap_err();
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
    assert_no_token(&e);
}

#[tokio::test]
async fn a_token_headers_cannot_carry_is_named_without_being_shown() {
    let url = serve(Seen::default()).await;
    let ws = Workspace::new(
        &url,
        Auth::Token("dapi-first\ndapi-second".into()),
        http(Duration::from_millis(300)),
    )
    .unwrap();
    let e = ws.get_status("/").await.unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(_)), "{e:?}");
    assert!(
        e.to_string().contains("token") && !format!("{e} {e:?}").contains("dapi-"),
        "{e}"
    );
}

/// Records every tracing event (message and fields) on this thread.
struct Capture(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={value:?} ", field.name()));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = String::new();
        event.record(&mut Fields(&mut line));
        let mut all = self.0.lock().unwrap();
        all.push_str(&line);
        all.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn debug_logs_never_carry_the_token() {
    let log = Arc::new(Mutex::new(String::new()));
    let _guard = tracing::subscriber::set_default(Capture(log.clone()));
    let url = serve(Seen::default()).await;
    let ws = Workspace::new(
        &url,
        Auth::Token(TOKEN.into()),
        http(Duration::from_millis(300)),
    )
    .unwrap();
    for case in ["/", "/401", "/403", "/html502", "/text"] {
        let _ = ws.get_status(case).await;
    }
    let log = log.lock().unwrap();
    assert!(
        log.contains("get-status") && log.contains("502"),
        "the calls were logged: {log}"
    );
    assert!(!log.contains(TOKEN), "{log}");
}
