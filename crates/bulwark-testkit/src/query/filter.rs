//! Notion's filter objects: validated and parsed once, then matched against each row.

use serde_json::{Map, Value};
use time::Date;

use super::condition::{Cond, Family, FILTER_TYPES};
use super::value::{property_value, Properties, Timestamp};
use super::{clip, invalid, listed};
use crate::store::Page;

/// How deep compound filters nest (Notion's limit): an `and`/`or` may hold another, whose
/// items are property or timestamp filters.
const MAX_DEPTH: usize = 2;
/// The most filters one `and`/`or` holds (Notion's limit on arrays).
pub(super) const MAX_ITEMS: usize = 100;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Filter {
    /// Every filter holds (an empty `and` holds for every row).
    And(Vec<Self>),
    /// One filter holds (an empty `or` holds for every row, like no filter).
    Or(Vec<Self>),
    /// A condition on the property a row keys by `name`, read as type `kind`.
    Property {
        name: String,
        kind: &'static str,
        cond: Cond,
    },
    /// A condition on the row's `created_time` or `last_edited_time`.
    Timestamp { which: Timestamp, cond: Cond },
}

impl Filter {
    /// Validates and parses `body.filter`, naming properties from `properties` and
    /// resolving relative dates against `today`.
    ///
    /// # Errors
    /// The message of Notion's 400 `validation_error`.
    pub(super) fn parse(
        value: &Value,
        properties: &Properties,
        today: Date,
    ) -> Result<Self, String> {
        Parser { properties, today }.filter(value, "body.filter", 0)
    }

    /// Whether `page` passes.
    pub(super) fn matches(&self, page: &Page) -> bool {
        match self {
            Self::And(filters) => filters.iter().all(|f| f.matches(page)),
            Self::Or(filters) => filters.is_empty() || filters.iter().any(|f| f.matches(page)),
            Self::Property { name, kind, cond } => {
                cond.test(&property_value(page.properties.get(name), kind))
            }
            Self::Timestamp { which, cond } => cond.test(&which.of(page)),
        }
    }
}

struct Parser<'a> {
    properties: &'a Properties,
    today: Date,
}

impl Parser<'_> {
    fn filter(&self, value: &Value, at: &str, depth: usize) -> Result<Filter, String> {
        let Some(obj) = value.as_object() else {
            return Err(invalid(at, "should be an object", value));
        };
        if let Some(key) = ["and", "or"].into_iter().find(|k| obj.contains_key(*k)) {
            return self.compound(obj, key, at, depth);
        }
        if obj.contains_key("timestamp") {
            return self.timestamp(obj, at);
        }
        if obj.contains_key("property") {
            return self.property(obj, at);
        }
        Err(invalid(
            at,
            "should have one of `property`, `timestamp`, `and` or `or`",
            value,
        ))
    }

    fn compound(
        &self,
        obj: &Map<String, Value>,
        key: &str,
        at: &str,
        depth: usize,
    ) -> Result<Filter, String> {
        if let Some(other) = obj.keys().find(|k| *k != key) {
            return Err(format!(
                "body failed validation: {at}.{} should be not present beside `{key}`.",
                clip(other)
            ));
        }
        if depth >= MAX_DEPTH {
            return Err(format!(
                "body failed validation: {at}.{key} should be not present: compound filters nest at most {MAX_DEPTH} levels deep."
            ));
        }
        let items = &obj[key];
        let Some(items) = items.as_array() else {
            return Err(invalid(&format!("{at}.{key}"), "should be an array", items));
        };
        if items.len() > MAX_ITEMS {
            return Err(format!(
                "body failed validation: {at}.{key}.length should be ≤ `{MAX_ITEMS}`, instead was `{}`.",
                items.len()
            ));
        }
        let filters = items
            .iter()
            .enumerate()
            .map(|(i, item)| self.filter(item, &format!("{at}.{key}[{i}]"), depth + 1))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(if key == "and" {
            Filter::And(filters)
        } else {
            Filter::Or(filters)
        })
    }

    fn timestamp(&self, obj: &Map<String, Value>, at: &str) -> Result<Filter, String> {
        let name = &obj["timestamp"];
        let which = name
            .as_str()
            .and_then(Timestamp::from_name)
            .ok_or_else(|| {
                invalid(
                    &format!("{at}.timestamp"),
                    "should be `\"created_time\"` or `\"last_edited_time\"`",
                    name,
                )
            })?;
        let kind = which.name();
        only_keys(obj, &["timestamp", "type", kind], at)?;
        check_type_hint(obj, kind, at)?;
        let Some(condition) = obj.get(kind) else {
            return Err(format!(
                "body failed validation: {at}.{kind} should be defined, instead was `undefined`."
            ));
        };
        let cond = Cond::parse(
            Family::Date,
            kind,
            condition,
            &format!("{at}.{kind}"),
            self.today,
        )?;
        Ok(Filter::Timestamp { which, cond })
    }

    fn property(&self, obj: &Map<String, Value>, at: &str) -> Result<Filter, String> {
        let key = &obj["property"];
        let Some(key) = key.as_str() else {
            return Err(invalid(
                &format!("{at}.property"),
                "should be a string",
                key,
            ));
        };
        let mut types = obj
            .keys()
            .filter(|k| !matches!(k.as_str(), "property" | "type"));
        let (Some(kind), None) = (types.next(), types.next()) else {
            return Err(format!(
                "body failed validation: {at} should have exactly one filter type beside `property`, such as `rich_text` or `number`."
            ));
        };
        let Some(&(kind, family)) = FILTER_TYPES.iter().find(|(t, _)| t == kind) else {
            return Err(format!(
                "body failed validation: {at}.{} is not a filter type FakeNotion applies; it knows {}.",
                clip(kind),
                listed(FILTER_TYPES.iter().map(|(t, _)| *t))
            ));
        };
        check_type_hint(obj, kind, at)?;
        let cond = Cond::parse(
            family,
            kind,
            &obj[kind],
            &format!("{at}.{kind}"),
            self.today,
        )?;
        let known = self
            .properties
            .resolve(key)
            .ok_or_else(|| format!("Could not find property with name or id: {}.", clip(key)))?;
        if let Some(schema_type) = known.schema_type.as_deref().filter(|t| *t != kind) {
            return Err(format!(
                "database property {schema_type} does not match filter {kind}"
            ));
        }
        Ok(Filter::Property {
            name: known.name.clone(),
            kind,
            cond,
        })
    }
}

/// Fails on keys of `obj` other than `allowed`.
fn only_keys(obj: &Map<String, Value>, allowed: &[&str], at: &str) -> Result<(), String> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(other) => Err(format!(
            "body failed validation: {at}.{} should be not present.",
            clip(other)
        )),
        None => Ok(()),
    }
}

/// The optional `type` of a filter must name its filter type.
fn check_type_hint(obj: &Map<String, Value>, kind: &str, at: &str) -> Result<(), String> {
    match obj.get("type") {
        None => Ok(()),
        Some(Value::String(t)) if t == kind => Ok(()),
        Some(other) => Err(invalid(
            &format!("{at}.type"),
            &format!("should be `\"{kind}\"`"),
            other,
        )),
    }
}
