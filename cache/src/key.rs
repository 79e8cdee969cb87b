//! Cache keys: one builder, a documented format, bounded length, no raw user input.
//!
//! # Format
//!
//! ```text
//! {prefix}:{namespace}[:v{version}]:id:{integer}      an entity by id
//! {prefix}:{namespace}[:v{version}]:q:{xxh3-128 hex}  a query by its parameters
//! ```
//!
//! `prefix` (the application) and `namespace` (the kind of data) are validated once:
//! 1–32 characters of `a-z 0-9 _ - .`. Query parameters never appear in the key: they
//! are sorted by name, encoded with their type and length, and hashed with xxh3-128, so
//! `species=cat&min_age=3` and `min_age=3&species=cat` give the same key, `"3"` and `3`
//! do not, and a key is at most ~110 bytes whatever the input.

use std::fmt;
use std::sync::Arc;

use xxhash_rust::xxh3::Xxh3;

use crate::CacheError;

const MAX_SEGMENT: usize = 32;

fn validate(what: &str, s: &str) -> Result<(), CacheError> {
    let ok = !s.is_empty()
        && s.len() <= MAX_SEGMENT
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(CacheError::Config(format!(
            "{what} {s:?} must be 1-{MAX_SEGMENT} characters of a-z, 0-9, '_', '-', '.'"
        )))
    }
}

/// A finished cache key; made only by [`Namespace`], so its format always holds.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(Arc<str>);

impl Key {
    /// A key received from another instance (the backplane); never from user input.
    pub(crate) fn from_wire(s: &str) -> Self {
        Self(s.into())
    }

    /// The key as stored in every tier.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The root of the key's namespace (`{prefix}:{namespace}`), and the namespace
    /// version the key was made at, if it has one (see the format above).
    pub(crate) fn root_and_version(&self) -> (&str, Option<u64>) {
        let s = self.as_str();
        let mut colons = s.match_indices(':').map(|(i, _)| i);
        let (Some(second), third) = (colons.nth(1), colons.next()) else {
            return (s, None);
        };
        let root = &s[..second];
        let segment = &s[second + 1..third.unwrap_or(s.len())];
        let version = segment
            .strip_prefix('v')
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse().ok());
        (root, version)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.0)
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A tag an entry can carry (`pet:42`, `species:cat`). Invalidating a tag makes every
/// entry that carries it unreachable at once, in every tier and every instance.
///
/// 1–100 bytes, no control characters, not starting with `_`; names are never part of
/// a key, so user data is fine in them.
///
/// ```
/// use cache::Tag;
/// assert_eq!(Tag::new("species:guinea pig").unwrap().as_str(), "species:guinea pig");
/// assert!(Tag::new("").is_err() && Tag::new("a\nb").is_err() && Tag::new("_x").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(Arc<str>);

impl Tag {
    /// The longest tag name, in bytes.
    pub const MAX_LEN: usize = 100;

    /// A tag named `name`.
    pub fn new(name: impl AsRef<str>) -> Result<Self, CacheError> {
        let name = name.as_ref();
        if name.is_empty()
            || name.len() > Self::MAX_LEN
            || name.starts_with('_')
            || name.chars().any(char::is_control)
        {
            return Err(CacheError::Config(format!(
                "tag {name:?} must be 1-{} bytes without control characters, not starting with '_'",
                Self::MAX_LEN
            )));
        }
        Ok(Self(name.into()))
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({})", self.0)
    }
}

/// The root of every key of one application.
///
/// ```
/// use cache::{KeyBuilder, Params};
///
/// let keys = KeyBuilder::new("petshop").unwrap();
/// let pets = keys.namespace("pet").unwrap();
/// assert_eq!(pets.id(42).as_str(), "petshop:pet:id:42");
///
/// let a = pets.query(&Params::new().with("species", "cat").with("min_age", 3));
/// let b = pets.query(&Params::new().with("min_age", 3).with("species", "cat"));
/// assert_eq!(a, b);
/// assert!(a.as_str().starts_with("petshop:pet:q:"));
/// assert_eq!(pets.versioned(7).id(1).as_str(), "petshop:pet:v7:id:1");
/// assert!(KeyBuilder::new("Pet Shop!").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyBuilder {
    prefix: Arc<str>,
}

