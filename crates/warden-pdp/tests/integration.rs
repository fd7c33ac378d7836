//! The decision engine: table-driven decisions, null, missing and empty values, properties, provenance.
//!
//! One test binary for the crate (each file under `integration/` a module): one link instead of
//! one per file, which is most of a test build's time and disk.

mod integration {
    mod decisions;
    mod null_missing_empty;
    mod properties;
    mod provenance;
    mod provenance_decisions;
}
