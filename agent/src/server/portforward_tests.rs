//! The session driven with real SPDY bytes against real TCP servers in this process's own network
//! namespace (`setns` into it needs root, like the agent).

use super::*;
use crate::server::spdy::Encoder;

fn syn(stream_id: u32, kind: &str, port: u16, request: &str) -> Frame {
    Frame::SynStream {
        stream_id,
        associated_to: 0,
        priority: 0,
        slot: 0,
        flags: 0,
        headers: vec![
            ("streamtype".into(), kind.into()),
            ("port".into(), port.to_string()),
            ("requestid".into(), request.into()),
        ],
    }
}

fn data(stream_id: u32, flags: u8, b: &[u8]) -> Frame {
    Frame::Data {
        stream_id,
        flags,
        data: Bytes::copy_from_slice(b),
    }
}

struct Client {
    enc: Encoder,
    input: mpsc::Sender<Bytes>,
    out: mpsc::Receiver<Frame>,
}

impl Client {
    async fn send(&mut self, f: Frame) {
        let b = self.enc.encode(&f);
        // Split every frame in two writes: the session must reassemble.
        let (a, c) = b.split_at(b.len() / 2);
        for part in [a, c] {
            let _ = self.input.send(Bytes::copy_from_slice(part)).await;
        }
    }

    async fn next(&mut self) -> Frame {
        match tokio::time::timeout(Duration::from_secs(10), self.out.recv()).await {
            Ok(Some(f)) => f,
            other => panic!("no frame from the session: {other:?}"),
        }
    }

    /// Frames until both streams got FIN: (bytes on data, bytes on error).
    async fn collect(&mut self, data_id: u32, error_id: u32) -> (Vec<u8>, Vec<u8>) {
        let (mut d, mut e) = (Vec::new(), Vec::new());
        let (mut d_fin, mut e_fin) = (false, false);
        while !(d_fin && e_fin) {
            if let Frame::Data {
                stream_id,
                flags,
                data,
            } = self.next().await
            {
                let fin = flags & FLAG_FIN != 0;
                if stream_id == data_id {
                    d.extend_from_slice(&data);
                    d_fin |= fin;
                } else if stream_id == error_id {
                    e.extend_from_slice(&data);
                    e_fin |= fin;
                }
            }
        }
        (d, e)
    }
}

fn start() -> Client {
    let target = Target {
        namespace: "default".into(),
        pod: "p".into(),
        uid: "u".into(),
        netns: "/proc/self/ns/net".into(),
    };
    let (in_tx, in_rx) = mpsc::channel(16);
    let (out_tx, out_rx) = mpsc::channel(64);
    tokio::spawn(run(target, in_rx, out_tx));
    Client {
        enc: Encoder::new(),
        input: in_tx,
        out: out_rx,
    }
}

/// A server that answers `echo:<all it read>` once its client half-closes.
async fn echo_server() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                let _ = s.read_to_end(&mut got).await;
                let mut reply = b"echo:".to_vec();
                reply.extend(got);
                let _ = s.write_all(&reply).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn forwards_a_pair_and_reports_errors() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root for setns");
        return;
    }
    let port = echo_server().await;
    let mut c = start();
    c.send(Frame::Ping { id: 1 }).await;
    assert_eq!(c.next().await, Frame::Ping { id: 1 });

    // A pair: replies to both, bytes both ways, the client's FIN reaches the server as EOF.
    c.send(syn(1, "error", port, "0")).await;
    c.send(data(1, FLAG_FIN, b"")).await;
    c.send(syn(3, "data", port, "0")).await;
    for id in [1, 3] {
        assert!(matches!(c.next().await, Frame::SynReply { stream_id, .. } if stream_id == id));
    }
    c.send(data(3, 0, b"hello ")).await;
    c.send(data(3, FLAG_FIN, b"world")).await;
    let (d, e) = c.collect(3, 1).await;
    assert_eq!(d, b"echo:hello world");
    assert!(e.is_empty(), "{}", String::from_utf8_lossy(&e));
    c.send(Frame::RstStream {
        stream_id: 3,
        status: spdy::RST_CANCEL,
    })
    .await;
    c.send(Frame::RstStream {
        stream_id: 1,
        status: spdy::RST_CANCEL,
    })
    .await;

    // A second pair on the same connection; data sent before the error stream exists is kept.
    c.send(syn(7, "data", port, "1")).await;
    assert!(matches!(
        c.next().await,
        Frame::SynReply { stream_id: 7, .. }
    ));
    c.send(data(7, FLAG_FIN, b"early")).await;
    c.send(syn(5, "error", port, "1")).await;
    assert!(matches!(
        c.next().await,
        Frame::SynReply { stream_id: 5, .. }
    ));
    let (d, _) = c.collect(7, 5).await;
    assert_eq!(d, b"echo:early");

    // Nothing listens: the error stream says why, both streams end.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        l.local_addr().map(|a| a.port()).unwrap_or(0)
    };
    c.send(syn(9, "error", closed, "2")).await;
    c.send(syn(11, "data", closed, "2")).await;
    for id in [9, 11] {
        assert!(matches!(c.next().await, Frame::SynReply { stream_id, .. } if stream_id == id));
    }
    let (d, e) = c.collect(11, 9).await;
    assert!(d.is_empty());
    let e = String::from_utf8_lossy(&e);
    assert!(
        e.contains(&format!(
            "error forwarding port {closed} to pod default/p, uid u"
        )) && e.contains("connection refused"),
        "{e}"
    );

    // Bad requests: an unknown stream type is reset; a bad port is reported on the error stream.
    c.send(syn(13, "stdin", port, "3")).await;
    assert!(matches!(
        c.next().await,
        Frame::RstStream { stream_id: 13, .. }
    ));
    c.send(syn(15, "error", 0, "4")).await;
    c.send(syn(17, "data", 0, "4")).await;
    for _ in 0..2 {
        assert!(matches!(c.next().await, Frame::SynReply { .. }));
    }
    let (_, e) = c.collect(17, 15).await;
    assert!(String::from_utf8_lossy(&e).contains("invalid port"));

    // Garbage ends the connection with GOAWAY.
    let _ = c
        .input
        .send(Bytes::from_static(&[0x80, 0x09, 0, 1, 0, 0, 0, 0]))
        .await;
    assert!(matches!(c.next().await, Frame::GoAway { .. }));
    assert!(
        tokio::time::timeout(Duration::from_secs(5), c.out.recv())
            .await
            .is_ok_and(|f| f.is_none()),
        "the session ends"
    );
}
