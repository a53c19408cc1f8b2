//! Helpers shared by mitoken's end-to-end tests.
