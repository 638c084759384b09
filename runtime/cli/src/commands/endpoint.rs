//! `ferry endpoint`: start one, register one, set its policy, list them.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ferry_client::{EndpointPolicy, Limits};

use crate::fabric::{DEFAULT_SERVICE, ServiceArg, runtime, shutdown_signal};

#[derive(clap::Subcommand)]
pub enum EndpointCommand {
    /// Dial the service and run its tasks until stopped.
    Start(Box<ferry_endpoint::StartArgs>),
    /// Create an endpoint you own and print its credential (shown once;
    /// also saved for this service, where `endpoint start` finds it).
    Register {
        name: String,
        /// Issue a new credential for an endpoint you own; the old one
        /// stops working, and its sessions end.
        #[arg(long)]
        rotate: bool,
    },
    /// Set an endpoint's policy (its owner or an admin); unset parts go
    /// back to their defaults.
    Policy {
        name: String,
        /// Users who may submit (`*`: everyone); default: the owner alone.
        #[arg(long, value_delimiter = ',')]
        submitters: Vec<String>,
        /// A function (blake3 id) allowed to run; repeatable; default: any.
        #[arg(long = "allow-function")]
        allow_functions: Vec<String>,
        /// Ceilings on a task's limits; a submission past one is refused.
        #[arg(long, value_parser = crate::local::parse_duration_arg)]
        max_timeout: Option<Duration>,
        #[arg(long, value_parser = crate::local::parse_bytes_arg)]
        max_memory: Option<u64>,
        #[arg(long, value_parser = crate::local::parse_bytes_arg)]
        max_output: Option<u64>,
        /// Users who may use its GPU, cameras and mounts; default: every
        /// submitter.
        #[arg(long, value_delimiter = ',')]
        device_users: Vec<String>,
    },
    /// Endpoints you own or may submit to (an admin's: all), with owners and
    /// policies.
    Ls,
}

pub fn endpoint(service: &ServiceArg, cmd: EndpointCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        EndpointCommand::Start(args) => start(*args),
        EndpointCommand::Register { name, rotate } => runtime()?.block_on(async {
            let client = service.connect().await?;
            let (info, credential) = client.register_endpoint(&name, rotate).await?;
            let path = ferry_proto::credentials::file()
                .context("no config directory: set HOME or FERRY_CONFIG_DIR")?;
            ferry_proto::credentials::store(
                &path,
                &ferry_proto::credentials::endpoint_key(service.url(), &name),
                &credential,
            )
            .with_context(|| format!("saving the credential in {}", path.display()))?;
            eprintln!(
                "endpoint `{}` owned by {}; its credential (shown once) is saved in {}",
                info.name,
                info.owner,
                path.display()
            );
            println!("{credential}");
            Ok(ExitCode::SUCCESS)
        }),
        EndpointCommand::Policy {
            name,
            submitters,
            allow_functions,
            max_timeout,
            max_memory,
            max_output,
            device_users,
        } => runtime()?.block_on(async {
            let client = service.connect().await?;
            let info = client
                .set_endpoint_policy(
                    &name,
                    EndpointPolicy {
                        submitters,
                        allowed_functions: allow_functions,
                        max_limits: Some(Limits {
                            timeout_ms: max_timeout.map_or(0, |d| d.as_millis() as u64),
                            memory_bytes: max_memory.unwrap_or(0),
                            output_bytes: max_output.unwrap_or(0),
                        }),
                        device_users,
                    },
                )
                .await?;
            print_endpoints(&[info]);
            Ok(ExitCode::SUCCESS)
        }),
        EndpointCommand::Ls => runtime()?.block_on(async {
            print_endpoints(&service.connect().await?.endpoints().await?);
            Ok(ExitCode::SUCCESS)
        }),
    }
}

fn print_endpoints(list: &[ferry_client::EndpointInfo]) {
    let or = |v: &[String], default: &str| {
        if v.is_empty() {
            default.to_owned()
        } else {
            v.join(",")
        }
    };
    println!(
        "{:<16} {:<12} {:<16} {:<10} DEVICES",
        "ENDPOINT", "OWNER", "SUBMITTERS", "FUNCTIONS"
    );
    for e in list {
        let p = e.policy.clone().unwrap_or_default();
        let functions = match p.allowed_functions.len() {
            0 => "any".to_owned(),
            n => format!("{n} allowed"),
        };
        println!(
            "{:<16} {:<12} {:<16} {:<10} {}",
            e.name,
            e.owner,
            or(&p.submitters, "owner"),
            functions,
            or(&p.device_users, "submitters")
        );
    }
}

fn start(args: ferry_endpoint::StartArgs) -> anyhow::Result<ExitCode> {
    let mut c = args.into_config(DEFAULT_SERVICE)?;
    if c.cache_dir.is_none() {
        c.cache_dir = crate::local::default_cache_dir();
    }
    // An elastic endpoint's workers are started as this one was.
    if let Ok(exe) = std::env::current_exe() {
        c.program = vec![exe.display().to_string(), "endpoint".into(), "start".into()];
    }
    eprintln!(
        "ferry endpoint `{}` dialling {} ({} slots)",
        c.name, c.service, c.concurrency
    );
    runtime()?.block_on(ferry_endpoint::run(c, shutdown_signal()))?;
    Ok(ExitCode::SUCCESS)
}
