//! Configuration of `orbit serve`: a TOML file, overridden by flags and
//! environment variables. Mistakes are reported at start-up, naming the field.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where `orbit serve` keeps its state when told nothing else.
pub const DEFAULT_DATA_DIR: &str = "orbit-data";

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Name of this site.
    pub site: String,
    /// Where the embedded metadata store, the local backend and the keys live.
    pub data_dir: PathBuf,
    pub s3_addr: SocketAddr,
    /// Threads serving S3, each with a runtime of its own (0: one per CPU).
    pub s3_threads: usize,
    pub admin_addr: SocketAddr,
    /// Region reported to S3 clients.
    pub region: String,
    /// Base domains for virtual-host style addressing (`bucket.DOMAIN`).
    pub s3_domains: Vec<String>,
    /// File holding the base64 master key that seals secrets at rest
    /// (default: `ORBIT_MASTER_KEY`, else DATA_DIR/master.key, created on first start).
    pub master_key_file: Option<PathBuf>,
    pub metadata: MetadataConfig,
    /// The default backend (buckets go here unless placed elsewhere).
    pub backend: BackendConfig,
    /// More backends by name, for buckets placed on them through the admin API.
    /// A backend named `default` replaces the one above.
    pub backends: BTreeMap<String, NamedBackend>,
    pub cache: CacheSettings,
    /// Listener for peer sites (started when `peers` is not empty).
    pub peer_addr: SocketAddr,
    /// Milliseconds between liveness probes of each peer.
    pub peer_probe_interval_ms: u64,
    /// Milliseconds a probe waits for its answer.
    pub peer_timeout_ms: u64,
    /// The other sites, by name. Each pair of sites shares a secret, from
    /// `ORBIT_PEER_SECRET_<NAME>` or the peer's `secret_file`.
    pub peers: BTreeMap<String, PeerSettings>,
    /// The site that is the authority for tenants, users, keys, grants,
    /// limits, QoS, quotas and buckets (default: this site). Every other site
    /// mirrors them from it; all sites must share the master key.
    pub directory_site: Option<String>,
    /// Milliseconds between pulls of the directory at a mirroring site.
    pub directory_pull_interval_ms: u64,
    /// Timing of the read leases between sites (every site of a deployment
    /// must use the same values).
    pub leases: LeaseSettings,
}

/// The `[leases]` table; defaults are orbit-site's `LeaseTiming::default()`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeaseSettings {
    /// How long a read lease lets a satellite serve from its cache.
    pub read_lease_ms: u64,
    /// The most one site's clock may run faster than another's (0.01 = 1 %).
    pub drift: f64,
    /// Added to the drift bound for timer granularity and scheduling delay.
    pub margin_ms: u64,
    /// A satellite renews a lease in use once less than this remains.
    pub renew_before_ms: u64,
    /// How often unanswered lease messages and invalidations are sent again.
    pub retry_every_ms: u64,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        let t = orbit_site::LeaseTiming::default();
        Self {
            read_lease_ms: t.read_lease.as_millis() as u64,
            drift: t.drift,
            margin_ms: t.margin.as_millis() as u64,
            renew_before_ms: t.renew_before.as_millis() as u64,
            retry_every_ms: t.retry_every.as_millis() as u64,
        }
    }
}

impl LeaseSettings {
    /// The timing, or a one-line error naming the field at fault.
    pub fn timing(&self) -> Result<orbit_site::LeaseTiming> {
        use std::time::Duration;
        if self.read_lease_ms == 0 {
            bail!("config field `leases.read_lease_ms`: must be positive");
        }
        if !(self.drift.is_finite() && (0.0..1.0).contains(&self.drift)) {
            bail!("config field `leases.drift`: must be at least 0 and below 1, got {}", self.drift);
        }
        if self.renew_before_ms >= self.read_lease_ms {
            bail!(
                "config field `leases.renew_before_ms`: must be shorter than `leases.read_lease_ms` ({} >= {})",
                self.renew_before_ms,
                self.read_lease_ms
            );
        }
        if self.retry_every_ms == 0 {
            bail!("config field `leases.retry_every_ms`: must be positive");
        }
        let timing = orbit_site::LeaseTiming {
            read_lease: Duration::from_millis(self.read_lease_ms),
            drift: self.drift,
            margin: Duration::from_millis(self.margin_ms),
            renew_before: Duration::from_millis(self.renew_before_ms),
            retry_every: Duration::from_millis(self.retry_every_ms),
        };
        timing.validate().map_err(|e| anyhow::anyhow!("config table `leases`: {e}"))?;
        Ok(timing)
    }
}

