//! The one retry policy for every HTTP call a task makes.
//!
//! - 429 and 503 honour `Retry-After` (seconds or an HTTP date); without it they back off
//!   like other transient failures.
//! - Other 5xx (500, 502, 504), 408, timeouts and connection errors back off exponentially
//!   with jitter.
//! - Everything stops at a total time budget: a retry whose wait would end past the budget is
//!   not attempted, and the last answer is returned.
//! - Requests that are not idempotent (POST, PATCH) are retried only where the server cannot
//!   have acted on them (429, and a connection that could not be opened), unless the caller
//!   marks them safe (e.g. a submit carrying an idempotency token).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::{Client, Failure, Request, Response, StatusCode};

/// Time as the retry loop sees it, so tests can run it on a fake clock.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
    fn system_now(&self) -> SystemTime;
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn system_now(&self) -> SystemTime {
        SystemTime::now()
    }
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Whether a request may be sent again after the server may have acted on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Decide from the method: GET, HEAD, PUT, DELETE, OPTIONS are idempotent.
    ByMethod,
    /// The caller knows a repeat is harmless (idempotency token, overwrite import, …).
    Safe,
}

/// Retry timing.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total time for all attempts and waits.
    pub budget: Duration,
    /// First exponential back-off step; doubles each attempt.
    pub base_delay: Duration,
    /// Largest exponential back-off step.
    pub max_delay: Duration,
    /// The wait for a 429/503 without `Retry-After`.
    pub default_retry_after: Duration,
    /// At most this much random time is added to a `Retry-After` wait, so that many clients
    /// told the same time do not come back at once.
    pub retry_after_jitter: Duration,
}

impl Default for RetryPolicy {
    /// The official Databricks SDKs' envelope: 5 minutes in total, waits up to 10 s.
    fn default() -> Self {
        RetryPolicy {
            budget: Duration::from_secs(300),
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            default_retry_after: Duration::from_secs(1),
            retry_after_jitter: Duration::from_millis(250),
        }
    }
}

/// What one attempt gave, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Status(StatusCode),
    /// The connection could not be opened: the server never saw the request.
    ConnectFailed,
    /// Timed out, reset or closed after the request may have reached the server.
    TransportFailed,
}

impl RetryPolicy {
    /// A policy with a different total budget.
    pub fn with_budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// Whether this outcome is worth another attempt at all.
    pub fn retryable(outcome: Outcome, idempotent: bool) -> bool {
        match outcome {
            Outcome::Status(StatusCode::TOO_MANY_REQUESTS) | Outcome::ConnectFailed => true,
            Outcome::Status(s) => {
                idempotent
                    && (s == StatusCode::REQUEST_TIMEOUT
                        || s == StatusCode::INTERNAL_SERVER_ERROR
                        || s == StatusCode::BAD_GATEWAY
                        || s == StatusCode::SERVICE_UNAVAILABLE
                        || s == StatusCode::GATEWAY_TIMEOUT)
            }
            Outcome::TransportFailed => idempotent,
        }
    }

    /// The wait before attempt `attempt + 1` (attempts count from 1), before jitter for
    /// back-off; `retry_after` is the header's value if the answer had one.
    pub fn delay(
        &self,
        attempt: u32,
        outcome: Outcome,
        retry_after: Option<&str>,
        now: SystemTime,
        random: f64,
    ) -> Duration {
        let throttled = matches!(
            outcome,
            Outcome::Status(StatusCode::TOO_MANY_REQUESTS)
                | Outcome::Status(StatusCode::SERVICE_UNAVAILABLE)
        );
        if throttled {
            let told = retry_after.and_then(|v| parse_retry_after(v, now));
            if let Some(wait) = told.or(Some(self.default_retry_after)) {
                return wait + self.retry_after_jitter.mul_f64(random.clamp(0.0, 1.0));
            }
        }
        // Exponential with "equal jitter": half fixed, half random, so waits never collapse
        // to zero and never line up across clients.
        let exp = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        let step = self.base_delay.saturating_mul(exp).min(self.max_delay);
        step / 2 + (step / 2).mul_f64(random.clamp(0.0, 1.0))
    }
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3). Seconds with a decimal
/// fraction (`1.5`) are taken too; a number of seconds too large for a `Duration` is not a
/// delay (the policy's default wait applies).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Some(wait) = parse_seconds(value) {
        return Some(wait);
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `5`, `1.5`, `.5`, `+5`: seconds as a decimal number, read by hand. `str::parse::<f64>`
/// would bring core's float parser and its 10 KB table of powers of five into every task
/// binary (BENCHMARKS.md, "Binary size after the cuts"), for a header of whole seconds.
fn parse_seconds(value: &str) -> Option<Duration> {
    let number = value.strip_prefix('+').unwrap_or(value);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0 || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let secs = if whole.is_empty() {
        0
    } else {
        whole.parse::<u64>().ok()?
    };
    // Nine fraction digits are nanoseconds; any further ones are below a nanosecond.
    let nanos = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(9)
        .fold(0, |n, d| n * 10 + u32::from(d - b'0'));
    Some(Duration::new(secs, nanos))
}

