//! How a call says who makes it: `authorization: Bearer TOKEN` on every
//! request of a connection.

use std::sync::{Arc, RwLock};

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The metadata key a token travels in.
pub const AUTHORIZATION: &str = "authorization";

/// Adds the bearer token, if there is one, to every request. Clones share
/// the token: [`Bearer::set`] changes it for every connection made with it
/// (an endpoint that finds a new token in its credentials file).
#[derive(Clone, Default)]
pub struct Bearer(Arc<RwLock<Option<MetadataValue<Ascii>>>>);

fn header(token: Option<&str>) -> Result<Option<MetadataValue<Ascii>>, String> {
    token
        .map(|t| {
            MetadataValue::try_from(format!("Bearer {}", t.trim()))
                .map_err(|_| "the token has characters a header cannot carry".to_owned())
        })
        .transpose()
}

impl Bearer {
    /// A token that cannot travel in a header (a control character, say) is
    /// refused here rather than at the first call.
    pub fn new(token: Option<&str>) -> Result<Bearer, String> {
        Ok(Bearer(Arc::new(RwLock::new(header(token)?))))
    }

    pub fn set(&self, token: Option<&str>) -> Result<(), String> {
        let v = header(token)?;
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = v;
        Ok(())
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &*self.0.read().unwrap_or_else(|p| p.into_inner()) {
            req.metadata_mut().insert(AUTHORIZATION, v.clone());
        }
        Ok(req)
    }
}

/// A connection whose every call carries its token.
pub type Conn = InterceptedService<Channel, Bearer>;

/// The token a request presents, if it presents one in the bearer form.
pub fn presented(md: &tonic::metadata::MetadataMap) -> Option<Result<&str, &'static str>> {
    let v = md.get(AUTHORIZATION)?;
    let Ok(v) = v.to_str() else {
        return Some(Err("the authorization header is not text"));
    };
    Some(
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or("the authorization header is not `Bearer TOKEN`"),
    )
}

/// `channel`, with `token` on each of its calls.
pub fn conn(channel: Channel, token: Option<&str>) -> Result<Conn, String> {
    Ok(InterceptedService::new(channel, Bearer::new(token)?))
}
