//! A connection's byte stream: plain TCP or TLS over TCP (the server's side of an RTMPS
//! connection, or a relay's client side), and its two halves. An enum rather than a trait
//! object: the plain path keeps `try_write_vectored` on the socket itself.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

type Tls = tokio_rustls::TlsStream<TcpStream>;

/// A connection's byte stream before it is split.
pub enum Transport {
    Plain(TcpStream),
    Tls(Box<Tls>),
}

/// The read half.
pub enum TransportRead {
    Plain(OwnedReadHalf),
    Tls(tokio::io::ReadHalf<Tls>),
}

/// The write half: the outbox's writer picks its write path by kind.
pub enum TransportWrite {
    Plain(OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<Tls>),
}

impl Transport {
    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    pub fn into_split(self) -> (TransportRead, TransportWrite) {
        match self {
            Transport::Plain(s) => {
                let (r, w) = s.into_split();
                (TransportRead::Plain(r), TransportWrite::Plain(w))
            }
            Transport::Tls(s) => {
                // Both halves stay on the connection's arbiter thread: the split's lock is
                // never contended.
                let (r, w) = tokio::io::split(*s);
                (TransportRead::Tls(r), TransportWrite::Tls(w))
            }
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Self::Plain($s) => $e,
            Self::Tls($s) => $e,
        }
    };
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        dispatch!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

/// `AsyncWrite` by dispatch, for a type with a `Plain` and a `Tls` variant.
macro_rules! dispatch_async_write {
    ($ty:ty) => {
        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<std::io::Result<usize>> {
                dispatch!(self, s => Pin::new(s).poll_write(cx, buf))
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
                dispatch!(self, s => Pin::new(s).poll_flush(cx))
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
                dispatch!(self, s => Pin::new(s).poll_shutdown(cx))
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<std::io::Result<usize>> {
                dispatch!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
            }

            fn is_write_vectored(&self) -> bool {
                true
            }
        }
    };
}

dispatch_async_write!(Transport);

impl AsyncRead for TransportRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        dispatch!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

dispatch_async_write!(TransportWrite);

impl std::fmt::Debug for TransportRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Plain(_) => "TransportRead::Plain",
            Self::Tls(_) => "TransportRead::Tls",
        })
    }
}

impl std::fmt::Debug for TransportWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Plain(_) => "TransportWrite::Plain",
            Self::Tls(_) => "TransportWrite::Tls",
        })
    }
}
