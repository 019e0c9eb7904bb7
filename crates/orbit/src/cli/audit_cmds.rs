//! `orbit audit`, `orbit grant` and `orbit tenant limits`.

use super::{Connection, Output, emit, fmt_time, print_table};
use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use orbit_admin::AdminClient;
use orbit_admin::api::{AuditListQuery, AuditVerification, GrantBody, Limits};

#[derive(Subcommand)]
pub enum LimitsCmd {
    /// Set the limits (operator only); a limit left out is removed.
    Set {
        tenant: String,
        #[arg(long)]
        max_users: Option<u32>,
        #[arg(long)]
        max_keys_per_user: Option<u32>,
        #[arg(long)]
        max_buckets: Option<u32>,
    },
    Show {
        tenant: String,
    },
}

#[derive(Subcommand)]
pub enum GrantCmd {
    /// Give a user read or write on a bucket, or on the keys under a prefix.
    Add {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: String,
        #[arg(long)]
        bucket: String,
        #[arg(long)]
        prefix: Option<String>,
        #[arg(long, value_parser = ["read", "write"])]
        access: String,
    },
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: String,
    },
    Remove {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: String,
        #[arg(long)]
        bucket: String,
        #[arg(long)]
        prefix: Option<String>,
        #[arg(long, value_parser = ["read", "write"])]
        access: String,
    },
}

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Audit records, oldest first.
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        user: Option<String>,
        /// An action (`user.create`) or a prefix ending in `.` (`auth.`, `s3.`).
        #[arg(long)]
        action: Option<String>,
        /// From this time (RFC 3339, e.g. 2026-11-23T08:00:00Z).
        #[arg(long)]
        since: Option<String>,
        /// Until this time (RFC 3339), exclusive.
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Verify the hash chains; exits non-zero naming the first bad record.
    /// With --data-dir, verifies a stopped server's metadata file directly.
    Verify {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Turn S3 data-access audit of a tenant on or off (operator or its tenant-admin).
    DataAccess {
        #[arg(long)]
        tenant: String,
        #[arg(value_parser = ["on", "off", "show"])]
        state: String,
    },
}

fn opt(v: Option<u32>) -> String {
    v.map_or("none".into(), |n| n.to_string())
}

pub(super) async fn limits(c: &AdminClient, output: Output, cmd: LimitsCmd) -> Result<()> {
    let (tenant, l) = match cmd {
        LimitsCmd::Set { tenant, max_users, max_keys_per_user, max_buckets } => {
            let l = c.set_limits(&tenant, &Limits { max_users, max_keys_per_user, max_buckets }).await?;
            (tenant, l)
        }
        LimitsCmd::Show { tenant } => {
            let l = c.limits(&tenant).await?;
            (tenant, l)
        }
    };
    emit(output, &l, || {
        print_table(
            &["tenant", "max users", "max keys per user", "max buckets"],
            vec![vec![tenant.clone(), opt(l.max_users), opt(l.max_keys_per_user), opt(l.max_buckets)]],
        )
    })
}

fn grant_rows(grants: &[GrantBody]) -> Vec<Vec<String>> {
    grants.iter().map(|g| vec![g.bucket.clone(), g.prefix.clone().unwrap_or_default(), g.access.clone()]).collect()
}

pub(super) async fn grant(c: &AdminClient, output: Output, cmd: GrantCmd) -> Result<()> {
    let grants = match cmd {
        GrantCmd::Add { tenant, user, bucket, prefix, access } => {
            c.add_grant(&tenant, &user, &GrantBody { bucket, prefix, access }).await?
        }
        GrantCmd::List { tenant, user } => c.list_grants(&tenant, &user).await?,
        GrantCmd::Remove { tenant, user, bucket, prefix, access } => {
            c.remove_grant(&tenant, &user, &GrantBody { bucket, prefix, access }).await?
        }
    };
    emit(output, &grants, || {
        if grants.is_empty() {
            println!("no grants: the user has its role's access to every bucket of its tenant");
        } else {
            print_table(&["bucket", "prefix", "access"], grant_rows(&grants));
        }
    })
}

