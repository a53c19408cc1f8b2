//! The `mitoken` binary.
fn main() {}