/// One peer site.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSettings {
    /// Base URL of the peer's listener, `http://HOST:PORT`.
    pub url: String,
    /// File holding the secret this site shares with the peer (used when
    /// `ORBIT_PEER_SECRET_<NAME>` is not set).
    pub secret_file: Option<PathBuf>,
}

/// The chunk cache in front of every backend.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    pub enabled: bool,
    /// Bytes of chunks kept in memory.
    pub ram_bytes: usize,
    /// Bytes of the SSD tier (0: RAM only).
    pub ssd_bytes: usize,
    /// Directory of the SSD tier (default DATA_DIR/cache).
    pub ssd_dir: Option<PathBuf>,
    /// Chunk size in bytes: the unit of backend reads and of caching.
    pub chunk_size: u64,
    /// Also cache what clients write (writes stay write-through).
    pub ingest_writes: bool,
    /// Bytes of local disk for pinned prefixes, which are never evicted (0: pinning off).
    pub pinned_bytes: u64,
    /// Directory of the pinned tier (default DATA_DIR/pinned).
    pub pinned_dir: Option<PathBuf>,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            ram_bytes: 1 << 30,
            ssd_bytes: 0,
            ssd_dir: None,
            chunk_size: 4 << 20,
            ingest_writes: false,
            pinned_bytes: 4 << 30,
            pinned_dir: None,
        }
    }
}

/// A remote (or extra local) backend. Credentials may also come from the
/// environment: `ORBIT_BACKEND_<NAME>_ACCESS_KEY_ID`, `..._SECRET_ACCESS_KEY`
/// (S3) and `..._ACCESS_KEY` (Azure), NAME upper-cased with '-' as '_'.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum NamedBackend {
    S3 {
        endpoint: Option<String>,
        bucket: String,
        #[serde(default = "default_region")]
        region: String,
        prefix: Option<String>,
        #[serde(default)]
        allow_http: bool,
        #[serde(default)]
        virtual_hosted_style: bool,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
    },
    Gcs {
        bucket: String,
        prefix: Option<String>,
        service_account_path: Option<String>,
    },
    Azure {
        account: String,
        container: String,
        prefix: Option<String>,
        access_key: Option<String>,
        endpoint: Option<String>,
        #[serde(default)]
        allow_http: bool,
    },
    Local {
        path: PathBuf,
    },
}

fn default_region() -> String {
    "us-east-1".into()
}

const BACKEND_KINDS: [&str; 4] = ["s3", "gcs", "azure", "local"];

/// Name the table and field of a missing or unknown backend `kind`, which
/// serde's tagged-enum errors leave out.
fn check_backend_kinds(text: &str) -> Result<()> {
    let Ok(doc) = text.parse::<toml::Table>() else { return Ok(()) };
    let Some(toml::Value::Table(backends)) = doc.get("backends") else { return Ok(()) };
    for (name, b) in backends {
        match b.get("kind").and_then(toml::Value::as_str) {
            Some(k) if BACKEND_KINDS.contains(&k) => {}
            Some(k) => bail!(
                "config table `backends.{name}`: field `kind` is `{k}`, expected one of {}",
                BACKEND_KINDS.join(", ")
            ),
            None => {
                bail!("config table `backends.{name}`: field `kind` is missing (one of {})", BACKEND_KINDS.join(", "))
            }
        }
    }
    Ok(())
}

/// The environment variable that may hold a secret of backend `name`.
pub fn backend_env(name: &str, what: &str) -> String {
    format!("ORBIT_BACKEND_{}_{what}", name.to_ascii_uppercase().replace('-', "_"))
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// Persistent, in DATA_DIR.
    #[default]
    Embedded,
    /// Nothing survives a restart.
    Memory,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataConfig {
    pub store: StoreKind,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// A local directory (DATA_DIR/objects unless `path` is set).
    #[default]
    Local,
    Memory,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackendConfig {
    pub kind: BackendKind,
    pub path: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            site: "local".into(),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            s3_addr: "127.0.0.1:9000".parse().expect("valid"),
            s3_threads: 0,
            admin_addr: "127.0.0.1:9001".parse().expect("valid"),
            region: "us-east-1".into(),
            s3_domains: Vec::new(),
            master_key_file: None,
            metadata: MetadataConfig::default(),
            backend: BackendConfig::default(),
            backends: BTreeMap::new(),
            cache: CacheSettings::default(),
            peer_addr: "127.0.0.1:9002".parse().expect("valid"),
            peer_probe_interval_ms: 2000,
            peer_timeout_ms: 2000,
            peers: BTreeMap::new(),
            directory_site: None,
            directory_pull_interval_ms: 1000,
            leases: LeaseSettings::default(),
        }
    }
}

