//! Schema-driven conversion of one protobuf message into JSON.
//!
//! The result is what the Go apiserver would produce by decoding the bytes into the Go
//! struct and encoding that with `encoding/json`: Go's protobuf encoder writes every
//! non-pointer field (zero or not) and decoding leaves absent ones at their zero value,
//! so a field's JSON depends on its Go shape, which the schema records:
//! - pointers, slices and maps (nilable) appear exactly when present on the wire (Go
//!   writes a nil one without `omitempty` as `null`; leaving it out means the same);
//! - other scalars are omitted when zero under `omitempty`, else always written;
//! - other messages (Go structs) are always written, as `{}` or their zero form;
//! - `inline` fields merge their object into the parent.

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use super::schema::{Card, Field, Message, Scalar, Schema, Type};
use super::special::Special;
use super::wire::{Reader, WireError, WireType};

/// Deeper nesting than any built-in kind has is treated as hostile input.
pub(crate) const MAX_DEPTH: usize = 64;

/// A decoding failure with the JSON path where it happened (innermost segment first).
#[derive(Debug)]
pub(crate) struct DecodeError {
    pub(crate) path: Vec<String>,
    pub(crate) reason: String,
}

impl DecodeError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        DecodeError {
            path: Vec::new(),
            reason: reason.into(),
        }
    }

    fn at(mut self, segment: impl Into<String>) -> Self {
        self.path.push(segment.into());
        self
    }

    /// The path from the object's root, e.g. `spec.template.spec.containers[0].ports`.
    pub(crate) fn path_string(&self) -> String {
        let mut out = String::new();
        for segment in self.path.iter().rev() {
            if !out.is_empty() && !segment.starts_with('[') {
                out.push('.');
            }
            out.push_str(segment);
        }
        out
    }
}

impl From<WireError> for DecodeError {
    fn from(e: WireError) -> Self {
        DecodeError::new(e.0)
    }
}

pub(crate) type DecodeResult<T> = Result<T, DecodeError>;

/// Decodes message `index` of the schema from `bytes`; empty bytes give its zero value.
pub(crate) fn message(
    schema: &Schema,
    index: usize,
    bytes: &[u8],
    depth: usize,
) -> DecodeResult<Value> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::new("messages nested too deeply"));
    }
    let msg = schema
        .message(index)
        .ok_or_else(|| DecodeError::new("schema refers to a missing message"))?;
    if let Some(special) = Special::of(&msg.name) {
        return special.decode(bytes, depth);
    }
    let mut slots: Vec<Slot<'_>> = msg.fields.iter().map(|_| Slot::Absent).collect();
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        let (number, wire) = reader.key()?;
        let Some((i, field)) = msg.field(number) else {
            // Unknown fields are dropped, as Go's generated decoders do.
            reader.skip(wire)?;
            continue;
        };
        let slot = slots
            .get_mut(i)
            .ok_or_else(|| DecodeError::new("field index out of range"))?;
        read_field(schema, field, wire, &mut reader, slot, depth)
            .map_err(|e| e.at(field.json.as_str()))?;
    }
    if msg.list {
        return Ok(list_items(slots));
    }
    build_object(schema, msg, slots, depth)
}

/// What has been read for one field so far.
enum Slot<'a> {
    Absent,
    Scalar(Value),
    /// Occurrences of a singular message field; protobuf merges them, which is the
    /// same as decoding their concatenation.
    Message(Vec<&'a [u8]>),
    List(Vec<Value>),
    Map(Map<String, Value>),
}

