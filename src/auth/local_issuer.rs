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
use sea_orm::{
    ConnectionTrait, DatabaseConnection, FromQueryResult,
    sea_query::{Expr, ExprTrait, OnConflict, Query},
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

    /// Loads the signing key that every instance on `db` shares, creating it
    /// on first use, so a token minted by any instance (or by
    /// `music-gateway token` with the same `DATABASE_URL`) is accepted by all.
    ///
    /// A key file in `data_dir` (from a version that kept the key there, or
    /// put there by an operator) becomes the shared key when the database has
    /// none yet, so the tokens it signed stay valid. When several instances
    /// start at once, the first key stored wins and every instance reads it.
    pub async fn load_or_create_shared(
        db: &DatabaseConnection,
        data_dir: &Path,
        issuer: &str,
        audience: &str,
    ) -> anyhow::Result<Self> {
        if let Some(pem) = stored_pem(db).await? {
            return Self::from_pem(&pem, issuer, audience)
                .context("the signing key in the database is not a PKCS#8 RSA key");
        }
        let path = data_dir.join(KEY_FILE);
        let candidate = match std::fs::read_to_string(&path) {
            Ok(pem) => {
                Self::from_pem(&pem, issuer, audience).with_context(|| {
                    format!("the signing key {} is not a PKCS#8 RSA key", path.display())
                })?;
                tracing::info!(path = %path.display(), "sharing the data directory's signing key through the database");
                pem
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => generate_pem()?,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read the signing key {}", path.display()));
            }
        };
        let backend = db.get_database_backend();
        db.execute_raw(
            backend.build(
                Query::insert()
                    .into_table("signing_keys")
                    .columns(["id", "pem", "created_at"])
                    .values_panic([1.into(), candidate.into(), chrono::Utc::now().into()])
                    .on_conflict(OnConflict::column("id").do_nothing().to_owned()),
            ),
        )
        .await
        .context("cannot store the signing key in the database")?;
        let pem = stored_pem(db)
            .await?
            .context("the signing key is missing from the database right after it was stored")?;
        Self::from_pem(&pem, issuer, audience)
            .context("the signing key in the database is not a PKCS#8 RSA key")
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
    let pem = generate_pem()?;
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

/// A new 2048-bit RSA key as PKCS#8 PEM.
fn generate_pem() -> anyhow::Result<String> {
    let key =
        RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).context("cannot generate an RSA key")?;
    Ok(key.to_pkcs8_pem(LineEnding::LF)?.to_string())
}

#[derive(FromQueryResult)]
struct StoredKey {
    pem: String,
}

async fn stored_pem(db: &DatabaseConnection) -> anyhow::Result<Option<String>> {
    let backend = db.get_database_backend();
    let row = StoredKey::find_by_statement(
        backend.build(
            Query::select()
                .column("pem")
                .from("signing_keys")
                .and_where(Expr::col("id").eq(1)),
        ),
    )
    .one(db)
    .await
    .context("cannot read the signing key from the database")?;
    Ok(row.map(|r| r.pem))
}
