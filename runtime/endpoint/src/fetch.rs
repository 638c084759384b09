//! Components by hash: from memory, the on-disk cache, or fetched from the
//! service and verified before they are compiled.

use std::sync::Arc;

use ferry_host::{FailureKind, Function, FunctionId};
use ferry_proto::v1::{FetchComponentRequest, TaskError, endpoints_client::EndpointsClient};

use crate::Agent;

impl Agent {
    /// The compiled function: from memory, the on-disk cache, or fetched by
    /// hash from the service and verified.
    pub(super) async fn function(&self, id: &str) -> Result<Arc<Function>, TaskError> {
        let fail = |kind: FailureKind, message: String| TaskError {
            kind: kind.into(),
            message,
        };
        let fid =
            FunctionId::parse(id).map_err(|e| fail(FailureKind::BadComponent, e.to_string()))?;
        if let Some(f) = self
            .host
            .cached(fid)
            .map_err(|e| fail(e.kind(), e.to_string()))?
        {
            return Ok(f);
        }
        let _one_at_a_time = self.fetching.lock().await;
        if let Some(f) = self
            .host
            .cached(fid)
            .map_err(|e| fail(e.kind(), e.to_string()))?
        {
            return Ok(f);
        }
        let bytes = self
            .fetch(id)
            .await
            .map_err(|e| fail(FailureKind::Fetch, format!("fetching function {id}: {e:#}")))?;
        let actual = FunctionId::of(&bytes);
        if actual != fid {
            return Err(fail(
                FailureKind::HashMismatch,
                format!("fetched bytes for {id} hash to {actual}; refusing to run them"),
            ));
        }
        self.host
            .load(&bytes)
            .map_err(|e| fail(e.kind(), e.to_string()))
    }

    async fn fetch(&self, id: &str) -> anyhow::Result<Vec<u8>> {
        let channel = ferry_proto::dial(&self.config.service, &self.config.tls)?
            .connect()
            .await?;
        let channel = ferry_proto::auth::Conn::new(channel, self.bearer.clone());
        let mut client = EndpointsClient::new(channel).max_decoding_message_size(64 << 20);
        let mut stream = client
            .fetch_component(FetchComponentRequest { id: id.to_owned() })
            .await?
            .into_inner();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.message().await? {
            bytes.extend_from_slice(&chunk.data);
        }
        Ok(bytes)
    }
}
