//! Other instances' changes to the controls, applied to this instance (see [`crate::fleet`]).
