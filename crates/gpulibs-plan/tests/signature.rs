//! Signed manifests: what `sign_manifest` writes is what `minisign-verify` (an independent
//! implementation) accepts; unsigned, other-key and one-byte-altered manifests are refused
//! unless `--allow-unsigned`.

use gpulibs_plan::{
    check_signature, public_key_id, sign_manifest, sign_manifest_with_comment, verify_manifest,
    SecretKey, SignatureError, Trust,
};

const EXAMPLE: &[u8] = include_bytes!("../fixtures/example.toml");

fn vendor() -> SecretKey {
    SecretKey::from_seed([42; 32], *b"vendor01")
}

#[test]
fn good_signature_is_accepted() {
    let key = vendor();
    let sig = sign_manifest(EXAMPLE, &key);
    assert!(sig.starts_with("untrusted comment: "));
    assert_eq!(sig.lines().count(), 4);
    assert_eq!(verify_manifest(EXAMPLE, &sig, &key.public_key()), Ok(()));
    // The pinned key may be just its base64 line, as in a config file.
    let line = key.public_key().lines().nth(1).unwrap().to_string();
    assert_eq!(verify_manifest(EXAMPLE, &sig, &line), Ok(()));
    assert_eq!(public_key_id(&line).unwrap(), key.key_id());
    assert_eq!(
        check_signature(EXAMPLE, Some(&sig), Some(&line), false),
        Ok(Trust::Signed {
            key_id: key.key_id()
        })
    );
    // CRLF line ends (a signature edited on Windows) still verify.
    let crlf = sig.replace('\n', "\r\n");
    assert_eq!(verify_manifest(EXAMPLE, &crlf, &line), Ok(()));
}

#[test]
fn unsigned_is_refused() {
    let pk = vendor().public_key();
    assert_eq!(
        check_signature(EXAMPLE, None, Some(&pk), false),
        Err(SignatureError::Unsigned)
    );
    assert_eq!(
        verify_manifest(EXAMPLE, "", &pk),
        Err(SignatureError::Unsigned)
    );
    // A fact, no advice: the same text is the warning under --allow-unsigned, where "pass
    // --allow-unsigned" would contradict what was done (the CLI adds the advice as a hint).
    assert_eq!(
        SignatureError::Unsigned.to_string(),
        "the manifest is not signed (no signature file next to it)"
    );
}

#[test]
fn other_key_is_refused_with_both_ids() {
    let other = SecretKey::from_seed([9; 32], *b"intruder");
    let sig = sign_manifest(EXAMPLE, &other);
    let err = verify_manifest(EXAMPLE, &sig, &vendor().public_key()).unwrap_err();
    assert_eq!(
        err,
        SignatureError::OtherKey {
            signed_by: other.key_id(),
            trusted: vendor().key_id()
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "the manifest is signed by key {}, not by the key this app trusts ({})",
            other.key_id(),
            vendor().key_id()
        )
    );
    // Same key id, different key (a forged id): the signature does not verify.
    let forged = SecretKey::from_seed([9; 32], *b"vendor01");
    let sig = sign_manifest(EXAMPLE, &forged);
    assert!(matches!(
        verify_manifest(EXAMPLE, &sig, &vendor().public_key()),
        Err(SignatureError::Mismatch { .. })
    ));
}

#[test]
fn every_single_byte_alteration_is_refused() {
    let key = vendor();
    let pk = key.public_key();
    let sig = sign_manifest(EXAMPLE, &key);
    // Every 97th byte flipped, and a byte added or removed at the end.
    for i in (0..EXAMPLE.len()).step_by(97) {
        let mut altered = EXAMPLE.to_vec();
        altered[i] ^= 0x01;
        assert!(
            matches!(
                verify_manifest(&altered, &sig, &pk),
                Err(SignatureError::Mismatch { .. })
            ),
            "byte {i}"
        );
    }
    let mut longer = EXAMPLE.to_vec();
    longer.push(b'\n');
    assert!(verify_manifest(&longer, &sig, &pk).is_err());
    assert!(verify_manifest(&EXAMPLE[..EXAMPLE.len() - 1], &sig, &pk).is_err());
    // The trusted comment is signed too.
    let tampered = sig.replace(
        "trusted comment: gpulibs release manifest",
        "trusted comment: gpulibs release manifesT",
    );
    assert_ne!(tampered, sig);
    assert!(matches!(
        verify_manifest(EXAMPLE, &tampered, &pk),
        Err(SignatureError::Mismatch { .. })
    ));
    assert!(matches!(
        verify_manifest(EXAMPLE, "untrusted comment: x\nnot base64\n", &pk),
        Err(SignatureError::BadSignature(_))
    ));
    assert!(matches!(
        verify_manifest(EXAMPLE, &sig, "RWQnotakey"),
        Err(SignatureError::BadPublicKey(_))
    ));
}

#[test]
fn allow_unsigned_accepts_with_the_reason() {
    let pk = vendor().public_key();
    let other = sign_manifest(EXAMPLE, &SecretKey::from_seed([1; 32], *b"someone!"));
    for (sig, key) in [
        (None, Some(pk.as_str())),
        (Some(other.as_str()), Some(pk.as_str())),
        (Some(other.as_str()), None),
    ] {
        assert!(check_signature(EXAMPLE, sig, key, false).is_err());
        match check_signature(EXAMPLE, sig, key, true) {
            Ok(Trust::UnverifiedAllowed { why }) => assert!(!why.is_empty()),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn secret_keys_and_comments() {
    let key = vendor();
    let again = SecretKey::from_minisign(&key.to_minisign()).unwrap();
    let sig = sign_manifest_with_comment(EXAMPLE, &again, "timestamp:0\tfile:manifest.toml\nx");
    assert!(sig.contains("trusted comment: timestamp:0\tfile:manifest.toml x\n"));
    assert_eq!(verify_manifest(EXAMPLE, &sig, &key.public_key()), Ok(()));
}
