//! The bounds a document must stay within before serde_yaml sees it: nesting depth, alias
//! count, and the size the document would have with every alias expanded.

use std::collections::HashMap;

/// Deepest nesting of mappings and sequences accepted (an inventory needs 4).
pub const MAX_DEPTH: usize = 32;
/// Most aliases (`*name`) a document may use.
pub const MAX_ALIASES: usize = 1024;
/// Largest size of the document with every alias replaced by a copy of its anchored node,
/// counted as the bytes of every scalar plus one per node.
pub const MAX_EXPANDED_BYTES: u64 = 4 << 20;

/// Why a document is beyond the bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Exceeded {
    #[error(
        "mappings and sequences nested more than {MAX_DEPTH} levels deep; an inventory needs at most 4"
    )]
    Depth,
    #[error("more than {MAX_ALIASES} aliases; expected at most {MAX_ALIASES}")]
    Aliases,
    #[error(
        "aliases expand the document to more than {MAX_EXPANDED_BYTES} bytes ({} MiB); expected a document that stays below that when every alias is replaced by its anchored node",
        MAX_EXPANDED_BYTES >> 20
    )]
    ExpandedSize,
    /// The anchored node is still open: expanding the alias would never end.
    #[error("alias of a node that contains it; expected an alias of a complete node")]
    OpenAnchor,
}

/// A mapping or sequence being read: its anchor, and the expanded size when it started.
pub(super) struct Opened {
    anchor: usize,
    expanded_at_start: u64,
}

/// The running totals of one document, counted event by event without expanding anything.
#[derive(Default)]
pub(super) struct Bounds {
    /// Expanded size of every closed anchored node, by anchor id.
    anchors: HashMap<usize, u64>,
    /// Expanded size of the document so far.
    expanded: u64,
    aliases: usize,
}

impl Bounds {
    /// A scalar of `len` bytes, anchored as `anchor` (0: none).
    pub(super) fn scalar(&mut self, len: usize, anchor: usize) -> Result<(), Exceeded> {
        let start = self.expanded;
        self.grow(1 + len as u64)?;
        self.remember_anchor(anchor, start);
        Ok(())
    }

    /// A mapping or sequence starts at nesting `depth` (0: the top level).
    pub(super) fn open(&mut self, depth: usize, anchor: usize) -> Result<Opened, Exceeded> {
        if depth >= MAX_DEPTH {
            return Err(Exceeded::Depth);
        }
        let expanded_at_start = self.expanded;
        self.grow(1)?;
        Ok(Opened {
            anchor,
            expanded_at_start,
        })
    }

    pub(super) fn close(&mut self, opened: Opened) {
        self.remember_anchor(opened.anchor, opened.expanded_at_start);
    }

    /// An alias of anchor `id`: it counts as a copy of the anchored node.
    pub(super) fn alias(&mut self, id: usize) -> Result<(), Exceeded> {
        self.aliases += 1;
        if self.aliases > MAX_ALIASES {
            return Err(Exceeded::Aliases);
        }
        let Some(&size) = self.anchors.get(&id) else {
            return Err(Exceeded::OpenAnchor);
        };
        self.grow(size)
    }

    fn grow(&mut self, bytes: u64) -> Result<(), Exceeded> {
        self.expanded = self.expanded.saturating_add(bytes);
        if self.expanded > MAX_EXPANDED_BYTES {
            return Err(Exceeded::ExpandedSize);
        }
        Ok(())
    }

    fn remember_anchor(&mut self, anchor: usize, expanded_at_start: u64) {
        if anchor != 0 {
            self.anchors
                .insert(anchor, self.expanded - expanded_at_start);
        }
    }
}
