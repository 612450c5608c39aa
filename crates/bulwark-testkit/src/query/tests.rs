//! [`Query`] through its interface: every filter family, compounds, sorts, and each
//! validation error.

use serde_json::{json, Value};
use time::{Date, Month};

use super::Query;
use crate::store::{normalize_properties, Page, Store};

/// Today, for the relative date conditions: Wednesday 2024-05-08.
fn today() -> Date {
    Date::from_calendar_date(2024, Month::May, 8).unwrap()
}

fn page(id: &str, created: &str, edited: &str, properties: Value) -> Page {
    Page {
        id: id.to_owned(),
        parent: json!({"type": "data_source_id", "data_source_id": "ds_1", "database_id": "db_1"}),
        properties: Value::Object(normalize_properties(Some(&properties)).unwrap()),
        icon: Value::Null,
        cover: Value::Null,
        in_trash: false,
        created_time: created.to_owned(),
        last_edited_time: edited.to_owned(),
    }
}

fn title(text: &str) -> Value {
    json!({"title": [{"text": {"content": text}}]})
}

fn text(text: &str) -> Value {
    json!({"rich_text": [{"text": {"content": text}}]})
}

/// Four rows: `a` and `b` have every property, `c` has empty ones, `d` has some of
/// another type.
fn rows() -> Vec<Page> {
    vec![
        page(
            "a",
            "2024-05-01T12:00:00.000Z",
            "2024-05-07T08:00:00.000Z",
            json!({
                "Name": title("Alpha"),
                "External ID": text("x-1"),
                "Score": {"number": 10},
                "Color": {"select": {"name": "Red"}},
                "Stage": {"status": {"name": "Done"}},
                "Tags": {"multi_select": [{"name": "a"}, {"name": "b"}]},
                "Owner": {"people": [{"object": "user", "id": "u1"}]},
                "Done": {"checkbox": true},
                "Due": {"date": {"start": "2024-05-01", "end": null}},
                "Site": {"url": "https://alpha.example"},
                "Mail": {"email": "a@example.com"},
                "Files": {"files": [{"name": "a.pdf"}]},
            }),
        ),
        page(
            "b",
            "2024-05-02T00:00:00.000Z",
            "2024-05-02T00:00:00.000Z",
            json!({
                "Name": title("beta"),
                "External ID": text("x-2"),
                "Score": {"number": 2.5},
                "Color": {"select": {"name": "Blue"}},
                "Stage": {"status": {"name": "Doing"}},
                "Tags": {"multi_select": [{"name": "b"}]},
                "Owner": {"people": []},
                "Done": {"checkbox": false},
                "Due": {"date": {"start": "2024-05-02T23:30:00-02:00"}},
                "Site": {"url": null},
                "Phone": {"phone_number": "+1 555"},
            }),
        ),
        page(
            "c",
            "2024-05-03T00:00:00.000Z",
            "2024-05-03T00:00:00.000Z",
            json!({
                "Name": title("Gamma"),
                "External ID": text(""),
                "Score": {"number": null},
                "Color": {"select": null},
                "Tags": {"multi_select": []},
                "Due": {"date": null},
            }),
        ),
        page(
            "d",
            "2024-04-30T23:59:59.999Z",
            "2024-05-08T10:00:00.000Z",
            json!({
                "Name": title(""),
                "External ID": {"number": 7},
                "Score": text("12"),
            }),
        ),
    ]
}

/// The ids `body` keeps from [`rows`], in order, or the error message.
fn run(body: Value) -> Result<Vec<String>, String> {
    let pages = rows();
    let refs: Vec<&Page> = pages.iter().collect();
    let body = body.as_object().cloned().unwrap_or_default();
    let named = json!({"Later": {"id": "LLLL", "type": "rich_text"}});
    let named = named.as_object().unwrap();
    let query = Query::from_body(&body, &Store::schema(), &refs, named, today())?;
    Ok(query.apply(refs).iter().map(|p| p.id.clone()).collect())
}

