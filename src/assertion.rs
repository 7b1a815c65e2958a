//! The signed identity assertion (`identity_headers.assertion`): a compact JWT sent to the
//! upstream with every authenticated request, so that the upstream can check that the request
//! really came through Portcullis and was meant for it, even where network isolation alone
//! cannot be relied on.
//!
//! Claims: `iss`, `aud` (both configured), `sub` (the user), `roles`, `iat` and `exp`
//! ([`ASSERTION_LIFETIME`] later); the header names the key in `kid`. HS256 signs with a secret
//! of its own that the upstream shares; EdDSA (Ed25519) signs with a private key whose public
//! half is served as a JWKS on the admin listener ([`AssertionSigner::jwks`]). Signing is done
//! by `jsonwebtoken`; the public key and its RFC 7638 thumbprint come from `ring`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{HeaderName, HeaderValue};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// How long an assertion is valid after it is issued, in seconds.
pub const ASSERTION_LIFETIME: u64 = 60;
/// Default `identity_headers.assertion.header`.
pub const DEFAULT_ASSERTION_HEADER: &str = "X-Auth-Assertion";
/// Default `identity_headers.assertion.issuer`.
pub const DEFAULT_ASSERTION_ISSUER: &str = "portcullis";
/// Shortest HS256 secret accepted, in bytes.
pub const MIN_HS256_SECRET_LEN: usize = 32;

/// `identity_headers.assertion`, validated, with its key loaded.
#[derive(Debug, Clone)]
pub struct AssertionConfig {
    /// The header carrying the JWT.
    pub header: HeaderName,
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub audience: String,
    /// The signing key.
    pub signer: AssertionSigner,
}

/// A signing key with its id (and, for EdDSA, its public JWK).
#[derive(Clone)]
pub struct AssertionSigner {
    algorithm: Algorithm,
    key: EncodingKey,
    kid: String,
    public_jwk: Option<serde_json::Value>,
}

impl std::fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionSigner")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Why a signing key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionKeyError {
    /// An HS256 secret under [`MIN_HS256_SECRET_LEN`] bytes.
    #[error("the secret must be at least {MIN_HS256_SECRET_LEN} bytes")]
    ShortSecret,
    /// Not a PEM `PRIVATE KEY` (PKCS#8).
    #[error("not a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----)")]
    NotPkcs8Pem,
    /// PKCS#8, but not an Ed25519 key ring accepts.
    #[error("not an Ed25519 private key")]
    NotEd25519,
}

/// The claims of one assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claims<'a> {
    /// Issuer.
    pub iss: &'a str,
    /// Audience.
    pub aud: &'a str,
    /// The user.
    pub sub: &'a str,
    /// The user's roles.
    pub roles: &'a [String],
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Expires at: `iat` + [`ASSERTION_LIFETIME`].
    pub exp: u64,
}

impl AssertionSigner {
    /// HS256 with `secret`; `kid` defaults to a one-way digest of the secret (so two secrets
    /// never share an id, and the id reveals nothing).
    pub fn hs256(secret: &[u8], kid: Option<String>) -> Result<Self, AssertionKeyError> {
        if secret.len() < MIN_HS256_SECRET_LEN {
            return Err(AssertionKeyError::ShortSecret);
        }
        let kid = kid.unwrap_or_else(|| {
            let mut digest = Sha256::new();
            digest.update(b"portcullis assertion kid\0");
            digest.update(secret);
            hex::encode(&digest.finalize()[..8])
        });
        Ok(Self {
            algorithm: Algorithm::HS256,
            key: EncodingKey::from_secret(secret),
            kid,
            public_jwk: None,
        })
    }

    /// EdDSA with the Ed25519 key in a PKCS#8 PEM (`openssl genpkey -algorithm ed25519`);
    /// `kid` defaults to the public key's RFC 7638 JWK thumbprint.
    pub fn ed25519_pem(pem: &[u8], kid: Option<String>) -> Result<Self, AssertionKeyError> {
        use rustls_pki_types::pem::PemObject as _;
        use rustls_pki_types::PrivatePkcs8KeyDer;
        let der =
            PrivatePkcs8KeyDer::from_pem_slice(pem).map_err(|_| AssertionKeyError::NotPkcs8Pem)?;
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
            .map_err(|_| AssertionKeyError::NotEd25519)?;
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let kid = kid.unwrap_or_else(|| {
            // RFC 7638: the required members, sorted, no whitespace.
            let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
            URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
        });
        let public_jwk = serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": x,
            "kid": kid,
            "alg": "EdDSA",
            "use": "sig",
        });
        Ok(Self {
            algorithm: Algorithm::EdDSA,
            key: EncodingKey::from_ed_der(der.secret_pkcs8_der()),
            kid,
            public_jwk: Some(public_jwk),
        })
    }

    /// The key id sent as `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public keys as a JWK Set, for EdDSA; `None` for HS256 (nothing is public).
    pub fn jwks(&self) -> Option<serde_json::Value> {
        self.public_jwk
            .as_ref()
            .map(|jwk| serde_json::json!({ "keys": [jwk] }))
    }

    /// The compact JWT for `claims`.
    pub fn sign(&self, claims: &Claims<'_>) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key)
            .expect("a loaded key signs any serializable claims")
    }
}

