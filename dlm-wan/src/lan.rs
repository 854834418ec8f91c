//! The WAN manager's calls to a cluster's manager (a DLM pool manager, `dlm_pool::api`): its
//! report, and the jobs it runs for DLM-WAN (their state, streams, live statistics, outputs). Each call is the pool's blocking client, run on
//! tokio's blocking threads so that a slow cluster holds up only its own call.

use crate::client::Stream;
use dlm_pool::client::{Address, Auth, ClientError, PoolClient};
use dlm_pool::proto::{ClusterReport, NodeJobId, NodeJobStatus, RunRequest, StatLine};
use serde::de::DeserializeOwned;

/// One cluster's manager.
#[derive(Debug, Clone)]
pub struct Lan {
    client: PoolClient,
}

impl Lan {
    /// The manager at `HOST:PORT` (over TCP, with MUNGE).
    pub fn new(manager: &str) -> Self {
        Lan { client: PoolClient::for_service(Address::Tcp(manager.to_string()), "cluster manager") }
    }

    pub async fn report(&self) -> Result<ClusterReport, ClientError> {
        self.json("GET", "/v1/cluster".into(), None).await
    }

    pub async fn create(&self, request: &RunRequest) -> Result<NodeJobStatus, ClientError> {
        let body = serde_json::to_vec(request).map_err(|e| self.client.bad_json(e))?;
        self.json("POST", "/v1/jobs".into(), Some(body)).await
    }

    pub async fn send_files(&self, id: &NodeJobId, archive: Vec<u8>) -> Result<NodeJobStatus, ClientError> {
        self.json("PUT", format!("/v1/jobs/{id}/files"), Some(archive)).await
    }

    pub async fn job(&self, id: &NodeJobId) -> Result<NodeJobStatus, ClientError> {
        self.json("GET", format!("/v1/jobs/{id}"), None).await
    }

    /// The stream's bytes from `offset` to what the cluster has so far.
    pub async fn log(&self, id: &NodeJobId, stream: Stream, offset: u64) -> Result<Vec<u8>, ClientError> {
        self.bytes("GET", format!("/v1/jobs/{id}/{}?offset={offset}", stream.name()), None).await
    }

    /// The job's samples of live statistics, from number `from` (counted from its first) on.
    pub async fn stats(&self, id: &NodeJobId, from: u64) -> Result<Vec<StatLine>, ClientError> {
        self.json("GET", format!("/v1/jobs/{id}/stats?from={from}"), None).await
    }

    pub async fn outputs(&self, id: &NodeJobId) -> Result<Vec<u8>, ClientError> {
        self.bytes("GET", format!("/v1/jobs/{id}/outputs"), None).await
    }

    pub async fn cancel(&self, id: &NodeJobId) -> Result<NodeJobStatus, ClientError> {
        self.json("POST", format!("/v1/jobs/{id}/cancel"), None).await
    }

    pub async fn delete(&self, id: &NodeJobId) -> Result<(), ClientError> {
        self.bytes("DELETE", format!("/v1/jobs/{id}"), None).await.map(drop)
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: &'static str,
        path: String,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let bytes = self.bytes(method, path, body).await?;
        self.client.parse_json(&bytes)
    }

    /// One call; a reply that is not a success becomes `ClientError::Refused` with its message.
    async fn bytes(&self, method: &'static str, path: String, body: Option<Vec<u8>>) -> Result<Vec<u8>, ClientError> {
        let client = self.client.clone();
        let call = move || client.send(method, &path, body.as_deref(), &Auth::Auto);
        let reply = tokio::task::spawn_blocking(call).await.map_err(|e| ClientError::Io {
            service: self.client.service,
            address: self.client.address.clone(),
            source: std::io::Error::other(e),
        })??;
        self.client.check(&reply)?;
        Ok(reply.body)
    }
}