/// The ids a single property filter keeps.
fn kept(property: &str, kind: &str, condition: Value) -> Vec<String> {
    run(json!({"filter": {"property": property, kind: condition}}))
        .unwrap_or_else(|e| panic!("{property} {kind} {condition}: {e}"))
}

fn ids(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|&id| id.to_owned()).collect()
}

#[test]
fn without_filter_or_sorts_every_row_stays_in_order() {
    assert_eq!(run(json!({})).unwrap(), ids(&["a", "b", "c", "d"]));
    assert_eq!(
        run(json!({"filter": null, "sorts": null})).unwrap(),
        ids(&["a", "b", "c", "d"])
    );
    assert_eq!(
        run(json!({"sorts": []})).unwrap(),
        ids(&["a", "b", "c", "d"])
    );
}

#[test]
fn text_conditions_compare_plain_text() {
    let ext = |c: Value| kept("External ID", "rich_text", c);
    assert_eq!(ext(json!({"equals": "x-2"})), ids(&["b"]));
    assert_eq!(
        ext(json!({"equals": "X-2"})),
        ids(&[]),
        "equals is case-sensitive"
    );
    assert_eq!(
        ext(json!({"does_not_equal": "x-2"})),
        ids(&["a", "c", "d"]),
        "empty and other-typed values are not equal"
    );
    assert_eq!(
        ext(json!({"contains": "X-"})),
        ids(&["a", "b"]),
        "contains ignores case"
    );
    assert_eq!(ext(json!({"does_not_contain": "1"})), ids(&["b", "c", "d"]));
    assert_eq!(ext(json!({"starts_with": "x"})), ids(&["a", "b"]));
    assert_eq!(ext(json!({"ends_with": "-1"})), ids(&["a"]));
    assert_eq!(ext(json!({"is_empty": true})), ids(&["c", "d"]));
    assert_eq!(ext(json!({"is_not_empty": true})), ids(&["a", "b"]));

    assert_eq!(
        kept("Name", "title", json!({"equals": "beta"})),
        ids(&["b"])
    );
    assert_eq!(
        kept("title", "title", json!({"starts_with": "G"})),
        ids(&["c"]),
        "by id"
    );
    assert_eq!(
        kept("Name", "title", json!({"is_empty": true})),
        ids(&["d"])
    );
    assert_eq!(
        kept("Site", "url", json!({"contains": "alpha"})),
        ids(&["a"])
    );
    assert_eq!(
        kept("Site", "url", json!({"is_empty": true})),
        ids(&["b", "c", "d"])
    );
    assert_eq!(
        kept("Mail", "email", json!({"ends_with": "@EXAMPLE.com"})),
        ids(&["a"])
    );
    assert_eq!(
        kept("Phone", "phone_number", json!({"equals": "+1 555"})),
        ids(&["b"])
    );
}

#[test]
fn number_conditions_compare_numerically() {
    let score = |c: Value| kept("Score", "number", c);
    assert_eq!(score(json!({"equals": 10})), ids(&["a"]));
    assert_eq!(score(json!({"equals": 10.0})), ids(&["a"]));
    assert_eq!(score(json!({"does_not_equal": 10})), ids(&["b", "c", "d"]));
    assert_eq!(score(json!({"greater_than": 2.5})), ids(&["a"]));
    assert_eq!(
        score(json!({"greater_than_or_equal_to": 2.5})),
        ids(&["a", "b"])
    );
    assert_eq!(score(json!({"less_than": 10})), ids(&["b"]));
    assert_eq!(
        score(json!({"less_than_or_equal_to": 10})),
        ids(&["a", "b"])
    );
    assert_eq!(
        score(json!({"is_empty": true})),
        ids(&["c", "d"]),
        "d's Score is text"
    );
    assert_eq!(score(json!({"is_not_empty": true})), ids(&["a", "b"]));
}

