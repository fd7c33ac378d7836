//! Other instances' changes to the sessions, applied to this instance (see [`crate::fleet`]).
