//! One HTTP exchange of a workload and its book-keeping: the request a call becomes,
//! where it goes (reads and writes may go to different addresses), and what its answer
//! tells the run (the write log, created and shown pets, stale checks).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use hyper::Method;
use rand::Rng;
use rand::rngs::SmallRng;

use crate::http::{HttpConn, Response};
use crate::outcome::{LoadResult, record};
use crate::staleness::{Checked, Freshness, WriteLog};
use crate::workload::{Call, Change, PetRef, Population, Workload};

/// A workload over HTTP.
#[derive(Clone, Debug)]
pub struct HttpTarget {
    /// Where reads go (and writes, unless [`Self::write_addr`] says otherwise).
    pub addr: SocketAddr,
    /// Where writes go when not to `addr`: the app behind a proxy that reads go through.
    pub write_addr: Option<SocketAddr>,
    /// Queries and ids to draw from.
    pub population: Arc<Population>,
    /// The workload.
    pub workload: Workload,
    /// Write log and created pets, shared by the workers (and across runs of one service).
    pub state: Arc<MixState>,
}

impl HttpTarget {
    /// `workload` against `addr`, reads and writes alike.
    #[must_use]
    pub fn new(
        addr: SocketAddr,
        population: Arc<Population>,
        workload: Workload,
        state: Arc<MixState>,
    ) -> Self {
        Self {
            addr,
            write_addr: None,
            population,
            workload,
            state,
        }
    }
}

/// Ids of pets list pages showed lately, the pets a mix's "shown" `PATCH`es pick.
const SHOWN_KEPT: usize = 256;

/// State the workers of a mixed workload share.
#[derive(Debug, Default)]
pub struct MixState {
    /// Acknowledged writes, for stale-read detection.
    pub log: WriteLog,
    /// Pets this run created, the only ones it deletes.
    pub created: Mutex<Vec<i64>>,
    /// Pets list pages showed lately (a ring of [`SHOWN_KEPT`]).
    shown: Mutex<VecDeque<i64>>,
    names: AtomicU64,
    /// The next index of a sweep.
    sweep: AtomicU64,
    /// The next index of a priming run.
    prime: AtomicU64,
}

impl MixState {
    fn remember_shown(&self, ids: impl Iterator<Item = i64>) {
        let mut shown = self.shown.lock().expect("poisoned");
        for id in ids {
            if shown.len() == SHOWN_KEPT {
                shown.pop_front();
            }
            shown.push_back(id);
        }
    }

    fn pick_shown(&self, rng: &mut SmallRng) -> Option<i64> {
        let shown = self.shown.lock().expect("poisoned");
        (!shown.is_empty()).then(|| shown[rng.random_range(0..shown.len())])
    }
}

/// A worker's connections: reads, and writes when they go elsewhere.
pub(crate) struct Conns {
    read: HttpConn,
    write: Option<HttpConn>,
}

impl Conns {
    /// The connections of one worker aimed at `t`.
    pub(crate) fn new(t: &HttpTarget) -> Self {
        Self {
            read: HttpConn::new(t.addr),
            write: t.write_addr.map(HttpConn::new),
        }
    }
}

/// Turns the calls that depend on what the run did so far into concrete ones.
fn resolve(call: Call, t: &HttpTarget, rng: &mut SmallRng) -> Call {
    let state = &t.state;
    match call {
        Call::DeleteCreated => {
            let picked = state.created.lock().expect("poisoned").pop();
            picked.map_or(Call::Create("cat"), Call::Delete)
        }
        Call::NextPrime => t.population.prime(state.prime.fetch_add(1, Relaxed)),
        Call::NextPet => {
            let n = state.sweep.fetch_add(1, Relaxed);
            let pets = t.population.pets().max(1) as u64;
            Call::GetPet(i64::try_from(n % pets + 1).unwrap_or(1))
        }
        Call::Patch {
            pet: PetRef::Shown(fallback),
            change,
        } => Call::Patch {
            // Seeded pets only: a shown pet the run created may be deleted by now.
            pet: PetRef::Id(
                state
                    .pick_shown(rng)
                    .filter(|id| *id <= i64::try_from(t.population.pets()).unwrap_or(i64::MAX))
                    .unwrap_or(fallback),
            ),
            change,
        },
        other => other,
    }
}

fn request(call: &Call, state: &MixState, rng: &mut SmallRng) -> (Method, String, Option<Bytes>) {
    let json = |v: serde_json::Value| Some(Bytes::from(v.to_string()));
    match call {
        Call::List(q) => (Method::GET, q.clone(), None),
        Call::GetPet(id) => (Method::GET, format!("/pets/{id}"), None),
        Call::Stats => (Method::GET, "/stats".to_owned(), None),
        Call::Health => (Method::GET, "/health".to_owned(), None),
        Call::Bare => (Method::GET, crate::workload::bare_path(), None),
        Call::Delete(id) => (Method::DELETE, format!("/pets/{id}"), None),
        Call::Patch { pet, change } => {
            let id = match pet {
                PetRef::Id(id) | PetRef::Shown(id) => id,
            };
            let body = match change {
                Change::Happiness(h) => serde_json::json!({ "happiness": h }),
                Change::Name => serde_json::json!({
                    "name": format!("renamed-{}", state.names.fetch_add(1, Relaxed))
                }),
                Change::Species(s) => serde_json::json!({ "species": s }),
                Change::Age(a) => serde_json::json!({ "age": a }),
            };
            (Method::PATCH, format!("/pets/{id}"), json(body))
        }
        Call::Create(species) => {
            let n = state.names.fetch_add(1, Relaxed);
            let body = serde_json::json!({
                "name": format!("bench-{n}"),
                "species": species,
                "age": rng.random_range(0..15),
                "happiness": rng.random_range(0..=100),
            });
            (Method::POST, "/pets".to_owned(), json(body))
        }
        Call::DeleteCreated | Call::NextPet | Call::NextPrime => {
            unreachable!("resolved before sending")
        }
    }
}

