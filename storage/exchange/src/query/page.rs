//! Paging through ranges: a page ends with a token from which the next page resumes.
//!
//! A token is opaque to clients: a format byte followed by the key of the last item returned.
//! A token only resumes the range it came from; anything else is refused.

use bytes::Bytes;

use crate::error::{InvalidArgument, Result};

const TOKEN_FORMAT: u8 = 1;

/// Items per page when the request says 0.
pub const DEFAULT_PAGE: usize = 1000;
/// The most items one page may ask for.
pub const MAX_PAGE: usize = 10_000;

/// What page to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Most items to return (0 for the default).
    pub limit: usize,
    /// Where to resume, from the previous page.
    pub token: Option<Bytes>,
}

impl PageRequest {
    /// The first page of up to `limit` items.
    pub fn first(limit: usize) -> Self {
        PageRequest { limit, token: None }
    }

    /// The effective limit.
    pub fn limit(&self) -> Result<usize> {
        match self.limit {
            0 => Ok(DEFAULT_PAGE),
            n if n > MAX_PAGE => Err(InvalidArgument::PageTooLarge {
                limit: n,
                max: MAX_PAGE,
            }
            .into()),
            n => Ok(n),
        }
    }

    /// The key to resume after, checked to lie in the range starting with `prefix`.
    pub fn resume_after(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(token) = &self.token else {
            return Ok(None);
        };
        match token.split_first() {
            Some((&TOKEN_FORMAT, key)) if key.starts_with(prefix) => Ok(Some(key.to_vec())),
            _ => Err(InvalidArgument::BadPageToken.into()),
        }
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, in order.
    pub items: Vec<T>,
    /// Resumes after the last item; `None` when the range is exhausted.
    pub next: Option<Bytes>,
}

/// The token resuming after `key`.
pub fn token_after(key: &[u8]) -> Bytes {
    let mut t = Vec::with_capacity(key.len() + 1);
    t.push(TOKEN_FORMAT);
    t.extend_from_slice(key);
    Bytes::from(t)
}
