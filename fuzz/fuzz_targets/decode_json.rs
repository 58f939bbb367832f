//! Any bytes as a JSON-RPC frame: decoding never panics; a decoded frame re-encodes to one that
//! decodes equal (and to the same frame in postcard); a rejected one gets an answer that decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use toolwire_core::Encoding;

fuzz_target!(|data: &[u8]| toolwire_fuzz::check_decode(data, Encoding::Json));
