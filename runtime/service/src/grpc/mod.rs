//! The gRPC face of the service: one thin adapter per service (functions,
//! tasks, endpoints, blobs) translating to and from the broker core, plus
//! health and reflection (v1 and v1alpha) so that `grpcurl` and Python's
//! grpcio tools can list and call everything.

mod auth;
mod blobs;
mod endpoints;
mod functions;
mod tasks;
mod tls;

use std::pin::Pin;

use ferry_proto::v1::{
    self as pb, auth_server, blobs_server, endpoints_server, functions_server, tasks_server,
};
use futures::Stream;
use tokio::net::TcpListener;
use tonic::Status;
use tonic::service::interceptor::InterceptedService;

use crate::Service;
use crate::audit::Event;
use crate::core::{Error, Principal, TaskOutput, TaskRecord};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// On a refusal for an unmet requirement: the requirement's string form.
pub const REQUIREMENT_METADATA: &str = "ferry-requirement-bin";
/// On a refusal for an unmet requirement: the failure kind it would be.
pub const KIND_METADATA: &str = "ferry-failure-kind-bin";

/// A broker error as a gRPC status.
pub(crate) fn status(e: Error) -> Status {
    match e {
        Error::Invalid(m) => Status::invalid_argument(m),
        Error::NotFound(m) => Status::not_found(m),
        Error::Exists(m) => Status::already_exists(m),
        Error::Unauthenticated(m) => Status::unauthenticated(m),
        Error::Denied(m) => Status::permission_denied(m),
        Error::Precondition(m) => Status::failed_precondition(m),
        Error::Unmet(r) => {
            // The typed requirement and kind travel beside the message, so
            // that a client can tell which need was refused, and why.
            let mut s = Status::failed_precondition(r.message);
            let md = s.metadata_mut();
            md.insert_bin(
                REQUIREMENT_METADATA,
                tonic::metadata::MetadataValue::from_bytes(r.requirement.to_string().as_bytes()),
            );
            md.insert_bin(
                KIND_METADATA,
                tonic::metadata::MetadataValue::from_bytes(r.kind.as_str().as_bytes()),
            );
            s
        }
        Error::Exhausted(m) => Status::resource_exhausted(m),
        Error::Quota(q) => {
            // Marked, so that a client backs off and retries this one, and
            // not a refusal no wait would change (a payload past a cap).
            let mut s = Status::resource_exhausted(q.message);
            let md = s.metadata_mut();
            md.insert(
                crate::quotas::QUOTA_METADATA,
                tonic::metadata::MetadataValue::from_static(q.quota),
            );
            if let Ok(v) = q.retry_after.as_millis().to_string().parse() {
                md.insert(crate::quotas::RETRY_AFTER_METADATA, v);
            }
            s
        }
        Error::Unavailable(m) => Status::unavailable(m),
        e @ Error::Internal(_) => Status::internal(e.to_string()),
    }
}

/// Authenticates every call of a service: the caller it names rides in the
/// request's extensions, where [`caller`] finds it.
#[derive(Clone)]
pub(crate) struct Authenticate(Service);

impl tonic::service::Interceptor for Authenticate {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let who = if self.0.inner.config.auth {
            let refuse = |reason: String| {
                self.0
                    .inner
                    .audit
                    .anonymous(Event::Unauthenticated { reason: &reason });
                Status::unauthenticated(reason)
            };
            let token = match ferry_proto::auth::presented(req.metadata()) {
                None => {
                    return Err(refuse(
                        "no token: pass --token, set FERRY_TOKEN, or run `ferry login URL`".into(),
                    ));
                }
                Some(Err(m)) => return Err(refuse(m.to_owned())),
                Some(Ok(t)) => t,
            };
            let who = match self.0.authenticate(token) {
                Ok(who) => who,
                Err(Error::Unauthenticated(m)) => return Err(refuse(m)),
                Err(e) => return Err(status(e)),
            };
            self.0
                .inner
                .meter
                .request(&who, std::time::Instant::now())
                .map_err(|e| status(Error::Quota(e)))?;
            who
        } else {
            Principal::new(crate::FIRST_ADMIN, true, "")
        };
        req.extensions_mut().insert(who);
        Ok(req)
    }
}

/// The user [`Authenticate`] found; an endpoint's credential is refused,
/// since it only serves its endpoint.
pub(crate) fn caller<T>(req: &tonic::Request<T>) -> Result<Principal, Status> {
    let who = caller_or_endpoint(req)?;
    match &who.endpoint {
        Some(name) => Err(Status::permission_denied(format!(
            "endpoint `{name}`'s credential only serves that endpoint; use a user's token"
        ))),
        None => Ok(who),
    }
}

/// The caller [`Authenticate`] found: a user, or an endpoint.
pub(crate) fn caller_or_endpoint<T>(req: &tonic::Request<T>) -> Result<Principal, Status> {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("the call was not authenticated"))
}

