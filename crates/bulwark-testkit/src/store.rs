//! The in-memory workspace: one database (`db_1`) with one data source
//! (`ds_1`), the pages created so far and their blocks.

use std::collections::HashMap;
use std::time::SystemTime;

use serde_json::{json, Map, Value};

use crate::wire::{default_annotations, iso8601, new_id, plain_rich_text};

mod schema;

use schema::{apply_schema_change, schema_property};

/// The id of the database that always exists (and holds the seeded pages).
pub const SEED_DATABASE_ID: &str = "db_1";
/// The id of the data source of [`SEED_DATABASE_ID`].
pub const SEED_DATA_SOURCE_ID: &str = "ds_1";

/// The id of the bot user behind every token.
pub(crate) const BOT_USER_ID: &str = "16d84278-ab0e-484c-9bdd-b35da3bd8905";
const DATABASE_TITLE: &str = "FakeNotion database";
/// Notion's first API version that speaks of data sources.
pub(crate) const DATA_SOURCE_VERSION: &str = "2025-09-03";

/// Whether a `Notion-Version` value is at least 2025-09-03 (data sources).
pub(crate) fn uses_data_sources(version: &str) -> bool {
    version >= DATA_SOURCE_VERSION
}

/// The most block children a request may append (Notion's limit).
pub(crate) const MAX_CHILDREN: usize = 100;
/// Nesting levels a single append may carry (Notion's limit).
const MAX_NESTING: usize = 2;

/// A page as FakeNotion stores it. Compare [`title`](Self::title)s to spot
/// duplicates created by retried `POST /v1/pages`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Page {
    /// The page id (a UUID).
    pub id: String,
    /// The parent as Notion 2025-09-03 renders it, e.g.
    /// `{"type":"data_source_id","data_source_id":"ds_1","database_id":"db_1"}`
    /// or `{"type":"page_id","page_id":"…"}` or
    /// `{"type":"workspace","workspace":true}`.
    pub parent: Value,
    /// The property values (a JSON object), normalized as Notion returns them.
    pub properties: Value,
    /// The page icon, or `null`.
    pub icon: Value,
    /// The page cover, or `null`.
    pub cover: Value,
    /// Whether the page was moved to the trash (`in_trash`/`archived`).
    pub in_trash: bool,
    /// ISO 8601 creation time.
    pub created_time: String,
    /// ISO 8601 time of the last change.
    pub last_edited_time: String,
}

impl Page {
    /// The plain text of the page's `title` property, if it has one.
    pub fn title(&self) -> Option<String> {
        let props = self.properties.as_object()?;
        props
            .values()
            .find(|v| v.get("type").and_then(Value::as_str) == Some("title"))
            .and_then(|v| v.get("title"))
            .map(rich_text_plain)
    }

    /// Whether the page is a row of the seeded database.
    pub fn in_database(&self) -> bool {
        self.parent.get("database_id").and_then(Value::as_str) == Some(SEED_DATABASE_ID)
    }

    /// The page object as the API returns it for Notion-Version 2025-09-03.
    pub fn to_json(&self) -> Value {
        self.render(DATA_SOURCE_VERSION)
    }

    /// The page object for `version`: before 2025-09-03 a database parent
    /// is `{"type":"database_id","database_id":…}`.
    pub(crate) fn render(&self, version: &str) -> Value {
        let parent = if !uses_data_sources(version) && self.in_database() {
            json!({"type": "database_id", "database_id": SEED_DATABASE_ID})
        } else {
            self.parent.clone()
        };
        json!({
            "object": "page",
            "id": self.id,
            "created_time": self.created_time,
            "last_edited_time": self.last_edited_time,
            "created_by": {"object": "user", "id": BOT_USER_ID},
            "last_edited_by": {"object": "user", "id": BOT_USER_ID},
            "cover": self.cover,
            "icon": self.icon,
            "parent": parent,
            "archived": self.in_trash,
            "in_trash": self.in_trash,
            "is_locked": false,
            "properties": self.properties,
            "url": notion_url(&self.id),
            "public_url": null,
        })
    }
}

