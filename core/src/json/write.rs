//! Writing JSON into a caller's buffer.

/// Writes into a fixed buffer and keeps counting past its end, so that a too-small buffer is
/// reported with the size that would have been needed.
pub struct Writer<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> Writer<'b> {
    /// A writer over `buf`.
    pub fn new(buf: &'b mut [u8]) -> Self {
        Writer { buf, len: 0 }
    }

    /// Bytes written (or that would have been written).
    pub fn written(&self) -> usize {
        self.len
    }

    /// `Ok(len)` if everything fit, `Err(needed)` otherwise.
    pub fn finish(self) -> Result<usize, usize> {
        if self.len <= self.buf.len() {
            Ok(self.len)
        } else {
            Err(self.len)
        }
    }

    /// Appends bytes as they are.
    #[inline]
    pub fn raw(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(bytes);
        }
        self.len = end;
    }

    /// Appends one byte.
    #[inline]
    pub fn byte(&mut self, b: u8) {
        if let Some(dst) = self.buf.get_mut(self.len) {
            *dst = b;
        }
        self.len += 1;
    }

    /// Appends a decimal integer.
    pub fn u64(&mut self, mut v: u64) {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.raw(&tmp[i..]);
    }

    /// Appends a signed decimal integer.
    pub fn i64(&mut self, v: i64) {
        if v < 0 {
            self.byte(b'-');
        }
        self.u64(v.unsigned_abs());
    }

    /// Writes `s` as a quoted JSON string, escaping what RFC 8259 requires.
    pub fn str(&mut self, s: &str) {
        self.byte(b'"');
        self.str_body(s);
        self.byte(b'"');
    }

    /// Writes the escaped body of a JSON string (no quotes).
    pub fn str_body(&mut self, s: &str) {
        let b = s.as_bytes();
        let mut run = 0;
        for (i, &c) in b.iter().enumerate() {
            let esc: &[u8] = match c {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0..=0x1f => {
                    self.raw(&b[run..i]);
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    self.raw(&[
                        b'\\',
                        b'u',
                        b'0',
                        b'0',
                        HEX[(c >> 4) as usize],
                        HEX[(c & 15) as usize],
                    ]);
                    run = i + 1;
                    continue;
                }
                _ => continue,
            };
            self.raw(&b[run..i]);
            self.raw(esc);
            run = i + 1;
        }
        self.raw(&b[run..]);
    }
}

impl core::fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.str_body(s);
        Ok(())
    }
}