/// Sends `call` (resolved against what the run did so far) and books its answer.
pub(crate) async fn http_call(
    conns: &mut Conns,
    call: Call,
    t: &HttpTarget,
    rng: &mut SmallRng,
    out: &mut LoadResult,
) {
    let state = &t.state;
    let call = resolve(call, t, rng);
    let (method, path, body) = request(&call, state, rng);
    let conn = match (&mut conns.write, call.is_write()) {
        (Some(w), true) => w,
        _ => &mut conns.read,
    };
    let started = Instant::now();
    out.requests += 1;
    if call.is_write() {
        out.writes += 1;
        if call.changes_lists() {
            out.list_writes += 1;
        }
    }
    let resp = match conn.send(method.clone(), &path, body).await {
        Ok(r) => r,
        Err(e) => {
            out.error(format!("{method} {path}: {e:#}"));
            return;
        }
    };
    let acked = Instant::now();
    if !resp.status.is_success() {
        out.error(format!(
            "{method} {path}: {} {}",
            resp.status,
            String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)])
        ));
        return;
    }
    record(out, started);
    out.x_cache.add(resp.x_cache.as_deref());
    follow_up(&call, &resp, t.workload, state, started, acked, out);
}

fn tally(out: &mut LoadResult, checked: Checked) {
    if let Some(window) = checked.backwards {
        out.backwards_reads += 1;
        out.worst_backwards = out.worst_backwards.max(window);
    }
    match checked.freshness {
        Freshness::Stale(window) => {
            out.stale_reads += 1;
            out.checked_reads += 1;
            out.worst_stale = out.worst_stale.max(window);
        }
        Freshness::Fresh => out.checked_reads += 1,
        Freshness::Unchecked => {}
    }
}

/// Book-keeping after a successful call: the write log, created and shown ids, stale
/// checks of pets and of list pages.
fn follow_up(
    call: &Call,
    resp: &Response,
    workload: Workload,
    state: &MixState,
    started: Instant,
    acked: Instant,
    out: &mut LoadResult,
) {
    match call {
        Call::GetPet(id) => {
            if let Some(updated) = pet_field(&resp.body, "updated_at") {
                tally(out, state.log.check_read(*id, started, acked, &updated));
            }
        }
        Call::List(_) if matches!(workload, Workload::Mix { .. }) => {
            let pets = page_pets(&resp.body);
            state.remember_shown(pets.iter().map(|(id, _)| *id));
            if state.log.is_empty() {
                return;
            }
            // A page is stale (or went back) when any pet on it is; its window is the
            // worst of them.
            let mut page = Checked {
                freshness: Freshness::Unchecked,
                backwards: None,
            };
            for (id, updated) in &pets {
                let pet = state.log.check_read(*id, started, acked, updated);
                page.freshness = match (page.freshness, pet.freshness) {
                    (Freshness::Stale(a), Freshness::Stale(b)) => Freshness::Stale(a.max(b)),
                    (Freshness::Stale(a), _) | (_, Freshness::Stale(a)) => Freshness::Stale(a),
                    (Freshness::Fresh, _) | (_, Freshness::Fresh) => Freshness::Fresh,
                    _ => Freshness::Unchecked,
                };
                page.backwards = page.backwards.max(pet.backwards);
            }
            tally(out, page);
        }
        Call::Patch {
            pet: PetRef::Id(id),
            ..
        } => {
            if let Some(updated) = pet_field(&resp.body, "updated_at") {
                state.log.record(*id, &updated, started, acked);
            }
        }
        Call::Create(_) => {
            if let Some(id) = pet_field(&resp.body, "id").and_then(|s| s.parse().ok()) {
                state.created.lock().expect("poisoned").push(id);
            }
        }
        _ => {}
    }
}

/// The `(id, updated_at)` of each pet of a list page.
fn page_pets(body: &[u8]) -> Vec<(i64, String)> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    v.get("pets")
        .and_then(serde_json::Value::as_array)
        .map(|pets| {
            pets.iter()
                .filter_map(|p| {
                    Some((
                        p.get("id")?.as_i64()?,
                        p.get("updated_at")?.as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A field of a pet in a response body: the body itself or its `pet` member.
fn pet_field(body: &[u8], field: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let pet = if v.get(field).is_some() {
        &v
    } else {
        v.get("pet")?
    };
    match pet.get(field)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pet_fields_are_read_from_the_body_or_its_pet_member() {
        let flat = br#"{"id":3,"updated_at":"2025-01-01T00:00:00Z"}"#;
        let nested = br#"{"pet":{"id":4}}"#;
        assert_eq!(pet_field(flat, "id").as_deref(), Some("3"));
        assert_eq!(
            pet_field(flat, "updated_at").as_deref(),
            Some("2025-01-01T00:00:00Z")
        );
        assert_eq!(pet_field(nested, "id").as_deref(), Some("4"));
        assert_eq!(pet_field(b"nope", "id"), None);
    }

    #[test]
    fn a_page_gives_the_id_and_version_of_each_pet() {
        let body = br#"{"cached":true,"pets":[{"id":1,"updated_at":"a"},{"id":2,"updated_at":"b"}],"total":2}"#;
        assert_eq!(
            page_pets(body),
            vec![(1, "a".to_owned()), (2, "b".to_owned())]
        );
        assert!(page_pets(b"{}").is_empty());
    }
}
