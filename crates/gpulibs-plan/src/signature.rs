//! Manifest signatures: ed25519 in the minisign format, so a vendor can sign with
//! `minisign -S -m manifest.toml` as well as with `gpulibs package`.
//!
//! Verification goes through the `minisign-verify` crate (an implementation independent of the
//! signing code here, so the tests that sign here and verify there check the format, not just
//! round-trip it). Signatures written here are pre-hashed (`ED`, BLAKE2b-512 of the file), as
//! minisign ≥ 0.8 writes them by default; legacy (`Ed`) signatures are refused.
//!
//! Formats (minisign's):
//! - public key: `untrusted comment: …` then base64(`Ed` ‖ key id (8) ‖ ed25519 public key (32));
//! - signature: `untrusted comment: …`, base64(`ED` ‖ key id ‖ ed25519(BLAKE2b-512(file))),
//!   `trusted comment: …`, base64(ed25519(signature ‖ trusted comment));
//! - secret key (unencrypted, `minisign -G -W`): base64(`Ed` ‖ kdf `\0\0` ‖ `B2` ‖ salt (32) ‖
//!   opslimit (8) ‖ memlimit (8) ‖ key id (8) ‖ ed25519 secret+public (64) ‖
//!   BLAKE2b-256(`Ed` ‖ key id ‖ secret+public) (32)). minisign computes that checksum only when
//!   it encrypts a key: the unencrypted keys `minisign -G -W` writes carry 32 zero bytes there.
//!   Such keys are accepted; every key, whatever its checksum, must hold a public half that its
//!   secret half derives, which is what catches a damaged unencrypted key.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use blake2::{Blake2b256, Blake2b512, Digest};
use ed25519_dalek::Signer as _;

/// Why a manifest's signature is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// What to do (pin the key, or `--allow-unsigned`) is the caller's hint: as a warning under
    /// `--allow-unsigned` the advice would contradict what was done.
    #[error("the manifest is not signed (no signature file next to it)")]
    Unsigned,
    #[error("the app pins no manifest public key, so no signature can be checked")]
    NoTrustedKey,
    #[error("the trusted public key is not a minisign public key: {0}")]
    BadPublicKey(String),
    #[error("the signature is not a minisign signature: {0}")]
    BadSignature(String),
    #[error(
        "the manifest is signed by key {signed_by}, not by the key this app trusts ({trusted})"
    )]
    OtherKey { signed_by: String, trusted: String },
    #[error(
        "the signature does not match the manifest (key {key_id}): the manifest or its \
         signature was altered"
    )]
    Mismatch { key_id: String },
    #[error(
        "the signature is in minisign's legacy (non-prehashed) mode; re-sign with a current \
         minisign (`minisign -S`) or `gpulibs package`"
    )]
    Legacy,
    #[error("the secret key is not a minisign secret key: {0}")]
    BadSecretKey(String),
    #[error(
        "the secret key is password-protected; gpulibs reads unencrypted keys only: sign with \
         the minisign CLI, or create the key with `minisign -G -W`"
    )]
    EncryptedSecretKey,
}

/// The key id as minisign prints it: 16 uppercase hex digits of the little-endian number.
fn key_id_text(id: &[u8; 8]) -> String {
    format!("{:016X}", u64::from_le_bytes(*id))
}

/// The base64 line of a minisign file: the first line that is not a comment.
fn payload_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
}

/// The key id of a public key (whole `minisign.pub` text or its base64 line).
pub fn public_key_id(public_key: &str) -> Result<String, SignatureError> {
    let line = payload_line(public_key)
        .ok_or_else(|| SignatureError::BadPublicKey("no key line".into()))?;
    let bin = BASE64
        .decode(line)
        .map_err(|e| SignatureError::BadPublicKey(e.to_string()))?;
    if bin.len() != 42 || &bin[..2] != b"Ed" {
        return Err(SignatureError::BadPublicKey(format!(
            "{} bytes; a minisign public key has 42 starting with `Ed`",
            bin.len()
        )));
    }
    Ok(key_id_text(bin[2..10].try_into().expect("8 bytes")))
}

fn signature_key_id(signature: &str) -> Option<String> {
    let line = payload_line(signature)?;
    let bin = BASE64.decode(line).ok()?;
    (bin.len() == 74).then(|| key_id_text(bin[2..10].try_into().expect("8 bytes")))
}

