use super::*;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

fn h(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn dictionary_is_the_spdy3_one() {
    let d = dictionary();
    assert_eq!(d.len(), 1423);
    // The dictionary id zlib writers put in FDICT headers for it.
    assert_eq!(adler32(d), 0xe3c6_a7c2);
    assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
}

#[test]
fn every_frame_type_round_trips() {
    let frames = vec![
        Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 2,
            slot: 0,
            flags: FLAG_FIN,
            headers: h(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]),
        },
        Frame::SynStream {
            stream_id: 3,
            associated_to: 1,
            priority: 0,
            slot: 7,
            flags: 0,
            headers: h(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]),
        },
        Frame::SynReply {
            stream_id: 1,
            flags: 0,
            headers: Vec::new(),
        },
        Frame::SynReply {
            stream_id: 3,
            flags: FLAG_FIN,
            headers: h(&[("x", "a\0b")]),
        },
        Frame::Headers {
            stream_id: 3,
            flags: 0,
            headers: h(&[("big", &"v".repeat(70_000))]),
        },
        Frame::RstStream {
            stream_id: 5,
            status: RST_CANCEL,
        },
        Frame::Settings {
            flags: 1,
            entries: vec![(1, 4, 100), (0, 7, 65536)],
        },
        Frame::Ping { id: 2 },
        Frame::GoAway {
            last_good_stream_id: 9,
            status: 0,
        },
        Frame::WindowUpdate {
            stream_id: 3,
            delta: 1000,
        },
        Frame::Data {
            stream_id: 3,
            flags: 0,
            data: Bytes::from_static(b"GET / HTTP/1.0\r\n\r\n"),
        },
        Frame::Data {
            stream_id: 1,
            flags: FLAG_FIN,
            data: Bytes::new(),
        },
    ];
    let mut enc = Encoder::new();
    let mut wire = Vec::new();
    for f in &frames {
        wire.extend(enc.encode(f));
    }
    // Feed the bytes in awkward pieces: frames must come out whole and in order.
    let mut dec = Decoder::new();
    let mut got = Vec::new();
    for piece in wire.chunks(7) {
        dec.push(piece);
        while let Some(f) = dec.next_frame().unwrap_or_else(|e| panic!("decode: {e}")) {
            got.push(f);
        }
    }
    assert_eq!(got, frames);
}

#[test]
fn first_control_frame_bytes() {
    let f = Encoder::new().encode(&Frame::Ping { id: 1 });
    assert_eq!(
        f,
        vec![0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 1]
    );
}

/// Header blocks as Go's zlib writer (spdystream) makes them: level 9, the SPDY dictionary, one
/// stream across frames, sync flushes. Made with Python's zlib (`compressobj(zdict=…)`).
#[test]
fn inflates_dictionary_compressed_blocks_across_frames() {
    let first = unhex(
        "78f9e3c6a7c202253a48f95b044aab4c16064092b308125b99a054cc68004e872545a989b9d0a286\
         3515141100000000ffff",
    );
    let second = unhex("224b2ba8944a04000000ffff");
    let mut inf = Inflater::new();
    let a = inf.inflate(&first).unwrap_or_else(|e| panic!("first: {e}"));
    assert_eq!(
        parse_header_block(&a),
        Ok(h(&[
            ("port", "80"),
            ("requestid", "0"),
            ("streamtype", "error")
        ]))
    );
    // The second block refers back into the first (and into the dictionary).
    let b = inf
        .inflate(&second)
        .unwrap_or_else(|e| panic!("second: {e}"));
    let hb = parse_header_block(&b).unwrap_or_default();
    assert_eq!(header(&hb, "streamType"), Some("data"));
    assert_eq!(header(&hb, "port"), Some("80"));
}

#[test]
fn inflates_a_block_split_anywhere() {
    let first = unhex(
        "78f9e3c6a7c202253a48f95b044aab4c16064092b308125b99a054cc68004e872545a989b9d0a286\
         3515141100000000ffff",
    );
    for cut in 0..first.len() {
        let mut inf = Inflater::new();
        let mut out = inf.inflate(&first[..cut]).unwrap_or_default();
        out.extend(inf.inflate(&first[cut..]).unwrap_or_default());
        assert_eq!(
            header(&parse_header_block(&out).unwrap_or_default(), "requestid"),
            Some("0"),
            "cut at {cut}"
        );
    }
}

#[test]
fn bad_input_is_an_error() {
    // Wrong version.
    let mut d = Decoder::new();
    d.push(&[0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1]);
    assert_eq!(d.next_frame(), Err(SpdyError::Version(2)));
    // A control frame larger than allowed.
    let mut d = Decoder::new();
    d.push(&[0x80, 0x03, 0x00, 0x01, 0, 0xff, 0xff, 0xff]);
    assert!(matches!(d.next_frame(), Err(SpdyError::TooLarge(_))));
    // A truncated SYN_STREAM body.
    let mut d = Decoder::new();
    d.push(&[0x80, 0x03, 0x00, 0x01, 0, 0, 0, 2, 0, 0]);
    assert!(matches!(d.next_frame(), Err(SpdyError::Malformed { .. })));
    // Garbage instead of a zlib stream.
    let mut d = Decoder::new();
    d.push(&[
        0x80, 0x03, 0x00, 0x02, 0, 0, 0, 8, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef,
    ]);
    assert!(matches!(d.next_frame(), Err(SpdyError::Header(_))));
    // A zlib stream with someone else's dictionary.
    let mut d = Decoder::new();
    d.push(&[
        0x80, 0x03, 0x00, 0x02, 0, 0, 0, 10, 0, 0, 0, 1, 0x78, 0xbb, 1, 2, 3, 4,
    ]);
    assert!(matches!(d.next_frame(), Err(SpdyError::Header(_))));
    // A header block claiming more pairs than it has.
    assert!(parse_header_block(&[0, 0, 0, 5, 0, 0, 0, 1, b'a']).is_err());
    // Unknown control types are skipped; an incomplete frame waits for more bytes.
    let mut d = Decoder::new();
    d.push(&[0x80, 0x03, 0x00, 0x0f, 0, 0, 0, 1, 9]);
    d.push(&Encoder::new().encode(&Frame::Ping { id: 3 })[..5]);
    assert_eq!(d.next_frame(), Ok(None));
}
