//! A queue of frames in recycled buffers, shared by the loopback and pipe devices.

use std::collections::VecDeque;

/// One queued frame: a buffer of the queue's frame capacity and the used length.
pub(crate) struct Frame {
    buf: Box<[u8]>,
    len: usize,
}

impl Frame {
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// A bounded FIFO of frames whose buffers return to a pool when consumed.
pub(crate) struct FrameQueue {
    frames: VecDeque<Frame>,
    pool: Vec<Box<[u8]>>,
    frame_cap: usize,
    limit: usize,
    /// Frames dropped because the queue was full.
    pub(crate) dropped: u64,
}

impl FrameQueue {
    /// A queue holding at most `limit` frames of at most `frame_cap` bytes.
    pub(crate) fn new(frame_cap: usize, limit: usize) -> Self {
        FrameQueue {
            frames: VecDeque::with_capacity(limit.min(1024)),
            pool: Vec::new(),
            frame_cap,
            limit,
            dropped: 0,
        }
    }

    /// Appends a frame of `len` bytes written by `f`. When the queue is full or `len`
    /// exceeds the frame capacity, `f` writes into a scratch buffer and the frame is
    /// dropped, as a full NIC queue drops.
    pub(crate) fn push_with<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let mut buf = self
            .pool
            .pop()
            .unwrap_or_else(|| vec![0u8; self.frame_cap].into_boxed_slice());
        if len > buf.len() || self.frames.len() >= self.limit {
            self.dropped += 1;
            let mut scratch = vec![0u8; len];
            let r = f(&mut scratch);
            self.pool.push(buf);
            return r;
        }
        let r = f(&mut buf[..len]);
        self.frames.push_back(Frame { buf, len });
        r
    }

    /// Fills a recycled buffer of the frame capacity with `f`, which returns the
    /// frame's length, or `None` to keep nothing. Nothing is called when the queue
    /// is full.
    pub(crate) fn push_filled(&mut self, f: impl FnOnce(&mut [u8]) -> Option<usize>) {
        if self.is_full() {
            return;
        }
        let mut buf = self
            .pool
            .pop()
            .unwrap_or_else(|| vec![0u8; self.frame_cap].into_boxed_slice());
        match f(&mut buf) {
            Some(len) if len <= buf.len() => self.frames.push_back(Frame { buf, len }),
            _ => self.pool.push(buf),
        }
    }

    /// Whether another frame would be dropped.
    pub(crate) fn is_full(&self) -> bool {
        self.frames.len() >= self.limit
    }

    pub(crate) fn pop(&mut self) -> Option<Frame> {
        self.frames.pop_front()
    }

    pub(crate) fn recycle(&mut self, frame: Frame) {
        self.pool.push(frame.buf);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_bounded_and_recycling() {
        let mut q = FrameQueue::new(16, 2);
        q.push_with(3, |b| b.copy_from_slice(b"abc"));
        q.push_with(2, |b| b.copy_from_slice(b"de"));
        q.push_with(1, |b| b[0] = b'x'); // over the limit: dropped
        assert_eq!(q.dropped, 1);
        let f = q.pop().unwrap();
        assert_eq!(f.bytes(), b"abc");
        q.recycle(f);
        assert_eq!(q.pop().unwrap().bytes(), b"de");
        assert!(q.pop().is_none());
        q.push_with(17, |b| assert_eq!(b.len(), 17)); // too large: dropped
        assert_eq!(q.dropped, 2);
        assert!(q.is_empty());
    }
}