fn notion_url(id: &str) -> String {
    format!("https://www.notion.so/{}", id.replace('-', ""))
}

/// The concatenated plain text of a rich-text array.
pub(crate) fn rich_text_plain(items: &Value) -> String {
    items
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| {
                    item.get("plain_text")
                        .or_else(|| item.get("text").and_then(|t| t.get("content")))
                        .and_then(Value::as_str)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Page property types, used to find the type of a value given without `type`.
const PROPERTY_TYPES: &[&str] = &[
    "title",
    "rich_text",
    "number",
    "select",
    "multi_select",
    "status",
    "date",
    "people",
    "files",
    "checkbox",
    "url",
    "email",
    "phone_number",
    "relation",
    "formula",
    "rollup",
    "unique_id",
    "verification",
];

/// Block types, used to find the type of a block given without `type`.
const BLOCK_TYPES: &[&str] = &[
    "paragraph",
    "heading_1",
    "heading_2",
    "heading_3",
    "bulleted_list_item",
    "numbered_list_item",
    "to_do",
    "toggle",
    "quote",
    "callout",
    "code",
    "divider",
    "equation",
    "bookmark",
    "embed",
    "image",
    "video",
    "file",
    "pdf",
    "audio",
    "table_of_contents",
    "breadcrumb",
    "column_list",
    "column",
    "table",
    "table_row",
    "synced_block",
    "link_to_page",
    "template",
];

/// Normalizes a rich-text array as Notion echoes it: each run gets `type`,
/// `annotations`, `plain_text` and `href`.
fn normalize_rich_text(items: &Value) -> Value {
    let Some(items) = items.as_array() else {
        return items.clone();
    };
    items
        .iter()
        .map(|item| {
            let Some(obj) = item.as_object() else {
                return item.clone();
            };
            let mut out = obj.clone();
            let kind = obj
                .get("type")
                .and_then(Value::as_str)
                .or_else(|| {
                    ["text", "mention", "equation"]
                        .into_iter()
                        .find(|k| obj.contains_key(*k))
                })
                .unwrap_or("text")
                .to_owned();
            let (plain, href) = match kind.as_str() {
                "text" => {
                    let text = obj.get("text").cloned().unwrap_or_else(|| json!({}));
                    let content = text
                        .get("content")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned();
                    let link = text.get("link").cloned().unwrap_or(Value::Null);
                    let href = link.get("url").cloned().unwrap_or(Value::Null);
                    out.insert("text".to_owned(), json!({"content": content, "link": link}));
                    (content, href)
                }
                "equation" => {
                    let expr = obj
                        .get("equation")
                        .and_then(|e| e.get("expression"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned();
                    (expr, Value::Null)
                }
                _ => (String::new(), Value::Null),
            };
            let mut annotations = default_annotations();
            if let (Some(given), Some(base)) = (
                obj.get("annotations").and_then(Value::as_object),
                annotations.as_object_mut(),
            ) {
                for (k, v) in given {
                    base.insert(k.clone(), v.clone());
                }
            }
            out.insert("type".to_owned(), Value::String(kind));
            out.insert("annotations".to_owned(), annotations);
            out.entry("plain_text").or_insert(Value::String(plain));
            out.entry("href").or_insert(href);
            Value::Object(out)
        })
        .collect()
}

/// A short stable property id derived from the property name.
fn property_id(name: &str) -> String {
    // FNV-1a, printed in an alphabet like Notion's short ids.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (0..4)
        .map(|i| {
            let index = usize::try_from((hash >> (i * 8)) % 62).unwrap_or(0);
            char::from(ALPHABET[index])
        })
        .collect()
}

/// Normalizes one property value: adds `id` and `type`, normalizes rich text.
fn normalize_property(name: &str, value: &Value) -> Result<Value, String> {
    let Some(obj) = value.as_object() else {
        return Err(format!(
            "body failed validation: body.properties.{name} should be an object, instead was `{value}`."
        ));
    };
    let mut out = obj.clone();
    let kind = obj
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            PROPERTY_TYPES
                .iter()
                .find(|t| obj.contains_key(**t))
                .map(|t| (*t).to_owned())
        })
        .or_else(|| {
            obj.keys()
                .find(|k| !matches!(k.as_str(), "id" | "type" | "name"))
                .cloned()
        });
    if let Some(kind) = kind {
        if matches!(kind.as_str(), "title" | "rich_text") {
            let text = obj.get(&kind).cloned().unwrap_or_else(|| json!([]));
            out.insert(kind.clone(), normalize_rich_text(&text));
        }
        let id = if kind == "title" {
            "title".to_owned()
        } else {
            property_id(name)
        };
        out.entry("id").or_insert(Value::String(id));
        out.insert("type".to_owned(), Value::String(kind));
    } else {
        out.entry("id")
            .or_insert_with(|| Value::String(property_id(name)));
    }
    Ok(Value::Object(out))
}

/// Normalizes a `properties` object from a request body (absent is empty).
pub(crate) fn normalize_properties(value: Option<&Value>) -> Result<Map<String, Value>, String> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(props)) => props
            .iter()
            .map(|(name, v)| normalize_property(name, v).map(|v| (name.clone(), v)))
            .collect(),
        Some(other) => Err(format!(
            "body failed validation: body.properties should be an object, instead was `{other}`."
        )),
    }
}

