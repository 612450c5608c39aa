//! The `filter` and `sorts` of `POST /v1/data_sources/{id}/query` (and
//! `/v1/databases/{id}/query`), validated and applied as Notion documents them.
//!
//! [`Query::from_body`] validates both against the database's properties and answers the
//! message of Notion's 400 `validation_error`; [`Query::apply`] then keeps the rows that
//! pass the filter, in the order of the sorts. Pagination comes after, on what is left.
//! Pure: today's date (for `past_week` and the like) is an argument.
//!
//! FakeNotion's schema starts as `Name` alone and it does not check values against it, so the
//! properties a query may name are the schema's, every property a row has, and every
//! property a request to create or update a row has named, even one a fault kept from
//! landing (a real database has its properties before any row does). A property is found
//! by name, else by id. The types of the schema's properties are enforced; the others are
//! read as each filter asks.
//!
//! **Filters.** `{"property": "<name or id>", "<type>": {"<condition>": <value>}}`,
//! `{"timestamp": "created_time" | "last_edited_time", "<same>": {…}}`, and `{"and": […]}` /
//! `{"or": […]}` nested at most 2 levels deep (an `and`/`or` inside an `and`/`or`, as the
//! official SDK's types allow) with at most 100 filters each:
//!
//! | filter type | conditions |
//! |---|---|
//! | `title`, `rich_text`, `url`, `email`, `phone_number` | `equals`, `does_not_equal`, `contains`, `does_not_contain`, `starts_with`, `ends_with` (string), `is_empty`, `is_not_empty` (`true`) |
//! | `number`, `unique_id` | `equals`, `does_not_equal`, `greater_than`, `less_than`, `greater_than_or_equal_to`, `less_than_or_equal_to` (number), `is_empty`, `is_not_empty` |
//! | `checkbox` | `equals`, `does_not_equal` (boolean) |
//! | `select`, `status` | `equals`, `does_not_equal` (option name), `is_empty`, `is_not_empty` |
//! | `multi_select`, `people`, `relation` | `contains`, `does_not_contain` (option name; user or page id), `is_empty`, `is_not_empty` |
//! | `files` | `is_empty`, `is_not_empty` |
//! | `date`, `created_time`, `last_edited_time`, timestamps | `equals`, `before`, `after`, `on_or_before`, `on_or_after` (ISO 8601 date or date-time), `is_empty`, `is_not_empty`, `past_week`, `past_month`, `past_year`, `next_week`, `next_month`, `next_year`, `this_week` (`{}`) |
//!
//! Text compares the plain text (the rich text's `plain_text`s, or the string); a date
//! property compares its `start`. A date-only value (`2024-05-01`) compares calendar days in
//! UTC; a date-time (`…T12:00:00+02:00`, no offset meaning UTC) compares instants to the
//! millisecond. A row without the property, or with it of another type, has an empty value:
//! `is_empty` and the negative conditions (`does_not_equal`, `does_not_contain`) hold,
//! the others do not; a missing checkbox is unchecked. Rejected with 400: an unknown filter
//! type or condition, a value of the wrong type, a date that does not parse, an object with
//! none of `property`, `timestamp`, `and`, `or`, deeper nesting, and a property that neither
//! the schema, a row nor a request has named (`Could not find property with name or id:
//! X.`); a filter of another type than the schema's (`Name` is a `title`) answers
//! `database property title does not match filter rich_text`.
//!
//! **Sorts.** `[{"property": "<name or id>" | "timestamp": "created_time" | "last_edited_time",
//! "direction": "ascending" | "descending"}, …]`, the first most significant, stable. A
//! property sorts by its type (the schema's, else the first row's): text by its lowercased
//! plain text (case breaks ties), numbers numerically, checkboxes unchecked first, dates by
//! instant, select / status / multi-select by option names. Empty values come last in both
//! directions. An unknown property answers `Could not find sort property with name or id: X.`
//!
//! **Guesses** where Notion's documentation is silent: `contains`, `does_not_contain`,
//! `starts_with` and `ends_with` ignore case (`equals` does not); empty values sort last
//! whichever the direction; select options sort by name (Notion sorts them in the schema's
//! option order, which FakeNotion does not have); an empty `and`/`or` keeps every row;
//! `this_week` runs Sunday to Saturday, `past_month` from the same day a month ago; a
//! date property's `time_zone` and `end` are ignored; the wording of the messages beyond
//! `Could not find property with name or id: X.`; formula and rollup filters are rejected
//! as not emulated.
//!
//! Dates are parsed with the `time` crate (ISO 8601 and RFC 3339) rather than by hand.

use serde_json::{Map, Value};
use time::Date;

use crate::store::Page;

mod condition;
mod filter;
mod sort;
#[cfg(test)]
mod tests;
mod value;

use filter::Filter;
use sort::Sort;
use value::Properties;

/// A validated `filter` and `sorts`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    filter: Option<Filter>,
    sorts: Vec<Sort>,
}

impl Query {
    /// The `filter` and `sorts` of a query `body`, checked against `schema` (the data
    /// source's `properties` object), the properties of `rows` (every row of the database,
    /// trashed or not) and those requests have `named` (name → `{"id", "type"}`, see
    /// `Store::learn_properties`); relative dates count from `today`.
    ///
    /// # Errors
    /// The message of Notion's 400 `validation_error` for the first problem found.
    pub(crate) fn from_body(
        body: &Map<String, Value>,
        schema: &Value,
        rows: &[&Page],
        named: &Map<String, Value>,
        today: Date,
    ) -> Result<Self, String> {
        let properties = Properties::new(schema, rows, named);
        let filter = match body.get("filter") {
            None | Some(Value::Null) => None,
            Some(filter @ Value::Object(_)) => Some(Filter::parse(filter, &properties, today)?),
            Some(_) => {
                return Err("body failed validation: body.filter should be an object.".to_owned())
            }
        };
        let sorts = sort::parse(body.get("sorts"), &properties)?;
        Ok(Self { filter, sorts })
    }

    /// The rows that pass the filter, sorted; without sorts in the order given.
    pub(crate) fn apply<'p>(&self, rows: impl IntoIterator<Item = &'p Page>) -> Vec<&'p Page> {
        let mut rows: Vec<&Page> = rows
            .into_iter()
            .filter(|page| self.filter.as_ref().is_none_or(|f| f.matches(page)))
            .collect();
        sort::apply(&mut rows, &self.sorts);
        rows
    }
}

/// Keeps messages that echo input short: at most 100 characters, then `…`.
fn clip(text: &str) -> String {
    const MAX: usize = 100;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// A JSON value as a message shows it, [`clip`]ped.
fn shown(value: &Value) -> String {
    clip(&value.to_string())
}

/// `body failed validation: {at} {should}, instead was `{value}`.`
fn invalid(at: &str, should: &str, value: &Value) -> String {
    format!(
        "body failed validation: {at} {should}, instead was `{}`.",
        shown(value)
    )
}

/// `` `a`, `b` or `c` ``.
fn listed<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.map(|i| format!("`{i}`")).collect();
    match items.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}
