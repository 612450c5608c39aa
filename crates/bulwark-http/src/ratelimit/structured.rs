//! The IETF `RateLimit` and `RateLimit-Policy` fields: structured fields (RFC 8941/9651)
//! parsed with [`sfv`], never split by hand.
//!
//! * `RateLimit` (08+) is a list of policies, `"name";r=<remaining>;t=<reset>`; the earlier
//!   drafts' is a dictionary, `limit=100, remaining=0, reset=3`. A list is tried first.
//! * `RateLimit-Policy` (08+) is a list, `"name";q=<quota>;w=<window>`; the earlier drafts'
//!   items are the quota itself, `100;w=60`.
//!
//! Several lines of one field are one field (RFC 9110 §5.3). A field that is not a valid
//! structured field is ignored as a whole (RFC 9651 §4.2).

use std::time::Duration;

use http::{HeaderMap, HeaderName};
use sfv::{BareItem, Dictionary, Item, List, ListEntry, Parser, StringRef, TokenRef};

use super::{RateLimitInfo, RATELIMIT, RATELIMIT_POLICY};
use crate::retry_after::MAX_RETRY_AFTER;

/// One entry of `RateLimit`.
struct State<'a> {
    name: Option<&'a str>,
    remaining: Option<u64>,
    reset: Option<Duration>,
}

/// One entry of `RateLimit-Policy`.
struct Policy<'a> {
    name: Option<&'a str>,
    quota: Option<u64>,
    window: Option<Duration>,
}

/// Reads both fields (when the header scan found them) into `info`, over what is there;
/// `true` when either said anything.
pub(super) fn apply(
    info: &mut RateLimitInfo,
    headers: &HeaderMap,
    ratelimit: bool,
    policy: bool,
) -> bool {
    let states = if ratelimit {
        parse_list(headers, &RATELIMIT)
    } else {
        None
    };
    let binding = states.as_ref().and_then(binding);
    let mut any = false;
    if policy {
        let name = binding.as_ref().and_then(|state| state.name);
        if let Some(policy) = parse_list(headers, &RATELIMIT_POLICY)
            .as_ref()
            .and_then(|list| pick_policy(list, name))
        {
            any |= set(&mut info.limit, policy.quota);
            any |= set(&mut info.window, policy.window);
        }
    }
    if let Some(state) = binding {
        any |= set(&mut info.remaining, state.remaining);
        any |= set(&mut info.reset, state.reset);
    } else if ratelimit && states.is_none() {
        if let Some(dict) = parse_dictionary(headers, &RATELIMIT) {
            let member = |key: &str| match dict.get(key) {
                Some(ListEntry::Item(item)) => Some(&item.bare_item),
                _ => None,
            };
            any |= set(&mut info.limit, member("limit").and_then(count));
            any |= set(&mut info.remaining, member("remaining").and_then(count));
            any |= set(&mut info.reset, member("reset").and_then(secs));
        }
    }
    any
}

/// All lines of `name` as one list; `None` when any line is not a valid list.
fn parse_list(headers: &HeaderMap, name: &HeaderName) -> Option<List> {
    let mut list = List::new();
    for line in headers.get_all(name) {
        Parser::new(line.as_bytes())
            .parse_list_with_visitor(&mut list)
            .ok()?;
    }
    Some(list)
}

/// All lines of `name` as one dictionary (later keys win); `None` when any line is not valid.
fn parse_dictionary(headers: &HeaderMap, name: &HeaderName) -> Option<Dictionary> {
    let mut dict = Dictionary::new();
    for line in headers.get_all(name) {
        Parser::new(line.as_bytes())
            .parse_dictionary_with_visitor(&mut dict)
            .ok()?;
    }
    Some(dict)
}

fn items(list: &List) -> impl Iterator<Item = &Item> {
    list.iter().filter_map(|entry| match entry {
        ListEntry::Item(item) => Some(item),
        ListEntry::InnerList(_) => None,
    })
}

/// The policy with the least remaining (the first of equals; one that says how much is left
/// before one that does not).
fn binding(list: &List) -> Option<State<'_>> {
    items(list)
        .map(|item| State {
            name: policy_name(&item.bare_item),
            remaining: item.params.get("r").and_then(count),
            reset: item.params.get("t").and_then(secs),
        })
        .min_by_key(|state| (state.remaining.is_none(), state.remaining))
}

/// The policy named `name`, else the first unnamed one; with no name, the first policy.
fn pick_policy<'a>(list: &'a List, name: Option<&str>) -> Option<Policy<'a>> {
    let mut unnamed = None;
    for item in items(list) {
        let policy = Policy {
            name: policy_name(&item.bare_item),
            quota: item
                .params
                .get("q")
                .and_then(count)
                .or_else(|| count(&item.bare_item)),
            window: item.params.get("w").and_then(secs),
        };
        match (name, policy.name) {
            (None, _) => return Some(policy),
            (Some(wanted), Some(found)) if wanted == found => return Some(policy),
            (Some(_), None) if unnamed.is_none() => unnamed = Some(policy),
            _ => {}
        }
    }
    unnamed
}

/// A policy's name: a string (`"default"`) or a token (`default`).
fn policy_name(bare: &BareItem) -> Option<&str> {
    bare.as_string()
        .map(StringRef::as_str)
        .or_else(|| bare.as_token().map(TokenRef::as_str))
}

/// A non-negative integer.
fn count(bare: &BareItem) -> Option<u64> {
    u64::try_from(i64::from(bare.as_integer()?)).ok()
}

/// Non-negative seconds, an integer or a decimal rounded up, at most a year.
fn secs(bare: &BareItem) -> Option<Duration> {
    let secs = match (bare.as_integer(), bare.as_decimal()) {
        (Some(int), _) => u64::try_from(i64::from(int)).ok()?,
        (None, Some(dec)) => {
            let millis = u64::try_from(i64::from(dec.as_integer_scaled_1000())).ok()?;
            millis.div_ceil(1000)
        }
        (None, None) => return None,
    };
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// Overwrites `slot` with a value that is there; `true` when it was.
fn set<T>(slot: &mut Option<T>, value: Option<T>) -> bool {
    let some = value.is_some();
    if some {
        *slot = value;
    }
    some
}
