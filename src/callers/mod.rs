//! Who may call the service and what each caller may do: the callers file
//! (`WABA_CALLERS_FILE`, TOML), re-read when it changes, and the per-caller limit on
//! reads that bypass the cache.
//!
//! ```toml
//! [[caller]]
//! name = "billing"
//! api_key_sha256 = "<hex SHA-256 of the key>"   # the key itself is never stored
//! scopes = ["read", "watch"]                     # read, watch, write, onboard
//! wabas = ["102290129340398"]                    # omitted: every WABA
//! forced_reads_per_minute = 6                    # reads with max_staleness 0, per WABA
//! ```
//!
//! A caller is named by an API key (`authorization: Bearer <key>`) or by a subject
//! alternative name of its TLS client certificate (`tls_san`). Keys are compared as
//! SHA-256 digests, in constant time.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::time::Instant;

/// Reads that bypass the cache, per caller and WABA and minute, unless the entry says.
pub const DEFAULT_FORCED_READS_PER_MINUTE: u32 = 6;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// ListNumbers, GetStatus, ListPreverifiedNumbers, GetCustomer, ListCustomers.
    Read,
    /// WatchStatus.
    Watch,
    /// Every write to a number.
    Write,
    /// OnboardCustomer, RemoveCustomer and the pre-verified pool's writes.
    Onboard,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Watch => "watch",
            Self::Write => "write",
            Self::Onboard => "onboard",
        }
    }
}

/// One caller of the file.
pub struct Caller {
    pub name: Arc<str>,
    scopes: BTreeSet<Scope>,
    /// `None`: every WABA.
    wabas: Option<BTreeSet<String>>,
    pub forced_reads_per_minute: u32,
    key_sha256: Option<[u8; 32]>,
    tls_san: Option<String>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("wabas", &self.wabas)
            .field("api_key", &self.key_sha256.map(|_| "[sha256]"))
            .field("tls_san", &self.tls_san)
            .finish()
    }
}

