//! What filters and sorts read from a page: property values reduced to what a condition
//! compares, ISO 8601 dates, and the property names and ids a query may name.

use std::cmp::Ordering;

use serde_json::{Map, Value};
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::store::{rich_text_plain, Page};

/// A date as Notion's filters take it: a calendar day, or an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum When {
    /// `2024-05-01`: a whole day, in UTC.
    Day(Date),
    /// `2024-05-01T12:00:00+02:00`; without an offset, UTC.
    At(OffsetDateTime),
}

impl When {
    /// Parses an ISO 8601 date (`2024-05-01`) or date-time (`2024-05-01T12:00:00Z`,
    /// `…+02:00`, `…T12:00`, no offset meaning UTC); `None` for anything else.
    pub(super) fn parse(text: &str) -> Option<Self> {
        if text.contains(['T', 't', ' ']) {
            OffsetDateTime::parse(text, &Iso8601::DEFAULT)
                .or_else(|_| OffsetDateTime::parse(text, &Rfc3339))
                .or_else(|_| {
                    PrimitiveDateTime::parse(text, &Iso8601::DEFAULT).map(|t| t.assume_utc())
                })
                .ok()
                .map(Self::At)
        } else {
            Date::parse(text, &Iso8601::DEFAULT).ok().map(Self::Day)
        }
    }

    /// The calendar day in UTC.
    pub(super) fn day(self) -> Date {
        match self {
            Self::Day(day) => day,
            Self::At(at) => at.to_offset(UtcOffset::UTC).date(),
        }
    }

    /// Milliseconds since the Unix epoch (a day counts from its UTC midnight): Notion
    /// compares date-times with millisecond precision.
    pub(super) fn millis(self) -> i128 {
        let at = match self {
            Self::Day(day) => day.midnight().assume_utc(),
            Self::At(at) => at,
        };
        at.unix_timestamp_nanos().div_euclid(1_000_000)
    }

    /// How a page's date compares with this one given in a filter: by calendar day when
    /// the filter gives a day, else by instant.
    pub(super) fn compare(page: Self, filter: Self) -> Ordering {
        match filter {
            Self::Day(day) => page.day().cmp(&day),
            Self::At(_) => page.millis().cmp(&filter.millis()),
        }
    }
}

/// A property value as conditions see it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Val {
    /// Missing, of another type, `null`, `""`, `[]`, or unreadable.
    Empty,
    /// Plain text (title, rich_text, url, email, phone_number).
    Text(String),
    /// A number (number, unique_id).
    Number(f64),
    /// A checkbox.
    Bool(bool),
    /// Option names (select, status, multi_select), ids (people, relation) or file names.
    Names(Vec<String>),
    /// A date, or a timestamp.
    When(When),
}

impl Val {
    fn text(text: String) -> Self {
        if text.is_empty() {
            Self::Empty
        } else {
            Self::Text(text)
        }
    }

    fn names(names: Vec<String>) -> Self {
        if names.is_empty() {
            Self::Empty
        } else {
            Self::Names(names)
        }
    }

    /// Whether the value is empty, as `is_empty` asks.
    pub(super) fn is_empty(&self) -> bool {
        matches!(self, Self::Empty)
    }
}

/// The value of `property` (a property object of a page, or `None` when the page lacks
/// it) read as type `kind`. A property of another type is [`Val::Empty`], except that a
/// checkbox is never empty: a page without it is unchecked.
pub(super) fn property_value(property: Option<&Value>, kind: &str) -> Val {
    let inner = property
        .filter(|p| p.get("type").and_then(Value::as_str) == Some(kind))
        .and_then(|p| p.get(kind));
    if kind == "checkbox" {
        return Val::Bool(inner.and_then(Value::as_bool).unwrap_or(false));
    }
    let Some(inner) = inner else {
        return Val::Empty;
    };
    let name = |item: &Value| item.get("name").and_then(Value::as_str).map(str::to_owned);
    let id = |item: &Value| item.get("id").and_then(Value::as_str).map(str::to_owned);
    let list = |read: &dyn Fn(&Value) -> Option<String>| {
        Val::names(
            inner
                .as_array()
                .map(|items| items.iter().filter_map(read).collect())
                .unwrap_or_default(),
        )
    };
    match kind {
        "title" | "rich_text" => Val::text(rich_text_plain(inner)),
        "url" | "email" | "phone_number" => {
            Val::text(inner.as_str().map(str::to_owned).unwrap_or_default())
        }
        "number" => inner.as_f64().map_or(Val::Empty, Val::Number),
        "unique_id" => inner
            .get("number")
            .and_then(Value::as_f64)
            .map_or(Val::Empty, Val::Number),
        "select" | "status" => name(inner).map_or(Val::Empty, |n| Val::names(vec![n])),
        "multi_select" | "files" => list(&name),
        "people" | "relation" => list(&id),
        "date" => inner
            .get("start")
            .and_then(Value::as_str)
            .and_then(When::parse)
            .map_or(Val::Empty, Val::When),
        "created_time" | "last_edited_time" => inner
            .as_str()
            .and_then(When::parse)
            .map_or(Val::Empty, Val::When),
        _ => Val::Empty,
    }
}

