//! The store's one error type. No message carries a token, a key or a password: a key
//! file is named by its path, a key by its id, a PostgreSQL URL not at all.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // The value is not echoed: it may be a URL with a password in it.
    #[error("WABA_STORE must be `memory`, `sqlite:PATH` or a `postgres://` URL")]
    UnknownBackend,
    #[error("WABA_STORE: `sqlite:` needs a file path, e.g. sqlite:/var/lib/waba-numbers/store.db")]
    NoSqlitePath,
    #[error("WABA_STORE is not a usable postgres:// URL: {0}")]
    PostgresUrl(String),
    #[error(
        "a {backend} store keeps tokens encrypted: set WABA_STORE_KEY_FILE to a file holding \
         the base64 of 32 random bytes (`head -c 32 /dev/urandom | base64 > store.key`)"
    )]
    NoKeyFile { backend: &'static str },
    #[error("store key file {path}: {problem}")]
    Key { path: String, problem: String },
    #[error("store key files {first} and {second} hold keys with the same id {key_id}")]
    SameKeyId {
        first: String,
        second: String,
        key_id: String,
    },
    #[error(
        "the token of WABA {waba_id} is encrypted under key {key_id}, which is neither \
         WABA_STORE_KEY_FILE nor in WABA_STORE_OLD_KEYS_DIR"
    )]
    UnknownKey { waba_id: String, key_id: String },
    #[error(
        "the token of WABA {waba_id} does not decrypt under key {key_id}: it was altered, or \
         it was moved from another WABA's row"
    )]
    Decrypt { waba_id: String, key_id: String },
    #[error("the token of WABA {waba_id} cannot be encrypted")]
    Encrypt { waba_id: String },
    #[error("the store holds an unreadable {what} for WABA {waba_id}")]
    Corrupt { waba_id: String, what: &'static str },
    #[error("cannot open the store ({store}): {source}")]
    Connect {
        store: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("store: {0}")]
    Database(#[from] sqlx::Error),
    #[error("store migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl Error {
    /// Whether this says only that the database cannot be reached now (down, starting,
    /// out of connections, the network): something a wait cures, unlike a wrong URL,
    /// password, key or schema.
    pub fn is_unreachable(&self) -> bool {
        use sqlx::migrate::MigrateError;
        match self {
            Error::Connect { source, .. } | Error::Database(source) => {
                super::sql::unreachable(source)
            }
            Error::Migrate(MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _)) => {
                super::sql::unreachable(e)
            }
            _ => false,
        }
    }

    /// PostgreSQL rolled the transaction back for a conflict with another (SQLSTATE class
    /// 40: a deadlock, a serialization failure): trying again may pass.
    pub fn is_conflict(&self) -> bool {
        match self {
            Error::Database(sqlx::Error::Database(db)) => {
                db.code().is_some_and(|code| code.starts_with("40"))
            }
            _ => false,
        }
    }

    pub(crate) fn key(path: &Path, problem: impl Into<String>) -> Error {
        Error::Key {
            path: path.display().to_string(),
            problem: problem.into(),
        }
    }

    pub(crate) fn corrupt(waba_id: &str, what: &'static str) -> Error {
        Error::Corrupt {
            waba_id: waba_id.to_owned(),
            what,
        }
    }
}