/// Where a new page goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NewParent {
    Database,
    Page(String),
    Workspace,
}

/// A block awaiting insertion: its JSON (without `has_children`) and children.
#[derive(Debug, Clone)]
pub(crate) struct NewBlock {
    value: Map<String, Value>,
    children: Vec<Self>,
}

/// Validates and normalizes the `children` array of an append or a new page.
pub(crate) fn parse_blocks(children: &Value) -> Result<Vec<NewBlock>, String> {
    parse_blocks_at(children, "body.children", 0)
}

fn parse_blocks_at(children: &Value, at: &str, depth: usize) -> Result<Vec<NewBlock>, String> {
    let Some(items) = children.as_array() else {
        return Err(format!(
            "body failed validation: {at} should be an array, instead was `{children}`."
        ));
    };
    if items.len() > MAX_CHILDREN {
        return Err(format!(
            "body failed validation: {at}.length should be ≤ `{MAX_CHILDREN}`, instead was `{}`.",
            items.len()
        ));
    }
    if depth >= MAX_NESTING && !items.is_empty() {
        return Err(format!(
            "body failed validation: {at} nests blocks deeper than {MAX_NESTING} levels."
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_block(item, &format!("{at}[{i}]"), depth))
        .collect()
}

fn parse_block(item: &Value, at: &str, depth: usize) -> Result<NewBlock, String> {
    let Some(obj) = item.as_object() else {
        return Err(format!(
            "body failed validation: {at} should be an object, instead was `{item}`."
        ));
    };
    let kind = obj
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            BLOCK_TYPES
                .iter()
                .find(|t| obj.contains_key(**t))
                .map(|t| (*t).to_owned())
        })
        .or_else(|| {
            obj.iter()
                .find(|(k, v)| v.is_object() && k.as_str() != "object")
                .map(|(k, _)| k.clone())
        })
        .ok_or_else(|| format!("body failed validation: {at} should have a block type."))?;
    let mut content = match obj.get(&kind) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(content)) => content.clone(),
        Some(other) => {
            return Err(format!(
                "body failed validation: {at}.{kind} should be an object, instead was `{other}`."
            ))
        }
    };
    let children = match content.remove("children") {
        Some(nested) => parse_blocks_at(&nested, &format!("{at}.{kind}.children"), depth + 1)?,
        None => Vec::new(),
    };
    for key in ["rich_text", "caption"] {
        if let Some(text) = content.get(key) {
            let text = normalize_rich_text(text);
            content.insert(key.to_owned(), text);
        }
    }
    if content.contains_key("rich_text") {
        content
            .entry("color")
            .or_insert_with(|| Value::String("default".to_owned()));
    }
    let mut value = Map::new();
    value.insert("object".to_owned(), Value::String("block".to_owned()));
    value.insert("type".to_owned(), Value::String(kind.clone()));
    value.insert(kind, Value::Object(content));
    Ok(NewBlock { value, children })
}

