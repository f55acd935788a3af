//! containerd's content store: reading small blobs and writing blobs with `content.Write`
//! (STAT → WRITE ≤ 1 MiB chunks → COMMIT with GC labels), verifying sha256 while streaming.

use std::collections::HashMap;
use std::time::Duration;

use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::{
    AbortRequest, InfoRequest, ReadContentRequest, WriteAction, WriteContentRequest,
    WriteContentResponse,
};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Streaming};

use super::ImageError;
use super::distribution::RegistryClient;
use crate::containerd::{Containerd, Lease};

const CHUNK: usize = 1 << 20;
/// Attempts while another process (say `ctr`) holds the same ingest ref; within this agent `KeyLocks`
/// prevents that. containerd itself retries for up to ~1 s before answering "locked", so this is minutes.
const LOCKED_RETRIES: u32 = 300;

/// Where the bytes of a blob come from.
pub enum Source<'a> {
    Memory(&'a [u8]),
    Registry(&'a RegistryClient),
}

/// Read a whole blob from the content store; `None` when it is not there.
pub async fn read(
    cd: &Containerd,
    digest: &str,
    limit: u64,
) -> Result<Option<Vec<u8>>, ImageError> {
    let mut client = ContentClient::new(cd.channel());
    let req = ReadContentRequest {
        digest: digest.to_string(),
        offset: 0,
        size: 0,
    };
    let mut stream = match client.read(cd.req(req)).await {
        Ok(s) => s.into_inner(),
        Err(s) if s.code() == Code::NotFound => return Ok(None),
        Err(s) => return Err(ImageError::containerd(format!("content read {digest}"), s)),
    };
    let mut out = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(msg)) => {
                if (out.len() + msg.data.len()) as u64 > limit {
                    return Err(ImageError::TooLarge {
                        what: format!("local blob {digest}"),
                        limit,
                    });
                }
                out.extend_from_slice(&msg.data);
            }
            Ok(None) => return Ok(Some(out)),
            Err(s) if s.code() == Code::NotFound => return Ok(None),
            Err(s) => return Err(ImageError::containerd(format!("content read {digest}"), s)),
        }
    }
}

/// Whether a blob is in the content store (of this namespace).
pub async fn exists(cd: &Containerd, digest: &str) -> Result<bool, ImageError> {
    let req = InfoRequest {
        digest: digest.to_string(),
    };
    match ContentClient::new(cd.channel()).info(cd.req(req)).await {
        Ok(_) => Ok(true),
        Err(s) if s.code() == Code::NotFound => Ok(false),
        Err(s) => Err(ImageError::containerd(format!("content info {digest}"), s)),
    }
}

