//! Unit tests and the property test, through the `extern "C"` functions.
