//! [`canonical_json`]: a read-only POST's JSON body in one canonical form (sorted keys, no
//! whitespace), so equal queries are sent alike and share a cache entry.

use serde_json::Value;

/// `bytes` re-serialised with sorted keys and no whitespace, or `None` when they are not JSON
/// or hold a number that is not a 64-bit integer (such a body is sent and keyed as it is, so
/// a number's text is never changed).
#[must_use]
pub fn canonical_json(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.is_empty() {
        return None;
    }
    let value: Value = serde_json::from_slice(bytes).ok()?;
    if has_float(&value) {
        return None;
    }
    serde_json::to_vec(&sorted(value)).ok()
}

/// `true` when a number might not survive a round trip text-for-text (floats, and integers
/// beyond 64 bits, which serde_json reads as floats).
pub(crate) fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let a = canonical_json(br#"{ "b": 1, "a": {"y": [ {"d":1,"c":2} ], "x": null} }"#).unwrap();
        let b = canonical_json(br#"{"a":{"x":null,"y":[{"c":2,"d":1}]},"b":1}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, br#"{"a":{"x":null,"y":[{"c":2,"d":1}]},"b":1}"#);
        assert_eq!(canonical_json(b"not json"), None);
        // Numbers whose text a round trip could change are left alone.
        assert_eq!(canonical_json(br#"{"n":123456789012345678901234}"#), None);
        assert_eq!(canonical_json(br#"{"n":1e3}"#), None);
        assert_eq!(
            canonical_json(br#"{"n":-9007199254740993}"#).unwrap(),
            br#"{"n":-9007199254740993}"#
        );
        assert_eq!(canonical_json(b""), None);
    }
}