impl Config {
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else { return Ok(Self::default()) };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        check_backend_kinds(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
        let config: Config = toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
            anyhow::anyhow!("config file {}{at}: {}", path.display(), e.message().trim())
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        if self.site.is_empty() || !self.site.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            bail!("config field `site`: must be letters, digits and '-', got `{}`", self.site);
        }
        if self.s3_threads > 1024 {
            bail!("config field `s3_threads`: at most 1024 (0: one per CPU), got {}", self.s3_threads);
        }
        if self.s3_addr == self.admin_addr {
            bail!("config fields `s3_addr` and `admin_addr` must differ (both are {})", self.s3_addr);
        }
        for name in self.backends.keys() {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                bail!("config table `backends.{name}`: a backend name is letters, digits, '-' and '_'");
            }
            if name.starts_with('_') {
                bail!("config table `backends.{name}`: names starting with '_' are the site's own (e.g. `_held`)");
            }
        }
        if !(64 * 1024..=64 << 20).contains(&self.cache.chunk_size) {
            bail!("config field `cache.chunk_size`: must be between 64 KiB and 64 MiB, got {}", self.cache.chunk_size);
        }
        for d in &self.s3_domains {
            if d.is_empty() || d.starts_with('.') || d.contains(':') {
                bail!("config field `s3_domains`: `{d}` is not a domain name");
            }
        }
        self.leases.timing()?;
        self.validate_peers()?;
        if let Some(d) = &self.directory_site
            && d != &self.site
            && !self.peers.contains_key(d)
        {
            bail!("config field `directory_site`: `{d}` is neither this site (`{}`) nor a configured peer", self.site);
        }
        if self.directory_pull_interval_ms == 0 {
            bail!("config field `directory_pull_interval_ms` must be positive");
        }
        Ok(())
    }

    /// The directory site's name (this site unless configured otherwise).
    pub fn directory_site(&self) -> &str {
        self.directory_site.as_deref().unwrap_or(&self.site)
    }

    pub fn backend_root(&self) -> PathBuf {
        self.backend.path.clone().unwrap_or_else(|| self.data_dir.join("objects"))
    }
}

/// The shortest peer secret accepted: it keys an HMAC, guessing must not pay.
pub const MIN_PEER_SECRET_LEN: usize = 16;

/// The environment variable that may hold the secret shared with peer `name`.
pub fn peer_secret_env(name: &str) -> String {
    format!("ORBIT_PEER_SECRET_{}", name.to_ascii_uppercase().replace('-', "_"))
}

