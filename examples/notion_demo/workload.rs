//! The workload: which operations, when, and the requests they make.

use bulwark::http::BufferedBody;
use http::{header, Request};
use serde_json::{json, Value};

/// Operations started per second, a little above Notion's 3 requests/s.
pub(crate) const OPS_PER_SECOND: u32 = 4;
/// Pages read by `GET /v1/pages/{id}`.
pub(crate) const READ_PAGES: usize = 5;
/// The most pages the workload creates.
pub(crate) const MAX_WRITES: usize = 30;

/// One operation of the workload.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    /// `GET /v1/pages/{id}` of the n-th page.
    ReadPage(usize),
    /// `POST /v1/data_sources/{id}/query` (or `POST /v1/search` with no data source).
    Query,
    /// `POST /v1/pages`, the n-th write (its title is unique).
    Create(usize),
}

impl Op {
    pub(crate) const fn is_write(self) -> bool {
        matches!(self, Self::Create(_))
    }
}

/// The operations, one every `1 / OPS_PER_SECOND` s, drawn from `seed`.
pub(crate) fn workload(seconds: u64, seed: u64, writes: bool) -> Vec<Op> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut created = 0;
    (0..seconds * u64::from(OPS_PER_SECOND))
        .map(|_| {
            let roll = rng.u32(0..100);
            if writes && roll < 10 && created < MAX_WRITES {
                created += 1;
                Op::Create(created)
            } else if roll < 35 {
                Op::Query
            } else {
                Op::ReadPage(rng.usize(0..READ_PAGES))
            }
        })
        .collect()
}

/// Where the workload's requests go.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) base_url: String,
    /// Pages to read; empty reads `users/me` instead.
    pub(crate) pages: Vec<String>,
    pub(crate) data_source: Option<String>,
    /// The data source's title property.
    pub(crate) title_property: String,
    /// Tells this run's page titles apart from earlier runs'.
    pub(crate) run: String,
}

impl Target {
    pub(crate) fn title(&self, n: usize) -> String {
        format!("bulwark demo {} #{n}", self.run)
    }

    pub(crate) fn request(&self, op: Op) -> Result<Request<BufferedBody>, http::Error> {
        let url = |path: &str| format!("{}/v1/{path}", self.base_url);
        match (op, &self.data_source) {
            (Op::ReadPage(n), _) if !self.pages.is_empty() => {
                let id = &self.pages[n % self.pages.len()];
                get(&url(&format!("pages/{id}")))
            }
            (Op::ReadPage(_), _) => get(&url("users/me")),
            (Op::Query, Some(ds)) => post(
                &url(&format!("data_sources/{ds}/query")),
                &json!({ "page_size": 10 }),
            ),
            (Op::Query, None) => post(&url("search"), &json!({ "page_size": 10 })),
            (Op::Create(n), Some(ds)) => post(
                &url("pages"),
                &json!({
                    "parent": { "data_source_id": ds },
                    "properties": {
                        self.title_property.as_str(): {
                            "title": [{ "text": { "content": self.title(n) } }]
                        }
                    }
                }),
            ),
            (Op::Create(_), None) => get(&url("users/me")),
        }
    }
}

pub(crate) fn get(url: &str) -> Result<Request<BufferedBody>, http::Error> {
    Request::get(url).body(BufferedBody::empty())
}

pub(crate) fn post(url: &str, body: &Value) -> Result<Request<BufferedBody>, http::Error> {
    Request::post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(BufferedBody::from(body.to_string()))
}
