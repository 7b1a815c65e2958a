//! HTTP/2 abuse (C19, part 4): a reset flood on one connection ends that connection with
//! GOAWAY while the gateway keeps serving everyone else.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::{self, Store};

#[tokio::test]
async fn c19_rapid_reset_flood_gets_goaway_and_the_gateway_stays_responsive() {
    let (_upstream, gateway) = support::setup(Store::Memory).await;
    // A raw client: the flood is written without waiting for answers, then everything the
    // gateway sent is read until it closes, so its GOAWAY is seen even though the gateway (on
    // its own threads) closes while the flood is still being written.
    let mut tcp = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    let authority = gateway.addr.to_string();
    let mut flood = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    flood.extend(frame(SETTINGS, 0, 0, &[]));
    let mut headers = vec![0x82, 0x86, 0x04, 9];
    headers.extend(b"/public/a");
    headers.extend([0x01, u8::try_from(authority.len()).unwrap()]);
    headers.extend(authority.as_bytes());
    for stream in (1..20_000u32).step_by(2) {
        flood.extend(frame(HEADERS, END_STREAM | END_HEADERS, stream, &headers));
        flood.extend(frame(RST_STREAM, 0, stream, &CANCEL.to_be_bytes()));
    }
    let (mut read, mut write) = tcp.split();
    let writing = async {
        // The gateway may close before the whole flood is written: a failed write ends it.
        let _ = write.write_all(&flood).await;
    };
    let mut received = Vec::new();
    let reading = tokio::time::timeout(Duration::from_secs(10), read.read_to_end(&mut received));
    let ((), read) = tokio::join!(writing, reading);
    assert!(read.is_ok(), "the flooding connection was not closed");
    let goaway = frames(&received)
        .into_iter()
        .find(|(kind, _)| *kind == GOAWAY)
        .expect("the gateway sent GOAWAY before closing");
    assert_eq!(
        u32::from_be_bytes(goaway.1[4..8].try_into().unwrap()),
        ENHANCE_YOUR_CALM,
        "GOAWAY's error code"
    );
    assert_eq!(gateway.client().get("/public/a").await.status, 200);
}

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const CANCEL: u32 = 0x8;
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// One HTTP/2 frame (RFC 9113 §4.1).
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(payload.len()).unwrap().to_be_bytes()[1..].to_vec();
    out.extend([kind, flags]);
    out.extend(stream.to_be_bytes());
    out.extend(payload);
    out
}

/// The (type, payload) of each whole frame in `bytes`.
fn frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while bytes.len() >= 9 {
        let len = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        if bytes.len() < 9 + len {
            break;
        }
        out.push((bytes[3], bytes[9..9 + len].to_vec()));
        bytes = &bytes[9 + len..];
    }
    out
}
