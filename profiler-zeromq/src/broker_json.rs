//! The `broker-json-v1` payload of a Zeek cluster event (the ZeroMQ backend's
//! `Cluster::Backend::ZeroMQ` with the JSON event serializer), decoded into the same [`Value`]
//! as `broker-bin-v1`.
//!
//! The format, from Broker's `libbroker/broker/format/json.hh` (encoder),
//! `libbroker/broker/internal/json.cc` (what Broker accepts) and `doc/web-socket.rst`: every
//! value is an object `{"@data-type": T, "data": D}` with T one of `none` (D `{}`), `boolean`,
//! `count`, `integer`, `real`, `string`, `enum-value`, `address`, `subnet` (`"a/len"`), `port`
//! (`"n/tcp|udp|icmp|?"`), `timestamp` (`"YYYY-MM-DDThh:mm:ss.sss"`), `timespan`
//! (`"<int><ns|us|ms|s|min|h|d>"`), `vector`, `set` (arrays of values) and `table` (array of
//! `{"key": value, "value": value}`). Zeek's serializer (`src/cluster/serializer/broker/
//! Serializer.cc`) sends the event's bare top-level value; a WebSocket data message also has
//! `type` and `topic` keys, which are ignored here.
//!
//! Broker's encoder is not a strict JSON writer: it escapes `\v` (not a JSON escape), copies
//! other control characters raw, and prints non-finite reals as `nan`/`inf`. Input that a
//! strict parser refuses is therefore retried once after a bounded, linear repair pass.
use std::net::IpAddr;

use serde_json::Value as Json;

use super::broker_bin::{DecodeError, Event, MAX_DEPTH, MAX_VALUES, Protocol, Value, event_from_value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("payload is not UTF-8")]
    NotUtf8,
    #[error("payload is not JSON: {0}")]
    NotJson(String),
    #[error("expected an object with @data-type and data")]
    NotAValue,
    #[error("unknown @data-type {0:?}")]
    UnknownType(String),
    #[error("invalid data for @data-type {0}")]
    BadData(&'static str),
    #[error("nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("more than {MAX_VALUES} values")]
    TooManyValues,
    #[error(transparent)]
    Event(#[from] DecodeError),
}

/// Decodes one `broker-json-v1` value.
pub fn decode_value(bytes: &[u8]) -> Result<Value, JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|_| JsonError::NotUtf8)?;
    let json: Json = match serde_json::from_str(text) {
        Ok(json) => json,
        Err(first) => match repair(text) {
            Some(repaired) => serde_json::from_str(&repaired).map_err(|_| JsonError::NotJson(first.to_string()))?,
            None => return Err(JsonError::NotJson(first.to_string())),
        },
    };
    let mut values = 0;
    convert(&json, 0, &mut values)
}

/// Decodes an event payload (`[1, 1, [name, args, (metadata)]]` in JSON form).
pub fn decode_event(bytes: &[u8]) -> Result<Event, JsonError> {
    Ok(event_from_value(decode_value(bytes)?)?)
}

/// Rewrites what Broker writes but JSON forbids: `\v` inside strings becomes `\u000b`, raw
/// control characters inside strings become `\u00XX`, and bare `nan`/`inf`/`-nan`/`-inf`
/// outside strings become the strings `"nan"`/`"inf"`/`"-inf"` (which `real` accepts). `None`
/// when there is nothing to repair. Linear, and the output is at most 6× the input.
fn repair(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 16);
    let mut changed = false;
    let mut in_string = false;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if in_string {
            match c {
                '"' => {
                    in_string = false;
                    out.push(c);
                }
                '\\' => match chars.next() {
                    Some((_, 'v')) => {
                        out.push_str("\\u000b");
                        changed = true;
                    }
                    Some((_, e)) => {
                        out.push('\\');
                        out.push(e);
                    }
                    None => out.push('\\'),
                },
                c if (c as u32) < 0x20 => {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                    changed = true;
                }
                c => out.push(c),
            }
            continue;
        }
        if c == '"' {
            in_string = true;
            out.push(c);
            continue;
        }
        let rest = &text[i..];
        let word = ["-nan", "-inf", "nan", "inf"].into_iter().find(|w| rest.starts_with(w));
        if let Some(word) = word {
            out.push_str(match word {
                "-inf" => "\"-inf\"",
                "inf" => "\"inf\"",
                _ => "\"nan\"",
            });
            changed = true;
            // The words are ASCII: one char per byte.
            for _ in 1..word.len() {
                chars.next();
            }
            continue;
        }
        out.push(c);
    }
    changed.then_some(out)
}

