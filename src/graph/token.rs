//! The access token, read once from its source and cached.
//!
//! A token from `WABA_ACCESS_TOKEN` never changes. A token from a file (a mounted
//! Kubernetes secret) is re-read when the file changes, checked at most once a second
//! (by default; see [`DEFAULT_RECHECK`]) and on demand when Meta answers 190 (token invalid), so a rotated token is used
//! without a restart.

use secrecy::{ExposeSecret, SecretString};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// How often a token file is checked for changes, at most.
pub const DEFAULT_RECHECK: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub enum TokenSource {
    /// A fixed token (`WABA_ACCESS_TOKEN`).
    Static(SecretString),
    /// A file holding the token (`WABA_ACCESS_TOKEN_FILE`), surrounding whitespace ignored.
    File(PathBuf),
}

#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum TokenError {
    #[error("cannot read the access token file {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("the access token file {path} is empty")]
    Empty { path: PathBuf },
    #[error("the access token is empty")]
    EmptyStatic,
}

/// A file's identity as far as "did it change" goes.
type Stamp = Option<(SystemTime, u64)>;

#[derive(Debug)]
struct Cached {
    token: Arc<SecretString>,
    stamp: Stamp,
    loaded_at: Instant,
    checked_at: Instant,
}

#[derive(Debug)]
pub struct TokenCache {
    source: TokenSource,
    recheck: Duration,
    cached: Mutex<Cached>,
}

impl TokenCache {
    /// Reads the token once; fails if the source holds none.
    pub async fn load(source: TokenSource, recheck: Duration) -> Result<Self, TokenError> {
        let (token, stamp) = read(&source).await?;
        let now = Instant::now();
        let cached = Mutex::new(Cached {
            token,
            stamp,
            loaded_at: now,
            checked_at: now,
        });
        Ok(Self {
            source,
            recheck,
            cached,
        })
    }

    /// The token to use now, re-read first if its file changed.
    pub async fn current(&self) -> Result<Arc<SecretString>, TokenError> {
        let TokenSource::File(path) = &self.source else {
            return Ok(self.lock().token.clone());
        };
        {
            let mut cached = self.lock();
            let now = Instant::now();
            if now.duration_since(cached.checked_at) < self.recheck {
                return Ok(cached.token.clone());
            }
            cached.checked_at = now;
        }
        let stamp = stamp_of(path).await;
        if stamp.is_some() && stamp == self.lock().stamp {
            return Ok(self.lock().token.clone());
        }
        // Mid-rotation the file can be briefly missing or empty: keep the cached token.
        match self.reload().await {
            Ok(token) => Ok(token),
            Err(e) => {
                tracing::warn!(error = %e, "keeping the cached access token");
                Ok(self.lock().token.clone())
            }
        }
    }

    /// Re-reads the source after Meta rejected `rejected`; tells whether a different
    /// token is now cached (only then is retrying worth it).
    pub async fn refresh(&self, rejected: &SecretString) -> Result<bool, TokenError> {
        if matches!(self.source, TokenSource::Static(_)) {
            return Ok(false);
        }
        let token = self.reload().await?;
        Ok(token.expose_secret() != rejected.expose_secret())
    }

    /// How old the token is: since its file was last modified, or since it was read.
    pub async fn age(&self) -> Duration {
        if let TokenSource::File(path) = &self.source
            && let Some((modified, _)) = stamp_of(path).await
        {
            return modified.elapsed().unwrap_or_default();
        }
        self.lock().loaded_at.elapsed()
    }

    async fn reload(&self) -> Result<Arc<SecretString>, TokenError> {
        let (token, stamp) = read(&self.source).await?;
        let mut cached = self.lock();
        if token.expose_secret() != cached.token.expose_secret() {
            tracing::info!("access token reloaded from its file");
            cached.token = token;
            cached.loaded_at = Instant::now();
        }
        cached.stamp = stamp;
        cached.checked_at = Instant::now();
        Ok(cached.token.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cached> {
        // The lock is never held across an await or a panic-prone call.
        self.cached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn read(source: &TokenSource) -> Result<(Arc<SecretString>, Stamp), TokenError> {
    match source {
        TokenSource::Static(token) if token.expose_secret().trim().is_empty() => {
            Err(TokenError::EmptyStatic)
        }
        TokenSource::Static(token) => Ok((
            Arc::new(SecretString::from(token.expose_secret().trim())),
            None,
        )),
        TokenSource::File(path) => {
            let stamp = stamp_of(path).await;
            let text =
                tokio::fs::read_to_string(path)
                    .await
                    .map_err(|e| TokenError::Unreadable {
                        path: path.clone(),
                        reason: e.kind().to_string(),
                    })?;
            let token = text.trim();
            if token.is_empty() {
                return Err(TokenError::Empty { path: path.clone() });
            }
            Ok((Arc::new(SecretString::from(token)), stamp))
        }
    }
}

async fn stamp_of(path: &PathBuf) -> Stamp {
    let meta = tokio::fs::metadata(path).await.ok()?;
    Some((meta.modified().ok()?, meta.len()))
}
