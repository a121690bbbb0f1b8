//! Where fetched bytes go while they are hashed.
//!
//! A [`Sink`] sees every byte of an artifact once, in order, *before* the digest is known. It
//! must therefore stage, never activate: only [`Sink::finish`] (called after the sha256
//! matched) may make the result visible. [`Sink::abort`] is called on every failure.
//!
//! [`PipeSink`] runs an ordinary `Read`-based consumer (decompressor + tar or zip reader) on its
//! own thread, fed through a bounded channel, so unpacking happens in the same pass as the
//! download without buffering the archive.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::{JoinHandle, Scope, ScopedJoinHandle};

/// The consumer of an artifact's bytes.
///
/// An error from [`write`](Sink::write) or [`finish`](Sink::finish) says one of two things,
/// told apart by its kind:
///
/// - [`io::ErrorKind::InvalidData`]: the **bytes** are refused (they do not decompress, or the
///   archive breaks a rule). The fetcher treats them as wrong bytes, like a digest mismatch:
///   they are deleted (so no later run replays them), the error names the expected digest and
///   the sha256 and count of the bytes received, and the next URL is tried.
/// - any other kind: a **local** failure (a full disk, permissions). The fetch stops at once
///   (another mirror would not help) and the bytes received stay in the `.partial` file, so
///   the next run resumes.
///
/// The decoders of this crate ([`decompressor`](crate::decompressor),
/// [`read_zip_stream`](crate::read_zip_stream)) report corrupt input as `InvalidData`.
pub trait Sink {
    /// The next bytes of the artifact, in order.
    fn write(&mut self, chunk: &[u8]) -> io::Result<()>;
    /// Forget everything written so far: the bytes start again from byte 0 (the server
    /// ignored a Range request, or the bytes from an earlier run were unusable).
    fn restart(&mut self) -> io::Result<()>;
    /// Every byte was written and matched the digest. An error here fails the fetch.
    fn finish(&mut self) -> io::Result<()>;
    /// The fetch failed: discard whatever was staged.
    fn abort(&mut self);
}

/// Collects the bytes in memory (small artifacts such as manifests, and tests).
impl Sink for Vec<u8> {
    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.extend_from_slice(chunk);
        Ok(())
    }
    fn restart(&mut self) -> io::Result<()> {
        self.clear();
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn abort(&mut self) {
        self.clear();
    }
}

/// Discards the bytes: the fetch only verifies (and, with `keep_verified`, keeps the file).
#[derive(Debug, Default, Clone, Copy)]
pub struct DiscardSink;

