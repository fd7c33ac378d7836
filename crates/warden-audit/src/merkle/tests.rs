use proptest::prelude::*;

use super::*;

/// The leaf inputs of the RFC 6962 reference test vectors (certificate-transparency's
/// `merkle_tree_test`), and the roots of their first 1..=8 leaves.
const INPUTS: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];
const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn leaves(n: usize) -> MemoryLeaves {
    MemoryLeaves(
        (0..n)
            .map(|i| leaf_hash(&(i as u64).to_be_bytes()))
            .collect(),
    )
}

#[test]
fn the_empty_tree_has_the_hash_of_nothing() {
    assert_eq!(
        empty_root().to_vec(),
        unhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    assert_eq!(Frontier::new().root(), empty_root());
}

#[test]
fn roots_match_the_reference_vectors() {
    let mut frontier = Frontier::new();
    let mut mem = MemoryLeaves::default();
    for (input, root) in INPUTS.iter().zip(ROOTS) {
        let leaf = leaf_hash(&unhex(input));
        frontier.push(leaf, |_, _, _| {});
        mem.0.push(leaf);
        assert_eq!(
            frontier.root().to_vec(),
            unhex(root),
            "size {}",
            mem.0.len()
        );
        assert_eq!(
            root_of(&mem, mem.0.len() as u64).unwrap().to_vec(),
            unhex(root)
        );
    }
}

#[test]
fn the_frontier_reports_every_completed_subtree() {
    let mem = leaves(1000);
    let mut frontier = Frontier::new();
    let mut seen = 0;
    for leaf in &mem.0 {
        frontier.push(*leaf, |level, index, hash| {
            seen += 1;
            assert_eq!(*hash, mem.subtree(level, index).unwrap());
        });
    }
    // One per leaf plus one per interior node of the perfect subtrees: 1000 - popcount(1000).
    assert_eq!(seen, 1000 + 1000 - 1000u64.count_ones() as usize);
    let rebuilt = Frontier::from_nodes(1000, &mem).unwrap();
    assert_eq!(rebuilt, frontier);
}

proptest! {
    #[test]
    fn inclusion_proofs_verify_and_fail_for_any_other_leaf(
        size in 1u64..600, index in 0u64..600, flip in 0usize..32
    ) {
        let index = index % size;
        let mem = leaves(size as usize);
        let root = root_of(&mem, size).unwrap();
        let proof = inclusion_proof(&mem, index, size).unwrap();
        prop_assert!(proof.len() <= 64 - (size - 1).leading_zeros() as usize + 1);
        let leaf = mem.0[index as usize];
        prop_assert_eq!(verify_inclusion(index, size, &leaf, &proof, &root), Ok(()));
        let mut other = leaf;
        other[flip] ^= 1;
        prop_assert!(verify_inclusion(index, size, &other, &proof, &root).is_err());
        if size > 1 {
            let wrong_index = (index + 1) % size;
            prop_assert!(verify_inclusion(wrong_index, size, &leaf, &proof, &root).is_err());
        }
    }

    #[test]
    fn consistency_proofs_verify_and_fail_for_a_changed_old_leaf(
        new in 1u64..600, old in 0u64..600, changed in 0u64..600
    ) {
        let old = old % (new + 1);
        let mem = leaves(new as usize);
        let old_root = root_of(&mem, old).unwrap();
        let new_root = root_of(&mem, new).unwrap();
        let proof = consistency_proof(&mem, old, new).unwrap();
        prop_assert_eq!(verify_consistency(old, new, &old_root, &new_root, &proof), Ok(()));
        if old > 0 {
            // A history rewritten in the old part: its old root no longer matches.
            let mut forked = mem.clone();
            forked.0[(changed % old) as usize][0] ^= 1;
            let forked_old = root_of(&forked, old).unwrap();
            prop_assert!(verify_consistency(old, new, &forked_old, &new_root, &proof).is_err());
            if old < new {
                let forked_new = root_of(&forked, new).unwrap();
                prop_assert!(verify_consistency(old, new, &old_root, &forked_new, &proof).is_err());
            }
        }
    }
}

/// The reference inclusion proofs (certificate-transparency's `merkle_tree_test`) in the
/// tree of the eight reference leaves.
const INCLUSION_8: [(u64, [&str; 3]); 4] = [
    (
        0,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        4,
        [
            "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        5,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        6,
        [
            "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

/// The reference consistency proofs: (old size, new size, proof).
const CONSISTENCY: [(u64, u64, &[&str]); 4] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

fn reference_leaves() -> MemoryLeaves {
    MemoryLeaves(INPUTS.iter().map(|i| leaf_hash(&unhex(i))).collect())
}

#[test]
fn inclusion_proofs_match_the_reference_vectors() {
    let mem = reference_leaves();
    let root = root_of(&mem, 8).unwrap();
    for (index, want) in INCLUSION_8 {
        let proof = inclusion_proof(&mem, index, 8).unwrap();
        let hex: Vec<Vec<u8>> = want.iter().map(|h| unhex(h)).collect();
        assert_eq!(proof.iter().map(|h| h.to_vec()).collect::<Vec<_>>(), hex);
        assert_eq!(
            verify_inclusion(index, 8, &mem.0[index as usize], &proof, &root),
            Ok(())
        );
    }
}

#[test]
fn consistency_proofs_match_the_reference_vectors() {
    let mem = reference_leaves();
    for (old, new, want) in CONSISTENCY {
        let proof = consistency_proof(&mem, old, new).unwrap();
        let hex: Vec<Vec<u8>> = want.iter().map(|h| unhex(h)).collect();
        assert_eq!(proof.iter().map(|h| h.to_vec()).collect::<Vec<_>>(), hex);
        let (a, b) = (root_of(&mem, old).unwrap(), root_of(&mem, new).unwrap());
        assert_eq!(verify_consistency(old, new, &a, &b, &proof), Ok(()));
    }
}
