//! Verification against signed checkpoints: the chain, the Merkle tree and every checkpoint,
//! over a ledger or an exported copy.
