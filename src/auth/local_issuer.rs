//! The local identity mode's token issuer: an RSA key kept in the data
//! directory, its JWKS, and minting of access tokens.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use rsa::{
    RsaPrivateKey,
    pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding},
    traits::PublicKeyParts,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// File name of the signing key inside the data directory.
pub const KEY_FILE: &str = "signing-key.pem";

/// The local issuer's signing key and what is derived from it.
#[derive(Clone)]
pub struct LocalIssuer {
    issuer: String,
    audience: String,
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Value,
}

impl LocalIssuer {
    /// Loads the key from `data_dir`, creating it (mode 0600) on first use.
    pub fn load_or_create(data_dir: &Path, issuer: &str, audience: &str) -> anyhow::Result<Self> {
        let path = data_dir.join(KEY_FILE);
        let pem = match std::fs::read_to_string(&path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key(data_dir, &path)?,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read the signing key {}", path.display()));
            }
        };
        Self::from_pem(&pem, issuer, audience)
            .with_context(|| format!("the signing key {} is not a PKCS#8 RSA key", path.display()))
    }

    /// Builds the issuer from a PKCS#8 PEM RSA private key.
    pub fn from_pem(pem: &str, issuer: &str, audience: &str) -> anyhow::Result<Self> {
        let key = RsaPrivateKey::from_pkcs8_pem(pem)?;
        let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
        let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(n.as_bytes())[..12]);
        Ok(Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes())?,
            decoding: DecodingKey::from_rsa_components(&n, &e)?,
            jwk: json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e}),
            kid,
        })
    }

    /// Key id of the signing key, as in the JWKS and the token header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key for verification.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// The JSON Web Key Set served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    /// Mints an access token for `sub`, valid for `ttl_secs`, with extra claims
    /// (e.g. `scope`, `email`) merged in.
    pub fn mint(
        &self,
        sub: &str,
        ttl_secs: u64,
        extra: serde_json::Map<String, Value>,
    ) -> anyhow::Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let mut claims = extra;
        claims.insert("iss".into(), self.issuer.clone().into());
        claims.insert("aud".into(), self.audience.clone().into());
        claims.insert("sub".into(), sub.into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + ttl_secs).into());
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &self.encoding)?)
    }
}

/// Generates a key and publishes it atomically without ever replacing a key
/// another process created meanwhile: the key is written to a temporary file
/// and hard-linked into place, which fails if the name exists, so readers never
/// see half a key and the first writer wins.
fn create_key(data_dir: &Path, path: &PathBuf) -> anyhow::Result<String> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let key =
        RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).context("cannot generate an RSA key")?;
    let pem = key.to_pkcs8_pem(LineEnding::LF)?.to_string();
    let tmp = data_dir.join(format!(".{KEY_FILE}.{}.tmp", uuid::Uuid::new_v4()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(pem.as_bytes())
                .and_then(|()| file.sync_all())
        })
        .with_context(|| format!("cannot write the signing key {}", tmp.display()));
    let linked = written.and_then(|()| match std::fs::hard_link(&tmp, path) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "created a new local signing key");
            Ok(pem)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the signing key {}", path.display())),
        Err(e) => {
            Err(e).with_context(|| format!("cannot create the signing key {}", path.display()))
        }
    });
    let _ = std::fs::remove_file(&tmp);
    linked
}