#[test]
fn select_status_and_list_conditions_compare_names() {
    let color = |c: Value| kept("Color", "select", c);
    assert_eq!(color(json!({"equals": "Red"})), ids(&["a"]));
    assert_eq!(color(json!({"equals": "red"})), ids(&[]));
    assert_eq!(
        color(json!({"does_not_equal": "Red"})),
        ids(&["b", "c", "d"])
    );
    assert_eq!(color(json!({"is_empty": true})), ids(&["c", "d"]));
    assert_eq!(color(json!({"is_not_empty": true})), ids(&["a", "b"]));
    assert_eq!(
        kept("Stage", "status", json!({"equals": "Doing"})),
        ids(&["b"])
    );

    let tags = |c: Value| kept("Tags", "multi_select", c);
    assert_eq!(tags(json!({"contains": "b"})), ids(&["a", "b"]));
    assert_eq!(
        tags(json!({"does_not_contain": "a"})),
        ids(&["b", "c", "d"])
    );
    assert_eq!(tags(json!({"is_empty": true})), ids(&["c", "d"]));
    assert_eq!(
        kept("Owner", "people", json!({"contains": "u1"})),
        ids(&["a"])
    );
    assert_eq!(
        kept("Owner", "people", json!({"is_empty": true})),
        ids(&["b", "c", "d"])
    );
    assert_eq!(
        kept("Files", "files", json!({"is_not_empty": true})),
        ids(&["a"])
    );
}

#[test]
fn checkbox_conditions_treat_a_missing_box_as_unchecked() {
    assert_eq!(
        kept("Done", "checkbox", json!({"equals": true})),
        ids(&["a"])
    );
    assert_eq!(
        kept("Done", "checkbox", json!({"equals": false})),
        ids(&["b", "c", "d"])
    );
    assert_eq!(
        kept("Done", "checkbox", json!({"does_not_equal": true})),
        ids(&["b", "c", "d"])
    );
    assert_eq!(
        kept("Done", "checkbox", json!({"does_not_equal": false})),
        ids(&["a"])
    );
}

#[test]
fn date_conditions_compare_days_or_instants() {
    let due = |c: Value| kept("Due", "date", c);
    // b's start, 2024-05-02T23:30-02:00, is 2024-05-03 in UTC.
    assert_eq!(due(json!({"equals": "2024-05-03"})), ids(&["b"]));
    assert_eq!(due(json!({"equals": "2024-05-02"})), ids(&[]));
    assert_eq!(due(json!({"before": "2024-05-03"})), ids(&["a"]));
    assert_eq!(due(json!({"on_or_before": "2024-05-03"})), ids(&["a", "b"]));
    assert_eq!(due(json!({"after": "2024-05-01"})), ids(&["b"]));
    assert_eq!(due(json!({"on_or_after": "2024-05-01"})), ids(&["a", "b"]));
    assert_eq!(due(json!({"equals": "2024-05-03T01:30:00Z"})), ids(&["b"]));
    assert_eq!(
        due(json!({"equals": "2024-05-03T03:30:00.000+02:00"})),
        ids(&["b"])
    );
    assert_eq!(
        due(json!({"equals": "2024-05-03T03:30:00.000+01:00"})),
        ids(&[])
    );
    assert_eq!(
        due(json!({"after": "2024-05-03T01:29:59.999Z"})),
        ids(&["b"])
    );
    assert_eq!(
        due(json!({"on_or_before": "2024-05-01T00:00:00Z"})),
        ids(&["a"]),
        "a date-only value starts at UTC midnight"
    );
    assert_eq!(due(json!({"is_empty": true})), ids(&["c", "d"]));
    assert_eq!(due(json!({"is_not_empty": true})), ids(&["a", "b"]));
}

#[test]
fn timestamp_conditions_read_created_and_last_edited_time() {
    let created = |c: Value| {
        run(json!({"filter": {"timestamp": "created_time", "created_time": c}})).unwrap()
    };
    assert_eq!(
        created(json!({"on_or_after": "2000-01-01"})),
        ids(&["a", "b", "c", "d"])
    );
    assert_eq!(created(json!({"equals": "2024-04-30"})), ids(&["d"]));
    assert_eq!(created(json!({"before": "2024-05-02"})), ids(&["a", "d"]));
    assert_eq!(
        created(json!({"after": "2024-05-02T00:00:00Z"})),
        ids(&["c"])
    );
    assert_eq!(
        created(json!({"on_or_after": "2024-05-01T02:00:00.000+02:00"})),
        ids(&["a", "b", "c"]),
        "d was made one millisecond earlier"
    );
    assert_eq!(created(json!({"is_empty": true})), ids(&[]));
    let edited = run(json!({"filter": {
        "timestamp": "last_edited_time",
        "type": "last_edited_time",
        "last_edited_time": {"on_or_after": "2024-05-07"},
    }}))
    .unwrap();
    assert_eq!(edited, ids(&["a", "d"]));
}

