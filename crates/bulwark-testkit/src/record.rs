//! The log of every request FakeNotion received.

use std::collections::VecDeque;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, Method};
use serde_json::Value;
use tokio::time::Instant;

/// One request as FakeNotion received it, and what it answered.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// The HTTP method.
    pub method: http::Method,
    /// The path, without the query (`/v1/pages`).
    pub path: String,
    /// The raw query string, if any (`page_size=10`).
    pub query: Option<String>,
    /// The bearer token from `Authorization: Bearer …`, as sent (also when it
    /// was refused); `None` when there was no bearer token.
    pub token: Option<String>,
    /// When the request head arrived (`tokio::time`, so paused clocks apply).
    pub at: Instant,
    /// When the request head arrived, on the wall clock.
    pub received: SystemTime,
    /// The request headers.
    pub headers: HeaderMap,
    /// The request body.
    pub body: Bytes,
    /// The status answered; 0 while the answer is pending and when the
    /// connection was dropped without an answer.
    pub status: u16,
    /// The `x-notion-request-id` answered, if any (Cloudflare-style answers
    /// and dropped connections have none).
    pub request_id: Option<String>,
}

impl RecordedRequest {
    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// Whether this request has `method` and `path` (without query).
    pub fn is(&self, method: &Method, path: &str) -> bool {
        self.method == method && self.path == path
    }
}

/// A bounded log; entries keep a sequence number so that an answer can be
/// filled in after a concurrent `clear`.
#[derive(Debug)]
pub(crate) struct Log {
    next_seq: u64,
    limit: usize,
    entries: VecDeque<(u64, RecordedRequest)>,
}

impl Log {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            next_seq: 0,
            limit,
            entries: VecDeque::new(),
        }
    }

    /// Appends an entry (dropping the oldest past the limit); returns its
    /// sequence number.
    pub(crate) fn push(&mut self, request: RecordedRequest) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.limit == 0 {
            return seq;
        }
        while self.entries.len() >= self.limit {
            self.entries.pop_front();
        }
        self.entries.push_back((seq, request));
        seq
    }

    /// Fills in the answer of entry `seq`, if it is still there.
    pub(crate) fn answered(&mut self, seq: u64, status: u16, request_id: Option<String>) {
        if let Ok(i) = self.entries.binary_search_by_key(&seq, |(s, _)| *s) {
            if let Some((_, entry)) = self.entries.get_mut(i) {
                entry.status = status;
                entry.request_id = request_id;
            }
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<RecordedRequest> {
        self.entries.iter().map(|(_, r)| r.clone()).collect()
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}
