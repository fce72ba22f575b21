//! The settings of the GraphQL pipeline's stages (see `http::pipeline`),
//! one `Args` block a stage, flattened into [`super::Settings`] and
//! validated here, below every layer that uses them. The types a stage
//! runs with that are plain data (its bounds, its list of headers) are
//! defined here too; what a stage does with them is the stage's.

use std::{path::PathBuf, sync::Arc};

use axum::http::HeaderName;
use clap::{Args, builder::BoolishValueParser};

use super::ConfigError;

/// The document stage: APQ and trusted documents.
#[derive(Debug, Clone, Args)]
pub struct DocumentSettings {
    /// Automatic persisted queries (Apollo's APQ): `true` or `false`.
    #[arg(long, env = "APQ", default_value = "true", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, global = true)]
    pub apq: bool,
    /// Bytes of query text the APQ store keeps in memory, per process.
    #[arg(long, env = "APQ_CACHE_BYTES", default_value_t = 8 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(64 * 1024..=1024 * 1024 * 1024), global = true)]
    pub apq_cache_bytes: u64,
    /// A manifest of trusted documents (graphql-codegen's
    /// persisted-documents.json or Apollo's persisted-query-manifest.json):
    /// when set, only its documents run.
    #[arg(long, env = "TRUSTED_DOCUMENTS", global = true)]
    pub trusted_documents: Option<PathBuf>,
    /// Tokens with `write:app_metadata` may run documents outside the manifest.
    #[arg(long, env = "TRUSTED_DOCUMENTS_ALLOW_ADMIN", default_value = "false", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, global = true)]
    pub trusted_documents_allow_admin: bool,
    /// Trusted documents must be sent by id, never as text.
    #[arg(long, env = "TRUSTED_DOCUMENTS_REQUIRE_ID", default_value = "false", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, global = true)]
    pub trusted_documents_require_id: bool,
}

impl DocumentSettings {
    /// Bytes of the APQ store; `None`: APQ is off.
    pub fn apq_cache_bytes(&self) -> Option<usize> {
        // The range check keeps this well inside usize.
        self.apq.then_some(self.apq_cache_bytes as usize)
    }

    /// Where the manifest is and how it is enforced, when only trusted
    /// documents run. The document stage loads it at start-up.
    pub fn trusted_documents(&self) -> Option<TrustedSettings> {
        self.trusted_documents.clone().map(|path| TrustedSettings {
            path,
            allow_admin: self.trusted_documents_allow_admin,
            require_id: self.trusted_documents_require_id,
        })
    }
}

/// The trusted documents' manifest and its switches (`TRUSTED_DOCUMENTS*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedSettings {
    pub path: PathBuf,
    /// Tokens with `write:app_metadata` may run any document.
    pub allow_admin: bool,
    /// Documents must be sent by id, never as text.
    pub require_id: bool,
}

/// The headers Apollo recommends, one of which a simple request must carry.
pub const DEFAULT_REQUIRED_HEADERS: &str = "x-apollo-operation-name,apollo-require-preflight";

/// The CSRF prevention stage.
#[derive(Debug, Clone, Args)]
pub struct CsrfSettings {
    /// Refuse GraphQL requests a browser could send cross-site without a
    /// CORS preflight, unless they carry one of CSRF_REQUIRED_HEADERS.
    #[arg(long, env = "CSRF_PREVENTION", default_value = "true", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, global = true)]
    pub csrf_prevention: bool,
    /// Comma-separated headers, any of which lets such a request through.
    #[arg(long, env = "CSRF_REQUIRED_HEADERS", default_value = DEFAULT_REQUIRED_HEADERS, global = true)]
    pub csrf_required_headers: String,
}

impl CsrfSettings {
    /// The check; `None`: off.
    pub fn validate(&self) -> Result<Option<CsrfPrevention>, ConfigError> {
        if !self.csrf_prevention {
            return Ok(None);
        }
        parse_header_names(&self.csrf_required_headers)
            .map(|names| Some(CsrfPrevention::new(names)))
    }
}

/// CSRF prevention's list of headers (the check is
/// `http::pipeline::csrf`'s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsrfPrevention {
    // Shared: every request's pipeline state holds the check.
    required_headers: Arc<[HeaderName]>,
}

impl CsrfPrevention {
    /// A check that accepts any of `required_headers`.
    pub fn new(required_headers: Vec<HeaderName>) -> Self {
        Self {
            required_headers: required_headers.into(),
        }
    }

    /// The headers that let a simple request through.
    pub fn required_headers(&self) -> &[HeaderName] {
        &self.required_headers
    }
}

fn parse_header_names(raw: &str) -> Result<Vec<HeaderName>, ConfigError> {
    let names: Vec<&str> = raw
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return Err(ConfigError::new(
            "CSRF_REQUIRED_HEADERS",
            "must name at least one header (turn the check off with CSRF_PREVENTION=false)",
        ));
    }
    names
        .into_iter()
        .map(|name| {
            HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| {
                ConfigError::new(
                    "CSRF_REQUIRED_HEADERS",
                    format!("`{name}` is not a header name"),
                )
            })
        })
        .collect()
}