/// A transport failure after every allowed attempt.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot connect to {host}: {detail}")]
    Connect { host: String, detail: String },
    #[error("request to {host} timed out")]
    Timeout { host: String },
    #[error("request to {host} failed: {detail}")]
    Transport { host: String, detail: String },
    #[error("request could not be sent: {0}")]
    Build(String),
}

impl SendError {
    /// Whether the host name did not resolve (a wrong workspace URL, typically). The texts
    /// are the system resolver's, and Node's when the launcher's tunnel resolved the name.
    pub fn is_dns(&self) -> bool {
        matches!(self, SendError::Connect { detail, .. }
            if detail.contains("failed to lookup address")
                || detail.contains("Name or service not known")
                || detail.contains("ENOTFOUND"))
    }
}

fn host_of(request: &Request) -> String {
    let Some(url) = request.url() else {
        return String::new();
    };
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => url.as_str().to_owned(),
    }
}

/// A client with the retry policy applied: the one way every task sends a request.
#[derive(Clone)]
pub struct HttpClient {
    client: Client,
    policy: RetryPolicy,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("policy", &self.policy)
            .finish()
    }
}

impl HttpClient {
    pub fn new(client: Client, policy: RetryPolicy) -> HttpClient {
        HttpClient {
            client,
            policy,
            clock: Arc::new(TokioClock),
        }
    }

