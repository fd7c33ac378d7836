//! Signed checkpoints of the ledger's Merkle tree: the C2SP `tlog-checkpoint` body in a C2SP
//! `signed-note`, signed with Ed25519.
