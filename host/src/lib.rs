//! Library side of the `mitoken` binary: the host-side building blocks the commands are made of.
#![forbid(unsafe_code)]

pub mod emulate;
