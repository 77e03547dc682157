//! Server-sent events: a live migration's progress, pushed to the page as it changes.
//!
//! The migration's monitor writes the host's job statistics to the migration's record a few
//! times a second; this stream reads the record every [`TICK`] and sends it whenever it
//! changed, with a comment line every [`KEEPALIVE`] so that proxies keep the stream open, and
//! ends once the migration has (`event: end`), when the page goes away, when a reader stops
//! reading for [`SEND_TIMEOUT`], or when the session that opened it ends (checked every
//! [`RECHECK`]).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use backend::Backend;
use bytes::Bytes;
use ec2api::xml::render_response;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use serde_json::json;
use storage::MigrationRecord;
use tokio::sync::mpsc;

use super::{problem, ConsoleResponse};

const TICK: Duration = Duration::from_millis(200);
const KEEPALIVE: Duration = Duration::from_secs(15);
/// How long the stream waits for a finished migration's ping trace.
const TRACE_WAIT: Duration = Duration::from_secs(5);
/// How often the stream checks that its session still holds.
const RECHECK: Duration = Duration::from_secs(2);
/// How long a frame may wait for a reader that stopped reading before the stream ends.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// A body whose frames come from a channel; it ends when the sender is dropped.
struct Channel(mpsc::Receiver<Bytes>);

impl Body for Channel {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// The migration as the API describes it: DescribeInstanceMigrations' XML for this one, so
/// that the page reads one shape from the stream and from the API.
pub fn view(m: &MigrationRecord) -> String {
    let one = ec2api::DescribeInstanceMigrationsOutput {
        migrations: Some(vec![crate::handlers::shapes::migration(m)]),
        next_token: None,
    };
    String::from_utf8_lossy(&render_response("DescribeInstanceMigrations", &one, "")).into_owned()
}

/// One event; each line of `data` on a `data:` line of its own (the browser joins them again).
fn frame(event: &str, data: &str) -> Bytes {
    let mut out = format!("event: {event}\n");
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.trim_end_matches('\r'));
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// Migration `id`'s ping trace as the page draws it: `[sent µs, round trip µs or null]` per
/// probe, and when the migration call returned.
pub fn trace(backend: &Backend, id: &str) -> ConsoleResponse {
    match backend.migration_trace(id) {
        Ok(Some(trace)) => {
            let body = json!({
                "intervalMs": trace.interval_ms,
                "probes": trace.probes,
                "switchOverMicros": trace.switch_over_us,
            });
            super::full(StatusCode::OK, "application/json", body.to_string())
        }
        Ok(None) => problem(StatusCode::NOT_FOUND, "NotFound", "This migration has no ping trace."),
        Err(error) => {
            tracing::error!(%error, "reading a ping trace");
            problem(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "The ping trace could not be read.")
        }
    }
}

/// The stream of migration `id`'s progress, for as long as `allowed` says the caller may see it.
pub fn migration(backend: Arc<Backend>, id: String, allowed: impl Fn() -> bool + Send + 'static) -> ConsoleResponse {
    match backend.migration(&id) {
        Ok(Some(_)) => {}
        Ok(None) => {
            return problem(
                StatusCode::NOT_FOUND,
                "InvalidMigrationID.NotFound",
                &format!("The migration ID '{}' does not exist", ec2api::error::echo(&id)),
            )
        }
        Err(error) => {
            tracing::error!(%error, "reading a migration for its events");
            return problem(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "The migration could not be read.");
        }
    }
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let send = |bytes: Bytes| {
            let tx = tx.clone();
            async move { tx.send_timeout(bytes, SEND_TIMEOUT).await.is_ok() }
        };
        let mut last = String::new();
        let (mut sent, mut checked) = (Instant::now(), Instant::now());
        let mut ended: Option<Instant> = None;
        // Tells the browser how soon to reconnect if the stream breaks.
        if !send(Bytes::from_static(b"retry: 1000\n\n")).await {
            return;
        }
        loop {
            if checked.elapsed() >= RECHECK {
                if !allowed() {
                    return;
                }
                checked = Instant::now();
            }
            // One point read of a redb snapshot: microseconds, fine on the executor.
            let record = match backend.migration(&id) {
                Ok(Some(record)) => record,
                Ok(None) | Err(_) => {
                    send(frame("end", "")).await;
                    return;
                }
            };
            let data = view(&record);
            if data != last {
                if !send(frame("progress", &data)).await {
                    return;
                }
                last = data;
                sent = Instant::now();
            } else if sent.elapsed() >= KEEPALIVE {
                if !send(Bytes::from_static(b": keepalive\n\n")).await {
                    return;
                }
                sent = Instant::now();
            }
            // The end comes with the ping trace's figures, once its tail is recorded.
            let traced = !record.ping_traced || record.ping.is_some();
            if record.status.is_final() && (traced || ended.get_or_insert_with(Instant::now).elapsed() >= TRACE_WAIT) {
                send(frame("end", &last)).await;
                return;
            }
            // A page that went away ends the stream now, not at the next send.
            tokio::select! {
                () = tx.closed() => return,
                () = tokio::time::sleep(TICK) => {}
            }
        }
    });
    let mut response = Response::new(Channel(rx).boxed());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_break_in_the_data_cannot_end_the_event() {
        let framed = frame("progress", "<a>one\nevent: end\r\ndata: x</a>");
        assert_eq!(
            framed,
            Bytes::from("event: progress\ndata: <a>one\ndata: event: end\ndata: data: x</a>\n\n"),
            "every line stays data"
        );
    }
}
