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
