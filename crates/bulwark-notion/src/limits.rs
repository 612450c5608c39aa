//! Notion's documented request size limits, checked before a request is sent
//! ([`NotionLayerBuilder::check_limits`](crate::NotionLayerBuilder::check_limits)).
//!
//! Notion answers a request that breaks one of them with `400 validation_error` after a round
//! trip (and, in the preset, after waiting for a token). With the check on, the preset refuses
//! it at once with a [`LimitExceeded`] naming the limit and where in the body it was broken:
//!
//! | limit | Notion's maximum | [`NotionLimit`] |
//! |---|---|---|
//! | request body | 500 KB | `PayloadBytes` |
//! | block elements in one request | 1 000 | `BlockElements` |
//! | children in one array | 100 | `Children` |
//! | nesting of `children` | 2 levels | `Nesting` |
//! | one rich-text `content` | 2 000 characters | `RichTextLength` |
//! | any other array | 100 elements | `ArrayLength` |
//! | `page_size` | 100 | `PageSize` |
//!
//! Where Notion's wording leaves room (is a KB 1 000 or 1 024 bytes? are characters UTF-16
//! units?) the check takes the lenient reading: it never refuses a request Notion would
//! accept, and may let through one that Notion then refuses.
//!
//! ```
//! use bulwark_notion::limits::{check, NotionLimit};
//!
//! let long = "x".repeat(2001);
//! let body = format!(r#"{{"properties":{{"Name":{{"title":[{{"text":{{"content":"{long}"}}}}]}}}}}}"#);
//! let err = check(body.as_bytes()).unwrap_err();
//! assert_eq!(err.limit, NotionLimit::RichTextLength);
//! assert_eq!(err.path, "properties.Name.title[0].text.content");
//! assert!(check(br#"{"page_size": 100}"#).is_ok());
//! ```

use std::fmt;

use serde_json::Value;

/// The largest request body, in bytes (500 KB, read as 500 × 1 024).
pub const MAX_PAYLOAD_BYTES: usize = 500 * 1024;
/// The most block elements one request may carry.
pub const MAX_BLOCK_ELEMENTS: usize = 1000;
/// The most children in one `children` array.
pub const MAX_CHILDREN: usize = 100;
/// The deepest nesting of `children` arrays in one request.
pub const MAX_NESTING: usize = 2;
/// The longest rich-text `content`, in characters.
pub const MAX_RICH_TEXT_CHARS: usize = 2000;
/// The most elements in any other array.
pub const MAX_ARRAY: usize = 100;
/// The largest `page_size`.
pub const MAX_PAGE_SIZE: u64 = 100;

/// Which of Notion's limits a request breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NotionLimit {
    /// The body is larger than [`MAX_PAYLOAD_BYTES`].
    PayloadBytes,
    /// More than [`MAX_BLOCK_ELEMENTS`] blocks in the request.
    BlockElements,
    /// A `children` array longer than [`MAX_CHILDREN`].
    Children,
    /// `children` nested deeper than [`MAX_NESTING`] levels.
    Nesting,
    /// A rich-text `content` longer than [`MAX_RICH_TEXT_CHARS`].
    RichTextLength,
    /// An array longer than [`MAX_ARRAY`].
    ArrayLength,
    /// A `page_size` above [`MAX_PAGE_SIZE`].
    PageSize,
}

impl NotionLimit {
    /// What the limit bounds, in words.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Self::PayloadBytes => "the request body, in bytes",
            Self::BlockElements => "the block elements in one request",
            Self::Children => "the children in one array",
            Self::Nesting => "the nesting of children",
            Self::RichTextLength => "the characters of one rich-text content",
            Self::ArrayLength => "the elements of one array",
            Self::PageSize => "page_size",
        }
    }
}

/// A request refused before it was sent because it breaks one of Notion's documented limits
/// (Notion would answer `400 validation_error`). Nothing was sent: fix the request, then send
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitExceeded {
    /// The limit broken.
    pub limit: NotionLimit,
    /// Where in the body (`children[3].toggle.children`, or `body` for the whole of it).
    pub path: String,
    /// What the request has.
    pub actual: u64,
    /// What Notion allows.
    pub max: u64,
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bulwark: not sent: at `{}`, {} is {} and Notion allows at most {}",
            self.path,
            self.limit.describe(),
            self.actual,
            self.max
        )
    }
}

impl std::error::Error for LimitExceeded {}

fn exceeded(limit: NotionLimit, path: &str, actual: usize, max: usize) -> LimitExceeded {
    LimitExceeded {
        limit,
        path: path.to_owned(),
        actual: u64::try_from(actual).unwrap_or(u64::MAX),
        max: u64::try_from(max).unwrap_or(u64::MAX),
    }
}

/// Checks a request body against Notion's limits (see the [module docs](self)). A body that
/// is not JSON is only checked for its size (Notion will say what is wrong with it).
///
/// # Errors
/// The first [`LimitExceeded`] found, in document order.
pub fn check(body: &[u8]) -> Result<(), LimitExceeded> {
    if body.len() > MAX_PAYLOAD_BYTES {
        return Err(exceeded(
            NotionLimit::PayloadBytes,
            "body",
            body.len(),
            MAX_PAYLOAD_BYTES,
        ));
    }
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Ok(());
    };
    if let Some(size) = value.get("page_size").and_then(Value::as_u64) {
        if size > MAX_PAGE_SIZE {
            return Err(LimitExceeded {
                limit: NotionLimit::PageSize,
                path: "page_size".to_owned(),
                actual: size,
                max: MAX_PAGE_SIZE,
            });
        }
    }
    let mut walk = Walk { blocks: 0 };
    walk.value(&value, &mut String::new(), 0)
}

struct Walk {
    blocks: usize,
}

