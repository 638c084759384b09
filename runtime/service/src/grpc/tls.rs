//! The service's side of TLS: tonic's acceptor for every connection, and a
//! plain answer for a client that speaks plaintext to a TLS port.
//!
//! A plaintext HTTP/2 client would otherwise see only a closed connection.
//! Each accepted socket is peeked first: one that opens with the HTTP/2
//! preface (`PRI * HTTP/2.0`) instead of a TLS record is answered, on that
//! connection, with a gRPC `UNAVAILABLE` that says to dial `https://`.

use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use http_body_util::Empty;
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::ServerTls;

/// How long a fresh connection may stay silent before its first byte.
const FIRST_BYTE: Duration = Duration::from_secs(10);

/// The acceptor's configuration, with mutual TLS when a client CA is set.
pub(super) fn config(tls: &ServerTls) -> ServerTlsConfig {
    let mut c = ServerTlsConfig::new()
        .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
        .timeout(FIRST_BYTE);
    if let Some(ca) = &tls.client_ca_pem {
        c = c.client_ca_root(Certificate::from_pem(ca));
    }
    c
}

/// Accepted sockets, with no Nagle delay. With `tls`, a socket that opens in
/// plaintext is answered here and never reaches the TLS acceptor.
pub(super) fn incoming(
    listener: TcpListener,
    tls: bool,
) -> impl Stream<Item = std::io::Result<TcpStream>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<TcpStream>>(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = tx.closed() => return,
            };
            let s = match accepted.and_then(|(s, _)| s.set_nodelay(true).map(|()| s)) {
                Ok(s) => s,
                Err(e) => {
                    // A refused accept (out of descriptors, say) must not end
                    // the server; tonic logs and goes on.
                    if tx.send(Err(e)).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            if !tls {
                if tx.send(Ok(s)).await.is_err() {
                    return;
                }
                continue;
            }
            let tx = tx.clone();
            tokio::spawn(async move {
                if opens_in_plaintext(&s).await {
                    refuse_plaintext(s).await;
                } else {
                    let _ = tx.send(Ok(s)).await;
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Whether the first bytes are HTTP/2's preface rather than a TLS record
/// (which opens with 0x16). A socket silent for [`FIRST_BYTE`] goes on to
/// the acceptor, whose own timeout ends it.
async fn opens_in_plaintext(s: &TcpStream) -> bool {
    let mut first = [0u8; 4];
    match tokio::time::timeout(FIRST_BYTE, s.peek(&mut first)).await {
        Ok(Ok(n)) if n > 0 => b"PRI "[..n] == first[..n],
        _ => false,
    }
}

/// Serves one plaintext HTTP/2 connection, answering every call with the
/// reason it cannot be served.
async fn refuse_plaintext(s: TcpStream) {
    let service = hyper::service::service_fn(|_req| async {
        Ok::<_, std::convert::Infallible>(
            tonic::Status::unavailable(
                "this service speaks TLS only: dial it with https:// instead of http://",
            )
            .into_http::<Empty<Bytes>>(),
        )
    });
    let conn = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .serve_connection(hyper_util::rt::TokioIo::new(s), service);
    let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
}
