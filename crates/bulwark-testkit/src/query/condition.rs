//! The conditions of property and timestamp filters: which each filter type takes, their
//! validation, and how each tests a value.

use serde_json::Value;
use time::{Date, Duration, Month};

use super::value::{Val, When};
use super::{clip, invalid, listed};

/// The conditions a filter type takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    Text,
    Number,
    Checkbox,
    Select,
    Contains,
    Files,
    Date,
}

impl Family {
    fn conditions(self) -> &'static [&'static str] {
        match self {
            Self::Text => &[
                "equals",
                "does_not_equal",
                "contains",
                "does_not_contain",
                "starts_with",
                "ends_with",
                "is_empty",
                "is_not_empty",
            ],
            Self::Number => &[
                "equals",
                "does_not_equal",
                "greater_than",
                "less_than",
                "greater_than_or_equal_to",
                "less_than_or_equal_to",
                "is_empty",
                "is_not_empty",
            ],
            Self::Checkbox => &["equals", "does_not_equal"],
            Self::Select => &["equals", "does_not_equal", "is_empty", "is_not_empty"],
            Self::Contains => &["contains", "does_not_contain", "is_empty", "is_not_empty"],
            Self::Files => &["is_empty", "is_not_empty"],
            Self::Date => &[
                "equals",
                "before",
                "after",
                "on_or_before",
                "on_or_after",
                "is_empty",
                "is_not_empty",
                "past_week",
                "past_month",
                "past_year",
                "next_week",
                "next_month",
                "next_year",
                "this_week",
            ],
        }
    }
}

