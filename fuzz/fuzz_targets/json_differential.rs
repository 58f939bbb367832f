//! The strict scanner against serde_json: the same accept/reject verdict on every input both
//! can judge (serde_json's recursion limit of 128 and its refusal of numbers beyond f64 are
//! limits RFC 8259 allows, not verdicts; so is our bound on member names open at once).
//!
//! serde_json accepts repeated member names (its `Value` keeps the last); we refuse them
//! (I-JSON). So serde_json parses into `Unique`, which fails on a name seen twice in one object,
//! comparing the names serde_json has unescaped: a check of our unescaping comparison as well.
#![no_main]

use std::collections::HashSet;
use std::fmt;

use libfuzzer_sys::fuzz_target;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use toolwire_core::json::{JsonErrorKind, validate};

/// Above serde_json's limit, so that its limit is the one hit first.
const OUR_DEPTH: u16 = 256;

const DUPLICATE: &str = "duplicate member name";

/// Any JSON value whose objects have unique member names.
struct Unique;

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Unique;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_unit<E>(self) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        while seq.next_element::<Unique>()?.is_some() {}
        Ok(Unique)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let mut seen = HashSet::new();
        while let Some(k) = map.next_key::<String>()? {
            if !seen.insert(k) {
                return Err(de::Error::custom(DUPLICATE));
            }
            map.next_value::<Unique>()?;
        }
        Ok(Unique)
    }
}

fuzz_target!(|data: &[u8]| {
    let ours = validate(data, OUR_DEPTH);
    if matches!(ours, Err(e) if matches!(e.kind, JsonErrorKind::TooDeep | JsonErrorKind::TooManyMembers))
    {
        return;
    }
    let theirs = serde_json::from_slice::<Unique>(data);
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
    // A duplicate is all that is wrong up to where we stopped (the text is UTF-8 and its syntax
    // valid so far), so serde_json stops at the same name for the same reason.
    if matches!(ours, Err(e) if e.kind == JsonErrorKind::DuplicateName) {
        let msg = theirs.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.starts_with(DUPLICATE),
            "we found a duplicate name in {:?}, serde_json: {msg}",
            String::from_utf8_lossy(data)
        );
    }
    // A text that validates also walks: skip_value returns the whole value, trimmed.
    if ours.is_ok() {
        let v = toolwire_core::Json::parse_with_depth(data, OUR_DEPTH).expect("validated text");
        let trimmed = data.trim_ascii();
        assert_eq!(v.as_bytes(), trimmed);
    }
});
