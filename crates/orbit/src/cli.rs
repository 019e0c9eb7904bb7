//! The admin subcommands: tenants, users, keys and buckets, as human tables
//! or as JSON for scripts.

use crate::serve::{ROOT_CREDENTIALS_FILE, RootCredentials};
use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand, ValueEnum};
use orbit_admin::AdminClient;
use serde::Serialize;
use std::path::PathBuf;

mod audit_cmds;
mod qos;
mod units;
mod usage;
pub use audit_cmds::{AuditCmd, GrantCmd, LimitsCmd};
mod site;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

/// Options every admin subcommand takes, before or after the subcommand.
#[derive(Args, Clone)]
pub struct Connection {
    /// Admin API of the site.
    #[arg(long, global = true, env = "ORBIT_ADMIN_URL", default_value = "http://127.0.0.1:9001")]
    admin_url: String,
    /// Access key id (default: ORBIT_ROOT_ACCESS_KEY, then DATA_DIR/root-credentials.json).
    #[arg(long, global = true, env = "ORBIT_ACCESS_KEY")]
    access_key: Option<String>,
    /// Secret access key (default: ORBIT_ROOT_SECRET_KEY, then DATA_DIR/root-credentials.json).
    #[arg(long, global = true, env = "ORBIT_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// Data directory (`serve` keeps its state there; the other commands find a
    /// generated operator credential there).
    #[arg(long, global = true, env = "ORBIT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Tenants of the site (operator).
    Tenant {
        #[command(subcommand)]
        cmd: TenantCmd,
    },
    /// Users of a tenant.
    User {
        #[command(subcommand)]
        cmd: UserCmd,
    },
    /// Access keys of a tenant's users.
    Key {
        #[command(subcommand)]
        cmd: KeyCmd,
    },
    /// Buckets of a tenant.
    Bucket {
        #[command(subcommand)]
        cmd: BucketCmd,
    },
    /// Prefetch jobs: warm the site's cache with a prefix or a manifest of keys.
    Prefetch {
        #[command(subcommand)]
        cmd: PrefetchCmd,
    },
    /// Show who the credentials belong to.
    Whoami,
    /// Rate limits (requests and bytes per second) of a tenant or a bucket.
    Qos {
        #[command(subcommand)]
        cmd: qos::QosCmd,
    },
    /// Quotas of a tenant or bucket: bytes and objects, hard or soft.
    Quota {
        #[command(subcommand)]
        cmd: usage::QuotaCmd,
    },
    /// Usage: current bytes and objects, hourly metering reports, recounts.
    Usage {
        #[command(subcommand)]
        cmd: usage::UsageCmd,
    },
    /// Per-user grants on buckets and prefixes (a user with none has its role's access everywhere).
    Grant {
        #[command(subcommand)]
        cmd: GrantCmd,
    },
    /// The tamper-evident audit log: list records, verify the hash chains, data-access audit.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// This site and its peer sites: reachability, round trip, protocol version (operator).
    Site {
        #[command(subcommand)]
        cmd: site::SiteCmd,
    },
}

#[derive(Subcommand)]
pub enum TenantCmd {
    /// Create a tenant.
    Create {
        name: String,
        /// Who manages the tenant's users and keys.
        #[arg(long, value_parser = ["admin-only", "self-managed"], default_value = "admin-only")]
        model: String,
    },
    List,
    Show {
        name: String,
    },
    /// Reserve RAM of the site's chunk cache for a tenant, that no other tenant can evict.
    CacheShare {
        name: String,
        /// Bytes to reserve.
        #[arg(long, conflicts_with = "none", required_unless_present = "none")]
        ram_bytes: Option<u64>,
        /// Remove the reservation (the tenant uses the shared cache).
        #[arg(long)]
        none: bool,
    },
    /// Delete a tenant; one that still owns buckets needs --force, which deletes all its data.
    Delete {
        name: String,
        #[arg(long)]
        force: bool,
    },
    /// What the site's chunk cache did for a tenant: hits by tier, misses, hit ratio.
    CacheStats {
        name: String,
    },
    /// Limits on what a self-managed tenant creates for itself (operator sets them).
    Limits {
        #[command(subcommand)]
        cmd: LimitsCmd,
    },
}

#[derive(Subcommand)]
pub enum UserCmd {
    Create {
        #[arg(long)]
        tenant: String,
        name: String,
        #[arg(long, value_parser = ["operator", "tenant-admin", "read-write", "read-only"])]
        role: String,
    },
    List {
        #[arg(long)]
        tenant: String,
    },
    Delete {
        #[arg(long)]
        tenant: String,
        name: String,
    },
}