/// Checks that `signature_text` (a `.minisig` file) is `trusted_public_key`'s signature of
/// exactly `manifest_bytes`. `trusted_public_key` is a `minisign.pub` file's text or its base64
/// line, as the app's configuration pins it.
pub fn verify_manifest(
    manifest_bytes: &[u8],
    signature_text: &str,
    trusted_public_key: &str,
) -> Result<(), SignatureError> {
    let trusted_id = public_key_id(trusted_public_key)?;
    let line = payload_line(trusted_public_key).expect("checked by public_key_id");
    let pk = minisign_verify::PublicKey::from_base64(line)
        .map_err(|e| SignatureError::BadPublicKey(e.to_string()))?;
    if signature_text.trim().is_empty() {
        return Err(SignatureError::Unsigned);
    }
    // minisign-verify wants exactly four lines; tolerate CRLF and surrounding blank lines.
    let normalized: String = signature_text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    let sig = minisign_verify::Signature::decode(&normalized)
        .map_err(|e| SignatureError::BadSignature(e.to_string()))?;
    pk.verify(manifest_bytes, &sig, false).map_err(|e| match e {
        minisign_verify::Error::UnexpectedKeyId => SignatureError::OtherKey {
            signed_by: signature_key_id(&normalized).unwrap_or_else(|| "?".into()),
            trusted: trusted_id.clone(),
        },
        minisign_verify::Error::UnexpectedAlgorithm
        | minisign_verify::Error::UnsupportedLegacyMode => SignatureError::Legacy,
        minisign_verify::Error::InvalidSignature => SignatureError::Mismatch {
            key_id: trusted_id.clone(),
        },
        other => SignatureError::BadSignature(other.to_string()),
    })
}

/// A manifest signing key: an ed25519 key and minisign's 8-byte key id.
#[derive(Clone)]
pub struct SecretKey {
    key_id: [u8; 8],
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.key_id())
    }
}

impl SecretKey {
    /// A key from a 32-byte ed25519 seed and a key id (both random for a real key: the caller
    /// brings the randomness, so this crate needs no RNG).
    pub fn from_seed(seed: [u8; 32], key_id: [u8; 8]) -> Self {
        Self {
            key_id,
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        }
    }

    /// Reads an unencrypted minisign secret key file (`minisign -G -W`).
    pub fn from_minisign(text: &str) -> Result<Self, SignatureError> {
        let bad = |m: &str| SignatureError::BadSecretKey(m.to_string());
        let line = payload_line(text).ok_or_else(|| bad("no key line"))?;
        let bin = BASE64.decode(line).map_err(|e| bad(&e.to_string()))?;
        if bin.len() != 158 {
            return Err(bad(&format!(
                "{} bytes; a minisign secret key has 158",
                bin.len()
            )));
        }
        if &bin[0..2] != b"Ed" || &bin[4..6] != b"B2" {
            return Err(bad("unknown signature or checksum algorithm"));
        }
        match &bin[2..4] {
            [0, 0] => {}
            b"Sc" => return Err(SignatureError::EncryptedSecretKey),
            _ => return Err(bad("unknown key derivation algorithm")),
        }
        let key_id: [u8; 8] = bin[54..62].try_into().expect("8 bytes");
        let keypair: [u8; 64] = bin[62..126].try_into().expect("64 bytes");
        let checksum: [u8; 32] = bin[126..158].try_into().expect("32 bytes");
        match checksum_rule(&checksum, &checksum_of(&key_id, &keypair)) {
            ChecksumRule::Matches | ChecksumRule::NotWritten => {}
            ChecksumRule::Differs => {
                return Err(bad("its checksum does not match its key (damaged file?)"))
            }
        }
        // The check that holds for every writer: the ed25519 public half stored in the key must
        // be the one its secret half derives. It is all minisign's own unencrypted keys (zero
        // checksum) can be checked by.
        let key = ed25519_dalek::SigningKey::from_keypair_bytes(&keypair)
            .map_err(|_| bad("its public half does not match its secret half (damaged file?)"))?;
        Ok(Self { key_id, key })
    }

    /// The key as an unencrypted minisign secret key file, readable by `minisign -S`.
    pub fn to_minisign(&self) -> String {
        let keypair = self.key.to_keypair_bytes();
        let mut bin = Vec::with_capacity(158);
        bin.extend_from_slice(b"Ed");
        bin.extend_from_slice(&[0, 0]);
        bin.extend_from_slice(b"B2");
        bin.extend_from_slice(&[0; 32]); // salt: unused without a KDF
        bin.extend_from_slice(&0u64.to_le_bytes());
        bin.extend_from_slice(&0u64.to_le_bytes());
        bin.extend_from_slice(&self.key_id);
        bin.extend_from_slice(&keypair);
        bin.extend_from_slice(&checksum_of(&self.key_id, &keypair));
        format!(
            "untrusted comment: minisign secret key {}\n{}\n",
            self.key_id(),
            BASE64.encode(bin)
        )
    }