#[test]
fn relative_dates_count_from_today() {
    let edited = |condition: &str| {
        run(json!({"filter": {"timestamp": "last_edited_time", "last_edited_time": {condition: {}}}}))
            .unwrap()
    };
    // Today is Wednesday 2024-05-08; its week runs from Sunday 05-05 to Saturday 05-11.
    assert_eq!(edited("past_week"), ids(&["a", "b", "c", "d"]));
    assert_eq!(edited("this_week"), ids(&["a", "d"]));
    assert_eq!(edited("next_week"), ids(&["d"]));
    assert_eq!(edited("past_month"), ids(&["a", "b", "c", "d"]));
    assert_eq!(edited("next_year"), ids(&["d"]));
    let due = |condition: &str| kept("Due", "date", json!({condition: {}}));
    assert_eq!(due("past_week"), ids(&["a", "b"]));
    assert_eq!(due("next_month"), ids(&[]));
    assert_eq!(due("past_year"), ids(&["a", "b"]));
}

#[test]
fn compounds_combine_and_nest_two_levels() {
    let filter = json!({"and": [
        {"property": "External ID", "rich_text": {"equals": "x-2"}},
        {"timestamp": "created_time", "created_time": {"on_or_after": "2000-01-01"}},
    ]});
    assert_eq!(run(json!({"filter": filter})).unwrap(), ids(&["b"]));
    let filter = json!({"or": [
        {"property": "Score", "number": {"greater_than": 5}},
        {"and": [
            {"property": "Color", "select": {"is_empty": true}},
            {"property": "Name", "title": {"is_not_empty": true}},
        ]},
    ]});
    assert_eq!(run(json!({"filter": filter})).unwrap(), ids(&["a", "c"]));
    assert_eq!(
        run(json!({"filter": {"and": []}})).unwrap(),
        ids(&["a", "b", "c", "d"])
    );
    assert_eq!(
        run(json!({"filter": {"or": []}})).unwrap(),
        ids(&["a", "b", "c", "d"])
    );
    let two_deep = json!({"filter": {"and": [{"or": [
        {"property": "Done", "checkbox": {"equals": true}},
    ]}]}});
    assert_eq!(run(two_deep).unwrap(), ids(&["a"]));
    let three_deep = json!({"filter": {"and": [{"or": [{"and": []}]}]}});
    let error = run(three_deep).unwrap_err();
    assert!(
        error.contains("body.filter.and[0].or[0].and should be not present"),
        "{error}"
    );
}