/// `created_time` or `last_edited_time`: the page timestamps a query can filter and sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timestamp {
    Created,
    LastEdited,
}

impl Timestamp {
    pub(super) fn from_name(name: &str) -> Option<Self> {
        match name {
            "created_time" => Some(Self::Created),
            "last_edited_time" => Some(Self::LastEdited),
            _ => None,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Created => "created_time",
            Self::LastEdited => "last_edited_time",
        }
    }

    /// The page's timestamp.
    pub(super) fn of(self, page: &Page) -> Val {
        let text = match self {
            Self::Created => &page.created_time,
            Self::LastEdited => &page.last_edited_time,
        };
        When::parse(text).map_or(Val::Empty, Val::When)
    }
}

/// A property a query may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Known {
    /// The name pages key it by.
    pub(super) name: String,
    /// Its type in the database schema, when the schema has it.
    pub(super) schema_type: Option<String>,
    /// Its type: the schema's, else that of the first row that has it.
    pub(super) kind: Option<String>,
}

/// The properties of the database: those of its schema, then those its rows have, then
/// those requests have named.
#[derive(Debug, Clone, Default)]
pub(super) struct Properties {
    /// `(name, id, known)`, schema first.
    entries: Vec<(String, Option<String>, Known)>,
}

impl Properties {
    /// The properties of `schema` (`{"Name": {"id": …, "type": …}, …}`), of `rows`, and
    /// `named` (like `schema`, but their types are not enforced).
    pub(super) fn new(schema: &Value, rows: &[&Page], named: &Map<String, Value>) -> Self {
        let mut properties = Self::default();
        let mut add = |name: &str, prop: &Value, in_schema: bool| {
            if properties.entries.iter().all(|(n, _, _)| n != name) {
                let id = prop.get("id").and_then(Value::as_str).map(str::to_owned);
                let kind = prop.get("type").and_then(Value::as_str).map(str::to_owned);
                let known = Known {
                    name: name.to_owned(),
                    schema_type: kind.clone().filter(|_| in_schema),
                    kind,
                };
                properties.entries.push((name.to_owned(), id, known));
            }
        };
        for (name, prop) in schema.as_object().into_iter().flatten() {
            add(name, prop, true);
        }
        for page in rows {
            for (name, prop) in page.properties.as_object().into_iter().flatten() {
                add(name, prop, false);
            }
        }
        for (name, prop) in named {
            add(name, prop, false);
        }
        properties
    }

