use toolwire_core::codec::*;
use toolwire_core::frame::*;
use toolwire_core::*;

#[test]
fn execute_roundtrip_both() {
    let ex = Request::Execute(Execute {
        tool: Str::new("read_sensor"),
        arguments: Json::parse(br#"{"channel":2}"#).unwrap(),
        deadline_ms: Some(5000),
    });
    for enc in [Encoding::Json, Encoding::Postcard] {
        let mut buf = [0u8; 256];
        let n = encode_request(enc, Id::Num(7), &ex, &mut buf).unwrap();
        println!("{enc:?} {n} {:?}", String::from_utf8_lossy(&buf[..n]));
        let m = decode(&buf[..n], enc, &Limits::default()).unwrap();
        assert_eq!(
            m,
            Message::Request {
                id: Id::Num(7),
                request: ex
            }
        );
    }
}
