//! A thin handle on containerd's native gRPC API.
//!
//! One `tonic` channel is opened once and cloned for every client. Every namespaced call carries the
//! `containerd-namespace` header; calls that create snapshots or content inside a multi-step operation also
//! carry `containerd-lease`, so containerd's garbage collector cannot take half-built state away.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::{
    CreateRequest as CreateLeaseRequest, DeleteRequest as DeleteLeaseRequest,
};
use containerd_client::tonic::metadata::MetadataValue;
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Request, Status};

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("failed to connect to containerd at {path}: {source}")]
    Connect {
        path: String,
        #[source]
        source: containerd_client::tonic::transport::Error,
    },
    #[error("containerd namespace {0:?} is not a valid gRPC header value")]
    Namespace(String),
}

#[derive(Clone)]
pub struct Containerd {
    channel: Channel,
    namespace: MetadataValue<containerd_client::tonic::metadata::Ascii>,
    namespace_name: String,
}

impl Containerd {
    pub async fn connect(socket: &Path, namespace: &str) -> Result<Self, ConnectError> {
        let channel =
            containerd_client::connect(socket)
                .await
                .map_err(|source| ConnectError::Connect {
                    path: socket.display().to_string(),
                    source,
                })?;
        let ns = namespace
            .parse()
            .map_err(|_| ConnectError::Namespace(namespace.to_string()))?;
        Ok(Self {
            channel,
            namespace: ns,
            namespace_name: namespace.to_string(),
        })
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub fn namespace(&self) -> &str {
        &self.namespace_name
    }

    /// A request in this handle's containerd namespace.
    pub fn req<T>(&self, msg: T) -> Request<T> {
        let mut req = Request::new(msg);
        req.metadata_mut()
            .insert("containerd-namespace", self.namespace.clone());
        req
    }

    /// A request in this handle's namespace that puts what it creates under `lease`.
    pub fn leased<T>(&self, msg: T, lease: &Lease) -> Request<T> {
        let mut req = self.req(msg);
        req.metadata_mut()
            .insert("containerd-lease", lease.header.clone());
        req
    }

    /// Create a lease that expires by itself after `expire`, so a crash leaks nothing for long.
    pub async fn lease(&self, expire: Duration) -> Result<Lease, Status> {
        let deadline =
            jiff::Timestamp::now() + jiff::SignedDuration::try_from(expire).unwrap_or_default();
        let labels = HashMap::from([("containerd.io/gc.expire".to_string(), deadline.to_string())]);
        let id = format!("skiff-{}", uuid::Uuid::new_v4());
        let resp = LeasesClient::new(self.channel())
            .create(self.req(CreateLeaseRequest { id, labels }))
            .await?
            .into_inner();
        let lease = resp
            .lease
            .ok_or_else(|| Status::internal("containerd returned no lease"))?;
        let header = lease.id.parse().map_err(|_| {
            Status::internal(format!("lease id {:?} is not a header value", lease.id))
        })?;
        Ok(Lease {
            id: lease.id,
            header,
        })
    }

    /// Delete a lease; what it protected becomes collectable unless something else references it.
    pub async fn release(&self, lease: Lease) -> Result<(), Status> {
        let res = LeasesClient::new(self.channel())
            .delete(self.req(DeleteLeaseRequest {
                id: lease.id,
                sync: false,
            }))
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(s) if s.code() == containerd_client::tonic::Code::NotFound => Ok(()),
            Err(s) => Err(s),
        }
    }
}

pub struct Lease {
    pub id: String,
    header: MetadataValue<containerd_client::tonic::metadata::Ascii>,
}
