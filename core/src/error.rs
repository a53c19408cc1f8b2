//! Errors of every layer, rolled up into [`Error`].

/// Any error mitoken-core can report. Filled in as layers land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {}
