//! Turning what mysql_async decoded back into the bytes a client expects.
//!
//! mysql_async (mysql_common 0.37) and opensrv (mysql_common 0.32) use two
//! different mysql_common versions, so types cross over through their
//! numeric values.

use mysql_async::consts::ColumnType as BackendType;
use mysql_async::{Column as BackendColumn, Row, Value};
use opensrv_mysql::{Column, ColumnFlags, ColumnType};

/// A backend column definition as the client gets it; `name` is the
/// column name the client wrote (see `sql::intercept`), `extended` the
/// node's MariaDB extended metadata for it, if any.
pub fn column(c: &BackendColumn, name: &[u8], extended: Option<&Vec<u8>>) -> Column {
    Column {
        schema: c.schema_ref().to_vec(),
        table: c.table_ref().to_vec(),
        org_table: c.org_table_ref().to_vec(),
        column: name.to_vec(),
        org_column: c.org_name_ref().to_vec(),
        charset: c.character_set(),
        column_length: c.column_length(),
        coltype: ColumnType::try_from(c.column_type() as u8)
            .unwrap_or(ColumnType::MYSQL_TYPE_STRING),
        colflags: ColumnFlags::from_bits_truncate(c.flags().bits()),
        decimals: c.decimals(),
        extended_metadata: extended.cloned().unwrap_or_default(),
    }
}

/// Encodes a text-protocol row: each value a length-encoded string, NULL as 0xFB.
pub fn text_row(row: &Row, out: &mut Vec<u8>) {
    for i in 0..row.len() {
        match row.as_ref(i) {
            None | Some(Value::NULL) => out.push(0xfb),
            Some(Value::Bytes(b)) => put_lenenc_bytes(out, b),
            // The text protocol yields only bytes and NULL; anything else is
            // written as its SQL literal text.
            Some(other) => put_lenenc_bytes(out, other.as_sql(true).as_bytes()),
        }
    }
}

/// Encodes a binary-protocol row: 0x00, the NULL bitmap (offset 2), then each
/// non-NULL value in the width its column type has on the wire.
pub fn binary_row(row: &Row, columns: &[BackendColumn], out: &mut Vec<u8>) {
    out.push(0x00);
    let bitmap_at = out.len();
    out.resize(bitmap_at + (columns.len() + 7 + 2) / 8, 0);
    for (i, column) in columns.iter().enumerate() {
        match row.as_ref(i) {
            None | Some(Value::NULL) => {
                out[bitmap_at + (i + 2) / 8] |= 1 << ((i + 2) % 8);
            }
            Some(value) => binary_value(value, column, out),
        }
    }
}

fn binary_value(value: &Value, column: &BackendColumn, out: &mut Vec<u8>) {
    match value {
        Value::NULL => {}
        Value::Bytes(b) => put_lenenc_bytes(out, b),
        Value::Int(i) => put_int(out, column.column_type(), *i as u64),
        Value::UInt(u) => put_int(out, column.column_type(), *u),
        Value::Float(f) => out.extend_from_slice(&f.to_le_bytes()),
        Value::Double(d) => {
            if column.column_type() == BackendType::MYSQL_TYPE_FLOAT {
                out.extend_from_slice(&(*d as f32).to_le_bytes());
            } else {
                out.extend_from_slice(&d.to_le_bytes());
            }
        }
        Value::Date(y, mo, d, h, mi, s, us) => put_datetime(out, (*y, *mo, *d, *h, *mi, *s, *us)),
        Value::Time(neg, days, h, mi, s, us) => put_time(out, *neg, *days, *h, *mi, *s, *us),
    }
}

/// Integers go out in their column's width; the bits are the same for
/// signed and unsigned values.
fn put_int(out: &mut Vec<u8>, column_type: BackendType, v: u64) {
    let bytes = v.to_le_bytes();
    let width = match column_type {
        BackendType::MYSQL_TYPE_TINY => 1,
        BackendType::MYSQL_TYPE_SHORT | BackendType::MYSQL_TYPE_YEAR => 2,
        BackendType::MYSQL_TYPE_LONG | BackendType::MYSQL_TYPE_INT24 => 4,
        BackendType::MYSQL_TYPE_LONGLONG => 8,
        // An integer value in a non-integer column: send it as text.
        _ => {
            put_lenenc_bytes(out, v.to_string().as_bytes());
            return;
        }
    };
    out.extend_from_slice(&bytes[..width]);
}

/// The shortest form MariaDB itself sends: 0, 4, 7 or 11 bytes.
fn put_datetime(out: &mut Vec<u8>, (y, mo, d, h, mi, s, us): (u16, u8, u8, u8, u8, u8, u32)) {
    let len: u8 = if us != 0 {
        11
    } else if h != 0 || mi != 0 || s != 0 {
        7
    } else if y != 0 || mo != 0 || d != 0 {
        4
    } else {
        0
    };
    out.push(len);
    if len >= 4 {
        out.extend_from_slice(&y.to_le_bytes());
        out.extend_from_slice(&[mo, d]);
    }
    if len >= 7 {
        out.extend_from_slice(&[h, mi, s]);
    }
    if len == 11 {
        out.extend_from_slice(&us.to_le_bytes());
    }
}

/// The shortest form MariaDB itself sends: 0, 8 or 12 bytes.
fn put_time(out: &mut Vec<u8>, neg: bool, days: u32, h: u8, mi: u8, s: u8, us: u32) {
    let len: u8 = if us != 0 {
        12
    } else if days != 0 || h != 0 || mi != 0 || s != 0 {
        8
    } else {
        0
    };
    out.push(len);
    if len >= 8 {
        out.push(u8::from(neg));
        out.extend_from_slice(&days.to_le_bytes());
        out.extend_from_slice(&[h, mi, s]);
    }
    if len == 12 {
        out.extend_from_slice(&us.to_le_bytes());
    }
}

pub fn put_lenenc_int(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=250 => out.push(n as u8),
        251..=0xffff => {
            out.push(0xfc);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xff_ffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xfe);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

pub fn put_lenenc_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_lenenc_int(out, b.len() as u64);
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenenc_boundaries() {
        let enc = |n| {
            let mut v = Vec::new();
            put_lenenc_int(&mut v, n);
            v
        };
        assert_eq!(enc(250), vec![250]);
        assert_eq!(enc(251), vec![0xfc, 251, 0]);
        assert_eq!(enc(0x10000), vec![0xfd, 0, 0, 1]);
        assert_eq!(enc(1 << 24), vec![0xfe, 0, 0, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn temporal_values_use_the_shortest_form() {
        let mut v = Vec::new();
        put_datetime(&mut v, (0, 0, 0, 0, 0, 0, 0));
        assert_eq!(v, vec![0]);
        v.clear();
        put_datetime(&mut v, (2024, 2, 29, 0, 0, 0, 0));
        assert_eq!(v, vec![4, 0xe8, 0x07, 2, 29]);
        v.clear();
        put_time(&mut v, true, 1, 2, 3, 4, 5);
        assert_eq!(v, vec![12, 1, 1, 0, 0, 0, 2, 3, 4, 5, 0, 0, 0]);
    }
}
