//! The data source's schema as Notion renders it, and the changes `PATCH
//! /v1/data_sources/{id}` makes to it (see [`Store::update_schema`](super::Store::update_schema)).

use serde_json::{json, Map, Value};

use super::property_id;

/// Database property types, used to find the type of a schema change given without `type`.
const SCHEMA_TYPES: &[&str] = &[
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
    "formula",
    "relation",
    "rollup",
    "created_time",
    "created_by",
    "last_edited_time",
    "last_edited_by",
    "button",
    "unique_id",
    "verification",
    "place",
];

/// A schema property as Notion renders it: `{"id","name","type",<type>: config}`.
pub(super) fn schema_property(name: &str, kind: &str, config: Value, id: Option<Value>) -> Value {
    let id = id.unwrap_or_else(|| {
        Value::String(if kind == "title" {
            "title".to_owned()
        } else {
            property_id(name)
        })
    });
    let mut property = Map::new();
    property.insert("id".to_owned(), id);
    property.insert("name".to_owned(), Value::String(name.to_owned()));
    property.insert("type".to_owned(), Value::String(kind.to_owned()));
    property.insert(kind.to_owned(), config);
    Value::Object(property)
}

/// The type and configuration a schema change names, if it names one.
fn change_type(key: &str, change: &Map<String, Value>) -> Result<Option<(String, Value)>, String> {
    let kind = match change.get("type") {
        Some(Value::String(kind)) => Some(kind.clone()),
        None | Some(Value::Null) => SCHEMA_TYPES
            .iter()
            .find(|t| change.contains_key(**t))
            .map(|t| (*t).to_owned()),
        Some(other) => {
            return Err(format!(
                "body failed validation: body.properties.{key}.type should be a string, instead was `{other}`."
            ))
        }
    };
    let Some(kind) = kind else { return Ok(None) };
    let config = match change.get(&kind) {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(config @ Value::Object(_)) => config.clone(),
        Some(other) => {
            return Err(format!(
                "body failed validation: body.properties.{key}.{kind} should be an object, instead was `{other}`."
            ))
        }
    };
    Ok(Some((kind, config)))
}