#[derive(Subcommand)]
pub enum KeyCmd {
    /// Issue an access key; the secret is shown once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: String,
    },
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: Option<String>,
    },
    Delete {
        #[arg(long)]
        tenant: String,
        access_key_id: String,
    },
}

#[derive(Subcommand)]
pub enum PrefetchCmd {
    /// Start a job for a prefix (default: the whole bucket) or a manifest file of keys, one per line.
    Start {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        bucket: String,
        #[arg(long, conflicts_with = "manifest")]
        prefix: Option<String>,
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Show progress until the job ends; exit non-zero unless it is done.
        #[arg(long)]
        wait: bool,
    },
    List {
        #[arg(long)]
        tenant: String,
    },
    Status {
        #[arg(long)]
        tenant: String,
        id: String,
        /// Show progress until the job ends.
        #[arg(long)]
        watch: bool,
    },
    Cancel {
        #[arg(long)]
        tenant: String,
        id: String,
    },
}

#[derive(Subcommand)]
pub enum BucketCmd {
    Create {
        #[arg(long)]
        tenant: String,
        name: String,
        /// Backend to keep the bucket's bytes in (as named in the site's config).
        #[arg(long)]
        backend: Option<String>,
        /// Map the bucket onto this existing location of the backend (operators only):
        /// key K is the backend object `<prefix>/K`, which other tools may also write.
        #[arg(long)]
        location_prefix: Option<String>,
        /// For a mapped bucket: validate (default; every read checks the backend first),
        /// ttl=<seconds> (reads may be that stale) or exclusive (Orbit is the only writer).
        #[arg(long, requires = "location_prefix")]
        mode: Option<String>,
        /// The site that is the authority for the bucket's contents: this
        /// site (the default) or a configured peer (at the directory site).
        #[arg(long, conflicts_with = "location_prefix")]
        home: Option<String>,
    },
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Set how the site caches a bucket.
    Cache {
        #[arg(long)]
        tenant: String,
        name: String,
        /// Cache a chunk on its first read, or only on its second (for data scanned once).
        #[arg(long, value_parser = ["first-miss", "second-miss"], default_value = "first-miss")]
        admission: String,
        /// Re-read cached data older than this many seconds (default: no limit).
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// Set a mapped bucket's consistency mode: validate, ttl=<seconds> or exclusive.
    Mode {
        #[arg(long)]
        tenant: String,
        name: String,
        mode: String,
    },
    /// Delete a bucket; a non-empty one needs --force, which deletes its objects.
    Delete {
        #[arg(long)]
        tenant: String,
        name: String,
        #[arg(long)]
        force: bool,
    },
    /// Keep a prefix's data in the site's pinned cache tier (never evicted), filled now by a prefetch job.
    Pin {
        #[arg(long)]
        tenant: String,
        name: String,
        /// The prefix to pin ("" pins the whole bucket).
        #[arg(long)]
        prefix: String,
        /// Wait for the prefetch job, with a progress bar.
        #[arg(long)]
        wait: bool,
    },
    /// Release a pinned prefix.
    Unpin {
        #[arg(long)]
        tenant: String,
        name: String,
        #[arg(long)]
        prefix: String,
    },
}

impl Connection {
    fn client(&self) -> Result<AdminClient> {
        let (key, secret) = match (&self.access_key, &self.secret_key) {
            (Some(k), Some(s)) => (k.clone(), s.clone()),
            (Some(_), None) | (None, Some(_)) => {
                return Err(anyhow!("give both --access-key and --secret-key, or neither"));
            }
            (None, None) => match (std::env::var("ORBIT_ROOT_ACCESS_KEY"), std::env::var("ORBIT_ROOT_SECRET_KEY")) {
                (Ok(k), Ok(s)) if !k.is_empty() && !s.is_empty() => (k, s),
                _ => {
                    let dir = self.data_dir.clone().unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_DATA_DIR));
                    let path = dir.join(ROOT_CREDENTIALS_FILE);
                    let text = std::fs::read_to_string(&path).map_err(|_| {
                        anyhow!("no credentials: set ORBIT_ACCESS_KEY and ORBIT_SECRET_KEY (or --access-key/--secret-key), or run where {} exists", path.display())
                    })?;
                    let c: RootCredentials =
                        serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display()))?;
                    (c.access_key_id, c.secret_access_key)
                }
            },
        };
        Ok(AdminClient::new(&self.admin_url, &key, &secret)?)
    }
}

