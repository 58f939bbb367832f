//! Framing for byte streams (TCP, UART): COBS with a `0x00` delimiter.
//!
//! Every frame, JSON or postcard, is COBS-encoded and followed by one `0x00`. COBS never emits
//! `0x00` inside a frame, so a receiver that lost its place (garbage on a UART, a frame that was
//! too large) finds the next frame boundary at the next `0x00`: recovery needs no timeout and no
//! length field that garbage could corrupt into a huge allocation. Overhead is one byte per 254
//! bytes plus the delimiter.
//!
//! [`Deframer`] is incremental: feed it any chunking of the stream, one byte at a time included.
//! Its buffer is the maximum frame size; a frame that would exceed it is dropped as the bytes
//! arrive (never buffered) and reported as [`FrameError::TooLarge`].

use core::fmt;

/// Largest COBS output for `n` payload bytes, delimiter included.
pub const fn max_encoded_len(n: usize) -> usize {
    n + n / 254 + 2
}

/// Why bytes on a stream did not make a frame. The stream itself goes on: the deframer has
/// already resynchronised at the next delimiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame exceeded the buffer (`limit` bytes decoded); its remaining bytes up to the next
    /// `0x00` are skipped.
    TooLarge {
        /// The maximum frame size.
        limit: usize,
    },
    /// A `0x00` arrived in the middle of a COBS block: truncated frame or line garbage.
    Malformed,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { limit } => write!(f, "frame larger than {limit} bytes"),
            FrameError::Malformed => f.write_str("malformed COBS frame"),
        }
    }
}

impl core::error::Error for FrameError {}

/// What one [`Deframer::push`] produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Deframed<'b> {
    /// All input was consumed without completing a frame.
    NeedMore,
    /// A complete frame (decoded payload, delimiter removed).
    Frame(&'b [u8]),
    /// Bytes that did not form a frame were dropped.
    Error(FrameError),
}

/// Incremental COBS decoder over caller-provided storage (its length is the maximum frame
/// size).
///
/// ```
/// use toolwire_core::stream::{Deframer, Deframed, encode_frame};
/// let mut wire = [0u8; 32];
/// let n = encode_frame(b"hi\0there", &mut wire).unwrap();
/// let mut d = Deframer::new([0u8; 16]);
/// let mut input = &wire[..n];
/// let mut frames = 0;
/// while !input.is_empty() {
///     let (used, out) = d.push(&input[..1]); // one byte at a time
///     input = &input[used..];
///     if let Deframed::Frame(f) = out { assert_eq!(f, b"hi\0there"); frames += 1; }
/// }
/// assert_eq!(frames, 1);
/// ```
pub struct Deframer<B> {
    buf: B,
    len: usize,
    /// Bytes left to copy in the current COBS block.
    run: u8,
    /// A zero is owed at the end of the current block if another block follows.
    zero_owed: bool,
    /// Inside a frame (a code byte has been read).
    started: bool,
    /// Skipping an oversized frame up to its delimiter.
    discarding: bool,
}

impl<B: AsMut<[u8]> + AsRef<[u8]>> Deframer<B> {
    /// A deframer whose maximum frame size is `buf`'s length.
    pub fn new(buf: B) -> Self {
        Deframer {
            buf,
            len: 0,
            run: 0,
            zero_owed: false,
            started: false,
            discarding: false,
        }
    }

    /// The maximum frame size.
    pub fn capacity(&self) -> usize {
        self.buf.as_ref().len()
    }

    /// Bytes of the current partial frame held.
    pub fn buffered(&self) -> usize {
        self.len
    }

