//! `orbit site`: this site and its peers, as the peer prober last saw them.

use super::{Connection, emit, fmt_time, print_table};
use anyhow::Result;
use clap::Subcommand;
use orbit_admin::sites::{AcquireWriteLease, LeaseEntry, Site, WriteLeaseEntry};

#[derive(Subcommand)]
pub enum SiteCmd {
    /// This site and every peer site.
    List,
    /// One site by name.
    Show { name: String },
    /// Where this site's tenants, users, keys and buckets come from, and how
    /// fresh its copy is.
    Directory,
    /// Read leases this site granted (as a home site) and holds (as a satellite).
    Leases,
    /// Write leases this site holds and, as a home site, granted; and writes
    /// lost to revocations.
    WriteLeases,
    /// Take an exclusive write lease on a prefix of a bucket homed at another
    /// site: writes there are then acknowledged here, and flushed home.
    Acquire {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        bucket: String,
        /// Key prefix (empty: the whole bucket).
        #[arg(long, default_value = "")]
        prefix: String,
        /// How long to wait for the grant, in milliseconds.
        #[arg(long, default_value_t = 30_000)]
        wait_ms: u64,
    },
    /// Give a write lease back (everything staged is flushed home first).
    Release {
        lease: String,
        #[arg(long, default_value_t = 60_000)]
        wait_ms: u64,
    },
    /// At the home site: ask the holder of a write lease to give it back.
    Recall { lease: String },
    /// At the home site: take a write lease from a holder that does not come
    /// back. Writes it acknowledged and never flushed are lost.
    Revoke { lease: String },
}

const WRITE_LEASE_HEADER: [&str; 8] = ["role", "lease", "site", "bucket", "prefix", "unflushed", "flushed", "state"];

fn write_lease_row(role: &str, l: &WriteLeaseEntry) -> Vec<String> {
    let prefix = if l.prefix.is_empty() { "(whole bucket)".to_owned() } else { l.prefix.clone() };
    vec![
        role.into(),
        l.lease.clone(),
        l.site.clone(),
        l.bucket.clone(),
        prefix,
        l.unflushed.to_string(),
        l.flushed_upto.to_string(),
        l.state.clone(),
    ]
}

const LEASE_HEADER: [&str; 5] = ["role", "lease", "site", "bucket", "prefix"];

fn lease_row(role: &str, l: &LeaseEntry) -> Vec<String> {
    let prefix = if l.prefix.is_empty() { "(whole bucket)".to_owned() } else { l.prefix.clone() };
    vec![role.into(), l.lease.clone(), l.site.clone(), l.bucket.clone(), prefix]
}

const HEADER: [&str; 7] = ["name", "url", "state", "rtt", "version", "last seen", "last error"];

fn row(s: &Site) -> Vec<String> {
    let state = match (s.local, s.reachable) {
        (true, _) => "local",
        (false, true) => "reachable",
        (false, false) => "unreachable",
    };
    vec![
        s.name.clone(),
        s.url.clone().unwrap_or_else(|| "-".into()),
        state.into(),
        s.rtt_ms.map_or("-".into(), |ms| format!("{ms:.1} ms")),
        s.protocol_version.map_or("-".into(), |v| v.to_string()),
        s.last_seen_ms.map_or("-".into(), fmt_time),
        s.last_error.clone().unwrap_or_else(|| "-".into()),
    ]
}

pub async fn run(cmd: SiteCmd, conn: &Connection) -> Result<()> {
    let c = conn.client()?;
    match cmd {
        SiteCmd::List => {
            let sites = c.list_sites().await?;
            emit(conn.output, &sites, || print_table(&HEADER, sites.iter().map(row).collect()))
        }
        SiteCmd::Leases => {
            let t = c.site_leases().await?;
            emit(conn.output, &t, || {
                let rows = t.granted.iter().map(|l| lease_row("granted", l));
                let rows = rows.chain(t.held.iter().map(|l| lease_row("held", l))).collect();
                print_table(&LEASE_HEADER, rows)
            })
        }
        SiteCmd::WriteLeases => {
            let t = c.write_leases().await?;
            emit(conn.output, &t, || {
                let rows = t.held.iter().map(|l| write_lease_row("held", l));
                let rows = rows.chain(t.granted.iter().map(|l| write_lease_row("granted", l))).collect();
                print_table(&WRITE_LEASE_HEADER, rows);
                for lost in &t.lost {
                    println!("lost to revocation of {} (home {}): {}", lost.lease, lost.home, lost.keys.join(", "));
                }
            })
        }
        SiteCmd::Acquire { tenant, bucket, prefix, wait_ms } => {
            let req = AcquireWriteLease { tenant, bucket, prefix, wait_ms: Some(wait_ms) };
            let l = c.acquire_write_lease(&req).await?;
            emit(conn.output, &l, || print_table(&WRITE_LEASE_HEADER, vec![write_lease_row("held", &l)]))
        }
        SiteCmd::Release { lease, wait_ms } => {
            let r = c.release_write_lease(&lease, wait_ms).await?;
            emit(conn.output, &r, || {
                if r.released {
                    println!("write lease {} released; everything written under it is at its home site", r.lease);
                } else {
                    println!("write lease {} is being released; staged writes are still flushing", r.lease);
                }
            })
        }
        SiteCmd::Recall { lease } => {
            c.recall_write_lease(&lease).await?;
            emit(conn.output, &serde_json::json!({ "lease": lease, "recalled": true }), || {
                println!("asked the holder of write lease {lease} to flush and give it back")
            })
        }
        SiteCmd::Revoke { lease } => {
            let r = c.revoke_write_lease(&lease).await?;
            emit(conn.output, &r, || println!("{}", r.statement))
        }
        SiteCmd::Show { name } => {
            let site = c.get_site(&name).await?;
            emit(conn.output, &site, || print_table(&HEADER, vec![row(&site)]))
        }
        SiteCmd::Directory => {
            let d = c.directory_status().await?;
            emit(conn.output, &d, || {
                if d.is_directory_site {
                    println!("site {} is the directory site (version {})", d.site, d.version.as_deref().unwrap_or("-"));
                    return;
                }
                let rows = vec![vec![
                    d.directory_site.clone(),
                    d.version.clone().unwrap_or_else(|| "-".into()),
                    d.last_sync_ms.map_or("never".into(), fmt_time),
                    d.lag_ms.map_or("-".into(), |ms| format!("{:.1} s", ms as f64 / 1000.0)),
                    d.records_mirrored.to_string(),
                    format!("{} ok / {} failed", d.syncs_ok, d.syncs_failed),
                    d.last_error.clone().unwrap_or_else(|| "-".into()),
                ]];
                print_table(&["directory site", "version", "last sync", "lag", "records", "pulls", "last error"], rows)
            })
        }
    }
}
