//! Compact JWS (JWT) signed with ES256 — ECDSA P-256 with SHA-256, which upstream's
//! service-account token signer also accepts. Built on `ring` (already the TLS provider)
//! rather than a JWT crate: only one algorithm is ever produced or accepted, so `alg`
//! confusion (`none`, HS256 with the public key) cannot happen.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject as _;
use serde_json::{Value, json};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The one JWS algorithm produced and accepted.
pub const ALG: &str = "ES256";

/// A public JSON Web Key, fields in the order upstream's go-jose writes them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Jwk {
    #[serde(rename = "use")]
    pub key_use: &'static str,
    pub kty: &'static str,
    pub kid: String,
    pub crv: &'static str,
    pub alg: &'static str,
    pub x: String,
    pub y: String,
}

/// Why the signing key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a PKCS#8 ECDSA P-256 private key")]
    Invalid { path: PathBuf },
    #[error("generating the service-account signing key failed")]
    Generate,
}

/// Why a token was refused (the text goes into TokenReview errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("malformed token")]
    Malformed,
    #[error("unexpected signing algorithm")]
    Algorithm,
    #[error("signature is invalid")]
    Signature,
    #[error("signing failed")]
    Sign,
}

/// The server's service-account signing key.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    public: Vec<u8>,
    kid: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    // The private key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Load the key at `path` (PEM, PKCS#8), or generate and write one (mode 0600) if the
    /// file does not exist. A present but unreadable key is an error, never replaced:
    /// replacing it would invalidate every issued token.
    pub fn load_or_create(path: &Path) -> Result<SigningKey, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read(path) {
            Ok(pem) => {
                let der =
                    PrivatePkcs8KeyDer::from_pem_slice(&pem).map_err(|_| KeyError::Invalid {
                        path: path.to_path_buf(),
                    })?;
                Self::from_pkcs8(der.secret_pkcs8_der()).ok_or_else(|| KeyError::Invalid {
                    path: path.to_path_buf(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let rng = SystemRandom::new();
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| KeyError::Generate)?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let tmp = path.with_extension("key.tmp");
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(io)?;
                f.write_all(pem_encode(doc.as_ref()).as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(io)?;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
                    .map_err(io)?;
                std::fs::rename(&tmp, path).map_err(io)?;
                Self::from_pkcs8(doc.as_ref()).ok_or(KeyError::Generate)
            }
            Err(e) => Err(io(e)),
        }
    }

    fn from_pkcs8(der: &[u8]) -> Option<SigningKey> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng).ok()?;
        let public = pair.public_key().as_ref().to_vec();
        // The uncompressed point `04 || X || Y` (what `public_jwk` splits).
        if public.len() != 65 || public.first() != Some(&0x04) {
            return None;
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, &public);
        let kid = URL_SAFE_NO_PAD.encode(digest.as_ref());
        Some(SigningKey {
            pair,
            public,
            kid,
            rng,
        })
    }

    /// The public half as a JSON Web Key (RFC 7517/7518), as the service-account issuer
    /// discovery key set publishes it. `ring` keeps the public key as the uncompressed
    /// SEC1 point `04 || X || Y`, each coordinate 32 bytes big-endian; JWK wants them
    /// base64url without padding at that full length (RFC 7518 §6.2.1.2).
    pub fn public_jwk(&self) -> Jwk {
        // The shape is checked when the key is loaded (`from_pkcs8`).
        let (x, y) = self
            .public
            .get(1..)
            .and_then(|xy| xy.split_at_checked(32))
            .unwrap_or_default();
        Jwk {
            key_use: "sig",
            kty: "EC",
            kid: self.kid.clone(),
            crv: "P-256",
            alg: ALG,
            x: URL_SAFE_NO_PAD.encode(x),
            y: URL_SAFE_NO_PAD.encode(y),
        }
    }

    /// A signed token carrying `claims`.
    pub fn sign(&self, claims: &Value) -> Result<String, JwtError> {
        let header = json!({"alg": ALG, "kid": self.kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .pair
            .sign(&self.rng, input.as_bytes())
            .map_err(|_| JwtError::Sign)?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())))
    }

    /// The claims of a token signed by this key (signature checked; claims not validated).
    pub fn verify(&self, token: &str) -> Result<Value, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header: Value = decode_json(h)?;
        if header.get("alg").and_then(Value::as_str) != Some(ALG) {
            return Err(JwtError::Algorithm);
        }
        if let Some(kid) = header.get("kid").and_then(Value::as_str)
            && kid != self.kid
        {
            return Err(JwtError::Signature);
        }
        let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
        let input_len = h.len() + 1 + p.len();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.public)
            .verify(&token.as_bytes()[..input_len], &sig)
            .map_err(|_| JwtError::Signature)?;
        decode_json(p)
    }
}

