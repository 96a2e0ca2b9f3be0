use std::path::Path;

use super::*;

/// A self-signed certificate for 127.0.0.1 valid from `from` to `until` (years), its key.
fn cert(dir: &Path, name: &str, from: i32, until: i32) -> (PathBuf, PathBuf, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".into()]).expect("params");
    params.not_before = rcgen::date_time_ymd(from, 1, 1);
    params.not_after = rcgen::date_time_ymd(until, 1, 1);
    let cert = params.self_signed(&key).expect("sign");
    let (c, k) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert.pem()).expect("write");
    std::fs::write(&k, key.serialize_pem()).expect("write");
    (c, k, key)
}

#[test]
fn a_valid_pair_loads_and_bad_files_are_named() {
    let dir = tempfile::tempdir().expect("dir");
    let (c, k, _) = cert(dir.path(), "good", 2020, 2090);
    load_certified_key(&c, &k).expect("valid pair");

    let (old, old_key, _) = cert(dir.path(), "old", 2000, 2001);
    let err = load_certified_key(&old, &old_key).expect_err("expired");
    assert!(matches!(err, TlsError::Expired { .. }), "{err}");
    assert!(err.to_string().contains("old.pem") && err.to_string().contains("expired"));

    let (future, future_key, _) = cert(dir.path(), "future", 2080, 2090);
    let err = load_certified_key(&future, &future_key).expect_err("not yet valid");
    assert!(matches!(err, TlsError::NotYetValid { .. }), "{err}");

    // The key of another certificate.
    let err = load_certified_key(&c, &old_key).expect_err("mismatch");
    assert!(matches!(err, TlsError::Mismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("old.key") && text.contains("good.pem"),
        "{text}"
    );

    let missing = dir.path().join("missing.pem");
    let err = load_certified_key(&missing, &k).expect_err("missing");
    assert!(err.to_string().contains("missing.pem"), "{err}");

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write");
    let err = load_certified_key(&garbage, &k).expect_err("garbage cert");
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    let err = load_certified_key(&c, &garbage).expect_err("garbage key");
    assert!(matches!(err, TlsError::BadKey { .. }), "{err}");
    assert!(err.to_string().contains("garbage.pem"), "{err}");
}

#[test]
fn reload_swaps_the_certificate_and_refuses_bad_files() {
    let dir = tempfile::tempdir().expect("dir");
    let (c, k, _) = cert(dir.path(), "one", 2020, 2090);
    let tls = ServerTls::load(&c, &k).expect("load");
    let first = tls.current.load_full().cert[0].clone();
    assert_eq!(tls.reload_if_changed().map(|r| r.is_ok()), None);

    let (c2, k2, _) = cert(dir.path(), "two", 2020, 2090);
    tls.reload(&c2, &k2).expect("reload");
    let second = tls.current.load_full().cert[0].clone();
    assert_ne!(first, second);

    // A bad key is refused and the running certificate kept.
    let (_, other_key, _) = cert(dir.path(), "three", 2020, 2090);
    assert!(tls.reload(&c2, &other_key).is_err());
    assert_eq!(tls.current.load_full().cert[0], second);
    assert_eq!(tls.files().1, k2);

    // A renewal in place is noticed by its modification time.
    let (c4, k4, _) = cert(dir.path(), "four", 2020, 2090);
    std::fs::copy(&c4, &c2).expect("copy");
    std::fs::copy(&k4, &k2).expect("copy");
    let later = SystemTime::now() + std::time::Duration::from_secs(5);
    for p in [&c2, &k2] {
        std::fs::File::options()
            .write(true)
            .open(p)
            .and_then(|f| f.set_modified(later))
            .expect("touch");
    }
    assert_eq!(tls.reload_if_changed().map(|r| r.is_ok()), Some(true));
    assert_ne!(tls.current.load_full().cert[0], second);
}

#[test]
fn client_config_reads_a_ca_file_or_uses_the_public_roots() {
    let dir = tempfile::tempdir().expect("dir");
    let (c, _, _) = cert(dir.path(), "ca", 2020, 2090);
    client_config(Some(&c)).expect("ca file");
    client_config(None).expect("public roots");
    let err = client_config(Some(&dir.path().join("none.pem"))).expect_err("missing");
    assert!(err.to_string().contains("none.pem"), "{err}");
}