/// One entry of a schema update, applied to `schema` (see [`Store::update_schema`]).
pub(super) fn apply_schema_change(
    schema: &mut Map<String, Value>,
    key: &str,
    existing: Option<(String, Value)>,
    change: &Value,
) -> Result<(), String> {
    let kind_of = |p: &Value| {
        p.get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let change = match change {
        Value::Null => {
            let Some((name, property)) = existing else {
                return Err(format!(
                    "Could not find property with name or id: {key}."
                ));
            };
            if kind_of(&property) == "title" {
                return Err("body failed validation: a data source's title property cannot be removed.".to_owned());
            }
            schema.remove(&name);
            return Ok(());
        }
        Value::Object(change) => change,
        other => {
            return Err(format!(
                "body failed validation: body.properties.{key} should be an object or `null`, instead was `{other}`."
            ))
        }
    };
    let new_name = match change.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) if !name.trim().is_empty() => Some(name.clone()),
        Some(other) => {
            return Err(format!(
                "body failed validation: body.properties.{key}.name should be a non-empty string, instead was `{other}`."
            ))
        }
    };
    let typed = change_type(key, change)?;
    match existing {
        Some((name, property)) => {
            let old_kind = kind_of(&property);
            let (kind, config) = match typed {
                Some((kind, config)) => (kind, config),
                None => (
                    old_kind.clone(),
                    property
                        .get(&old_kind)
                        .cloned()
                        .unwrap_or_else(|| json!({})),
                ),
            };
            if (old_kind == "title") != (kind == "title") {
                return Err(format!(
                    "body failed validation: a data source has exactly one title property; `{name}` cannot become a {kind}."
                ));
            }
            let target = new_name.unwrap_or_else(|| name.clone());
            if target != name && schema.contains_key(&target) {
                return Err(format!(
                    "body failed validation: a property named `{target}` already exists."
                ));
            }
            let id = property.get("id").cloned();
            schema.remove(&name);
            let property = schema_property(&target, &kind, config, id);
            schema.insert(target, property);
        }
        None => {
            let Some((kind, config)) = typed else {
                return Err(format!(
                    "body failed validation: body.properties.{key} should name a property type to add a property (e.g. `{{\"select\": {{}}}}`)."
                ));
            };
            if kind == "title" {
                return Err(
                    "body failed validation: a data source has exactly one title property."
                        .to_owned(),
                );
            }
            let name = new_name.unwrap_or_else(|| key.to_owned());
            if schema.contains_key(&name) {
                return Err(format!(
                    "body failed validation: a property named `{name}` already exists."
                ));
            }
            let property = schema_property(&name, &kind, config, None);
            schema.insert(name, property);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::store::Store;

    fn types(store: &Store) -> Vec<(String, String)> {
        let mut types: Vec<(String, String)> = store
            .properties()
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, p)| (name.clone(), p["type"].as_str().unwrap().to_owned()))
            .collect();
        types.sort();
        types
    }

    #[test]
    fn the_schema_starts_as_the_seed_and_changes_like_notion() {
        let mut store = Store::new(0);
        assert_eq!(store.properties(), Store::schema());
        store
            .update_schema(&json!({
                "Status": {"select": {"options": [{"name": "Done"}]}},
                "Due": {"type": "date", "date": {}},
            }))
            .unwrap();
        assert_eq!(
            types(&store),
            [
                ("Due".to_owned(), "date".to_owned()),
                ("Name".to_owned(), "title".to_owned()),
                ("Status".to_owned(), "select".to_owned()),
            ]
        );
        let status = &store.properties()["Status"];
        assert_eq!(status["name"], "Status");
        assert_eq!(status["select"]["options"][0]["name"], "Done");
        let status_id = status["id"].as_str().unwrap().to_owned();

        // Rename by id, retype by name, remove, rename the title: all at once.
        store
            .update_schema(&json!({
                status_id.clone(): {"name": "Stage"},
                "Due": {"rich_text": {}},
                "Name": {"name": "Title"},
            }))
            .unwrap();
        let props = store.properties();
        assert_eq!(
            props["Stage"]["id"],
            status_id.as_str(),
            "a rename keeps the id"
        );
        assert_eq!(props["Stage"]["type"], "select");
        assert_eq!(props["Due"]["type"], "rich_text");
        assert_eq!(props["Title"]["id"], "title");
        store.update_schema(&json!({"Due": null})).unwrap();
        assert_eq!(
            types(&store),
            [
                ("Stage".to_owned(), "select".to_owned()),
                ("Title".to_owned(), "title".to_owned()),
            ]
        );
        assert_eq!(store.data_source_json()["properties"], store.properties());
        assert_eq!(
            store.database_json("2022-06-28")["properties"],
            store.properties()
        );
    }

    #[test]
    fn bad_schema_changes_change_nothing() {
        let mut store = Store::new(0);
        store
            .update_schema(&json!({"Tags": {"multi_select": {}}}))
            .unwrap();
        let before = store.properties();
        for bad in [
            json!([1]),
            json!({"Title": null}),
            json!({"Name": null}),
            json!({"Name": {"rich_text": {}}}),
            json!({"Tags": {"title": {}}}),
            json!({"Other": {"title": {}}}),
            json!({"Other": {"name": "x"}}),
            json!({"Tags": 3}),
            json!({"Tags": {"name": "Name"}}),
            json!({"Tags": {"select": []}}),
            json!({"Tags": {"type": 1}}),
            // The first change is fine, the second is not: neither lands.
            json!({"Due": {"date": {}}, "Nope": null}),
        ] {
            assert!(store.update_schema(&bad).is_err(), "{bad}");
            assert_eq!(store.properties(), before, "{bad}");
        }
        store.update_schema(&Value::Null).unwrap();
        assert_eq!(store.properties(), before);
    }

    #[test]
    fn set_schema_replaces_it() {
        let mut store = Store::new(0);
        store.set_schema(vec![
            ("Task".to_owned(), "title".to_owned()),
            ("Owner".to_owned(), "people".to_owned()),
        ]);
        let props = store.properties();
        assert_eq!(props["Task"]["id"], "title");
        assert_eq!(props["Owner"]["type"], "people");
        assert_eq!(props["Owner"]["people"], json!({}));
        assert_eq!(props.as_object().unwrap().len(), 2);
    }
}