impl Caller {
    pub fn may(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// Whether the caller may see `waba_id`.
    pub fn sees(&self, waba_id: &str) -> bool {
        self.wabas
            .as_ref()
            .is_none_or(|wabas| wabas.contains(waba_id))
    }

    /// The WABAs the caller is limited to (`None`: every WABA), in id order.
    pub fn wabas(&self) -> Option<&BTreeSet<String>> {
        self.wabas.as_ref()
    }
}

/// A callers file, parsed and checked.
#[derive(Debug, Default)]
pub struct CallerList {
    callers: Vec<Arc<Caller>>,
}

/// Why a callers file was refused. Never quotes a value but names and ids.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read the callers file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the callers file is not valid TOML or has an unknown field: {0}")]
    Syntax(String),
    #[error("the callers file's caller {caller:?}: {why}")]
    Invalid { caller: String, why: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileText {
    #[serde(default)]
    caller: Vec<EntryText>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryText {
    name: String,
    api_key_sha256: Option<String>,
    tls_san: Option<String>,
    scopes: Vec<Scope>,
    wabas: Option<Vec<String>>,
    forced_reads_per_minute: Option<u32>,
}

impl CallerList {
    pub fn parse(text: &str) -> Result<Self, FileError> {
        // toml's messages quote the offending line, and serde's the offending value: a
        // key pasted in by mistake must not reach a log, so only the message's first line
        // is kept, with every quoted part blanked (what and where, never a value).
        let file: FileText = toml::from_str(text).map_err(|e| {
            FileError::Syntax(
                unquoted(e.message().lines().next().unwrap_or_default())
                    + &e.span()
                        .map(|at| format!(" (at byte {})", at.start))
                        .unwrap_or_default(),
            )
        })?;
        let mut names = BTreeSet::new();
        let mut keys = BTreeSet::new();
        let mut sans = BTreeSet::new();
        let mut callers = Vec::with_capacity(file.caller.len());
        for entry in file.caller {
            let invalid = |why: &str| FileError::Invalid {
                caller: entry.name.clone(),
                why: why.to_owned(),
            };
            if entry.name.trim().is_empty() || entry.name.len() > 64 {
                return Err(invalid("name must be 1 to 64 characters"));
            }
            if !entry
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(invalid("name may hold letters, digits, '-', '_' and '.'"));
            }
            if !names.insert(entry.name.clone()) {
                return Err(invalid("named twice"));
            }
            let key_sha256 = match &entry.api_key_sha256 {
                None => None,
                Some(hex_digest) => {
                    let mut digest = [0u8; 32];
                    hex::decode_to_slice(hex_digest.trim(), &mut digest).map_err(|_| {
                        invalid(
                            "api_key_sha256 must be 64 hex digits: the key's SHA-256, not the key",
                        )
                    })?;
                    if !keys.insert(digest) {
                        return Err(invalid("api_key_sha256 is another caller's too"));
                    }
                    Some(digest)
                }
            };
            if let Some(san) = &entry.tls_san {
                if san.trim().is_empty() {
                    return Err(invalid("tls_san must not be empty"));
                }
                if !sans.insert(san.clone()) {
                    return Err(invalid("tls_san is another caller's too"));
                }
            }
            if key_sha256.is_none() && entry.tls_san.is_none() {
                return Err(invalid("give api_key_sha256 or tls_san (or both)"));
            }
            if entry.scopes.is_empty() {
                return Err(invalid(
                    "scopes must name at least one of read, watch, write, onboard",
                ));
            }
            let wabas = match entry.wabas {
                None => None,
                Some(list) if list.is_empty() => {
                    return Err(invalid("wabas is empty: omit it for every WABA"));
                }
                Some(list) => {
                    if let Some(bad) = list.iter().find(|id| {
                        id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_digit())
                    }) {
                        return Err(FileError::Invalid {
                            caller: entry.name.clone(),
                            why: format!("wabas: {bad:?} is not a WABA id (digits)"),
                        });
                    }
                    Some(list.into_iter().collect())
                }
            };
            callers.push(Arc::new(Caller {
                name: entry.name.into(),
                scopes: entry.scopes.into_iter().collect(),
                wabas,
                forced_reads_per_minute: entry
                    .forced_reads_per_minute
                    .unwrap_or(DEFAULT_FORCED_READS_PER_MINUTE),
                key_sha256,
                tls_san: entry.tls_san,
            }));
        }
        Ok(Self { callers })
    }

    pub fn len(&self) -> usize {
        self.callers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.callers.is_empty()
    }

    /// The caller whose key this is. Every digest is compared, in constant time.
    pub fn by_key(&self, key: &str) -> Option<Arc<Caller>> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        for caller in &self.callers {
            if let Some(known) = &caller.key_sha256
                && bool::from(known.ct_eq(&digest))
            {
                found = Some(caller.clone());
            }
        }
        found
    }

    /// The caller a client certificate with these subject alternative names is.
    pub fn by_san<'a>(&self, sans: impl IntoIterator<Item = &'a String>) -> Option<Arc<Caller>> {
        sans.into_iter().find_map(|san| {
            self.callers
                .iter()
                .find(|c| c.tls_san.as_deref() == Some(san.as_str()))
                .cloned()
        })
    }
}

/// When each caller last read each WABA bypassing the cache, this last minute.
type ForcedReads = HashMap<(Arc<str>, String), VecDeque<Instant>>;

/// The callers file as last read well, kept current, and the forced reads each caller
/// made of each WABA in the last minute.
pub struct Callers {
    path: PathBuf,
    current: RwLock<(Arc<CallerList>, Vec<u8>)>,
    forced: Mutex<ForcedReads>,
}

impl std::fmt::Debug for Callers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callers")
            .field("path", &self.path)
            .field("callers", &self.current().len())
            .finish()
    }
}