#[derive(Debug, Clone)]
struct Block {
    /// Block JSON without `has_children` (computed when rendered).
    value: Map<String, Value>,
}

/// The whole workspace.
#[derive(Debug)]
pub(crate) struct Store {
    pages: Vec<Page>,
    page_index: HashMap<String, usize>,
    blocks: HashMap<String, Block>,
    /// Children block ids of a page or block, in order.
    children: HashMap<String, Vec<String>>,
    created: String,
    /// Properties requests to create or update rows of the database have named (name →
    /// normalized property), landed or not: see [`Self::learn_properties`].
    named: Map<String, Value>,
    /// The data source's schema (name → `{"id","name","type",<type>:{…}}`), starting as
    /// [`Self::schema`]; changed by `PATCH /v1/data_sources/{id}` and
    /// [`Self::set_schema`].
    schema: Map<String, Value>,
    /// When the schema last changed (the data source's `last_edited_time`).
    schema_edited: String,
}

impl Store {
    /// A workspace holding the seeded database and `seed_pages` rows.
    pub(crate) fn new(seed_pages: usize) -> Self {
        let created = iso8601(SystemTime::now());
        let mut store = Self {
            pages: Vec::new(),
            page_index: HashMap::new(),
            blocks: HashMap::new(),
            children: HashMap::new(),
            created: created.clone(),
            named: Map::new(),
            schema: match Self::schema() {
                Value::Object(schema) => schema,
                _ => Map::new(),
            },
            schema_edited: created,
        };
        for i in 1..=seed_pages {
            let props = normalize_properties(Some(&json!({
                "Name": {"title": [{"text": {"content": format!("Seed page {i}")}}]}
            })))
            .unwrap_or_default();
            store.insert_page(NewParent::Database, props, Value::Null, Value::Null);
        }
        store
    }

    pub(crate) fn pages(&self) -> &[Page] {
        &self.pages
    }

    /// Remembers the properties a request to create or update a row of the database names,
    /// even one a fault keeps from landing. FakeNotion's database has no schema beyond
    /// `Name`; these stand in for the properties a real one would have, so a query may name
    /// a property before any row has it.
    pub(crate) fn learn_properties(&mut self, properties: &Map<String, Value>) {
        for (name, property) in properties {
            if !self.named.contains_key(name) {
                let mut kept = Map::new();
                for key in ["id", "type"] {
                    if let Some(value) = property.get(key) {
                        kept.insert(key.to_owned(), value.clone());
                    }
                }
                self.named.insert(name.clone(), Value::Object(kept));
            }
        }
    }

    /// The properties [`Self::learn_properties`] remembered.
    pub(crate) fn named_properties(&self) -> &Map<String, Value> {
        &self.named
    }

    pub(crate) fn block_count(&self) -> usize {
        self.blocks.len()
    }

    pub(crate) fn page(&self, id: &str) -> Option<&Page> {
        self.page_index.get(id).and_then(|&i| self.pages.get(i))
    }

    pub(crate) fn has_container(&self, id: &str) -> bool {
        self.page_index.contains_key(id) || self.blocks.contains_key(id)
    }

    /// Creates a page and returns it.
    pub(crate) fn insert_page(
        &mut self,
        parent: NewParent,
        properties: Map<String, Value>,
        icon: Value,
        cover: Value,
    ) -> &Page {
        let id = new_id();
        let now = iso8601(SystemTime::now());
        let parent = match parent {
            NewParent::Database => json!({
                "type": "data_source_id",
                "data_source_id": SEED_DATA_SOURCE_ID,
                "database_id": SEED_DATABASE_ID,
            }),
            NewParent::Page(page_id) => json!({"type": "page_id", "page_id": page_id}),
            NewParent::Workspace => json!({"type": "workspace", "workspace": true}),
        };
        let page = Page {
            id: id.clone(),
            parent,
            properties: Value::Object(properties),
            icon,
            cover,
            in_trash: false,
            created_time: now.clone(),
            last_edited_time: now,
        };
        let index = self.pages.len();
        self.pages.push(page);
        self.page_index.insert(id, index);
        &self.pages[index]
    }

