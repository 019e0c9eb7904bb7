use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};

/// Virtual-host addressing under configured base domains: `bucket.DOMAIN`
/// names a bucket; the bare domain and any other host are path-style.
#[derive(Debug, Clone, Default)]
pub struct VirtualHosts {
    domains: Vec<String>,
}

impl VirtualHosts {
    pub fn new(domains: impl IntoIterator<Item = String>) -> Self {
        Self { domains: domains.into_iter().map(|d| d.to_ascii_lowercase()).collect() }
    }
}

impl S3Host for VirtualHosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let name =
            host.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(h, _)| h);
        let lower = name.to_ascii_lowercase();
        for d in &self.domains {
            if let Some(bucket) = lower.strip_suffix(d.as_str()).and_then(|p| p.strip_suffix('.'))
                && !bucket.is_empty()
            {
                return Ok(VirtualHost::new(d.as_str()).with_bucket(bucket.to_owned()));
            }
        }
        Ok(VirtualHost::new(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_come_from_subdomains_only() {
        let h = VirtualHosts::new(["s3.orbit.test".to_string()]);
        assert_eq!(h.parse_host_header("data.s3.orbit.test:9000").unwrap().bucket(), Some("data"));
        assert_eq!(h.parse_host_header("my.dotted.bucket.s3.orbit.test").unwrap().bucket(), Some("my.dotted.bucket"));
        assert_eq!(h.parse_host_header("s3.orbit.test:9000").unwrap().bucket(), None);
        assert_eq!(h.parse_host_header("localhost:9000").unwrap().bucket(), None);
        assert_eq!(h.parse_host_header("xs3.orbit.test").unwrap().bucket(), None);
    }
}
