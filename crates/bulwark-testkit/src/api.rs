//! The Notion API proper: auth, version, rate limit, routing and handlers.
//! Everything here is synchronous; waiting (latency, faults) happens in
//! `server`.

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::lock;
use crate::query::Query;
use crate::server::Shared;
use crate::store::{
    normalize_properties, parse_blocks, uses_data_sources, NewParent, Page, Store, BOT_USER_ID,
    SEED_DATABASE_ID, SEED_DATA_SOURCE_ID,
};
use crate::wire::{error_response, json_response, rate_limited, Body};

/// Notion's largest (and default) `page_size`.
const MAX_PAGE_SIZE: u64 = 100;

/// One `/v1/*` request, body already read.
#[derive(Debug)]
pub(crate) struct ApiRequest<'a> {
    pub(crate) method: &'a Method,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) token: Option<&'a str>,
    pub(crate) body: &'a Bytes,
    pub(crate) request_id: &'a str,
}

/// A handler's answer: the JSON of a 200, or an error.
type Reply = Result<Value, ApiError>;

/// A Notion error, turned into a response with the request id at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// 400 `validation_error`.
    fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "validation_error",
            message: message.into(),
        }
    }

    /// 400 `invalid_request_url`.
    fn invalid_url() -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request_url",
            message: "Invalid request URL.".to_owned(),
        }
    }

    /// 400 `invalid_json`.
    fn invalid_json() -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_json",
            message: "Error parsing JSON body.".to_owned(),
        }
    }

    /// 404 `object_not_found` for a `kind` ("page", "block", …) and id.
    fn not_found(kind: &str, id: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "object_not_found",
            message: format!(
                "Could not find {kind} with ID: {}. Make sure the relevant pages and databases are shared with your integration.",
                truncate(id)
            ),
        }
    }

    fn into_response(self, request_id: &str) -> Response<Body> {
        error_response(self.status, self.code, self.message, request_id)
    }
}

/// Answers one `/v1/*` request as Notion would.
pub(crate) fn handle(shared: &Shared, req: &ApiRequest<'_>) -> Response<Body> {
    let rid = req.request_id;
    let Some(token) = authorized(shared, req.token) else {
        return error_response(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "API token is invalid.",
            rid,
        );
    };
    let version = req
        .headers
        .get("notion-version")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let Some(version) = version else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "missing_version",
            "Notion-Version header failed validation: Notion-Version header should be defined, instead was `undefined`.",
            rid,
        );
    };
    if let Err(retry_after) = shared.buckets.try_acquire(token, Instant::now()) {
        return rate_limited(retry_after, rid);
    }
    match route(shared, req, version) {
        Ok(value) => json_response(StatusCode::OK, rid, value),
        Err(error) => error.into_response(rid),
    }
}

/// The bearer token, when it is one the fake accepts.
fn authorized<'t>(shared: &Shared, token: Option<&'t str>) -> Option<&'t str> {
    token.filter(|t| {
        !t.is_empty()
            && shared
                .tokens
                .as_ref()
                .is_none_or(|tokens| tokens.contains(*t))
    })
}

