//! The protobuf wire format: a bounds-checked reader over one encoded message.
//!
//! Every read is checked against the end of the buffer, so truncated or hostile input
//! yields an error rather than a panic.

/// How a field's value is laid out on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireType {
    Varint,
    Fixed64,
    Len,
    Fixed32,
}

/// A low-level decoding failure; the caller adds the field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WireError(pub(crate) String);

impl WireError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        WireError(reason.into())
    }
}

pub(crate) type WireResult<T> = Result<T, WireError>;

/// Reads the fields of one message in order.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn varint(&mut self) -> WireResult<u64> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(WireError::new("truncated varint"));
            };
            self.pos += 1;
            // The tenth byte may only carry the top bit of a 64-bit value.
            if i == 9 && byte > 1 {
                return Err(WireError::new("varint overflows 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::new("varint overflows 64 bits"))
    }

    fn take(&mut self, n: usize) -> WireResult<&'a [u8]> {
        let out = self
            .pos
            .checked_add(n)
            .and_then(|end| self.buf.get(self.pos..end))
            .ok_or_else(|| WireError::new("unexpected end of input"))?;
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn fixed32(&mut self) -> WireResult<u32> {
        let b = self.take(4)?;
        let a = <[u8; 4]>::try_from(b).map_err(|_| WireError::new("bad fixed32"))?;
        Ok(u32::from_le_bytes(a))
    }

    pub(crate) fn fixed64(&mut self) -> WireResult<u64> {
        let b = self.take(8)?;
        let a = <[u8; 8]>::try_from(b).map_err(|_| WireError::new("bad fixed64"))?;
        Ok(u64::from_le_bytes(a))
    }

    /// A length-delimited value: bytes, a string, an embedded message or a packed list.
    pub(crate) fn len_delimited(&mut self) -> WireResult<&'a [u8]> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| WireError::new("length out of range"))?;
        self.take(len)
    }

    /// The next field's number and wire type.
    pub(crate) fn key(&mut self) -> WireResult<(u32, WireType)> {
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(WireError::new(format!("illegal field number {number}")));
        }
        let wire = match key & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::Len,
            5 => WireType::Fixed32,
            // Groups (3, 4) are deprecated and never used by Kubernetes types.
            other => return Err(WireError::new(format!("unsupported wire type {other}"))),
        };
        // The range check above makes this conversion lossless.
        Ok((number as u32, wire))
    }

    /// Skips a value of a field the schema does not know, as Go's decoder does.
    pub(crate) fn skip(&mut self, wire: WireType) -> WireResult<()> {
        match wire {
            WireType::Varint => self.varint().map(drop),
            WireType::Fixed64 => self.take(8).map(drop),
            WireType::Fixed32 => self.take(4).map(drop),
            WireType::Len => self.len_delimited().map(drop),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn varints_decode_and_reject_bad_input() {
        assert_eq!(Reader::new(&[0x96, 0x01]).varint(), Ok(150));
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Reader::new(&max).varint(), Ok(u64::MAX));
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(Reader::new(&over).varint().is_err());
        assert!(Reader::new(&[0x80, 0x80]).varint().is_err());
        assert!(Reader::new(&[]).varint().is_err());
    }

    #[test]
    fn length_delimited_is_bounds_checked() {
        assert_eq!(
            Reader::new(&[2, b'h', b'i']).len_delimited(),
            Ok(&b"hi"[..])
        );
        assert!(Reader::new(&[3, b'h', b'i']).len_delimited().is_err());
        let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert!(Reader::new(&huge).len_delimited().is_err());
    }

    #[test]
    fn keys_reject_field_zero_and_groups() {
        assert_eq!(Reader::new(&[0x0a]).key(), Ok((1, WireType::Len)));
        assert!(Reader::new(&[0x02]).key().is_err());
        assert!(Reader::new(&[0x0b]).key().is_err());
    }

    #[test]
    fn skip_moves_past_each_wire_type() {
        let mut r = Reader::new(&[0x01, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 2, 9, 9]);
        r.skip(WireType::Varint).unwrap();
        r.skip(WireType::Fixed64).unwrap();
        r.skip(WireType::Fixed32).unwrap();
        r.skip(WireType::Len).unwrap();
        assert!(r.is_empty());
        assert!(Reader::new(&[1, 2]).skip(WireType::Fixed32).is_err());
    }
}
