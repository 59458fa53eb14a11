//! Encoders for the two event payload formats, written from their specifications
//! (zeek-abi.md §7 for `broker-bin-v1`; Broker's `format/json.hh` and `doc/web-socket.rst` for
//! `broker-json-v1`) independently of the decoders. zeek-probe itself only subscribes; these
//! exist so that tests, and tools emulating a Zeek node, can produce exactly what Zeek sends.
use std::{fmt::Write as _, net::IpAddr};

use super::{
    broker_bin::{Event, Protocol, Value, tag},
    cluster_events::MEMORY_STATS_EVENT,
};

/// Appends `v` in `broker-bin-v1`.
pub fn bin_value(v: &Value, out: &mut Vec<u8>) {
    fn varbyte(mut n: u64, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn address(a: &IpAddr, out: &mut Vec<u8>) {
        let v6 = match a {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => *v6,
        };
        out.extend(v6.octets());
    }
    match v {
        Value::None => out.push(tag::NONE),
        Value::Bool(b) => out.extend([tag::BOOL, u8::from(*b)]),
        Value::Count(n) => {
            out.push(tag::COUNT);
            out.extend(n.to_be_bytes());
        }
        Value::Integer(n) => {
            out.push(tag::INTEGER);
            out.extend(n.to_be_bytes());
        }
        Value::Real(x) => {
            out.push(tag::REAL);
            out.extend(x.to_be_bytes());
        }
        Value::String(s) | Value::Enum(s) => {
            out.push(if matches!(v, Value::String(_)) { tag::STRING } else { tag::ENUM });
            varbyte(s.len() as u64, out);
            out.extend(s.as_bytes());
        }
        Value::Address(a) => {
            out.push(tag::ADDRESS);
            address(a, out);
        }
        Value::Subnet(a, len) => {
            out.push(tag::SUBNET);
            address(a, out);
            // v4 prefixes are counted over the v4-mapped address.
            out.push(if a.is_ipv4() { len + 96 } else { *len });
        }
        Value::Port(n, p) => {
            out.push(tag::PORT);
            out.extend(n.to_be_bytes());
            out.push(match p {
                Protocol::Unknown => 0,
                Protocol::Tcp => 1,
                Protocol::Udp => 2,
                Protocol::Icmp => 3,
            });
        }
        Value::Timestamp(ns) | Value::Timespan(ns) => {
            out.push(if matches!(v, Value::Timestamp(_)) { tag::TIMESTAMP } else { tag::TIMESPAN });
            out.extend(ns.to_be_bytes());
        }
        Value::Set(items) | Value::List(items) => {
            out.push(if matches!(v, Value::Set(_)) { tag::SET } else { tag::LIST });
            varbyte(items.len() as u64, out);
            items.iter().for_each(|i| bin_value(i, out));
        }
        Value::Table(pairs) => {
            out.push(tag::TABLE);
            varbyte(pairs.len() as u64, out);
            for (k, v) in pairs {
                bin_value(k, out);
                bin_value(v, out);
            }
        }
    }
}

/// The top-level value of an event: `[1, 1, [name, args, (metadata)]]`. Metadata is left out
/// when there is none (both shapes are valid).
pub fn event_value(event: &Event) -> Value {
    let mut body = vec![Value::String(event.name.clone()), Value::List(event.args.clone())];
    if !event.metadata.is_empty() {
        body.push(Value::List(
            event.metadata.iter().map(|(id, v)| Value::List(vec![Value::Count(*id), v.clone()])).collect(),
        ));
    }
    Value::List(vec![Value::Count(1), Value::Count(1), Value::List(body)])
}

/// An event payload in `broker-bin-v1`.
pub fn bin_event(event: &Event) -> Vec<u8> {
    let mut out = Vec::new();
    bin_value(&event_value(event), &mut out);
    out
}

/// Broker's string quoting: only these characters are escaped (`\v` too, which is not valid
/// JSON; the decoder copes with it).
fn json_quoted(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `YYYY-MM-DDThh:mm:ss.sss` (Broker renders local time without a zone; this renders UTC).
fn iso8601(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let millis = ns.rem_euclid(1_000_000_000) / 1_000_000;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}", rem / 3600, rem / 60 % 60, rem % 60)
}

/// Broker's timespan rendering: the coarsest of ns, us, ms, s that loses nothing; zero is `0s`.
fn timespan(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let mut value = ns;
    for suffix in ["ns", "us", "ms"] {
        if value % 1000 != 0 {
            return format!("{value}{suffix}");
        }
        value /= 1000;
    }
    format!("{value}s")
}

/// Appends `v` in `broker-json-v1`, byte for byte as Broker's encoder renders it.
pub fn json_value(v: &Value, out: &mut String) {
    let (data_type, data): (&str, String) = match v {
        Value::None => ("none", "{}".into()),
        Value::Bool(b) => ("boolean", b.to_string()),
        Value::Count(n) => ("count", n.to_string()),
        Value::Integer(n) => ("integer", n.to_string()),
        // C's "%f": six decimals; "nan"/"inf" for the rest (not JSON, and Broker writes them so).
        Value::Real(x) if x.is_finite() => ("real", format!("{x:.6}")),
        Value::Real(x) => (
            "real",
            if x.is_nan() {
                "nan"
            } else if *x > 0.0 {
                "inf"
            } else {
                "-inf"
            }
            .into(),
        ),
        Value::String(s) | Value::Enum(s) => {
            let mut q = String::new();
            json_quoted(s, &mut q);
            (if matches!(v, Value::String(_)) { "string" } else { "enum-value" }, q)
        }
        Value::Address(a) => ("address", format!("\"{a}\"")),
        Value::Subnet(a, len) => ("subnet", format!("\"{a}/{len}\"")),
        Value::Port(n, p) => {
            let p = match p {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
                Protocol::Icmp => "icmp",
                Protocol::Unknown => "?",
            };
            ("port", format!("\"{n}/{p}\""))
        }
        Value::Timestamp(ns) => ("timestamp", format!("\"{}\"", iso8601(*ns))),
        Value::Timespan(ns) => ("timespan", format!("\"{}\"", timespan(*ns))),
        Value::List(items) | Value::Set(items) => {
            let mut data = String::from("[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    data.push(',');
                }
                json_value(item, &mut data);
            }
            data.push(']');
            (if matches!(v, Value::List(_)) { "vector" } else { "set" }, data)
        }
        Value::Table(pairs) => {
            let mut data = String::from("[");
            for (i, (k, val)) in pairs.iter().enumerate() {
                if i > 0 {
                    data.push(',');
                }
                data.push_str("{\"key\":");
                json_value(k, &mut data);
                data.push_str(",\"value\":");
                json_value(val, &mut data);
                data.push('}');
            }
            data.push(']');
            ("table", data)
        }
    };
    let _ = write!(out, "{{\"@data-type\":\"{data_type}\",\"data\":{data}}}");
}

