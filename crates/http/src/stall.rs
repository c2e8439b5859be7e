//! The read-idle timeout: a reader that fails with `TimedOut` when no byte arrives for a
//! given time, however long the whole answer takes. The overall request timeout stays in
//! `Client::send_once`; this one catches a server that stalls half-way much sooner.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep};

/// `inner`, failing a read that waits more than `limit` for its next byte.
pub(crate) struct ReadIdle<'a, R> {
    inner: &'a mut R,
    limit: Duration,
    timer: Pin<Box<Sleep>>,
    /// Whether `timer` runs for the current wait (set at the first `Pending`).
    waiting: bool,
}

impl<'a, R> ReadIdle<'a, R> {
    pub fn new(inner: &'a mut R, limit: Duration) -> Self {
        ReadIdle {
            inner,
            limit,
            timer: Box::pin(tokio::time::sleep(limit)),
            waiting: false,
        }
    }

    /// The inner reader has nothing yet: start the timer for this wait, or fail once it has
    /// run out.
    fn pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if !self.waiting {
            self.waiting = true;
            self.timer.as_mut().reset(Instant::now() + self.limit);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no data from the server for {} s (the read timeout)",
                    crate::seconds(self.limit)
                ),
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for ReadIdle<'_, R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut *this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.waiting = false;
                Poll::Ready(result)
            }
            Poll::Pending => this.pending(cx).map(Err),
        }
    }
}

impl<R: AsyncBufRead + Unpin> AsyncBufRead for ReadIdle<'_, R> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        match Pin::new(&mut *this.inner).poll_fill_buf(cx) {
            Poll::Pending => return this.pending(cx).map(Err),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(_)) => {}
        }
        this.waiting = false;
        // Data is buffered now: this second call returns it without touching the socket.
        Pin::new(&mut *this.inner).poll_fill_buf(cx)
    }

    fn consume(self: Pin<&mut Self>, amount: usize) {
        Pin::new(&mut *self.get_mut().inner).consume(amount)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    #[tokio::test(start_paused = true)]
    async fn a_stall_between_bytes_fails_and_steady_bytes_do_not() {
        let (mut server, client) = tokio::io::duplex(64);
        let mut client = BufReader::new(client);
        let writer = tokio::spawn(async move {
            // Three lines, each 2 s apart: never more than 2 s without a byte.
            for line in [&b"a\n"[..], b"b\n", b"c\n"] {
                tokio::time::sleep(Duration::from_secs(2)).await;
                server.write_all(line).await.unwrap();
            }
            // Then silence, with the connection open.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(server);
        });
        let mut reader = ReadIdle::new(&mut client, Duration::from_secs(3));
        let mut text = String::new();
        for _ in 0..3 {
            reader.read_line(&mut text).await.unwrap();
        }
        assert_eq!(text, "a\nb\nc\n");
        let mut rest = Vec::new();
        let error = reader.read_to_end(&mut rest).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(error.to_string().contains("3 s"), "{error}");
        writer.abort();
    }
}
