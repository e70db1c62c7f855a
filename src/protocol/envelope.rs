//! Zero-copy views of an incoming message: the few top-level and `data`
//! fields the decoders look at, borrowed from the frame's text.
//!
//! Everything else in the message is skipped by serde without allocation and
//! kept verbatim in [`Event::payload`](super::Event::payload). Fields are
//! deliberately tolerant: a field of an unexpected JSON type is treated as
//! absent rather than failing the whole message, because a backend that sends
//! `"severity": 3` has still sent an event we must not lose.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// A string field that tolerates any JSON type: strings are kept (borrowed
/// when unescaped), numbers are kept as their text (ids are often numeric),
/// everything else reads as absent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Loose<'a>(pub Option<Cow<'a, str>>);

impl<'a> Loose<'a> {
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Loose<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Loose(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Loose(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Loose(Some(Cow::Owned(v))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Loose(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Loose(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Loose(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Loose(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Loose(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Loose(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                Loose::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Loose(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Loose(None))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A number field that tolerates any JSON type (absent unless a non-negative
/// integer).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LooseU64(pub Option<u64>);

impl<'de> Deserialize<'de> for LooseU64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LooseU64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(LooseU64(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(LooseU64(u64::try_from(v).ok()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(LooseU64(None))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(LooseU64(v.parse().ok()))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(LooseU64(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(LooseU64(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(LooseU64(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                LooseU64::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(LooseU64(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(LooseU64(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// Top-level fields of any message, from every backend style.
///
/// Duplicate keys are tolerated by taking the last one (serde's derive would
/// reject them, so the map is walked by hand).
#[derive(Debug, Default)]
pub(crate) struct Envelope<'a> {
    /// `type`: the message type in every style but the merchant one.
    pub ty: Loose<'a>,
    /// `event`: the merchant style's alternative to `type`.
    pub event: Loose<'a>,
    /// `op`: present only on the native riskwatch protocol.
    pub op: Loose<'a>,
    /// `action`: client commands of the dashboard style, echoed by some servers.
    pub action: Loose<'a>,
    pub channel: Loose<'a>,
    pub id: Loose<'a>,
    pub seq: LooseU64,
    pub timestamp: Option<&'a RawValue>,
    pub levels: Levels<'a>,
    pub keys: Keys<'a>,
    /// Native `gap` / `subscribed` bookkeeping.
    pub epoch: Loose<'a>,
    pub requested: LooseU64,
    pub oldest: LooseU64,
    /// Native `gap`: every critical event after `requested` follows.
    pub criticals_kept: bool,
    pub code: Loose<'a>,
    pub message: Loose<'a>,
    pub data: Option<&'a RawValue>,
}

/// Fields that state a level explicitly, and the trading `status`.
#[derive(Debug, Default)]
pub(crate) struct Levels<'a> {
    pub alert_level: Loose<'a>,
    pub severity: Loose<'a>,
    pub level: Loose<'a>,
    pub overall_risk: Loose<'a>,
    pub status: Loose<'a>,
}

/// Fields that name what a message is about, for the event's subject.
#[derive(Debug, Default)]
pub(crate) struct Keys<'a> {
    pub session_id: Loose<'a>,
    pub client_id: Loose<'a>,
    pub msp_id: Loose<'a>,
    pub assessment_id: Loose<'a>,
    pub department_id: Loose<'a>,
    pub department_name: Loose<'a>,
    pub employee_id: Loose<'a>,
    pub symbol: Loose<'a>,
    pub merchant_id: Loose<'a>,
}

impl<'a> Keys<'a> {
    /// Fills every absent key from `other` (used to merge `data` fields
    /// under the top-level ones).
    pub fn fill_from(&mut self, other: Keys<'a>) {
        macro_rules! fill {
            ($($f:ident),*) => { $( if self.$f.0.is_none() { self.$f = other.$f; } )* };
        }
        fill!(
            session_id,
            client_id,
            msp_id,
            assessment_id,
            department_id,
            department_name,
            employee_id,
            symbol,
            merchant_id
        );
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Envelope<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Envelope<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut e = Envelope::default();
                while let Some(key) = a.next_key::<Loose<'de>>()? {
                    match key.as_deref().unwrap_or_default() {
                        "type" => e.ty = a.next_value()?,
                        "event" => e.event = a.next_value()?,
                        "op" => e.op = a.next_value()?,
                        "action" => e.action = a.next_value()?,
                        "channel" => e.channel = a.next_value()?,
                        "id" => e.id = a.next_value()?,
                        "seq" => e.seq = a.next_value()?,
                        "timestamp" | "ts" => e.timestamp = Some(a.next_value()?),
                        "epoch" => e.epoch = a.next_value()?,
                        "requested" => e.requested = a.next_value()?,
                        "oldest" => e.oldest = a.next_value()?,
                        "criticals_kept" => {
                            let v: serde_json::Value = a.next_value()?;
                            e.criticals_kept = v.as_bool() == Some(true);
                        }
                        "code" => e.code = a.next_value()?,
                        "message" => e.message = a.next_value()?,
                        "data" => e.data = Some(a.next_value()?),
                        other => {
                            if !read_level_or_key(other, &mut e.levels, &mut e.keys, &mut a)? {
                                a.next_value::<IgnoredAny>()?;
                            }
                        }
                    }
                }
                Ok(e)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// The level and key fields of a message's `data` object.
#[derive(Debug, Default)]
pub(crate) struct DataFields<'a> {
    pub levels: Levels<'a>,
    pub keys: Keys<'a>,
}

impl<'de: 'a, 'a> Deserialize<'de> for DataFields<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = DataFields<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut out = DataFields::default();
                while let Some(key) = a.next_key::<Loose<'de>>()? {
                    let key = key.as_deref().unwrap_or_default();
                    if !read_level_or_key(key, &mut out.levels, &mut out.keys, &mut a)? {
                        a.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(out)
            }
            // `data` that is not an object carries no fields we look at.
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(DataFields::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(DataFields::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(DataFields::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(DataFields::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(DataFields::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(DataFields::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(DataFields::default())
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Reads the value of `key` into `levels` or `keys` when it is one of theirs;
/// returns false (value not consumed) otherwise.
fn read_level_or_key<'de: 'a, 'a, A: MapAccess<'de>>(
    key: &str,
    levels: &mut Levels<'a>,
    keys: &mut Keys<'a>,
    a: &mut A,
) -> Result<bool, A::Error> {
    let slot: &mut Loose<'a> = match key {
        "alertLevel" | "alert_level" => &mut levels.alert_level,
        "severity" => &mut levels.severity,
        "level" => &mut levels.level,
        "overall_risk" | "overallRisk" => &mut levels.overall_risk,
        "status" => &mut levels.status,
        "sessionId" | "session_id" => &mut keys.session_id,
        "client_id" | "clientId" => &mut keys.client_id,
        "msp_id" | "mspId" => &mut keys.msp_id,
        "assessment_id" | "assessmentId" => &mut keys.assessment_id,
        "department_id" | "departmentId" => &mut keys.department_id,
        "department_name" | "departmentName" | "department" => &mut keys.department_name,
        "employee_id" | "employeeId" => &mut keys.employee_id,
        "symbol" => &mut keys.symbol,
        "merchant_id" | "merchantId" => &mut keys.merchant_id,
        _ => return Ok(false),
    };
    *slot = a.next_value()?;
    Ok(true)
}
