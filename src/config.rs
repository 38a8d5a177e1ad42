//! Configuration: parsed once from flags and environment, then passed down.
//! Nothing deeper in the service reads the environment.

use crate::graph::{GraphSettings, TokenSource};
use crate::grpc::auth::Reflection;
use crate::http::WebhookSettings;
use crate::server::Settings;
use crate::store::{self, StoreConfig};
use crate::tls::ServerTlsSettings;
use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_GRAPH_URL: &str = "https://graph.facebook.com";
pub const DEFAULT_GRAPH_VERSION: &str = "v25.0";

#[derive(Debug, Parser)]
#[command(
    name = "waba-numbers",
    version,
    about = "gRPC service for WhatsApp Business phone numbers, proxying Meta's Graph API",
    args_conflicts_with_subcommands = true,
    after_help = "Secrets come from the environment only: WABA_ACCESS_TOKEN or \
                  WABA_ACCESS_TOKEN_FILE (re-read when it changes), and WABA_APP_SECRET \
                  (adds appsecret_proof to every Graph call, verifies webhook signatures), \
                  WABA_WEBHOOK_VERIFY_TOKEN (webhook verification handshake), WABA_STORE \
                  (memory, sqlite:PATH or a postgres:// URL) with WABA_STORE_KEY_FILE and \
                  WABA_STORE_OLD_KEYS_DIR (the keys its tokens are encrypted under)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Log lines for people (text) or for log pipelines (json, one object a line).
    #[arg(long, global = true, env = "WABA_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run only the simulated Graph API, for other services' tests.
    SandboxGraph(SandboxGraphArgs),
    /// Maintain the store named by WABA_STORE.
    Store(StoreArgs),
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub command: StoreCommand,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Re-encrypt every token under the current key (WABA_STORE_KEY_FILE), reading old
    /// ones with the keys in WABA_STORE_OLD_KEYS_DIR; prints how many it changed. Safe
    /// while the service runs.
    Rekey,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// gRPC listen address.
    #[arg(long, env = "WABA_LISTEN", default_value = "0.0.0.0:50051")]
    pub listen: SocketAddr,
    /// Graph API base URL, without the version.
    #[arg(long, env = "WABA_GRAPH_URL", default_value = DEFAULT_GRAPH_URL, value_parser = parse_base_url)]
    pub graph_url: String,
    /// Graph API version, pinned in every path.
    #[arg(long, env = "WABA_GRAPH_VERSION", default_value = DEFAULT_GRAPH_VERSION, value_parser = parse_version)]
    pub graph_version: String,
    /// HTTP listen address (Meta's webhooks at /webhooks/whatsapp).
    #[arg(long, env = "WABA_HTTP_LISTEN", default_value = "0.0.0.0:8080")]
    pub http_listen: SocketAddr,
    /// Time between WatchStatus polls at low usage (jittered; longer as usage rises).
    #[arg(long, env = "WABA_WATCH_INTERVAL", default_value = "60s", value_parser = parse_interval)]
    pub watch_interval: Duration,
    /// How long a read of Meta stays fresh: GetStatus and ListNumbers within it make no
    /// Graph call (GetStatus's max_staleness can ask for fresher). 0 disables the cache.
    #[arg(long, env = "WABA_CACHE_TTL", default_value = "15s", value_parser = parse_ttl)]
    pub cache_ttl: Duration,
    /// Of Meta's 10 register/deregister attempts per number per 72 hours, how many the
    /// service keeps for a person: it refuses Register and Deregister once only these
    /// are left (0 to 9).
    #[arg(long, env = "WABA_REGISTER_RESERVE", default_value_t = crate::numbers::DEFAULT_REGISTER_RESERVE, value_parser = parse_reserve)]
    pub register_reserve: u32,
    /// The Meta app's id: with WABA_APP_SECRET, it exchanges Embedded Signup codes for
    /// customers' business tokens and checks tokens (debug_token).
    #[arg(long, env = "WABA_APP_ID", value_parser = parse_app_id)]
    pub app_id: Option<String>,
    /// The largest request message a caller may send, in bytes (or 64KiB, 1MiB); a larger
    /// one is refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "WABA_MAX_MESSAGE_SIZE", default_value = "64KiB", value_parser = parse_message_size)]
    pub max_message_size: usize,
    /// Serve against the built-in simulated Graph API: no Meta account needed.
    #[arg(long)]
    pub sandbox: bool,
    /// The callers file (TOML): who may call, with which scopes, for which WABAs; re-read
    /// when it changes. Without one, anyone who reaches the gRPC port may make any call.
    #[arg(long, env = "WABA_CALLERS_FILE")]
    pub callers_file: Option<PathBuf>,
    /// Refuse to start without a callers file.
    #[arg(long, env = "WABA_REQUIRE_CALLERS")]
    pub require_callers: bool,
    /// Who may use gRPC server reflection: anyone (open), callers of the callers file
    /// (authenticated), or nobody (off).
    #[arg(long, env = "WABA_REFLECTION", default_value = "open")]
    pub reflection: Reflection,
    /// TLS on the gRPC port: the server's certificate chain (PEM, leaf first). Re-read
    /// when it changes; a new certificate and key that do not load keep the old ones.
    #[arg(long, env = "WABA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "WABA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS: clients must present a certificate chaining to a CA in this PEM bundle
    /// (re-read when it changes). Needs --tls-cert.
    #[arg(long, env = "WABA_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Also serve grpc.health.v1 alone, in plaintext, here: for probes while the gRPC
    /// port is TLS.
    #[arg(long, env = "WABA_HEALTH_LISTEN")]
    pub health_listen: Option<SocketAddr>,
    /// Serve /metrics here (plain HTTP) instead of on the webhook port, which then
    /// answers only /webhooks/whatsapp.
    #[arg(long, env = "WABA_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub struct SandboxGraphArgs {
    /// HTTP listen address of the simulated Graph API.
    #[arg(long, env = "WABA_SANDBOX_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Deliver webhooks here as the demo numbers change, signed with WABA_APP_SECRET.
    #[arg(long, env = "WABA_SANDBOX_WEBHOOK_URL", value_parser = parse_base_url)]
    pub webhook_url: Option<String>,
    /// Wait this long before answering each Graph call (200ms, say), as a slow Meta would.
    #[arg(long, env = "WABA_SANDBOX_LATENCY", default_value = "0s", value_parser = parse_latency)]
    pub latency: Duration,
    /// No rate limit: never answer 80007, report 0 % usage (for load tests).
    #[arg(long, env = "WABA_SANDBOX_NO_QUOTA")]
    pub no_quota: bool,
    /// Add a bench WABA with this many generated numbers (registered, unchanging).
    #[arg(long, env = "WABA_SANDBOX_BENCH_NUMBERS", default_value_t = 0, value_parser = parse_bench_numbers)]
    pub bench_numbers: usize,
}

