//! A minimal HTTP server for Prometheus, Parca and Pyroscope: `GET /metrics`, `GET
//! /services.json` (HTTP service discovery), `GET /debug/pprof/profile` (CPU profiles), a
//! landing page; TLS and basic authentication when a web config asks for them.
use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
};

use super::{
    pprof_endpoint::{self, PprofEndpoint},
    web_config::WebConfig,
};

/// Produces a response body on each request.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// What the server serves.
#[derive(Clone)]
pub struct Routes {
    pub metrics: Render,
    pub services: Render,
    pub pprof: Arc<PprofEndpoint>,
}

/// A client gets this long to finish its TLS handshake (a stalled one holds no task forever).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} (is another exporter using the port? choose one with --listen)")]
pub struct BindError {
    addr: SocketAddr,
    source: std::io::Error,
}

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr).await.map_err(|source| BindError { addr, source })
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, routes: Routes, web: WebConfig) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let routes = routes.clone();
        let web = web.clone();
        tokio::spawn(async move {
            match web.tls.clone() {
                Some(acceptor) => {
                    // A client that fails the handshake (plain HTTP, wrong CA) is turned away.
                    if let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        connection(tls, routes, web).await;
                    }
                }
                None => connection(stream, routes, web).await,
            }
        });
    }
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(stream: S, routes: Routes, web: WebConfig) {
    let service = service_fn(move |req| respond(req, routes.clone(), web.clone()));
    // A client that disconnects mid-request is its own problem.
    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
}

async fn respond(req: Request<Incoming>, routes: Routes, web: WebConfig) -> Result<Response<Full<Bytes>>, Infallible> {
    if let Some(auth) = web.auth.clone() {
        let authorization = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        // bcrypt takes tens of milliseconds: off the async threads.
        let allowed = tokio::task::spawn_blocking(move || auth.allows(authorization.as_deref())).await.unwrap_or(false);
        if !allowed {
            let mut response = text(StatusCode::UNAUTHORIZED, "text/plain; charset=utf-8", "unauthorized\n".into());
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic realm=\"zeek-probe\""));
            return Ok(with_headers(response, &web));
        }
    }
    let render = |r: Render| async move { tokio::task::spawn_blocking(move || r()).await.unwrap_or_default() };
    let response = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => text(StatusCode::OK, super::metrics::CONTENT_TYPE, render(routes.metrics).await),
        (&Method::GET, "/services.json") => text(StatusCode::OK, "application/json", render(routes.services).await),
        (&Method::GET, path) if path.starts_with(pprof_endpoint::PREFIX) => {
            let reply = routes.pprof.respond(&path[pprof_endpoint::PREFIX.len()..], req.uri().query()).await;
            bytes(reply.status, reply.content_type, reply.body)
        }
        (&Method::GET, "/") => text(
            StatusCode::OK,
            "text/html; charset=utf-8",
            "<html><head><title>zeek-probe</title></head><body><h1>zeek-probe</h1><p><a href=\"/metrics\">Metrics</a> · <a href=\"/services.json\">Service discovery</a> · <a href=\"/debug/pprof/profile?seconds=10\">CPU profile (10 s)</a></p></body></html>\n".to_owned(),
        ),
        _ => text(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "not found\n".to_owned()),
    };
    Ok(with_headers(response, &web))
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    bytes(status, content_type, Bytes::from(body))
}

fn bytes(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    response
}

fn with_headers(mut response: Response<Full<Bytes>>, web: &WebConfig) -> Response<Full<Bytes>> {
    for (name, value) in &web.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}
