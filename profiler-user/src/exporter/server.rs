//! A minimal HTTP server for Prometheus scrapes: `GET /metrics`, plus a landing page.
use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Produces the current exposition on each scrape.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

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
pub async fn serve(listener: TcpListener, render: Render) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let render = render.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| respond(req, render.clone()));
            // A client that disconnects mid-request is its own problem.
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn respond(req: Request<Incoming>, render: Render) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            let text = tokio::task::spawn_blocking(move || render()).await.unwrap_or_default();
            (StatusCode::OK, super::metrics::CONTENT_TYPE, text)
        }
        (&Method::GET, "/") => (
            StatusCode::OK,
            "text/html; charset=utf-8",
            "<html><head><title>zeek-probe</title></head><body><h1>zeek-probe</h1><p><a href=\"/metrics\">Metrics</a></p></body></html>\n".to_owned(),
        ),
        _ => (StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "not found\n".to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    Ok(response)
}
