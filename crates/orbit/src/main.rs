//! The `orbit` binary: `orbit serve` runs a site; every other subcommand is
//! a client of the admin API.

mod cli;
mod config;
mod serve;
mod sites;

use clap::{Parser, Subcommand};
use mimalloc::MiMalloc;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: a hot 4 KiB GET spent 7 % of Orbit's
/// CPU in glibc's malloc and free (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: MiMalloc = MiMalloc;

#[derive(Parser)]
#[command(
    name = "orbit",
    version,
    about = "Orbit: one namespace of buckets for every site, served from a local cache over object storage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    conn: cli::Connection,
}

#[derive(Subcommand)]
enum Command {
    /// Run a site (on its embedded defaults when given nothing).
    Serve(ServeArgs),
    #[command(flatten)]
    Admin(cli::AdminCommand),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "ORBIT_CONFIG")]
    config: Option<PathBuf>,
    /// Address of the S3 endpoint.
    #[arg(long, env = "ORBIT_S3_ADDR")]
    s3_addr: Option<SocketAddr>,
    /// Address of the admin API.
    #[arg(long, env = "ORBIT_ADMIN_ADDR")]
    admin_addr: Option<SocketAddr>,
    /// Address of the listener for peer sites.
    #[arg(long, env = "ORBIT_PEER_ADDR")]
    peer_addr: Option<SocketAddr>,
    /// Base domain for virtual-host style requests (`bucket.DOMAIN`); repeatable.
    #[arg(long = "s3-domain")]
    s3_domains: Vec<String>,
    /// Region reported to S3 clients.
    #[arg(long)]
    region: Option<String>,
    /// Name of this site.
    #[arg(long)]
    site: Option<String>,
    /// Keep metadata and objects in memory only (nothing survives a restart).
    #[arg(long)]
    ephemeral: bool,
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ORBIT_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| "info,s3s=off".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
}

fn serve(args: ServeArgs, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let mut config = config::Config::load(args.config.as_deref())?;
    if let Some(d) = data_dir {
        config.data_dir = d;
    }
    if let Some(a) = args.s3_addr {
        config.s3_addr = a;
    }
    if let Some(a) = args.admin_addr {
        config.admin_addr = a;
    }
    if let Some(a) = args.peer_addr {
        config.peer_addr = a;
    }
    if !args.s3_domains.is_empty() {
        config.s3_domains = args.s3_domains;
    }
    if let Some(r) = args.region {
        config.region = r;
    }
    if let Some(s) = args.site {
        config.site = s;
    }
    if args.ephemeral {
        config.metadata.store = config::StoreKind::Memory;
        config.backend.kind = config::BackendKind::Memory;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(serve::run(config))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => {
            init_tracing();
            serve(args, cli.conn.data_dir)
        }
        Command::Admin(cmd) => cli::run(cmd, cli.conn),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}