/// Write a blob unless the store already has it. Returns true when bytes were transferred.
pub async fn write(
    cd: &Containerd,
    lease: &Lease,
    digest: &str,
    size: u64,
    labels: HashMap<String, String>,
    source: Source<'_>,
) -> Result<bool, ImageError> {
    let mut attempt = 0;
    loop {
        match write_once(cd, lease, digest, size, labels.clone(), &source).await {
            Err(ImageError::Containerd { source: s, .. })
                if s.code() == Code::Unavailable
                    && s.message().contains("locked")
                    && attempt < LOCKED_RETRIES =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

async fn write_once(
    cd: &Containerd,
    lease: &Lease,
    digest: &str,
    size: u64,
    labels: HashMap<String, String>,
    source: &Source<'_>,
) -> Result<bool, ImageError> {
    let op = |what: &str| format!("content write {what} {digest}");
    let reference = format!("skiff-{digest}");
    let total = i64::try_from(size).map_err(|_| ImageError::TooLarge {
        what: digest.into(),
        limit: i64::MAX as u64,
    })?;
    let (tx, rx) = mpsc::channel::<WriteContentRequest>(2);
    let msg = |action: WriteAction, offset: i64, data: Vec<u8>, labels: HashMap<String, String>| {
        WriteContentRequest {
            action: action as i32,
            r#ref: reference.clone(),
            total,
            expected: digest.to_string(),
            offset,
            data,
            labels,
        }
    };
    tx.send(msg(WriteAction::Stat, 0, Vec::new(), HashMap::new()))
        .await
        .map_err(|_| ImageError::Internal("content write stream closed".into()))?;
    let mut client = ContentClient::new(cd.channel());
    let mut replies = match client
        .write(cd.leased(ReceiverStream::new(rx), lease))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == Code::AlreadyExists => return Ok(false),
        Err(s) => return Err(ImageError::containerd(op("open"), s)),
    };
    let stat = match next_reply(&mut replies).await {
        Ok(r) => r,
        Err(s) if s.code() == Code::AlreadyExists => return Ok(false),
        Err(s) => return Err(ImageError::containerd(op("stat"), s)),
    };
    let send = |m: WriteContentRequest| {
        let tx = tx.clone();
        async move {
            tx.send(m)
                .await
                .map_err(|_| ImageError::Internal("content write stream closed".into()))
        }
    };
    let mut transferred = false;
    // offset == total: the blob exists in the shared backend (another namespace); only COMMIT is needed.
    if stat.offset != total || total == 0 {
        transferred = true;
        let result = stream_data(&mut replies, &send, &msg, digest, size, source).await;
        if let Err(e) = result {
            drop(tx);
            abort(cd, &reference).await;
            return Err(e);
        }
    }
    send(msg(WriteAction::Commit, total, Vec::new(), labels)).await?;
    match next_reply(&mut replies).await {
        Ok(_) => Ok(transferred),
        Err(s) if s.code() == Code::AlreadyExists => Ok(false),
        Err(s) => {
            abort(cd, &reference).await;
            Err(ImageError::containerd(op("commit"), s))
        }
    }
}

/// Send the blob's bytes from offset 0 (which also truncates a stale partial ingest), checking size
/// and digest before anything is committed.
async fn stream_data<F, Fut, M>(
    replies: &mut Streaming<WriteContentResponse>,
    send: &F,
    msg: &M,
    digest: &str,
    size: u64,
    source: &Source<'_>,
) -> Result<(), ImageError>
where
    F: Fn(WriteContentRequest) -> Fut,
    Fut: std::future::Future<Output = Result<(), ImageError>>,
    M: Fn(WriteAction, i64, Vec<u8>, HashMap<String, String>) -> WriteContentRequest,
{
    let what = format!("blob {digest}");
    let mut hasher = Sha256::new();
    let mut offset: u64 = 0;
    let mut pending: Vec<u8> = Vec::with_capacity(CHUNK.min(size as usize));
    let mut flush = async |pending: &mut Vec<u8>, offset: &mut u64| -> Result<(), ImageError> {
        if pending.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(pending, Vec::with_capacity(CHUNK));
        let len = data.len() as u64;
        send(msg(
            WriteAction::Write,
            *offset as i64,
            data,
            HashMap::new(),
        ))
        .await?;
        next_reply(replies)
            .await
            .map_err(|s| ImageError::containerd(format!("content write data {digest}"), s))?;
        *offset += len;
        Ok(())
    };
    let mut received: u64 = 0;
    let mut take = |bytes: &[u8], pending: &mut Vec<u8>| -> Result<(), ImageError> {
        received += bytes.len() as u64;
        if received > size {
            return Err(ImageError::DigestMismatch {
                what: what.clone(),
                expected: format!("{size} bytes"),
                actual: format!("more than {size} bytes"),
            });
        }
        hasher.update(bytes);
        pending.extend_from_slice(bytes);
        Ok(())
    };
    match source {
        Source::Memory(bytes) => {
            for chunk in bytes.chunks(CHUNK) {
                take(chunk, &mut pending)?;
                flush(&mut pending, &mut offset).await?;
            }
        }
        Source::Registry(registry) => {
            let mut resp = registry.blob(digest).await?;
            let url = resp.url().to_string();
            while let Some(chunk) = resp.chunk().await.map_err(|e| ImageError::http(&url, e))? {
                take(&chunk, &mut pending)?;
                if pending.len() >= CHUNK {
                    flush(&mut pending, &mut offset).await?;
                }
            }
            flush(&mut pending, &mut offset).await?;
        }
    }
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    if received != size || actual != digest {
        return Err(ImageError::DigestMismatch {
            what,
            expected: format!("{digest} ({size} bytes)"),
            actual: format!("{actual} ({received} bytes)"),
        });
    }
    Ok(())
}

async fn next_reply(
    replies: &mut Streaming<WriteContentResponse>,
) -> Result<WriteContentResponse, tonic::Status> {
    replies
        .message()
        .await?
        .ok_or_else(|| tonic::Status::internal("content write stream ended early"))
}

/// Drop a half-written ingest so its data does not linger on disk.
async fn abort(cd: &Containerd, reference: &str) {
    let req = AbortRequest {
        r#ref: reference.to_string(),
    };
    if let Err(s) = ContentClient::new(cd.channel()).abort(cd.req(req)).await
        && s.code() != Code::NotFound
    {
        tracing::debug!(reference, error = %s, "aborting content ingest failed");
    }
}

/// Per-key async locks (blob digests, chain IDs), so concurrent pulls in this process that share a layer
/// take turns: the second finds the blob or snapshot already there instead of colliding on containerd's
/// ingest lock (which containerd answers only after up to ~1 s of internal retries).
#[derive(Default)]
pub struct KeyLocks {
    locks: std::sync::Mutex<HashMap<String, std::sync::Weak<tokio::sync::Mutex<()>>>>,
}

impl KeyLocks {
    pub async fn lock(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.retain(|_, weak| weak.strong_count() > 0);
            match locks.get(key).and_then(std::sync::Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = std::sync::Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(key.to_string(), std::sync::Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}
