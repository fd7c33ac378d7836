//! warden-provenance's integration tests, one binary: the examples of docs/provenance.md, and
//! property tests of the provenance guarantees.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

mod integration {
    mod docs_examples;
    mod properties;
}