/// Remembers the properties an authorized `POST /v1/pages` into the database, or
/// `PATCH /v1/pages/{id}` of one of its rows, names (see [`Store::learn_properties`]).
/// Called before faults, so a create a fault keeps from landing still counts: a real
/// database has its properties before any row does.
pub(crate) fn learn_properties(shared: &Shared, req: &ApiRequest<'_>) {
    let is_create = req.method == Method::POST && req.path == "/v1/pages";
    let updated = (req.method == Method::PATCH)
        .then(|| req.path.strip_prefix("/v1/pages/"))
        .flatten()
        .filter(|id| !id.is_empty() && !id.contains('/'));
    if (!is_create && updated.is_none()) || authorized(shared, req.token).is_none() {
        return;
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(req.body) else {
        return;
    };
    let Ok(properties) = normalize_properties(body.get("properties")) else {
        return;
    };
    if properties.is_empty() {
        return;
    }
    let mut store = lock(&shared.store);
    let into_database = match updated {
        Some(id) => store.page(&normalize_id(id)).is_some_and(Page::in_database),
        None => body.get("parent").is_some_and(|parent| {
            let id = |key: &str| parent.get(key).and_then(Value::as_str).map(normalize_id);
            id("database_id").as_deref() == Some(SEED_DATABASE_ID)
                || id("data_source_id").as_deref() == Some(SEED_DATA_SOURCE_ID)
        }),
    };
    if into_database {
        store.learn_properties(&properties);
    }
}

fn route(shared: &Shared, req: &ApiRequest<'_>, version: &str) -> Reply {
    let Some(rest) = req.path.strip_prefix("/v1/") else {
        return Err(ApiError::invalid_url());
    };
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(ApiError::invalid_url());
    }
    let ctx = Ctx {
        shared,
        req,
        version,
    };
    match (req.method.as_str(), segments.as_slice()) {
        ("GET", ["users", "me"]) => Ok(bot_user()),
        ("GET", ["users"]) => Ok(list("user", vec![bot_user()], None)),
        ("GET", ["users", id]) if normalize_id(id) == BOT_USER_ID => Ok(bot_user()),
        ("GET", ["users", id]) => Err(ApiError::not_found("user", id)),
        ("POST", ["pages"]) => ctx.create_page(),
        ("GET", ["pages", id]) => ctx.get_page(id),
        ("PATCH", ["pages", id]) => ctx.update_page(id),
        ("GET", ["databases", id]) => ctx.get_database(id),
        ("POST", ["databases", id, "query"]) => ctx.query(id, Collection::Database),
        ("GET", ["data_sources", id]) => ctx.get_data_source(id),
        ("PATCH", ["data_sources", id]) => ctx.update_data_source(id),
        ("POST", ["data_sources", id, "query"]) => ctx.query(id, Collection::DataSource),
        ("POST", ["search"]) => ctx.search(),
        ("GET", ["blocks", id]) => ctx.get_block(id),
        ("GET", ["blocks", id, "children"]) => ctx.block_children(id),
        ("PATCH", ["blocks", id, "children"]) => ctx.append_children(id),
        _ => Err(ApiError::invalid_url()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collection {
    Database,
    DataSource,
}

struct Ctx<'a> {
    shared: &'a Shared,
    req: &'a ApiRequest<'a>,
    version: &'a str,
}

impl Ctx<'_> {
    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        lock(&self.shared.store)
    }

    /// The JSON body as an object; an empty body is `{}`.
    fn body(&self) -> Result<Map<String, Value>, ApiError> {
        let body = self.req.body;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(other) => Err(ApiError::invalid(format!(
                "body failed validation: body should be an object, instead was `{}`.",
                truncate(&other.to_string())
            ))),
            Err(_) => Err(ApiError::invalid_json()),
        }
    }

    fn create_page(&self) -> Reply {
        let body = self.body()?;
        let parent = match body.get("parent") {
            Some(Value::Object(parent)) => parent,
            None | Some(Value::Null) => return Err(ApiError::invalid(
                "body failed validation: body.parent should be defined, instead was `undefined`.",
            )),
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "body failed validation: body.parent should be an object, instead was `{}`.",
                    truncate(&other.to_string())
                )))
            }
        };
        let properties = normalize_properties(body.get("properties")).map_err(ApiError::invalid)?;
        let children = match body.get("children") {
            None | Some(Value::Null) => Vec::new(),
            Some(children) => parse_blocks(children).map_err(ApiError::invalid)?,
        };
        let icon = body.get("icon").cloned().unwrap_or(Value::Null);
        let cover = body.get("cover").cloned().unwrap_or(Value::Null);

        let mut store = self.store();
        let parent = if let Some(id) = parent.get("database_id").and_then(Value::as_str) {
            if normalize_id(id) != SEED_DATABASE_ID {
                return Err(ApiError::not_found("database", id));
            }
            NewParent::Database
        } else if let Some(id) = parent.get("data_source_id").and_then(Value::as_str) {
            if normalize_id(id) != SEED_DATA_SOURCE_ID {
                return Err(ApiError::not_found("data source", id));
            }
            NewParent::Database
        } else if let Some(id) = parent.get("page_id").and_then(Value::as_str) {
            let id = normalize_id(id);
            if store.page(&id).is_none() {
                return Err(ApiError::not_found("page", &id));
            }
            NewParent::Page(id)
        } else if parent.get("workspace") == Some(&Value::Bool(true))
            || parent.get("type").and_then(Value::as_str) == Some("workspace")
        {
            NewParent::Workspace
        } else {
            return Err(ApiError::invalid(
                "body failed validation: body.parent should have one of `page_id`, `database_id`, `data_source_id` or `workspace`.",
            ));
        };
        let id = store
            .insert_page(parent, properties, icon, cover)
            .id
            .clone();
        if !children.is_empty() {
            store
                .append_blocks(&id, children, None)
                .map_err(ApiError::invalid)?;
        }
        let page = store
            .page(&id)
            .map(|p| p.render(self.version))
            .unwrap_or_default();
        tracing::debug!(target: "bulwark_testkit", page_id = %id, "page created");
        Ok(page)
    }

    fn get_page(&self, id: &str) -> Reply {
        let id = normalize_id(id);
        let store = self.store();
        let page = store
            .page(&id)
            .ok_or_else(|| ApiError::not_found("page", &id))?;
        Ok(page.render(self.version))
    }

    fn update_page(&self, id: &str) -> Reply {
        let id = normalize_id(id);
        let body = self.body()?;
        let properties = normalize_properties(body.get("properties")).map_err(ApiError::invalid)?;
        let mut in_trash = None;
        for key in ["in_trash", "archived"] {
            match body.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::Bool(b)) => in_trash = Some(*b),
                Some(other) => {
                    return Err(ApiError::invalid(format!(
                        "body failed validation: body.{key} should be a boolean, instead was `{}`.",
                        truncate(&other.to_string())
                    )))
                }
            }
        }
        let icon = body.get("icon").cloned();
        let cover = body.get("cover").cloned();
        let mut store = self.store();
        let page = store
            .update_page(&id, properties, in_trash, icon, cover)
            .ok_or_else(|| ApiError::not_found("page", &id))?;
        Ok(page.render(self.version))
    }

    fn get_database(&self, id: &str) -> Reply {
        if normalize_id(id) != SEED_DATABASE_ID {
            return Err(ApiError::not_found("database", id));
        }
        Ok(self.store().database_json(self.version))
    }

    fn get_data_source(&self, id: &str) -> Reply {
        if normalize_id(id) != SEED_DATA_SOURCE_ID {
            return Err(ApiError::not_found("data source", id));
        }
        Ok(self.store().data_source_json())
    }

    /// `PATCH /v1/data_sources/{id}`: `properties` changes the schema (see
    /// [`Store::update_schema`]); `title` and `description` are checked (arrays) but kept
    /// as they are.
    fn update_data_source(&self, id: &str) -> Reply {
        if normalize_id(id) != SEED_DATA_SOURCE_ID {
            return Err(ApiError::not_found("data source", id));
        }
        let body = self.body()?;
        for key in ["title", "description"] {
            match body.get(key) {
                None | Some(Value::Null | Value::Array(_)) => {}
                Some(other) => {
                    return Err(ApiError::invalid(format!(
                        "body failed validation: body.{key} should be an array, instead was `{}`.",
                        truncate(&other.to_string())
                    )))
                }
            }
        }
        let mut store = self.store();
        if let Some(changes) = body.get("properties") {
            store.update_schema(changes).map_err(ApiError::invalid)?;
        }
        tracing::debug!(target: "bulwark_testkit", data_source_id = %id, "data source updated");
        Ok(store.data_source_json())
    }

    fn query(&self, id: &str, collection: Collection) -> Reply {
        let body = self.body()?;
        let (expected, kind, list_type) = match collection {
            Collection::Database => (SEED_DATABASE_ID, "database", "page_or_database"),
            Collection::DataSource => (SEED_DATA_SOURCE_ID, "data source", "page_or_data_source"),
        };
        if normalize_id(id) != expected {
            return Err(ApiError::not_found(kind, id));
        }
        let params = PageParams::from_body(&body).map_err(ApiError::invalid)?;
        let want_trash = [body.get("in_trash"), body.get("archived")]
            .into_iter()
            .any(|v| v == Some(&Value::Bool(true)));
        let today = OffsetDateTime::now_utc().date();
        let store = self.store();
        let rows: Vec<&Page> = store.pages().iter().filter(|p| p.in_database()).collect();
        // Filter and sort before paginating, so cursors walk the filtered, sorted rows.
        let query = Query::from_body(
            &body,
            &store.properties(),
            &rows,
            store.named_properties(),
            today,
        )
        .map_err(ApiError::invalid)?;
        let rows: Vec<Value> = query
            .apply(rows.into_iter().filter(|p| p.in_trash == want_trash))
            .into_iter()
            .map(|p| p.render(self.version))
            .collect();
        drop(store);
        let (results, next) = params.paginate(rows).map_err(ApiError::invalid)?;
        Ok(list(list_type, results, next))
    }

    fn search(&self) -> Reply {
        let body = self.body()?;
        let params = PageParams::from_body(&body).map_err(ApiError::invalid)?;
        let query = match body.get("query") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(q)) => q.to_lowercase(),
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "body failed validation: body.query should be a string, instead was `{}`.",
                    truncate(&other.to_string())
                )))
            }
        };
        let (pages, collections) = match body.get("filter") {
            None | Some(Value::Null) => (true, true),
            Some(filter) => match filter.get("value").and_then(Value::as_str) {
                Some("page") => (true, false),
                Some("data_source" | "database") => (false, true),
                _ => {
                    return Err(ApiError::invalid(
                        "body failed validation: body.filter.value should be `\"page\"` or `\"data_source\"`.",
                    ))
                }
            },
        };
        let new_api = uses_data_sources(self.version);
        let store = self.store();
        let mut found = Vec::new();
        if collections && Store::database_matches(&query) {
            found.push(if new_api {
                store.data_source_json()
            } else {
                store.database_json(self.version)
            });
        }
        if pages {
            found.extend(
                store
                    .pages()
                    .iter()
                    .filter(|p| !p.in_trash)
                    .filter(|p| {
                        query.is_empty()
                            || p.title().is_some_and(|t| t.to_lowercase().contains(&query))
                    })
                    .map(|p| p.render(self.version)),
            );
        }
        drop(store);
        let (results, next) = params.paginate(found).map_err(ApiError::invalid)?;
        let list_type = if new_api {
            "page_or_data_source"
        } else {
            "page_or_database"
        };
        Ok(list(list_type, results, next))
    }

    fn get_block(&self, id: &str) -> Reply {
        let id = normalize_id(id);
        let block = self
            .store()
            .render_block(&id)
            .ok_or_else(|| ApiError::not_found("block", &id))?;
        Ok(block)
    }

    fn block_children(&self, id: &str) -> Reply {
        let id = normalize_id(id);
        let params = PageParams::from_query(self.req.query).map_err(ApiError::invalid)?;
        let store = self.store();
        if !store.has_container(&id) {
            return Err(ApiError::not_found("block", &id));
        }
        let children = store.children_of(&id);
        drop(store);
        let (results, next) = params.paginate(children).map_err(ApiError::invalid)?;
        Ok(list("block", results, next))
    }

    fn append_children(&self, id: &str) -> Reply {
        let id = normalize_id(id);
        let body = self.body()?;
        let blocks = match body.get("children") {
            None | Some(Value::Null) => return Err(ApiError::invalid(
                "body failed validation: body.children should be defined, instead was `undefined`.",
            )),
            Some(children) => parse_blocks(children).map_err(ApiError::invalid)?,
        };
        let after = match body.get("after") {
            None | Some(Value::Null) => None,
            Some(Value::String(after)) => Some(normalize_id(after)),
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "body failed validation: body.after should be a string, instead was `{}`.",
                    truncate(&other.to_string())
                )))
            }
        };
        let mut store = self.store();
        if !store.has_container(&id) {
            return Err(ApiError::not_found("block", &id));
        }
        let made = store
            .append_blocks(&id, blocks, after.as_deref())
            .map_err(ApiError::invalid)?;
        Ok(list("block", made, None))
    }
}

