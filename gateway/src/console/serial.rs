//! The serial console in the browser: `GET /console/api/instances/{id}/serial?csrf=…`, a
//! WebSocket to the instance's serial port ([`backend::serial_console`]).
//!
//! 1. Everything is checked before the upgrade, and a refusal is an ordinary answer with the
//!    console's `{"code", "message"}`:
//!    - the request is a WebSocket upgrade;
//!    - it comes from the console's own origin: browsers send `Origin` on every WebSocket,
//!      and no CORS rule guards one, so it must be present and match;
//!    - the session cookie, and its CSRF token in the query (a page cannot set headers on a
//!      WebSocket);
//!    - the account's request bucket, charged as one mutating call;
//!    - the domain's checks: access enabled for the account, the instance the caller's own and
//!      running (another account's is "does not exist", as in the API).
//! 2. After the upgrade, bytes from the guest go to the page in binary messages and the page's
//!    messages (keys) go to the guest. The socket closes with a reason the page shows when the
//!    session on the host ends (the guest stopped or moved, or another session took over),
//!    when the console session ends (sign-out, expiry, the key deleted: checked every
//!    [`RECHECK`]), or when the page goes.

use std::sync::Arc;
use std::time::Duration;

use backend::serial_console::SerialSession;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{caller, problem, same_origin, token, ConsoleResponse};
use crate::server::AppState;

/// How often an open console checks that its session still holds.
const RECHECK: Duration = Duration::from_secs(2);
/// A ping this often keeps proxies from closing a quiet console.
const PING: Duration = Duration::from_secs(30);
/// The largest message a page may send (keys, or a paste).
const MAX_MESSAGE: usize = 64 * 1024;

/// Whether the request asks for a WebSocket, and its key.
fn websocket_key(headers: &HeaderMap) -> Option<&HeaderValue> {
    let has = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|part| part.trim().eq_ignore_ascii_case(token)))
    };
    let version = headers.get(header::SEC_WEBSOCKET_VERSION).and_then(|v| v.to_str().ok());
    (has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket") && version == Some("13"))
        .then(|| headers.get(header::SEC_WEBSOCKET_KEY))
        .flatten()
}

/// The CSRF token the page put in the query.
fn query_csrf(query: Option<&str>) -> String {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "csrf")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

/// Answers the upgrade request for instance `id`'s serial console.
pub async fn open<B>(state: &Arc<AppState>, mut request: Request<B>, id: &str) -> ConsoleResponse {
    let headers = request.headers();
    let Some(key) = websocket_key(headers).cloned() else {
        return problem(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "The serial console is a WebSocket: open it from the console's instance page.",
        );
    };
    if headers.get(header::ORIGIN).is_none() || !same_origin(headers) {
        return super::cross_origin();
    }
    let cookie = token(headers).unwrap_or_default().to_owned();
    let Some((session, principal)) = caller(state, &cookie) else {
        return super::signed_out();
    };
    if !session.csrf_matches(&query_csrf(request.uri().query())) {
        return super::stale_csrf();
    }
    if !state.account_allowed(&principal.account_id, "OpenSerialConsole") {
        return super::ec2_problem(&crate::server::throttled());
    }
    let backend = Arc::clone(&state.backend);
    let (account, instance) = (principal.account_id.clone(), id.to_owned());
    // The opening is a call to the host (bounded by its bridge): off the executor.
    let opened = tokio::task::spawn_blocking(move || backend.open_serial_console(&account, &instance)).await;
    let serial = match opened {
        Ok(Ok(serial)) => serial,
        Ok(Err(error)) => return super::ec2_problem(&crate::errors::to_ec2(error)),
        Err(_) => {
            return problem(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "The console could not be opened.")
        }
    };
    tracing::info!(account = %principal.account_id, instance = %id, "serial console opened");
    let upgrade = hyper::upgrade::on(&mut request);
    let watcher = Arc::clone(state);
    let still_allowed = move || caller(&watcher, &cookie).is_some();
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let config =
                    WebSocketConfig::default().max_message_size(Some(MAX_MESSAGE)).max_frame_size(Some(MAX_MESSAGE));
                let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
                relay(socket, serial, still_allowed).await;
            }
            Err(error) => tracing::debug!(%error, "serial console upgrade failed"),
        }
    });
    let mut response = Response::new(Empty::<Bytes>::new().boxed());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

fn close(code: CloseCode, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}

/// Moves bytes between the socket and the session until either ends.
async fn relay<S>(mut socket: WebSocketStream<S>, mut serial: SerialSession, still_allowed: impl Fn() -> bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut recheck = tokio::time::interval(RECHECK);
    let mut ping = tokio::time::interval(PING);
    recheck.tick().await;
    ping.tick().await;
    let goodbye = loop {
        tokio::select! {
            from_guest = serial.from_guest.recv() => match from_guest {
                Some(bytes) => {
                    if socket.send(Message::Binary(bytes.into())).await.is_err() {
                        return;
                    }
                }
                None => break close(
                    CloseCode::Normal,
                    "The serial console session ended: the instance stopped or moved, or another session took over.",
                ),
            },
            from_page = socket.next() => match from_page {
                Some(Ok(Message::Binary(keys))) => {
                    if serial.to_guest.send(keys.to_vec()).await.is_err() {
                        break close(CloseCode::Normal, "The serial console session ended.");
                    }
                }
                Some(Ok(Message::Text(keys))) => {
                    if serial.to_guest.send(keys.as_bytes().to_vec()).await.is_err() {
                        break close(CloseCode::Normal, "The serial console session ended.");
                    }
                }
                Some(Ok(Message::Close(_))) | None => return,
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    tracing::debug!(%error, "serial console socket failed");
                    return;
                }
            },
            _ = recheck.tick() => if !still_allowed() {
                break close(CloseCode::Policy, "Your console session has ended. Sign in again.");
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Bytes::new())).await.is_err() {
                    return;
                }
            }
        }
    };
    let _ = socket.send(goodbye).await;
    let _ = socket.close(None).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_websocket_upgrade_is_taken() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        headers.insert(header::SEC_WEBSOCKET_KEY, HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(websocket_key(&headers).is_some());
        // RFC 6455's example key and answer.
        assert_eq!(derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        assert!(websocket_key(&headers).is_none());
        headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(websocket_key(&headers).is_none());
    }

    #[test]
    fn the_csrf_token_comes_from_the_query() {
        assert_eq!(query_csrf(Some("csrf=abc%2Bd&x=1")), "abc+d");
        assert_eq!(query_csrf(Some("x=1")), "");
        assert_eq!(query_csrf(None), "");
    }
}