/// An event payload in `broker-json-v1` (what Zeek's serializer sends: the bare value, no
/// `type`/`topic` keys).
pub fn json_event(event: &Event) -> String {
    let mut out = String::new();
    json_value(&event_value(event), &mut out);
    out
}

/// The companion package's `ZeekProbe::memory_stats(node, run, cost, entries, counters)` event
/// (scripts/main.zeek) with `entries` as (module, variable, footprint, bytes), a 3.5 ms cost and
/// the counters `mem_bytes` = 123456789 and `events_dispatched` = 42.
pub fn memory_stats_event(node: &str, run: u64, entries: &[(&str, &str, Option<u64>, Option<u64>)]) -> Event {
    let opt = |v: Option<u64>| v.map_or(Value::None, Value::Count);
    Event {
        name: MEMORY_STATS_EVENT.into(),
        args: vec![
            Value::String(node.into()),
            Value::Count(run),
            Value::Timespan(3_500_000),
            Value::List(
                entries
                    .iter()
                    .map(|(m, v, f, s)| {
                        Value::List(vec![Value::String((*m).into()), Value::String((*v).into()), opt(*f), opt(*s)])
                    })
                    .collect(),
            ),
            Value::Table(vec![
                (Value::String("mem_bytes".into()), Value::Count(123_456_789)),
                (Value::String("events_dispatched".into()), Value::Count(42)),
            ]),
        ],
        metadata: vec![(1, Value::Timestamp(1_700_000_000_000_000_000))],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_matches_brokers_own_golden_strings() {
        // Broker's libbroker/broker/format/json.test.cc.
        let cases = [
            (Value::None, r#"{"@data-type":"none","data":{}}"#),
            (Value::Bool(false), r#"{"@data-type":"boolean","data":false}"#),
            (Value::Count(10), r#"{"@data-type":"count","data":10}"#),
            (Value::Integer(-10), r#"{"@data-type":"integer","data":-10}"#),
            (Value::Real(-10.0), r#"{"@data-type":"real","data":-10.000000}"#),
            (Value::String("foo\n\"bar".into()), r#"{"@data-type":"string","data":"foo\n\"bar"}"#),
            (Value::Enum("foo".into()), r#"{"@data-type":"enum-value","data":"foo"}"#),
            (Value::Address("2001:db8::".parse().unwrap()), r#"{"@data-type":"address","data":"2001:db8::"}"#),
            (Value::Subnet("192.128.4.0".parse().unwrap(), 24), r#"{"@data-type":"subnet","data":"192.128.4.0/24"}"#),
            (Value::Port(9000, Protocol::Udp), r#"{"@data-type":"port","data":"9000/udp"}"#),
            (Value::Timespan(0), r#"{"@data-type":"timespan","data":"0s"}"#),
            (Value::Timespan(999), r#"{"@data-type":"timespan","data":"999ns"}"#),
            (Value::Timespan(1000), r#"{"@data-type":"timespan","data":"1us"}"#),
            (Value::Timespan(999_000_000), r#"{"@data-type":"timespan","data":"999ms"}"#),
            (Value::Timespan(1_000_000_000), r#"{"@data-type":"timespan","data":"1s"}"#),
            (
                Value::List(vec![Value::Integer(1), Value::Count(2), Value::String("three".into())]),
                r#"{"@data-type":"vector","data":[{"@data-type":"integer","data":1},{"@data-type":"count","data":2},{"@data-type":"string","data":"three"}]}"#,
            ),
            (
                Value::Table(vec![(Value::String("a-key".into()), Value::Integer(1))]),
                r#"{"@data-type":"table","data":[{"key":{"@data-type":"string","data":"a-key"},"value":{"@data-type":"integer","data":1}}]}"#,
            ),
            (Value::Set(vec![]), r#"{"@data-type":"set","data":[]}"#),
        ];
        for (value, json) in cases {
            let mut out = String::new();
            json_value(&value, &mut out);
            assert_eq!(out, json, "{value:?}");
        }
    }

    #[test]
    fn events_match_zeeks_serializer_test() {
        // Zeek's src/cluster/serializer/broker/Serializer.cc, test "roundtrip": the same event in
        // both formats.
        let event = Event {
            name: "Supervisor::node_status".into(),
            args: vec![Value::String("TEST".into()), Value::Count(42)],
            metadata: vec![(1, Value::Timestamp(0))],
        };
        let json = r#"{"@data-type":"vector","data":[{"@data-type":"count","data":1},{"@data-type":"count","data":1},{"@data-type":"vector","data":[{"@data-type":"string","data":"Supervisor::node_status"},{"@data-type":"vector","data":[{"@data-type":"string","data":"TEST"},{"@data-type":"count","data":42}]},{"@data-type":"vector","data":[{"@data-type":"vector","data":[{"@data-type":"count","data":1},{"@data-type":"timestamp","data":"1970-01-01T00:00:00.000"}]}]}]}]}"#;
        assert_eq!(json_event(&event), json);
        let bin: [u8; 86] = [
            0x0e, 0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x01, 0x0e, 0x03, 0x05, 0x17, 0x53, 0x75, 0x70, 0x65, 0x72, 0x76, 0x69, 0x73, 0x6f, 0x72, 0x3a, 0x3a,
            0x6e, 0x6f, 0x64, 0x65, 0x5f, 0x73, 0x74, 0x61, 0x74, 0x75, 0x73, 0x0e, 0x02, 0x05, 0x04, 0x54, 0x45, 0x53,
            0x54, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, 0x0e, 0x01, 0x0e, 0x02, 0x02, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x01, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(bin_event(&event), bin);
    }

    #[test]
    fn timestamps_render_as_utc_iso8601_with_milliseconds() {
        assert_eq!(iso8601(1_404_901_004_372_000_000), "2014-07-09T10:16:44.372");
        assert_eq!(iso8601(-1_000_000), "1969-12-31T23:59:59.999");
        assert_eq!(iso8601(951_782_400_000_000_000), "2000-02-29T00:00:00.000");
    }
}