/// The secrets, read from the environment once. Their `Debug` output is redacted.
#[derive(Debug, Default)]
pub struct Secrets {
    pub access_token: Option<SecretString>,
    pub access_token_file: Option<PathBuf>,
    pub app_secret: Option<SecretString>,
    pub webhook_verify_token: Option<SecretString>,
    /// `WABA_STORE`: a PostgreSQL URL may carry a password.
    pub store: Option<SecretString>,
    pub store_key_file: Option<PathBuf>,
    pub store_old_keys_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no access token: set WABA_ACCESS_TOKEN, or WABA_ACCESS_TOKEN_FILE to a file holding it \
         (optionally WABA_APP_SECRET too), or WABA_STORE to serve customers' own tokens, or run \
         with --sandbox to use the built-in simulated Graph API"
    )]
    NoToken,
    #[error("set only one of WABA_ACCESS_TOKEN and WABA_ACCESS_TOKEN_FILE")]
    TwoTokens,
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl Secrets {
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Secrets {
            access_token: var("WABA_ACCESS_TOKEN").map(SecretString::from),
            access_token_file: var("WABA_ACCESS_TOKEN_FILE").map(PathBuf::from),
            app_secret: var("WABA_APP_SECRET").map(SecretString::from),
            webhook_verify_token: var("WABA_WEBHOOK_VERIFY_TOKEN").map(SecretString::from),
            store: var("WABA_STORE").map(SecretString::from),
            store_key_file: var("WABA_STORE_KEY_FILE").map(PathBuf::from),
            store_old_keys_dir: var("WABA_STORE_OLD_KEYS_DIR").map(PathBuf::from),
        }
    }

    /// The store `WABA_STORE` names, with its keys; `None` when it is not set.
    pub fn store_config(&self) -> Result<Option<StoreConfig>, store::Error> {
        use secrecy::ExposeSecret;
        self.store
            .as_ref()
            .map(|spec| {
                StoreConfig::parse(
                    spec.expose_secret(),
                    self.store_key_file.clone(),
                    self.store_old_keys_dir.clone(),
                )
            })
            .transpose()
    }

    /// The partner's token; [`ConfigError::NoToken`] when none is set.
    pub fn token_source(&self) -> Result<TokenSource, ConfigError> {
        match (&self.access_token, &self.access_token_file) {
            (Some(token), None) => Ok(TokenSource::Static(token.clone())),
            (None, Some(path)) => Ok(TokenSource::File(path.clone())),
            (Some(_), Some(_)) => Err(ConfigError::TwoTokens),
            (None, None) => Err(ConfigError::NoToken),
        }
    }
}

