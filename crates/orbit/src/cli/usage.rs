//! `orbit quota` and `orbit usage`: quotas, current usage, recounts and
//! hourly metering reports over the admin API.

use super::units::parse_bytes;
use super::{Output, emit, print_table};
use anyhow::{Result, anyhow};
use clap::Subcommand;
use orbit_admin::AdminClient;
use orbit_admin::usage::{QuotaView, SetQuota, records_csv};

#[derive(Subcommand)]
pub enum QuotaCmd {
    /// Set a tenant's quota, or a bucket's with --bucket (operator).
    Set {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        bucket: Option<String>,
        /// Bytes stored, e.g. 1073741824, 10GiB, 500MB.
        #[arg(long, value_parser = parse_bytes, required_unless_present = "max_objects")]
        max_bytes: Option<u64>,
        #[arg(long)]
        max_objects: Option<u64>,
        /// hard: refuse writes past the limit; soft: log and count them.
        #[arg(long, value_parser = ["hard", "soft"], default_value = "hard")]
        kind: String,
    },
    /// Show a quota with the current usage.
    Show {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        bucket: Option<String>,
    },
    /// Remove a quota (operator).
    Clear {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        bucket: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum UsageCmd {
    /// Current bytes and objects of a tenant and its buckets, with quotas.
    Show {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        bucket: Option<String>,
    },
    /// Hourly metering records (byte-hours, requests, bytes in and out, cache hits).
    Report {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        bucket: Option<String>,
        /// Hours from this time on (RFC 3339, e.g. 2026-01-31T00:00:00Z).
        #[arg(long)]
        from: Option<String>,
        /// Hours before this time (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        #[arg(long, value_parser = ["json", "csv"], default_value = "json")]
        format: String,
    },
    /// Recompute usage from the object records and report drift; --fix corrects it (operator).
    /// Without --fix, drift found makes the command exit non-zero.
    Recount {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        fix: bool,
    },
}

fn limit(v: Option<u64>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

fn quota_row(q: &QuotaView) -> Vec<String> {
    vec![
        q.bucket.clone().unwrap_or_else(|| "(tenant)".into()),
        q.kind.clone().unwrap_or_else(|| "none".into()),
        limit(q.max_bytes),
        q.usage.bytes.to_string(),
        limit(q.max_objects),
        q.usage.objects.to_string(),
    ]
}

const QUOTA_HEADER: [&str; 6] = ["scope", "kind", "max bytes", "bytes", "max objects", "objects"];

pub async fn quota(c: AdminClient, output: Output, cmd: QuotaCmd) -> Result<()> {
    let q = match cmd {
        QuotaCmd::Set { tenant, bucket, max_bytes, max_objects, kind } => {
            let body = SetQuota { max_bytes, max_objects, kind: Some(kind) };
            c.set_quota(&tenant, bucket.as_deref(), &body).await?
        }
        QuotaCmd::Show { tenant, bucket } => c.get_quota(&tenant, bucket.as_deref()).await?,
        QuotaCmd::Clear { tenant, bucket } => c.clear_quota(&tenant, bucket.as_deref()).await?,
    };
    emit(output, &q, || print_table(&QUOTA_HEADER, vec![quota_row(&q)]))
}

pub async fn usage(c: AdminClient, output: Output, cmd: UsageCmd) -> Result<()> {
    match cmd {
        UsageCmd::Show { tenant, bucket } => {
            let u = c.usage(&tenant, bucket.as_deref()).await?;
            emit(output, &u, || {
                let mut rows = vec![quota_row(&u.quota)];
                rows.extend(u.buckets.iter().map(quota_row));
                print_table(&QUOTA_HEADER, rows)
            })
        }
        UsageCmd::Report { tenant, bucket, from, to, format } => {
            let records = c.usage_report(&tenant, bucket.as_deref(), from.as_deref(), to.as_deref()).await?;
            if format == "csv" {
                print!("{}", records_csv(&records));
            } else {
                println!("{}", serde_json::to_string_pretty(&records)?);
            }
            Ok(())
        }
        UsageCmd::Recount { tenant, fix } => {
            let drift = c.recount(&tenant, fix).await?;
            let drifted = drift.iter().filter(|d| d.counted != d.actual).count();
            emit(output, &drift, || {
                let rows = drift
                    .iter()
                    .map(|d| {
                        vec![
                            d.bucket.clone().unwrap_or_else(|| "(tenant)".into()),
                            format!("{}/{}", d.counted.bytes, d.counted.objects),
                            format!("{}/{}", d.actual.bytes, d.actual.objects),
                            if d.corrected { "corrected".into() } else { String::new() },
                        ]
                    })
                    .collect();
                print_table(&["scope", "counted bytes/objects", "actual bytes/objects", ""], rows)
            })?;
            if drifted > 0 && !fix {
                return Err(anyhow!("{drifted} counters drifted; run again with --fix to correct them"));
            }
            Ok(())
        }
    }
}
