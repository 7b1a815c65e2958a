//! Each user's index of sessions: what `GET`/`DELETE /session/all` and `portcullis sessions`
//! read and end.
//!
//! The index is a sorted set under `key_prefix + "u:{" + hex(SHA-256(user)) + "}"` (the braces
//! are a Redis Cluster hash tag), one member per session: the session's `hex(SHA-256(id))`,
//! scored by its absolute deadline (ms since the epoch). The deadline never moves, so the idle
//! refresh never writes the index, and the lowest score is the oldest session. Every write is a
//! single-key command; the set's TTL is extended at every add to outlive its newest session.
//!
//! The session key stays authoritative: an entry whose session key is gone (idle expiry, a
//! delete that could not reach the index) is ignored and pruned when the index is read, and an
//! entry past its absolute deadline is pruned at every login. A session is found by its
//! *handle*, the first [`HANDLE_LEN`] characters of its member, and only within the index of
//! the user asking: a handle names no one else's session.

use std::time::Duration;

use futures_util::future::try_join_all;
use sha2::{Digest, Sha256};

use super::{now_ms, SessionRecord, Sessions, StoreError};

/// Length of a handle: 128 of the digest's 256 bits, as lower-case hex.
pub const HANDLE_LEN: usize = 32;

/// How much longer than its newest session the index lives, and how long past its deadline an
/// entry is kept: room for the clocks of several replicas to differ, so that no session key can
/// outlive the entry that lets "log out everywhere" find it.
const INDEX_MARGIN: Duration = Duration::from_secs(60);

/// One of a user's live sessions, as the index and its record tell it.
#[derive(Debug, Clone)]
pub struct ListedSession {
    /// The session's handle (never its id, never its whole store key).
    pub handle: String,
    /// Its record.
    pub record: SessionRecord,
    digest: String,
}

/// What a revoke by handle found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// The session was ended.
    Ended,
    /// No live session of this user has that handle (malformed, someone else's, or gone).
    NotFound,
}

/// Whether `text` has the shape of a handle: [`HANDLE_LEN`] lower-case hex digits.
pub fn is_handle(text: &str) -> bool {
    text.len() == HANDLE_LEN && is_lower_hex(text)
}

