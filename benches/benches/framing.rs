//! Codec and stream-framing benchmarks: toolwire-core against serde_json, jsonrpsee-types,
//! plain postcard and the cobs crate, on the same bytes. See `benches/README.md`.
//!
//! Ids are `{encode,decode}/{frame}/{implementation}/{frame size}`; throughput is the frame's
//! bytes, so criterion prints MiB/s, and frames/s is 1 / time (`benches/summarize.py` prints
//! both, with ratios).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use toolwire_benches::fixtures::{self, FrameKind};
use toolwire_benches::peers::{json, pc};
use toolwire_core::codec::{self, Message};
use toolwire_core::frame::Request;
use toolwire_core::stream::{self, Deframed, Deframer};
use toolwire_core::{Encoding, Id, Json, Limits};

/// Large enough for every fixture frame.
const BUF: usize = 64 * 1024;

fn id(implementation: &str, size: usize) -> BenchmarkId {
    BenchmarkId::new(implementation, format!("{size}B"))
}

fn bytes(n: usize) -> Throughput {
    Throughput::Bytes(n as u64)
}

fn encode(c: &mut Criterion) {
    let mut out = vec![0u8; BUF];
    for kind in FrameKind::ALL {
        let mut g = c.benchmark_group(format!("encode/{}", kind.name()));
        let request_id = Id::Num(kind.id());
        let register = fixtures::register();
        let execute = match kind {
            FrameKind::Execute4k => fixtures::execute_4k(),
            _ => fixtures::execute_small(),
        };
        let result = fixtures::result_value();

        for enc in [Encoding::Json, Encoding::Postcard] {
            let n = fixtures::encode(kind, enc, &mut out).unwrap();
            g.throughput(bytes(n));
            let name = match enc {
                Encoding::Json => "toolwire-json",
                Encoding::Postcard => "toolwire-postcard",
            };
            g.bench_function(id(name, n), |b| match kind {
                FrameKind::Register => b.iter(|| {
                    let r = Request::Register(register);
                    black_box(codec::encode_request(
                        enc,
                        request_id,
                        black_box(&r),
                        &mut out,
                    ))
                }),
                FrameKind::ExecuteSmall | FrameKind::Execute4k => b.iter(|| {
                    let r = Request::Execute(execute);
                    black_box(codec::encode_request(
                        enc,
                        request_id,
                        black_box(&r),
                        &mut out,
                    ))
                }),
                FrameKind::Result => b.iter(|| {
                    black_box(codec::encode_result(
                        enc,
                        request_id,
                        black_box(&result),
                        &mut out,
                    ))
                }),
            });
        }

        // serde_json writing the same JSON bytes into the same kind of fixed buffer.
        fn to_slice<T: serde::Serialize>(v: &T, out: &mut [u8]) -> usize {
            let cap = out.len();
            let mut w = out;
            serde_json::to_writer(&mut w, v).unwrap();
            cap - w.len()
        }
        let n = kind.frame(Encoding::Json).len();
        g.throughput(bytes(n));
        match kind {
            FrameKind::Register => {
                let v = json::register_request();
                g.bench_function(id("serde_json", n), |b| {
                    b.iter(|| black_box(to_slice(black_box(&v), &mut out)))
                });
            }
            FrameKind::ExecuteSmall | FrameKind::Execute4k => {
                let v = json::execute_request(kind);
                g.bench_function(id("serde_json", n), |b| {
                    b.iter(|| black_box(to_slice(black_box(&v), &mut out)))
                });
            }
            FrameKind::Result => {
                let v = json::response();
                g.bench_function(id("serde_json", n), |b| {
                    b.iter(|| black_box(to_slice(black_box(&v), &mut out)))
                });
            }
        }

        // Plain derived postcard: the reference point for our postcard encoder.
        let (v_req, v_res) = match kind {
            FrameKind::Register => (Some(pc::register_frame()), None),
            FrameKind::ExecuteSmall | FrameKind::Execute4k => (Some(pc::execute_frame(kind)), None),
            FrameKind::Result => (None, Some(pc::result_frame())),
        };
        let n = match (&v_req, &v_res) {
            (Some(v), _) => postcard::to_slice(v, &mut out).unwrap().len(),
            (_, Some(v)) => postcard::to_slice(v, &mut out).unwrap().len(),
            _ => unreachable!(),
        };
        g.throughput(bytes(n));
        g.bench_function(id("postcard-derive", n), |b| match (&v_req, &v_res) {
            (Some(v), _) => {
                b.iter(|| black_box(postcard::to_slice(black_box(v), &mut out).is_ok()))
            }
            (_, Some(v)) => {
                b.iter(|| black_box(postcard::to_slice(black_box(v), &mut out).is_ok()))
            }
            _ => unreachable!(),
        });
        g.finish();
    }
}

