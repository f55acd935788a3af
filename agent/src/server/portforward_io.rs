//! The transports of a port-forward session (WebSocket-tunnelled or raw SPDY bytes in, frames out) and
//! the connection into the pod's network namespace.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::extract::ws::{Message, WebSocket};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::spdy::{Encoder, Frame};
use super::{CHUNK, CONNECT_TIMEOUT, Target, run};

/// SPDY over WebSocket binary messages (message boundaries carry no meaning).
pub(super) async fn websocket_session(target: Target, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (in_tx, in_rx) = mpsc::channel::<Bytes>(16);
    let (out_tx, mut out_rx) = mpsc::channel::<Frame>(64);
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            let b = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            if in_tx.send(b).await.is_err() {
                break;
            }
        }
    });
    let writer = tokio::spawn(async move {
        let mut enc = Encoder::new();
        while let Some(f) = out_rx.recv().await {
            if sink
                .send(Message::Binary(Bytes::from(enc.encode(&f))))
                .await
                .is_err()
            {
                return;
            }
        }
        let _ = sink
            .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                code: axum::extract::ws::close_code::NORMAL,
                reason: "".into(),
            })))
            .await;
        let _ = sink.close().await;
    });
    run(target, in_rx, out_tx).await;
    reader.abort();
    let _ = writer.await;
}

/// SPDY over the raw upgraded connection.
pub(super) async fn raw_session<T>(target: Target, io: T)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let (in_tx, in_rx) = mpsc::channel::<Bytes>(16);
    let (out_tx, mut out_rx) = mpsc::channel::<Frame>(64);
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if in_tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    let writer = tokio::spawn(async move {
        let mut enc = Encoder::new();
        while let Some(f) = out_rx.recv().await {
            if wr.write_all(&enc.encode(&f)).await.is_err() || wr.flush().await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    });
    run(target, in_rx, out_tx).await;
    reader.abort();
    let _ = writer.await;
}

/// An I/O error as Go prints it (`connection refused`), without Rust's `(os error N)`.
pub(super) fn io_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let d = nix::errno::Errno::from_raw(code).desc();
            let mut c = d.chars();
            c.next()
                .map(|f| f.to_lowercase().chain(c).collect())
                .unwrap_or_default()
        }
        None => e.to_string(),
    }
}

/// A TCP connection to `localhost:port` opened inside the network namespace at `netns`.
pub async fn connect_in_netns(netns: PathBuf, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("skiff-portfwd".into())
        .spawn(move || {
            // setns() changes only this thread, which ends right after.
            let r = (|| {
                let f = std::fs::File::open(&netns)?;
                nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)?;
                let v4 = SocketAddr::from(([127, 0, 0, 1], port));
                let s = match std::net::TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT) {
                    Ok(s) => s,
                    Err(e4) => {
                        let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
                        std::net::TcpStream::connect_timeout(&v6, CONNECT_TIMEOUT)
                            .map_err(|_| e4)?
                    }
                };
                s.set_nonblocking(true)?;
                let _ = s.set_nodelay(true);
                Ok::<_, std::io::Error>(s)
            })();
            let _ = tx.send(r);
        })?;
    let s = rx
        .await
        .map_err(|_| std::io::Error::other("connect thread ended"))??;
    tokio::net::TcpStream::from_std(s)
}
