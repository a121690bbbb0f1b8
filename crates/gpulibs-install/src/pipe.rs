//! A [`Sink`] whose consumer runs on a *scoped* thread, so it can borrow the install lock.
//!
//! `gpulibs_fetch::PipeSink` needs a `'static` consumer, but the store's [`Stager`] borrows the
//! [`InstallLock`], which lives on the installing thread's stack. This is the same pipe (a
//! bounded channel of chunks, the reader ends only after the digest matched, restart and abort
//! make the reader fail) with the consumer spawned in a [`std::thread::Scope`].
//!
//! [`Stager`]: gpulibs_store::Stager
//! [`InstallLock`]: gpulibs_store::InstallLock

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::{Scope, ScopedJoinHandle};

use gpulibs_fetch::Sink;

enum Message {
    Data(Vec<u8>),
    Abort,
}

/// The consumer's end: the artifact's bytes in order. Ends (returns 0) only after
/// [`Sink::finish`], i.e. after the sha256 matched; fails after a restart or abort.
pub struct Reader {
    receiver: Receiver<Message>,
    current: Vec<u8>,
    position: usize,
}

impl Read for Reader {
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
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.position);
        buf[..n].copy_from_slice(&self.current[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

/// The consumer: called once per pass over the bytes (again after a restart).
pub type Consumer<'scope, T> = Arc<dyn Fn(&mut Reader) -> io::Result<T> + Send + Sync + 'scope>;

const DEPTH: usize = 16;

pub struct ScopedPipe<'scope, 'env, T: Send + 'scope> {
    scope: &'scope Scope<'scope, 'env>,
    consumer: Consumer<'scope, T>,
    sender: Option<SyncSender<Message>>,
    worker: Option<ScopedJoinHandle<'scope, io::Result<T>>>,
    output: Option<T>,
    /// The consumer returned before the end of the bytes.
    done_early: Option<io::Result<T>>,
}

impl<'scope, 'env, T: Send + 'scope> ScopedPipe<'scope, 'env, T> {
    pub fn new(scope: &'scope Scope<'scope, 'env>, consumer: Consumer<'scope, T>) -> Self {
        let mut pipe = ScopedPipe {
            scope,
            consumer,
            sender: None,
            worker: None,
            output: None,
            done_early: None,
        };
        pipe.spawn();
        pipe
    }

    /// The consumer's result after a successful `finish`.
    #[cfg(test)]
    pub fn take_output(&mut self) -> Option<T> {
        self.output.take()
    }

    fn spawn(&mut self) {
        let (sender, receiver) = sync_channel(DEPTH);
        let consumer = Arc::clone(&self.consumer);
        self.worker = Some(self.scope.spawn(move || {
            let mut reader = Reader {
                receiver,
                current: Vec::new(),
                position: 0,
            };
            consumer(&mut reader)
        }));
        self.sender = Some(sender);
        self.done_early = None;
    }

    fn join(&mut self) -> Option<io::Result<T>> {
        let worker = self.worker.take()?;
        Some(
            worker
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the unpacking thread panicked"))),
        )
    }

    fn stop(&mut self) {
        if let Some(sender) = self.sender.take() {
            let _ = sender.send(Message::Abort);
        }
        let _ = self.join();
        self.done_early = None;
    }
}

impl<'scope, T: Send + 'scope> Sink for ScopedPipe<'scope, '_, T> {
    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        if self.done_early.is_some() {
            return Ok(());
        }
        let Some(sender) = &self.sender else {
            return Err(io::Error::other("write after finish or abort"));
        };
        if sender.send(Message::Data(chunk.to_vec())).is_ok() {
            return Ok(());
        }
        self.sender = None;
        match self.join() {
            Some(Ok(value)) => {
                self.done_early = Some(Ok(value));
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
        self.sender = None;
        let result = match self.done_early.take() {
            Some(r) => r,
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

impl<'scope, T: Send + 'scope> Drop for ScopedPipe<'scope, '_, T> {
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
    fn reader_ends_only_after_finish_and_fails_on_restart() {
        let seen = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            let seen_ref = &seen;
            let consumer: Consumer<'_, usize> = Arc::new(move |r: &mut Reader| {
                let mut buf = Vec::new();
                let res = r.read_to_end(&mut buf);
                seen_ref.lock().unwrap().push(res.is_ok());
                res.map(|_| buf.len())
            });
            let mut pipe = ScopedPipe::new(s, consumer);
            pipe.write(b"abc").unwrap();
            pipe.restart().unwrap();
            pipe.write(b"hello").unwrap();
            pipe.finish().unwrap();
            assert_eq!(pipe.take_output(), Some(5));
            assert_eq!(*seen.lock().unwrap(), vec![false, true]);
        });
    }

    #[test]
    fn consumer_error_fails_the_write() {
        std::thread::scope(|s| {
            let consumer: Consumer<'_, ()> = Arc::new(|r: &mut Reader| {
                let mut b = [0u8; 1];
                r.read_exact(&mut b)?;
                Err(io::Error::other("refused"))
            });
            let mut pipe = ScopedPipe::new(s, consumer);
            let mut failed = false;
            for _ in 0..64 {
                if pipe.write(&[0u8; 1024]).is_err() {
                    failed = true;
                    break;
                }
            }
            assert!(failed, "the consumer's error must reach the writer");
        });
    }
}
