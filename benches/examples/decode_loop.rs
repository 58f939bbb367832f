//! Decodes one fixture frame in a loop, for profilers (callgrind counts instructions exactly,
//! where timings on a shared machine are noisy):
//!
//! ```sh
//! cargo build --release -p toolwire-benches --example decode_loop
//! valgrind --tool=callgrind target/release/examples/decode_loop toolwire-json execute-small 100000
//! ```
//!
//! Run it once with 0 iterations and subtract, to get instructions per decode.

use std::hint::black_box;

use toolwire_benches::fixtures::FrameKind;
use toolwire_benches::peers::{json, pc};
use toolwire_core::codec::{self, Message};
use toolwire_core::{Encoding, Json, Limits};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: decode_loop \
                 {toolwire-json|toolwire-postcard|serde_json|jsonrpsee|postcard-derive} \
                 {register|execute-small|execute-4k|result} ITERATIONS";
    let [_, implementation, frame, iterations] = &args[..] else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let kind = FrameKind::ALL
        .into_iter()
        .find(|k| k.name() == frame)
        .unwrap_or_else(|| panic!("{usage}"));
    let iterations: u64 = iterations.parse().expect("ITERATIONS is a number");
    let limits = Limits::default();
    let encoding = match implementation.as_str() {
        "toolwire-postcard" => Encoding::Postcard,
        _ => Encoding::Json,
    };
    let bytes = if implementation == "postcard-derive" && kind == FrameKind::Register {
        // As in benches/framing.rs: the derived layout has a `Vec` (a count prefix) where the
        // wire has a byte length, so it decodes its own bytes.
        let mut own = vec![0u8; 64 * 1024];
        let n = postcard::to_slice(&pc::register_frame(), &mut own)
            .expect("encodes")
            .len();
        own.truncate(n);
        own
    } else {
        kind.frame(match implementation.as_str() {
            "postcard-derive" => Encoding::Postcard,
            _ => encoding,
        })
    };
    let bytes = &bytes[..];

    for _ in 0..iterations {
        match implementation.as_str() {
            "toolwire-json" | "toolwire-postcard" => {
                let m = codec::decode(black_box(bytes), encoding, &limits);
                if let Ok(Message::Response { result: Ok(p), .. }) = &m {
                    let _ = black_box(p.decode::<Json<'_>>(&limits));
                }
                let _ = black_box(m);
            }
            "serde_json" => match kind {
                FrameKind::Register => {
                    let _ = black_box(serde_json::from_slice::<json::RegisterRequest<'_>>(
                        black_box(bytes),
                    ));
                }
                FrameKind::Result => {
                    let _ = black_box(serde_json::from_slice::<json::Response<'_>>(black_box(
                        bytes,
                    )));
                }
                _ => {
                    let _ = black_box(serde_json::from_slice::<json::ExecuteRequest<'_>>(
                        black_box(bytes),
                    ));
                }
            },
            "jsonrpsee" => {
                let _ = black_box(serde_json::from_slice::<jsonrpsee_types::Request<'_>>(
                    black_box(bytes),
                ));
            }
            "postcard-derive" => match kind {
                FrameKind::Result => {
                    let _ = black_box(postcard::from_bytes::<pc::ResultFrame<'_>>(black_box(
                        bytes,
                    )));
                }
                _ => {
                    let _ = black_box(postcard::from_bytes::<pc::RequestFrame<'_>>(black_box(
                        bytes,
                    )));
                }
            },
            _ => panic!("{usage}"),
        }
    }
}
