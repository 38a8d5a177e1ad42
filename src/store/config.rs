//! Which store, parsed once from `WABA_STORE` (and the key variables) by `crate::config`.
//!
//! `WABA_STORE` comes from the environment only, never a flag: a PostgreSQL URL may carry
//! a password, and flags show in `ps`. For the same reason the URL is kept as a secret and
//! this type's `Debug` shows the host, port, user and database, never the password (nor
//! the query, which libpq lets carry `password=` too).

use super::Error;
use secrecy::SecretString;
use sqlx::postgres::PgConnectOptions;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A parsed `WABA_STORE`, with where the keys are.
#[derive(Clone)]
pub struct StoreConfig {
    pub(crate) backend: Backend,
    pub(crate) key_file: Option<PathBuf>,
    pub(crate) old_keys_dir: Option<PathBuf>,
}

#[derive(Clone)]
pub(crate) enum Backend {
    Memory,
    Sqlite(PathBuf),
    Postgres {
        url: SecretString,
        /// The URL's parts that are safe to show.
        host: String,
        port: u16,
        user: String,
        database: Option<String>,
    },
}

impl StoreConfig {
    /// The in-process store: nothing survives a restart, nothing is shared; no key needed.
    pub fn memory() -> StoreConfig {
        StoreConfig {
            backend: Backend::Memory,
            key_file: None,
            old_keys_dir: None,
        }
    }

    /// Parses `spec` (`memory`, `sqlite:PATH` or a `postgres://` URL). The SQL backends
    /// need `key_file`; `old_keys_dir` is optional. The files are read when the store
    /// opens, not here.
    pub fn parse(
        spec: &str,
        key_file: Option<PathBuf>,
        old_keys_dir: Option<PathBuf>,
    ) -> Result<StoreConfig, Error> {
        let spec = spec.trim();
        let backend = if spec == "memory" {
            Backend::Memory
        } else if let Some(path) = spec.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(Error::NoSqlitePath);
            }
            Backend::Sqlite(PathBuf::from(path))
        } else if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            // sqlx's parse errors name the part that is wrong, not the URL.
            let options =
                PgConnectOptions::from_str(spec).map_err(|e| Error::PostgresUrl(e.to_string()))?;
            Backend::Postgres {
                url: SecretString::from(spec),
                host: options.get_host().to_owned(),
                port: options.get_port(),
                user: options.get_username().to_owned(),
                database: options.get_database().map(str::to_owned),
            }
        } else {
            return Err(Error::UnknownBackend);
        };
        let config = StoreConfig {
            backend,
            key_file,
            old_keys_dir,
        };
        if config.key_file.is_none() && !matches!(config.backend, Backend::Memory) {
            return Err(Error::NoKeyFile {
                backend: config.backend_name(),
            });
        }
        Ok(config)
    }

    /// `memory`, `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Memory => "memory",
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }

    /// The SQLite file, for a `sqlite:` store.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite(path) => Some(path),
            _ => None,
        }
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("StoreConfig");
        match &self.backend {
            Backend::Memory => s.field("backend", &"memory"),
            Backend::Sqlite(path) => s.field("sqlite", path),
            Backend::Postgres {
                host,
                port,
                user,
                database,
                ..
            } => s
                .field("postgres_host", host)
                .field("port", port)
                .field("user", user)
                .field("database", database),
        };
        s.field("key_file", &self.key_file)
            .field("old_keys_dir", &self.old_keys_dir)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_backends() {
        let key = || Some(PathBuf::from("/run/secrets/store.key"));
        assert_eq!(
            StoreConfig::parse("memory", None, None)
                .unwrap()
                .backend_name(),
            "memory"
        );
        let sqlite = StoreConfig::parse("sqlite:/data/store.db", key(), None).unwrap();
        assert_eq!(sqlite.sqlite_path(), Some(Path::new("/data/store.db")));
        let sqlite = StoreConfig::parse("sqlite://data/store.db", key(), None).unwrap();
        assert_eq!(sqlite.sqlite_path(), Some(Path::new("data/store.db")));
        let pg =
            StoreConfig::parse("postgres://app:hunter2-secret@db:5433/waba", key(), None).unwrap();
        assert_eq!(pg.backend_name(), "postgres");
        let debug = format!("{pg:?}");
        assert!(!debug.contains("hunter2-secret"), "{debug}");
        assert!(
            debug.contains("\"db\"") && debug.contains("5433"),
            "{debug}"
        );
        let pg = StoreConfig::parse("postgresql://db/waba?password=hunter2-secret", key(), None)
            .unwrap();
        assert!(!format!("{pg:?}").contains("hunter2-secret"));
    }

    #[test]
    fn refuses_what_it_cannot_use_without_echoing_it() {
        for spec in ["", "mysql://u:hunter2-secret@db/x", "sqlite", "file:x.db"] {
            let error = StoreConfig::parse(spec, None, None)
                .unwrap_err()
                .to_string();
            assert!(!error.contains("hunter2-secret"), "{error}");
        }
        assert!(matches!(
            StoreConfig::parse("sqlite:", None, None),
            Err(Error::NoSqlitePath)
        ));
        for spec in ["sqlite:/data/store.db", "postgres://db/waba"] {
            let error = StoreConfig::parse(spec, None, None).unwrap_err();
            assert!(matches!(error, Error::NoKeyFile { .. }), "{error}");
            assert!(error.to_string().contains("WABA_STORE_KEY_FILE"));
        }
        let error = StoreConfig::parse("postgres://u:hunter2-secret@db:notaport/x", None, None)
            .unwrap_err()
            .to_string();
        assert!(!error.contains("hunter2-secret"), "{error}");
    }
}