    /// Replaces the clock (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> HttpClient {
        self.clock = clock;
        self
    }

    pub fn with_policy(mut self, policy: RetryPolicy) -> HttpClient {
        self.policy = policy;
        self
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Sends with retries. HTTP error statuses are returned as responses (the caller reads
    /// the error body); only transport failures become errors.
    pub async fn send(&self, request: Request, replay: Replay) -> Result<Response, SendError> {
        let idempotent = replay == Replay::Safe || request.method().is_idempotent();
        let host = host_of(&request);
        let started = self.clock.now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let (outcome, retry_after, last) = match self
                .client
                .send_once(&request, idempotent)
                .await
            {
                Ok(response) => {
                    let status = response.status();
                    if !(status == StatusCode::TOO_MANY_REQUESTS
                        || status == StatusCode::REQUEST_TIMEOUT
                        || status.is_server_error())
                    {
                        return Ok(response);
                    }
                    let retry_after = response.header("retry-after").map(str::to_owned);
                    (Outcome::Status(status), retry_after, Ok(response))
                }
                Err(failure) => {
                    let (outcome, error) = match failure {
                        Failure::Connect(detail) => (
                            Outcome::ConnectFailed,
                            SendError::Connect {
                                host: host.clone(),
                                detail,
                            },
                        ),
                        // The server never saw the request: a connect failure, retried
                        // even for requests that are not idempotent.
                        Failure::ConnectTimeout(limit) => (
                            Outcome::ConnectFailed,
                            SendError::Connect {
                                host: host.clone(),
                                detail: format!("no connection within {} s", crate::seconds(limit)),
                            },
                        ),
                        Failure::Refused(detail) => {
                            return Err(SendError::Connect {
                                host: host.clone(),
                                detail,
                            })
                        }
                        Failure::Timeout => (
                            Outcome::TransportFailed,
                            SendError::Timeout { host: host.clone() },
                        ),
                        Failure::Transport(detail) => (
                            Outcome::TransportFailed,
                            SendError::Transport {
                                host: host.clone(),
                                detail,
                            },
                        ),
                        Failure::Unusable(detail) => return Err(SendError::Build(detail)),
                    };
                    // A name that does not resolve is a wrong URL far more often than a
                    // passing fault: say so now instead of after the whole budget.
                    if error.is_dns() {
                        return Err(error);
                    }
                    (outcome, None, Err(error))
                }
            };
            if !RetryPolicy::retryable(outcome, idempotent) {
                return last;
            }
            let wait = self.policy.delay(
                attempt,
                outcome,
                retry_after.as_deref(),
                self.clock.system_now(),
                fastrand::f64(),
            );
            let elapsed = self.clock.now().saturating_duration_since(started);
            if elapsed + wait > self.policy.budget {
                return last;
            }
            tracing::debug!(
                "{} {} answered {:?}; attempt {} again in {} ms",
                request.method(),
                request.url().map(|u| u.path()).unwrap_or_default(),
                outcome,
                attempt + 1,
                wait.as_millis()
            );
            self.clock.sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use axum::http::HeaderMap;
    use axum::routing::any;
    use axum::Router;

    /// A clock that never sleeps: it records each wait and moves time forward instead.
    struct FakeClock {
        start: Instant,
        offset: Mutex<Duration>,
        sleeps: Mutex<Vec<Duration>>,
    }

    impl FakeClock {
        fn new() -> Arc<FakeClock> {
            Arc::new(FakeClock {
                start: Instant::now(),
                offset: Mutex::new(Duration::ZERO),
                sleeps: Mutex::new(Vec::new()),
            })
        }
        fn sleeps(&self) -> Vec<Duration> {
            self.sleeps.lock().unwrap().clone()
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            self.start + *self.offset.lock().unwrap()
        }
        fn system_now(&self) -> SystemTime {
            SystemTime::UNIX_EPOCH
                + Duration::from_secs(1_700_000_000)
                + *self.offset.lock().unwrap()
        }
        fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
            *self.offset.lock().unwrap() += d;
            self.sleeps.lock().unwrap().push(d);
            Box::pin(async {})
        }
    }

    /// A loopback server answering from a script of (status, headers) per request.
    async fn scripted(
        script: Vec<(u16, Vec<(&'static str, String)>)>,
    ) -> (String, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let script = Arc::new(script);
        let app = Router::new().fallback(any(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let script = script.clone();
            async move {
                let (status, headers) = script.get(n).cloned().unwrap_or((200, vec![]));
                let mut map = HeaderMap::new();
                for (k, v) in headers {
                    map.insert(k, v.parse().unwrap());
                }
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    map,
                    format!("answer {n}"),
                )
            }
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, hits)
    }

    fn client(clock: Arc<FakeClock>) -> HttpClient {
        let policy = RetryPolicy {
            retry_after_jitter: Duration::ZERO,
            ..RetryPolicy::default()
        };
        let plain = Client::new(&crate::HttpSettings::default()).unwrap();
        HttpClient::new(plain, policy).with_clock(clock)
    }

    #[tokio::test]
    async fn honours_retry_after_seconds_then_succeeds() {
        let (url, hits) = scripted(vec![
            (429, vec![("retry-after", "3".into())]),
            (503, vec![("retry-after", "2".into())]),
        ])
        .await;
        let clock = FakeClock::new();
        let c = client(clock.clone());
        let r = c.send(Request::get(&url), Replay::ByMethod).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        assert_eq!(
            clock.sleeps(),
            vec![Duration::from_secs(3), Duration::from_secs(2)]
        );
    }

    #[tokio::test]
    async fn honours_retry_after_http_date() {
        let later = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_007);
        let (url, _) = scripted(vec![(
            429,
            vec![("retry-after", httpdate::fmt_http_date(later))],
        )])
        .await;
        let clock = FakeClock::new();
        let c = client(clock.clone());
        c.send(Request::get(&url), Replay::ByMethod).await.unwrap();
        assert_eq!(clock.sleeps(), vec![Duration::from_secs(7)]);
    }

    #[tokio::test]
    async fn server_errors_back_off_exponentially_within_bounds() {
        let (url, hits) = scripted(vec![
            (500, vec![]),
            (502, vec![]),
            (504, vec![]),
            (500, vec![]),
        ])
        .await;
        let clock = FakeClock::new();
        let c = client(clock.clone());
        assert_eq!(
            c.send(Request::get(&url), Replay::ByMethod)
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(hits.load(Ordering::SeqCst), 5);
        let sleeps = clock.sleeps();
        let base = RetryPolicy::default().base_delay;
        for (i, s) in sleeps.iter().enumerate() {
            let step = base * 2u32.pow(i as u32);
            assert!(
                *s >= step / 2 && *s <= step,
                "attempt {i}: {s:?} outside [{:?}, {step:?}]",
                step / 2
            );
        }
    }

    #[tokio::test]
    async fn stops_at_the_budget_and_returns_the_last_answer() {
        let (url, hits) = scripted(vec![(503, vec![("retry-after", "100".into())]); 10]).await;
        let clock = FakeClock::new();
        let c = client(clock.clone()).with_policy(RetryPolicy {
            retry_after_jitter: Duration::ZERO,
            ..RetryPolicy::default().with_budget(Duration::from_secs(250))
        });
        let r = c.send(Request::get(&url), Replay::ByMethod).await.unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(
            hits.load(Ordering::SeqCst),
            3,
            "100 s + 100 s fit in 250 s, a third wait does not"
        );
        assert_eq!(
            clock.sleeps().iter().sum::<Duration>(),
            Duration::from_secs(200)
        );
    }

    #[tokio::test]
    async fn post_is_not_replayed_after_a_server_error_unless_marked_safe() {
        let (url, hits) = scripted(vec![(503, vec![]), (503, vec![])]).await;
        let c = client(FakeClock::new());
        let r = c
            .send(Request::post(&url).body("x"), Replay::ByMethod)
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let r = c
            .send(Request::post(&url).body("x"), Replay::Safe)
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn post_is_replayed_after_429_because_the_server_refused_it() {
        let (url, hits) = scripted(vec![(429, vec![])]).await;
        let clock = FakeClock::new();
        let c = client(clock.clone());
        let r = c
            .send(Request::post(&url).body("x"), Replay::ByMethod)
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert_eq!(
            clock.sleeps(),
            vec![RetryPolicy::default().default_retry_after]
        );
    }

    #[tokio::test]
    async fn client_errors_are_returned_at_once() {
        let (url, hits) = scripted(vec![(404, vec![])]).await;
        let c = client(FakeClock::new());
        assert_eq!(
            c.send(Request::get(&url), Replay::ByMethod)
                .await
                .unwrap()
                .status(),
            404
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn connection_refused_is_retried_then_reported() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let clock = FakeClock::new();
        let c = client(clock.clone())
            .with_policy(RetryPolicy::default().with_budget(Duration::from_secs(5)));
        let e = c
            .send(Request::post(&format!("http://{addr}/")), Replay::ByMethod)
            .await
            .unwrap_err();
        assert!(matches!(e, SendError::Connect { .. }), "{e:?}");
        assert!(
            clock.sleeps().len() >= 3,
            "connect failures are retried: {:?}",
            clock.sleeps()
        );
        assert!(clock.sleeps().iter().sum::<Duration>() <= Duration::from_secs(5));
    }

    #[tokio::test]
    async fn timeouts_are_retried_for_idempotent_requests() {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = Router::new().fallback(any(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                "late"
            }
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let inner = Client::new(&crate::HttpSettings {
            timeout: Duration::from_millis(200),
            ..Default::default()
        })
        .unwrap();
        let c = HttpClient::new(inner, RetryPolicy::default()).with_clock(FakeClock::new());
        let r = c.send(Request::get(&url), Replay::ByMethod).await.unwrap();
        assert_eq!(r.text(), "late");
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn retry_after_parsing() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(parse_retry_after("5", now), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        let past = httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(10));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("+5", now), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_retry_after(".25", now),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse_retry_after("2.0000000019", now),
            Some(Duration::new(2, 1))
        );
        for not_seconds in ["", ".", "-1", "1e3", "1.2.3", "5 s", "inf", "NaN"] {
            assert_eq!(parse_retry_after(not_seconds, now), None, "{not_seconds:?}");
        }
        // Too large for a Duration: no delay rather than a panic.
        assert_eq!(parse_retry_after("99999999999999999999", now), None);
        assert_eq!(parse_retry_after("99999999999999999999.5", now), None);
    }

    #[test]
    fn default_wait_without_retry_after_and_jitter_bounds() {
        let p = RetryPolicy::default();
        let now = SystemTime::now();
        let d = p.delay(
            1,
            Outcome::Status(StatusCode::TOO_MANY_REQUESTS),
            None,
            now,
            1.0,
        );
        assert_eq!(d, p.default_retry_after + p.retry_after_jitter);
        let capped = p.delay(30, Outcome::TransportFailed, None, now, 1.0);
        assert_eq!(capped, p.max_delay);
    }
}
