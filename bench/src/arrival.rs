//! When a read's bytes reached the receiver's socket: the kernel's receive timestamp
//! (`SO_TIMESTAMPNS`), so a latency sample ends when the server's write arrived, not when
//! the generator got a core to read it.
//!
//! On a shared machine the generator's read waits for a core like every other process;
//! on two cores that wait grows with the room (a room of 10,000 is read by the generator
//! one socket after another) and is the harness's cost, not the server's. The kernel
//! stamps each loopback packet as it enters the receive path, which for loopback is
//! inside the server's own `sendto`; `recvmsg` hands back the stamp of the last packet
//! the read consumed (so a read spanning several packets dates its earlier frames late:
//! the error only ever adds latency). Samples keep both ends: the arrival (reported) and
//! the read (kept beside it, so runs without stamps stay comparable).
//!
//! Used only with `--latency-arrival`, off by default: the stamped read costs the
//! generator about 8 % more CPU per delivery, which on two shared cores costs the server
//! as much as the wait it removes (bench/README.md).

use std::io::{self, IoSliceMut};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt::ReceiveTimestampns,
};
use nix::sys::time::TimeSpec;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bytes one stamped read takes at most (then copied into the connection's buffer).
const SCRATCH: usize = 16 * 1024;

/// A thread's buffers for stamped reads: allocated and initialised once, so a read
/// needs no allocation, no zeroing and no `unsafe` for uninitialised memory.
struct Scratch {
    /// What one read takes.
    data: Vec<u8>,
    /// Room for the stamp's control message.
    control: Vec<u8>,
}

thread_local! {
    static SCRATCH_BUF: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch {
        data: vec![0; SCRATCH],
        control: nix::cmsg_space!(TimeSpec),
    });
}

/// Asks the kernel to stamp what arrives on `stream`.
pub(crate) fn enable(stream: &TcpStream) -> io::Result<()> {
    setsockopt(stream, ReceiveTimestampns, &true).map_err(io::Error::from)
}

/// When the bytes of one read arrived, and when they were read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamped {
    /// Arrival at the socket (the read's instant if the kernel gave no stamp).
    pub(crate) arrived: Instant,
    /// The read.
    pub(crate) read: Instant,
    /// Stamping was asked for and the kernel gave none (`arrived` is the read): it does
    /// not stamp packets queued before stamping was first enabled on the machine.
    pub(crate) fell_back: bool,
}

impl Stamped {
    /// A read not stamped by choice: it ends where it arrived.
    fn at_read(read: Instant) -> Stamped {
        Stamped {
            arrived: read,
            read,
            fell_back: false,
        }
    }
}

/// Reads once from `stream` into `buf`, with the kernel's receive stamp when `stamped`
/// (the stream [`enable`]d), else a plain read dated at its end; fails once the peer has
/// closed the connection.
pub(crate) async fn read(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    stamped: bool,
) -> anyhow::Result<Stamped> {
    if !stamped {
        crate::client::fill(stream, buf).await?;
        return Ok(Stamped::at_read(Instant::now()));
    }
    loop {
        stream.readable().await?;
        match stream.try_io(Interest::READABLE, || recv(stream, buf)) {
            Ok((0, _)) => anyhow::bail!("server closed the connection"),
            Ok((_, stamp)) => return Ok(dated(stamp, Instant::now(), SystemTime::now())),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// One `recvmsg`: bytes appended to `buf`, and the kernel's stamp if it gave one.
fn recv(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<(usize, Option<TimeSpec>)> {
    SCRATCH_BUF.with_borrow_mut(|Scratch { data, control }| {
        let mut iov = [IoSliceMut::new(data)];
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(control),
            MsgFlags::MSG_DONTWAIT,
        )
        .map_err(io::Error::from)?;
        let stamp = msg.cmsgs().ok().and_then(|mut cmsgs| {
            cmsgs.find_map(|c| match c {
                ControlMessageOwned::ScmTimestampns(ts) => Some(ts),
                _ => None,
            })
        });
        let n = msg.bytes;
        buf.extend_from_slice(&data[..n]);
        Ok((n, stamp))
    })
}

/// The read at `read` (wall clock `wall` at the same moment) dated back to the kernel's
/// `stamp` (wall clock). The stamp and `wall` are milliseconds apart at most, so the
/// wall clock is only used for that short difference, never across the run.
fn dated(stamp: Option<TimeSpec>, read: Instant, wall: SystemTime) -> Stamped {
    let waited = stamp.map(|ts| {
        let at = SystemTime::UNIX_EPOCH + Duration::from(ts);
        // A stamp after the read (the wall clock stepped): no wait.
        wall.duration_since(at).unwrap_or(Duration::ZERO)
    });
    Stamped {
        arrived: waited.map_or(read, |w| read.checked_sub(w).unwrap_or(read)),
        read,
        fell_back: waited.is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn a_read_is_dated_back_by_the_wait_since_the_kernels_stamp() {
        let read = Instant::now() + Duration::from_secs(5);
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let stamp = TimeSpec::from(Duration::from_micros(1_000_000_000 - 1_500));
        let s = dated(Some(stamp), read, wall);
        assert_eq!(read - s.arrived, Duration::from_micros(1_500));
        assert!(!s.fell_back);
        let unstamped = dated(None, read, wall);
        assert_eq!(unstamped.arrived, read);
        assert!(unstamped.fell_back);
        // A stamp later than the read (the wall clock stepped back): no wait, not a panic.
        let late = dated(Some(TimeSpec::from(Duration::from_secs(2_000))), read, wall);
        assert_eq!(late.arrived, read);
    }

    #[tokio::test]
    async fn a_loopback_read_carries_the_time_the_bytes_arrived_not_when_they_were_read() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        enable(&client).unwrap();
        // The kernel turns stamping on for the machine a moment after the first socket
        // asks (deferred work): until a read comes back stamped, nothing is measured.
        let mut buf = BytesMut::new();
        for _ in 0..500 {
            server.write_all(b"x").await.unwrap();
            if !read(&mut client, &mut buf, true).await.unwrap().fell_back {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        buf.clear();
        server.write_all(b"hello").await.unwrap();
        let written = Instant::now();
        // Read well after the bytes arrived: the stamp still dates them to the write.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let s = read(&mut client, &mut buf, true).await.unwrap();
        assert_eq!(&buf[..], b"hello");
        assert!(!s.fell_back, "the kernel stamped the read");
        assert!(s.read - s.arrived >= Duration::from_millis(150), "{s:?}");
        assert!(s.arrived <= written + Duration::from_millis(50), "{s:?}");
        drop(server);
        assert!(
            read(&mut client, &mut buf, true).await.is_err(),
            "a closed peer ends reads"
        );
    }
}
