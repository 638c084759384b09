//! `ferry login`, `whoami`, `user` and `token`: identities on a service.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ferry_client::{Client, TokenInfo};

use crate::fabric::{ServiceArg, runtime};

#[derive(clap::Subcommand)]
pub enum UserCommand {
    /// Add a user (admin only).
    Add {
        name: String,
        /// The user manages users, tokens and the store.
        #[arg(long)]
        admin: bool,
    },
    /// List users (admin only).
    Ls,
}

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (shown once; the service keeps a hash).
    Create {
        /// For another user (admin only; default: yourself).
        #[arg(long)]
        user: Option<String>,
        /// Lifetime, e.g. `30d`, `12h` (default: never expires).
        #[arg(long, value_parser = crate::local::parse_duration_arg)]
        expires: Option<Duration>,
        /// A note shown by `ferry token ls`.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Revoke a token by id: calls and open streams that use it end.
    Revoke { id: String },
    /// List your tokens (an admin's: everyone's).
    Ls,
}

fn when(ms: i64) -> String {
    if ms == 0 {
        return "-".into();
    }
    let now = ferry_proto::now_ms();
    let secs = (ms - now) / 1000;
    match secs {
        s if s >= 0 => format!("in {}", human(s)),
        s => format!("{} ago", human(-s)),
    }
}

fn human(s: i64) -> String {
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn print_tokens(tokens: &[TokenInfo]) {
    println!(
        "{:<14} {:<16} {:<10} {:<10} {:<10} LABEL",
        "ID", "USER", "CREATED", "EXPIRES", "REVOKED"
    );
    for t in tokens {
        println!(
            "{:<14} {:<16} {:<10} {:<10} {:<10} {}",
            t.id,
            t.user,
            when(t.created_at_ms),
            when(t.expires_at_ms),
            when(t.revoked_at_ms),
            t.label
        );
    }
}

/// Checks `token` against the service at `url` and saves it for that URL.
pub fn login(
    url: &str,
    token: Option<String>,
    tls: &ferry_client::ClientTls,
) -> anyhow::Result<ExitCode> {
    let token = match token {
        Some(t) => t,
        None => {
            eprintln!("paste a token for {url} (from `ferry token create`):");
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the token from stdin")?;
            line.trim().to_owned()
        }
    };
    anyhow::ensure!(!token.is_empty(), "no token given");
    runtime()?.block_on(async {
        let client = Client::connect_with(url, Some(&token), tls).await?;
        let me = client.whoami().await?;
        let path = ferry_proto::credentials::file()
            .context("no config directory: set HOME or FERRY_CONFIG_DIR")?;
        ferry_proto::credentials::store(&path, url, &token)
            .with_context(|| format!("saving the token in {}", path.display()))?;
        println!(
            "logged in to {url} as {}{}; token saved in {}",
            me.user,
            if me.admin { " (admin)" } else { "" },
            path.display()
        );
        Ok(ExitCode::SUCCESS)
    })
}

pub fn whoami(service: &ServiceArg) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let me = service.connect().await?.whoami().await?;
        println!(
            "{}{} (token {}, expires: {})",
            me.user,
            if me.admin { ", admin" } else { "" },
            me.token_id,
            if me.expires_at_ms == 0 {
                "never".to_owned()
            } else {
                when(me.expires_at_ms)
            }
        );
        Ok(ExitCode::SUCCESS)
    })
}

pub fn user(service: &ServiceArg, cmd: UserCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let client = service.connect().await?;
        match cmd {
            UserCommand::Add { name, admin } => {
                let u = client.add_user(&name, admin).await?;
                println!(
                    "added user {}{}",
                    u.name,
                    if u.admin { " (admin)" } else { "" }
                );
            }
            UserCommand::Ls => {
                println!("{:<24} {:<6} CREATED", "USER", "ADMIN");
                for u in client.users().await? {
                    println!("{:<24} {:<6} {}", u.name, u.admin, when(u.created_at_ms));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn token(service: &ServiceArg, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let client = service.connect().await?;
        match cmd {
            TokenCommand::Create {
                user,
                expires,
                label,
            } => {
                let (info, secret) = client
                    .create_token(user.as_deref(), &label, expires)
                    .await?;
                eprintln!(
                    "token {} for {} (expires: {}); it is shown this once:",
                    info.id,
                    info.user,
                    if info.expires_at_ms == 0 {
                        "never".to_owned()
                    } else {
                        when(info.expires_at_ms)
                    }
                );
                println!("{secret}");
            }
            TokenCommand::Revoke { id } => {
                let t = client.revoke_token(&id).await?;
                println!("revoked token {} of {}", t.id, t.user);
            }
            TokenCommand::Ls => print_tokens(&client.tokens().await?),
        }
        Ok(ExitCode::SUCCESS)
    })
}