impl ServeArgs {
    /// Settings for a real Meta account. With a store the partner's token is optional:
    /// customers' tokens serve their WABAs.
    pub fn settings(&self, secrets: &Secrets) -> Result<Settings, ConfigError> {
        let store = secrets.store_config()?;
        let token = match secrets.token_source() {
            Ok(token) => Some(token),
            Err(ConfigError::NoToken) if store.is_some() => None,
            Err(e) => return Err(e),
        };
        let mut graph = GraphSettings::new(&self.graph_url, &self.graph_version, token);
        graph.app_secret = secrets.app_secret.clone();
        graph.app_id = self.app_id.clone();
        let mut settings = self.settings_for(graph, secrets);
        settings.store = store;
        Ok(settings)
    }

    /// Settings around the given Graph settings (no store).
    pub fn settings_for(&self, graph: GraphSettings, secrets: &Secrets) -> Settings {
        let mut settings = Settings::new(graph);
        settings.watch.interval = self.watch_interval;
        settings.cache.ttl = self.cache_ttl;
        settings.register_reserve = self.register_reserve;
        settings.callers_file = self.callers_file.clone();
        settings.require_callers = self.require_callers;
        settings.reflection = self.reflection;
        settings.max_message_size = self.max_message_size;
        settings.webhooks = WebhookSettings {
            app_secret: settings.graph.app_secret.clone(),
            verify_token: secrets.webhook_verify_token.clone(),
        };
        settings.tls = self.tls_settings();
        settings
    }

    /// The gRPC port's TLS, when --tls-cert and --tls-key are given.
    pub fn tls_settings(&self) -> Option<ServerTlsSettings> {
        let (cert, key) = (self.tls_cert.as_ref()?, self.tls_key.as_ref()?);
        let mut tls = ServerTlsSettings::new(cert, key);
        tls.client_ca = self.tls_client_ca.clone();
        Some(tls)
    }
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 60s, 5m)"))?;
    if interval < Duration::from_secs(1) {
        return Err("must be at least 1s".into());
    }
    Ok(interval)
}

fn parse_latency(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 0s, 200ms)"))
}

fn parse_bench_numbers(s: &str) -> Result<usize, String> {
    let max = crate::sandbox::MAX_BENCH_NUMBERS;
    match s.parse::<usize>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!(
            "expected a number of phone numbers from 0 to {max}"
        )),
    }
}

fn parse_app_id(s: &str) -> Result<String, String> {
    if crate::model::is_graph_id(s) {
        Ok(s.to_owned())
    } else {
        Err("expected the app's numeric id, e.g. 1234567890123456".into())
    }
}

fn parse_reserve(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if n <= 9 => Ok(n),
        _ => Err("expected a number of attempts from 0 to 9 (Meta allows 10 per 72 hours)".into()),
    }
}