    /// The property named `key`, else the one whose id is `key`.
    pub(super) fn resolve(&self, key: &str) -> Option<&Known> {
        self.entries
            .iter()
            .find(|(name, _, _)| name == key)
            .or_else(|| {
                self.entries
                    .iter()
                    .find(|(_, id, _)| id.as_deref() == Some(key))
            })
            .map(|(_, _, known)| known)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::Month;

    use super::*;

    fn day(y: i32, m: Month, d: u8) -> Date {
        Date::from_calendar_date(y, m, d).unwrap()
    }

    #[test]
    fn dates_and_date_times_parse() {
        assert_eq!(
            When::parse("2024-05-01"),
            Some(When::Day(day(2024, Month::May, 1)))
        );
        let offset = When::parse("2024-05-01T23:30:00-02:00").unwrap();
        assert_eq!(offset.day(), day(2024, Month::May, 2), "UTC day");
        let zulu = When::parse("2024-05-02T01:30:00Z").unwrap();
        assert_eq!(offset.millis(), zulu.millis());
        let no_offset = When::parse("2024-05-02T01:30:00").unwrap();
        assert_eq!(no_offset.millis(), zulu.millis(), "no offset is UTC");
        let short = When::parse("2024-05-02T01:30Z").unwrap();
        assert_eq!(short.millis(), zulu.millis());
        for bad in [
            "",
            "nope",
            "2024-02-30",
            "2024-05-01T25:00:00Z",
            "2024-05-01T",
            "5",
        ] {
            assert_eq!(When::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn days_compare_by_utc_day_and_times_by_millisecond() {
        let page = When::parse("2024-05-01T23:30:00.7891-02:00").unwrap();
        let may_2 = When::Day(day(2024, Month::May, 2));
        assert_eq!(When::compare(page, may_2), Ordering::Equal);
        let same_ms = When::parse("2024-05-02T01:30:00.789Z").unwrap();
        assert_eq!(When::compare(page, same_ms), Ordering::Equal);
        let later = When::parse("2024-05-02T01:30:00.790Z").unwrap();
        assert_eq!(When::compare(page, later), Ordering::Less);
        // A page's day against a filter's instant: the day starts at UTC midnight.
        let midnight = When::parse("2024-05-02T00:00:00Z").unwrap();
        assert_eq!(When::compare(may_2, midnight), Ordering::Equal);
        assert_eq!(
            When::Day(day(1969, Month::December, 31)).millis(),
            -86_400_000
        );
    }

    #[test]
    fn values_are_read_as_the_filter_type() {
        let text = json!({"type": "rich_text", "rich_text": [
            {"plain_text": "a", "text": {"content": "ignored"}},
            {"text": {"content": "b"}},
        ]});
        assert_eq!(
            property_value(Some(&text), "rich_text"),
            Val::Text("ab".into())
        );
        assert_eq!(
            property_value(Some(&text), "title"),
            Val::Empty,
            "another type"
        );
        assert_eq!(property_value(None, "rich_text"), Val::Empty);
        let empty = json!({"type": "title", "title": []});
        assert_eq!(property_value(Some(&empty), "title"), Val::Empty);
        let url = json!({"type": "url", "url": "https://e.x"});
        assert_eq!(
            property_value(Some(&url), "url"),
            Val::Text("https://e.x".into())
        );
        let number = json!({"type": "number", "number": 2.5});
        assert_eq!(property_value(Some(&number), "number"), Val::Number(2.5));
        let null = json!({"type": "number", "number": null});
        assert_eq!(property_value(Some(&null), "number"), Val::Empty);
        let unique = json!({"type": "unique_id", "unique_id": {"prefix": "T", "number": 7}});
        assert_eq!(property_value(Some(&unique), "unique_id"), Val::Number(7.0));
        let select = json!({"type": "select", "select": {"name": "Red"}});
        assert_eq!(
            property_value(Some(&select), "select"),
            Val::Names(vec!["Red".into()])
        );
        let tags = json!({"type": "multi_select", "multi_select": [{"name": "a"}, {"name": "b"}]});
        assert_eq!(
            property_value(Some(&tags), "multi_select"),
            Val::Names(vec!["a".into(), "b".into()])
        );
        let people = json!({"type": "people", "people": [{"object": "user", "id": "u1"}]});
        assert_eq!(
            property_value(Some(&people), "people"),
            Val::Names(vec!["u1".into()])
        );
        assert_eq!(property_value(None, "checkbox"), Val::Bool(false));
        let checked = json!({"type": "checkbox", "checkbox": true});
        assert_eq!(property_value(Some(&checked), "checkbox"), Val::Bool(true));
        let date = json!({"type": "date", "date": {"start": "2024-05-01", "end": null}});
        assert_eq!(
            property_value(Some(&date), "date"),
            Val::When(When::Day(day(2024, Month::May, 1)))
        );
        let bad_date = json!({"type": "date", "date": {"start": "soon"}});
        assert_eq!(property_value(Some(&bad_date), "date"), Val::Empty);
    }

    #[test]
    fn properties_resolve_by_name_then_id() {
        let schema = json!({"Name": {"id": "title", "name": "Name", "type": "title", "title": {}}});
        let page = Page {
            id: "p1".into(),
            parent: Value::Null,
            properties: json!({
                "Name": {"id": "title", "type": "title", "title": []},
                "Score": {"id": "abcd", "type": "number", "number": 1},
                "title": {"id": "zzzz", "type": "rich_text", "rich_text": []},
            }),
            icon: Value::Null,
            cover: Value::Null,
            in_trash: false,
            created_time: "2024-05-01T00:00:00.000Z".into(),
            last_edited_time: "2024-05-01T00:00:00.000Z".into(),
        };
        let named = json!({"Later": {"id": "LLLL", "type": "date"}});
        let props = Properties::new(&schema, &[&page], named.as_object().unwrap());
        assert_eq!(props.resolve("LLLL").unwrap().name, "Later");
        assert_eq!(props.resolve("Later").unwrap().schema_type, None);
        let name = props.resolve("Name").unwrap();
        assert_eq!(name.schema_type.as_deref(), Some("title"));
        assert_eq!(props.resolve("abcd").unwrap().name, "Score");
        assert_eq!(props.resolve("Score").unwrap().schema_type, None);
        assert_eq!(
            props.resolve("Score").unwrap().kind.as_deref(),
            Some("number")
        );
        assert_eq!(
            props.resolve("title").unwrap().name,
            "title",
            "a name wins over an id"
        );
        assert_eq!(props.resolve("zzzz").unwrap().name, "title");
        assert!(props.resolve("Nope").is_none());
    }
}
