//! Which credential an endpoint presents, and registering itself when it has
//! none, as a Globus Compute endpoint does on its first start.

use anyhow::Context;
use ferry_proto::credentials;
use ferry_proto::v1::{RegisterEndpointRequest, auth_client::AuthClient};

use crate::EndpointConfig;

/// The variable a credential may come from.
pub const CREDENTIAL_ENV: &str = "FERRY_ENDPOINT_CREDENTIAL";

/// Why there is no credential, when asking again will not help.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Refused(pub String);

fn given(config: &EndpointConfig) -> Option<String> {
    config.credential.clone().or_else(|| {
        std::env::var(CREDENTIAL_ENV)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    })
}

fn saved(config: &EndpointConfig) -> Option<String> {
    let key = credentials::endpoint_key(&config.service, &config.name);
    credentials::read(&credentials::file()?, &key)
}

/// The credential to dial with: given, saved, or registered now.
pub(crate) async fn find(config: &EndpointConfig) -> anyhow::Result<String> {
    if let Some(c) = given(config).or_else(|| saved(config)) {
        return Ok(c);
    }
    // Not final: a service starting beside this endpoint saves its admin's
    // token in a moment, and a login may come later.
    let user = credentials::token_for(&config.service, None).with_context(|| {
        format!(
            "endpoint `{}` has no credential: pass --credential or set {CREDENTIAL_ENV}, or log in (`ferry login {}`) so that it can register itself",
            config.name, config.service
        )
    })?;
    // One process at a time: a second agent of the same name waits here,
    // then finds the credential the first saved.
    let lock = tokio::task::spawn_blocking(credentials::lock)
        .await?
        .context("locking the credentials file")?;
    if let Some(c) = saved(config) {
        return Ok(c);
    }
    let channel = ferry_proto::dial(&config.service, &config.tls)?
        .connect()
        .await?;
    let conn = ferry_proto::auth::conn(channel, Some(&user)).map_err(anyhow::Error::msg)?;
    let reply = AuthClient::new(conn)
        .register_endpoint(RegisterEndpointRequest {
            name: config.name.clone(),
            rotate: false,
        })
        .await;
    let credential = match reply {
        Ok(r) => r.into_inner().credential,
        Err(s) if s.code() == tonic::Code::AlreadyExists => {
            return Err(Refused(format!(
                "endpoint `{}` is registered, and this machine has no credential for it: pass --credential or set {CREDENTIAL_ENV} ({})",
                config.name,
                s.message()
            ))
            .into());
        }
        Err(s)
            if matches!(
                s.code(),
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
            ) =>
        {
            return Err(Refused(format!(
                "registering endpoint `{}`: {}",
                config.name,
                s.message()
            ))
            .into());
        }
        Err(s) => return Err(s.into()),
    };
    let path = credentials::file().context("no config directory: set HOME or FERRY_CONFIG_DIR")?;
    credentials::store(
        &path,
        &credentials::endpoint_key(&config.service, &config.name),
        &credential,
    )
    .with_context(|| format!("saving the credential in {}", path.display()))?;
    drop(lock);
    tracing::info!(endpoint = %config.name, "registered; credential saved in {}", path.display());
    Ok(credential)
}