impl Walk {
    /// `value` at `path`, inside `depth` levels of `children`.
    fn value(
        &mut self,
        value: &Value,
        path: &mut String,
        depth: usize,
    ) -> Result<(), LimitExceeded> {
        match value {
            Value::Array(items) => {
                if items.len() > MAX_ARRAY {
                    return Err(exceeded(
                        NotionLimit::ArrayLength,
                        path,
                        items.len(),
                        MAX_ARRAY,
                    ));
                }
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    self.value(item, path, depth)?;
                    path.truncate(len);
                }
                Ok(())
            }
            Value::Object(fields) => {
                if let Some(content) = fields
                    .get("text")
                    .and_then(|t| t.get("content"))
                    .and_then(Value::as_str)
                {
                    let chars = content.chars().count();
                    if chars > MAX_RICH_TEXT_CHARS {
                        let at = join(path, "text.content");
                        return Err(exceeded(
                            NotionLimit::RichTextLength,
                            &at,
                            chars,
                            MAX_RICH_TEXT_CHARS,
                        ));
                    }
                }
                for (key, field) in fields {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                    if key == "children" {
                        self.children(field, path, depth)?;
                    } else {
                        self.value(field, path, depth)?;
                    }
                    path.truncate(len);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A `children` array: blocks one level deeper.
    fn children(
        &mut self,
        value: &Value,
        path: &mut String,
        depth: usize,
    ) -> Result<(), LimitExceeded> {
        let Some(blocks) = value.as_array() else {
            return self.value(value, path, depth);
        };
        if depth + 1 > MAX_NESTING && !blocks.is_empty() {
            return Err(exceeded(NotionLimit::Nesting, path, depth + 1, MAX_NESTING));
        }
        if blocks.len() > MAX_CHILDREN {
            return Err(exceeded(
                NotionLimit::Children,
                path,
                blocks.len(),
                MAX_CHILDREN,
            ));
        }
        self.blocks += blocks.len();
        if self.blocks > MAX_BLOCK_ELEMENTS {
            return Err(exceeded(
                NotionLimit::BlockElements,
                path,
                self.blocks,
                MAX_BLOCK_ELEMENTS,
            ));
        }
        for (i, block) in blocks.iter().enumerate() {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            self.value(block, path, depth + 1)?;
            path.truncate(len);
        }
        Ok(())
    }
}

fn join(path: &str, rest: &str) -> String {
    if path.is_empty() {
        rest.to_owned()
    } else {
        format!("{path}.{rest}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check_value(value: &Value) -> Result<(), LimitExceeded> {
        check(value.to_string().as_bytes())
    }

    fn paragraph(text: &str) -> Value {
        json!({"paragraph": {"rich_text": [{"text": {"content": text}}]}})
    }

    #[test]
    fn requests_within_every_limit_pass() {
        let children: Vec<Value> = (0..100).map(|_| paragraph(&"x".repeat(2000))).collect();
        assert!(check_value(&json!({"children": children})).is_ok());
        assert!(check_value(&json!({"page_size": 100, "filter": {"and": []}})).is_ok());
        let nested =
            json!({"children": [{"toggle": {"rich_text": [], "children": [paragraph("a")]}}]});
        assert!(check_value(&nested).is_ok());
        assert!(check(b"not json at all").is_ok());
        assert!(check(b"").is_ok());
    }

    #[test]
    fn each_limit_is_named_with_its_place() {
        let err = check(&vec![b' '; MAX_PAYLOAD_BYTES + 1]).unwrap_err();
        assert_eq!(
            (err.limit, err.path.as_str()),
            (NotionLimit::PayloadBytes, "body")
        );

        let children: Vec<Value> = (0..101).map(|_| paragraph("a")).collect();
        let err = check_value(&json!({"children": children})).unwrap_err();
        assert_eq!(
            (err.limit, err.actual, err.max),
            (NotionLimit::Children, 101, 100)
        );

        let deep = json!({"children": [{"toggle": {"children": [{"toggle": {"children": [paragraph("a")]}}]}}]});
        let err = check_value(&deep).unwrap_err();
        assert_eq!(err.limit, NotionLimit::Nesting);
        assert_eq!(err.path, "children[0].toggle.children[0].toggle.children");

        let err = check_value(&json!({"children": [paragraph(&"é".repeat(2001))]})).unwrap_err();
        assert_eq!(err.limit, NotionLimit::RichTextLength);
        assert_eq!(err.path, "children[0].paragraph.rich_text[0].text.content");

        let tags: Vec<Value> = (0..101).map(|i| json!({"name": i.to_string()})).collect();
        let err =
            check_value(&json!({"properties": {"Tags": {"multi_select": tags}}})).unwrap_err();
        assert_eq!(err.limit, NotionLimit::ArrayLength);
        assert_eq!(err.path, "properties.Tags.multi_select");

        let err = check_value(&json!({"page_size": 101})).unwrap_err();
        assert_eq!((err.limit, err.actual), (NotionLimit::PageSize, 101));
        assert!(err.to_string().contains("Notion allows at most 100"));
    }

    #[test]
    fn block_elements_are_counted_across_nesting() {
        // 100 toggles with 9 children each: 1 000 blocks pass, one more does not.
        let toggle =
            |n: usize| json!({"toggle": {"rich_text": [], "children": vec![paragraph("a"); n]}});
        let ok: Vec<Value> = (0..100).map(|_| toggle(9)).collect();
        assert!(check_value(&json!({"children": ok})).is_ok());
        let mut over: Vec<Value> = (0..99).map(|_| toggle(9)).collect();
        over.push(toggle(10));
        let err = check_value(&json!({"children": over})).unwrap_err();
        assert_eq!((err.limit, err.actual), (NotionLimit::BlockElements, 1001));
    }
}
