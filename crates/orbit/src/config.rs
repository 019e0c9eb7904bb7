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
            admin_addr: "127.0.0.1:9001".parse().expect("valid"),
            region: "us-east-1".into(),
            s3_domains: Vec::new(),
            master_key_file: None,
            metadata: MetadataConfig::default(),
            backend: BackendConfig::default(),
            backends: BTreeMap::new(),
            cache: CacheSettings::default(),
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
        if self.s3_addr == self.admin_addr {
            bail!("config fields `s3_addr` and `admin_addr` must differ (both are {})", self.s3_addr);
        }
        for name in self.backends.keys() {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                bail!("config table `backends.{name}`: a backend name is letters, digits, '-' and '_'");
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
        Ok(())
    }

    pub fn backend_root(&self) -> PathBuf {
        self.backend.path.clone().unwrap_or_else(|| self.data_dir.join("objects"))
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
        std::fs::write(&p, "site = \"paris\"\n[backend]\nkind = \"memory\"\n").unwrap();
        let c = Config::load(Some(&p)).unwrap();
        assert_eq!(c.site, "paris");
        assert_eq!(c.backend.kind, BackendKind::Memory);
    }
}