impl KeyBuilder {
    /// A builder for keys under `prefix` (1–32 characters of `a-z 0-9 _ - .`).
    pub fn new(prefix: &str) -> Result<Self, CacheError> {
        validate("key prefix", prefix)?;
        Ok(Self {
            prefix: prefix.into(),
        })
    }

    /// The application prefix.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A namespace (a kind of data) under this prefix.
    pub fn namespace(&self, name: &str) -> Result<Namespace, CacheError> {
        validate("key namespace", name)?;
        let root: Arc<str> = format!("{}:{}", self.prefix, name).into();
        Ok(Namespace {
            name: name.into(),
            base: root.clone(),
            root,
        })
    }
}

/// A kind of data under an application prefix, optionally at a version.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Namespace {
    name: Arc<str>,
    /// `{prefix}:{namespace}`, without a version.
    root: Arc<str>,
    /// `root` or `root:v{version}`.
    base: Arc<str>,
}

impl Namespace {
    /// The namespace's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `{prefix}:{namespace}`, whatever the version: names the namespace on the wire.
    #[must_use]
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The common start of every key of this namespace (at this version), ending in `:`.
    #[must_use]
    pub fn key_prefix(&self) -> String {
        format!("{}:", self.base)
    }

    /// The same namespace at `version`: keys gain a `:v{version}` segment.
    #[must_use]
    pub fn versioned(&self, version: u64) -> Self {
        Self {
            name: self.name.clone(),
            root: self.root.clone(),
            base: format!("{}:v{version}", self.root).into(),
        }
    }

    /// The key of one entity by its integer id.
    #[must_use]
    pub fn id(&self, id: i64) -> Key {
        Key(format!("{}:id:{id}", self.base).into())
    }

    /// The key of a query: a hash of its canonical parameters.
    #[must_use]
    pub fn query(&self, params: &Params) -> Key {
        Key(format!("{}:q:{:032x}", self.base, params.digest()).into())
    }

    /// The key of a parameterless query or aggregate, by a fixed name (validated like a namespace).
    pub fn fixed(&self, name: &str) -> Result<Key, CacheError> {
        validate("fixed key name", name)?;
        Ok(Key(format!("{}:f:{name}", self.base).into()))
    }

    /// True when `key` belongs to this namespace at this version.
    #[must_use]
    pub fn contains(&self, key: &Key) -> bool {
        key.as_str().strip_prefix(&*self.base).is_some_and(|rest| {
            rest.starts_with(":id:") || rest.starts_with(":q:") || rest.starts_with(":f:")
        })
    }
}

/// One typed parameter value of a query key.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ParamValue {
    /// An absent optional parameter.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    UInt(u64),
    /// A float (`-0.0` and `0.0` hash alike).
    Float(f64),
    /// A string, hashed, never stored raw.
    Str(String),
}

macro_rules! from_int {
    ($variant:ident, $($t:ty),*) => {$(
        impl From<$t> for ParamValue {
            fn from(v: $t) -> Self { Self::$variant(v.into()) }
        }
    )*};
}
from_int!(Int, i8, i16, i32, i64);
from_int!(UInt, u8, u16, u32, u64);

impl From<bool> for ParamValue {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}
impl From<f64> for ParamValue {
    fn from(v: f64) -> Self {
        Self::Float(v)
    }
}
impl From<&str> for ParamValue {
    fn from(v: &str) -> Self {
        Self::Str(v.to_owned())
    }
}
impl From<String> for ParamValue {
    fn from(v: String) -> Self {
        Self::Str(v)
    }
}
impl<T: Into<ParamValue>> From<Option<T>> for ParamValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// The parameters of a query, in any order; [`Namespace::query`] canonicalises them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params {
    items: Vec<(&'static str, ParamValue)>,
}