/// The cost limits stage.
#[derive(Debug, Clone, Args)]
pub struct LimitSettings {
    /// Most aliased fields in one operation.
    #[arg(long, env = "MAX_ALIASES", default_value_t = QueryLimits::default().max_aliases, value_parser = clap::value_parser!(u64).range(0..=1_000_000), global = true)]
    pub max_aliases: u64,
    /// Most fields at the root of one operation.
    #[arg(long, env = "MAX_ROOT_FIELDS", default_value_t = QueryLimits::default().max_root_fields, value_parser = clap::value_parser!(u64).range(1..=1_000_000), global = true)]
    pub max_root_fields: u64,
    /// Largest estimated cost of one operation: each field counts once per
    /// item of every list above it (`first`, or the default page size).
    #[arg(long, env = "MAX_QUERY_COST", default_value_t = QueryLimits::default().max_cost, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub max_query_cost: u64,
}

/// The limits a query must stay within. Their defaults are the cost
/// model's (`graphql::limits`), which says what they admit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryLimits {
    /// Most aliased fields in one operation.
    pub max_aliases: u64,
    /// Most fields at the operation's root (e.g. `me`, `featuredPlaylists`).
    pub max_root_fields: u64,
    /// Largest estimated cost (see `graphql::limits`).
    pub max_cost: u64,
}

impl LimitSettings {
    pub fn query_limits(&self) -> QueryLimits {
        QueryLimits {
            max_aliases: self.max_aliases,
            max_root_fields: self.max_root_fields,
            max_cost: self.max_query_cost,
        }
    }
}

/// The guard stage.
#[derive(Debug, Clone, Args)]
pub struct GuardSettings {
    /// Deepest nesting of brackets (`{`, `[`, `(`) in a document or a JSON
    /// body, checked before anything parses it.
    #[arg(long, env = "MAX_NESTING", default_value_t = GuardLimits::default().max_nesting, value_parser = clap::value_parser!(u64).range(4..=256), global = true)]
    pub max_nesting: u64,
    /// Longest chain of fragment spreads (a fragment spreading a fragment).
    #[arg(long, env = "MAX_FRAGMENT_DEPTH", default_value_t = GuardLimits::default().max_fragment_depth, value_parser = clap::value_parser!(u64).range(1..=64), global = true)]
    pub max_fragment_depth: u64,
    /// Most selections of an operation or a fragment, with every fragment
    /// spread expanded.
    #[arg(long, env = "MAX_SELECTIONS", default_value_t = GuardLimits::default().max_selections, value_parser = clap::value_parser!(u64).range(10..=1_000_000), global = true)]
    pub max_selections: u64,
}

impl GuardSettings {
    pub fn guard_limits(&self) -> GuardLimits {
        GuardLimits {
            max_nesting: self.max_nesting,
            max_fragment_depth: self.max_fragment_depth,
            max_selections: self.max_selections,
        }
    }
}

/// The bounds on a document's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuardLimits {
    /// Deepest nesting of `{`, `[` and `(` in the document, and of `{` and
    /// `[` in a JSON body.
    pub max_nesting: u64,
    /// Longest chain of fragment spreads (a fragment spreading one that
    /// spreads another is 2).
    pub max_fragment_depth: u64,
    /// Most selections (fields, inline fragments, spreads) a document's
    /// operations count together, and a fragment alone, with every spread
    /// expanded.
    pub max_selections: u64,
}

impl Default for GuardLimits {
    /// GraphiQL's introspection query nests 11 brackets deep and expands to
    /// about 200 selections; the full `me` with every field and a fragment
    /// per type, about 120.
    fn default() -> Self {
        Self {
            max_nesting: 32,
            max_fragment_depth: 10,
            max_selections: 2_000,
        }
    }
}

/// The operation stage.
#[derive(Debug, Clone, Args)]
pub struct OperationSettings {
    /// Answer introspection queries (`__schema`, `__type`): `true` or `false`.
    #[arg(long, env = "INTROSPECTION", default_value = "true", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, global = true)]
    pub introspection: bool,
}

/// The response cache.
#[derive(Debug, Clone, Args)]
pub struct ResponseCacheSettings {
    /// Memory, in bytes, for cached GraphQL answers (per instance); `0`
    /// turns the response cache, and with it ETags, off.
    #[arg(long, env = "RESPONSE_CACHE_MAX_BYTES", default_value_t = 32 * 1024 * 1024, global = true)]
    pub response_cache_max_bytes: u64,
}

/// The compiled path.
#[derive(Debug, Clone, Args)]
pub struct CompiledSettings {
    /// Answer `me` queries with a compiled plan, without async-graphql's
    /// executor (the same bytes, less CPU): `true` or `false`.
    #[arg(long, env = "COMPILED_QUERIES", default_value = "true", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, global = true)]
    pub compiled_queries: bool,
}
