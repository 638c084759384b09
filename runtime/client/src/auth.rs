//! Identities: who the client is, and (for an admin) users and tokens.

use std::time::Duration;

use ferry_proto::v1 as pb;

use crate::{Client, ClientError};

impl Client {
    /// Who this client's token speaks for.
    pub async fn whoami(&self) -> Result<pb::WhoAmIResponse, ClientError> {
        Ok(self
            .auth
            .clone()
            .who_am_i(pb::WhoAmIRequest {})
            .await?
            .into_inner())
    }

    /// Adds a user (admin only).
    pub async fn add_user(&self, name: &str, admin: bool) -> Result<pb::UserInfo, ClientError> {
        Ok(self
            .auth
            .clone()
            .add_user(pb::AddUserRequest {
                name: name.to_owned(),
                admin,
            })
            .await?
            .into_inner())
    }

    /// Every user (admin only).
    pub async fn users(&self) -> Result<Vec<pb::UserInfo>, ClientError> {
        Ok(self
            .auth
            .clone()
            .list_users(pb::ListUsersRequest {})
            .await?
            .into_inner()
            .users)
    }

    /// A new token for `user` (this client's own user when `None`; another
    /// user's needs an admin). The secret is returned once.
    pub async fn create_token(
        &self,
        user: Option<&str>,
        label: &str,
        expires_in: Option<Duration>,
    ) -> Result<(pb::TokenInfo, String), ClientError> {
        let r = self
            .auth
            .clone()
            .create_token(pb::CreateTokenRequest {
                user: user.unwrap_or_default().to_owned(),
                expires_in_ms: expires_in.map_or(0, |d| d.as_millis().max(1) as u64),
                label: label.to_owned(),
            })
            .await?
            .into_inner();
        Ok((r.info.unwrap_or_default(), r.token))
    }

    /// Revokes a token by id: open streams that use it end.
    pub async fn revoke_token(&self, id: &str) -> Result<pb::TokenInfo, ClientError> {
        Ok(self
            .auth
            .clone()
            .revoke_token(pb::RevokeTokenRequest { id: id.to_owned() })
            .await?
            .into_inner())
    }

    /// This user's tokens (an admin's: everyone's).
    pub async fn tokens(&self) -> Result<Vec<pb::TokenInfo>, ClientError> {
        Ok(self
            .auth
            .clone()
            .list_tokens(pb::ListTokensRequest {})
            .await?
            .into_inner()
            .tokens)
    }
}

impl Client {
    /// Registers endpoint `name` to this user (or, with `rotate`, gives one
    /// they own a new credential). Returns it and its credential, shown
    /// once.
    pub async fn register_endpoint(
        &self,
        name: &str,
        rotate: bool,
    ) -> Result<(pb::EndpointInfo, String), ClientError> {
        let r = self
            .auth
            .clone()
            .register_endpoint(pb::RegisterEndpointRequest {
                name: name.to_owned(),
                rotate,
            })
            .await?
            .into_inner();
        Ok((r.info.unwrap_or_default(), r.credential))
    }

    /// Sets an endpoint's policy (its owner or an admin).
    pub async fn set_endpoint_policy(
        &self,
        name: &str,
        policy: pb::EndpointPolicy,
    ) -> Result<pb::EndpointInfo, ClientError> {
        Ok(self
            .auth
            .clone()
            .set_endpoint_policy(pb::SetEndpointPolicyRequest {
                name: name.to_owned(),
                policy: Some(policy),
            })
            .await?
            .into_inner())
    }

    /// The endpoints this user owns or may submit to (an admin's: all).
    pub async fn endpoints(&self) -> Result<Vec<pb::EndpointInfo>, ClientError> {
        Ok(self
            .auth
            .clone()
            .list_endpoints(pb::ListEndpointsRequest {})
            .await?
            .into_inner()
            .endpoints)
    }
}