/// `{"object":"list","results":…,"next_cursor":…,"has_more":…,"type":…,<type>:{}}`.
fn list(kind: &str, results: Vec<Value>, next_cursor: Option<String>) -> Value {
    let has_more = next_cursor.is_some();
    let mut value = json!({
        "object": "list",
        "results": results,
        "next_cursor": next_cursor,
        "has_more": has_more,
        "type": kind,
    });
    if let Some(obj) = value.as_object_mut() {
        obj.insert(kind.to_owned(), json!({}));
    }
    value
}

fn bot_user() -> Value {
    json!({
        "object": "user",
        "id": BOT_USER_ID,
        "name": "FakeNotion",
        "avatar_url": null,
        "type": "bot",
        "bot": {
            "owner": {"type": "workspace", "workspace": true},
            "workspace_name": "FakeNotion workspace",
        },
    })
}

/// Notion accepts ids with or without hyphens: 32 hex digits become the
/// hyphenated lowercase form, anything else is kept.
fn normalize_id(id: &str) -> String {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        let id = id.to_ascii_lowercase();
        format!(
            "{}-{}-{}-{}-{}",
            &id[0..8],
            &id[8..12],
            &id[12..16],
            &id[16..20],
            &id[20..32]
        )
    } else {
        id.to_owned()
    }
}

