use super::*;

fn write_pair(dir: &Path, name: &str) -> TlsFiles {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let files = TlsFiles {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    };
    std::fs::write(&files.cert, generated.cert.pem()).unwrap();
    std::fs::write(&files.key, generated.signing_key.serialize_pem()).unwrap();
    files
}

#[test]
fn a_matching_pair_loads_with_http1_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let config = load(&write_pair(dir.path(), "a")).unwrap();
    assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
}

#[test]
fn bad_files_are_named_and_the_key_is_never_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_pair(dir.path(), "a");
    let b = write_pair(dir.path(), "b");
    // A key that is not the certificate's.
    let mismatched = TlsFiles {
        cert: a.cert.clone(),
        key: b.key.clone(),
    };
    let e = load(&mismatched).unwrap_err();
    assert!(matches!(e, TlsError::Unusable { .. }), "{e}");
    // A key file that is not a key: named, and its content never quoted.
    let garbage_key = dir.path().join("garbage.key");
    std::fs::write(
        &garbage_key,
        "-----BEGIN PRIVATE KEY-----\nSECRET-MATERIAL\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let e = load(&TlsFiles {
        cert: a.cert.clone(),
        key: garbage_key.clone(),
    })
    .unwrap_err();
    let text = e.to_string();
    assert!(text.contains(&garbage_key.display().to_string()), "{text}");
    assert!(!text.contains("SECRET-MATERIAL"), "{text}");
    // No certificate in the certificate file; a missing file.
    let e = load(&TlsFiles {
        cert: a.key.clone(),
        key: a.key.clone(),
    })
    .unwrap_err();
    assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
    let e = load(&TlsFiles {
        cert: dir.path().join("missing.crt"),
        key: a.key.clone(),
    })
    .unwrap_err();
    assert!(e.to_string().contains("missing.crt"), "{e}");
}

#[test]
fn a_failed_reload_keeps_the_configuration_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_pair(dir.path(), "a");
    let tls = PlaneTls::load("agent", &files).unwrap();
    let before = tls.current();
    std::fs::write(&files.cert, "not a certificate").unwrap();
    assert!(tls.reload().is_err());
    assert!(Arc::ptr_eq(&before, &tls.current()));
    let fresh = write_pair(dir.path(), "b");
    std::fs::copy(&fresh.cert, &files.cert).unwrap();
    std::fs::copy(&fresh.key, &files.key).unwrap();
    tls.reload().unwrap();
    assert!(!Arc::ptr_eq(&before, &tls.current()));
}