    /// Applies a `PATCH /v1/pages/{id}` body that has already been validated.
    pub(crate) fn update_page(
        &mut self,
        id: &str,
        properties: Map<String, Value>,
        in_trash: Option<bool>,
        icon: Option<Value>,
        cover: Option<Value>,
    ) -> Option<&Page> {
        let &index = self.page_index.get(id)?;
        let page = self.pages.get_mut(index)?;
        if let Value::Object(existing) = &mut page.properties {
            for (name, mut value) in properties {
                // Keep the id the property already had.
                if let (Some(old_id), Some(obj)) = (
                    existing.get(&name).and_then(|p| p.get("id")).cloned(),
                    value.as_object_mut(),
                ) {
                    obj.insert("id".to_owned(), old_id);
                }
                existing.insert(name, value);
            }
        }
        if let Some(in_trash) = in_trash {
            page.in_trash = in_trash;
        }
        if let Some(icon) = icon {
            page.icon = icon;
        }
        if let Some(cover) = cover {
            page.cover = cover;
        }
        page.last_edited_time = iso8601(SystemTime::now());
        Some(page)
    }

    /// Appends blocks under a page or block (after `after` when given, which
    /// must be one of its children); returns the new top-level blocks.
    pub(crate) fn append_blocks(
        &mut self,
        parent_id: &str,
        blocks: Vec<NewBlock>,
        after: Option<&str>,
    ) -> Result<Vec<Value>, String> {
        let position = match after {
            None => None,
            Some(after) => {
                let siblings = self
                    .children
                    .get(parent_id)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                match siblings.iter().position(|id| id == after) {
                    Some(i) => Some(i + 1),
                    None => {
                        return Err(format!(
                            "body failed validation: body.after should be the ID of a child of {parent_id}, instead was `{after}`."
                        ))
                    }
                }
            }
        };
        let parent_kind = if self.page_index.contains_key(parent_id) {
            "page_id"
        } else {
            "block_id"
        };
        let now = iso8601(SystemTime::now());
        let mut new_ids = Vec::with_capacity(blocks.len());
        for block in blocks {
            new_ids.push(self.insert_block_tree(parent_id, parent_kind, block, &now));
        }
        let siblings = self.children.entry(parent_id.to_owned()).or_default();
        let at = position.unwrap_or(siblings.len()).min(siblings.len());
        siblings.splice(at..at, new_ids.iter().cloned());
        if let Some(page) = self
            .page_index
            .get(parent_id)
            .and_then(|&i| self.pages.get_mut(i))
        {
            page.last_edited_time.clone_from(&now);
        }
        Ok(new_ids
            .iter()
            .filter_map(|id| self.render_block(id))
            .collect())
    }

    fn insert_block_tree(
        &mut self,
        parent_id: &str,
        parent_kind: &str,
        block: NewBlock,
        now: &str,
    ) -> String {
        let id = new_id();
        let mut value = block.value;
        value.insert("id".to_owned(), Value::String(id.clone()));
        value.insert(
            "parent".to_owned(),
            json!({"type": parent_kind, parent_kind: parent_id}),
        );
        value.insert("created_time".to_owned(), Value::String(now.to_owned()));
        value.insert("last_edited_time".to_owned(), Value::String(now.to_owned()));
        value.insert(
            "created_by".to_owned(),
            json!({"object": "user", "id": BOT_USER_ID}),
        );
        value.insert(
            "last_edited_by".to_owned(),
            json!({"object": "user", "id": BOT_USER_ID}),
        );
        value.insert("archived".to_owned(), Value::Bool(false));
        value.insert("in_trash".to_owned(), Value::Bool(false));
        self.blocks.insert(id.clone(), Block { value });
        let child_ids: Vec<String> = block
            .children
            .into_iter()
            .map(|child| self.insert_block_tree(&id, "block_id", child, now))
            .collect();
        if !child_ids.is_empty() {
            self.children.insert(id.clone(), child_ids);
        }
        id
    }

