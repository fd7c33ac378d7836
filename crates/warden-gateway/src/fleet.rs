//! Keeping the instances of a fleet in step (PostgreSQL store): each part follows the store's
//! notices (`warden_session::Notices`: a change another instance committed, or a poll) and
//! brings this instance's in-memory view up to date. On SQLite there is one instance and
//! nothing to follow.

pub mod approval_key;
pub mod approvals;
pub mod controls;
pub mod sessions;
