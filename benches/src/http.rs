//! A minimal HTTP/1.1 client: one keep-alive connection per worker, reopened after a
//! transport error. Each load-generator worker owns one, so the concurrency of a run is
//! exactly its number of connections.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Bound on one request, connection set-up included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A response, read in full.
#[derive(Clone, Debug)]
pub struct Response {
    /// The status code.
    pub status: StatusCode,
    /// The `X-Cache` header, when present.
    pub x_cache: Option<String>,
    /// The body.
    pub body: Bytes,
}

/// One keep-alive connection to `addr`.
#[derive(Debug)]
pub struct HttpConn {
    addr: SocketAddr,
    host: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl HttpConn {
    /// A client of `addr`; it connects on the first request.
    #[must_use]
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            host: addr.to_string(),
            sender: None,
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connect {}", self.addr))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Sends one request and reads the whole response. A transport error drops the
    /// connection; the next request opens a new one.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Response> {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.send_inner(method, path, body)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                Err(anyhow!("{path}: no response within {REQUEST_TIMEOUT:?}"))
            }
        }
    }

    async fn send_inner(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Response> {
        let mut sender = match self.sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await?,
        };
        sender.ready().await?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.host);
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(Full::new(body.unwrap_or_default()))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let x_cache = resp
            .headers()
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.into_body().collect().await?.to_bytes();
        self.sender = Some(sender);
        Ok(Response {
            status,
            x_cache,
            body,
        })
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Result<Response> {
        self.send(Method::GET, path, None).await
    }
}

/// Waits until `GET path` answers 2xx, or fails after `timeout`.
pub async fn wait_ready(addr: SocketAddr, path: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut conn = HttpConn::new(addr);
        let last = match conn.get(path).await {
            Ok(r) if r.status.is_success() => return Ok(()),
            Ok(r) => format!("status {}", r.status),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            anyhow::bail!("{addr}{path} not ready after {timeout:?}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