impl Callers {
    /// Reads the file; a file that cannot be read or is broken stops the start.
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let bytes = read(path)?;
        let list = parse_bytes(&bytes)?;
        Ok(Self {
            path: path.to_owned(),
            current: RwLock::new((Arc::new(list), bytes)),
            forced: Mutex::default(),
        })
    }

    pub fn current(&self) -> Arc<CallerList> {
        self.current.read().expect("not poisoned").0.clone()
    }

    /// Re-reads the file when its bytes change; a file that cannot be read or parsed
    /// keeps the last good one, and says why (once per change).
    pub fn reload(&self) {
        let bytes = match read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(error = %e, "keeping the callers last read");
                return;
            }
        };
        let mut current = self.current.write().expect("not poisoned");
        if current.1 == bytes {
            return;
        }
        match parse_bytes(&bytes) {
            Ok(list) => {
                tracing::info!(path = %self.path.display(), callers = list.len(), "callers file re-read");
                *current = (Arc::new(list), bytes);
            }
            Err(e) => {
                tracing::warn!(error = %e, path = %self.path.display(), "the callers file changed but is broken: keeping the callers last read");
                // Not warned again until it changes again.
                current.1 = bytes;
            }
        }
    }

    /// Re-reads the file every `every` for as long as the process runs.
    pub async fn keep_current(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.reload();
        }
    }

    /// Counts a read of `waba` that bypasses the cache; `Err(wait)` when `caller` made
    /// its allowance of them in the last minute (`wait`: until the oldest leaves it).
    pub fn forced_read(&self, caller: &Caller, waba: &str) -> Result<(), Duration> {
        const MINUTE: Duration = Duration::from_secs(60);
        let limit = caller.forced_reads_per_minute as usize;
        let now = Instant::now();
        let mut forced = self.forced.lock().expect("not poisoned");
        // Forget whole keys nobody used this last minute, so the map stays small.
        if forced.len() > 4_096 {
            forced.retain(|_, times| times.back().is_some_and(|t| now - *t < MINUTE));
        }
        let times = forced
            .entry((caller.name.clone(), waba.to_owned()))
            .or_default();
        while times.front().is_some_and(|t| now - *t >= MINUTE) {
            times.pop_front();
        }
        if times.len() >= limit {
            let wait = times
                .front()
                .map_or(MINUTE, |oldest| MINUTE - (now - *oldest));
            return Err(wait);
        }
        times.push_back(now);
        Ok(())
    }
}

/// `message` with what stands between quotes or backticks blanked: `invalid type:
/// string "sk_live…", expected a sequence` → `invalid type: string "…", expected a sequence`.
fn unquoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut open: Option<char> = None;
    for c in message.chars() {
        match open {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '"' || c == '`' {
                    open = Some(c);
                }
            }
        }
    }
    if open.is_some() {
        out.push('…');
    }
    out
}

fn read(path: &Path) -> Result<Vec<u8>, FileError> {
    std::fs::read(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })
}