impl AssertionConfig {
    /// The header value asserting `user` with `roles`, issued at `now` (seconds since the Unix
    /// epoch).
    pub fn assert(&self, user: &str, roles: &[String], now: u64) -> HeaderValue {
        let token = self.signer.sign(&Claims {
            iss: &self.issuer,
            aud: &self.audience,
            sub: user,
            roles,
            iat: now,
            exp: now.saturating_add(ASSERTION_LIFETIME),
        });
        HeaderValue::try_from(token).expect("a compact JWT is base64url and dots")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use ring::signature::{UnparsedPublicKey, ED25519};

    const SECRET: &[u8] = b"assertion-secret-0123456789abcdef";

    fn parts(token: &str) -> (serde_json::Value, serde_json::Value, Vec<u8>, String) {
        let pieces: Vec<&str> = token.split('.').collect();
        assert_eq!(pieces.len(), 3, "{token}");
        let json = |s: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap();
        (
            json(pieces[0]),
            json(pieces[1]),
            URL_SAFE_NO_PAD.decode(pieces[2]).unwrap(),
            format!("{}.{}", pieces[0], pieces[1]),
        )
    }

    fn config(signer: AssertionSigner) -> AssertionConfig {
        AssertionConfig {
            header: HeaderName::from_static("x-auth-assertion"),
            issuer: "https://gw.example.test".into(),
            audience: "orders-api".into(),
            signer,
        }
    }

    #[test]
    fn hs256_assertions_carry_the_claims_and_verify_with_the_secret() {
        let config = config(AssertionSigner::hs256(SECRET, None).unwrap());
        let roles = vec!["reader".to_owned(), "admin".to_owned()];
        let value = config.assert("alice", &roles, 1_700_000_000);
        let (header, claims, signature, signed) = parts(value.to_str().unwrap());
        assert_eq!(header["alg"], "HS256");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["kid"], config.signer.kid());
        assert_eq!(
            claims,
            serde_json::json!({
                "iss": "https://gw.example.test", "aud": "orders-api", "sub": "alice",
                "roles": ["reader", "admin"], "iat": 1_700_000_000u64, "exp": 1_700_000_060u64,
            })
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(signed.as_bytes());
        mac.verify_slice(&signature).unwrap();
        assert!(config.signer.jwks().is_none());
    }

    #[test]
    fn short_secrets_are_refused_and_kids_differ_per_secret() {
        assert_eq!(
            AssertionSigner::hs256(&SECRET[..31], None).unwrap_err(),
            AssertionKeyError::ShortSecret
        );
        let a = AssertionSigner::hs256(SECRET, None).unwrap();
        let b = AssertionSigner::hs256(b"another-secret-0123456789abcdef01", None).unwrap();
        assert_ne!(a.kid(), b.kid());
        assert_eq!(a.kid().len(), 16);
        let named = AssertionSigner::hs256(SECRET, Some("k1".into())).unwrap();
        assert_eq!(named.kid(), "k1");
    }

    fn ed25519_pem() -> String {
        let rng = ring::rand::SystemRandom::new();
        let der = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n")
    }

    #[test]
    fn eddsa_assertions_verify_with_the_published_key() {
        let signer = AssertionSigner::ed25519_pem(ed25519_pem().as_bytes(), None).unwrap();
        let jwks = signer.jwks().unwrap();
        let jwk = &jwks["keys"][0];
        assert_eq!(
            (&jwk["kty"], &jwk["crv"], &jwk["alg"]),
            (&"OKP".into(), &"Ed25519".into(), &"EdDSA".into())
        );
        assert_eq!(jwk["kid"], signer.kid());
        let config = config(signer);
        let value = config.assert("bob", &[], 10);
        let (header, claims, signature, signed) = parts(value.to_str().unwrap());
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["kid"], jwk["kid"]);
        assert_eq!(
            (claims["iat"].as_u64(), claims["exp"].as_u64()),
            (Some(10), Some(70))
        );
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        UnparsedPublicKey::new(&ED25519, x)
            .verify(signed.as_bytes(), &signature)
            .unwrap();
    }

    #[test]
    fn an_openssl_key_without_its_public_half_loads() {
        // `openssl genpkey -algorithm ed25519`: PKCS#8 v1, the public key left out. A test key.
        let pem = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEIGGyob0FvjKrqhyAFDNtvoBOXRq1vkBOj6kLlcYKWJOo\n\
                   -----END PRIVATE KEY-----\n";
        let signer = AssertionSigner::ed25519_pem(pem.as_bytes(), None).unwrap();
        let jwks = signer.jwks().unwrap();
        let x = URL_SAFE_NO_PAD
            .decode(jwks["keys"][0]["x"].as_str().unwrap())
            .unwrap();
        let token = signer.sign(&Claims {
            iss: "i",
            aud: "a",
            sub: "s",
            roles: &[],
            iat: 1,
            exp: 61,
        });
        let (_, _, signature, signed) = parts(&token);
        UnparsedPublicKey::new(&ED25519, x)
            .verify(signed.as_bytes(), &signature)
            .unwrap();
    }

    #[test]
    fn the_default_eddsa_kid_is_the_rfc7638_thumbprint() {
        // RFC 8037 appendix A: the example key, and (A.3) its thumbprint.
        let d = URL_SAFE_NO_PAD
            .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
            .unwrap();
        let mut der = hex::decode("302e020100300506032b657004220420").unwrap();
        der.extend_from_slice(&d);
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
        let signer = AssertionSigner::ed25519_pem(pem.as_bytes(), None).unwrap();
        assert_eq!(signer.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        assert_eq!(
            signer.jwks().unwrap()["keys"][0]["x"],
            "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        );
    }

    #[test]
    fn other_keys_are_refused() {
        assert_eq!(
            AssertionSigner::ed25519_pem(b"not a pem", None).unwrap_err(),
            AssertionKeyError::NotPkcs8Pem
        );
        let rng = ring::rand::SystemRandom::new();
        let p256 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(p256.as_ref());
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
        assert_eq!(
            AssertionSigner::ed25519_pem(pem.as_bytes(), None).unwrap_err(),
            AssertionKeyError::NotEd25519
        );
    }
}