/// Ends when `who`'s token is revoked (or expires): an open stream stops
/// with it.
pub(crate) async fn revoked(service: &Service, who: &Principal) {
    if !service.inner.config.auth {
        return std::future::pending().await;
    }
    let mut changes = service.inner.identities.revocations();
    loop {
        if !service
            .inner
            .identities
            .still_valid(&who.token, ferry_proto::now_ms())
        {
            return;
        }
        // Expiry has no event: look again each minute regardless.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(60), changes.changed()).await;
    }
}

/// An error inside the service, for a client: a reference number, with the
/// detail in the service's log.
pub(crate) fn internal(e: impl std::fmt::Display) -> Status {
    status(Error::internal(e))
}

/// Runs blocking broker work (a transition commits to disk) without
/// stalling the executor.
///
/// On a multi-threaded runtime the work runs in place, the other tasks of
/// this worker moving to another thread: the caller's latency then has no
/// thread hop in it (a round trip makes several of these calls). Elsewhere
/// it goes to the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Status> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        return match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tokio::task::block_in_place(f)
        })) {
            Ok(r) => r.map_err(status),
            Err(_) => Err(internal("a broker call panicked")),
        };
    }
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(status),
        Err(e) => Err(status(Error::internal(format!(
            "a broker call panicked: {e}"
        )))),
    }
}

pub(crate) fn output(o: &TaskOutput) -> pb::TaskOutput {
    pb::TaskOutput {
        stdout: o.stdout.clone(),
        stderr: o.stderr.clone(),
        logs: o.logs.clone(),
        truncated: o.truncated,
    }
}

pub(crate) fn info(t: &TaskRecord) -> pb::TaskInfo {
    pb::TaskInfo {
        id: t.id.clone(),
        endpoint: t.endpoint.clone(),
        function_id: t.function_id.clone(),
        export: t.export.clone(),
        state: t.state.code(),
        history: t
            .history
            .iter()
            .map(|&(state, at_ms)| pb::StateTime {
                state: state.code(),
                at_ms,
            })
            .collect(),
        result: t.result.clone().unwrap_or_default(),
        error: t.error.clone().map(|e| pb::TaskError {
            kind: e.kind,
            message: e.message,
        }),
        depends_on: t.deps.clone(),
        cache_hit: t.cache_hit,
        attempts: t.attempts,
        output: (!t.output.is_empty()).then(|| output(&t.output)),
        lost: t.lost,
    }
}

pub(crate) async fn serve(
    service: Service,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    const MAX: usize = 64 << 20;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<functions_server::FunctionsServer<Service>>()
        .await;
    health
        .set_serving::<tasks_server::TasksServer<Service>>()
        .await;
    health
        .set_serving::<endpoints_server::EndpointsServer<Service>>()
        .await;
    health
        .set_serving::<blobs_server::BlobsServer<Service>>()
        .await;
    health
        .set_serving::<auth_server::AuthServer<Service>>()
        .await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    // `Server::tcp_nodelay` only covers sockets tonic binds itself; without
    // it, small replies wait on delayed ACKs (~40 ms each).
    let tls = service.inner.config.tls.clone();
    let incoming = tls::incoming(listener, tls.is_some());
    let auth = Authenticate(service.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut builder = tonic::transport::Server::builder();
    if let Some(t) = &tls {
        builder = builder
            .tls_config(tls::config(t))
            .map_err(|e| anyhow::anyhow!("the TLS certificate or key cannot be used: {e}"))?;
    }
    let server = builder
        .initial_stream_window_size(ferry_proto::STREAM_WINDOW)
        .initial_connection_window_size(ferry_proto::CONNECTION_WINDOW)
        // Half-open connections are found by pings, not by a TCP write
        // that times out minutes later.
        .http2_keepalive_interval(Some(ferry_proto::KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(ferry_proto::KEEPALIVE_TIMEOUT))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(InterceptedService::new(
            functions_server::FunctionsServer::new(service.clone())
                .max_decoding_message_size(MAX)
                .max_encoding_message_size(MAX),
            auth.clone(),
        ))
        .add_service(InterceptedService::new(
            tasks_server::TasksServer::new(service.clone())
                .max_decoding_message_size(MAX)
                .max_encoding_message_size(MAX),
            auth.clone(),
        ))
        .add_service(InterceptedService::new(
            endpoints_server::EndpointsServer::new(service.clone())
                .max_decoding_message_size(MAX)
                .max_encoding_message_size(MAX),
            auth.clone(),
        ))
        .add_service(InterceptedService::new(
            blobs_server::BlobsServer::new(service.clone())
                .max_decoding_message_size(MAX)
                .max_encoding_message_size(MAX),
            auth.clone(),
        ))
        .add_service(InterceptedService::new(
            auth_server::AuthServer::new(service),
            auth,
        ))
        .serve_with_incoming_shutdown(incoming, async {
            let _ = stopped.await;
        });
    let mut server = tokio::spawn(server);
    tokio::select! {
        r = &mut server => return Ok(r??),
        () = shutdown => {}
    }
    let _ = stop.send(());
    // Endpoint sessions and watch streams never end by themselves: give them
    // a moment to drain, then stop regardless.
    match tokio::time::timeout(std::time::Duration::from_secs(1), &mut server).await {
        Ok(r) => Ok(r??),
        Err(_) => {
            server.abort();
            Ok(())
        }
    }
}