    /// The matching public key as a `minisign.pub` file.
    pub fn public_key(&self) -> String {
        let mut bin = Vec::with_capacity(42);
        bin.extend_from_slice(b"Ed");
        bin.extend_from_slice(&self.key_id);
        bin.extend_from_slice(self.key.verifying_key().as_bytes());
        format!(
            "untrusted comment: minisign public key {}\n{}\n",
            self.key_id(),
            BASE64.encode(bin)
        )
    }

    /// The key id as minisign prints it.
    pub fn key_id(&self) -> String {
        key_id_text(&self.key_id)
    }
}

/// What an unencrypted secret key's checksum field says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChecksumRule {
    /// BLAKE2b-256(`Ed` ‖ key id ‖ keypair), as rsign2 and gpulibs write it.
    Matches,
    /// All zeros: minisign (C, 0.11 at least) computes the checksum only when it encrypts a key,
    /// so `minisign -G -W` leaves the field zero and never reads it.
    NotWritten,
    /// Anything else: the file was altered.
    Differs,
}

fn checksum_rule(stored: &[u8; 32], computed: &[u8; 32]) -> ChecksumRule {
    if stored == computed {
        ChecksumRule::Matches
    } else if stored.iter().all(|&b| b == 0) {
        ChecksumRule::NotWritten
    } else {
        ChecksumRule::Differs
    }
}

fn checksum_of(key_id: &[u8; 8], keypair: &[u8; 64]) -> [u8; 32] {
    let mut h = Blake2b256::new();
    h.update(b"Ed");
    h.update(key_id);
    h.update(keypair);
    h.finalize().into()
}

/// The trusted comment [`sign_manifest`] writes.
pub const DEFAULT_TRUSTED_COMMENT: &str = "gpulibs release manifest";

/// Signs `manifest_bytes`: the text of a `.minisig` file, which `minisign -Vm` also accepts.
pub fn sign_manifest(manifest_bytes: &[u8], key: &SecretKey) -> String {
    sign_manifest_with_comment(manifest_bytes, key, DEFAULT_TRUSTED_COMMENT)
}

/// [`sign_manifest`] with a trusted comment of the caller's (minisign's own is
/// `timestamp:<unix time>\tfile:<name>\thashed`). Line breaks in it are replaced by spaces.
pub fn sign_manifest_with_comment(
    manifest_bytes: &[u8],
    key: &SecretKey,
    trusted_comment: &str,
) -> String {
    let trusted_comment = trusted_comment.replace(['\r', '\n'], " ");
    let digest = Blake2b512::digest(manifest_bytes);
    let signature = key.key.sign(&digest).to_bytes();
    let mut global_input = signature.to_vec();
    global_input.extend_from_slice(trusted_comment.as_bytes());
    let global = key.key.sign(&global_input).to_bytes();
    let mut line = Vec::with_capacity(74);
    line.extend_from_slice(b"ED");
    line.extend_from_slice(&key.key_id);
    line.extend_from_slice(&signature);
    format!(
        "untrusted comment: signature from gpulibs secret key {}\n{}\ntrusted comment: {}\n{}\n",
        key.key_id(),
        BASE64.encode(line),
        trusted_comment,
        BASE64.encode(global)
    )
}

/// How far a manifest is trusted, for the plan's warnings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "trust")]
pub enum Trust {
    /// Signed by the pinned key.
    Signed { key_id: String },
    /// Not verified, accepted because the user passed `--allow-unsigned`.
    UnverifiedAllowed { why: String },
    /// Built on this machine (a PyPI-backed manifest from pip's report): nothing to verify.
    BuiltLocally,
}

