//! DNS over TCP (RFC 1035 4.2.2, RFC 7766): each message behind its 2-byte length, any
//! number of queries per connection, answered in order with the same answers as over UDP
//! but never truncated. Clients come here after a UDP answer with TC set.

use super::{Server, Transport};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// An idle connection is closed after this long.
const IDLE: Duration = Duration::from_secs(10);
/// At most this many connections at once; more are closed at once.
const MAX_CONNECTIONS: usize = 256;

/// A listener on `addr` that may be bound before the address exists (as the UDP socket).
pub(super) fn bind_early(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.set_freebind_v4(true)?;
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(128)?;
    TcpListener::from_std(sock.into())
}

/// Accept connections until the listener fails.
pub(super) async fn serve(listener: TcpListener, server: Arc<Server>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // dropped: closed
        };
        let server = server.clone();
        tokio::spawn(async move {
            connection(stream, &server).await;
            drop(slot);
        });
    }
}

/// Answer one connection's queries until it closes, errs or idles.
async fn connection(mut stream: TcpStream, server: &Server) {
    let _ = stream.set_nodelay(true);
    loop {
        let Ok(Ok(query)) = tokio::time::timeout(IDLE, read_frame(&mut stream)).await else {
            return;
        };
        let Some(reply) = server.respond(&query, Transport::Tcp).await else {
            // Not a DNS query: nothing sensible follows on this stream.
            return;
        };
        if write_frame(&mut stream, &reply).await.is_err() {
            return;
        }
    }
}

/// One message behind its length.
pub(super) async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    r.read_exact(&mut len).await?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Write one message behind its length (in one write, so that it is one segment when it
/// fits).
pub(super) async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    message: &[u8],
) -> std::io::Result<()> {
    let len = u16::try_from(message.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "message too long"))?;
    let mut frame = Vec::with_capacity(message.len() + 2);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(message);
    w.write_all(&frame).await?;
    w.flush().await
}

/// One exchange with a resolver over TCP (a relayed query asked over TCP, or one whose
/// UDP answer was truncated): its answer, if it gives one with the query's ID in time.
pub(super) async fn exchange(
    upstream: SocketAddr,
    query: &[u8],
    timeout: Duration,
) -> Option<Vec<u8>> {
    tokio::time::timeout(timeout, async {
        let mut stream = TcpStream::connect(upstream).await.ok()?;
        write_frame(&mut stream, query).await.ok()?;
        let reply = read_frame(&mut stream).await.ok()?;
        (reply.get(..2) == query.get(..2)).then_some(reply)
    })
    .await
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_carry_their_length() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_frame(&mut a, b"hello").await.unwrap();
        write_frame(&mut a, b"").await.unwrap();
        let mut raw = [0u8; 7];
        b.read_exact(&mut raw).await.unwrap();
        assert_eq!(&raw, b"\x00\x05hello");
        assert_eq!(read_frame(&mut b).await.unwrap(), b"");
        assert!(write_frame(&mut a, &vec![0u8; 70000]).await.is_err());
        // A frame cut short is an error, not a short message.
        a.write_all(b"\x00\x09abc").await.unwrap();
        drop(a);
        assert!(read_frame(&mut b).await.is_err());
    }

    #[tokio::test]
    async fn exchanges_want_the_query_id() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let q = read_frame(&mut s).await.unwrap();
                // Echo the query, with its ID changed if it starts with 0xFF.
                let mut r = q.clone();
                if r[0] == 0xFF {
                    r[1] ^= 1;
                }
                write_frame(&mut s, &r).await.unwrap();
            }
        });
        let t = Duration::from_secs(5);
        assert_eq!(
            exchange(addr, b"\x01\x02rest", t).await.as_deref(),
            Some(&b"\x01\x02rest"[..])
        );
        assert_eq!(exchange(addr, b"\xFF\x02rest", t).await, None);
    }
}