#[test]
fn sorts_order_by_type_with_empties_last() {
    let sorted = |sorts: Value| run(json!({"sorts": sorts})).unwrap();
    assert_eq!(
        sorted(json!([{"property": "Score", "direction": "ascending"}])),
        ids(&["b", "a", "c", "d"])
    );
    assert_eq!(
        sorted(json!([{"property": "Score", "direction": "descending"}])),
        ids(&["a", "b", "c", "d"]),
        "empties last in both directions, stable among themselves"
    );
    assert_eq!(
        sorted(json!([{"property": "Name", "direction": "ascending"}])),
        ids(&["a", "b", "c", "d"]),
        "text ignores case: Alpha, beta, Gamma; the empty title last"
    );
    assert_eq!(
        sorted(json!([{"property": "Name", "direction": "descending"}])),
        ids(&["c", "b", "a", "d"])
    );
    assert_eq!(
        sorted(json!([{"property": "Due", "direction": "descending"}])),
        ids(&["b", "a", "c", "d"])
    );
    assert_eq!(
        sorted(json!([{"property": "Done", "direction": "ascending"}])),
        ids(&["b", "c", "d", "a"]),
        "unchecked first; a missing box is unchecked"
    );
    assert_eq!(
        sorted(json!([{"timestamp": "created_time", "direction": "ascending"}])),
        ids(&["d", "a", "b", "c"])
    );
    assert_eq!(
        sorted(json!([{"timestamp": "last_edited_time", "direction": "descending"}])),
        ids(&["d", "a", "c", "b"])
    );
    // Two keys: Tags (a,b / b / empty / empty), then created_time descending.
    assert_eq!(
        sorted(json!([
            {"property": "Tags", "direction": "ascending"},
            {"timestamp": "created_time", "direction": "descending"},
        ])),
        ids(&["a", "b", "c", "d"])
    );
    assert_eq!(
        sorted(json!([
            {"property": "Color", "direction": "ascending"},
            {"timestamp": "created_time", "direction": "ascending"},
        ])),
        ids(&["b", "a", "d", "c"]),
        "Blue, Red, then the empties by created_time"
    );
}

#[test]
fn filters_and_sorts_together() {
    let body = json!({
        "filter": {"or": [
            {"property": "External ID", "rich_text": {"equals": "x-1"}},
            {"property": "External ID", "rich_text": {"equals": "x-2"}},
        ]},
        "sorts": [{"property": "External ID", "direction": "descending"}],
    });
    assert_eq!(run(body).unwrap(), ids(&["b", "a"]));
}

#[test]
fn a_property_only_a_request_named_is_empty_on_every_row() {
    assert_eq!(kept("Later", "rich_text", json!({"equals": "x"})), ids(&[]));
    assert_eq!(
        kept("LLLL", "rich_text", json!({"is_empty": true})),
        ids(&["a", "b", "c", "d"])
    );
    assert_eq!(
        kept("Later", "number", json!({"is_empty": true})),
        ids(&["a", "b", "c", "d"]),
        "its type is not enforced"
    );
    let sorted = run(json!({"sorts": [{"property": "Later", "direction": "descending"}]}));
    assert_eq!(sorted.unwrap(), ids(&["a", "b", "c", "d"]));
}

#[test]
fn a_schema_property_filtered_as_another_type_is_rejected() {
    let error =
        run(json!({"filter": {"property": "Name", "rich_text": {"equals": "x"}}})).unwrap_err();
    assert_eq!(
        error,
        "database property title does not match filter rich_text"
    );
}

