//! The store under test, on each backend: `memory`, a SQLite file in a temporary folder,
//! and PostgreSQL in a fresh schema when `WABA_TEST_POSTGRES_URL` names a server (else
//! those cases say so on stderr, once, and pass). Key files are written like an operator
//! would: the base64 of 32 random bytes.

use base64::Engine as _;
use std::path::{Path, PathBuf};
use std::sync::Once;
use tempfile::TempDir;
use waba_numbers::store::{Store, StoreConfig};

/// The variable naming a PostgreSQL server to test against, e.g.
/// `postgres://postgres@127.0.0.1:55432/postgres`.
pub const POSTGRES_URL_VAR: &str = "WABA_TEST_POSTGRES_URL";
/// Set (as in CI) to fail instead of skip when `WABA_TEST_POSTGRES_URL` is missing.
pub const POSTGRES_REQUIRED_VAR: &str = "WABA_TEST_POSTGRES_REQUIRED";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Memory,
    Sqlite,
    Postgres,
}

/// A key file and what it holds.
pub struct KeyFile {
    pub path: PathBuf,
    pub base64: String,
    pub bytes: [u8; 32],
}

/// One backend for one test: where its data is, which keys it opens with.
pub struct StoreFixture {
    pub engine: Engine,
    /// `WABA_STORE` as an operator writes it.
    pub spec: String,
    pub dir: TempDir,
    pub key: KeyFile,
    /// The PostgreSQL schema this test owns, dropped by [`StoreFixture::finish`].
    schema: Option<(String, String)>,
}

impl StoreFixture {
    /// A fixture for `engine`; `None` (after saying so) for PostgreSQL without a server.
    pub async fn new(engine: Engine) -> Option<StoreFixture> {
        let dir = tempfile::tempdir().unwrap();
        let key = write_key(dir.path(), "store.key");
        let (spec, schema) = match engine {
            Engine::Memory => ("memory".to_owned(), None),
            Engine::Sqlite => (
                format!("sqlite:{}", dir.path().join("store.db").display()),
                None,
            ),
            Engine::Postgres => {
                let admin = postgres_url()?;
                let schema = format!("waba_test_{:016x}", rand::random::<u64>());
                let pool = sqlx::PgPool::connect(&admin).await.unwrap();
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                let mut url = reqwest::Url::parse(&admin).unwrap();
                url.query_pairs_mut()
                    .append_pair("options", &format!("-c search_path={schema}"));
                (url.to_string(), Some((admin, schema)))
            }
        };
        Some(StoreFixture {
            engine,
            spec,
            dir,
            key,
            schema,
        })
    }

    /// Opens the store with the fixture's key.
    pub async fn open(&self) -> Store {
        self.open_with(&self.key.path, None).await.unwrap()
    }

    /// Opens the store with `key` current and the old keys in `old_dir`.
    pub async fn open_with(
        &self,
        key: &Path,
        old_dir: Option<&Path>,
    ) -> Result<Store, waba_numbers::store::Error> {
        let config = StoreConfig::parse(
            &self.spec,
            Some(key.to_owned()),
            old_dir.map(Path::to_owned),
        )?;
        Store::open(&config).await
    }

    /// The SQLite file.
    pub fn sqlite_file(&self) -> PathBuf {
        self.dir.path().join("store.db")
    }

    /// Runs `sql` on the store's database behind its back (as someone with access to
    /// the database could).
    pub async fn tamper(&self, sql: &str) {
        match self.engine {
            Engine::Memory => panic!("memory has no database"),
            Engine::Sqlite => {
                let pool =
                    sqlx::SqlitePool::connect(&format!("sqlite:{}", self.sqlite_file().display()))
                        .await
                        .unwrap();
                sqlx::query(sql).execute(&pool).await.unwrap();
                pool.close().await;
            }
            Engine::Postgres => {
                let pool = sqlx::PgPool::connect(&self.spec).await.unwrap();
                sqlx::query(sql).execute(&pool).await.unwrap();
                pool.close().await;
            }
        }
    }

    /// Drops the PostgreSQL schema (a failed test leaves its schema: look at it).
    pub async fn finish(self) {
        if let Some((admin, schema)) = &self.schema {
            let pool = sqlx::PgPool::connect(admin).await.unwrap();
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
}

/// Writes a new random key to `dir/name`.
pub fn write_key(dir: &Path, name: &str) -> KeyFile {
    let bytes: [u8; 32] = rand::random();
    let base64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let path = dir.join(name);
    std::fs::write(&path, format!("{base64}\n")).unwrap();
    KeyFile {
        path,
        base64,
        bytes,
    }
}

/// The PostgreSQL server to test against, if any.
fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            if std::env::var_os(POSTGRES_REQUIRED_VAR).is_some() {
                panic!("{POSTGRES_REQUIRED_VAR} is set but {POSTGRES_URL_VAR} is not");
            }
            static SAID: Once = Once::new();
            SAID.call_once(|| {
                // Straight to stderr, past the test harness's capture: a skip must show.
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "store tests: PostgreSQL SKIPPED ({POSTGRES_URL_VAR} not set; \
                     .ci/run starts a server and sets it)"
                );
            });
            None
        }
    }
}