/// The filter types FakeNotion applies (the property type each matches is the same name).
pub(super) const FILTER_TYPES: &[(&str, Family)] = &[
    ("title", Family::Text),
    ("rich_text", Family::Text),
    ("url", Family::Text),
    ("email", Family::Text),
    ("phone_number", Family::Text),
    ("number", Family::Number),
    ("unique_id", Family::Number),
    ("checkbox", Family::Checkbox),
    ("select", Family::Select),
    ("status", Family::Select),
    ("multi_select", Family::Contains),
    ("people", Family::Contains),
    ("relation", Family::Contains),
    ("files", Family::Files),
    ("date", Family::Date),
    ("created_time", Family::Date),
    ("last_edited_time", Family::Date),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TextOp {
    Equals,
    DoesNotEqual,
    Contains,
    DoesNotContain,
    StartsWith,
    EndsWith,
}

impl TextOp {
    /// `equals` is case-sensitive; the others ignore case.
    fn test(self, text: &str, arg: &str) -> bool {
        let folded = || (text.to_lowercase(), arg.to_lowercase());
        match self {
            Self::Equals => text == arg,
            Self::DoesNotEqual => text != arg,
            Self::Contains => {
                let (text, arg) = folded();
                text.contains(&arg)
            }
            Self::DoesNotContain => {
                let (text, arg) = folded();
                !text.contains(&arg)
            }
            Self::StartsWith => {
                let (text, arg) = folded();
                text.starts_with(&arg)
            }
            Self::EndsWith => {
                let (text, arg) = folded();
                text.ends_with(&arg)
            }
        }
    }

    /// What an empty value gives: only the negative conditions hold.
    fn on_empty(self) -> bool {
        matches!(self, Self::DoesNotEqual | Self::DoesNotContain)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NumOp {
    Equals,
    DoesNotEqual,
    GreaterThan,
    LessThan,
    AtLeast,
    AtMost,
}

impl NumOp {
    fn test(self, value: f64, arg: f64) -> bool {
        match self {
            Self::Equals => value == arg,
            Self::DoesNotEqual => value != arg,
            Self::GreaterThan => value > arg,
            Self::LessThan => value < arg,
            Self::AtLeast => value >= arg,
            Self::AtMost => value <= arg,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DateOp {
    Equals,
    Before,
    After,
    OnOrBefore,
    OnOrAfter,
}

impl DateOp {
    fn test(self, page: When, arg: When) -> bool {
        let order = When::compare(page, arg);
        match self {
            Self::Equals => order.is_eq(),
            Self::Before => order.is_lt(),
            Self::After => order.is_gt(),
            Self::OnOrBefore => order.is_le(),
            Self::OnOrAfter => order.is_ge(),
        }
    }
}

/// One condition of a property or timestamp filter.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Cond {
    /// `is_empty: true` (`true`) or `is_not_empty: true` (`false`).
    Empty(bool),
    Text(TextOp, String),
    Number(NumOp, f64),
    /// A checkbox that must be this (`equals v`, or `does_not_equal !v`).
    Checked(bool),
    /// `equals` (`true`) or `does_not_equal` (`false`) an option name.
    Option(bool, String),
    /// `contains` (`true`) or `does_not_contain` (`false`) a name or an id.
    Has(bool, String),
    Date(DateOp, When),
    /// A relative condition (`past_week`, …) resolved against today: days, inclusive.
    Days(Date, Date),
}

impl Cond {
    /// Validates and parses the condition object `value` of a `kind` filter at `at`;
    /// relative dates count from `today`.
    pub(super) fn parse(
        family: Family,
        kind: &str,
        value: &Value,
        at: &str,
        today: Date,
    ) -> Result<Self, String> {
        let Some(obj) = value.as_object() else {
            return Err(invalid(at, "should be an object", value));
        };
        let mut entries = obj.iter();
        let (Some((name, arg)), None) = (entries.next(), entries.next()) else {
            return Err(format!(
                "body failed validation: {at} should have exactly one condition, one of {}.",
                listed(family.conditions().iter().copied())
            ));
        };
        if !family.conditions().contains(&name.as_str()) {
            return Err(format!(
                "body failed validation: {at}.{} is not a condition of a {kind} filter; use one of {}.",
                clip(name),
                listed(family.conditions().iter().copied())
            ));
        }
        let at = format!("{at}.{name}");
        let cond = match (family, name.as_str()) {
            (_, "is_empty") => {
                only_true(arg, &at)?;
                Self::Empty(true)
            }
            (_, "is_not_empty") => {
                only_true(arg, &at)?;
                Self::Empty(false)
            }
            (Family::Text, op) => {
                let op = match op {
                    "equals" => TextOp::Equals,
                    "does_not_equal" => TextOp::DoesNotEqual,
                    "contains" => TextOp::Contains,
                    "does_not_contain" => TextOp::DoesNotContain,
                    "starts_with" => TextOp::StartsWith,
                    _ => TextOp::EndsWith,
                };
                Self::Text(op, string(arg, &at)?)
            }
            (Family::Number, op) => {
                let op = match op {
                    "equals" => NumOp::Equals,
                    "does_not_equal" => NumOp::DoesNotEqual,
                    "greater_than" => NumOp::GreaterThan,
                    "less_than" => NumOp::LessThan,
                    "greater_than_or_equal_to" => NumOp::AtLeast,
                    _ => NumOp::AtMost,
                };
                let Some(n) = arg.as_f64() else {
                    return Err(invalid(&at, "should be a number", arg));
                };
                Self::Number(op, n)
            }
            (Family::Checkbox, op) => {
                let Some(b) = arg.as_bool() else {
                    return Err(invalid(&at, "should be a boolean", arg));
                };
                Self::Checked(if op == "equals" { b } else { !b })
            }
            (Family::Select, op) => Self::Option(op == "equals", string(arg, &at)?),
            // `files` takes only `is_empty` and `is_not_empty`, matched above.
            (Family::Contains | Family::Files, op) => {
                Self::Has(op == "contains", string(arg, &at)?)
            }
            (Family::Date, op) => match date_op(op) {
                Some(op) => {
                    let when = arg.as_str().and_then(When::parse).ok_or_else(|| {
                        invalid(&at, "should be an ISO 8601 date or date-time", arg)
                    })?;
                    Self::Date(op, when)
                }
                None => {
                    if arg.as_object().is_none_or(|o| !o.is_empty()) {
                        return Err(invalid(&at, "should be an empty object `{}`", arg));
                    }
                    let (first, last) = relative_days(op, today);
                    Self::Days(first, last)
                }
            },
        };
        Ok(cond)
    }

    /// Whether `value` passes.
    pub(super) fn test(&self, value: &Val) -> bool {
        match (self, value) {
            (Self::Empty(want), value) => value.is_empty() == *want,
            (Self::Text(op, arg), Val::Text(text)) => op.test(text, arg),
            (Self::Text(op, _), _) => op.on_empty(),
            (Self::Number(op, arg), Val::Number(n)) => op.test(*n, *arg),
            (Self::Number(op, _), _) => *op == NumOp::DoesNotEqual,
            (Self::Checked(want), Val::Bool(checked)) => checked == want,
            (Self::Checked(want), _) => !*want,
            (Self::Option(equal, name), Val::Names(names)) => names.contains(name) == *equal,
            (Self::Option(equal, _), _) => !*equal,
            (Self::Has(yes, item), Val::Names(items)) => items.contains(item) == *yes,
            (Self::Has(yes, _), _) => !*yes,
            (Self::Date(op, arg), Val::When(when)) => op.test(*when, *arg),
            (Self::Days(first, last), Val::When(when)) => (*first..=*last).contains(&when.day()),
            (Self::Date(..) | Self::Days(..), _) => false,
        }
    }
}

fn date_op(op: &str) -> Option<DateOp> {
    Some(match op {
        "equals" => DateOp::Equals,
        "before" => DateOp::Before,
        "after" => DateOp::After,
        "on_or_before" => DateOp::OnOrBefore,
        "on_or_after" => DateOp::OnOrAfter,
        _ => return None,
    })
}

/// The days a relative condition covers, both ends included: `past_*` from a week, month or
/// year before `today` to `today`, `next_*` from `today` to as far after, `this_week` the
/// Sunday-to-Saturday week of `today`.
fn relative_days(op: &str, today: Date) -> (Date, Date) {
    let days = |n: i64| today.checked_add(Duration::days(n)).unwrap_or(today);
    match op {
        "past_week" => (days(-7), today),
        "past_month" => (shift_months(today, -1), today),
        "past_year" => (shift_months(today, -12), today),
        "next_week" => (today, days(7)),
        "next_month" => (today, shift_months(today, 1)),
        "next_year" => (today, shift_months(today, 12)),
        _ => {
            let sunday = days(-i64::from(today.weekday().number_days_from_sunday()));
            let saturday = sunday.checked_add(Duration::days(6)).unwrap_or(sunday);
            (sunday, saturday)
        }
    }
}

/// `day` moved by `months` calendar months, its day of month clamped to the month's length.
fn shift_months(day: Date, months: i32) -> Date {
    let index = day.year() * 12 + i32::from(u8::from(day.month())) - 1 + months;
    let year = index.div_euclid(12);
    let month = u8::try_from(index.rem_euclid(12) + 1)
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .unwrap_or(Month::January);
    let dom = day.day().min(time::util::days_in_month(month, year));
    Date::from_calendar_date(year, month, dom).unwrap_or(day)
}

fn only_true(arg: &Value, at: &str) -> Result<(), String> {
    if arg == &Value::Bool(true) {
        Ok(())
    } else {
        Err(invalid(at, "should be `true`", arg))
    }
}

fn string(arg: &Value, at: &str) -> Result<String, String> {
    arg.as_str()
        .map(str::to_owned)
        .ok_or_else(|| invalid(at, "should be a string", arg))
}