    /// Forgets any partial frame (after a reconnect).
    pub fn reset(&mut self) {
        self.len = 0;
        self.run = 0;
        self.zero_owed = false;
        self.started = false;
        self.discarding = false;
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        let cap = self.capacity();
        if self.len + bytes.len() > cap {
            self.len = 0;
            self.discarding = true;
            self.started = false;
            return Err(FrameError::TooLarge { limit: cap });
        }
        self.buf.as_mut()[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        Ok(())
    }

    /// Feeds `input`; returns how many bytes were consumed and what they produced. Call again
    /// with the rest of the input until it is all consumed (a returned frame borrows the
    /// deframer, so handle it before the next call).
    pub fn push(&mut self, input: &[u8]) -> (usize, Deframed<'_>) {
        let mut i = 0;
        while i < input.len() {
            if self.discarding {
                match input[i..].iter().position(|&b| b == 0) {
                    Some(p) => {
                        i += p + 1;
                        self.reset();
                        continue;
                    }
                    None => return (input.len(), Deframed::NeedMore),
                }
            }
            if self.run == 0 {
                let code = input[i];
                i += 1;
                if code == 0 {
                    let complete = self.started;
                    let len = self.len;
                    self.started = false;
                    self.zero_owed = false;
                    self.len = 0;
                    if complete && len > 0 {
                        return (i, Deframed::Frame(&self.buf.as_ref()[..len]));
                    }
                    continue; // empty frames and stray delimiters are ignored
                }
                if self.zero_owed
                    && let Err(e) = self.put(&[0])
                {
                    return (i, Deframed::Error(e));
                }
                self.started = true;
                self.run = code - 1;
                self.zero_owed = code != 0xFF;
            } else {
                let n = (self.run as usize).min(input.len() - i);
                let chunk = &input[i..i + n];
                let zero = chunk.iter().position(|&b| b == 0);
                // The bytes before a delimiter are data first: whether the frame is reported too
                // large or cut short must not depend on how the stream was chunked.
                let data = &chunk[..zero.unwrap_or(n)];
                if let Err(e) = self.put(data) {
                    // Discarding now: the rest of the frame, up to its delimiter, is skipped.
                    i += data.len();
                    self.run = 0;
                    return (i, Deframed::Error(e));
                }
                if let Some(p) = zero {
                    // A delimiter inside a block: the frame is cut short. The delimiter ends it.
                    i += p + 1;
                    self.reset();
                    return (i, Deframed::Error(FrameError::Malformed));
                }
                self.run -= n as u8;
                i += n;
            }
        }
        (i, Deframed::NeedMore)
    }
}

/// Decodes one COBS frame in place: `frame` is the bytes before a delimiter (no `0x00` in
/// them); the payload is written over its start and its length returned. For a reader that
/// keeps raw stream bytes in a buffer of its own and splits them at each `0x00` (a runtime
/// that sizes its buffer by what arrives rather than by the largest frame); [`Deframer`] gives
/// the same verdicts for the same bytes. A payload of zero bytes (`01`) is a valid frame of
/// length 0, which a stream reader skips as the deframer does.
///
/// ```
/// use toolwire_core::stream::{decode_in_place, encode_frame, FrameError};
/// let mut wire = [0u8; 16];
/// let n = encode_frame(b"a\0b", &mut wire).unwrap();
/// let frame = &mut wire[..n - 1]; // without the delimiter
/// let len = decode_in_place(frame).unwrap();
/// assert_eq!(&frame[..len], b"a\0b");
/// assert_eq!(decode_in_place(&mut [0x05, b'x']), Err(FrameError::Malformed)); // cut short
/// ```
pub fn decode_in_place(frame: &mut [u8]) -> Result<usize, FrameError> {
    let (mut r, mut w) = (0, 0);
    while r < frame.len() {
        let code = frame[r];
        r += 1;
        let n = usize::from(code).wrapping_sub(1);
        // A 0x00 here (a code byte of zero) or a block running past the end: not a frame.
        if code == 0 || n > frame.len() - r {
            return Err(FrameError::Malformed);
        }
        if frame[r..r + n].contains(&0) {
            return Err(FrameError::Malformed);
        }
        frame.copy_within(r..r + n, w);
        w += n;
        r += n;
        if code != 0xFF && r < frame.len() {
            frame[w] = 0;
            w += 1;
        }
    }
    Ok(w)
}

/// COBS-encodes `payload` into `out` and appends the `0x00` delimiter; returns the length.
pub fn encode_frame(payload: &[u8], out: &mut [u8]) -> Result<usize, crate::EncodeError> {
    let needed = max_encoded_len(payload.len());
    if out.len() < needed {
        // The exact size may be smaller; compute it so the error is precise.
        let exact = encoded_len(payload);
        if out.len() < exact {
            return Err(crate::EncodeError::BufferTooSmall { needed: exact });
        }
    }
    // Block by block: up to 254 non-zero bytes copied at once, after a code byte saying how
    // many (plus one) and, below 0xFF, that a zero follows.
    let mut pos = 0;
    let mut rest = payload;
    loop {
        let window = &rest[..rest.len().min(254)];
        let (n, zero) = match window.iter().position(|&b| b == 0) {
            Some(n) => (n, true),
            None => (window.len(), false),
        };
        out[pos + 1..pos + 1 + n].copy_from_slice(&rest[..n]);
        if zero {
            out[pos] = n as u8 + 1;
            pos += n + 1;
            rest = &rest[n + 1..];
        } else if n == 254 {
            out[pos] = 0xFF;
            pos += 255;
            rest = &rest[254..];
        } else {
            out[pos] = n as u8 + 1;
            pos += n + 1;
            break;
        }
    }
    out[pos] = 0;
    Ok(pos + 1)
}

/// Exact length [`encode_frame`] produces for `payload`, delimiter included.
pub fn encoded_len(payload: &[u8]) -> usize {
    let mut pos = 1;
    let mut code: u8 = 1;
    for &b in payload {
        if b == 0 {
            pos += 1;
            code = 1;
        } else {
            pos += 1;
            code += 1;
            if code == 0xFF {
                pos += 1;
                code = 1;
            }
        }
    }
    pos + 1
}
