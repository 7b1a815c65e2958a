//! Where log lines go: stderr, one `write` per line, except on the connection workers, which
//! gather their lines and write them together when the worker runs out of work (or has
//! [`FLUSH_AT`] bytes waiting).
//!
//! Every proxied request writes an access line; written one by one they were a fifth of the
//! CPU time of a refused request (a system call each). Gathered, a busy worker pays one system
//! call for dozens of lines, and an idle one still writes each line as soon as its request is
//! done, since the worker goes idle right after. A line waits at most [`MAX_WAIT`] (checked
//! when the next line comes) or until the worker is idle, and a thread that ends (a panic
//! included) writes what it had. Lines of different threads may come out of timestamp order.

use std::cell::RefCell;
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// A thread's waiting lines are written once they reach this many bytes.
pub const FLUSH_AT: usize = 16 * 1024;
/// ... or once the oldest has waited this long.
pub const MAX_WAIT: Duration = Duration::from_millis(100);

/// A thread's waiting lines.
struct Waiting {
    buffer: Vec<u8>,
    /// When the oldest waiting line came.
    since: Option<Instant>,
}

impl Waiting {
    fn push(&mut self, line: &[u8]) -> io::Result<()> {
        let since = *self.since.get_or_insert_with(Instant::now);
        self.buffer.extend_from_slice(line);
        if self.buffer.len() >= FLUSH_AT || since.elapsed() >= MAX_WAIT {
            self.write_out()
        } else {
            Ok(())
        }
    }

    /// Write the waiting lines to stderr in one go.
    fn write_out(&mut self) -> io::Result<()> {
        self.since = None;
        if self.buffer.is_empty() {
            return Ok(());
        }
        let result = io::stderr().write_all(&self.buffer);
        self.buffer.clear();
        result
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let _ = self.write_out();
    }
}

thread_local! {
    /// The calling thread's waiting lines, when it gathers them.
    static WAITING: RefCell<Option<Waiting>> = const { RefCell::new(None) };
}

/// The log writer for `tracing_subscriber::fmt`: stderr, through the thread's gathered lines
/// when it has started [`gather_on_this_thread`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Stderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line
    }
}

/// One log line on its way out (see [`Stderr`]).
#[derive(Debug)]
pub struct Line;

impl Write for Line {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_all(data).map(|()| data.len())
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let gathered = WAITING.with(|waiting| {
            // A line logged while the buffer is borrowed (never, in practice) goes straight out.
            let Ok(mut waiting) = waiting.try_borrow_mut() else {
                return None;
            };
            Some(waiting.as_mut()?.push(data))
        });
        gathered.unwrap_or_else(|| io::stderr().write_all(data))
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// Make the calling thread gather its log lines until [`flush`] (a connection worker calls
/// this once, and [`flush`] each time it runs out of work).
pub fn gather_on_this_thread() {
    WAITING.with(|waiting| {
        *waiting.borrow_mut() = Some(Waiting {
            buffer: Vec::with_capacity(FLUSH_AT),
            since: None,
        });
    });
}

/// Write out the lines the calling thread has gathered.
pub fn flush() {
    WAITING.with(|waiting| {
        if let Ok(mut waiting) = waiting.try_borrow_mut() {
            if let Some(waiting) = waiting.as_mut() {
                let _ = waiting.write_out();
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting() -> Option<Vec<u8>> {
        WAITING.with(|waiting| waiting.borrow().as_ref().map(|w| w.buffer.clone()))
    }

    #[test]
    fn a_thread_that_does_not_gather_keeps_nothing() {
        std::thread::spawn(|| {
            Line.write_all(b"straight out\n").unwrap();
            assert_eq!(waiting(), None);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn gathered_lines_wait_for_flush_or_a_full_buffer() {
        std::thread::spawn(|| {
            gather_on_this_thread();
            Line.write_all(b"one\n").unwrap();
            Line.write_all(b"two\n").unwrap();
            assert_eq!(waiting().unwrap(), b"one\ntwo\n");
            flush();
            assert_eq!(waiting().unwrap(), b"");
            let long = vec![b'x'; FLUSH_AT];
            Line.write_all(&long).unwrap();
            assert_eq!(waiting().unwrap(), b"", "a full buffer is written at once");
            Line.write_all(b"old\n").unwrap();
            WAITING.with(|waiting| {
                waiting.borrow_mut().as_mut().unwrap().since = Some(Instant::now() - MAX_WAIT);
            });
            Line.write_all(b"new\n").unwrap();
            assert_eq!(
                waiting().unwrap(),
                b"",
                "a line that waited MAX_WAIT goes out with the next"
            );
        })
        .join()
        .unwrap();
    }
}
