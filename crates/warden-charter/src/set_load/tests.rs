use super::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_example_set_loads() {
    let dir = repo().join("examples/agents");
    let paths = set_directory(&dir).expect("a set directory");
    let loaded = load_set(&paths).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        loaded.set.agents().collect::<Vec<_>>(),
        ["coordinator", "support", "worker"]
    );
    assert!(loaded.warnings.is_empty(), "{}", loaded.warnings);
}
