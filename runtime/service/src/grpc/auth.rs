//! `ferry.v1.Auth`: who a token speaks for; users and tokens.

use ferry_proto::v1::{self as pb, auth_server};
use tonic::{Request, Response, Status};

use super::{blocking, caller};
use crate::Service;
use crate::audit::Event;
use crate::core::TaskLimits;
use crate::identities::{EndpointPolicy, EndpointRecord, Token, User};

fn endpoint_info(e: &EndpointRecord) -> pb::EndpointInfo {
    let p = &e.policy;
    pb::EndpointInfo {
        name: e.name.clone(),
        owner: e.owner.clone(),
        created_at_ms: e.created_ms,
        policy: Some(pb::EndpointPolicy {
            submitters: p.submitters.clone(),
            allowed_functions: p.allowed_functions.clone(),
            max_limits: Some(pb::Limits {
                timeout_ms: p.max_limits.timeout_ms,
                memory_bytes: p.max_limits.memory_bytes,
                output_bytes: p.max_limits.output_bytes,
            }),
            device_users: p.device_users.clone(),
        }),
    }
}

fn user_info(u: &User) -> pb::UserInfo {
    pb::UserInfo {
        name: u.name.clone(),
        admin: u.admin,
        created_at_ms: u.created_ms,
    }
}

fn token_info(t: &Token) -> pb::TokenInfo {
    pb::TokenInfo {
        id: t.id.clone(),
        user: t.user.clone(),
        label: t.label.clone(),
        created_at_ms: t.created_ms,
        expires_at_ms: t.expires_ms.unwrap_or(0),
        revoked_at_ms: t.revoked_ms.unwrap_or(0),
    }
}

#[tonic::async_trait]
impl auth_server::Auth for Service {
    async fn who_am_i(
        &self,
        req: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let who = caller(&req)?;
        let expires = self
            .inner
            .identities
            .tokens(&who)
            .into_iter()
            .find(|t| *t.id == *who.token)
            .and_then(|t| t.expires_ms);
        Ok(Response::new(pb::WhoAmIResponse {
            user: who.user.to_string(),
            admin: who.admin,
            token_id: who.token.to_string(),
            expires_at_ms: expires.unwrap_or(0),
        }))
    }

    async fn add_user(
        &self,
        req: Request<pb::AddUserRequest>,
    ) -> Result<Response<pb::UserInfo>, Status> {
        let who = caller(&req)?;
        let req = req.into_inner();
        let service = self.clone();
        let user = blocking(move || {
            let user = service.inner.identities.add_user(
                &who,
                &req.name,
                req.admin,
                ferry_proto::now_ms(),
            )?;
            service.inner.audit.record(
                &who,
                Event::UserAdd {
                    name: &user.name,
                    admin: user.admin,
                },
            );
            Ok(user)
        })
        .await?;
        Ok(Response::new(user_info(&user)))
    }

    async fn list_users(
        &self,
        req: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let who = caller(&req)?;
        let users = self.inner.identities.users(&who).map_err(super::status)?;
        Ok(Response::new(pb::ListUsersResponse {
            users: users.iter().map(user_info).collect(),
        }))
    }

    async fn create_token(
        &self,
        req: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        let who = caller(&req)?;
        let req = req.into_inner();
        let service = self.clone();
        let (token, secret) = blocking(move || {
            let made = service.inner.identities.create_token(
                &who,
                Some(&req.user),
                &req.label,
                (req.expires_in_ms > 0).then_some(req.expires_in_ms),
                ferry_proto::now_ms(),
            )?;
            service.inner.audit.record(
                &who,
                Event::TokenCreate {
                    id: &made.0.id,
                    for_user: &made.0.user,
                },
            );
            Ok(made)
        })
        .await?;
        Ok(Response::new(pb::CreateTokenResponse {
            info: Some(token_info(&token)),
            token: secret,
        }))
    }

    async fn revoke_token(
        &self,
        req: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::TokenInfo>, Status> {
        let who = caller(&req)?;
        let id = req.into_inner().id;
        let service = self.clone();
        let token = blocking(move || {
            let token = service
                .inner
                .identities
                .revoke(&who, &id, ferry_proto::now_ms())?;
            service
                .inner
                .audit
                .record(&who, Event::TokenRevoke { id: &id });
            Ok(token)
        })
        .await?;
        Ok(Response::new(token_info(&token)))
    }

    async fn register_endpoint(
        &self,
        req: Request<pb::RegisterEndpointRequest>,
    ) -> Result<Response<pb::RegisterEndpointResponse>, Status> {
        let who = caller(&req)?;
        let req = req.into_inner();
        let service = self.clone();
        let (record, credential) = blocking(move || {
            let made = service.inner.identities.register_endpoint(
                &who,
                &req.name,
                req.rotate,
                ferry_proto::now_ms(),
            )?;
            service.inner.audit.record(
                &who,
                Event::EndpointRegister {
                    name: &req.name,
                    rotated: req.rotate,
                },
            );
            Ok(made)
        })
        .await?;
        Ok(Response::new(pb::RegisterEndpointResponse {
            info: Some(endpoint_info(&record)),
            credential,
        }))
    }

    async fn set_endpoint_policy(
        &self,
        req: Request<pb::SetEndpointPolicyRequest>,
    ) -> Result<Response<pb::EndpointInfo>, Status> {
        let who = caller(&req)?;
        let req = req.into_inner();
        let p = req.policy.unwrap_or_default();
        let max = p.max_limits.unwrap_or_default();
        let policy = EndpointPolicy {
            submitters: p.submitters,
            allowed_functions: p.allowed_functions,
            max_limits: TaskLimits {
                timeout_ms: max.timeout_ms,
                memory_bytes: max.memory_bytes,
                output_bytes: max.output_bytes,
            },
            device_users: p.device_users,
        };
        let service = self.clone();
        let record = blocking(move || {
            let record = service
                .inner
                .identities
                .set_policy(&who, &req.name, policy)?;
            service
                .inner
                .audit
                .record(&who, Event::EndpointPolicy { name: &req.name });
            Ok(record)
        })
        .await?;
        Ok(Response::new(endpoint_info(&record)))
    }

    async fn list_endpoints(
        &self,
        req: Request<pb::ListEndpointsRequest>,
    ) -> Result<Response<pb::ListEndpointsResponse>, Status> {
        let who = caller(&req)?;
        Ok(Response::new(pb::ListEndpointsResponse {
            endpoints: self
                .inner
                .identities
                .endpoints(&who)
                .iter()
                .map(endpoint_info)
                .collect(),
        }))
    }

    async fn list_tokens(
        &self,
        req: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        let who = caller(&req)?;
        Ok(Response::new(pb::ListTokensResponse {
            tokens: self
                .inner
                .identities
                .tokens(&who)
                .iter()
                .map(token_info)
                .collect(),
        }))
    }
}