    /// A block as the API returns it.
    pub(crate) fn render_block(&self, id: &str) -> Option<Value> {
        let block = self.blocks.get(id)?;
        let mut value = block.value.clone();
        let has_children = self.children.get(id).is_some_and(|c| !c.is_empty());
        value.insert("has_children".to_owned(), Value::Bool(has_children));
        Some(Value::Object(value))
    }

    /// The children of a page or block, rendered.
    pub(crate) fn children_of(&self, id: &str) -> Vec<Value> {
        self.children
            .get(id)
            .map(|ids| ids.iter().filter_map(|id| self.render_block(id)).collect())
            .unwrap_or_default()
    }

    /// The seeded database's title as rich text.
    fn database_title() -> Value {
        plain_rich_text(DATABASE_TITLE)
    }

    /// The seed schema the database and its data source start with: `Name`, the title.
    pub(crate) fn schema() -> Value {
        json!({"Name": {"id": "title", "name": "Name", "type": "title", "title": {}}})
    }

    /// The data source's schema now, as `GET /v1/data_sources/{id}` renders its
    /// `properties`.
    pub(crate) fn properties(&self) -> Value {
        Value::Object(self.schema.clone())
    }

    /// Replaces the schema with `(name, type)` pairs, each property with an empty
    /// configuration (`{"select": {}}`); the title keeps the id `title`.
    pub(crate) fn set_schema(&mut self, properties: Vec<(String, String)>) {
        self.schema = properties
            .into_iter()
            .map(|(name, kind)| {
                let property = schema_property(&name, &kind, Value::Object(Map::new()), None);
                (name, property)
            })
            .collect();
        self.schema_edited = iso8601(SystemTime::now());
    }

    /// Applies the `properties` of a `PATCH /v1/data_sources/{id}` body as Notion documents
    /// it, all or nothing: a key names an existing property (by name or id) or a new one;
    /// `null` removes it, `{"name": "New"}` renames it, `{"<type>": {…}}` (or `"type"`)
    /// changes its type and configuration or, for a new name, adds it.
    ///
    /// # Errors
    /// Notion's `validation_error` message: not an object; removing, retyping or adding a
    /// title property (a data source has exactly one); removing an unknown property; a new
    /// property without a type; a rename onto an existing name.
    pub(crate) fn update_schema(&mut self, changes: &Value) -> Result<(), String> {
        let changes = match changes {
            Value::Null => return Ok(()),
            Value::Object(changes) => changes,
            other => {
                return Err(format!(
                    "body failed validation: body.properties should be an object, instead was `{other}`."
                ))
            }
        };
        let mut schema = self.schema.clone();
        for (key, change) in changes {
            let existing = schema
                .iter()
                .find(|(name, p)| *name == key || p.get("id").and_then(Value::as_str) == Some(key))
                .map(|(name, p)| (name.clone(), p.clone()));
            apply_schema_change(&mut schema, key, existing, change)?;
        }
        self.schema = schema;
        self.schema_edited = iso8601(SystemTime::now());
        Ok(())
    }

    /// The seeded database object, as `version` renders it.
    pub(crate) fn database_json(&self, version: &str) -> Value {
        let mut value = json!({
            "object": "database",
            "id": SEED_DATABASE_ID,
            "created_time": self.created,
            "last_edited_time": self.created,
            "created_by": {"object": "user", "id": BOT_USER_ID},
            "last_edited_by": {"object": "user", "id": BOT_USER_ID},
            "title": Self::database_title(),
            "description": [],
            "icon": null,
            "cover": null,
            "parent": {"type": "workspace", "workspace": true},
            "url": notion_url(SEED_DATABASE_ID),
            "public_url": null,
            "archived": false,
            "in_trash": false,
            "is_inline": false,
            "is_locked": false,
        });
        if let Some(obj) = value.as_object_mut() {
            if uses_data_sources(version) {
                obj.insert(
                    "data_sources".to_owned(),
                    json!([{"id": SEED_DATA_SOURCE_ID, "name": DATABASE_TITLE}]),
                );
            } else {
                obj.insert("properties".to_owned(), self.properties());
            }
        }
        value
    }

