//! One task per connection, owning its socket: frames read are handed to the router in place,
//! frames the router queued for this connection are written in one batch, and a wake-up from
//! another connection's task (a result routed here, say) interrupts the read.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use smol::channel::bounded;
use smol::future::FutureExt;
use toolwire_core::router::Outbox;

use super::{Counted, Gateway, Inner};
use crate::transport::{Close, FrameReader, FrameWriter};

/// Bytes an idle connection's outbox keeps.
const OUTBOX_KEEP: usize = 1024;

enum Woke<'f> {
    Frame(io::Result<Option<&'f [u8]>>),
    Wake,
}

impl Gateway {
    pub(crate) async fn run_connection(
        self,
        mut reader: FrameReader,
        mut writer: FrameWriter,
        peer: String,
        mut handshake: Option<Counted>,
    ) {
        let inner: &Arc<Inner> = &self.inner;
        let (wake_tx, wake_rx) = bounded::<()>(1);
        let conn = {
            let mut s = inner.lock();
            let now = inner.clock.now();
            let conn = match s.router.open(now) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("{peer}: {e}");
                    return;
                }
            };
            let i = conn.index();
            if s.wakers.len() <= i {
                s.wakers.resize_with(i + 1, || None);
            }
            s.wakers[i] = Some(wake_tx);
            inner.pump(&mut s, Some(conn));
            conn
        };
        let mut out = Outbox::new();
        let mut close = Close::Normal;
        let mut counted_drops = 0;
        loop {
            let closing = {
                let mut s = inner.lock();
                s.router.poll_transmit(conn, &mut out);
                s.router.is_closing(conn)
            };
            if !out.is_empty() {
                let m = &inner.metrics;
                m.frames_out.inc_by(out.len() as u64);
                m.bytes_out.inc_by((out.bytes() - 4 * out.len()) as u64);
                if let Err(e) = writer.send_all(out.iter()).await {
                    tracing::debug!("{peer}: write failed: {e}");
                    break;
                }
                // After a light batch, an outbox grown by a heavy one gives its memory back.
                let light = out.bytes() <= OUTBOX_KEEP;
                out.clear();
                if light && out.capacity() > 4 * OUTBOX_KEEP {
                    out.trim(OUTBOX_KEEP);
                }
            }
            if closing {
                break;
            }
            let woke = async { Woke::Frame(reader.next().await) }
                .or(async {
                    let _ = wake_rx.recv().await;
                    Woke::Wake
                })
                .await;
            match woke {
                Woke::Frame(Ok(Some(frame))) => {
                    inner.metrics.frames_in.inc();
                    inner.metrics.bytes_in.inc_by(frame.len() as u64);
                    let mut s = inner.lock();
                    let now = inner.clock.now();
                    s.router.handle_frame(conn, now, frame);
                    // Welcomed: this socket no longer counts against `max_handshakes`.
                    if handshake.is_some() && s.router.role(conn).is_some() {
                        handshake = None;
                    }
                    inner.pump(&mut s, Some(conn));
                }
                Woke::Frame(Ok(None)) => break,
                Woke::Frame(Err(e)) => {
                    tracing::debug!("{peer}: read failed: {e}");
                    close = Close::after(&e);
                    if close == Close::TooLarge {
                        inner.metrics.oversized_messages.inc();
                    }
                    break;
                }
                Woke::Wake => {}
            }
            count_drops(inner, &reader, &mut counted_drops);
        }
        // A peer sending only frames that are skipped never makes the loop turn: they are
        // counted at the latest when it closes.
        count_drops(inner, &reader, &mut counted_drops);
        // Bounded: a peer that stopped reading must not hold the task.
        let _ = async {
            writer.close_with(close).await;
        }
        .or(async {
            smol::Timer::after(Duration::from_secs(1)).await;
        })
        .await;
        let mut s = inner.lock();
        s.router.close(conn, inner.clock.now());
        if let Some(w) = s.wakers.get_mut(conn.index()) {
            *w = None;
        }
        inner.pump(&mut s, None);
        tracing::debug!("{peer}: connection closed");
    }
}

/// Adds the frames `reader` skipped since the last count to the metrics.
fn count_drops(inner: &Inner, reader: &FrameReader, counted: &mut u64) {
    let dropped = reader.dropped();
    if dropped > *counted {
        inner
            .metrics
            .dropped_stream_frames
            .inc_by(dropped - *counted);
        *counted = dropped;
    }
}
