//! The HTTP transport the providers share: a pooled client, timeouts,
//! retries with backoff, and keys that never leak.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;
use tokio::time::Instant;

use super::ModelError;

/// A secret, such as an API key. Its `Debug` prints `***`; it has no
/// `Display`, no `Serialize`, and the providers mark the headers that carry
/// it as sensitive, so it does not end up in logs, events or errors.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(Arc<str>);

impl SecretString {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        SecretString(Arc::from(secret.into()))
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces every occurrence of the secret in `text` with `***`.
    pub(crate) fn redact(&self, text: &str) -> String {
        if self.0.len() < 4 {
            // Too short to search for without mangling the text.
            return text.to_owned();
        }
        text.replace(&*self.0, "***")
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for SecretString {
    fn from(secret: String) -> Self {
        SecretString::new(secret)
    }
}

impl From<&str> for SecretString {
    fn from(secret: &str) -> Self {
        SecretString::new(secret)
    }
}

/// When and how often a failed model call is retried.
///
/// Retried: connection failures, HTTP 408, 409, 429, 500, 502, 503, 504,
/// 529 and Anthropic's `overloaded_error`, and whatever the provider marks
/// with `x-should-retry: true`. Never retried: 400, 401, 403, 404 and other
/// client errors (a typed error with the provider's message), and
/// `x-should-retry: false`. Request timeouts are retried only with
/// [`RetryPolicy::retry_timeouts`].
///
/// The delay before retry *n* (from 1) is drawn uniformly from
/// `0..=min(max_delay, base_delay * 2^(n-1))` ("full jitter"), unless the
/// provider sent `retry-after-ms` or `Retry-After` (seconds or an HTTP
/// date): that delay is honoured as given. When the next delay would end
/// past `max_elapsed` from the first request, the call fails at once with
/// [`ModelError::RetriesExhausted`]; each request's timeout is also cut to
/// the time left.
///
/// ```
/// use std::time::Duration;
/// use guiderail_runtime::llm::RetryPolicy;
///
/// let policy = RetryPolicy::default()
///     .max_attempts(6)
///     .max_elapsed(Duration::from_secs(120));
/// assert_eq!(policy.base_delay, Duration::from_millis(500));
/// assert_eq!(RetryPolicy::none().max_attempts, 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most requests per call, the first included (1: no retries).
    /// Default 4.
    pub max_attempts: u32,
    /// The first backoff's upper bound. Default 500 ms.
    pub base_delay: Duration,
    /// The largest backoff (not applied to `Retry-After`). Default 20 s.
    pub max_delay: Duration,
    /// Most time from the first request to the last answer, waits
    /// included. Default 60 s.
    pub max_elapsed: Duration,
    /// Whether a request that hit its timeout is sent again. Default
    /// `false`: a stalled model usually stalls again.
    pub retry_timeouts: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            max_elapsed: Duration::from_secs(60),
            retry_timeouts: false,
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// Sets [`RetryPolicy::max_attempts`] (at least 1).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets [`RetryPolicy::base_delay`].
    #[must_use]
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// Sets [`RetryPolicy::max_delay`].
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Sets [`RetryPolicy::max_elapsed`].
    #[must_use]
    pub fn max_elapsed(mut self, limit: Duration) -> Self {
        self.max_elapsed = limit;
        self
    }

    /// Sets [`RetryPolicy::retry_timeouts`].
    #[must_use]
    pub fn retry_timeouts(mut self, retry: bool) -> Self {
        self.retry_timeouts = retry;
        self
    }

    /// The backoff before retry `n` (from 1), jittered.
    fn backoff(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(30));
        let cap = self.base_delay.saturating_mul(factor).min(self.max_delay);
        cap.mul_f64(random_unit())
    }
}

/// A uniform number in `0.0..=1.0` (jitter does not need a real RNG).
fn random_unit() -> f64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let bits = RandomState::new().hash_one(nanos);
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Timeouts and retries of a provider's HTTP calls.
///
/// ```
/// use std::time::Duration;
/// use guiderail_runtime::llm::{HttpOptions, RetryPolicy};
///
/// let options = HttpOptions::default()
///     .connect_timeout(Duration::from_secs(5))
///     .request_timeout(Duration::from_secs(30))
///     .retry(RetryPolicy::none());
/// assert_eq!(options.retry.max_attempts, 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpOptions {
    /// Most time to open a connection. Default 10 s.
    pub connect_timeout: Duration,
    /// Most time for one request, from connecting to the end of the answer.
    /// Default 60 s.
    pub request_timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
        }
    }
}

impl HttpOptions {
    /// Sets [`HttpOptions::connect_timeout`].
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`HttpOptions::request_timeout`].
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets [`HttpOptions::retry`].
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
}

/// A provider's HTTP client: built once (on first use, or given), pooled,
/// shared by clones.
#[derive(Clone)]
pub(crate) struct Transport {
    provider: &'static str,
    pub(crate) options: HttpOptions,
    client: Arc<OnceLock<reqwest::Client>>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("provider", &self.provider)
            .field("options", &self.options)
            .finish()
    }
}

