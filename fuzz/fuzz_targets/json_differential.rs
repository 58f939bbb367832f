//! The strict scanner against serde_json: the same accept/reject verdict on every input both
//! can judge (serde_json's recursion limit of 128 and its refusal of numbers beyond f64 are
//! limits RFC 8259 allows, not verdicts).
#![no_main]

use libfuzzer_sys::fuzz_target;
use toolwire_core::json::{JsonErrorKind, validate};

/// Above serde_json's limit, so that its limit is the one hit first.
const OUR_DEPTH: u16 = 256;

fuzz_target!(|data: &[u8]| {
    let ours = validate(data, OUR_DEPTH);
    if matches!(ours, Err(e) if e.kind == JsonErrorKind::TooDeep) {
        return;
    }
    let theirs = serde_json::from_slice::<serde_json::Value>(data);
    if let Err(e) = &theirs {
        let msg = e.to_string();
        if msg.starts_with("recursion limit exceeded") || msg.starts_with("number out of range") {
            return;
        }
    }
    match (&ours, &theirs) {
        (Ok(()), Ok(_)) | (Err(_), Err(_)) => {}
        _ => panic!(
            "verdicts differ on {:?}: ours {ours:?}, serde_json {:?}",
            String::from_utf8_lossy(data),
            theirs.map(|_| ()).map_err(|e| e.to_string())
        ),
    }
    // A text that validates also walks: skip_value returns the whole value, trimmed.
    if ours.is_ok() {
        let v = toolwire_core::Json::parse_with_depth(data, OUR_DEPTH).expect("validated text");
        let trimmed = data.trim_ascii();
        assert_eq!(v.as_bytes(), trimmed);
    }
});
