//! The species rule, once: what a user may type, and the one form it is stored and
//! compared in.
//!
//! Accepted: Latin letters, accented ones included (`A–Z`, `a–z`, U+00C0–U+024F
//! without `×` and `÷`), in words joined by spaces, a hyphen or an apostrophe, with
//! spaces around; at most [`Species::MAX_CHARS`] characters as typed. So `"Guinea pig"`,
//! `" bearded-dragon "`, `"Perroquet gris d'Afrique"` and `"Bichon Frisé"` pass; digits,
//! control characters, tabs, `"--"` and empty values do not.
//!
//! Stored and compared: trimmed, runs of spaces made one, lower-cased (Unicode
//! lowercase): `"  Guinea   Pig "` is `"guinea pig"`, and `?species=GUINEA%20PIG`
//! finds it. Every value the old rule (`[a-z]{1,32}`) allowed is already in that form,
//! so stored rows need no migration.
//!
//! The spec states the rule as `pattern` and `maxLength` (see [`Species::PATTERN`]); the
//! check here is the same rule by hand, without compiling a regex per request.

use std::borrow::Cow;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{
    ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type,
};
use serde_json::Value;

/// A species as a user typed it, in its normalised form.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Species(String);

impl Species {
    /// The most characters (Unicode scalar values) a species may have as typed.
    pub const MAX_CHARS: usize = 40;

    /// The rule as the spec publishes it (ECMA-262 and Python `re` read it alike).
    pub const PATTERN: &'static str = "^ *[A-Za-z\\u00C0-\\u00D6\\u00D8-\\u00F6\\u00F8-\\u024F]+(?:(?: +|-|')[A-Za-z\\u00C0-\\u00D6\\u00D8-\\u00F6\\u00F8-\\u024F]+)* *$";

    /// What [`Self::parse`] says about a value it refuses.
    pub const RULE: &'static str = "a species is 1-40 characters: letters (accents welcome) in words joined by spaces, a hyphen or an apostrophe";

    /// The species `text` names, normalised, or why it is not one.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.chars().count() > Self::MAX_CHARS {
            return Err(format!("too long: {}", Self::RULE));
        }
        if !Self::is_valid(text) {
            return Err(Self::RULE.to_owned());
        }
        Ok(Self::normalised(text))
    }

    fn normalised(text: &str) -> Self {
        let mut out = String::with_capacity(text.len());
        // `str::is_empty` by name: poem-openapi's `Type` (in scope) has an `is_empty` of its
        // own for `&str` that method lookup would pick first.
        for word in text.split(' ').filter(|w| !str::is_empty(w)) {
            if !out.is_empty() {
                out.push(' ');
            }
            out.extend(word.chars().flat_map(char::to_lowercase));
        }
        Self(out)
    }

    /// Whether `text` follows [`Self::PATTERN`] (the length is checked apart).
    #[must_use]
    pub fn is_valid(text: &str) -> bool {
        let inner = text.trim_matches(' ');
        let mut prev_letter = false;
        let mut prev_space = false;
        for c in inner.chars() {
            if is_letter(c) {
                prev_letter = true;
                prev_space = false;
            } else if c == ' ' && (prev_letter || prev_space) {
                // A run of spaces is one separator.
                prev_letter = false;
                prev_space = true;
            } else if (c == '-' || c == '\'') && prev_letter {
                prev_letter = false;
            } else {
                return false;
            }
        }
        prev_letter
    }

    /// The normalised text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The normalised text, owned.
    #[must_use]
    pub fn into_string(self) -> String {
        self.0
    }
}

fn is_letter(c: char) -> bool {
    c.is_ascii_alphabetic()
        || matches!(c, '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{24F}')
}

/// Code that names a species itself (seeding, tests): normalised, not checked; input
/// from outside goes through [`Species::parse`].
impl From<&str> for Species {
    fn from(text: &str) -> Self {
        Self::normalised(text)
    }
}

impl From<Species> for String {
    fn from(s: Species) -> Self {
        s.0
    }
}

impl Type for Species {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string(species)".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            min_length: Some(1),
            max_length: Some(Self::MAX_CHARS),
            pattern: Some(Self::PATTERN.to_owned()),
            ..MetaSchema::new("string")
        }))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromJSON for Species {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(s)) => Self::parse(&s).map_err(ParseError::custom),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl ParseFromParameter for Species {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Self::parse(value).map_err(ParseError::custom)
    }
}

impl ToJSON for Species {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> Option<String> {
        Species::parse(s).ok().map(Species::into_string)
    }

    #[test]
    fn what_users_type_is_accepted_and_normalised() {
        assert_eq!(norm("cat").as_deref(), Some("cat"));
        assert_eq!(norm("  Guinea   Pig ").as_deref(), Some("guinea pig"));
        assert_eq!(norm("bearded-dragon").as_deref(), Some("bearded-dragon"));
        assert_eq!(norm("Bichon Frisé").as_deref(), Some("bichon frisé"));
        assert_eq!(norm("ÉCUREUIL").as_deref(), Some("écureuil"));
        assert_eq!(
            norm("Perroquet gris d'Afrique").as_deref(),
            Some("perroquet gris d'afrique")
        );
        assert_eq!(norm(&"a".repeat(40)).map(|s| s.len()), Some(40));
    }

    #[test]
    fn everything_else_is_refused() {
        for bad in [
            "",
            " ",
            "0",
            "cat2",
            "cat\n",
            "ca\tt",
            "cat\u{7f}",
            "-cat",
            "cat-",
            "ca--t",
            "ca -t",
            "ca'",
            "×",
            "caté÷",
            "猫",
            "кот",
            "cat_",
            "c.a.t",
        ] {
            assert!(Species::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Species::parse(&"a".repeat(41)).is_err());
        assert!(Species::parse(&format!(" {} ", "a".repeat(39))).is_err());
    }
}
