//! The tags pages, totals and the stats carry.
//!
//! A page's rows are the first `offset + limit` pets of its filter in id order, from
//! the `offset`-th on. A pet entering or leaving the filter (a create, a delete, a
//! species or age change) changes the rows of a **full** page only when its id is at
//! most the page's last id; beyond it, only the total changes, and totals are kept
//! apart (tag `counts`). So a full page carries "some pet with an id up to mine
//! changed" for its species (or all species), and a write names the pet's id:
//!
//! ids are grouped in buckets of [`BUCKET`]; the buckets `0..=b` of a page whose last
//! pet is in bucket `b` are covered by at most [`LEVELS`] aligned power-of-two blocks
//! (one per set bit of `b + 1`), and a pet's bucket lies in exactly one block of each
//! size. A page carries the tags of its blocks (`at:{species}:{size}:{block}`, `*` for
//! all species) and a write bumps the block of each size that holds its pet's bucket:
//! the page is invalidated exactly when the pet's bucket is one of its buckets, with
//! [`LEVELS`] tags per write and species, and one to [`LEVELS`] per page (one for the
//! first pages). A page that is not full (the last page, an empty one) or reaches past
//! the blocks carries its species' `tail` tag instead, which every such write bumps.
//!
//! Also here: what a write invalidates ([`WriteTags`]) and what a page carries for
//! its membership.

use cache::Tag;

/// Ids per bucket.
pub(super) const BUCKET: i64 = 128;
/// Block sizes: 1, 2, 4, … 2^(LEVELS - 1) buckets; buckets from 2^LEVELS on (ids
/// from 2^27 on) are past the blocks.
pub(super) const LEVELS: u32 = 20;

fn tag(name: String) -> Tag {
    // Species are validated by the API; a name the cache refuses would be a bug.
    Tag::new(name).expect("a valid tag")
}

fn scope(species: Option<&str>) -> &str {
    species.unwrap_or("*")
}

/// The bucket of `id`, when it is inside the blocks.
fn bucket(id: i64) -> Option<u64> {
    let b = u64::try_from(id.max(0) / BUCKET).ok()?;
    (b < 1 << LEVELS).then_some(b)
}

pub(super) fn pet(id: i64) -> Tag {
    tag(format!("pet:{id}"))
}

/// Every write that moves a pet into or out of `species`' lists (`None`: all).
pub(super) fn tail(species: Option<&str>) -> Tag {
    match species {
        Some(s) => tag(format!("species:{s}")),
        None => tag("pets:all".into()),
    }
}

/// What a write moving pet `id` into or out of `species`' lists bumps: the block of
/// each size holding its bucket (none past the blocks: those pages carry `tail`).
pub(super) fn at(species: Option<&str>, id: i64) -> Vec<Tag> {
    let Some(b) = bucket(id) else {
        return Vec::new();
    };
    let s = scope(species);
    (0..LEVELS)
        .map(|level| tag(format!("at:{s}:{level}:{}", b >> level)))
        .collect()
}

/// What a full page of `species` whose last pet is `last` carries: the blocks
/// covering buckets `0..=bucket(last)`, or `None` past the blocks.
pub(super) fn up_to(species: Option<&str>, last: i64) -> Option<Vec<Tag>> {
    let end = bucket(last)? + 1;
    if end >= 1 << LEVELS {
        return None;
    }
    let s = scope(species);
    Some(
        (0..LEVELS)
            .filter(|level| end & (1 << level) != 0)
            .map(|level| tag(format!("at:{s}:{level}:{}", (end >> level) - 1)))
            .collect(),
    )
}

pub(super) fn counts() -> Tag {
    tag("counts".into())
}

pub(super) fn stats() -> Tag {
    tag("stats".into())
}

/// The tags a write of a pet invalidates (see the module's table).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteTags(pub(super) Vec<Tag>);

impl WriteTags {
    /// A new pet of `species`, before it has an id: the pages of its species and the
    /// unfiltered ones that are not full (they would show it), the counts, the stats.
    /// Once the database gave it an id, [`Self::placed`] adds the full pages it lands
    /// before.
    #[must_use]
    pub fn created(species: &str) -> Self {
        Self(vec![tail(Some(species)), tail(None), counts(), stats()])
    }

    /// The full pages of `species` and the unfiltered ones whose last pet's id is at
    /// least `id`: the pages a pet `id` entering or leaving those lists shifts.
    #[must_use]
    pub fn placed(id: i64, species: &str) -> Self {
        let mut t = at(Some(species), id);
        t.extend(at(None, id));
        Self(t)
    }

    /// Pet `id` deleted (it was of `species`): the pages showing it or after it, and as
    /// [`Self::created`].
    #[must_use]
    pub fn deleted(id: i64, species: &str) -> Self {
        let mut t = Self::created(species);
        t.0.push(pet(id));
        t.0.extend(Self::placed(id, species).0);
        t
    }

    /// Pet `id` changed from `before` (species, age, happiness) to `after`.
    #[must_use]
    pub fn changed(id: i64, before: (&str, i32, i32), after: (&str, i32, i32)) -> Self {
        let mut t = vec![pet(id)];
        if before.0 != after.0 || before.1 != after.1 {
            // It may leave the lists of its old species (or age range) and enter those
            // of the new: the pages from its place on, and those not full.
            t.extend([
                tail(Some(before.0)),
                tail(Some(after.0)),
                tail(None),
                counts(),
            ]);
            t.extend(at(Some(before.0), id));
            t.extend(at(Some(after.0), id));
            t.extend(at(None, id));
        }
        if before != after {
            t.push(stats());
        }
        t.sort();
        t.dedup();
        Self(t)
    }

    /// Pet `id` renamed, or its happiness changed (`happiness`): the pages showing it,
    /// and the stats for a happiness change.
    #[must_use]
    pub fn touched(id: i64, happiness: bool) -> Self {
        let mut t = vec![pet(id)];
        if happiness {
            t.push(stats());
        }
        Self(t)
    }

    /// The tags.
    #[must_use]
    pub fn tags(&self) -> &[Tag] {
        &self.0
    }
}

/// What a page showing the pets `ids` (in id order) of `species` (`None`: all), `limit`
/// at most, carries for its membership: the blocks up to its last pet when it is full,
/// else its species' tail.
pub(super) fn membership_tags(species: Option<&str>, limit: u64, ids: &[i64]) -> Vec<Tag> {
    let full = u64::try_from(ids.len()).is_ok_and(|n| n == limit);
    match ids
        .last()
        .filter(|_| full)
        .and_then(|&last| up_to(species, last))
    {
        Some(blocks) => blocks,
        None => vec![tail(species)],
    }
}
