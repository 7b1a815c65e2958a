//! HTTP/2 abuse (C19, part 4): a reset flood on one connection ends that connection with
//! GOAWAY while the gateway keeps serving everyone else.

use std::time::Duration;

use crate::support::{self, Store};

#[tokio::test]
async fn c19_rapid_reset_flood_gets_goaway_and_the_gateway_stays_responsive() {
    let (_upstream, gateway) = support::setup(Store::Memory).await;
    let tcp = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    let (mut client, connection) = h2::client::handshake(tcp)
        .await
        .expect("h2c prior knowledge");
    let driver = tokio::spawn(connection);
    let uri = format!("http://{}/public/a", gateway.addr);
    let mut sent = 0;
    for _ in 0..10_000 {
        let ready = tokio::time::timeout(Duration::from_secs(5), client.clone().ready()).await;
        let Ok(Ok(mut ready)) = ready else { break };
        let request = http::Request::get(&uri).body(()).unwrap();
        match ready.send_request(request, true) {
            // Dropping the response future resets the stream (RST_STREAM CANCEL).
            Ok((response, _)) => drop(response),
            Err(_) => break,
        }
        sent += 1;
        client = ready;
    }
    let ended = tokio::time::timeout(Duration::from_secs(10), driver).await;
    match ended {
        Ok(Ok(Err(err))) => assert!(
            err.is_go_away() && err.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM),
            "after {sent} resets the connection ended with {err:?}, not GOAWAY(ENHANCE_YOUR_CALM)"
        ),
        other => panic!(
            "the flooding connection was not closed with GOAWAY after {sent} resets: {other:?}"
        ),
    }
    assert_eq!(gateway.client().get("/public/a").await.status, 200);
}