fn parse_bytes(bytes: &[u8]) -> Result<CallerList, FileError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| FileError::Syntax(format!("not UTF-8 (at byte {})", e.valid_up_to())))?;
    CallerList::parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(key: &str) -> String {
        hex::encode(Sha256::digest(key.as_bytes()))
    }

    fn file() -> String {
        format!(
            r#"
[[caller]]
name = "billing"
api_key_sha256 = "{}"
scopes = ["read", "watch"]
wabas = ["102290129340398"]

[[caller]]
name = "onboarding"
tls_san = "spiffe://cluster.local/ns/partner/sa/onboarding"
scopes = ["read", "watch", "write", "onboard"]
forced_reads_per_minute = 2
"#,
            sha("billing-key")
        )
    }

    #[test]
    fn parses_the_readmes_example() {
        let list = CallerList::parse(&file()).unwrap();
        let billing = list.by_key("billing-key").unwrap();
        assert_eq!(&*billing.name, "billing");
        assert!(billing.may(Scope::Read) && billing.may(Scope::Watch));
        assert!(!billing.may(Scope::Write) && !billing.may(Scope::Onboard));
        assert!(billing.sees("102290129340398") && !billing.sees("102290129340399"));
        assert_eq!(
            billing.forced_reads_per_minute,
            DEFAULT_FORCED_READS_PER_MINUTE
        );
        assert!(list.by_key("billing-key ").is_none() && list.by_key("").is_none());
        let sans = [
            "dns:x".to_owned(),
            "spiffe://cluster.local/ns/partner/sa/onboarding".to_owned(),
        ];
        let onboarding = list.by_san(&sans).unwrap();
        assert_eq!(&*onboarding.name, "onboarding");
        assert!(onboarding.sees("1") && onboarding.wabas().is_none());
        assert_eq!(onboarding.forced_reads_per_minute, 2);
        assert!(list.by_san(&["spiffe://other".to_owned()]).is_none());
    }

    #[test]
    fn refuses_broken_files_without_quoting_them() {
        let key = "sk_live_this_is_a_raw_key_not_a_digest";
        for (text, expected) in [
            (format!("[[caller]]\nname = \"a\"\napi_key_sha256 = \"{key}\"\nscopes = [\"read\"]\n"), "64 hex digits"),
            (format!("[[caller]]\nname = \"a\"\napi_key = \"{key}\"\nscopes = [\"read\"]\n"), "unknown field"),
            (format!("[[caller]]\nname = \"a\"\napi_key_sha256 = {key}\n"), "TOML"),
            (format!("[[caller]]\nname = \"a\"\ntls_san = \"x\"\nscopes = \"{key}\"\n"), "invalid type"),
            (format!("[[caller]]\nname = \"a\"\ntls_san = \"x\"\nscopes = [\"{key}\"]\n"), "unknown variant"),
            ("[[caller]]\nname = \"a\"\ntls_san = \"x\"\nscopes = [\"admin\"]\n".into(), "unknown variant"),
            ("[[caller]]\nname = \"a\"\nscopes = [\"read\"]\n".into(), "api_key_sha256 or tls_san"),
            ("[[caller]]\nname = \"a\"\ntls_san = \"x\"\nscopes = []\n".into(), "at least one"),
            ("[[caller]]\nname = \"a\"\ntls_san = \"x\"\nscopes = [\"read\"]\nwabas = []\n".into(), "omit it"),
            ("[[caller]]\nname = \"a\"\ntls_san = \"x\"\nscopes = [\"read\"]\nwabas = [\"1/2\"]\n".into(), "not a WABA id"),
            ("[[caller]]\nname = \"a\"\ntls_san = \"x\"\nscopes = [\"read\"]\n[[caller]]\nname = \"a\"\ntls_san = \"y\"\nscopes = [\"read\"]\n".into(), "named twice"),
            ("[[caller]]\nname = \"a\"\ntls_san = \"x\"\nscopes = [\"read\"]\n[[caller]]\nname = \"b\"\ntls_san = \"x\"\nscopes = [\"read\"]\n".into(), "another caller's"),
            (format!("[[caller]]\nname = \"a\"\napi_key_sha256 = \"{}\"\nscopes = [\"read\"]\n[[caller]]\nname = \"b\"\napi_key_sha256 = \"{}\"\nscopes = [\"read\"]\n", sha("k"), sha("k")), "another caller's"),
        ] {
            let e = CallerList::parse(&text).unwrap_err().to_string();
            assert!(e.contains(expected), "{e}");
            assert!(!e.contains(key), "{e}");
        }
        assert!(CallerList::parse("").unwrap().is_empty());
    }

    #[test]
    fn a_broken_change_keeps_the_last_good_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("callers.toml");
        std::fs::write(&path, file()).unwrap();
        let callers = Callers::load(&path).unwrap();
        assert_eq!(callers.current().len(), 2);
        std::fs::write(&path, "[[caller]]\nname = ").unwrap();
        callers.reload();
        assert_eq!(callers.current().len(), 2);
        std::fs::remove_file(&path).unwrap();
        callers.reload();
        assert_eq!(callers.current().len(), 2);
        std::fs::write(
            &path,
            "[[caller]]\nname = \"c\"\ntls_san = \"z\"\nscopes = [\"read\"]\n",
        )
        .unwrap();
        callers.reload();
        assert_eq!(callers.current().len(), 1);
        assert!(callers.current().by_key("billing-key").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn forced_reads_are_limited_per_caller_and_waba_for_a_sliding_minute() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("callers.toml");
        std::fs::write(&path, file()).unwrap();
        let callers = Callers::load(&path).unwrap();
        let list = callers.current();
        let onboarding = list
            .by_san(&["spiffe://cluster.local/ns/partner/sa/onboarding".to_owned()])
            .unwrap();
        let billing = list.by_key("billing-key").unwrap();
        assert!(callers.forced_read(&onboarding, "1").is_ok());
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(callers.forced_read(&onboarding, "1").is_ok());
        assert_eq!(
            callers.forced_read(&onboarding, "1"),
            Err(Duration::from_secs(40))
        );
        // Another WABA, another caller: their own allowance.
        assert!(callers.forced_read(&onboarding, "2").is_ok());
        for _ in 0..DEFAULT_FORCED_READS_PER_MINUTE {
            assert!(callers.forced_read(&billing, "1").is_ok());
        }
        assert!(callers.forced_read(&billing, "1").is_err());
        tokio::time::advance(Duration::from_secs(40)).await;
        assert!(callers.forced_read(&onboarding, "1").is_ok());
        assert!(callers.forced_read(&onboarding, "1").is_err());
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// Lines a callers file is made of, right and wrong, to splice into files.
    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("[[caller]]".to_owned()),
            Just("[caller]".to_owned()),
            "name = \"[a-z.\\-_ ]{0,70}\"",
            "api_key_sha256 = \"[0-9a-fA-F]{0,70}\"",
            "tls_san = \"[ -~]{0,40}\"",
            "scopes = \\[(\"(read|watch|write|onboard|admin)\", ?){0,5}\\]",
            "wabas = \\[(\"[0-9/]{0,20}\", ?){0,4}\\]",
            "forced_reads_per_minute = -?[0-9]{1,12}",
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(crate::fuzzing::config())]

        /// Any text: a list or an error, never a panic.
        #[test]
        fn fuzz_callers_file_arbitrary_text_never_panics(text in any::<String>()) {
            let _ = CallerList::parse(&text);
        }

        /// Files made of plausible lines: what parses keeps every rule the file promises.
        #[test]
        fn fuzz_callers_file_what_parses_keeps_the_rules(lines in proptest::collection::vec(line(), 0..24)) {
            let text = lines.join("\n");
            if let Ok(list) = CallerList::parse(&text) {
                let mut names = BTreeSet::new();
                for caller in &list.callers {
                    prop_assert!(names.insert(caller.name.clone()), "a name twice");
                    prop_assert!(!caller.scopes.is_empty());
                    prop_assert!(caller.key_sha256.is_some() || caller.tls_san.is_some());
                    if let Some(wabas) = &caller.wabas {
                        prop_assert!(!wabas.is_empty());
                        prop_assert!(wabas.iter().all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit())));
                    }
                }
            }
        }

        /// A key finds its caller, and no other string does.
        #[test]
        fn fuzz_callers_file_a_key_finds_only_its_caller(key in "[ -~]{1,64}", other in "[ -~]{1,64}") {
            let text = format!(
                "[[caller]]\nname = \"a\"\napi_key_sha256 = \"{}\"\nscopes = [\"read\"]\n",
                hex::encode(Sha256::digest(key.as_bytes()))
            );
            let list = CallerList::parse(&text).unwrap();
            prop_assert!(list.by_key(&key).is_some());
            prop_assert_eq!(list.by_key(&other).is_some(), other == key);
        }
    }
}