impl Params {
    /// No parameters.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the parameter `name`.
    #[must_use]
    pub fn with(mut self, name: &'static str, value: impl Into<ParamValue>) -> Self {
        let value = value.into();
        match self.items.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.items.push((name, value)),
        }
        self
    }

    fn digest(&self) -> u128 {
        let mut sorted: Vec<_> = self.items.iter().collect();
        sorted.sort_by_key(|(n, _)| *n);
        let mut h = Xxh3::new();
        for (name, value) in sorted {
            h.update(&(name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            match value {
                ParamValue::Null => h.update(&[0]),
                ParamValue::Bool(b) => h.update(&[1, u8::from(*b)]),
                ParamValue::Int(i) => {
                    h.update(&[2]);
                    h.update(&i.to_le_bytes());
                }
                ParamValue::UInt(u) => {
                    h.update(&[3]);
                    h.update(&u.to_le_bytes());
                }
                ParamValue::Float(f) => {
                    let f = if *f == 0.0 { 0.0 } else { *f };
                    h.update(&[4]);
                    h.update(&f.to_bits().to_le_bytes());
                }
                ParamValue::Str(s) => {
                    h.update(&[5]);
                    h.update(&(s.len() as u64).to_le_bytes());
                    h.update(s.as_bytes());
                }
            }
        }
        h.digest128()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pets() -> Namespace {
        KeyBuilder::new("app").unwrap().namespace("pet").unwrap()
    }

    #[test]
    fn parameter_order_does_not_change_the_key_but_types_and_values_do() {
        let ns = pets();
        let a = ns.query(&Params::new().with("a", 1).with("b", "x"));
        let b = ns.query(&Params::new().with("b", "x").with("a", 1));
        assert_eq!(a, b);
        assert_ne!(a, ns.query(&Params::new().with("a", "1").with("b", "x")));
        assert_ne!(a, ns.query(&Params::new().with("a", 2).with("b", "x")));
        assert_ne!(
            ns.query(&Params::new().with("a", None::<i64>)),
            ns.query(&Params::new())
        );
    }

    #[test]
    fn length_prefixes_prevent_concatenation_collisions() {
        let ns = pets();
        let a = ns.query(&Params::new().with("a", "bc").with("d", ""));
        let b = ns.query(&Params::new().with("a", "b").with("d", "c"));
        assert_ne!(a, b);
    }

    #[test]
    fn hostile_input_never_reaches_the_key_and_length_is_bounded() {
        let ns = pets();
        let evil = "x\r\n*1\r\n$8\r\nFLUSHALL\r\n".repeat(1000);
        let k = ns
            .versioned(u64::MAX)
            .query(&Params::new().with("species", evil.as_str()));
        assert!(!k.as_str().contains("FLUSHALL"));
        assert!(k.as_str().len() < 120, "{}", k.as_str().len());
    }

    #[test]
    fn bad_prefixes_and_namespaces_are_rejected_with_a_reason() {
        assert!(KeyBuilder::new("").is_err());
        assert!(KeyBuilder::new(&"a".repeat(33)).is_err());
        let err = KeyBuilder::new("a b").unwrap_err().to_string();
        assert!(err.contains("a-z"), "{err}");
        assert!(KeyBuilder::new("app").unwrap().namespace("Pet").is_err());
    }

    #[test]
    fn versions_replace_each_other_and_namespaces_recognise_their_keys() {
        let ns = pets();
        let videos = KeyBuilder::new("app").unwrap().namespace("videos").unwrap();
        assert_eq!(videos.versioned(3).id(1).as_str(), "app:videos:v3:id:1");
        let v1 = ns.versioned(1);
        let v2 = v1.versioned(2);
        assert_eq!(v2.id(5).as_str(), "app:pet:v2:id:5");
        assert!(v2.contains(&v2.id(5)));
        assert!(!v2.contains(&v1.id(5)));
        assert!(!ns.contains(&v1.id(5)));
        assert!(ns.contains(&ns.fixed("stats").unwrap()));
    }

    #[test]
    fn a_key_names_its_namespace_root_and_version() {
        let ns = pets();
        assert_eq!(ns.id(5).root_and_version(), ("app:pet", None));
        assert_eq!(
            ns.versioned(42).id(5).root_and_version(),
            ("app:pet", Some(42))
        );
        let q = ns.versioned(7).query(&Params::new().with("v", 1));
        assert_eq!(q.root_and_version(), ("app:pet", Some(7)));
        assert_eq!(
            ns.fixed("stats").unwrap().root_and_version(),
            ("app:pet", None)
        );
        // A namespace may itself start with a "v": only v{digits} is a version.
        let v = KeyBuilder::new("app").unwrap().namespace("videos").unwrap();
        assert_eq!(v.id(1).root_and_version(), ("app:videos", None));
    }
}