    /// The seeded data source object.
    pub(crate) fn data_source_json(&self) -> Value {
        json!({
            "object": "data_source",
            "id": SEED_DATA_SOURCE_ID,
            "created_time": self.created,
            "last_edited_time": self.schema_edited,
            "created_by": {"object": "user", "id": BOT_USER_ID},
            "last_edited_by": {"object": "user", "id": BOT_USER_ID},
            "title": Self::database_title(),
            "description": [],
            "icon": null,
            "cover": null,
            "properties": self.properties(),
            "parent": {"type": "database_id", "database_id": SEED_DATABASE_ID},
            "database_parent": {"type": "workspace", "workspace": true},
            "url": notion_url(SEED_DATABASE_ID),
            "public_url": null,
            "archived": false,
            "in_trash": false,
            "is_inline": false,
        })
    }

    /// Whether the seeded database's title contains `query` (case-insensitive).
    pub(crate) fn database_matches(query: &str) -> bool {
        DATABASE_TITLE
            .to_lowercase()
            .contains(&query.to_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_are_normalized() {
        let props = normalize_properties(Some(&json!({
            "Name": {"title": [{"text": {"content": "Hello"}}]},
            "Done": {"checkbox": true},
        })))
        .unwrap();
        assert_eq!(props["Name"]["id"], "title");
        assert_eq!(props["Name"]["type"], "title");
        assert_eq!(props["Name"]["title"][0]["plain_text"], "Hello");
        assert_eq!(props["Name"]["title"][0]["annotations"]["bold"], false);
        assert_eq!(props["Done"]["type"], "checkbox");
        assert_eq!(props["Done"]["id"].as_str().map(str::len), Some(4));
        assert!(normalize_properties(Some(&json!([1]))).is_err());
        assert!(normalize_properties(Some(&json!({"x": 1}))).is_err());
    }

    #[test]
    fn pages_and_blocks() {
        let mut store = Store::new(2);
        assert_eq!(store.pages().len(), 2);
        assert_eq!(store.pages()[1].title().as_deref(), Some("Seed page 2"));
        assert!(store.pages()[0].in_database());
        let id = store.pages()[0].id.clone();
        let blocks = parse_blocks(&json!([
            {"paragraph": {"rich_text": [{"text": {"content": "a"}}]}},
            {"type": "toggle", "toggle": {"rich_text": [], "children": [{"divider": {}}]}},
        ]))
        .unwrap();
        let made = store.append_blocks(&id, blocks, None).unwrap();
        assert_eq!(made.len(), 2);
        assert_eq!(made[1]["has_children"], true);
        assert_eq!(store.block_count(), 3);
        let first = made[0]["id"].as_str().unwrap().to_owned();
        let more = parse_blocks(&json!([{"divider": {}}])).unwrap();
        store.append_blocks(&id, more, Some(&first)).unwrap();
        let children = store.children_of(&id);
        assert_eq!(children.len(), 3);
        assert_eq!(children[1]["type"], "divider");
        assert!(store.append_blocks(&id, Vec::new(), Some("nope")).is_err());
    }

    #[test]
    fn bad_blocks_are_rejected() {
        assert!(parse_blocks(&json!({})).is_err());
        assert!(parse_blocks(&json!([1])).is_err());
        assert!(parse_blocks(&json!([{}])).is_err());
        let too_many: Vec<Value> = (0..101).map(|_| json!({"divider": {}})).collect();
        assert!(parse_blocks(&Value::Array(too_many)).is_err());
        let deep = json!([{"toggle": {"children": [{"toggle": {"children": [{"divider": {}}]}}]}}]);
        assert!(parse_blocks(&deep).is_err());
    }
}