fn parse_time(what: &str, s: &str) -> Result<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| anyhow!("--{what} `{s}`: expected an RFC 3339 time such as 2026-11-23T08:00:00Z"))?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Print the verdict; an error (non-zero exit) names the first bad record.
fn verdict(output: Output, v: &AuditVerification) -> Result<()> {
    emit(output, v, || {
        let rows = v
            .chains
            .iter()
            .map(|c| {
                let state = match (c.bad_seq, &c.reason) {
                    (Some(s), Some(r)) => format!("BROKEN at record {s}: {r}"),
                    _ => "ok".into(),
                };
                vec![c.tenant.clone(), c.records.to_string(), state]
            })
            .collect();
        print_table(&["chain", "records", "state"], rows)
    })?;
    if let Some(bad) = v.chains.iter().find(|c| !c.ok) {
        bail!(
            "audit chain of tenant {} is broken at record {}: {}",
            bad.tenant,
            bad.bad_seq.unwrap_or(0),
            bad.reason.as_deref().unwrap_or("unknown")
        );
    }
    Ok(())
}

/// Verify the chains in a stopped server's data directory, reading its metadata file directly.
async fn verify_offline(dir: &std::path::Path, tenant: Option<&str>) -> Result<AuditVerification> {
    use orbit_meta::{MetaStore, MetaStoreExt};
    let path = dir.join("meta.redb");
    if !path.exists() {
        bail!("{} does not exist (is --data-dir the server's data directory?)", path.display());
    }
    let meta = orbit_meta::RedbStore::open(&path).map_err(|e| {
        anyhow!("cannot open {} ({e}); stop the server first, offline verification reads its file", path.display())
    })?;
    let chains = match tenant {
        Some(name) => {
            let id = meta
                .get(orbit_meta::Table::TenantNames, name.as_bytes())
                .await
                .map_err(|e| anyhow!("{e}"))?
                .and_then(|b| orbit_types::TenantId::from_slice(&b))
                .ok_or_else(|| anyhow!("no tenant named {name} in {}", path.display()))?;
            vec![id]
        }
        None => orbit_core::audit::chains(&meta).await?,
    };
    let mut reports = Vec::new();
    for c in chains {
        reports.push(orbit_core::audit::verify_chain(&meta, c).await?);
    }
    // Name chains whose records are gone by their tenant, when it still exists.
    for r in &mut reports {
        if r.tenant.is_empty()
            && let Ok(Some(t)) =
                meta.get_record::<orbit_tenancy::TenantRecord>(orbit_meta::Table::Tenants, r.chain.as_bytes()).await
        {
            r.tenant = t.name.to_string();
        }
    }
    Ok(orbit_admin::audit_verdicts(reports))
}

pub(super) async fn audit(conn: &Connection, cmd: AuditCmd) -> Result<()> {
    match cmd {
        AuditCmd::List { tenant, user, action, since, until, limit } => {
            let q = AuditListQuery {
                tenant,
                user,
                action,
                since_ms: since.as_deref().map(|s| parse_time("since", s)).transpose()?,
                until_ms: until.as_deref().map(|s| parse_time("until", s)).transpose()?,
                limit: Some(limit),
            };
            let records = conn.client()?.audit_list(&q).await?;
            let rows = records
                .iter()
                .map(|r| {
                    vec![
                        fmt_time(r.time_ms),
                        r.tenant.clone(),
                        r.seq.to_string(),
                        if r.actor.is_empty() { format!("key {}", r.access_key) } else { r.actor.clone() },
                        r.action.clone(),
                        r.target.clone(),
                        r.outcome.clone(),
                    ]
                })
                .collect();
            emit(conn.output, &records, || {
                print_table(&["time", "tenant", "seq", "actor", "action", "target", "outcome"], rows)
            })
        }
        AuditCmd::Verify { tenant } => {
            let v = match &conn.data_dir {
                Some(dir) => verify_offline(dir, tenant.as_deref()).await.context("offline audit verification")?,
                None => conn.client()?.audit_verify(tenant.as_deref()).await?,
            };
            verdict(conn.output, &v)
        }
        AuditCmd::DataAccess { tenant, state } => {
            let c = conn.client()?;
            let s = match state.as_str() {
                "on" => c.set_audit_settings(&tenant, true).await?,
                "off" => c.set_audit_settings(&tenant, false).await?,
                _ => c.audit_settings(&tenant).await?,
            };
            emit(conn.output, &s, || {
                println!("data-access audit of tenant {tenant} is {}", if s.data_access { "on" } else { "off" })
            })
        }
    }
}