/// Keeps messages that echo user input short.
fn truncate(text: &str) -> String {
    const MAX: usize = 100;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// `page_size` and `start_cursor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageParams {
    pub(crate) size: usize,
    pub(crate) cursor: Option<String>,
}

impl PageParams {
    fn check_size(size: u64, at: &str) -> Result<usize, String> {
        if size == 0 {
            return Err(format!(
                "body failed validation: {at}.page_size should be greater than or equal to `1`, instead was `0`."
            ));
        }
        if size > MAX_PAGE_SIZE {
            return Err(format!(
                "body failed validation: {at}.page_size should be less than or equal to `{MAX_PAGE_SIZE}`, instead was `{size}`."
            ));
        }
        usize::try_from(size)
            .map_err(|_| format!("body failed validation: {at}.page_size is too large."))
    }

    fn from_body(body: &Map<String, Value>) -> Result<Self, String> {
        let size = match body.get("page_size") {
            None | Some(Value::Null) => MAX_PAGE_SIZE,
            Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64().unwrap_or(MAX_PAGE_SIZE),
            Some(other) => {
                return Err(format!(
                    "body failed validation: body.page_size should be a positive integer, instead was `{}`.",
                    truncate(&other.to_string())
                ))
            }
        };
        let cursor = match body.get("start_cursor") {
            None | Some(Value::Null) => None,
            Some(Value::String(c)) => Some(c.clone()),
            Some(other) => {
                return Err(format!(
                "body failed validation: body.start_cursor should be a string, instead was `{}`.",
                truncate(&other.to_string())
            ))
            }
        };
        Ok(Self {
            size: Self::check_size(size, "body")?,
            cursor,
        })
    }