/// Verifies a downloaded manifest, or accepts it unverified when `allow_unsigned` is set.
/// `signature_text` is `None` when no signature was published; `trusted_public_key` is `None`
/// when the app pins no key.
pub fn check_signature(
    manifest_bytes: &[u8],
    signature_text: Option<&str>,
    trusted_public_key: Option<&str>,
    allow_unsigned: bool,
) -> Result<Trust, SignatureError> {
    let result = match (signature_text, trusted_public_key) {
        (None, _) => Err(SignatureError::Unsigned),
        (Some(_), None) => Err(SignatureError::NoTrustedKey),
        (Some(sig), Some(key)) => verify_manifest(manifest_bytes, sig, key).and_then(|()| {
            Ok(Trust::Signed {
                key_id: public_key_id(key)?,
            })
        }),
    };
    match result {
        Ok(t) => Ok(t),
        Err(e) if allow_unsigned => Ok(Trust::UnverifiedAllowed { why: e.to_string() }),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// minisign's own test vectors (from minisign-verify's tests): a key, the file `test`, its
    /// prehashed and legacy signatures.
    #[test]
    fn accepts_a_signature_made_by_minisign() {
        let pk = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
        assert_eq!(public_key_id(pk).unwrap(), "E7620F1842B4E81F");
        let sig = "untrusted comment: signature from minisign secret key\n\
                   RUQf6LRCGA9i559r3g7V1qNyJDApGip8MfqcadIgT9CuhV3EMhHoN1mGTkUidF/z7SrlQgXdy8ofjb7bNJJylDOocrCo8KLzZwo=\n\
                   trusted comment: timestamp:1556193335\tfile:test\n\
                   y/rUw2y8/hOUYjZU71eHp/Wo1KZ40fGy2VJEDl34XMJM+TX48Ss/17u3IvIfbVR1FkZZSNCisQbuQY+bHwhEBg==";
        assert_eq!(verify_manifest(b"test", sig, pk), Ok(()));
        assert!(matches!(
            verify_manifest(b"tesT", sig, pk),
            Err(SignatureError::Mismatch { .. })
        ));
        let legacy = "untrusted comment: signature from minisign secret key\n\
                      RWQf6LRCGA9i59SLOFxz6NxvASXDJeRtuZykwQepbDEGt87ig1BNpWaVWuNrm73YiIiJbq71Wi+dP9eKL8OC351vwIasSSbXxwA=\n\
                      trusted comment: timestamp:1555779966\tfile:test\n\
                      QtKMXWyYcwdpZAlPF7tE2ENJkRd1ujvKjlj1m9RtHTBnZPa5WKU5uWRs5GoP5M/VqE81QFuMKI5k/SfNQUaOAA==";
        assert_eq!(
            verify_manifest(b"test", legacy, pk),
            Err(SignatureError::Legacy)
        );
    }

    #[test]
    fn secret_key_round_trips_through_minisign_format() {
        let key = SecretKey::from_seed([7; 32], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(key.key_id(), "0807060504030201");
        let text = key.to_minisign();
        let again = SecretKey::from_minisign(&text).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        // One flipped bit in the key body fails the checksum (and the halves' agreement).
        let line = payload_line(&text).unwrap();
        let mut bin = BASE64.decode(line).unwrap();
        bin[70] ^= 1;
        let damaged = format!("untrusted comment: x\n{}\n", BASE64.encode(&bin));
        assert!(matches!(
            SecretKey::from_minisign(&damaged),
            Err(SignatureError::BadSecretKey(_))
        ));
        bin[70] ^= 1;
        // minisign's own unencrypted keys carry a zero checksum: accepted, and a flipped bit in
        // the secret half is still caught, by the public half it no longer derives.
        let mut zero = bin.clone();
        zero[126..].fill(0);
        let minisign_style = format!("untrusted comment: x\n{}\n", BASE64.encode(&zero));
        assert_eq!(
            SecretKey::from_minisign(&minisign_style)
                .unwrap()
                .public_key(),
            key.public_key()
        );
        zero[70] ^= 1;
        let damaged = format!("untrusted comment: x\n{}\n", BASE64.encode(&zero));
        assert!(matches!(
            SecretKey::from_minisign(&damaged),
            Err(SignatureError::BadSecretKey(_))
        ));
        bin[2..4].copy_from_slice(b"Sc");
        let encrypted = format!("untrusted comment: x\n{}\n", BASE64.encode(&bin));
        assert_eq!(
            SecretKey::from_minisign(&encrypted).unwrap_err(),
            SignatureError::EncryptedSecretKey
        );
    }

    #[test]
    fn checksum_rules() {
        let computed = [7u8; 32];
        let mut other = computed;
        other[31] = 8;
        for (stored, want) in [
            (computed, ChecksumRule::Matches),
            ([0u8; 32], ChecksumRule::NotWritten),
            (other, ChecksumRule::Differs),
        ] {
            assert_eq!(checksum_rule(&stored, &computed), want, "{stored:?}");
        }
    }
}