fn convert(json: &Json, depth: usize, values: &mut usize) -> Result<Value, JsonError> {
    if depth > MAX_DEPTH {
        return Err(JsonError::TooDeep);
    }
    *values += 1;
    if *values > MAX_VALUES {
        return Err(JsonError::TooManyValues);
    }
    let object = json.as_object().ok_or(JsonError::NotAValue)?;
    let (Some(Json::String(data_type)), Some(data)) = (object.get("@data-type"), object.get("data")) else {
        return Err(JsonError::NotAValue);
    };
    let string = |what: &'static str| data.as_str().ok_or(JsonError::BadData(what));
    let items = |what: &'static str| data.as_array().ok_or(JsonError::BadData(what));
    Ok(match data_type.as_str() {
        // Broker accepts any data for none; its encoder writes {}.
        "none" => Value::None,
        "boolean" => Value::Bool(data.as_bool().ok_or(JsonError::BadData("boolean"))?),
        "count" => Value::Count(data.as_u64().ok_or(JsonError::BadData("count"))?),
        "integer" => Value::Integer(data.as_i64().ok_or(JsonError::BadData("integer"))?),
        "real" => Value::Real(match data {
            Json::Number(n) => n.as_f64().ok_or(JsonError::BadData("real"))?,
            Json::String(s) => match s.as_str() {
                "nan" => f64::NAN,
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                _ => return Err(JsonError::BadData("real")),
            },
            _ => return Err(JsonError::BadData("real")),
        }),
        "string" => Value::String(string("string")?.to_owned()),
        "enum-value" => Value::Enum(string("enum-value")?.to_owned()),
        "address" => Value::Address(string("address")?.parse().map_err(|_| JsonError::BadData("address"))?),
        "subnet" => subnet(string("subnet")?).ok_or(JsonError::BadData("subnet"))?,
        "port" => port(string("port")?).ok_or(JsonError::BadData("port"))?,
        "timestamp" => Value::Timestamp(timestamp(string("timestamp")?).ok_or(JsonError::BadData("timestamp"))?),
        "timespan" => Value::Timespan(timespan(string("timespan")?).ok_or(JsonError::BadData("timespan"))?),
        "vector" => {
            Value::List(items("vector")?.iter().map(|x| convert(x, depth + 1, values)).collect::<Result<_, _>>()?)
        }
        "set" => Value::Set(items("set")?.iter().map(|x| convert(x, depth + 1, values)).collect::<Result<_, _>>()?),
        "table" => Value::Table(
            items("table")?
                .iter()
                .map(|pair| {
                    let (Some(key), Some(value)) = (pair.get("key"), pair.get("value")) else {
                        return Err(JsonError::BadData("table"));
                    };
                    Ok((convert(key, depth + 1, values)?, convert(value, depth + 1, values)?))
                })
                .collect::<Result<_, _>>()?,
        ),
        other => return Err(JsonError::UnknownType(other.chars().take(32).collect())),
    })
}

/// `address/length`, the length within the address family.
fn subnet(s: &str) -> Option<Value> {
    let (address, len) = s.split_once('/')?;
    let address: IpAddr = address.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some(Value::Subnet(address, len))
}

/// `number/protocol`, protocol `tcp`, `udp`, `icmp` or `?`.
fn port(s: &str) -> Option<Value> {
    let (number, protocol) = s.split_once('/')?;
    let protocol = match protocol {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "icmp" => Protocol::Icmp,
        "?" => Protocol::Unknown,
        _ => return None,
    };
    Some(Value::Port(number.parse().ok()?, protocol))
}

/// An integer with a unit suffix, in nanoseconds; `None` on overflow or anything else.
fn timespan(s: &str) -> Option<i64> {
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '-'))?;
    let (number, unit) = s.split_at(split);
    let number: i64 = number.parse().ok()?;
    let scale: i64 = match unit {
        "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        _ => return None,
    };
    number.checked_mul(scale)
}