/// Bytes, plain or with a KiB or MiB suffix; from 1 KiB (no request fits in less) to
/// 16 MiB.
fn parse_message_size(s: &str) -> Result<usize, String> {
    let (digits, unit) = match s.trim() {
        t if t.ends_with("KiB") => (&t[..t.len() - 3], 1024),
        t if t.ends_with("MiB") => (&t[..t.len() - 3], 1024 * 1024),
        t => (t, 1),
    };
    let bytes = digits
        .trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(unit));
    match bytes {
        Some(n) if (1024..=16 * 1024 * 1024).contains(&n) => Ok(n),
        _ => Err("expected a size from 1KiB to 16MiB, e.g. 65536, 64KiB or 1MiB".into()),
    }
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 15s, 1m; 0 disables the cache)"))
}

fn parse_base_url(s: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(s).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
        return Err(
            "expected an http(s) URL without a query, e.g. https://graph.facebook.com".into(),
        );
    }
    Ok(s.trim_end_matches('/').to_owned())
}

fn parse_version(s: &str) -> Result<String, String> {
    let valid = s
        .strip_prefix('v')
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(major, minor)| {
            [major, minor]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        });
    if valid {
        Ok(s.to_owned())
    } else {
        Err("expected a Graph API version such as v25.0".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed_and_validates_its_values() {
        Cli::command().debug_assert();
        assert!(parse_version("v25.0").is_ok());
        for bad in ["25.0", "v25", "v.1", "vx.0", "v25.0/../x"] {
            assert!(parse_version(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_base_url("http://127.0.0.1:9/").unwrap(),
            "http://127.0.0.1:9"
        );
        assert!(parse_base_url("ftp://x").is_err());
        assert!(parse_base_url("https://x/?a=b").is_err());
        assert_eq!(parse_interval("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_interval("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_interval("10ms").is_err() && parse_interval("soon").is_err());
        assert_eq!(parse_latency("0"), Ok(Duration::ZERO));
        assert_eq!(parse_latency("200ms"), Ok(Duration::from_millis(200)));
        assert!(parse_latency("slow").is_err());
        assert_eq!(parse_bench_numbers("1000"), Ok(1000));
        assert!(parse_bench_numbers("-1").is_err() && parse_bench_numbers("2000000").is_err());
        assert_eq!(parse_ttl("0"), Ok(Duration::ZERO));
        assert_eq!(parse_ttl("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_ttl("15s"), Ok(Duration::from_secs(15)));
        assert!(parse_ttl("-1s").is_err() && parse_ttl("fresh").is_err());
        assert_eq!(parse_message_size("64KiB"), Ok(65536));
        assert_eq!(parse_message_size("65536"), Ok(65536));
        assert_eq!(parse_message_size("1MiB"), Ok(1 << 20));
        for bad in [
            "",
            "big",
            "100",
            "64kb",
            "17MiB",
            "-1KiB",
            "99999999999999999999MiB",
        ] {
            assert!(parse_message_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tls_needs_a_certificate_and_its_key() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["waba-numbers"], args].concat());
        assert!(parse(&["--tls-cert", "c.pem"]).is_err());
        assert!(parse(&["--tls-key", "k.pem"]).is_err());
        assert!(parse(&["--tls-client-ca", "ca.pem"]).is_err());
        let cli = parse(&[
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--tls-client-ca",
            "ca.pem",
        ])
        .unwrap();
        let tls = cli.serve.tls_settings().unwrap();
        assert_eq!(
            (tls.cert, tls.key, tls.client_ca),
            ("c.pem".into(), "k.pem".into(), Some("ca.pem".into()))
        );
        assert!(parse(&[]).unwrap().serve.tls_settings().is_none());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let secrets = Secrets {
            access_token: Some("EAAtoken-value".into()),
            access_token_file: None,
            app_secret: Some("app-secret-value".into()),
            webhook_verify_token: Some("verify-token-value".into()),
            store: Some("postgres://app:store-password@db/waba".into()),
            store_key_file: Some("/run/secrets/store.key".into()),
            store_old_keys_dir: None,
        };
        let debug = format!(
            "{secrets:?} {:?} {:?}",
            secrets.token_source().unwrap(),
            secrets.store_config().unwrap()
        );
        assert!(!debug.contains("store-password"), "{debug}");
        assert!(!debug.contains("EAAtoken-value"), "{debug}");
        assert!(!debug.contains("app-secret-value"), "{debug}");
        assert!(!debug.contains("verify-token-value"), "{debug}");
    }
}