fn read_field<'a>(
    schema: &Schema,
    field: &Field,
    wire: WireType,
    reader: &mut Reader<'a>,
    slot: &mut Slot<'a>,
    depth: usize,
) -> DecodeResult<()> {
    match (field.card, field.ty) {
        (Card::Optional, Type::Scalar(s)) => *slot = Slot::Scalar(scalar(s, wire, reader)?),
        (Card::Optional, Type::Message(_)) => {
            let bytes = len_delimited(wire, reader)?;
            match slot {
                Slot::Message(parts) => parts.push(bytes),
                _ => *slot = Slot::Message(vec![bytes]),
            }
        }
        (Card::Repeated, ty) => {
            if !matches!(slot, Slot::List(_)) {
                *slot = Slot::List(Vec::new());
            }
            let Slot::List(items) = slot else {
                return Ok(());
            };
            match ty {
                Type::Scalar(s) if wire == WireType::Len && s.wire_type() != WireType::Len => {
                    // A packed list of numbers.
                    let mut packed = Reader::new(reader.len_delimited()?);
                    while !packed.is_empty() {
                        items.push(scalar(s, s.wire_type(), &mut packed)?);
                    }
                }
                Type::Scalar(s) => items.push(scalar(s, wire, reader)?),
                Type::Message(m) => {
                    let bytes = len_delimited(wire, reader)?;
                    let index = items.len();
                    let value = message(schema, m, bytes, depth + 1)
                        .map_err(|e| e.at(format!("[{index}]")))?;
                    items.push(value);
                }
            }
        }
        (Card::Map(key_ty), value_ty) => {
            let entry = len_delimited(wire, reader)?;
            let (key, value) = map_entry(schema, key_ty, value_ty, entry, depth)?;
            if !matches!(slot, Slot::Map(_)) {
                *slot = Slot::Map(Map::new());
            }
            if let Slot::Map(map) = slot {
                map.insert(key, value);
            }
        }
    }
    Ok(())
}

fn len_delimited<'a>(wire: WireType, reader: &mut Reader<'a>) -> DecodeResult<&'a [u8]> {
    if wire != WireType::Len {
        return Err(DecodeError::new(format!(
            "wrong wire type {wire:?} for a message"
        )));
    }
    Ok(reader.len_delimited()?)
}

/// A map entry is a message with the key in field 1 and the value in field 2; either may
/// be absent, meaning its zero value.
fn map_entry(
    schema: &Schema,
    key_ty: Type,
    value_ty: Type,
    bytes: &[u8],
    depth: usize,
) -> DecodeResult<(String, Value)> {
    let mut key = None;
    let mut value = None;
    let mut value_parts: Vec<&[u8]> = Vec::new();
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        match reader.key()? {
            (1, wire) => match key_ty {
                Type::Scalar(s) => key = Some(scalar(s, wire, &mut reader)?),
                Type::Message(_) => return Err(DecodeError::new("message-typed map key")),
            },
            (2, wire) => match value_ty {
                Type::Scalar(s) => value = Some(scalar(s, wire, &mut reader)?),
                Type::Message(_) => value_parts.push(len_delimited(wire, &mut reader)?),
            },
            (_, wire) => reader.skip(wire)?,
        }
    }
    let key = match key {
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
        None => match key_ty {
            Type::Scalar(s) => match zero(s) {
                Value::String(s) => s,
                other => other.to_string(),
            },
            Type::Message(_) => String::new(),
        },
    };
    let value = match (value, value_ty) {
        (Some(v), _) => v,
        (None, Type::Scalar(s)) => zero(s),
        (None, Type::Message(m)) => {
            message(schema, m, &concat(&value_parts), depth + 1).map_err(|e| e.at(key.as_str()))?
        }
    };
    Ok((key, value))
}

fn concat<'a>(parts: &[&'a [u8]]) -> std::borrow::Cow<'a, [u8]> {
    match parts {
        [] => std::borrow::Cow::Borrowed(&[]),
        [one] => std::borrow::Cow::Borrowed(one),
        many => std::borrow::Cow::Owned(many.concat()),
    }
}

/// A Go named slice type (e.g. `Verbs`): the JSON is its `items` list.
fn list_items(slots: Vec<Slot<'_>>) -> Value {
    for slot in slots {
        if let Slot::List(items) = slot {
            return Value::Array(items);
        }
    }
    Value::Array(Vec::new())
}

fn build_object(
    schema: &Schema,
    msg: &Message,
    slots: Vec<Slot<'_>>,
    depth: usize,
) -> DecodeResult<Value> {
    let mut object = Map::new();
    let mut inlined = Vec::new();
    for (field, slot) in msg.fields.iter().zip(slots) {
        if field.skip_json {
            continue;
        }
        let value = match slot {
            Slot::Absent => absent_value(schema, field, depth)?,
            Slot::Scalar(v) => {
                let omit = field.omit_empty && !field.nilable && is_zero(&v);
                (!omit).then_some(v)
            }
            Slot::Message(parts) => match field.ty {
                Type::Message(m) => Some(
                    message(schema, m, &concat(&parts), depth + 1)
                        .map_err(|e| e.at(field.json.as_str()))?,
                ),
                Type::Scalar(_) => None,
            },
            Slot::List(items) => Some(Value::Array(items)),
            Slot::Map(map) => Some(Value::Object(map)),
        };
        let Some(value) = value else {
            continue;
        };
        // An empty named slice (e.g. `Verbs`) is omitted under omitempty like any slice.
        if field.omit_empty && value.as_array().is_some_and(Vec::is_empty) {
            continue;
        }
        if field.inline {
            inlined.push((field, value));
        } else {
            object.insert(field.json.clone(), value);
        }
    }
    for (field, value) in inlined {
        let Value::Object(fields) = value else {
            return Err(DecodeError::new("inline field is not an object").at(field.json.as_str()));
        };
        // As with Go's embedded structs, the outer struct's own fields win.
        for (k, v) in fields {
            object.entry(k).or_insert(v);
        }
    }
    Ok(Value::Object(object))
}

