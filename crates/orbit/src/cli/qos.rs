//! `orbit qos`: rate limits of a tenant or of one of its buckets.

use super::units::parse_rate;
use super::{Connection, emit, print_table};
use anyhow::{Result, anyhow};
use clap::{Args, Subcommand};
use orbit_admin::api::{Qos, QosLimits};

#[derive(Subcommand)]
pub enum QosCmd {
    /// Set limits (operator). Limits not given are unlimited; the new set
    /// replaces the old one and applies at once.
    Set {
        #[command(flatten)]
        scope: Scope,
        /// Read requests (GET, HEAD, listings) per second; more get S3 SlowDown (503).
        #[arg(long)]
        read_rps: Option<u32>,
        /// Write requests (PUT, DELETE, multipart...) per second.
        #[arg(long)]
        write_rps: Option<u32>,
        /// Bytes per second read, e.g. 100MiB, 1.5GB or 1048576; bodies are paced.
        #[arg(long, value_parser = parse_rate)]
        read_bps: Option<u64>,
        /// Bytes per second written.
        #[arg(long, value_parser = parse_rate)]
        write_bps: Option<u64>,
        /// Seconds' worth of each rate usable at once after a quiet period (default 1).
        #[arg(long)]
        burst_seconds: Option<f64>,
    },
    /// Show the limits in force.
    Show {
        #[command(flatten)]
        scope: Scope,
    },
    /// Remove every limit (operator).
    Clear {
        #[command(flatten)]
        scope: Scope,
    },
}

#[derive(Args)]
pub struct Scope {
    #[arg(long)]
    tenant: String,
    /// One bucket of the tenant (default: the tenant as a whole).
    #[arg(long)]
    bucket: Option<String>,
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    let num = format!("{v:.2}");
    format!("{} {}/s", num.trim_end_matches('0').trim_end_matches('.'), UNITS[i])
}

fn print(q: &Qos) {
    let l = &q.limits;
    let scope = q.bucket.as_ref().map_or(format!("tenant {}", q.tenant), |b| format!("bucket {}/{b}", q.tenant));
    let unlimited = || "unlimited".to_owned();
    let rows = vec![vec![
        scope,
        l.read_rps.map_or_else(unlimited, |r| format!("{r}/s")),
        l.write_rps.map_or_else(unlimited, |r| format!("{r}/s")),
        l.read_bps.map_or_else(unlimited, human_bytes),
        l.write_bps.map_or_else(unlimited, human_bytes),
        l.burst_seconds.map_or("-".to_owned(), |b| format!("{b} s")),
    ]];
    print_table(&["scope", "read requests", "write requests", "read bytes", "write bytes", "burst"], rows);
}

pub async fn run(cmd: QosCmd, conn: &Connection) -> Result<()> {
    let c = conn.client()?;
    match cmd {
        QosCmd::Set { scope, read_rps, write_rps, read_bps, write_bps, burst_seconds } => {
            let limits = QosLimits { read_rps, write_rps, read_bps, write_bps, burst_seconds };
            if limits == QosLimits::default() {
                return Err(anyhow!(
                    "give at least one of --read-rps, --write-rps, --read-bps, --write-bps (or use `orbit qos clear`)"
                ));
            }
            let q = c.set_qos(&scope.tenant, scope.bucket.as_deref(), &limits).await?;
            emit(conn.output, &q, || print(&q))
        }
        QosCmd::Show { scope } => {
            let q = c.get_qos(&scope.tenant, scope.bucket.as_deref()).await?;
            emit(conn.output, &q, || print(&q))
        }
        QosCmd::Clear { scope } => {
            c.clear_qos(&scope.tenant, scope.bucket.as_deref()).await?;
            let what = scope.bucket.as_ref().map_or(format!("tenant {}", scope.tenant), |b| format!("bucket {b}"));
            emit(conn.output, &serde_json::json!({"cleared": what}), || println!("{what} has no limits"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_parse_with_units() {
        assert_eq!(parse_rate("1048576"), Ok(1 << 20));
        assert_eq!(parse_rate("100MiB"), Ok(100 << 20));
        assert_eq!(parse_rate("100 mib/s"), Ok(100 << 20));
        assert_eq!(parse_rate("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_rate("2KiB"), Ok(2048));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("10 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse_rate("-5MiB").is_err());
        assert!(parse_rate("0").is_err());
    }

    #[test]
    fn rates_print_in_binary_units() {
        assert_eq!(human_bytes(100 << 20), "100 MiB/s");
        assert_eq!(human_bytes(1536), "1.5 KiB/s");
        assert_eq!(human_bytes(512), "512 B/s");
    }
}