fn fmt_time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Print rows as an aligned table under a header.
pub(crate) fn print_table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_uppercase()).collect());
    for r in rows {
        line(r);
    }
}

pub(crate) fn emit<T: Serialize>(output: Output, value: &T, table: impl FnOnce()) -> Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Output::Table => table(),
    }
    Ok(())
}

pub fn run(cmd: AdminCommand, conn: Connection) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run_async(cmd, conn))
}

fn job_row(j: &orbit_admin::api::PrefetchJob) -> Vec<String> {
    let of = |done: u64, total: Option<u64>| total.map_or(format!("{done}/?"), |t| format!("{done}/{t}"));
    let what =
        j.prefix.clone().map_or_else(|| format!("{} keys", j.manifest_keys.unwrap_or(0)), |p| format!("prefix {p:?}"));
    vec![
        j.id.clone(),
        j.bucket.clone(),
        what,
        j.state.clone(),
        of(j.objects_done, j.objects_total),
        of(j.bytes_done, j.bytes_total),
        j.errors.to_string(),
    ]
}

const JOB_HEADER: [&str; 7] = ["id", "bucket", "selection", "state", "objects", "bytes", "errors"];

/// Poll a job until it ends, drawing a progress bar on stderr. Returns the final job.
async fn watch_job(c: &AdminClient, tenant: &str, id: &str) -> Result<orbit_admin::api::PrefetchJob> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
        )
        .expect("valid template"),
    );
    loop {
        let job = c.get_prefetch(tenant, id).await?;
        if let Some(total) = job.bytes_total {
            bar.set_length(total);
        }
        bar.set_position(job.bytes_done);
        bar.set_message(format!(
            "{}/{} objects{}",
            job.objects_done,
            job.objects_total.map_or("?".into(), |t| t.to_string()),
            if job.errors > 0 { format!(", {} errors", job.errors) } else { String::new() }
        ));
        if job.state != "running" {
            bar.finish_and_clear();
            return Ok(job);
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

fn job_outcome(output: Output, job: &orbit_admin::api::PrefetchJob) -> Result<()> {
    emit(output, job, || print_table(&JOB_HEADER, vec![job_row(job)]))?;
    match job.state.as_str() {
        "done" if job.errors == 0 => Ok(()),
        "done" => Err(anyhow!("prefetch job {} finished with {} objects unreadable", job.id, job.errors)),
        other => Err(anyhow!(
            "prefetch job {} ended {other}{}",
            job.id,
            job.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
        )),
    }
}

async fn run_async(cmd: AdminCommand, conn: Connection) -> Result<()> {
    match cmd {
        AdminCommand::Qos { cmd } => qos::run(cmd, &conn).await,
        AdminCommand::Site { cmd } => site::run(cmd, &conn).await,
        AdminCommand::Quota { cmd } => usage::quota(conn.client()?, conn.output, cmd).await,
        AdminCommand::Usage { cmd } => usage::usage(conn.client()?, conn.output, cmd).await,
        AdminCommand::Grant { cmd } => audit_cmds::grant(&conn.client()?, conn.output, cmd).await,
        AdminCommand::Audit { cmd } => audit_cmds::audit(&conn, cmd).await,
        AdminCommand::Prefetch { cmd } => {
            let c = conn.client()?;
            match cmd {
                PrefetchCmd::Start { tenant, bucket, prefix, manifest, wait } => {
                    let keys = match manifest {
                        Some(path) => {
                            let text = std::fs::read_to_string(&path)
                                .with_context(|| format!("cannot read the manifest {}", path.display()))?;
                            Some(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect())
                        }
                        None => None,
                    };
                    let body = orbit_admin::api::StartPrefetch { bucket, prefix, keys };
                    let job = c.start_prefetch(&tenant, &body).await?;
                    if wait {
                        let job = watch_job(&c, &tenant, &job.id).await?;
                        return job_outcome(conn.output, &job);
                    }
                    emit(conn.output, &job, || println!("started prefetch job {}", job.id))
                }
                PrefetchCmd::List { tenant } => {
                    let jobs = c.list_prefetch(&tenant).await?;
                    let rows = jobs.iter().map(job_row).collect();
                    emit(conn.output, &jobs, || print_table(&JOB_HEADER, rows))
                }
                PrefetchCmd::Status { tenant, id, watch } => {
                    if watch {
                        let job = watch_job(&c, &tenant, &id).await?;
                        return job_outcome(conn.output, &job);
                    }
                    let job = c.get_prefetch(&tenant, &id).await?;
                    emit(conn.output, &job, || print_table(&JOB_HEADER, vec![job_row(&job)]))
                }
                PrefetchCmd::Cancel { tenant, id } => {
                    let job = c.cancel_prefetch(&tenant, &id).await?;
                    emit(conn.output, &job, || println!("prefetch job {} is {}", job.id, job.state))
                }
            }
        }
        AdminCommand::Whoami => {
            let w = conn.client()?.whoami().await?;
            emit(conn.output, &w, || {
                print_table(
                    &["tenant", "user", "role", "access key"],
                    vec![vec![w.tenant.clone(), w.user.clone(), w.role.clone(), w.access_key_id.clone()]],
                )
            })
        }
        AdminCommand::Tenant { cmd } => {
            let c = conn.client()?;
            let tenants = match cmd {
                TenantCmd::Create { name, model } => {
                    let t = c.create_tenant(&name, Some(&model)).await?;
                    return emit(conn.output, &t, || println!("created tenant {} ({})", t.name, t.model));
                }
                TenantCmd::CacheShare { name, ram_bytes, none } => {
                    let t = c.set_cache_share(&name, if none { None } else { ram_bytes }).await?;
                    return emit(conn.output, &t, || match t.cache_share_bytes {
                        Some(b) => println!("tenant {} has {b} bytes of cache to itself", t.name),
                        None => println!("tenant {} uses the shared cache", t.name),
                    });
                }
                TenantCmd::Show { name } => {
                    let t = c.get_tenant(&name).await?;
                    let row = vec![vec![t.name.clone(), t.model.clone(), fmt_time(t.created_ms)]];
                    return emit(conn.output, &t, || print_table(&["name", "model", "created"], row));
                }
                TenantCmd::CacheStats { name } => {
                    let s = c.tenant_cache(&name).await?;
                    let tiers = |t: &orbit_admin::api::TierFigures| format!("{}/{}/{}", t.ram, t.ssd, t.pinned);
                    let row = vec![vec![
                        s.tenant.clone(),
                        tiers(&s.hits),
                        tiers(&s.hit_bytes),
                        s.misses.to_string(),
                        s.miss_bytes.to_string(),
                        s.hit_ratio.map_or("-".into(), |r| format!("{:.1}%", r * 100.0)),
                    ]];
                    let header = [
                        "tenant",
                        "hits ram/ssd/pinned",
                        "hit bytes ram/ssd/pinned",
                        "misses",
                        "miss bytes",
                        "hit ratio",
                    ];
                    return emit(conn.output, &s, || print_table(&header, row));
                }
                TenantCmd::List => c.list_tenants().await?,
                TenantCmd::Limits { cmd } => return audit_cmds::limits(&c, conn.output, cmd).await,
                TenantCmd::Delete { name, force } => {
                    c.delete_tenant(&name, force).await?;
                    return emit(conn.output, &serde_json::json!({"deleted": name}), || {
                        println!("deleted tenant {name}")
                    });
                }
            };
            let rows = tenants.iter().map(|t| vec![t.name.clone(), t.model.clone(), fmt_time(t.created_ms)]).collect();
            emit(conn.output, &tenants, || print_table(&["name", "model", "created"], rows))
        }
        AdminCommand::User { cmd } => {
            let c = conn.client()?;
            match cmd {
                UserCmd::Create { tenant, name, role } => {
                    let u = c.create_user(&tenant, &name, &role).await?;
                    emit(conn.output, &u, || {
                        println!("created user {} in tenant {} with role {}", u.name, u.tenant, u.role)
                    })
                }
                UserCmd::List { tenant } => {
                    let users = c.list_users(&tenant).await?;
                    let rows =
                        users.iter().map(|u| vec![u.name.clone(), u.role.clone(), fmt_time(u.created_ms)]).collect();
                    emit(conn.output, &users, || print_table(&["name", "role", "created"], rows))
                }
                UserCmd::Delete { tenant, name } => {
                    c.delete_user(&tenant, &name).await?;
                    emit(conn.output, &serde_json::json!({"deleted": name}), || println!("deleted user {name}"))
                }
            }
        }
        AdminCommand::Key { cmd } => {
            let c = conn.client()?;
            match cmd {
                KeyCmd::Create { tenant, user } => {
                    let k = c.create_key(&tenant, &user).await?;
                    emit(conn.output, &k, || {
                        println!("access key id:     {}", k.access_key_id);
                        println!("secret access key: {}", k.secret_access_key);
                        println!("(the secret is shown only now)");
                    })
                }
                KeyCmd::List { tenant, user } => {
                    let keys = c.list_keys(&tenant, user.as_deref()).await?;
                    let rows = keys
                        .iter()
                        .map(|k| vec![k.access_key_id.clone(), k.user.clone(), fmt_time(k.created_ms)])
                        .collect();
                    emit(conn.output, &keys, || print_table(&["access key id", "user", "created"], rows))
                }
                KeyCmd::Delete { tenant, access_key_id } => {
                    c.delete_key(&tenant, &access_key_id).await?;
                    emit(conn.output, &serde_json::json!({"deleted": access_key_id}), || {
                        println!("deleted key {access_key_id}")
                    })
                }
            }
        }
        AdminCommand::Bucket { cmd } => {
            let c = conn.client()?;
            match cmd {
                BucketCmd::Create { tenant, name, backend, location_prefix: None, home, .. } => {
                    let b = c.create_bucket(&tenant, &name, backend.as_deref(), home.as_deref()).await?;
                    emit(conn.output, &b, || {
                        println!(
                            "created bucket {} in tenant {} on backend {}, homed at site {}",
                            b.name, b.tenant, b.backend, b.home_site
                        )
                    })
                }
                BucketCmd::Create { tenant, name, backend, location_prefix: Some(prefix), mode, .. } => {
                    let b =
                        c.create_mapped_bucket(&tenant, &name, backend.as_deref(), &prefix, mode.as_deref()).await?;
                    emit(conn.output, &b, || {
                        println!(
                            "created bucket {} in tenant {}, mapped onto {}:{} ({})",
                            b.name,
                            b.tenant,
                            b.backend,
                            b.location_prefix.as_deref().unwrap_or_default(),
                            b.mode.as_deref().unwrap_or_default()
                        )
                    })
                }
                BucketCmd::Mode { tenant, name, mode } => {
                    let b = c.set_bucket_mode(&tenant, &name, &mode).await?;
                    emit(conn.output, &b, || println!("bucket {}: {}", b.name, b.mode.as_deref().unwrap_or_default()))
                }
                BucketCmd::List { tenant } => {
                    let buckets = c.list_buckets(&tenant).await?;
                    let rows = buckets
                        .iter()
                        .map(|b| {
                            let layout = match (&b.location_prefix, &b.mode) {
                                (Some(p), Some(m)) => format!("mapped {p} ({m})"),
                                _ => b.layout.clone(),
                            };
                            vec![b.name.clone(), b.backend.clone(), layout, b.home_site.clone(), fmt_time(b.created_ms)]
                        })
                        .collect();
                    let header = ["name", "backend", "layout", "home site", "created"];
                    emit(conn.output, &buckets, || print_table(&header, rows))
                }
                BucketCmd::Cache { tenant, name, admission, ttl } => {
                    let policy = orbit_admin::api::BucketCache { admission, ttl_seconds: ttl };
                    let b = c.set_bucket_cache(&tenant, &name, &policy).await?;
                    emit(conn.output, &b, || {
                        let ttl = b.cache.ttl_seconds.map_or("no TTL".to_owned(), |t| format!("TTL {t} s"));
                        println!("bucket {}: cached on {}, {ttl}", b.name, b.cache.admission)
                    })
                }
                BucketCmd::Delete { tenant, name, force } => {
                    c.delete_bucket(&tenant, &name, force).await?;
                    emit(conn.output, &serde_json::json!({"deleted": name}), || println!("deleted bucket {name}"))
                }
                BucketCmd::Pin { tenant, name, prefix, wait } => {
                    let pinned = c.pin_prefix(&tenant, &name, &prefix).await?;
                    if wait {
                        let job = watch_job(&c, &tenant, &pinned.job.id).await?;
                        return job_outcome(conn.output, &job);
                    }
                    emit(conn.output, &pinned, || {
                        println!("pinned `{prefix}` in bucket {name}; prefetch job {} fills it", pinned.job.id)
                    })
                }
                BucketCmd::Unpin { tenant, name, prefix } => {
                    let b = c.unpin_prefix(&tenant, &name, &prefix).await?;
                    emit(conn.output, &b, || println!("unpinned `{prefix}` in bucket {name}"))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_format_as_rfc3339() {
        assert_eq!(super::fmt_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::fmt_time(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(super::fmt_time(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(super::fmt_time(-1), "1969-12-31T23:59:59Z");
    }
}
