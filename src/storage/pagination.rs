//! Cursor pagination with a stable order: newest first by `(created_at, _id)`.
//!
//! A cursor names the last item of a page; the next page holds the items strictly after it in
//! that order. Items inserted while a client pages through a list are newer than the first page,
//! so they never shift later pages: each item is listed exactly once.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bson::oid::ObjectId;
use bson::{Document, doc};
use futures_util::TryStreamExt as _;
use mongodb::Collection;
use serde::de::DeserializeOwned;

use super::StorageError;

/// Items per page when the client does not say.
pub(crate) const DEFAULT_LIMIT: u32 = 50;
/// Most items per page a client can ask for.
pub(crate) const MAX_LIMIT: u32 = 200;

/// Position after which the next page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub created_at: bson::DateTime,
    pub id: ObjectId,
}

/// A cursor the client sent that we did not issue (or that was altered).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid cursor")]
pub(crate) struct InvalidCursor;

impl Cursor {
    /// Opaque to clients: base64url of `<created_at millis>.<id hex>`.
    pub(crate) fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}.{}",
            self.created_at.timestamp_millis(),
            self.id.to_hex()
        ))
    }

    pub(crate) fn decode(text: &str) -> Result<Self, InvalidCursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| InvalidCursor)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| InvalidCursor)?;
        let (millis, id) = text.split_once('.').ok_or(InvalidCursor)?;
        Ok(Self {
            created_at: bson::DateTime::from_millis(millis.parse().map_err(|_| InvalidCursor)?),
            id: ObjectId::parse_str(id).map_err(|_| InvalidCursor)?,
        })
    }
}

/// What a list request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageRequest {
    pub limit: u32,
    pub after: Option<Cursor>,
}

impl PageRequest {
    /// Clamps `limit` to 1..=[`MAX_LIMIT`] (absent: [`DEFAULT_LIMIT`]) and decodes the cursor.
    pub(crate) fn new(limit: Option<u32>, cursor: Option<&str>) -> Result<Self, InvalidCursor> {
        Ok(Self {
            limit: limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT),
            after: cursor
                .filter(|c| !c.is_empty())
                .map(Cursor::decode)
                .transpose()?,
        })
    }

    /// Adds the "strictly after the cursor" condition to `filter`.
    pub(crate) fn constrain(&self, filter: &mut Document) {
        if let Some(after) = self.after {
            let position = doc! {
                "$or": [
                    { "created_at": { "$lt": after.created_at } },
                    { "created_at": after.created_at, "_id": { "$lt": after.id } },
                ]
            };
            // `$and` keeps any `$or` the caller's filter already has.
            let existing = std::mem::take(filter);
            *filter = if existing.is_empty() {
                position
            } else {
                doc! { "$and": [existing, position] }
            };
        }
    }

    /// The sort order every paginated list uses (an index serves it for each collection).
    pub(crate) fn sort() -> Document {
        doc! { "created_at": -1, "_id": -1 }
    }

    /// How many to fetch: one more than the page, to learn whether another page follows.
    pub(crate) fn fetch_limit(&self) -> i64 {
        i64::from(self.limit) + 1
    }
}

/// One page of a list.
#[derive(Debug, Clone)]
pub(crate) struct Page<T> {
    pub items: Vec<T>,
    /// `None` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds the page from up to `limit + 1` fetched items; `position` gives an item's place.
    pub(crate) fn from_fetched(
        mut items: Vec<T>,
        request: &PageRequest,
        position: impl Fn(&T) -> Cursor,
    ) -> Self {
        let has_more = items.len() > request.limit as usize;
        items.truncate(request.limit as usize);
        let next_cursor = if has_more {
            items.last().map(|last| position(last).encode())
        } else {
            None
        };
        Self { items, next_cursor }
    }

    pub(crate) fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

/// One page of `collection` matching `filter`, in the shared order; `position` gives an item's
/// place (its `created_at` and `_id`) for the next cursor.
pub(crate) async fn fetch_page<T>(
    collection: &Collection<T>,
    mut filter: Document,
    page: &PageRequest,
    position: impl Fn(&T) -> Cursor,
) -> Result<Page<T>, StorageError>
where
    T: DeserializeOwned + Send + Sync,
{
    page.constrain(&mut filter);
    let items: Vec<T> = collection
        .find(filter)
        .sort(PageRequest::sort())
        .limit(page.fetch_limit())
        .await?
        .try_collect()
        .await?;
    Ok(Page::from_fetched(items, page, position))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        let cursor = Cursor {
            created_at: bson::DateTime::from_millis(1_700_000_000_123),
            id: ObjectId::new(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        for bad in [
            "",
            "!!",
            "bm90LWEtY3Vyc29y",
            &URL_SAFE_NO_PAD.encode("12.nothex"),
        ] {
            assert_eq!(Cursor::decode(bad), Err(InvalidCursor), "{bad}");
        }
    }

    #[test]
    fn limits_are_clamped() {
        assert_eq!(PageRequest::new(None, None).unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(PageRequest::new(Some(0), None).unwrap().limit, 1);
        assert_eq!(
            PageRequest::new(Some(10_000), None).unwrap().limit,
            MAX_LIMIT
        );
    }
}
