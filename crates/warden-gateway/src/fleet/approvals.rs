//! Other instances' changes to the approvals, applied to this instance (see [`crate::fleet`]).