fn decode(c: &mut Criterion) {
    let limits = Limits::default();
    for kind in FrameKind::ALL {
        let mut g = c.benchmark_group(format!("decode/{}", kind.name()));
        let json_frame = kind.frame(Encoding::Json);
        let pc_frame = kind.frame(Encoding::Postcard);
        let jf = &json_frame[..];
        let n = jf.len();
        g.throughput(bytes(n));

        match kind {
            FrameKind::Register => {
                // A gateway decodes, then walks the lazily read tool list to register each.
                g.bench_function(id("toolwire-json", n), |b| {
                    b.iter(|| decode_register(black_box(jf), Encoding::Json, &limits))
                });
                g.bench_function(id("toolwire-json-no-iter", n), |b| {
                    b.iter(|| black_box(codec::decode(black_box(jf), Encoding::Json, &limits)))
                });
                g.bench_function(id("serde_json", n), |b| {
                    b.iter(|| {
                        black_box(serde_json::from_slice::<json::RegisterRequest<'_>>(
                            black_box(jf),
                        ))
                    })
                });
            }
            FrameKind::ExecuteSmall | FrameKind::Execute4k => {
                g.bench_function(id("toolwire-json", n), |b| {
                    b.iter(|| black_box(codec::decode(black_box(jf), Encoding::Json, &limits)))
                });
                g.bench_function(id("serde_json", n), |b| {
                    b.iter(|| {
                        black_box(serde_json::from_slice::<json::ExecuteRequest<'_>>(
                            black_box(jf),
                        ))
                    })
                });
                g.bench_function(id("jsonrpsee", n), |b| {
                    b.iter(|| {
                        black_box(serde_json::from_slice::<jsonrpsee_types::Request<'_>>(
                            black_box(jf),
                        ))
                    })
                });
                // What a jsonrpsee server does to get at the typed params: a second parse.
                g.bench_function(id("jsonrpsee+params", n), |b| {
                    b.iter(|| {
                        let req: jsonrpsee_types::Request<'_> =
                            serde_json::from_slice(black_box(jf)).unwrap();
                        let params = req.params();
                        let p: json::ExecuteParams<'_> = params.parse().unwrap();
                        black_box((p.tool, p.arguments, p.deadline_ms));
                        black_box(req.id)
                    })
                });
            }
            FrameKind::Result => {
                // A gateway decodes, then reads the payload as a `Json` value (what
                // `Gateway::handle_frame` does for a call's result).
                g.bench_function(id("toolwire-json", n), |b| {
                    b.iter(|| decode_result(black_box(jf), Encoding::Json, &limits))
                });
                g.bench_function(id("toolwire-json-envelope", n), |b| {
                    b.iter(|| black_box(codec::decode(black_box(jf), Encoding::Json, &limits)))
                });
                g.bench_function(id("serde_json", n), |b| {
                    b.iter(|| {
                        black_box(serde_json::from_slice::<json::Response<'_>>(black_box(jf)))
                    })
                });
            }
        }

        let pf = &pc_frame[..];
        let n = pf.len();
        g.throughput(bytes(n));
        g.bench_function(id("toolwire-postcard", n), |b| match kind {
            FrameKind::Register => {
                b.iter(|| decode_register(black_box(pf), Encoding::Postcard, &limits))
            }
            FrameKind::Result => {
                b.iter(|| decode_result(black_box(pf), Encoding::Postcard, &limits))
            }
            _ => b.iter(|| black_box(codec::decode(black_box(pf), Encoding::Postcard, &limits))),
        });

        // Plain derived postcard (for register, its own bytes: a Vec has a count prefix).
        let mut own = vec![0u8; BUF];
        let pf = match kind {
            FrameKind::Register => {
                let n = postcard::to_slice(&pc::register_frame(), &mut own)
                    .unwrap()
                    .len();
                &own[..n]
            }
            _ => pf,
        };
        let n = pf.len();
        g.throughput(bytes(n));
        g.bench_function(id("postcard-derive", n), |b| match kind {
            FrameKind::Result => {
                b.iter(|| black_box(postcard::from_bytes::<pc::ResultFrame<'_>>(black_box(pf))))
            }
            _ => b.iter(|| black_box(postcard::from_bytes::<pc::RequestFrame<'_>>(black_box(pf)))),
        });
        g.finish();
    }
}

/// Decodes a register frame and reads every tool out of its list.
fn decode_register(frame: &[u8], enc: Encoding, limits: &Limits) -> usize {
    let m = codec::decode(frame, enc, limits);
    let mut n = 0;
    if let Ok(Message::Request {
        request: Request::Register(r),
        ..
    }) = &m
    {
        for t in r.tools.iter() {
            black_box(t);
            n += 1;
        }
    }
    let _ = black_box(m);
    n
}

/// Decodes a result frame and its payload as a validated `Json`.
fn decode_result<'a>(frame: &'a [u8], enc: Encoding, limits: &Limits) -> Option<Json<'a>> {
    let m = codec::decode(frame, enc, limits);
    match black_box(m) {
        Ok(Message::Response { id, result: Ok(p) }) => {
            black_box(id);
            black_box(p.decode::<Json<'a>>(limits).ok())
        }
        _ => None,
    }
}

fn cobs(c: &mut Criterion) {
    let payloads = fixtures::stream_payloads();
    let payload_bytes: usize = payloads.iter().map(Vec::len).sum();
    let mut out = vec![
        0u8;
        payloads
            .iter()
            .map(|p| stream::max_encoded_len(p.len()))
            .sum()
    ];

    let mut g = c.benchmark_group(format!("cobs-encode/{}-frames", payloads.len()));
    g.throughput(bytes(payload_bytes));
    g.bench_function(id("toolwire", payload_bytes), |b| {
        b.iter(|| {
            let mut at = 0;
            for p in &payloads {
                at += stream::encode_frame(black_box(p), &mut out[at..]).unwrap();
            }
            black_box(&out[..at]);
            at
        })
    });
    g.bench_function(id("cobs", payload_bytes), |b| {
        b.iter(|| {
            let mut at = 0;
            for p in &payloads {
                at += cobs::encode(black_box(p), &mut out[at..]);
                out[at] = 0;
                at += 1;
            }
            black_box(&out[..at]);
            at
        })
    });
    g.finish();

    let mut wire = Vec::new();
    for p in &payloads {
        let n = stream::encode_frame(p, &mut out).unwrap();
        wire.extend_from_slice(&out[..n]);
    }
    let mut g = c.benchmark_group(format!("cobs-decode/{}-frames", payloads.len()));
    g.throughput(bytes(wire.len()));
    let mut deframer = Deframer::new(vec![0u8; BUF]);
    g.bench_function(id("toolwire", wire.len()), |b| {
        b.iter(|| {
            let mut input = black_box(&wire[..]);
            let mut frames = 0;
            while !input.is_empty() {
                let (used, got) = deframer.push(input);
                input = &input[used..];
                if let Deframed::Frame(f) = got {
                    black_box(f);
                    frames += 1;
                }
            }
            frames
        })
    });
    let mut dest = vec![0u8; BUF];
    g.bench_function(id("cobs", wire.len()), |b| {
        b.iter(|| {
            let mut input = black_box(&wire[..]);
            let mut frames = 0;
            while !input.is_empty() {
                let mut dec = cobs::CobsDecoder::new(&mut dest);
                match dec.push(input) {
                    Ok(Some((n, used))) => {
                        input = &input[used..];
                        black_box(&dest[..n]);
                        frames += 1;
                    }
                    _ => break,
                }
            }
            frames
        })
    });
    g.finish();
}

fn config() -> Criterion {
    // ~2.5 s per benchmark: long enough for stable medians, short enough that the whole suite
    // (about 40 benchmarks) stays around two minutes.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = framing;
    config = config();
    targets = encode, decode, cobs
}
criterion_main!(framing);
