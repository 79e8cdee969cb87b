//! The examples a user copies, run as they are (their own `serve`) against a throwaway
//! redis-server: a miss then a hit, `304` on `If-None-Match`, and the new greeting
//! after a `PUT`.

use std::time::Duration;

use cache::testing::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::bounded;

#[allow(dead_code)]
#[path = "../../examples/axum.rs"]
mod axum_example;
#[allow(dead_code)]
#[path = "../../examples/poem.rs"]
mod poem_example;

/// One HTTP/1.1 exchange over its own connection: the status, the headers (lower
/// case), the body.
async fn send(addr: std::net::SocketAddr, request: &str) -> (u16, Vec<(String, String)>, String) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn get(extra: &str) -> String {
    format!("GET /greeting?name=Ana HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{extra}\r\n")
}

async fn the_greeting_is_cached_revalidated_and_invalidated(addr: std::net::SocketAddr) {
    // The service is up once it answers.
    let (status, headers, body) = loop {
        match TcpStream::connect(addr).await {
            Ok(_) => break send(addr, &get("")).await,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    assert_eq!((status, header(&headers, "x-cache")), (200, Some("MISS")));
    assert_eq!(body, r#"{"message":"Hello, Ana"}"#);
    let (status, headers, body) = send(addr, &get("")).await;
    // HIT-L2 until the backplane has subscribed (L1 answers only once it has).
    let source = header(&headers, "x-cache").unwrap();
    assert!(
        status == 200 && source.starts_with("HIT-L"),
        "{status} {source}"
    );
    assert_eq!(body, r#"{"message":"Hello, Ana"}"#);
    let etag = header(&headers, "etag").unwrap().to_owned();
    let (status, _, body) = send(addr, &get(&format!("if-none-match: {etag}\r\n"))).await;
    assert_eq!((status, body.as_str()), (304, ""));
    // A HEAD is the GET's headers from the same entry, with no body.
    let head = "HEAD /greeting?name=Ana HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    let (status, headers, body) = send(addr, head).await;
    assert!(header(&headers, "x-cache").unwrap().starts_with("HIT-L"));
    let len = r#"{"message":"Hello, Ana"}"#.len().to_string();
    assert_eq!(
        (status, header(&headers, "content-length"), body.as_str()),
        (200, Some(len.as_str()), "")
    );

    let put = r#"{"greeting":"Olá"}"#;
    let req = format!(
        "PUT /greeting HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{put}",
        put.len()
    );
    assert_eq!(send(addr, &req).await.0, 204);
    let (status, headers, body) = send(addr, &get(&format!("if-none-match: {etag}\r\n"))).await;
    assert_eq!((status, header(&headers, "x-cache")), (200, Some("MISS")));
    assert_eq!(body, r#"{"message":"Olá, Ana"}"#);
}

#[tokio::test]
async fn the_axum_example_caches_the_greeting_and_invalidates_it() {
    bounded(async {
        let redis = RedisServer::spawn();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(axum_example::serve(listener, Some(redis.url())));
        the_greeting_is_cached_revalidated_and_invalidated(addr).await;
        server.abort();
    })
    .await;
}

#[tokio::test]
async fn the_poem_example_caches_the_greeting_and_invalidates_it() {
    bounded(async {
        let redis = RedisServer::spawn();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(poem_example::serve(listener, Some(redis.url())));
        the_greeting_is_cached_revalidated_and_invalidated(addr).await;
        server.abort();
    })
    .await;
}

#[allow(dead_code)]
#[path = "../../examples/feature_store.rs"]
mod feature_store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feature_store_reads_a_hundred_users_in_one_call_from_what_the_job_stored() {
    bounded(async {
        use cache::Source;
        use feature_store::{Store, compute};

        // Arrange: the job (one instance) stores users 1-200; the API is another.
        let redis = RedisServer::spawn();
        let (job, api) = (
            Store::open(Some(&redis.url())).unwrap(),
            Store::open(Some(&redis.url())).unwrap(),
        );
        assert_eq!(job.run_job(1..=200).await.unwrap(), 200);

        // Act: the API reads users 101-200 twice, then 151-250.
        let users: Vec<i64> = (101..=200).collect();
        let first = api.features(&users).await.unwrap();
        let again = api.features(&users).await.unwrap();
        let beyond: Vec<i64> = (151..=250).collect();
        let mixed = api.features(&beyond).await.unwrap();

        // Assert: every user's features as computed, in the order asked: first from
        // Redis, then from L1; users the job did not reach are computed on the spot.
        for (read, asked) in [(&first, &users), (&again, &users), (&mixed, &beyond)] {
            let got: Vec<_> = read.iter().map(|(u, f)| (*u, f.value.clone())).collect();
            let want: Vec<_> = asked.iter().map(|&u| (u, compute(u))).collect();
            assert_eq!(got, want);
        }
        assert!(first.iter().all(|(_, f)| f.source == Source::HitL2));
        assert!(again.iter().all(|(_, f)| f.source == Source::HitL1));
        let sources: Vec<Source> = mixed.iter().map(|(_, f)| f.source).collect();
        assert_eq!(sources[..50], [Source::HitL1; 50]);
        assert_eq!(sources[50..], [Source::Miss; 50]);
    })
    .await;
}
