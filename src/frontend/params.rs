//! A client's COM_STMT_EXECUTE parameters, as values mysql_async sends on.

use mysql_async::Value;
use opensrv_mysql::{ColumnType, ParamValue, ValueInner};

pub fn to_backend(params: &[ParamValue<'_>]) -> Vec<Value> {
    params.iter().map(to_backend_value).collect()
}

fn to_backend_value(p: &ParamValue<'_>) -> Value {
    match p.value.into_inner() {
        ValueInner::NULL => Value::NULL,
        ValueInner::Bytes(b) => Value::Bytes(b.to_vec()),
        ValueInner::Int(i) => Value::Int(i),
        ValueInner::UInt(u) => Value::UInt(u),
        // Keep a FLOAT a FLOAT: widening it to DOUBLE would change what
        // MariaDB compares and stores.
        ValueInner::Double(d) if p.coltype == ColumnType::MYSQL_TYPE_FLOAT => {
            Value::Float(d as f32)
        }
        ValueInner::Double(d) => Value::Double(d),
        ValueInner::Date(b) | ValueInner::Datetime(b) => datetime(b),
        ValueInner::Time(b) => time(b),
    }
}

/// Binary DATE/DATETIME: 0, 4, 7 or 11 bytes (year u16, month, day, hour,
/// minute, second, microseconds u32); shorter forms mean zero for the rest.
fn datetime(b: &[u8]) -> Value {
    let byte = |i: usize| b.get(i).copied().unwrap_or(0);
    let year = u16::from_le_bytes([byte(0), byte(1)]);
    let micros = u32::from_le_bytes([byte(7), byte(8), byte(9), byte(10)]);
    Value::Date(year, byte(2), byte(3), byte(4), byte(5), byte(6), micros)
}

/// Binary TIME: 0, 8 or 12 bytes (negative flag, days u32, hour, minute,
/// second, microseconds u32).
fn time(b: &[u8]) -> Value {
    let byte = |i: usize| b.get(i).copied().unwrap_or(0);
    let days = u32::from_le_bytes([byte(1), byte(2), byte(3), byte(4)]);
    let micros = u32::from_le_bytes([byte(8), byte(9), byte(10), byte(11)]);
    Value::Time(byte(0) != 0, days, byte(5), byte(6), byte(7), micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_forms_mean_zero() {
        assert_eq!(datetime(&[]), Value::Date(0, 0, 0, 0, 0, 0, 0));
        assert_eq!(
            datetime(&[0xe8, 0x07, 2, 29]),
            Value::Date(2024, 2, 29, 0, 0, 0, 0)
        );
        assert_eq!(
            time(&[1, 1, 0, 0, 0, 2, 3, 4, 5, 0, 0, 0]),
            Value::Time(true, 1, 2, 3, 4, 5)
        );
    }
}