impl Config {
    fn validate_peers(&self) -> Result<()> {
        if self.peers.is_empty() {
            return Ok(());
        }
        if self.peer_addr == self.s3_addr || self.peer_addr == self.admin_addr {
            bail!("config field `peer_addr`: must differ from `s3_addr` and `admin_addr` (it is {})", self.peer_addr);
        }
        if self.peer_probe_interval_ms == 0 || self.peer_timeout_ms == 0 {
            bail!("config fields `peer_probe_interval_ms` and `peer_timeout_ms` must be positive");
        }
        let mut urls: BTreeMap<String, &str> = BTreeMap::new();
        for (name, p) in &self.peers {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                bail!("config table `peers.{name}`: a site name is letters, digits and '-'");
            }
            if name == &self.site {
                bail!("config table `peers.{name}`: `{name}` is this site's own name (field `site`)");
            }
            let Some(rest) = p.url.strip_prefix("http://") else {
                bail!("config table `peers.{name}`: field `url` must be http://HOST:PORT, got `{}`", p.url);
            };
            let host_port = rest.trim_end_matches('/');
            if host_port.is_empty() || host_port.contains('/') || !host_port.contains(':') {
                bail!("config table `peers.{name}`: field `url` must be http://HOST:PORT, got `{}`", p.url);
            }
            if let Some(other) = urls.insert(host_port.to_ascii_lowercase(), name) {
                bail!("config tables `peers.{other}` and `peers.{name}`: field `url` is the same ({})", p.url);
            }
        }
        Ok(())
    }

    /// The peer channel's configuration with every pair's secret, read from
    /// the environment or the peer's `secret_file`. Errors name the field;
    /// no secret ever appears in them.
    pub fn peer_config(&self) -> Result<orbit_peer::PeerConfig> {
        let mut config = orbit_peer::PeerConfig::new(orbit_site::SiteId::new(self.site.clone()));
        config.connect_timeout = std::time::Duration::from_millis(self.peer_timeout_ms);
        for (name, p) in &self.peers {
            let env = peer_secret_env(name);
            let secret = match std::env::var(&env).ok().filter(|s| !s.is_empty()) {
                Some(s) => s,
                None => match &p.secret_file {
                    Some(path) => std::fs::read_to_string(path)
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "config table `peers.{name}`: field `secret_file`: cannot read {}: {e}",
                                path.display()
                            )
                        })?
                        .trim()
                        .to_owned(),
                    None => bail!("config table `peers.{name}`: no secret: set {env} or field `secret_file`"),
                },
            };
            if secret.len() < MIN_PEER_SECRET_LEN {
                bail!(
                    "config table `peers.{name}`: the secret (from {env} or `secret_file`) must be at least {MIN_PEER_SECRET_LEN} characters"
                );
            }
            config = config.with_peer(orbit_site::SiteId::new(name.clone()), p.url.clone(), secret);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_embedded_single_site() {
        let c = Config::default();
        assert_eq!(c.s3_addr.to_string(), "127.0.0.1:9000");
        assert_eq!(c.metadata.store, StoreKind::Embedded);
        assert_eq!(c.backend.kind, BackendKind::Local);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn errors_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("orbit.toml");
        std::fs::write(&p, "s3_addr = \"nonsense\"\n").unwrap();
        let e = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("s3_addr") || e.contains("socket address"), "{e}");
        std::fs::write(&p, "colour = 1\n").unwrap();
        let e = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("colour"), "{e}");
        std::fs::write(&p, "site = \"a b\"\n").unwrap();
        assert!(Config::load(Some(&p)).unwrap_err().to_string().contains("`site`"));
        std::fs::write(&p, "s3_threads = 5000\n").unwrap();
        assert!(Config::load(Some(&p)).unwrap_err().to_string().contains("`s3_threads`"));
        std::fs::write(&p, "s3_threads = 3\n").unwrap();
        assert_eq!(Config::load(Some(&p)).unwrap().s3_threads, 3);
        std::fs::write(&p, "[backends.remote]\nkind = \"ftp\"\n").unwrap();
        let e = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("ftp") && e.contains("`backends.remote`") && e.contains("`kind`"), "{e}");
        std::fs::write(&p, "[backends.remote]\nkind = \"s3\"\nendpoint = \"http://x\"\n").unwrap();
        assert!(Config::load(Some(&p)).unwrap_err().to_string().contains("bucket"));
        std::fs::write(&p, "[backends.remote]\nkind = \"s3\"\nbucket = \"b\"\nprefix = \"p\"\n").unwrap();
        let c = Config::load(Some(&p)).unwrap();
        assert!(
            matches!(&c.backends["remote"], NamedBackend::S3 { bucket, region, .. } if bucket == "b" && region == "us-east-1")
        );
        std::fs::write(&p, "[backends._held]\nkind = \"s3\"\nbucket = \"b\"\n").unwrap();
        let e = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("`backends._held`") && e.contains("site's own"), "{e}");
        std::fs::write(&p, "site = \"paris\"\n[backend]\nkind = \"memory\"\n").unwrap();
        let c = Config::load(Some(&p)).unwrap();
        assert_eq!(c.site, "paris");
        assert_eq!(c.backend.kind, BackendKind::Memory);
    }

    #[test]
    fn lease_timing_defaults_to_the_protocols_and_errors_name_the_field() {
        assert_eq!(Config::default().leases.timing().unwrap(), orbit_site::LeaseTiming::default());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("orbit.toml");
        let load = |text: &str| {
            std::fs::write(&p, text).unwrap();
            Config::load(Some(&p))
        };
        let c = load("[leases]\nread_lease_ms = 2000\nrenew_before_ms = 800\nretry_every_ms = 200\n").unwrap();
        let t = c.leases.timing().unwrap();
        assert_eq!(t.read_lease, std::time::Duration::from_secs(2));
        assert_eq!(t.drift, 0.01, "unset fields keep their defaults");
        for (text, field) in [
            ("[leases]\nread_lease_ms = 0\n", "leases.read_lease_ms"),
            ("[leases]\ndrift = 1.5\n", "leases.drift"),
            ("[leases]\ndrift = -0.1\n", "leases.drift"),
            ("[leases]\nread_lease_ms = 1000\nrenew_before_ms = 1000\n", "leases.renew_before_ms"),
            ("[leases]\nretry_every_ms = 0\n", "leases.retry_every_ms"),
        ] {
            let e = load(text).unwrap_err().to_string();
            assert!(e.contains(field), "{text}: {e}");
            assert_eq!(e.lines().count(), 1, "one line: {e}");
        }
        assert!(load("[leases]\ncolour = 1\n").unwrap_err().to_string().contains("colour"));
    }

    #[test]
    fn peers_are_checked_at_start_up_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("orbit.toml");
        let load = |text: &str| {
            std::fs::write(&p, text).unwrap();
            Config::load(Some(&p))
        };
        let e = load("site = \"eu\"\n[peers.eu]\nurl = \"http://10.0.0.2:9002\"\n").unwrap_err().to_string();
        assert!(e.contains("`peers.eu`") && e.contains("own name"), "{e}");
        let e = load("site = \"eu\"\n[peers.us]\nurl = \"http://h:1\"\n[peers.asia]\nurl = \"http://H:1/\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`peers.asia`") && e.contains("`peers.us`") && e.contains("same"), "{e}");
        let e = load("site = \"eu\"\n[peers.us]\nurl = \"https://h:1\"\n").unwrap_err().to_string();
        assert!(e.contains("`peers.us`") && e.contains("`url`"), "{e}");
        let e = load("site = \"eu\"\n[peers.us]\nurl = \"http://h:1\"\ncolour = 2\n").unwrap_err().to_string();
        assert!(e.contains("colour"), "{e}");

        // A name no test environment sets, so the secret must come from the file.
        let c = load("site = \"eu\"\n[peers.zz-nowhere]\nurl = \"http://h:1\"\n").unwrap();
        let e = c.peer_config().unwrap_err().to_string();
        assert!(e.contains("`peers.zz-nowhere`") && e.contains("ORBIT_PEER_SECRET_ZZ_NOWHERE"), "{e}");
        let secret = dir.path().join("zz.secret");
        std::fs::write(&secret, "short\n").unwrap();
        let text = format!(
            "site = \"eu\"\n[peers.zz-nowhere]\nurl = \"http://h:1\"\nsecret_file = \"{}\"\n",
            secret.display()
        );
        let e = load(&text).unwrap().peer_config().unwrap_err().to_string();
        assert!(e.contains("at least") && !e.contains("short"), "{e}");
        std::fs::write(&secret, "0123456789abcdef-long-enough\n").unwrap();
        let pc = load(&text).unwrap().peer_config().unwrap();
        assert!(!format!("{pc:?}").contains("long-enough"), "secrets stay out of Debug output");
        assert_eq!(pc.peers.len(), 1);
    }

    #[test]
    fn the_directory_site_is_this_site_or_a_peer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("orbit.toml");
        let load = |text: &str| {
            std::fs::write(&p, text).unwrap();
            Config::load(Some(&p))
        };
        assert_eq!(load("site = \"eu\"\n").unwrap().directory_site(), "eu");
        assert_eq!(load("site = \"eu\"\ndirectory_site = \"eu\"\n").unwrap().directory_site(), "eu");
        let c = load("site = \"eu\"\ndirectory_site = \"us\"\n[peers.us]\nurl = \"http://h:1\"\n").unwrap();
        assert_eq!(c.directory_site(), "us");
        let e = load("site = \"eu\"\ndirectory_site = \"asia\"\n[peers.us]\nurl = \"http://h:1\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`directory_site`") && e.contains("asia"), "{e}");
        let e = load("site = \"eu\"\ndirectory_pull_interval_ms = 0\n").unwrap_err().to_string();
        assert!(e.contains("`directory_pull_interval_ms`"), "{e}");
    }
}