/// One failed attempt.
struct Failure {
    error: ModelError,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl Transport {
    pub(crate) fn new(provider: &'static str) -> Self {
        Transport {
            provider,
            options: HttpOptions::default(),
            client: Arc::new(OnceLock::new()),
        }
    }

    /// New options; a client built with the old ones is dropped.
    pub(crate) fn set_options(&mut self, options: HttpOptions) {
        if options.connect_timeout != self.options.connect_timeout {
            self.client = Arc::new(OnceLock::new());
        }
        self.options = options;
    }

    /// Uses this client (its own connect timeout and pool apply).
    pub(crate) fn set_client(&mut self, client: reqwest::Client) {
        self.client = Arc::new(OnceLock::from(client));
    }

    fn client(&self) -> Result<&reqwest::Client, ModelError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(self.options.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .user_agent(concat!("guiderail/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ModelError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(self.client.get_or_init(|| client))
    }

    /// POSTs `body` (JSON) to `url` with retries; the successful answer's
    /// body. `secret` is redacted from every error message.
    pub(crate) async fn post(
        &self,
        url: &str,
        headers: HeaderMap,
        body: Vec<u8>,
        secret: Option<&SecretString>,
    ) -> Result<Vec<u8>, ModelError> {
        let client = self.client()?;
        let policy = self.options.retry;
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let left = policy.max_elapsed.saturating_sub(started.elapsed());
            let timeout = self.options.request_timeout.min(left);
            let failure = match self
                .attempt(client, url, &headers, body.clone(), timeout, secret)
                .await
            {
                Ok(answer) => {
                    tracing::debug!(
                        provider = self.provider,
                        attempt,
                        latency_ms = started.elapsed().as_millis() as u64,
                        "model call answered"
                    );
                    return Ok(answer);
                }
                Err(failure) => failure,
            };
            if !failure.retryable {
                return Err(failure.error);
            }
            let exhausted = |error: ModelError| {
                if attempt > 1 {
                    ModelError::RetriesExhausted {
                        attempts: attempt,
                        last: Box::new(error),
                    }
                } else {
                    error
                }
            };
            if attempt >= policy.max_attempts {
                return Err(exhausted(failure.error));
            }
            let delay = failure
                .retry_after
                .unwrap_or_else(|| policy.backoff(attempt));
            if started.elapsed() + delay >= policy.max_elapsed {
                tracing::warn!(
                    provider = self.provider,
                    attempt,
                    delay_ms = delay.as_millis() as u64,
                    error = %failure.error,
                    "model call failed; no time left to retry"
                );
                return Err(exhausted(failure.error));
            }
            tracing::warn!(
                provider = self.provider,
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %failure.error,
                "model call failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(
        &self,
        client: &reqwest::Client,
        url: &str,
        headers: &HeaderMap,
        body: Vec<u8>,
        timeout: Duration,
        secret: Option<&SecretString>,
    ) -> Result<Vec<u8>, Failure> {
        let policy = self.options.retry;
        let transport = |e: reqwest::Error| {
            let timed_out = e.is_timeout();
            let connect = e.is_connect();
            let error = if timed_out {
                ModelError::Timeout(timeout.as_millis() as u64)
            } else {
                let text = error_chain(&e.without_url());
                ModelError::Transport(redact(secret, &text))
            };
            Failure {
                retryable: if timed_out {
                    policy.retry_timeouts
                } else {
                    connect
                },
                error,
                retry_after: None,
            }
        };
        if timeout.is_zero() {
            return Err(Failure {
                error: ModelError::Timeout(0),
                retryable: false,
                retry_after: None,
            });
        }
        let response = client
            .post(url)
            .headers(headers.clone())
            .body(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let should_retry = response
            .headers()
            .get("x-should-retry")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.eq_ignore_ascii_case("true"));
        let bytes = response.bytes().await.map_err(transport)?;
        if (200..300).contains(&status) {
            return Ok(bytes.to_vec());
        }
        let (message, kind) = error_message(&bytes);
        let message = redact(secret, &message);
        let overloaded = kind.as_deref() == Some("overloaded_error");
        let retryable = should_retry.unwrap_or(
            overloaded || matches!(status, 408 | 409 | 429 | 500 | 502 | 503 | 504 | 529),
        );
        let error = match status {
            401 | 403 => ModelError::Unauthorized { status, message },
            _ => ModelError::Http { status, message },
        };
        Err(Failure {
            retryable,
            error,
            retry_after,
        })
    }
}

fn redact(secret: Option<&SecretString>, text: &str) -> String {
    match secret {
        Some(s) => s.redact(text),
        None => text.to_owned(),
    }
}

/// An error and its sources, one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// The provider's error message and type from an error body: OpenAI's and
/// Anthropic's `{"error": {"message", "type"}}`, Ollama's `{"error": "…"}`,
/// or the text itself.
fn error_message(body: &[u8]) -> (String, Option<String>) {
    const MAX: usize = 1000;
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let (message, kind) = match error {
        Some(Value::String(m)) => (m.clone(), None),
        Some(e) => (
            e.get("message")
                .and_then(Value::as_str)
                .map_or_else(|| e.to_string(), str::to_owned),
            e.get("type").and_then(Value::as_str).map(str::to_owned),
        ),
        None => (String::from_utf8_lossy(body).trim().to_owned(), None),
    };
    let mut message = if message.is_empty() {
        "(no error message)".to_owned()
    } else {
        message
    };
    if message.len() > MAX {
        let mut end = MAX;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    (message, kind)
}

/// The delay a provider asked for: `retry-after-ms` (OpenAI), else
/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = get("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = parse_http_date(value)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Seconds since the epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37
/// GMT`), the HTTP date format servers send.
fn parse_http_date(s: &str) -> Option<u64> {
    let rest = s.split_once(", ").map_or(s, |(_, r)| r);
    let mut parts = rest.split_whitespace();
    let day: u64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':');
    let h: u64 = hms.next()?.parse().ok()?;
    let m: u64 = hms.next()?.parse().ok()?;
    let sec: u64 = hms.next()?.parse().ok()?;
    if parts.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days)
        .ok()
        .map(|d| d * 86_400 + h * 3600 + m * 60 + sec)
}

/// A header value that carries a secret: marked sensitive, so reqwest and
/// hyper never print it.
pub(crate) fn secret_header(value: &str) -> Result<HeaderValue, ModelError> {
    let mut header = HeaderValue::from_str(value)
        .map_err(|_| ModelError::Config("the API key is not a valid header value".into()))?;
    header.set_sensitive(true);
    Ok(header)
}

/// A move's tool description: its doc comment, or a line naming it.
pub(crate) fn tool_description(name: &str, doc: &str) -> String {
    if doc.is_empty() {
        format!("Take the move `{name}`.")
    } else {
        doc.to_owned()
    }
}

/// Reads an environment-like variable: `None` when unset or blank.
pub(crate) fn var(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The settings both HTTP providers share (price table, timeouts, retries,
/// client, model and base URL accessors), written once. Expects the fields
/// `api_key`, `pricing`, `transport`, `model` and `base_url`.
macro_rules! provider_settings {
    () => {
        /// Sets the API key (sent in the provider's authentication header,
        /// never logged).
        #[must_use]
        pub fn with_api_key(mut self, api_key: impl Into<SecretString>) -> Self {
            self.api_key = Some(api_key.into());
            self
        }

        /// Sets the default model (a request's `CallOptions::model` wins).
        #[must_use]
        pub fn with_model(mut self, model: impl Into<String>) -> Self {
            self.model = model.into();
            self
        }

        /// Sets the price table used for `Usage::cost_micros`.
        #[must_use]
        pub fn with_pricing(mut self, pricing: Pricing) -> Self {
            self.pricing = pricing;
            self
        }

        /// Sets timeouts and retries.
        #[must_use]
        pub fn with_http_options(mut self, options: HttpOptions) -> Self {
            self.transport.set_options(options);
            self
        }

        /// Sets the retry policy.
        #[must_use]
        pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
            let options = self.transport.options.retry(retry);
            self.transport.set_options(options);
            self
        }

        /// Sets the connect and the per-request timeouts.
        #[must_use]
        pub fn with_timeouts(mut self, connect: Duration, request: Duration) -> Self {
            let options = self
                .transport
                .options
                .connect_timeout(connect)
                .request_timeout(request);
            self.transport.set_options(options);
            self
        }

        /// Uses this reqwest client (for a shared pool, proxies, custom TLS);
        /// its own connect timeout applies.
        #[must_use]
        pub fn with_http_client(mut self, client: reqwest::Client) -> Self {
            self.transport.set_client(client);
            self
        }

        /// The default model.
        pub fn model(&self) -> &str {
            &self.model
        }

        /// The base URL.
        pub fn base_url(&self) -> &str {
            &self.base_url
        }
    };
}
pub(crate) use provider_settings;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{RetryPolicy, SecretString, error_message, parse_http_date, retry_after};
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(
            "retry-after",
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn backoff_is_capped() {
        let p = RetryPolicy::default();
        for n in 1..40 {
            let d = p.backoff(n);
            assert!(d <= p.max_delay);
            assert!(d <= p.base_delay * 2u32.saturating_pow(n - 1));
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let s = SecretString::new("sk-very-secret");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(s.redact("bad key sk-very-secret!"), "bad key ***!");
    }

    #[test]
    fn error_bodies() {
        let openai = br#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        assert_eq!(error_message(openai).0, "Incorrect API key provided");
        let anthropic =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(
            error_message(anthropic),
            ("Overloaded".to_owned(), Some("overloaded_error".to_owned()))
        );
        assert_eq!(
            error_message(br#"{"error":"model not found"}"#).0,
            "model not found"
        );
        assert_eq!(error_message(b"Bad Gateway").0, "Bad Gateway");
    }
}
