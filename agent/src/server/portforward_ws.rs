//! Port-forward over the WebSocket channel protocol (`v4.channel.k8s.io`, `?ports=80,8080`), what the
//! Python `kubernetes` client and older tools speak. Port number `i` of the query owns channel `2i`
//! (data, both ways) and `2i+1` (errors, to the client); the first frame on each is the port as two
//! little-endian bytes. Every port gets one connection inside the pod when the socket opens; a port
//! that refuses gets its error text on its error channel.

use axum::extract::ws::{Message, WebSocket};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::transport::{connect_in_netns, io_text};
use super::{CHUNK, Target};

pub const CHANNEL_PROTOCOL: &str = "v4.channel.k8s.io";

/// The `ports` query parameter(s): every value, comma separated, must be a port in 1..=65535.
pub fn ports(query: Option<&str>) -> Result<Vec<u16>, String> {
    let mut out = Vec::new();
    for (k, v) in super::super::query_pairs(query) {
        if k != "ports" {
            continue;
        }
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => out.push(n),
                _ => return Err(format!("invalid port {p:?}")),
            }
        }
    }
    if out.is_empty() {
        return Err("query parameter \"port\" is required".into());
    }
    if out.len() > 127 {
        return Err("too many ports".into());
    }
    Ok(out)
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

pub async fn session(target: Target, ports: Vec<u16>, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (out, mut out_rx) = mpsc::channel::<Message>(64);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if sink.send(m).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let mut to_pod: Vec<Option<mpsc::Sender<Bytes>>> = Vec::new();
    let mut tasks = Vec::new();
    for (i, port) in ports.iter().copied().enumerate() {
        let (data_ch, err_ch) = ((2 * i) as u8, (2 * i + 1) as u8);
        let le = port.to_le_bytes();
        let _ = out.send(frame(data_ch, &le)).await;
        let _ = out.send(frame(err_ch, &le)).await;
        let (tx, mut rx) = mpsc::channel::<Bytes>(16);
        to_pod.push(Some(tx));
        let out = out.clone();
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let sock = match connect_in_netns(target.netns.clone(), port).await {
                Ok(s) => s,
                Err(e) => {
                    let msg = format!(
                        "error forwarding port {port} to pod {}/{}, uid {}: failed to connect to \
                         localhost:{port} inside the pod's network namespace: dial tcp \
                         127.0.0.1:{port}: connect: {}",
                        target.namespace,
                        target.pod,
                        target.uid,
                        io_text(&e)
                    );
                    let _ = out.send(frame(err_ch, msg.as_bytes())).await;
                    return;
                }
            };
            let (mut rd, mut wr) = sock.into_split();
            let writer = tokio::spawn(async move {
                while let Some(b) = rx.recv().await {
                    if wr.write_all(&b).await.is_err() {
                        return;
                    }
                }
                let _ = wr.shutdown().await;
                std::future::pending::<()>().await;
            });
            let mut buf = vec![0u8; CHUNK];
            while let Ok(n) = rd.read(&mut buf).await {
                if n == 0 || out.send(frame(data_ch, &buf[..n])).await.is_err() {
                    break;
                }
            }
            writer.abort();
        }));
    }
    drop(out);
    let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
    // Once every port's connection has ended, the session ends (as the kubelet's does).
    let all_done = futures::future::join_all(tasks);
    tokio::pin!(all_done);
    loop {
        let msg = tokio::select! {
            _ = &mut all_done => {
                let _ = writer.await;
                return;
            }
            msg = stream.next() => msg,
        };
        let b = match msg {
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            Some(Ok(_)) => continue,
        };
        let Some((&ch, data)) = b.split_first() else {
            continue;
        };
        let i = usize::from(ch / 2);
        if ch % 2 != 0 || data.is_empty() {
            continue;
        }
        if let Some(slot) = to_pod.get_mut(i)
            && let Some(tx) = slot.as_ref()
            && tx.send(Bytes::copy_from_slice(data)).await.is_err()
        {
            *slot = None;
        }
    }
    for t in aborts {
        t.abort();
    }
    writer.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_lists() {
        assert_eq!(ports(Some("ports=80,8080")), Ok(vec![80, 8080]));
        assert_eq!(ports(Some("ports=80&ports=81")), Ok(vec![80, 81]));
        assert!(ports(Some("ports=0")).is_err());
        assert!(ports(Some("ports=x")).is_err());
        assert!(ports(None).is_err());
    }
}
