//! Configuration of `orbit serve`: a TOML file, overridden by flags and
//! environment variables. Mistakes are reported at start-up, naming the field.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
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
    pub backend: BackendConfig,
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
        }
    }
}

impl Config {
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else { return Ok(Self::default()) };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        let config: Config =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {}", path.display(), e.message()))?;
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
        std::fs::write(&p, "site = \"paris\"\n[backend]\nkind = \"memory\"\n").unwrap();
        let c = Config::load(Some(&p)).unwrap();
        assert_eq!(c.site, "paris");
        assert_eq!(c.backend.kind, BackendKind::Memory);
    }
}
