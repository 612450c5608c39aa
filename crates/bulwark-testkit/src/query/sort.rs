//! Notion's sort objects: validated, then applied as one stable multi-key sort.

use std::cmp::Ordering;

use serde_json::Value;

use super::filter::MAX_ITEMS;
use super::value::{property_value, Properties, Timestamp, Val};
use super::{clip, invalid};
use crate::store::Page;

/// One sort key of `body.sorts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sort {
    by: By,
    descending: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum By {
    /// The property rows key by this name, read as this type (`None`: no row has a type).
    Property(String, Option<String>),
    Timestamp(Timestamp),
}

/// What a value sorts by. Values of different types (rows that disagree on a property's
/// type) order by type: checkboxes, numbers, text, dates.
#[derive(Debug, Clone, PartialEq)]
enum Key {
    Bool(bool),
    Number(f64),
    /// Lowercased text first, then the text itself, so case only breaks ties.
    Text(String, String),
    /// Milliseconds since the epoch.
    Time(i128),
}

impl Key {
    /// `None` for an empty value.
    fn of(value: Val) -> Option<Self> {
        let text = |t: String| Self::Text(t.to_lowercase(), t);
        match value {
            Val::Empty => None,
            Val::Bool(b) => Some(Self::Bool(b)),
            Val::Number(n) => Some(Self::Number(n)),
            Val::Text(t) => Some(text(t)),
            Val::Names(names) => Some(text(names.join(", "))),
            Val::When(when) => Some(Self::Time(when.millis())),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Self::Bool(_) => 0,
            Self::Number(_) => 1,
            Self::Text(..) => 2,
            Self::Time(_) => 3,
        }
    }

    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Bool(a), Self::Bool(b)) => a.cmp(b),
            (Self::Number(a), Self::Number(b)) => a.total_cmp(b),
            (Self::Text(a, raw_a), Self::Text(b, raw_b)) => a.cmp(b).then_with(|| raw_a.cmp(raw_b)),
            (Self::Time(a), Self::Time(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl Sort {
    fn key(&self, page: &Page) -> Option<Key> {
        let value = match &self.by {
            By::Property(name, Some(kind)) => property_value(page.properties.get(name), kind),
            By::Property(_, None) => Val::Empty,
            By::Timestamp(which) => which.of(page),
        };
        Key::of(value)
    }

    /// Empty values go last in either direction.
    fn compare(&self, a: Option<&Key>, b: Option<&Key>) -> Ordering {
        match (a, b) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(a), Some(b)) if self.descending => b.cmp(a),
            (Some(a), Some(b)) => a.cmp(b),
        }
    }
}

/// Validates and parses `body.sorts` (absent or `null` is no sort).
///
/// # Errors
/// The message of Notion's 400 `validation_error`.
pub(super) fn parse(value: Option<&Value>, properties: &Properties) -> Result<Vec<Sort>, String> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err("body failed validation: body.sorts should be an array.".to_owned()),
    };
    if items.len() > MAX_ITEMS {
        return Err(format!(
            "body failed validation: body.sorts.length should be ≤ `{MAX_ITEMS}`, instead was `{}`.",
            items.len()
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_one(item, &format!("body.sorts[{i}]"), properties))
        .collect()
}

fn parse_one(item: &Value, at: &str, properties: &Properties) -> Result<Sort, String> {
    let Some(obj) = item.as_object() else {
        return Err(invalid(at, "should be an object", item));
    };
    if let Some(other) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "property" | "timestamp" | "direction"))
    {
        return Err(format!(
            "body failed validation: {at}.{} should be not present.",
            clip(other)
        ));
    }
    let descending = match obj.get("direction") {
        Some(Value::String(d)) if d == "ascending" => false,
        Some(Value::String(d)) if d == "descending" => true,
        Some(other) => {
            return Err(invalid(
                &format!("{at}.direction"),
                "should be `\"ascending\"` or `\"descending\"`",
                other,
            ))
        }
        None => {
            return Err(format!(
                "body failed validation: {at}.direction should be defined, instead was `undefined`."
            ))
        }
    };
    let by = match (obj.get("property"), obj.get("timestamp")) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "body failed validation: {at} should have `property` or `timestamp`, not both."
            ))
        }
        (None, None) => {
            return Err(format!(
                "body failed validation: {at}.property should be defined, instead was `undefined`."
            ))
        }
        (Some(Value::String(key)), None) => {
            let known = properties.resolve(key).ok_or_else(|| {
                format!(
                    "Could not find sort property with name or id: {}.",
                    clip(key)
                )
            })?;
            By::Property(known.name.clone(), known.kind.clone())
        }
        (Some(other), None) => {
            return Err(invalid(
                &format!("{at}.property"),
                "should be a string",
                other,
            ))
        }
        (None, Some(name)) => {
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
            By::Timestamp(which)
        }
    };
    Ok(Sort { by, descending })
}

/// Sorts `rows` by `sorts`, the first most significant; stable, so rows that tie keep
/// their order.
pub(super) fn apply(rows: &mut Vec<&Page>, sorts: &[Sort]) {
    if sorts.is_empty() {
        return;
    }
    let mut keyed: Vec<(Vec<Option<Key>>, &Page)> = rows
        .drain(..)
        .map(|page| (sorts.iter().map(|s| s.key(page)).collect(), page))
        .collect();
    keyed.sort_by(|(a, _), (b, _)| {
        sorts
            .iter()
            .zip(a.iter().zip(b))
            .map(|(sort, (a, b))| sort.compare(a.as_ref(), b.as_ref()))
            .find(|order| order.is_ne())
            .unwrap_or(Ordering::Equal)
    });
    rows.extend(keyed.into_iter().map(|(_, page)| page));
}
