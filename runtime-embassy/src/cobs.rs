//! COBS encoding in place: the payload is written at an offset inside the transmit buffer and
//! encoded towards its start, so one buffer holds a frame and its encoding.
//!
//! COBS adds one code byte per 254 payload bytes plus one, and the delimiter; the output never
//! overtakes the input as long as the payload starts at least that many bytes in.

use toolwire_core::stream::max_encoded_len;

/// Where the payload starts in a buffer of `len` bytes, and so how much of it a frame may use.
pub(crate) const fn payload_offset(len: usize) -> usize {
    // max_encoded_len(n) - n for the largest payload that could fit.
    max_encoded_len(len) - len
}

/// Encodes the `n` payload bytes at `buf[payload_offset(buf.len())..]` into `buf[..]`, delimiter
/// included; returns the encoded length.
pub(crate) fn encode_in_place(buf: &mut [u8], n: usize) -> usize {
    let start = payload_offset(buf.len());
    debug_assert!(start + n <= buf.len());
    let mut code_at = 0;
    let mut pos = 1;
    let mut code: u8 = 1;
    for i in start..start + n {
        // Read before writing: `pos <= i` holds throughout, so position `i` is never overwritten
        // before it is read, and `code_at < pos` only ever points at consumed input.
        let b = buf[i];
        if b == 0 {
            buf[code_at] = code;
            code_at = pos;
            pos += 1;
            code = 1;
        } else {
            buf[pos] = b;
            pos += 1;
            code += 1;
            if code == 0xFF {
                buf[code_at] = code;
                code_at = pos;
                pos += 1;
                code = 1;
            }
        }
    }
    buf[code_at] = code;
    buf[pos] = 0;
    pos + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use toolwire_core::stream::encode_frame;

    fn check(payload: &[u8], len: usize) {
        let mut buf = [0xAAu8; 1200];
        let buf = &mut buf[..len];
        let start = payload_offset(len);
        buf[start..start + payload.len()].copy_from_slice(payload);
        let n = encode_in_place(buf, payload.len());
        let mut want = [0u8; 1300];
        let m = encode_frame(payload, &mut want).unwrap();
        assert_eq!(&buf[..n], &want[..m], "payload {payload:?} in {len}");
    }

    #[test]
    fn matches_the_core_encoder() {
        let mut seed = 7u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (seed >> 16) as u8
        };
        for len in [8usize, 64, 255, 256, 300, 600, 1200] {
            let cap = len - payload_offset(len);
            for n in [0, 1, 2, 253, 254, 255, 508, 509, cap.saturating_sub(1), cap] {
                if n > cap {
                    continue;
                }
                let mut p = [0u8; 1200];
                // All zeros, no zeros, random with zeros.
                check(&p[..n], len);
                p[..n].fill(7);
                check(&p[..n], len);
                for b in p[..n].iter_mut() {
                    *b = next() % 4;
                }
                check(&p[..n], len);
            }
        }
    }
}