/// Whether `text` has the shape of an index member: a SHA-256 as lower-case hex.
fn is_digest(text: &str) -> bool {
    text.len() == 64 && is_lower_hex(text)
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Sessions {
    /// Every live session of `user`, oldest first; index entries without a live session are
    /// pruned on the way.
    pub async fn list(&self, user: &str) -> Result<Vec<ListedSession>, StoreError> {
        let (live, stale) = self.survey(user).await?;
        if !stale.is_empty() {
            self.store
                .sorted_remove(&self.index_key(user), &stale)
                .await?;
        }
        Ok(live)
    }

    /// End the session of `user` whose handle is `handle`, if there is one.
    pub async fn revoke(&self, user: &str, handle: &str) -> Result<Revoked, StoreError> {
        if !is_handle(handle) {
            return Ok(Revoked::NotFound);
        }
        let index = self.index_key(user);
        let members = self.store.sorted_range(&index).await?;
        let Some((member, _)) = members.iter().find(|(m, _)| m.starts_with(handle)) else {
            return Ok(Revoked::NotFound);
        };
        let key = self.key_of(member);
        let record = self.store.load(&key).await?;
        let owned = record
            .and_then(|raw| serde_json::from_slice::<SessionRecord>(&raw).ok())
            .is_some_and(|record| record.user == user);
        if !owned {
            // Stale: the session is gone (or, never written by Portcullis, not this user's).
            self.store
                .sorted_remove(&index, std::slice::from_ref(member))
                .await?;
            return Ok(Revoked::NotFound);
        }
        self.end_digest(user, member).await?;
        Ok(Revoked::Ended)
    }

    /// End every session of `user` the index lists; returns how many were live. A session
    /// created meanwhile keeps its entry (only the members read here are removed).
    pub async fn end_everywhere(&self, user: &str) -> Result<usize, StoreError> {
        let (live, stale) = self.survey(user).await?;
        let mut members = stale;
        members.extend(live.iter().map(|listed| listed.digest.clone()));
        try_join_all(members.iter().map(|member| self.delete_record(member))).await?;
        if !members.is_empty() {
            self.store
                .sorted_remove(&self.index_key(user), &members)
                .await?;
        }
        Ok(live.len())
    }

    /// The index key of `user`.
    pub(super) fn index_key(&self, user: &str) -> String {
        let digest = hex::encode(Sha256::digest(user.as_bytes()));
        format!("{}u:{{{digest}}}", self.key_prefix)
    }

    /// List the session named by `digest`, ending at `expires_at`, in `user`'s index.
    pub(super) async fn index_add(
        &self,
        user: &str,
        digest: &str,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.store
            .sorted_add(
                &self.index_key(user),
                digest,
                expires_at,
                self.absolute_timeout + INDEX_MARGIN,
            )
            .await
    }

    /// Drop the entries of `user`'s index whose absolute deadline passed (by `now`) long enough
    /// ago that no replica can still hold their session.
    pub(super) async fn prune_index(&self, user: &str, now: u64) -> Result<(), StoreError> {
        let through = now.saturating_sub(super::ms(INDEX_MARGIN));
        self.store
            .sorted_remove_through(&self.index_key(user), through)
            .await
    }

    /// End the session named by `digest`: its key first (authoritative), then its index entry.
    pub(super) async fn end_digest(&self, user: &str, digest: &str) -> Result<(), StoreError> {
        self.delete_record(digest).await?;
        self.store
            .sorted_remove(&self.index_key(user), &[digest.to_owned()])
            .await
    }

    /// With more than `max` live sessions, end the oldest of those listed before `newest` in the
    /// index (lowest deadline, then member), leaving `max`. Only older sessions go, so two
    /// logins at once never end each other's new session.
    pub(super) async fn evict_beyond(
        &self,
        user: &str,
        newest: &str,
        max: usize,
    ) -> Result<(), StoreError> {
        let live = self.list(user).await?;
        let excess = live.len().saturating_sub(max);
        let older = live.iter().take_while(|listed| listed.digest != newest);
        for listed in older.take(excess) {
            tracing::info!(user = %user, "session ended: session.max_per_user reached");
            self.end_digest(user, &listed.digest).await?;
        }
        Ok(())
    }

    /// Read `user`'s index and every session it names: the live ones in index order, and the
    /// members with no live session of this user behind them.
    async fn survey(&self, user: &str) -> Result<(Vec<ListedSession>, Vec<String>), StoreError> {
        let members = self.store.sorted_range(&self.index_key(user)).await?;
        let records = try_join_all(
            members
                .iter()
                .map(|(member, _)| async move { self.store.load(&self.key_of(member)).await }),
        )
        .await?;
        let now = now_ms();
        let (mut live, mut stale) = (Vec::new(), Vec::new());
        for ((member, _), raw) in members.into_iter().zip(records) {
            let record = raw
                .and_then(|raw| serde_json::from_slice::<SessionRecord>(&raw).ok())
                .filter(|r| r.user == user && now < r.expires_at && now < r.idle_expires_at);
            match record {
                Some(record) if is_digest(&member) => live.push(ListedSession {
                    handle: member[..HANDLE_LEN].to_owned(),
                    record,
                    digest: member,
                }),
                _ => stale.push(member),
            }
        }
        Ok((live, stale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_32_lower_case_hex_digits() {
        assert!(is_handle("0123456789abcdef0123456789abcdef"));
        for bad in [
            "",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "0123456789ABCDEF0123456789abcdef",
            "0123456789abcdef0123456789abcdeg",
            "../../0123456789abcdef0123456789",
        ] {
            assert!(!is_handle(bad), "{bad}");
        }
    }
}
