//! Access tokens for the simulated users in the local identity mode, signed
//! with the gateway's own key file exactly as `music-gateway token` signs
//! them. (In auth0 mode the fake Auth0 mints them.)

use std::path::Path;

use anyhow::{Context, bail};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::{
    RsaPrivateKey,
    pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding},
    traits::PublicKeyParts,
};
use serde_json::{Map, Value};

/// Signs RS256 tokens with the local issuer's key.
pub struct LocalSigner {
    encoding: EncodingKey,
    kid: String,
    issuer: String,
    audience: String,
}

impl LocalSigner {
    /// Loads the PKCS#8 key at `key_path` and takes its `kid` from `jwks`
    /// (the gateway's `/.well-known/jwks.json`): the key whose modulus is
    /// this key's, so a token's header names the key the gateway publishes.
    pub fn new(
        key_path: &Path,
        jwks: &Value,
        issuer: &str,
        audience: &str,
    ) -> anyhow::Result<Self> {
        let pem = std::fs::read_to_string(key_path)
            .with_context(|| format!("cannot read the signing key {}", key_path.display()))?;
        let key = RsaPrivateKey::from_pkcs8_pem(&pem)
            .with_context(|| format!("{} is not a PKCS#8 RSA key", key_path.display()))?;
        let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
        let kid = jwks["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|jwk| jwk["n"].as_str() == Some(n.as_str()))
            .and_then(|jwk| jwk["kid"].as_str())
            .map(String::from);
        let Some(kid) = kid else {
            bail!(
                "the gateway's JWKS does not publish the key in {}",
                key_path.display()
            );
        };
        Ok(Self {
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes())?,
            kid,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        })
    }

    /// A token for `sub` issued at `iat`, expiring at `exp` (UNIX seconds).
    pub fn mint(&self, sub: &str, iat: i64, exp: i64) -> anyhow::Result<String> {
        let mut claims = Map::new();
        claims.insert("iss".into(), self.issuer.clone().into());
        claims.insert("aud".into(), self.audience.clone().into());
        claims.insert("sub".into(), sub.into());
        claims.insert("iat".into(), iat.into());
        claims.insert("exp".into(), exp.into());
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding).context("cannot sign a token")
    }
}

/// Writes a new RSA signing key to `path` (PKCS#8 PEM).
pub fn write_signing_key(path: &Path) -> anyhow::Result<()> {
    let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).context("cannot generate a key")?;
    let pem = key.to_pkcs8_pem(LineEnding::LF)?;
    std::fs::write(path, pem.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}