#[test]
fn invalid_filters_and_sorts_answer_validation_messages() {
    let cases = [
        (json!({"filter": []}), "body.filter should be an object"),
        (json!({"filter": {}}), "body.filter should have one of `property`, `timestamp`, `and` or `or`"),
        (json!({"filter": {"value": "page"}}), "should have one of `property`"),
        (
            json!({"filter": {"property": "Nope", "rich_text": {"equals": "x"}}}),
            "Could not find property with name or id: Nope.",
        ),
        (
            json!({"filter": {"property": "Score", "number": {"equals": "5"}}}),
            "body.filter.number.equals should be a number, instead was `\"5\"`.",
        ),
        (
            json!({"filter": {"property": "Score", "number": {"matches": 5}}}),
            "body.filter.number.matches is not a condition of a number filter",
        ),
        (
            json!({"filter": {"property": "Score", "number": {"equals": 1, "less_than": 2}}}),
            "body.filter.number should have exactly one condition",
        ),
        (json!({"filter": {"property": "Score", "number": {}}}), "exactly one condition"),
        (json!({"filter": {"property": "Score", "number": 5}}), "body.filter.number should be an object"),
        (json!({"filter": {"property": "Score", "number": {"is_empty": false}}}), "should be `true`"),
        (json!({"filter": {"property": "Score"}}), "exactly one filter type"),
        (
            json!({"filter": {"property": "Score", "number": {"is_empty": true}, "select": {"is_empty": true}}}),
            "exactly one filter type",
        ),
        (json!({"filter": {"property": "Score", "text": {"equals": "x"}}}), "body.filter.text is not a filter type"),
        (json!({"filter": {"property": "Score", "formula": {"string": {"equals": "x"}}}}), "not a filter type"),
        (json!({"filter": {"property": 5, "number": {"equals": 1}}}), "body.filter.property should be a string"),
        (
            json!({"filter": {"property": "Score", "type": "select", "number": {"equals": 1}}}),
            "body.filter.type should be `\"number\"`",
        ),
        (json!({"filter": {"property": "Done", "checkbox": {"equals": "yes"}}}), "should be a boolean"),
        (json!({"filter": {"property": "Color", "select": {"equals": 1}}}), "should be a string"),
        (json!({"filter": {"property": "Tags", "multi_select": {"equals": "a"}}}), "not a condition of a multi_select filter"),
        (
            json!({"filter": {"property": "Due", "date": {"after": "yesterday"}}}),
            "body.filter.date.after should be an ISO 8601 date or date-time, instead was `\"yesterday\"`.",
        ),
        (json!({"filter": {"property": "Due", "date": {"after": "2024-02-30"}}}), "ISO 8601"),
        (json!({"filter": {"property": "Due", "date": {"past_week": true}}}), "should be an empty object"),
        (json!({"filter": {"timestamp": "edited", "edited": {}}}), "body.filter.timestamp should be"),
        (json!({"filter": {"timestamp": "created_time"}}), "body.filter.created_time should be defined"),
        (
            json!({"filter": {"timestamp": "created_time", "last_edited_time": {"after": "2024-01-01"}}}),
            "body.filter.last_edited_time should be not present",
        ),
        (json!({"filter": {"and": {}}}), "body.filter.and should be an array"),
        (json!({"filter": {"and": [], "or": []}}), "body.filter.or should be not present beside `and`"),
        (json!({"filter": {"and": [5]}}), "body.filter.and[0] should be an object"),
        (
            json!({"filter": {"and": [{"property": "Nope", "title": {"is_empty": true}}]}}),
            "Could not find property with name or id: Nope.",
        ),
        (json!({"sorts": {}}), "body.sorts should be an array."),
        (json!({"sorts": [5]}), "body.sorts[0] should be an object"),
        (
            json!({"sorts": [{"property": "Nope", "direction": "ascending"}]}),
            "Could not find sort property with name or id: Nope.",
        ),
        (
            json!({"sorts": [{"property": "Name", "direction": "up"}]}),
            "body.sorts[0].direction should be `\"ascending\"` or `\"descending\"`, instead was `\"up\"`.",
        ),
        (json!({"sorts": [{"property": "Name"}]}), "body.sorts[0].direction should be defined"),
        (json!({"sorts": [{"direction": "ascending"}]}), "body.sorts[0].property should be defined"),
        (
            json!({"sorts": [{"property": "Name", "timestamp": "created_time", "direction": "ascending"}]}),
            "not both",
        ),
        (json!({"sorts": [{"timestamp": "now", "direction": "ascending"}]}), "body.sorts[0].timestamp should be"),
        (json!({"sorts": [{"property": "Name", "direction": "ascending", "x": 1}]}), "body.sorts[0].x should be not present"),
    ];
    for (body, expected) in cases {
        let error = run(body.clone()).expect_err(&body.to_string());
        assert!(error.contains(expected), "{body}: {error}");
        assert!(
            error.starts_with("body failed validation: ")
                || error.starts_with("Could not find ")
                || error.starts_with("database property "),
            "{error}"
        );
    }
    let many: Vec<Value> = (0..101).map(|_| json!({"and": []})).collect();
    let error = run(json!({"filter": {"or": many}})).unwrap_err();
    assert!(
        error.contains("body.filter.or.length should be ≤ `100`"),
        "{error}"
    );
    let long = "n".repeat(500);
    let error =
        run(json!({"filter": {"property": long, "title": {"is_empty": true}}})).unwrap_err();
    assert!(
        error.chars().count() < 200,
        "messages clip what they echo: {error}"
    );
}
