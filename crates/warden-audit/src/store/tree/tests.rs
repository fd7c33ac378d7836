//! The stored nodes give the roots and proofs of the tree in memory; the back-fill writes
//! exactly the subtrees the writer would have.

use rusqlite::Connection;

use super::{StoredNodes, backfill, insert_nodes, push_record, read_frontier, stored_count};
use crate::merkle::{self, Frontier, MemoryLeaves, Nodes, STORED_LEVEL};

/// An in-memory database with `n` records whose hashes are synthetic, and the tree's nodes
/// written as the writer writes them.
fn database(n: u64) -> (Connection, Vec<merkle::Hash>) {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE records (seq INTEGER PRIMARY KEY, hash BLOB NOT NULL); {}",
        super::CREATE
    ))
    .unwrap();
    let mut frontier = Frontier::new();
    let mut nodes = Vec::new();
    let mut leaves = Vec::new();
    for seq in 1..=n {
        let hash = *blake3::hash(&seq.to_be_bytes()).as_bytes();
        conn.execute(
            "INSERT INTO records (seq, hash) VALUES (?1, ?2)",
            rusqlite::params![seq as i64, hash.as_slice()],
        )
        .unwrap();
        push_record(&mut frontier, &hash, &mut nodes);
        leaves.push(merkle::leaf_hash(&hash));
    }
    insert_nodes(&conn, &nodes).unwrap();
    assert_eq!(nodes.len() as u64, stored_count(n));
    (conn, leaves)
}

#[test]
fn stored_nodes_are_the_subtrees_of_the_leaves() {
    let n = 1_300;
    let (conn, leaves) = database(n);
    let memory = MemoryLeaves(leaves.clone());
    let stored = StoredNodes::new(&conn);
    for level in 0..=10u32 {
        for index in 0..(n >> level) {
            assert_eq!(
                stored.subtree(level, index).unwrap(),
                memory.subtree(level, index).unwrap(),
                "level {level} index {index}"
            );
        }
    }
    for size in [1, 2, 3, 255, 256, 257, 511, 512, 513, 1_024, 1_299, 1_300] {
        let Ok(root) = merkle::root_of(&memory, size);
        assert_eq!(merkle::root_of(&stored, size).unwrap(), root);
        let frontier = read_frontier(&conn, size).unwrap();
        assert_eq!((frontier.size(), frontier.root()), (size, root));
    }
    // Below the stored level nothing is stored; above it, every completed subtree is.
    let levels: Vec<i64> = conn
        .prepare("SELECT DISTINCT level FROM tree_nodes ORDER BY level")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(levels, [i64::from(STORED_LEVEL), 9, 10]);
}

#[test]
fn the_backfill_writes_what_the_writer_writes() {
    let (conn, _) = database(2_000);
    let dump = |conn: &Connection| -> Vec<(i64, i64, Vec<u8>)> {
        conn.prepare("SELECT level, idx, hash FROM tree_nodes ORDER BY level, idx")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let written = dump(&conn);
    conn.execute_batch("DELETE FROM tree_nodes; INSERT INTO tree_nodes VALUES (3, 3, x'00')")
        .unwrap();
    backfill(&conn, 2_000).unwrap();
    assert_eq!(dump(&conn), written);

    // A gap in the records: the tree cannot be built, and the old table is kept.
    conn.execute_batch("DELETE FROM records WHERE seq = 700")
        .unwrap();
    let err = backfill(&conn, 2_000).unwrap_err();
    assert!(err.to_string().contains("record 700 is missing"), "{err}");
    assert_eq!(dump(&conn), written);
}
