//! `qastore certs`: the cluster's certificate authority and the certificates it issues to
//! nodes and clients, in one directory (layout in `qastore_security::CertDir`).

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use qastore_security::{inspect_pem, read_pem, Authority, CertDir, CertSummary, Role};

use crate::output;

/// Arguments of `qastore certs`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  qastore certs init --dir certs --cluster-id prod-futures
  qastore certs node --dir certs --node-id 1 --host node1.example --host 10.0.0.1
  qastore certs client --dir certs --name risk-engine --role reader --role subscriber
  qastore certs client --dir certs --name ops --role admin --days 30
  qastore certs token-key --dir certs
  qastore certs token --dir certs --name notebook --role reader --days 7 > notebook.token
  qastore certs show certs/node-1.pem certs/client-ops.pem")]
pub struct CertsArgs {
    #[command(subcommand)]
    command: CertsCommand,
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Make the cluster's certificate authority: `ca.pem` (every node and client trusts it)
    /// and `ca.key` (keep it with the operator, not on the nodes). Never replaces a CA.
    Init {
        /// The certificate directory.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// The cluster id, as in the nodes' `cluster_id`.
        #[arg(long)]
        cluster_id: String,
        /// Lifetime in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// Issue node `--node-id`'s certificate (`node-<id>.pem`, `node-<id>.key`), for the host
    /// names and addresses peers and clients reach it at.
    Node {
        /// The certificate directory (holding the CA).
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// The node id.
        #[arg(long)]
        node_id: u64,
        /// A DNS name or IP address of the node (repeatable; default localhost and 127.0.0.1).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Lifetime in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Replace the node's certificate and key if they exist (a renewal).
        #[arg(long)]
        replace: bool,
    },
    /// Issue a client's certificate (`client-<name>.pem`, `client-<name>.key`) granting roles.
    Client {
        /// The certificate directory (holding the CA).
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// The client's name (1 to 64 letters, digits, '-', '_' or '.').
        #[arg(long)]
        name: String,
        /// A role: writer, reader, subscriber or admin (repeatable, at least one).
        #[arg(long = "role", required = true, value_parser = parse_role)]
        roles: Vec<Role>,
        /// Lifetime in days.
        #[arg(long, default_value_t = 90)]
        days: u32,
        /// Replace the client's certificate and key if they exist (a renewal).
        #[arg(long)]
        replace: bool,
    },
    /// Make the cluster's token key: `token.key` signs tokens (keep it with the operator, like
    /// `ca.key`) and `token.pub` checks them (every node's `[tls] token_key_file`). Never
    /// replaces a key.
    TokenKey {
        /// The certificate directory (holding the CA).
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
    },
    /// Print a signed token (JWT) for a client that cannot hold a certificate: it names the
    /// client and its roles and is good on every node until it expires.
    Token {
        /// The certificate directory (holding the CA and the token key).
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// The client's name (1 to 64 letters, digits, '-', '_' or '.').
        #[arg(long)]
        name: String,
        /// A role: writer, reader, subscriber or admin (repeatable, at least one).
        #[arg(long = "role", required = true, value_parser = parse_role)]
        roles: Vec<Role>,
        /// Limit what it reads to these users' data (repeatable).
        #[arg(long = "user")]
        users: Vec<String>,
        /// Limit what it reads to these instruments: ids, or prefixes ending in `*`
        /// (repeatable).
        #[arg(long = "instrument")]
        instruments: Vec<String>,
        /// Lifetime in days.
        #[arg(long, default_value_t = 7)]
        days: u32,
    },
    /// Print what certificate files say: whom they name, roles, names, validity.
    Show {
        /// PEM files (a certificate or a bundle).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
        .map_err(|e: qastore_security::Error| e.to_string())
}

/// Runs `qastore certs`.
pub fn run(args: CertsArgs) -> Result<(), String> {
    let text = match args.command {
        CertsCommand::Init {
            dir,
            cluster_id,
            days,
        } => {
            let dir = CertDir::new(dir);
            let ca = Authority::create(&cluster_id, days).map_err(|e| e.to_string())?;
            let paths = dir.ca();
            dir.write_pair(&paths, ca.cert_pem(), ca.key_pem(), false)
                .map_err(|e| format!("{e} (a CA is never replaced: choose another --dir)"))?;
            format!(
                "made the CA of cluster {cluster_id}, valid {days} days:\n  {}  (trusted by nodes and clients)\n  {}  (private: keep it off the nodes)\n",
                paths.cert.display(),
                paths.key.display()
            )
        }
        CertsCommand::Node {
            dir,
            node_id,
            mut hosts,
            days,
            replace,
        } => {
            let dir = CertDir::new(dir);
            let ca = load_ca(&dir)?;
            if hosts.is_empty() {
                hosts = vec!["localhost".into(), "127.0.0.1".into()];
            }
            let issued = ca
                .issue_node(node_id, &hosts, days)
                .map_err(|e| e.to_string())?;
            let paths = dir.node(node_id);
            dir.write_pair(&paths, &issued.cert_pem, &issued.key_pem, replace)
                .map_err(renewal_hint)?;
            format!(
                "issued node {node_id} of cluster {} for {}, valid {days} days:\n  {}\n  {}\n",
                ca.cluster(),
                hosts.join(", "),
                paths.cert.display(),
                paths.key.display()
            )
        }
        CertsCommand::Client {
            dir,
            name,
            roles,
            days,
            replace,
        } => {
            let dir = CertDir::new(dir);
            let ca = load_ca(&dir)?;
            let issued = ca
                .issue_client(&name, &roles, days)
                .map_err(|e| e.to_string())?;
            let paths = dir.client(&name);
            dir.write_pair(&paths, &issued.cert_pem, &issued.key_pem, replace)
                .map_err(renewal_hint)?;
            let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            format!(
                "issued client {name} of cluster {} with roles {}, valid {days} days:\n  {}\n  {}\n",
                ca.cluster(),
                roles.join(", "),
                paths.cert.display(),
                paths.key.display()
            )
        }
        CertsCommand::TokenKey { dir } => {
            let dir = CertDir::new(dir);
            // The CA names the cluster: a token key without one would sign for nobody.
            load_ca(&dir)?;
            let (key, public) =
                qastore_security::token::new_token_key().map_err(|e| e.to_string())?;
            let paths = dir.token_key();
            dir.write_pair(&paths, &public, &key, false).map_err(|e| {
                format!("{e} (a token key is never replaced: choose another --dir)")
            })?;
            format!(
                "made the token key:\n  {}  (give it to every node: [tls] token_key_file)\n  {}  (private: signs tokens; keep it off the nodes)\n",
                paths.cert.display(),
                paths.key.display()
            )
        }
        CertsCommand::Token {
            dir,
            name,
            roles,
            users,
            instruments,
            days,
        } => {
            let dir = CertDir::new(dir);
            let ca = load_ca(&dir)?;
            let paths = dir.token_key();
            if !paths.key.exists() {
                return Err(format!(
                    "{} not found: make the token key first with `qastore certs token-key --dir {}`",
                    paths.key.display(),
                    dir.root().display()
                ));
            }
            let key = read_pem(&paths.key).map_err(|e| e.to_string())?;
            let issuer = qastore_security::token::TokenIssuer::new(ca.cluster(), &key)
                .map_err(|e| e.to_string())?;
            let token = issuer
                .issue_scoped(&name, &roles, &users, &instruments, days)
                .map_err(|e| e.to_string())?;
            format!("{token}\n")
        }
        CertsCommand::Show { files } => {
            let mut text = String::new();
            for file in files {
                let pem = read_pem(&file).map_err(|e| e.to_string())?;
                let what = file.display().to_string();
                for cert in inspect_pem(&what, pem.as_bytes()).map_err(|e| e.to_string())? {
                    describe(&mut text, &what, &cert);
                }
            }
            text
        }
    };
    output::emit(&text);
    Ok(())
}

fn renewal_hint(e: qastore_security::Error) -> String {
    match e {
        qastore_security::Error::Exists(_) => format!("{e} (pass --replace to renew it)"),
        e => e.to_string(),
    }
}

fn load_ca(dir: &CertDir) -> Result<Authority, String> {
    let paths = dir.ca();
    if !paths.cert.exists() {
        return Err(format!(
            "{} not found: make the CA first with `qastore certs init --dir {} --cluster-id <id>`",
            paths.cert.display(),
            dir.root().display()
        ));
    }
    let cert = read_pem(&paths.cert).map_err(|e| e.to_string())?;
    let key = read_pem(&paths.key).map_err(|e| e.to_string())?;
    Authority::from_pem(&cert, &key).map_err(|e| e.to_string())
}

fn describe(out: &mut String, file: &str, cert: &CertSummary) {
    let now = time::OffsetDateTime::now_utc();
    let who = cert
        .identity
        .as_ref()
        .map_or_else(|| "not a QAStore identity".to_string(), |id| id.to_string());
    let _ = writeln!(out, "{file}: {who}");
    let _ = writeln!(out, "  subject   {}", cert.subject);
    let _ = writeln!(out, "  issuer    {}", cert.issuer);
    let _ = writeln!(out, "  serial    {}", cert.serial);
    if cert.is_ca {
        let _ = writeln!(out, "  CA        yes");
    }
    if !cert.roles.is_empty() {
        let roles: Vec<&str> = cert.roles.iter().map(|r| r.as_str()).collect();
        let _ = writeln!(out, "  roles     {}", roles.join(", "));
    }
    let mut names: Vec<String> = cert.dns_names.clone();
    names.extend(cert.ip_addresses.iter().map(|ip| ip.to_string()));
    if !names.is_empty() {
        let _ = writeln!(out, "  hosts     {}", names.join(", "));
    }
    let days = cert.days_left(now);
    let state = if cert.not_after <= now {
        "EXPIRED".to_string()
    } else if cert.not_before > now {
        "not valid yet".to_string()
    } else {
        format!("{days} days left")
    };
    let _ = writeln!(
        out,
        "  valid     {} .. {} ({state})",
        date(cert.not_before),
        date(cert.not_after)
    );
}

fn date(t: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}
