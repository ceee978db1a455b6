// Copyright 2021 Datafuse Labs.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

//! Decodes the parameters of COM_STMT_EXECUTE.
//!
//! Patched for lockstep (see PATCHES.md, "params"): the published version did
//! not consume the new-params-bound flag byte when it was 0, so every
//! re-execute by libmariadb/libmysqlclient (which send the types only once)
//! read parameters shifted by one byte. It also panicked on an unknown type
//! byte, on a re-execute without types and on truncated values; those are now
//! errors the caller turns into ER_WRONG_ARGUMENTS.

use std::collections::HashMap;
use std::io;

use crate::myc;
use crate::{StatementData, Value};

/// A `ParamParser` decodes query parameters included in a client's `EXECUTE` command given
/// type information for the expected parameters.
pub struct ParamParser<'a> {
    pub(crate) params: u16,
    pub(crate) bytes: &'a [u8],
    pub(crate) long_data: &'a HashMap<u16, Vec<u8>>,
    pub(crate) bound_types: &'a mut Vec<(myc::constants::ColumnType, bool)>,
}

impl<'a> ParamParser<'a> {
    pub(crate) fn new(input: &'a [u8], stmt: &'a mut StatementData) -> Self {
        ParamParser {
            params: stmt.params,
            bytes: input,
            long_data: &stmt.long_data,
            bound_types: &mut stmt.bound_types,
        }
    }

    /// Decodes every parameter, or says why the packet is malformed.
    pub fn parse(self) -> io::Result<Vec<ParamValue<'a>>> {
        let count = usize::from(self.params);
        if count == 0 {
            return Ok(Vec::new());
        }
        let nullmap_len = count.div_ceil(8);
        let input = self.bytes;
        if input.len() < nullmap_len + 1 {
            return Err(malformed("parameter block shorter than its NULL bitmap"));
        }
        let (nullmap, rest) = input.split_at(nullmap_len);
        let (bound_flag, mut rest) = (rest[0], &rest[1..]);
        if bound_flag != 0 {
            if rest.len() < 2 * count {
                return Err(malformed("parameter type block truncated"));
            }
            let (typmap, after) = rest.split_at(2 * count);
            self.bound_types.clear();
            for pair in typmap.chunks_exact(2) {
                let coltype = myc::constants::ColumnType::try_from(pair[0])
                    .map_err(|_| malformed(&format!("unknown parameter type 0x{:02x}", pair[0])))?;
                self.bound_types.push((coltype, pair[1] & 0x80 != 0));
            }
            rest = after;
        } else if self.bound_types.len() != count {
            return Err(malformed("parameters sent without their types"));
        }

        let mut values = Vec::with_capacity(count);
        for (col, &(coltype, unsigned)) in self.bound_types.iter().enumerate() {
            let is_null = nullmap[col / 8] & (1u8 << (col % 8)) != 0;
            // Values sent with COM_STMT_SEND_LONG_DATA are not repeated in the
            // execute packet.
            let value = if is_null {
                Value::null()
            } else if let Some(data) = u16::try_from(col).ok().and_then(|c| self.long_data.get(&c))
            {
                Value::bytes(&data[..])
            } else {
                Value::parse_from(&mut rest, coltype, unsigned)
                    .map_err(|e| malformed(&format!("parameter {col}: {e}")))?
            };
            values.push(ParamValue {
                value,
                coltype,
                unsigned,
            });
        }
        Ok(values)
    }
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// A single parameter value provided by a client when issuing an `EXECUTE` command.
#[derive(Debug)]
pub struct ParamValue<'a> {
    /// The value provided for this parameter.
    pub value: Value<'a>,
    /// The column type assigned to this parameter.
    pub coltype: myc::constants::ColumnType,
    /// Whether the client flagged the parameter as unsigned.
    pub unsigned: bool,
}
