//! The Merkle tree over the ledger, as RFC 9162 (Certificate Transparency 2.0, section 2.1)
//! defines it, with SHA-256: pure, no IO.
//!
//! - The leaves are the records in ledger order; leaf `i` (0-based) is record `i + 1`, and its
//!   input is the record's 32-byte chain hash (BLAKE3, see [`crate::chain`]), which already
//!   commits to the record's content and to every record before it.
//! - A leaf hash is `SHA-256(0x00 || input)`, an interior node `SHA-256(0x01 || left ||
//!   right)` (domain separation: a leaf can never be read as a node), the empty tree's root
//!   `SHA-256("")`; a tree of `n` leaves splits at the largest power of two below `n`. So the
//!   roots, inclusion proofs and consistency proofs are the ones every RFC 6962 / RFC 9162 tool
//!   computes and checks (the test vectors in `tests.rs` pin it).
//! - [`Frontier`] keeps the tree's right edge (at most 64 subtree roots) so it grows one leaf
//!   at a time in O(1) amortised hashing; the ledger's writer keeps one beside its chain tail.
//! - Proofs are built from any [`Nodes`] source (the store's node table, or memory) and
//!   checked by [`verify_inclusion`] and [`verify_consistency`], which need nothing but the
//!   hashes.

#[cfg(test)]
mod tests;

use sha2::{Digest, Sha256};

/// A SHA-256 digest: a leaf hash, a node hash or a root.
pub type Hash = [u8; 32];

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The hash of a leaf whose input is `data`: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two strictly below `n` (`n >= 2`): where RFC 9162 splits a tree of
/// `n` leaves.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// A tree's right edge: the roots of the perfect subtrees a tree of `size` leaves is made of,
/// one per set bit of `size`, largest (leftmost) first. Enough to add leaves and to compute the
/// root, in constant memory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    /// `nodes[i]` is the root of the i-th perfect subtree from the left.
    nodes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// The frontier of the first `size` leaves, read from `nodes` (one subtree root per set
    /// bit of `size`).
    pub fn from_nodes<N: Nodes>(size: u64, nodes: &N) -> Result<Frontier, N::Error> {
        let mut out = Vec::with_capacity(size.count_ones() as usize);
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            if size & (1u64 << level) != 0 {
                out.push(nodes.subtree(level, start >> level)?);
                start += 1u64 << level;
            }
        }
        Ok(Frontier { size, nodes: out })
    }

    /// The frontier of `size` leaves from its subtree roots, largest first (as
    /// [`Frontier::nodes`] gives them); `None` if their number is not the number of set bits
    /// of `size`.
    pub fn from_parts(size: u64, nodes: Vec<Hash>) -> Option<Frontier> {
        (nodes.len() == size.count_ones() as usize).then_some(Frontier { size, nodes })
    }

    /// How many leaves the tree has.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The subtree roots, largest (leftmost) first.
    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    /// Adds the leaf whose *leaf hash* is `leaf` (see [`leaf_hash`]). `completed` is told of
    /// every perfect subtree this leaf completes, the leaf itself first: its level (0 for the
    /// leaf), its index at that level, and its root. The ledger's writer stores the ones at
    /// [`STORED_LEVEL`] and above.
    pub fn push(&mut self, leaf: Hash, mut completed: impl FnMut(u32, u64, &Hash)) {
        let index = self.size;
        let mut hash = leaf;
        let mut level = 0u32;
        completed(0, index, &hash);
        while index & (1u64 << level) != 0 {
            let Some(left) = self.nodes.pop() else {
                break;
            };
            hash = node_hash(&left, &hash);
            level += 1;
            completed(level, index >> level, &hash);
        }
        self.nodes.push(hash);
        self.size = self.size.saturating_add(1);
    }

    /// The tree's root ([`empty_root`] for no leaves).
    pub fn root(&self) -> Hash {
        let mut nodes = self.nodes.iter().rev();
        let Some(last) = nodes.next() else {
            return empty_root();
        };
        nodes.fold(*last, |right, left| node_hash(left, &right))
    }
}

/// The lowest level whose subtree roots the ledger stores (subtrees of 256 leaves); below it,
/// a subtree's root is computed from the leaves (the records' hashes), at most 256 of them.
pub const STORED_LEVEL: u32 = 8;

/// Where a proof's hashes come from: the root of the perfect subtree at `level` (0 for a
/// leaf hash) and `index` (its position among the subtrees of that level, from the left),
/// i.e. of leaves `index * 2^level .. (index + 1) * 2^level`.
pub trait Nodes {
    /// Why a node could not be read.
    type Error;
    /// The root of that subtree; asked only for subtrees inside the tree being proven.
    fn subtree(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// Why a proof cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError<E> {
    /// The leaf is not in the tree, or the old tree is larger than the new one.
    #[error("{0}")]
    OutOfRange(String),
    /// The node source failed.
    #[error(transparent)]
    Nodes(E),
}

/// The root of leaves `start .. start + n` (`n >= 1`), from perfect subtrees.
fn range_root<N: Nodes>(nodes: &N, start: u64, n: u64) -> Result<Hash, N::Error> {
    if n.is_power_of_two() && start.is_multiple_of(n) {
        return nodes.subtree(n.trailing_zeros(), start >> n.trailing_zeros());
    }
    let k = split(n);
    let left = range_root(nodes, start, k)?;
    let right = range_root(nodes, start + k, n - k)?;
    Ok(node_hash(&left, &right))
}

/// The root of the tree of the first `size` leaves.
pub fn root_of<N: Nodes>(nodes: &N, size: u64) -> Result<Hash, N::Error> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_root(nodes, 0, size)
}

