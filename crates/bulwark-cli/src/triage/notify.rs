//! `--notify URL`: the Slack message posted to an incoming webhook as `{"text": …}`, with
//! hyper-util, bounded by the step timeout.

use std::{fmt, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::json;
use tokio::time::timeout;

use crate::proxy::redact_url;
use crate::triage::net::{self, chain};

/// Why a notification was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyError {
    /// The webhook, credentials redacted.
    pub url: String,
    /// What went wrong.
    pub reason: String,
}

impl fmt::Display for NotifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "notifying {} failed: {}", self.url, self.reason)
    }
}

impl std::error::Error for NotifyError {}

/// Posts `{"text": text}` to `url` as JSON; a 2xx answer is a delivery.
///
/// # Errors
/// An invalid URL, no answer within `bound`, a transport error, or a status other than 2xx
/// (with the start of the body: Slack says `invalid_payload`, `no_service`, …).
pub async fn post_slack(url: &str, text: &str, bound: Duration) -> Result<(), NotifyError> {
    let fail = |reason: String| NotifyError {
        url: redact_url(url),
        reason,
    };
    let uri: http::Uri = url.parse().map_err(|e| fail(format!("invalid URL: {e}")))?;
    let body = Bytes::from(json!({ "text": text }).to_string());
    let request = http::Request::post(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "bulwark-triage")
        .body(Full::new(body))
        .map_err(|e| fail(e.to_string()))?;
    let client = net::client::<Full<Bytes>>(bound).map_err(fail)?;
    let send = async {
        let response = client.request(request).await.map_err(|e| chain(&e))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), 4096)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!(
                "HTTP {}: {:.200}",
                status.as_u16(),
                String::from_utf8_lossy(&body)
            ))
        }
    };
    match timeout(bound, send).await {
        Ok(result) => result.map_err(fail),
        Err(_) => Err(fail(format!("no answer within {} s", bound.as_secs_f64()))),
    }
}