impl Sink for DiscardSink {
    fn write(&mut self, _chunk: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn restart(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn abort(&mut self) {}
}

enum Message {
    Data(Vec<u8>),
    /// The bytes so far are void; the reader fails so the consumer gives up.
    Abort,
}

/// The consumer's end of a [`PipeSink`]: a `Read` of the artifact's bytes. It ends (returns 0)
/// only after [`Sink::finish`], i.e. after the digest matched, so a consumer that reads to the
/// end never sees unverified trailing bytes as a complete file. On restart or abort its reads
/// fail with [`io::ErrorKind::Interrupted`]-free `Other` errors saying so.
pub struct PipeReader {
    receiver: Receiver<Message>,
    current: Vec<u8>,
    position: usize,
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.position == self.current.len() {
            match self.receiver.recv() {
                Ok(Message::Data(chunk)) => {
                    self.current = chunk;
                    self.position = 0;
                }
                Ok(Message::Abort) => {
                    return Err(io::Error::other("the download was abandoned or restarted"))
                }
                // The sender is dropped only by `finish`: a clean end.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.position);
        buf[..n].copy_from_slice(&self.current[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

type Consumer<'scope, T> = dyn Fn(&mut PipeReader) -> io::Result<T> + Send + Sync + 'scope;

/// A consumer's pass, ready to run on a thread.
type Job<'scope, T> = Box<dyn FnOnce() -> io::Result<T> + Send + 'scope>;

/// A running pass.
trait Worker<T> {
    fn join(self: Box<Self>) -> io::Result<T>;
}

impl<T> Worker<T> for JoinHandle<io::Result<T>> {
    fn join(self: Box<Self>) -> io::Result<T> {
        (*self)
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the unpacking thread panicked")))
    }
}

impl<T> Worker<T> for ScopedJoinHandle<'_, io::Result<T>> {
    fn join(self: Box<Self>) -> io::Result<T> {
        (*self)
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the unpacking thread panicked")))
    }
}

/// How a pass gets its thread: [`std::thread::spawn`], or a [`std::thread::Scope`]'s.
type Spawner<'scope, T> = Box<dyn Fn(Job<'scope, T>) -> Box<dyn Worker<T> + 'scope> + 'scope>;

/// A [`Sink`] that feeds a consumer running on its own thread.
///
/// The consumer is called once per pass over the bytes: again after a restart (the earlier
/// call sees a read error and must clean up what it staged). Its result is available from
/// [`PipeSink::take_output`] after a successful `finish`. If the consumer returns before the
/// end (a tar reader stops at the end-of-archive blocks), later bytes are still hashed but
/// dropped. [`PipeSink::new`] runs it on a thread of its own; [`PipeSink::scoped`] on a
/// thread of a [`std::thread::Scope`], so it may borrow from the caller's stack (a lock
/// guard, say).
pub struct PipeSink<'scope, T: Send + 'scope> {
    consumer: Arc<Consumer<'scope, T>>,
    spawner: Spawner<'scope, T>,
    sender: Option<SyncSender<Message>>,
    worker: Option<Box<dyn Worker<T> + 'scope>>,
    output: Option<T>,
    /// The consumer returned `Ok` before the end; drop the rest.
    consumer_done: Option<io::Result<T>>,
}

/// Chunks in flight between the download and the consumer (each up to 64 KiB).
const PIPE_DEPTH: usize = 16;

impl<T: Send + 'static> PipeSink<'static, T> {
    /// Starts `consumer` on a thread, reading the bytes written to this sink.
    pub fn new(
        consumer: impl Fn(&mut PipeReader) -> io::Result<T> + Send + Sync + 'static,
    ) -> Self {
        PipeSink::start(
            Arc::new(consumer),
            Box::new(|job: Job<'static, T>| Box::new(std::thread::spawn(job)) as Box<_>),
        )
    }
}

impl<'scope, T: Send + 'scope> PipeSink<'scope, T> {
    /// Starts `consumer` on a thread of `scope`, reading the bytes written to this sink.
    pub fn scoped<'env>(
        scope: &'scope Scope<'scope, 'env>,
        consumer: impl Fn(&mut PipeReader) -> io::Result<T> + Send + Sync + 'scope,
    ) -> Self {
        PipeSink::start(
            Arc::new(consumer),
            Box::new(move |job: Job<'scope, T>| Box::new(scope.spawn(job)) as Box<_>),
        )
    }

    fn start(consumer: Arc<Consumer<'scope, T>>, spawner: Spawner<'scope, T>) -> Self {
        let mut sink = PipeSink {
            consumer,
            spawner,
            sender: None,
            worker: None,
            output: None,
            consumer_done: None,
        };
        sink.spawn();
        sink
    }

    /// The consumer's result, after a successful `finish`.
    pub fn take_output(&mut self) -> Option<T> {
        self.output.take()
    }

    fn spawn(&mut self) {
        let (sender, receiver) = sync_channel(PIPE_DEPTH);
        let consumer = Arc::clone(&self.consumer);
        self.worker = Some((self.spawner)(Box::new(move || {
            let mut reader = PipeReader {
                receiver,
                current: Vec::new(),
                position: 0,
            };
            consumer(&mut reader)
        })));
        self.sender = Some(sender);
        self.consumer_done = None;
    }

    fn join(&mut self) -> Option<io::Result<T>> {
        Some(self.worker.take()?.join())
    }

    /// Stops the current consumer: it sees an error and returns.
    fn stop(&mut self) {
        if let Some(sender) = self.sender.take() {
            // A full channel would block: the consumer drains it, or has already returned
            // (then `send` fails at once).
            let _ = sender.send(Message::Abort);
        }
        let _ = self.join();
        self.consumer_done = None;
    }
}

impl<'scope, T: Send + 'scope> Sink for PipeSink<'scope, T> {
    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        if self.consumer_done.is_some() {
            return Ok(());
        }
        let Some(sender) = &self.sender else {
            return Err(io::Error::other("write after finish or abort"));
        };
        if sender.send(Message::Data(chunk.to_vec())).is_ok() {
            return Ok(());
        }
        // The consumer returned early: an error fails the fetch; success drops the rest.
        self.sender = None;
        match self.join() {
            Some(Ok(value)) => {
                self.consumer_done = Some(Ok(value));
                Ok(())
            }
            Some(Err(e)) => Err(e),
            None => Err(io::Error::other("the unpacking thread is gone")),
        }
    }

    fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.spawn();
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        // Dropping the sender is the end of the stream.
        self.sender = None;
        let result = match self.consumer_done.take() {
            Some(result) => result,
            None => self
                .join()
                .unwrap_or_else(|| Err(io::Error::other("the unpacking thread is gone"))),
        };
        self.output = Some(result?);
        Ok(())
    }

    fn abort(&mut self) {
        self.stop();
    }
}

impl<'scope, T: Send + 'scope> Drop for PipeSink<'scope, T> {
    fn drop(&mut self) {
        if self.worker.is_some() {
            self.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_reader_ends_only_after_finish_and_fails_on_restart() {
        let seen = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            let seen = &seen;
            let mut pipe = PipeSink::scoped(s, move |r: &mut PipeReader| {
                let mut buf = Vec::new();
                let res = r.read_to_end(&mut buf);
                seen.lock().unwrap().push(res.is_ok());
                res.map(|_| buf.len())
            });
            pipe.write(b"abc").unwrap();
            pipe.restart().unwrap();
            pipe.write(b"hello").unwrap();
            pipe.finish().unwrap();
            assert_eq!(pipe.take_output(), Some(5));
        });
        assert_eq!(*seen.lock().unwrap(), vec![false, true]);
    }

    #[test]
    fn a_consumer_error_fails_the_write() {
        let mut pipe = PipeSink::new(|r: &mut PipeReader| -> io::Result<()> {
            let mut b = [0u8; 1];
            r.read_exact(&mut b)?;
            Err(io::Error::other("refused"))
        });
        let failed = (0..64).any(|_| pipe.write(&[0u8; 1024]).is_err());
        assert!(failed, "the consumer's error must reach the writer");
    }

    #[test]
    fn a_consumer_that_returns_early_drops_the_rest() {
        let mut pipe = PipeSink::new(|r: &mut PipeReader| {
            let mut b = [0u8; 4];
            r.read_exact(&mut b)?;
            Ok(b)
        });
        for _ in 0..64 {
            pipe.write(b"abcdefgh").unwrap();
        }
        pipe.finish().unwrap();
        assert_eq!(pipe.take_output(), Some(*b"abcd"));
    }
}