/// The inclusion proof of leaf `index` in the tree of the first `size` leaves (RFC 9162
/// 2.1.3.1): the sibling hashes from the leaf up, O(log size) of them.
pub fn inclusion_proof<N: Nodes>(
    nodes: &N,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError<N::Error>> {
    if index >= size {
        return Err(ProofError::OutOfRange(format!(
            "leaf {index} is not in a tree of {size} leaves"
        )));
    }
    let mut proof = Vec::new();
    // Walk down from the whole tree to the leaf, collecting siblings; reversed at the end.
    let (mut start, mut n, mut m) = (0u64, size, index);
    while n > 1 {
        let k = split(n);
        if m < k {
            proof.push(range_root(nodes, start + k, n - k).map_err(ProofError::Nodes)?);
            n = k;
        } else {
            proof.push(range_root(nodes, start, k).map_err(ProofError::Nodes)?);
            start += k;
            m -= k;
            n -= k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// The consistency proof that the tree of the first `new` leaves extends the tree of the
/// first `old` (RFC 9162 2.1.4.1); empty when `old` is 0 or equal to `new`.
pub fn consistency_proof<N: Nodes>(
    nodes: &N,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, ProofError<N::Error>> {
    if old > new {
        return Err(ProofError::OutOfRange(format!(
            "a tree of {old} leaves cannot be extended by one of {new}"
        )));
    }
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    let mut proof = Vec::new();
    let (mut start, mut n, mut m, mut whole) = (0u64, new, old, true);
    loop {
        if m == n {
            if !whole {
                proof.push(range_root(nodes, start, n).map_err(ProofError::Nodes)?);
            }
            break;
        }
        let k = split(n);
        if m <= k {
            proof.push(range_root(nodes, start + k, n - k).map_err(ProofError::Nodes)?);
            n = k;
        } else {
            proof.push(range_root(nodes, start, k).map_err(ProofError::Nodes)?);
            start += k;
            m -= k;
            n -= k;
            whole = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Why a proof does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofInvalid {
    /// The leaf index is not below the tree size, or the old size is above the new one.
    #[error("the sizes are out of range")]
    OutOfRange,
    /// The proof has the wrong number of hashes for these sizes.
    #[error("the proof has the wrong length")]
    Length,
    /// The hashes do not lead to the expected root(s).
    #[error("the proof does not lead to the root")]
    Mismatch,
}

/// Checks that the leaf whose leaf hash is `leaf` is leaf `index` of the tree of `size` leaves
/// whose root is `root` (RFC 9162 2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofInvalid> {
    if index >= size {
        return Err(ProofInvalid::OutOfRange);
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(ProofInvalid::Length);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofInvalid::Length);
    }
    if r != *root {
        return Err(ProofInvalid::Mismatch);
    }
    Ok(())
}

/// Checks that the tree of `new` leaves with root `new_root` extends the tree of `old` leaves
/// with root `old_root` (RFC 9162 2.1.4.2): every leaf of the old tree is in the new one, in
/// the same place.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofInvalid> {
    if old > new {
        return Err(ProofInvalid::OutOfRange);
    }
    if old == new {
        if !proof.is_empty() {
            return Err(ProofInvalid::Length);
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofInvalid::Mismatch)
        };
    }
    if old == 0 {
        // The empty tree is a prefix of every tree.
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofInvalid::Length)
        };
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return Err(ProofInvalid::Length);
    };
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return Err(ProofInvalid::Length);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofInvalid::Length);
    }
    if fr != *old_root || sr != *new_root {
        return Err(ProofInvalid::Mismatch);
    }
    Ok(())
}

/// Leaf hashes held in memory, as a [`Nodes`] source (tests, exports, small trees): each
/// subtree's root is computed from its leaves.
#[derive(Debug, Clone, Default)]
pub struct MemoryLeaves(pub Vec<Hash>);

impl Nodes for MemoryLeaves {
    type Error = std::convert::Infallible;

    fn subtree(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        fn root(leaves: &[Hash]) -> Hash {
            match leaves {
                [] => empty_root(),
                [one] => *one,
                _ => {
                    let (l, r) = leaves.split_at(leaves.len() / 2);
                    node_hash(&root(l), &root(r))
                }
            }
        }
        let width = 1usize << level;
        let start = usize::try_from(index)
            .unwrap_or(usize::MAX)
            .saturating_mul(width);
        let end = start.saturating_add(width).min(self.0.len());
        Ok(root(self.0.get(start..end).unwrap_or(&[])))
    }
}
