//! The `broker-bin-v1` payload of a Zeek cluster event (zeek-abi.md §7): a tagged value
//! encoding. The input comes from the network: every length is checked against what is left
//! before anything is allocated, nesting is bounded, and malformed input is an error, never a
//! panic.
use std::net::{IpAddr, Ipv6Addr};

/// Deepest nesting of sets, tables and lists accepted (Zeek records nest a few levels).
pub const MAX_DEPTH: usize = 32;
/// Most values in one payload (each costs at least one byte, so this also bounds memory).
pub const MAX_VALUES: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Unknown,
    Tcp,
    Udp,
    Icmp,
}

/// A decoded value. Records arrive as lists of their fields (`None` for unset ones).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Count(u64),
    Integer(i64),
    Real(f64),
    String(String),
    Address(IpAddr),
    Subnet(IpAddr, u8),
    Port(u16, Protocol),
    /// Nanoseconds since the Unix epoch.
    Timestamp(i64),
    /// Nanoseconds.
    Timespan(i64),
    Enum(String),
    Set(Vec<Value>),
    Table(Vec<(Value, Value)>),
    List(Vec<Value>),
}

/// A cluster event: `Cluster::publish(topic, ZeekProbe::memory_stats, ...)` on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: String,
    pub args: Vec<Value>,
    /// `[id, value]` pairs; id 1 is the network timestamp.
    pub metadata: Vec<(u64, Value)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("payload ends inside a value (at byte {0})")]
    Truncated(usize),
    #[error("unknown value tag {tag} at byte {at}")]
    UnknownTag { tag: u8, at: usize },
    #[error("variable-length number too long at byte {0}")]
    BadVarbyte(usize),
    #[error("length {len} at byte {at} exceeds the {left} bytes left")]
    TooLong { len: u64, at: usize, left: usize },
    #[error("nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("more than {MAX_VALUES} values")]
    TooManyValues,
    #[error("string at byte {0} is not UTF-8")]
    InvalidUtf8(usize),
    #[error("invalid {what} at byte {at}")]
    Invalid { what: &'static str, at: usize },
    #[error("{0} bytes after the value")]
    TrailingBytes(usize),
    #[error("not an event: {0}")]
    NotAnEvent(&'static str),
}

pub mod tag {
    pub const NONE: u8 = 0;
    pub const BOOL: u8 = 1;
    pub const COUNT: u8 = 2;
    pub const INTEGER: u8 = 3;
    pub const REAL: u8 = 4;
    pub const STRING: u8 = 5;
    pub const ADDRESS: u8 = 6;
    pub const SUBNET: u8 = 7;
    pub const PORT: u8 = 8;
    pub const TIMESTAMP: u8 = 9;
    pub const TIMESPAN: u8 = 10;
    pub const ENUM: u8 = 11;
    pub const SET: u8 = 12;
    pub const TABLE: u8 = 13;
    pub const LIST: u8 = 14;
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    values: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.left() {
            return Err(DecodeError::Truncated(self.at));
        }
        let slice = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    /// 7 bits per byte, least significant first, high bit set on all but the last byte.
    fn varbyte(&mut self) -> Result<u64, DecodeError> {
        let start = self.at;
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let [b] = self.array::<1>()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::BadVarbyte(start))
    }

    /// A count of things each at least `min_bytes` long: bounded by what is left.
    fn length(&mut self, min_bytes: usize) -> Result<usize, DecodeError> {
        let at = self.at;
        let len = self.varbyte()?;
        let left = self.left();
        if len.saturating_mul(min_bytes as u64) > left as u64 {
            return Err(DecodeError::TooLong { len, at, left });
        }
        Ok(len as usize)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let len = self.length(1)?;
        let at = self.at;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::InvalidUtf8(at))
    }

    fn address(&mut self) -> Result<IpAddr, DecodeError> {
        let v6 = Ipv6Addr::from(self.array::<16>()?);
        Ok(match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        })
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(DecodeError::TooManyValues);
        }
        let at = self.at;
        let [t] = self.array::<1>()?;
        Ok(match t {
            tag::NONE => Value::None,
            tag::BOOL => match self.array::<1>()? {
                [0] => Value::Bool(false),
                [1] => Value::Bool(true),
                _ => return Err(DecodeError::Invalid { what: "bool", at }),
            },
            tag::COUNT => Value::Count(u64::from_be_bytes(self.array()?)),
            tag::INTEGER => Value::Integer(i64::from_be_bytes(self.array()?)),
            tag::REAL => Value::Real(f64::from_be_bytes(self.array()?)),
            tag::STRING => Value::String(self.string()?),
            tag::ADDRESS => Value::Address(self.address()?),
            tag::SUBNET => {
                let address = self.address()?;
                let [len] = self.array::<1>()?;
                if len > 128 {
                    return Err(DecodeError::Invalid { what: "subnet length", at });
                }
                // A v4 prefix may be counted over the v4-mapped address (/24 as /120) or not.
                let len = match (address.is_ipv4(), len) {
                    (true, 96..=128) => len - 96,
                    (true, 0..=32) | (false, _) => len,
                    (true, _) => return Err(DecodeError::Invalid { what: "subnet length", at }),
                };
                Value::Subnet(address, len)
            }
            tag::PORT => {
                let number = u16::from_be_bytes(self.array()?);
                let protocol = match self.array::<1>()? {
                    [0] => Protocol::Unknown,
                    [1] => Protocol::Tcp,
                    [2] => Protocol::Udp,
                    [3] => Protocol::Icmp,
                    _ => return Err(DecodeError::Invalid { what: "port protocol", at }),
                };
                Value::Port(number, protocol)
            }
            tag::TIMESTAMP => Value::Timestamp(i64::from_be_bytes(self.array()?)),
            tag::TIMESPAN => Value::Timespan(i64::from_be_bytes(self.array()?)),
            tag::ENUM => Value::Enum(self.string()?),
            tag::SET => {
                let n = self.length(1)?;
                Value::Set((0..n).map(|_| self.value(depth + 1)).collect::<Result<_, _>>()?)
            }
            tag::TABLE => {
                let n = self.length(2)?;
                Value::Table(
                    (0..n).map(|_| Ok((self.value(depth + 1)?, self.value(depth + 1)?))).collect::<Result<_, _>>()?,
                )
            }
            tag::LIST => {
                let n = self.length(1)?;
                Value::List((0..n).map(|_| self.value(depth + 1)).collect::<Result<_, _>>()?)
            }
            tag => return Err(DecodeError::UnknownTag { tag, at }),
        })
    }
}