    pub(crate) fn from_query(query: Option<&str>) -> Result<Self, String> {
        let mut params = Self {
            size: 100,
            cursor: None,
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value);
            match key {
                "page_size" => {
                    let size = value.parse::<u64>().map_err(|_| {
                        format!(
                            "body failed validation: query.page_size should be a positive integer, instead was `{}`.",
                            truncate(&value)
                        )
                    })?;
                    params.size = Self::check_size(size, "query")?;
                }
                "start_cursor" if !value.is_empty() => params.cursor = Some(value),
                _ => {}
            }
        }
        Ok(params)
    }

    /// One page of `items` (each with an `"id"`); the cursor is the id of
    /// the first item of the next page.
    fn paginate(&self, mut items: Vec<Value>) -> Result<(Vec<Value>, Option<String>), String> {
        let start = match &self.cursor {
            None => 0,
            Some(cursor) => {
                let cursor = normalize_id(cursor);
                items
                    .iter()
                    .position(|item| item.get("id").and_then(Value::as_str) == Some(cursor.as_str()))
                    .ok_or_else(|| {
                        format!(
                            "body failed validation: start_cursor should be a cursor returned by a previous request, instead was `{}`.",
                            truncate(&cursor)
                        )
                    })?
            }
        };
        let end = start.saturating_add(self.size).min(items.len());
        let next = items
            .get(end)
            .and_then(|item| item.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        items.truncate(end);
        items.drain(..start);
        Ok((items, next))
    }
}

/// Decodes `%XX` escapes and `+`; invalid escapes are kept as they are.
pub(crate) fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                // Two hex digits: `from_str_radix` alone would also take a sign (`%+1`).
                let hex = &bytes[i + 1..i + 3];
                let hex = std::str::from_utf8(hex)
                    .ok()
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_normalized() {
        assert_eq!(
            normalize_id("16D84278AB0E484C9BDDB35DA3BD8905"),
            "16d84278-ab0e-484c-9bdd-b35da3bd8905"
        );
        assert_eq!(normalize_id("db_1"), "db_1");
    }

    #[test]
    fn query_params() {
        assert_eq!(
            PageParams::from_query(Some("page_size=5&start_cursor=a%2Db")).unwrap(),
            PageParams {
                size: 5,
                cursor: Some("a-b".to_owned())
            }
        );
        assert!(PageParams::from_query(Some("page_size=101")).is_err());
        assert!(PageParams::from_query(Some("page_size=0")).is_err());
        assert!(PageParams::from_query(Some("page_size=x")).is_err());
        assert!(PageParams::from_query(Some("&&=&page_size")).is_err());
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("%e2%9c%93"), "✓");
    }

    #[test]
    fn pagination_walks_all_items() {
        let items: Vec<Value> = (0..7).map(|i| json!({"id": format!("i{i}")})).collect();
        let mut params = PageParams {
            size: 3,
            cursor: None,
        };
        let mut seen = Vec::new();
        for _ in 0..10 {
            let (page, next) = params.paginate(items.clone()).unwrap();
            seen.extend(page);
            match next {
                Some(next) => params.cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, items);
        params.cursor = Some("nope".to_owned());
        assert!(params.paginate(items).is_err());
    }
}