fn decode_json(part: &str) -> Result<Value, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed)?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(JwtError::Malformed)
    }
}

/// PKCS#8 DER as a `PRIVATE KEY` PEM block.
fn pem_encode(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(dir: &Path) -> SigningKey {
        SigningKey::load_or_create(&dir.join("service.key")).expect("key")
    }

    #[test]
    fn sign_verify_and_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let k = key(dir.path());
        let claims = json!({"sub": "system:serviceaccount:default:default", "exp": 1});
        let token = k.sign(&claims).expect("sign");
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(k.verify(&token), Ok(claims.clone()));
        // The same key is read back after a restart; its tokens stay valid.
        let again = key(dir.path());
        assert_eq!(again.verify(&token), Ok(claims));
        let mode = std::fs::metadata(dir.path().join("service.key"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn foreign_tampered_and_unsigned_tokens_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let other = tempfile::tempdir().expect("tempdir");
        let k = key(dir.path());
        let foreign = key(other.path()).sign(&json!({"sub": "x"})).expect("sign");
        assert!(k.verify(&foreign).is_err());
        let token = k.sign(&json!({"sub": "a"})).expect("sign");
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(r#"{"sub":"b"}"#),
            parts[2]
        );
        assert_eq!(k.verify(&forged), Err(JwtError::Signature));
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            parts[1]
        );
        assert_eq!(k.verify(&none), Err(JwtError::Algorithm));
        assert_eq!(k.verify("abc"), Err(JwtError::Malformed));
        assert_eq!(k.verify("a.b.c.d"), Err(JwtError::Malformed));
    }

    #[test]
    fn public_jwk_verifies_tokens_of_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let k = key(dir.path());
        let jwk = k.public_jwk();
        assert_eq!(
            (jwk.key_use, jwk.kty, jwk.crv, jwk.alg),
            ("sig", "EC", "P-256", "ES256")
        );
        let token = k.sign(&json!({"sub": "a"})).expect("sign");
        let parts: Vec<&str> = token.split('.').collect();
        let header: Value = decode_json(parts[0]).expect("header");
        assert_eq!(header["kid"], jwk.kid.as_str());
        assert_eq!(jwk.kid, k.kid);
        // Rebuild the public key from nothing but the JWK coordinates and check the
        // token's signature with it, as a relying party would.
        let x = URL_SAFE_NO_PAD.decode(&jwk.x).expect("x");
        let y = URL_SAFE_NO_PAD.decode(&jwk.y).expect("y");
        assert_eq!((x.len(), y.len()), (32, 32));
        let mut point = vec![0x04];
        point.extend(&x);
        point.extend(&y);
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).expect("sig");
        let input = format!("{}.{}", parts[0], parts[1]);
        let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point);
        assert!(public.verify(input.as_bytes(), &sig).is_ok());
        // Another key's token does not verify under it.
        let other = tempfile::tempdir().expect("tempdir");
        let foreign = key(other.path()).sign(&json!({"sub": "a"})).expect("sign");
        let fp: Vec<&str> = foreign.split('.').collect();
        let fsig = URL_SAFE_NO_PAD.decode(fp[2]).expect("sig");
        let finput = format!("{}.{}", fp[0], fp[1]);
        assert!(public.verify(finput.as_bytes(), &fsig).is_err());
        // Serialized with upstream's member names and order.
        let text = serde_json::to_string(&jwk).expect("json");
        assert!(
            text.starts_with(&format!(
                r#"{{"use":"sig","kty":"EC","kid":"{}","crv":"P-256","alg":"ES256","x":""#,
                jwk.kid
            )),
            "{text}"
        );
    }

    #[test]
    fn garbage_key_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("service.key");
        std::fs::write(&path, "nope").expect("write");
        assert!(matches!(
            SigningKey::load_or_create(&path),
            Err(KeyError::Invalid { .. })
        ));
    }
}