/// Decodes one complete value; bytes left over are an error.
pub fn decode_value(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut reader = Reader { bytes, at: 0, values: 0 };
    let value = reader.value(0)?;
    match reader.left() {
        0 => Ok(value),
        n => Err(DecodeError::TrailingBytes(n)),
    }
}

/// Decodes an event payload: `list[count 1, count 1, list[string name, list args, (opt) list
/// metadata]]`.
pub fn decode_event(bytes: &[u8]) -> Result<Event, DecodeError> {
    event_from_value(decode_value(bytes)?)
}

/// The event inside a decoded top-level value, whichever format it came in (`broker-json-v1`
/// carries the same structure).
pub fn event_from_value(value: Value) -> Result<Event, DecodeError> {
    let Value::List(top) = value else { return Err(DecodeError::NotAnEvent("not a list")) };
    let [Value::Count(1), Value::Count(1), Value::List(body)] = top.as_slice() else {
        return Err(DecodeError::NotAnEvent("expected [1, 1, [...]]"));
    };
    let (name, args, metadata) = match body.as_slice() {
        [Value::String(name), Value::List(args)] => (name, args, &[][..]),
        [Value::String(name), Value::List(args), Value::List(metadata)] => (name, args, metadata.as_slice()),
        _ => return Err(DecodeError::NotAnEvent("expected [name, args, (metadata)]")),
    };
    let metadata = metadata
        .iter()
        .map(|entry| match entry {
            Value::List(pair) => match pair.as_slice() {
                [Value::Count(id), value] => Ok((*id, value.clone())),
                _ => Err(DecodeError::NotAnEvent("metadata entry is not [count, value]")),
            },
            _ => Err(DecodeError::NotAnEvent("metadata entry is not a list")),
        })
        .collect::<Result<_, _>>()?;
    Ok(Event { name: name.clone(), args: args.clone(), metadata })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    /// The spec encoder (`encode`), written independently of this decoder.
    fn encoded(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        crate::encode::bin_value(v, &mut out);
        out
    }

    fn event(name: &str, args: Vec<Value>, metadata: Option<Vec<Value>>) -> Value {
        let mut body = vec![Value::String(name.into()), Value::List(args)];
        body.extend(metadata.map(Value::List));
        Value::List(vec![Value::Count(1), Value::Count(1), Value::List(body)])
    }

    #[test]
    fn golden_vectors_for_every_tag() {
        let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
        let mapped = |a: u8, b: u8, c: u8, d: u8| {
            let mut v = vec![0u8; 10];
            v.extend([0xff, 0xff, a, b, c, d]);
            v
        };
        let cases: Vec<(Value, Vec<u8>)> = vec![
            (Value::None, vec![0]),
            (Value::Bool(true), vec![1, 1]),
            (Value::Count(300), vec![2, 0, 0, 0, 0, 0, 0, 1, 0x2c]),
            (Value::Integer(-2), vec![3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]),
            (Value::Real(1.5), vec![4, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]),
            (Value::String("Conn".into()), vec![5, 4, b'C', b'o', b'n', b'n']),
            (Value::Address(v4(10, 0, 0, 1)), [vec![6], mapped(10, 0, 0, 1)].concat()),
            (Value::Subnet(v4(192, 168, 0, 0), 16), [vec![7], mapped(192, 168, 0, 0), vec![112]].concat()),
            (Value::Port(443, Protocol::Tcp), vec![8, 0x01, 0xbb, 1]),
            (Value::Timestamp(1_000_000_000), vec![9, 0, 0, 0, 0, 0x3b, 0x9a, 0xca, 0x00]),
            (Value::Timespan(-1), vec![10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            (Value::Enum("Log::WRITER_ASCII".into()), [vec![11, 17], b"Log::WRITER_ASCII".to_vec()].concat()),
            (Value::Set(vec![Value::Count(1)]), vec![12, 1, 2, 0, 0, 0, 0, 0, 0, 0, 1]),
            (Value::Table(vec![(Value::String("a".into()), Value::Bool(false))]), vec![13, 1, 5, 1, b'a', 1, 0]),
            (Value::List(vec![Value::None, Value::None]), vec![14, 2, 0, 0]),
            // A 200-byte string: its length takes two varbytes (0xc8 0x01).
            (Value::String("x".repeat(200)), [vec![5, 0xc8, 0x01], vec![b'x'; 200]].concat()),
        ];
        for (value, bytes) in cases {
            assert_eq!(encoded(&value), bytes, "the test encoder follows the spec for {value:?}");
            assert_eq!(decode_value(&bytes), Ok(value.clone()), "decoding {bytes:?}");
        }
    }

    #[test]
    fn decodes_events_with_and_without_metadata() {
        let record = Value::List(vec![Value::String("worker-1".into()), Value::None, Value::Count(1234)]);
        let plain = event("ZeekProbe::memory_stats", vec![record.clone()], None);
        let e = decode_event(&encoded(&plain)).unwrap();
        assert_eq!(e.name, "ZeekProbe::memory_stats");
        assert_eq!((e.args, e.metadata.len()), (vec![record], 0));
        let stamped = event("x", vec![], Some(vec![Value::List(vec![Value::Count(1), Value::Timestamp(5)])]));
        assert_eq!(decode_event(&encoded(&stamped)).unwrap().metadata, vec![(1, Value::Timestamp(5))]);
    }

    #[test]
    fn malformed_payloads_are_errors() {
        let good = encoded(&event("e", vec![Value::String("abc".into())], None));
        for cut in 0..good.len() {
            assert!(decode_event(&good[..cut]).is_err(), "truncated at {cut}");
        }
        assert_eq!(decode_value(&[0, 0]), Err(DecodeError::TrailingBytes(1)));
        assert_eq!(decode_value(&[99]), Err(DecodeError::UnknownTag { tag: 99, at: 0 }));
        assert_eq!(decode_value(&[1, 7]), Err(DecodeError::Invalid { what: "bool", at: 0 }));
        let endless = [5, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(decode_value(&endless), Err(DecodeError::BadVarbyte(1)));
        // A huge length is refused before anything is allocated.
        assert!(matches!(decode_value(&[14, 0xff, 0xff, 0xff, 0xff, 0x0f]), Err(DecodeError::TooLong { .. })));
        assert_eq!(decode_value(&[5, 2, 0xc3, 0x28]), Err(DecodeError::InvalidUtf8(2)));
        let deep = [[14, 1].repeat(MAX_DEPTH + 2), vec![0]].concat();
        assert_eq!(decode_value(&deep), Err(DecodeError::TooDeep));
        let not_event = encoded(&Value::List(vec![Value::Count(2), Value::Count(1), Value::List(vec![])]));
        assert!(matches!(decode_event(&not_event), Err(DecodeError::NotAnEvent(_))));
    }

    /// Bounded property test: random and mutated payloads never panic, and whatever decodes
    /// re-encodes to the same bytes.
    #[test]
    fn random_and_mutated_input_never_panics() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let seed = encoded(&event(
            "ZeekProbe::memory_stats",
            vec![
                Value::Table(vec![(Value::String("Conn::conns".into()), Value::Count(42))]),
                Value::Port(53, Protocol::Udp),
            ],
            Some(vec![Value::List(vec![Value::Count(1), Value::Timestamp(7)])]),
        ));
        for round in 0..20_000 {
            let bytes: Vec<u8> = if round % 2 == 0 {
                (0..next() % 64).map(|_| next() as u8).collect()
            } else {
                let mut b = seed.clone();
                for _ in 0..1 + next() % 4 {
                    let i = (next() as usize) % b.len();
                    b[i] = next() as u8;
                }
                b
            };
            if let Ok(value) = decode_value(&bytes) {
                // Subnet lengths have two spellings and NaN is not equal to itself; everything
                // else round-trips exactly.
                let debug = format!("{value:?}");
                if !debug.contains("Subnet") && !debug.contains("NaN") {
                    assert_eq!(encoded(&value), bytes, "round trip of {value:?}");
                }
            }
            let _ = decode_event(&bytes);
        }
    }
}