/// The JSON of a field that is not on the wire: the Go zero value, where Go writes one.
fn absent_value(schema: &Schema, field: &Field, depth: usize) -> DecodeResult<Option<Value>> {
    if field.nilable || field.card != Card::Optional {
        return Ok(None);
    }
    match field.ty {
        Type::Scalar(_) if field.omit_empty => Ok(None),
        Type::Scalar(s) => Ok(Some(zero(s))),
        Type::Message(m) => message(schema, m, &[], depth + 1)
            .map(Some)
            .map_err(|e| e.at(field.json.as_str())),
    }
}

impl Scalar {
    pub(crate) fn wire_type(self) -> WireType {
        match self {
            Scalar::Double | Scalar::Fixed64 | Scalar::Sfixed64 => WireType::Fixed64,
            Scalar::Float | Scalar::Fixed32 | Scalar::Sfixed32 => WireType::Fixed32,
            Scalar::String | Scalar::Bytes => WireType::Len,
            Scalar::Int32
            | Scalar::Int64
            | Scalar::Uint32
            | Scalar::Uint64
            | Scalar::Sint32
            | Scalar::Sint64
            | Scalar::Bool => WireType::Varint,
        }
    }
}

/// Reads one scalar value and renders it as Go's encoding/json would.
pub(crate) fn scalar(s: Scalar, wire: WireType, reader: &mut Reader<'_>) -> DecodeResult<Value> {
    if wire != s.wire_type() {
        return Err(DecodeError::new(format!(
            "wrong wire type {wire:?} for {s:?}"
        )));
    }
    // The `as` casts below reinterpret wire integers exactly as protobuf specifies
    // (truncation for 32-bit types, two's complement for signed ones).
    Ok(match s {
        Scalar::Int32 => Value::from(reader.varint()? as i32),
        Scalar::Int64 => Value::from(reader.varint()? as i64),
        Scalar::Uint32 => Value::from(reader.varint()? as u32),
        Scalar::Uint64 => Value::from(reader.varint()?),
        Scalar::Sint32 => {
            let v = reader.varint()? as u32;
            Value::from(((v >> 1) as i32) ^ -((v & 1) as i32))
        }
        Scalar::Sint64 => {
            let v = reader.varint()?;
            Value::from(((v >> 1) as i64) ^ -((v & 1) as i64))
        }
        Scalar::Bool => Value::Bool(reader.varint()? != 0),
        Scalar::Fixed32 => Value::from(reader.fixed32()?),
        Scalar::Sfixed32 => Value::from(reader.fixed32()? as i32),
        Scalar::Fixed64 => Value::from(reader.fixed64()?),
        Scalar::Sfixed64 => Value::from(reader.fixed64()? as i64),
        Scalar::Float => float(f64::from(f32::from_bits(reader.fixed32()?)))?,
        Scalar::Double => float(f64::from_bits(reader.fixed64()?))?,
        // Go does not validate UTF-8 here; its JSON encoder replaces bad bytes with U+FFFD.
        Scalar::String => Value::String(String::from_utf8_lossy(reader.len_delimited()?).into()),
        // Go encodes []byte as standard padded base64.
        Scalar::Bytes => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(reader.len_delimited()?))
        }
    })
}

fn float(f: f64) -> DecodeResult<Value> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| DecodeError::new("NaN or infinite number has no JSON form"))
}

pub(crate) fn zero(s: Scalar) -> Value {
    match s {
        Scalar::Bool => Value::Bool(false),
        Scalar::String | Scalar::Bytes => Value::String(String::new()),
        _ => Value::from(0),
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}
