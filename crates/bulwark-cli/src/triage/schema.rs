//! Schema drift: the properties an integration relies on (`--expect-properties
//! "Name:title,Status:select"` or `--schema FILE`) against those the data source has
//! (`GET /v1/data_sources/{id}`), by name and type. Pure.

use std::{collections::BTreeMap, fmt};

use serde_json::Value;

/// Why an expected schema could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError(String);

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SchemaError {}

/// The properties a data source should have: `(name, type)` in the order given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExpectedSchema {
    properties: Vec<(String, String)>,
}

/// Whether `kind` looks like a Notion property type (`title`, `multi_select`, …): lowercase
/// letters and underscores. Types Notion adds later pass too.
fn valid_type(kind: &str) -> bool {
    !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

impl ExpectedSchema {
    /// From `(name, type)` pairs.
    ///
    /// # Errors
    /// An empty list, an empty name, a name given twice, a type that is not lowercase
    /// letters and underscores.
    pub fn new<I, N, T>(properties: I) -> Result<Self, SchemaError>
    where
        I: IntoIterator<Item = (N, T)>,
        N: Into<String>,
        T: Into<String>,
    {
        let mut out: Vec<(String, String)> = Vec::new();
        for (name, kind) in properties {
            let (name, kind) = (name.into(), kind.into());
            if name.trim().is_empty() {
                return Err(SchemaError("a property name is empty".to_owned()));
            }
            if !valid_type(&kind) {
                return Err(SchemaError(format!(
                    "property {name:?}: {kind:?} is not a property type (title, rich_text, \
                     number, select, multi_select, status, date, people, checkbox, url, …)"
                )));
            }
            if out.iter().any(|(n, _)| *n == name) {
                return Err(SchemaError(format!("property {name:?} is given twice")));
            }
            out.push((name, kind));
        }
        if out.is_empty() {
            return Err(SchemaError("no properties given".to_owned()));
        }
        Ok(Self { properties: out })
    }

    /// From `--expect-properties`: `Name:title,Status:select,Due:date`. Spaces around names
    /// and types are ignored; a name may hold `:` (the last one separates the type), not `,`
    /// (use [`from_json`](Self::from_json) for those).
    ///
    /// # Errors
    /// An entry without `:`, and those of [`new`](Self::new).
    pub fn parse(spec: &str) -> Result<Self, SchemaError> {
        let mut pairs = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((name, kind)) = entry.rsplit_once(':') else {
                return Err(SchemaError(format!(
                    "{entry:?} is not NAME:TYPE (e.g. Status:select)"
                )));
            };
            pairs.push((name.trim().to_owned(), kind.trim().to_owned()));
        }
        Self::new(pairs)
    }

    /// From `--schema FILE`'s JSON: `{"Name": "title", "Status": "select"}`, or a data
    /// source's own `properties` object (`{"Name": {"type": "title", …}}`), so a saved
    /// `GET /v1/data_sources/{id}` answer's `properties` works as it is.
    ///
    /// # Errors
    /// Not JSON, not an object, a value that is neither a type nor an object with a string
    /// `type`, and those of [`new`](Self::new).
    pub fn from_json(text: &str) -> Result<Self, SchemaError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| SchemaError(format!("not JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(SchemaError(
                "expected a JSON object {\"Name\": \"title\", …}".to_owned(),
            ));
        };
        let mut pairs = Vec::new();
        for (name, v) in map {
            let kind = match &v {
                Value::String(kind) => kind.clone(),
                Value::Object(p) => match p.get("type") {
                    Some(Value::String(kind)) => kind.clone(),
                    _ => {
                        return Err(SchemaError(format!(
                            "property {name:?}: an object needs a string \"type\""
                        )))
                    }
                },
                other => {
                    return Err(SchemaError(format!(
                        "property {name:?}: expected a type such as \"select\", got {other}"
                    )))
                }
            };
            pairs.push((name, kind));
        }
        Self::new(pairs)
    }

    /// The `(name, type)` pairs, in the order given.
    #[must_use]
    pub fn properties(&self) -> &[(String, String)] {
        &self.properties
    }
}

/// The schema a data source has, read from `GET /v1/data_sources/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActualSchema {
    /// The database the data source belongs to (`parent.database_id`), when given.
    pub database_id: Option<String>,
    /// `name → type`.
    pub properties: BTreeMap<String, String>,
}

impl ActualSchema {
    /// From a data source (or, before Notion-Version 2025-09-03, a database) object:
    /// `properties` keyed by name, each with a `type`. `None` without a `properties` object.
    #[must_use]
    pub fn from_data_source(value: &Value) -> Option<Self> {
        let properties = value.get("properties")?.as_object()?;
        let properties = properties
            .iter()
            .map(|(name, p)| {
                let kind = p.get("type").and_then(Value::as_str).unwrap_or("unknown");
                (name.clone(), kind.to_owned())
            })
            .collect();
        let database_id = value
            .get("parent")
            .and_then(|p| p.get("database_id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Some(Self {
            database_id,
            properties,
        })
    }
}

/// A property whose type changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retyped {
    /// The property.
    pub name: String,
    /// The type the integration expects.
    pub expected: String,
    /// The type it has now.
    pub actual: String,
}

/// How the data source's schema differs from the expected one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SchemaDiff {
    /// Expected, gone (deleted or renamed).
    pub missing: Vec<String>,
    /// There, not expected (added, or the new name of a renamed one).
    pub new: Vec<String>,
    /// Same name, another type.
    pub retyped: Vec<Retyped>,
}

