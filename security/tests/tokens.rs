//! Tokens: what one issuer signs every verifier of the same cluster and key accepts, naming
//! the client and its roles; an expired token, one signed with another key, one of another
//! cluster and anything that is not a token are refused, each saying why.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use qastore_security::token::{new_token_key, TokenIssuer, TokenVerifier};
use qastore_security::{Identity, Role};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_token_names_its_client_and_roles_on_every_node_of_its_cluster() {
    let (key, public) = new_token_key().unwrap();
    let issuer = TokenIssuer::new("c1", &key).unwrap();
    let token = issuer
        .issue("quant", &[Role::Subscriber, Role::Reader, Role::Reader], 7)
        .unwrap();
    for _node in 0..3 {
        let verifier = TokenVerifier::new("c1", &public).unwrap();
        let holder = verifier.verify(&token).unwrap();
        assert_eq!(
            holder.identity,
            Identity::Client {
                cluster: "c1".into(),
                name: "quant".into()
            }
        );
        assert_eq!(holder.roles, vec![Role::Reader, Role::Subscriber]);
        assert!(holder.expires_at >= now() + 7 * 86_400 - 5);
        // Remembered: the same answer without a second signature check.
        assert_eq!(verifier.verify(&token).unwrap(), holder);
    }
}

#[test]
fn expired_foreign_and_malformed_tokens_are_refused_with_the_reason() {
    let (key, public) = new_token_key().unwrap();
    let issuer = TokenIssuer::new("c1", &key).unwrap();
    let verifier = TokenVerifier::new("c1", &public).unwrap();

    let expired = issuer
        .issue_valid("quant", &[Role::Reader], now() - 10 * 86_400, 86_400)
        .unwrap();
    assert_eq!(verifier.verify(&expired).unwrap_err(), "the token expired");

    let (other_key, _) = new_token_key().unwrap();
    let forged = TokenIssuer::new("c1", &other_key)
        .unwrap()
        .issue("quant", &[Role::Admin], 1)
        .unwrap();
    assert!(verifier
        .verify(&forged)
        .unwrap_err()
        .contains("not signed with this cluster's token key"));

    let other_cluster = TokenIssuer::new("c2", &key)
        .unwrap()
        .issue("quant", &[Role::Admin], 1)
        .unwrap();
    assert!(verifier
        .verify(&other_cluster)
        .unwrap_err()
        .contains("another cluster"));

    let later = issuer
        .issue_valid("quant", &[Role::Reader], now() + 86_400, 86_400)
        .unwrap();
    assert_eq!(
        verifier.verify(&later).unwrap_err(),
        "the token is not valid yet"
    );

    for junk in ["", "abc", "a.b.c", &format!("{expired}x")] {
        assert!(verifier.verify(junk).is_err(), "{junk:?} passed");
    }
    assert!(issuer.issue("quant", &[], 1).is_err());
    assert!(issuer.issue("bad name", &[Role::Reader], 1).is_err());
    assert!(issuer.issue("quant", &[Role::Reader], 0).is_err());
    assert!(TokenIssuer::new("c1", &public).is_err());
    assert!(TokenVerifier::new("c1", "not a key").is_err());
}

/// Writes `text` to `path` the way an operator's tooling would: whole, then renamed over.
fn replace(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn a_token_key_is_rolled_through_the_key_file_without_a_restart() {
    use qastore_security::TokenKeyFile;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token.pub");
    let (old_key, old_public) = new_token_key().unwrap();
    let (new_key, new_public) = new_token_key().unwrap();
    let old = TokenIssuer::new("c1", &old_key).unwrap();
    let new = TokenIssuer::new("c1", &new_key).unwrap();
    let old_token = old.issue("quant", &[Role::Reader], 1).unwrap();
    let new_token = new.issue("quant", &[Role::Reader], 1).unwrap();
    replace(&path, &old_public);
    let keys = TokenKeyFile::open("c1", &path).unwrap();
    assert!(keys.verify(&old_token).is_ok());
    assert!(keys.verify(&new_token).is_err());

    // (1) Both public keys: both tokens pass.
    replace(&path, &format!("{old_public}{new_public}"));
    keys.reload().unwrap();
    assert_eq!(keys.key_count(), 2);
    assert!(keys.verify(&old_token).is_ok());
    assert!(keys.verify(&new_token).is_ok());

    // (3) The old key removed: its tokens are refused, remembered or not.
    replace(&path, &new_public);
    keys.reload().unwrap();
    assert!(keys
        .verify(&old_token)
        .unwrap_err()
        .contains("not signed with this cluster's token key"));
    assert!(keys.verify(&new_token).is_ok());

    // A broken file leaves the keys in use and says why.
    replace(
        &path,
        "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n",
    );
    assert!(keys.reload().is_err());
    assert_eq!(keys.failed_reloads(), 1);
    assert!(keys.verify(&new_token).is_ok());
}

#[test]
fn a_changed_key_file_is_picked_up_without_a_signal() {
    use qastore_security::TokenKeyFile;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token.pub");
    let (old_key, old_public) = new_token_key().unwrap();
    let (new_key, new_public) = new_token_key().unwrap();
    replace(&path, &old_public);
    let keys = TokenKeyFile::open("c1", &path).unwrap();
    let new_token = TokenIssuer::new("c1", &new_key)
        .unwrap()
        .issue("quant", &[Role::Reader], 1)
        .unwrap();
    let _ = old_key;
    assert!(keys.verify(&new_token).is_err());
    replace(&path, &new_public);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while keys.verify(&new_token).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the changed key file was not read again"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(keys.loads(), 2);
}
