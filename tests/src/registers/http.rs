//! A small HTTP/1.1 client: one keep-alive connection, reopened after an error.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What came back.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) x_cache: Option<String>,
    pub(super) body: Bytes,
}

/// One connection to one instance.
#[derive(Debug)]
pub(super) struct Conn {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub(super) fn new(addr: SocketAddr) -> Self {
        Self { addr, sender: None }
    }

    /// `method path` with a JSON `body`, bounded by `timeout`; `Err` on a transport error
    /// or a timeout (the connection is dropped and made again next time).
    pub(super) async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<String>,
        timeout: Duration,
    ) -> Result<Answer> {
        let sent = tokio::time::timeout(timeout, self.exchange(method, path, body)).await;
        let answer = match sent {
            Ok(answer) => answer,
            Err(_) => Err(anyhow::anyhow!("no answer within {timeout:?}")),
        };
        if answer.is_err() {
            self.sender = None;
        }
        answer
    }

    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<Answer> {
        if self.sender.as_ref().is_none_or(SendRequest::is_closed) {
            let stream = TcpStream::connect(self.addr)
                .await
                .with_context(|| format!("connect {}", self.addr))?;
            stream.set_nodelay(true)?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().context("no connection")?;
        sender.ready().await?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let x_cache = resp
            .headers()
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            x_cache,
            body,
        })
    }
}
