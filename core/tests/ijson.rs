//! I-JSON (RFC 7493) on top of strict RFC 8259: no object repeats a member name, compared after
//! unescaping, at any depth of a JSON value that travels, in both encodings; and the bound on
//! the names open at once that keeps the check linear.

use toolwire_core::codec::{self, DecodeError, Limits, Message};
use toolwire_core::frame::*;
use toolwire_core::json::{self, Cursor, JsonErrorKind, MAX_OPEN_NAMES};
use toolwire_core::wire::FieldError;
use toolwire_core::{Encoding, ErrorCode, Id, Json, List, Str};

fn verdict(text: &str) -> Result<(), JsonErrorKind> {
    json::validate(text.as_bytes(), 100).map_err(|e| e.kind)
}

fn dup(text: &str) {
    assert_eq!(
        verdict(text),
        Err(JsonErrorKind::DuplicateName),
        "accepted: {text}"
    );
}

fn ok(text: &str) {
    assert_eq!(verdict(text), Ok(()), "refused: {text}");
}

#[test]
fn duplicate_names_are_refused_at_every_depth() {
    dup(r#"{"channel":7,"channel":2}"#);
    dup(r#"{"a":1,"b":2,"a":3}"#);
    dup(r#"{"":1,"":2}"#);
    dup(r#"{"x":{"a":1,"a":2}}"#);
    dup(r#"[1,{"a":1,"a":2}]"#);
    dup(r#"{"l":[{"ok":1},{"a":[],"a":{}}]}"#);
    // The outer object's names survive an inner object in between.
    dup(r#"{"a":{"b":1,"c":2},"b":2,"a":3}"#);
    dup(r#"{"a":[{"b":1}],"a":0}"#);
    // Past the 64 containers the scanner tracks in one word, nested scans check too.
    let deep = format!(r#"{}{{"a":1,"a":2}}{}"#, "[".repeat(70), "]".repeat(70));
    dup(&deep);
}

#[test]
fn names_are_compared_unescaped() {
    dup(r#"{"a":1,"\u0061":2}"#);
    dup(r#"{"\u0061":1,"a":2}"#);
    dup(r#"{"\u0061":1,"\u0061":2}"#);
    dup(r#"{"ab":1,"a\u0062":2}"#);
    dup(r#"{"/":1,"\/":2}"#);
    dup(r#"{"\n":1,"\u000a":2}"#);
    dup(r#"{"aé":1,"a\u00e9":2}"#);
    dup(r#"{"\u00E9":1,"é":2}"#);
    dup(r#"{"😀":1,"\ud83d\ude00":2}"#);
    dup(r#"{"x\"y":1,"x\u0022y":2}"#);
    ok(r#"{"a":1,"\u0062":2}"#);
    ok(r#"{"\u0061b":1,"a":2}"#);
    ok(r#"{"a":1,"a\u0000":2}"#);
    ok(r#"{"\ud83d\ude00":1,"\ud83d\ude01":2}"#);
}

#[test]
fn distinct_names_pass() {
    ok(r#"{"a":1,"ab":2,"abc":3,"b":4,"ba":5}"#);
    ok(r#"{"sensor_temperature_1":1,"sensor_temperature_2":2,"sensor_temperature_10":3}"#);
    ok(r#"{"a":{"a":{"a":1}},"b":{"a":1}}"#);
    ok(r#"[{"a":1},{"a":2},{"a":3}]"#);
    ok(r#"{"aaaaaaaaaaaaaaaa":1,"aaaaaaaaaaaaaaab":2,"baaaaaaaaaaaaaaa":3}"#);
    ok("{}");
    ok(r#"{"a":{},"b":[],"c":[{}]}"#);
}

fn object(n: usize, dup_last: bool) -> String {
    let mut s = String::from("{");
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        let k = if dup_last && i == n - 1 { 0 } else { i };
        s.push_str(&format!(r#""key{k:04}":{i}"#));
    }
    s.push('}');
    s
}

#[test]
fn large_objects_up_to_the_bound() {
    // Beyond the small table (16 names), the value is scanned again with the large one.
    for n in [15, 16, 17, 100, MAX_OPEN_NAMES] {
        ok(&object(n, false));
        dup(&object(n, true));
    }
    assert_eq!(
        verdict(&object(MAX_OPEN_NAMES + 1, false)),
        Err(JsonErrorKind::TooManyMembers)
    );
    // The bound is on names open at once: a closed object's names no longer count...
    let many = format!("[{},{}]", object(200, false), object(200, false));
    ok(&many);
    // ...but those of the objects around an object do.
    let inner = object(100, false);
    let outer = object(200, false);
    let nested = format!(r#"{},"z":{inner}}}"#, &outer[..outer.len() - 1]);
    assert_eq!(verdict(&nested), Err(JsonErrorKind::TooManyMembers));
}

#[test]
fn a_duplicate_is_found_where_it_is() {
    let e = json::validate(br#"{"a":1, "a":2}"#, 32).unwrap_err();
    assert_eq!((e.kind, e.offset), (JsonErrorKind::DuplicateName, 8));
    // Syntax errors before the duplicate are reported as such.
    let e = json::validate(br#"{"a":01,"a":2}"#, 32).unwrap_err();
    assert_eq!(e.kind, JsonErrorKind::BadNumber);
    // A skip that checks syntax only lets names repeat.
    let mut c = Cursor::new(br#"{"a":1,"a":2}"#, 32).unwrap();
    assert!(c.skip_syntax().is_ok());
    assert!(Json::parse(br#"{"a":1,"a":2}"#).is_err());
}

// ----- frames

const EXEC_DUP: &[u8] = br#"{"jsonrpc":"2.0","id":7,"method":"execute","params":{"tool":"set","arguments":{"channel":7,"channel":2}}}"#;

fn params_dup(r: &codec::Rejected<'_>) -> bool {
    matches!(r.error, DecodeError::InvalidParams(FieldError::Json(e)) if e.kind == JsonErrorKind::DuplicateName)
}

fn result_dup(r: &codec::Rejected<'_>) -> bool {
    matches!(r.error, DecodeError::BadResult(FieldError::Json(e)) if e.kind == JsonErrorKind::DuplicateName)
}

fn json_frame(f: &[u8]) -> codec::Rejected<'_> {
    codec::decode(f, Encoding::Json, &Limits::default()).expect_err("accepted")
}

#[test]
fn json_requests_with_duplicates_get_invalid_params() {
    for f in [
        EXEC_DUP,
        br#"{"jsonrpc":"2.0","id":7,"method":"tools.call","params":{"node":"n","tool":"t","arguments":{"a":{"b":[{"c":1,"\u0063":2}]}}}}"#,
        // params before method: read once the method is known.
        br#"{"jsonrpc":"2.0","id":7,"params":{"tool":"set","arguments":{"a":1,"a":1}},"method":"execute"}"#,
        br#"{"jsonrpc":"2.0","id":7,"method":"register","params":{"tools":[{"name":"t","description":"","input_schema":{"type":"object","type":"array"}}]}}"#,
        br#"{"jsonrpc":"2.0","id":7,"method":"ask","params":{"call":1,"kind":"input","prompt":"?","schema":{"x":1,"x":2}}}"#,
    ] {
        let r = json_frame(f);
        assert!(params_dup(&r), "{r:?}");
        assert_eq!(r.error.code(), ErrorCode::InvalidParams);
        assert_eq!(r.reply_to, Some(Id::Num(7)));
    }
    // A syntax error later in the frame is still a parse error.
    let r = json_frame(
        br#"{"jsonrpc":"2.0","id":7,"method":"execute","params":{"tool":"t","arguments":{"a":1,"a":2}},"x":01}"#,
    );
    assert_eq!(r.error.code(), ErrorCode::ParseError);
    // Members the decoder ignores are checked for syntax only.
    let ignored = br#"{"jsonrpc":"2.0","id":7,"method":"ping","x":{"a":1,"a":2}}"#;
    assert!(codec::decode(ignored, Encoding::Json, &Limits::default()).is_ok());
}

#[test]
fn json_notifications_and_responses_with_duplicates_are_dropped() {
    let r = json_frame(
        br#"{"jsonrpc":"2.0","method":"progress","params":{"id":1,"progress":1,"partial":{"a":1,"a":2}}}"#,
    );
    assert!(params_dup(&r) && r.reply_to.is_none(), "{r:?}");
    let r = json_frame(br#"{"jsonrpc":"2.0","id":1,"result":{"v":1,"v":2}}"#);
    assert!(result_dup(&r) && r.reply_to.is_none(), "{r:?}");
    let r = json_frame(br#"{"jsonrpc":"2.0","id":1,"result":[{"v":1,"\u0076":2}]}"#);
    assert!(result_dup(&r) && r.reply_to.is_none(), "{r:?}");
    let r = json_frame(
        br#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"m","data":{"d":1,"d":2}}}"#,
    );
    assert!(result_dup(&r) && r.reply_to.is_none(), "{r:?}");
}

fn postcard_request(r: &Request<'_>) -> Vec<u8> {
    let mut out = vec![0u8; 1024];
    let n = codec::encode_request(Encoding::Postcard, Id::Num(7), r, &mut out).unwrap();
    out.truncate(n);
    out
}

#[test]
fn postcard_values_with_duplicates_are_refused_too() {
    let args = Json::trusted(br#"{"channel":7,"channel":2}"#);
    let ex = postcard_request(&Request::Execute(Execute {
        tool: Str::new("set"),
        arguments: args,
        deadline_ms: None,
    }));
    let r = codec::decode(&ex, Encoding::Postcard, &Limits::default()).unwrap_err();
    assert!(params_dup(&r), "{r:?}");
    assert_eq!(r.error.code(), ErrorCode::InvalidParams);
    assert_eq!(r.reply_to, Some(Id::Num(7)));

    let schema = Json::trusted(br#"{"properties":{"a":{},"\u0061":{}}}"#);
    let tools = [ToolDef {
        name: Str::new("t"),
        description: Str::new(""),
        input_schema: schema,
        output_schema: None,
        annotations: Annotations::NONE,
    }];
    let reg = postcard_request(&Request::Register(Register {
        tools: List::from_slice(&tools),
    }));
    let r = codec::decode(&reg, Encoding::Postcard, &Limits::default()).unwrap_err();
    assert!(params_dup(&r), "{r:?}");

    // A result: the frame decodes (its payload is read with the type the request expects),
    // the payload does not.
    let mut out = [0u8; 256];
    let value = Json::trusted(br#"{"v":[{"x":1,"x":2}]}"#);
    let n = codec::encode_result(Encoding::Postcard, Id::Num(1), &value, &mut out).unwrap();
    let Ok(Message::Response {
        result: Ok(payload),
        ..
    }) = codec::decode(&out[..n], Encoding::Postcard, &Limits::default())
    else {
        panic!("result frame")
    };
    let e = payload.decode::<Json<'_>>(&Limits::default()).unwrap_err();
    assert!(
        matches!(e, DecodeError::BadResult(FieldError::Json(j)) if j.kind == JsonErrorKind::DuplicateName),
        "{e:?}"
    );
    // The same value without the duplicate goes through.
    let value = Json::trusted(br#"{"v":[{"x":1,"y":2}]}"#);
    let n = codec::encode_result(Encoding::Postcard, Id::Num(1), &value, &mut out).unwrap();
    let Ok(Message::Response {
        result: Ok(payload),
        ..
    }) = codec::decode(&out[..n], Encoding::Postcard, &Limits::default())
    else {
        panic!("result frame")
    };
    assert_eq!(payload.decode::<Json<'_>>(&Limits::default()), Ok(value));
}

#[test]
fn every_length_hashes_alike_plain_and_escaped() {
    // The fingerprint of a plain name is computed from its bytes a word at a time, that of an
    // escaped one from its unescaped bytes one by one: they must agree at every length.
    let text = "abcdefghijklmnopqrstuvwxyz";
    for n in 1..=text.len() {
        let plain = &text[..n];
        let last = plain.as_bytes()[n - 1];
        let escaped_last = format!("{}\\u{:04x}", &plain[..n - 1], last);
        let escaped_first = format!("\\u{:04X}{}", plain.as_bytes()[0], &plain[1..]);
        dup(&format!(r#"{{"{plain}":1,"{escaped_last}":2}}"#));
        dup(&format!(r#"{{"{escaped_first}":1,"{plain}":2}}"#));
        dup(&format!(r#"{{"{plain}":1,"{plain}":2}}"#));
        ok(&format!(r#"{{"{plain}":1,"{plain}x":2,"x{plain}":3}}"#));
    }
}
