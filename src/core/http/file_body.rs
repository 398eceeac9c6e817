//! A response body read from a file slice in 64 KiB chunks as hyper asks
//! for them: a recording is streamed, never read whole into memory. Each
//! chunk is a plain read of a local file (short), made on the worker.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::{Body, Bytes, Frame, SizeHint};

use super::message::FileSlice;

const CHUNK: u64 = 64 * 1024;

/// The body of a [`FileSlice`].
pub struct FileBody {
    file: Option<File>,
    left: u64,
}

impl FileBody {
    /// Opens the slice's file at its offset.
    pub fn open(slice: &FileSlice) -> std::io::Result<FileBody> {
        let mut file = File::open(&slice.path)?;
        file.seek(SeekFrom::Start(slice.offset))?;
        Ok(FileBody {
            file: Some(file),
            left: slice.len,
        })
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let n = self.left.min(CHUNK) as usize;
        let Some(file) = self.file.as_mut().filter(|_| n > 0) else {
            return Poll::Ready(None);
        };
        let mut buf = vec![0u8; n];
        let r = file.read_exact(&mut buf);
        match r {
            Ok(()) => {
                self.left -= n as u64;
                if self.left == 0 {
                    self.file = None;
                }
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
            }
            // The file shrank under us: end the body short (the client sees
            // fewer bytes than Content-Length said, and closes).
            Err(e) => {
                self.file = None;
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}