impl SchemaDiff {
    /// Whether the schemas agree.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.new.is_empty() && self.retyped.is_empty()
    }

    /// `missing: Due; new: Owner; re-typed: Status select → multi_select`.
    #[must_use]
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!("missing: {}", self.missing.join(", ")));
        }
        if !self.new.is_empty() {
            parts.push(format!("new: {}", self.new.join(", ")));
        }
        if !self.retyped.is_empty() {
            let retyped: Vec<String> = self
                .retyped
                .iter()
                .map(|r| format!("{} {} → {}", r.name, r.expected, r.actual))
                .collect();
            parts.push(format!("re-typed: {}", retyped.join(", ")));
        }
        if parts.is_empty() {
            "no difference".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

/// Compares by name, then type. Missing and re-typed follow the expected order, new ones
/// the data source's (by name).
#[must_use]
pub fn compare(expected: &ExpectedSchema, actual: &ActualSchema) -> SchemaDiff {
    let mut diff = SchemaDiff::default();
    for (name, kind) in expected.properties() {
        match actual.properties.get(name) {
            None => diff.missing.push(name.clone()),
            Some(now) if now != kind => diff.retyped.push(Retyped {
                name: name.clone(),
                expected: kind.clone(),
                actual: now.clone(),
            }),
            Some(_) => {}
        }
    }
    diff.new = actual
        .properties
        .keys()
        .filter(|name| !expected.properties().iter().any(|(n, _)| n == *name))
        .cloned()
        .collect();
    diff
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn actual(pairs: &[(&str, &str)]) -> ActualSchema {
        ActualSchema {
            database_id: Some("db_1".into()),
            properties: pairs
                .iter()
                .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn parses_the_flag() {
        let schema = ExpectedSchema::parse(" Name:title, Status : select,Due:date,").unwrap();
        assert_eq!(
            schema.properties(),
            [
                ("Name".to_owned(), "title".to_owned()),
                ("Status".to_owned(), "select".to_owned()),
                ("Due".to_owned(), "date".to_owned()),
            ]
        );
        let colon = ExpectedSchema::parse("Ratio: a:b:number").unwrap();
        assert_eq!(colon.properties()[0].0, "Ratio: a:b");
        for bad in [
            "",
            ",,",
            "Name",
            "Name:",
            ":title",
            "Name:Title",
            "Name:title,Name:select",
            "Name:ti tle",
        ] {
            assert!(ExpectedSchema::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reads_both_json_shapes() {
        let flat = ExpectedSchema::from_json(r#"{"Name":"title","Due":"date"}"#).unwrap();
        let saved = ExpectedSchema::from_json(
            &json!({"Name": {"id": "title", "type": "title", "title": {}}, "Due": {"type": "date"}})
                .to_string(),
        )
        .unwrap();
        let mut a = flat.properties().to_vec();
        let mut b = saved.properties().to_vec();
        a.sort();
        b.sort();
        assert_eq!(a, b);
        for bad in ["[]", "nope", r#"{"Name": 1}"#, r#"{"Name": {}}"#, "{}"] {
            assert!(ExpectedSchema::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn finds_missing_new_and_retyped() {
        let expected = ExpectedSchema::parse("Name:title,Status:select,Due:date").unwrap();
        let diff = compare(
            &expected,
            &actual(&[
                ("Name", "title"),
                ("Status", "multi_select"),
                ("Owner", "people"),
            ]),
        );
        assert_eq!(diff.missing, ["Due"]);
        assert_eq!(diff.new, ["Owner"]);
        assert_eq!(
            diff.retyped,
            [Retyped {
                name: "Status".into(),
                expected: "select".into(),
                actual: "multi_select".into()
            }]
        );
        assert_eq!(
            diff.summary(),
            "missing: Due; new: Owner; re-typed: Status select → multi_select"
        );
        let same = compare(
            &expected,
            &actual(&[("Due", "date"), ("Status", "select"), ("Name", "title")]),
        );
        assert!(same.is_empty());
        assert_eq!(same.summary(), "no difference");
    }

    #[test]
    fn reads_a_data_source() {
        let ds = json!({
            "object": "data_source",
            "parent": {"type": "database_id", "database_id": "db_1"},
            "properties": {"Name": {"id": "title", "type": "title"}, "Odd": {}},
        });
        let schema = ActualSchema::from_data_source(&ds).unwrap();
        assert_eq!(schema.database_id.as_deref(), Some("db_1"));
        assert_eq!(schema.properties["Name"], "title");
        assert_eq!(schema.properties["Odd"], "unknown");
        assert!(ActualSchema::from_data_source(&json!({"object": "data_source"})).is_none());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(spec in ".{0,64}") {
            let _ = ExpectedSchema::parse(&spec);
            let _ = ExpectedSchema::from_json(&spec);
        }

        #[test]
        fn a_schema_agrees_with_itself(names in proptest::collection::btree_set("[A-Za-z][A-Za-z ]{0,8}", 1..6)) {
            let pairs: Vec<(String, String)> = names.iter().map(|n| (n.trim().to_owned(), "select".to_owned())).collect();
            prop_assume!(pairs.iter().all(|(n, _)| !n.is_empty()));
            let spec: Vec<String> = pairs.iter().map(|(n, t)| format!("{n}:{t}")).collect();
            if let Ok(expected) = ExpectedSchema::parse(&spec.join(",")) {
                let actual = ActualSchema { database_id: None, properties: pairs.into_iter().collect() };
                prop_assert!(compare(&expected, &actual).is_empty());
            }
        }
    }
}