/// ISO 8601 date and time, nanoseconds since the epoch: `YYYY-MM-DDThh:mm:ss`, an optional
/// fraction (1–9 digits) and an optional zone (`Z` or `±hh:mm`). Broker writes local time with
/// no zone; without one the time is taken as UTC.
pub fn timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let digits = |from: usize, n: usize| -> Option<i64> {
        let part = b.get(from..from + n)?;
        part.iter().all(u8::is_ascii_digit).then(|| part.iter().fold(0i64, |a, d| a * 10 + i64::from(d - b'0')))
    };
    let sep = |at: usize, c: &[u8]| b.get(at).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&month) || day < 1 || day > month_days[(month - 1) as usize] {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut at = 19;
    let mut nanos = 0i64;
    if sep(at, b".,") {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        let n = at - start;
        if n == 0 || n > 9 {
            return None;
        }
        nanos = digits(start, n)? * 10i64.pow((9 - n) as u32);
    }
    let offset = match &b[at..] {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (digits(at + 1, 2)?, digits(at + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            if *sign == b'+' { h * 60 + m } else { -(h * 60 + m) }
        }
        _ => return None,
    };
    // Days since 1970-01-01 from the civil date (H. Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset * 60;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode;

    fn json(v: &Value) -> String {
        let mut out = String::new();
        encode::json_value(v, &mut out);
        out
    }

    /// Golden vectors: the strings of Broker's own tests (`format/json.test.cc`) and of its
    /// documentation (`doc/web-socket.rst`), with the values they stand for.
    #[test]
    fn golden_vectors_from_the_spec() {
        let cases: Vec<(&str, Value)> = vec![
            (r#"{"@data-type":"none","data":{}}"#, Value::None),
            (r#"{"@data-type":"boolean","data":true}"#, Value::Bool(true)),
            (r#"{"@data-type":"count","data":123}"#, Value::Count(123)),
            (r#"{"@data-type":"count","data":18446744073709551615}"#, Value::Count(u64::MAX)),
            (r#"{"@data-type":"integer","data":-7}"#, Value::Integer(-7)),
            (r#"{"@data-type":"real","data":-7.5}"#, Value::Real(-7.5)),
            (r#"{"@data-type":"real","data":42.000000}"#, Value::Real(42.0)),
            (r#"{"@data-type":"timespan","data":"1500ms"}"#, Value::Timespan(1_500_000_000)),
            (r#"{"@data-type":"timespan","data":"0s"}"#, Value::Timespan(0)),
            (r#"{"@data-type":"timespan","data":"2min"}"#, Value::Timespan(120_000_000_000)),
            (r#"{"@data-type":"timespan","data":"-5us"}"#, Value::Timespan(-5_000)),
            (
                r#"{"@data-type":"timestamp","data":"2022-04-10T07:00:00.000"}"#,
                Value::Timestamp(1_649_574_000_000_000_000),
            ),
            (r#"{"@data-type":"string","data":"Hello World!"}"#, Value::String("Hello World!".into())),
            (r#"{"@data-type":"string","data":"foo\n\"bar"}"#, Value::String("foo\n\"bar".into())),
            (r#"{"@data-type":"enum-value","data":"foo"}"#, Value::Enum("foo".into())),
            (r#"{"@data-type":"address","data":"2001:db8::"}"#, Value::Address("2001:db8::".parse().unwrap())),
            (r#"{"@data-type":"address","data":"192.128.4.4"}"#, Value::Address("192.128.4.4".parse().unwrap())),
            (
                r#"{"@data-type":"subnet","data":"255.255.255.0/24"}"#,
                Value::Subnet("255.255.255.0".parse().unwrap(), 24),
            ),
            (r#"{"@data-type":"port","data":"8080/tcp"}"#, Value::Port(8080, Protocol::Tcp)),
            (r#"{"@data-type":"port","data":"0/?"}"#, Value::Port(0, Protocol::Unknown)),
            (
                r#"{"@data-type":"vector","data":[{"@data-type":"count","data":42},{"@data-type":"integer","data":23}]}"#,
                Value::List(vec![Value::Count(42), Value::Integer(23)]),
            ),
            (
                r#"{"@data-type":"set","data":[{"@data-type":"string","data":"foo"},{"@data-type":"string","data":"bar"}]}"#,
                Value::Set(vec![Value::String("foo".into()), Value::String("bar".into())]),
            ),
            (
                r#"{"@data-type":"table","data":[{"key":{"@data-type":"string","data":"first-name"},"value":{"@data-type":"string","data":"John"}}]}"#,
                Value::Table(vec![(Value::String("first-name".into()), Value::String("John".into()))]),
            ),
            // A WebSocket data message: type and topic beside the value.
            (r#"{"type":"data-message","topic":"/foo/bar","@data-type":"count","data":1}"#, Value::Count(1)),
            // Broker's quirks: \v, a raw control character, non-finite reals.
            (r#"{"@data-type":"string","data":"a\vb"}"#, Value::String("a\u{b}b".into())),
            ("{\"@data-type\":\"string\",\"data\":\"a\u{1}b\"}", Value::String("a\u{1}b".into())),
            (r#"{"@data-type":"real","data":inf}"#, Value::Real(f64::INFINITY)),
            (r#"{"@data-type":"real","data":-inf}"#, Value::Real(f64::NEG_INFINITY)),
        ];
        for (text, value) in cases {
            assert_eq!(decode_value(text.as_bytes()), Ok(value), "{text}");
        }
        assert!(matches!(decode_value(br#"{"@data-type":"real","data":nan}"#), Ok(Value::Real(x)) if x.is_nan()));
        assert!(matches!(decode_value(br#"{"@data-type":"real","data":-nan}"#), Ok(Value::Real(x)) if x.is_nan()));
    }

    #[test]
    fn decodes_the_documented_and_zeek_tested_events() {
        // doc/web-socket.rst, "Encoding of Zeek Events".
        let doc = r#"{"type":"data-message","topic":"/foo/bar","@data-type":"vector","data":[
            {"@data-type":"count","data":1},{"@data-type":"count","data":1},
            {"@data-type":"vector","data":[{"@data-type":"string","data":"event_1"},
              {"@data-type":"vector","data":[{"@data-type":"integer","data":42},{"@data-type":"string","data":"test"}]}]}]}"#;
        let e = decode_event(doc.as_bytes()).unwrap();
        assert_eq!((e.name.as_str(), e.args), ("event_1", vec![Value::Integer(42), Value::String("test".into())]));
        // Zeek's Serializer.cc roundtrip test string, with the network-timestamp metadata.
        let zeek = r#"{"@data-type":"vector","data":[{"@data-type":"count","data":1},{"@data-type":"count","data":1},{"@data-type":"vector","data":[{"@data-type":"string","data":"Supervisor::node_status"},{"@data-type":"vector","data":[{"@data-type":"string","data":"TEST"},{"@data-type":"count","data":42}]},{"@data-type":"vector","data":[{"@data-type":"vector","data":[{"@data-type":"count","data":1},{"@data-type":"timestamp","data":"1970-01-01T00:00:00.000"}]}]}]}]}"#;
        let e = decode_event(zeek.as_bytes()).unwrap();
        assert_eq!(e.name, "Supervisor::node_status");
        assert_eq!(e.args, vec![Value::String("TEST".into()), Value::Count(42)]);
        assert_eq!(e.metadata, vec![(1, Value::Timestamp(0))]);
    }

    #[test]
    fn encoder_output_decodes_to_the_same_value() {
        let v = Value::List(vec![
            Value::String("tab\there \u{b}\u{1f} \"q\" \\ é".into()),
            Value::Table(vec![(Value::Enum("Conn::LOG".into()), Value::Set(vec![Value::Real(0.5)]))]),
            Value::Subnet("2001:db8::".parse().unwrap(), 32),
            Value::Port(53, Protocol::Udp),
            Value::Timestamp(1_404_901_004_372_000_000),
            Value::Timespan(-3_000_000_000),
            Value::Timespan(1_001),
            Value::None,
            Value::Bool(false),
        ]);
        assert_eq!(decode_value(json(&v).as_bytes()), Ok(v));
    }

    #[test]
    fn malformed_input_is_an_error() {
        let bad: &[(&[u8], JsonError)] = &[
            (b"\xff\xfe", JsonError::NotUtf8),
            (br#"{"@data-type":"count","data":-1}"#, JsonError::BadData("count")),
            (br#"{"@data-type":"count","data":1.0}"#, JsonError::BadData("count")),
            (br#"{"@data-type":"integer","data":9223372036854775808}"#, JsonError::BadData("integer")),
            (br#"{"@data-type":"boolean","data":1}"#, JsonError::BadData("boolean")),
            (br#"{"@data-type":"real","data":"1.5"}"#, JsonError::BadData("real")),
            (br#"{"@data-type":"address","data":"10.0.0.256"}"#, JsonError::BadData("address")),
            (br#"{"@data-type":"subnet","data":"10.0.0.0/33"}"#, JsonError::BadData("subnet")),
            (br#"{"@data-type":"port","data":"70000/tcp"}"#, JsonError::BadData("port")),
            (br#"{"@data-type":"port","data":"80/sctp"}"#, JsonError::BadData("port")),
            (br#"{"@data-type":"timespan","data":"5"}"#, JsonError::BadData("timespan")),
            (br#"{"@data-type":"timespan","data":"5 fortnights"}"#, JsonError::BadData("timespan")),
            (br#"{"@data-type":"timespan","data":"999999999999d"}"#, JsonError::BadData("timespan")),
            (br#"{"@data-type":"timestamp","data":"2022-02-30T00:00:00"}"#, JsonError::BadData("timestamp")),
            (
                br#"{"@data-type":"table","data":[{"key":{"@data-type":"none","data":{}}}]}"#,
                JsonError::BadData("table"),
            ),
            (br#"{"@data-type":"bignum","data":1}"#, JsonError::UnknownType("bignum".into())),
            (br#"{"data":1}"#, JsonError::NotAValue),
            (br#"[1,2]"#, JsonError::NotAValue),
        ];
        for (input, error) in bad {
            assert_eq!(decode_value(input).as_ref(), Err(error), "{}", String::from_utf8_lossy(input));
        }
        assert!(matches!(decode_value(b"{\"@data-type\":"), Err(JsonError::NotJson(_))));
        assert!(matches!(decode_value(b"nan"), Err(JsonError::NotAValue)));
        let deep = format!(
            "{}{}{}",
            r#"{"@data-type":"vector","data":["#.repeat(MAX_DEPTH + 2),
            r#"{"@data-type":"none","data":{}}"#,
            "]}".repeat(MAX_DEPTH + 2)
        );
        assert_eq!(decode_value(deep.as_bytes()), Err(JsonError::TooDeep));
        assert!(matches!(decode_event(br#"{"@data-type":"count","data":1}"#), Err(JsonError::Event(_))));
    }

    #[test]
    fn timestamps_with_fractions_and_zones() {
        assert_eq!(timestamp("1970-01-01T00:00:00"), Some(0));
        assert_eq!(timestamp("1970-01-01T00:00:01.5"), Some(1_500_000_000));
        assert_eq!(timestamp("1970-01-01T00:00:00.000000001Z"), Some(1));
        assert_eq!(timestamp("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(timestamp("2000-02-29T00:00:00.000"), Some(951_782_400_000_000_000));
        assert_eq!(timestamp("1969-12-31T23:59:59.999"), Some(-1_000_000));
        for bad in [
            "",
            "1970-01-01",
            "1970-13-01T00:00:00",
            "1970-01-01T24:00:00",
            "1970-01-01T00:00:00.",
            "1970-01-01T00:00:00+1",
        ] {
            assert_eq!(timestamp(bad), None, "{bad}");
        }
    }

    /// Bounded property test: random bytes, random JSON-ish text and mutations of valid
    /// payloads never panic, and whatever decodes re-encodes and decodes to the same value.
    #[test]
    fn random_and_mutated_input_never_panics() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let seed = json(&encode::event_value(&Event {
            name: "ZeekProbe::memory_stats".into(),
            args: vec![
                Value::String("worker-1".into()),
                Value::Count(3),
                Value::Timespan(1_500_000),
                Value::List(vec![Value::List(vec![
                    Value::String("Conn".into()),
                    Value::String("conns".into()),
                    Value::Count(10),
                    Value::None,
                ])]),
                Value::Table(vec![(Value::String("mem".into()), Value::Count(1))]),
            ],
            metadata: vec![(1, Value::Timestamp(7_000_000))],
        }));
        let alphabet: &[u8] = br#"{}[]:,"@-0123456789.e+datypnulcorvsgbimfxhkTZ\ "#;
        for round in 0..20_000 {
            let bytes: Vec<u8> = match round % 3 {
                0 => (0..next() % 64).map(|_| next() as u8).collect(),
                1 => (0..next() % 96).map(|_| alphabet[(next() as usize) % alphabet.len()]).collect(),
                _ => {
                    let mut b = seed.clone().into_bytes();
                    for _ in 0..1 + next() % 4 {
                        let i = (next() as usize) % b.len();
                        b[i] = alphabet[(next() as usize) % alphabet.len()];
                    }
                    b
                }
            };
            // Timestamps round to milliseconds when re-encoded: compare encodings, not values.
            if let Ok(value) = decode_value(&bytes)
                && !format!("{value:?}").contains("NaN")
            {
                let again = decode_value(json(&value).as_bytes()).expect("re-encoded value decodes");
                assert_eq!(json(&again), json(&value));
            }
            let _ = decode_event(&bytes);
        }
    }
}
