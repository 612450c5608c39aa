//! Markdown to Notion blocks, plausibly rather than faithfully: one block per
//! non-empty line.

use serde_json::{json, Value};

/// Notion appends at most this many blocks per request, so an append of more
/// makes several Notion requests (`requestCount`).
pub(crate) const BLOCKS_PER_NOTION_REQUEST: usize = 100;

/// One block per non-empty line: `#`, `##`, `###` headings, `-` / `*` / `+`
/// bulleted items, `1.` numbered items, `>` quotes, the rest paragraphs.
/// Inline markup is kept as plain text.
pub(crate) fn convert(markdown: &str) -> Vec<Value> {
    markdown
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(block)
        .collect()
}

fn block(line: &str) -> Value {
    let (kind, text) = if let Some(text) = line.strip_prefix("### ") {
        ("heading_3", text)
    } else if let Some(text) = line.strip_prefix("## ") {
        ("heading_2", text)
    } else if let Some(text) = line.strip_prefix("# ") {
        ("heading_1", text)
    } else if let Some(text) = ["- ", "* ", "+ "]
        .iter()
        .find_map(|bullet| line.strip_prefix(bullet))
    {
        ("bulleted_list_item", text)
    } else if let Some(text) = numbered(line) {
        ("numbered_list_item", text)
    } else if let Some(text) = line.strip_prefix('>') {
        ("quote", text.trim_start())
    } else {
        ("paragraph", line)
    };
    json!({
        "object": "block",
        "type": kind,
        kind: {
            "rich_text": [{
                "type": "text",
                "text": {"content": text, "link": null},
                "plain_text": text,
            }],
        },
    })
}

/// The text after `12. `, if the line is a numbered item.
fn numbered(line: &str) -> Option<&str> {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    line.get(digits..)?.strip_prefix(". ")
}

/// How many Notion requests appending `blocks` blocks takes (at least one).
pub(crate) fn notion_requests(blocks: usize) -> usize {
    blocks.div_ceil(BLOCKS_PER_NOTION_REQUEST).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_block_per_non_empty_line() {
        let blocks = convert("# Title\n\nSome *text*\n- item\n2. second\n> quoted\n   \n### Small");
        let kinds: Vec<&str> = blocks.iter().filter_map(|b| b["type"].as_str()).collect();
        assert_eq!(
            kinds,
            [
                "heading_1",
                "paragraph",
                "bulleted_list_item",
                "numbered_list_item",
                "quote",
                "heading_3"
            ]
        );
        assert_eq!(
            blocks[0]["heading_1"]["rich_text"][0]["plain_text"],
            "Title"
        );
        assert_eq!(
            blocks[3]["numbered_list_item"]["rich_text"][0]["text"]["content"],
            "second"
        );
        assert!(convert(" \n\n").is_empty());
        assert_eq!(convert("1.5 is a number")[0]["type"], "paragraph");
    }

    #[test]
    fn requests_are_chunks_of_one_hundred() {
        assert_eq!(notion_requests(0), 1);
        assert_eq!(notion_requests(100), 1);
        assert_eq!(notion_requests(101), 2);
    }
}
