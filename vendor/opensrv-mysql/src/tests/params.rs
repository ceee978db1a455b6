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

use std::collections::HashMap;

use crate::myc::constants::ColumnType;
use crate::params::ParamParser;
use crate::{StatementData, ValueInner};

fn stmt(params: u16) -> StatementData {
    StatementData {
        long_data: HashMap::new(),
        bound_types: Vec::new(),
        params,
    }
}

// PATCHES.md "params": libmariadb sends the types only with the first
// execute; later ones carry new-params-bound = 0, which must be consumed.
#[test]
fn re_execute_without_types_reads_the_right_values() {
    let mut s = stmt(2);
    // nullmap, bound=1, types (LONG, VAR_STRING), 7, "ab"
    let first = [
        0x00, 0x01, 0x03, 0x00, 0xfd, 0x00, 7, 0, 0, 0, 2, b'a', b'b',
    ];
    let v = ParamParser::new(&first, &mut s).parse().unwrap();
    assert_eq!(v[0].value.into_inner(), ValueInner::Int(7));
    assert_eq!(v[1].value.into_inner(), ValueInner::Bytes(b"ab"));
    // nullmap, bound=0, 9, "cd"
    let again = [0x00, 0x00, 9, 0, 0, 0, 2, b'c', b'd'];
    let v = ParamParser::new(&again, &mut s).parse().unwrap();
    assert_eq!(v[0].value.into_inner(), ValueInner::Int(9));
    assert_eq!(v[1].value.into_inner(), ValueInner::Bytes(b"cd"));
    assert_eq!(v[1].coltype, ColumnType::MYSQL_TYPE_VAR_STRING);
}

#[test]
fn nulls_and_unsigned() {
    let mut s = stmt(2);
    let data = [
        0x01, 0x01, 0x03, 0x00, 0x08, 0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];
    let v = ParamParser::new(&data, &mut s).parse().unwrap();
    assert!(v[0].value.is_null());
    assert_eq!(v[1].value.into_inner(), ValueInner::UInt(u64::MAX));
}

#[test]
fn malformed_parameters_are_errors_not_panics() {
    // re-execute before any types were sent
    assert!(ParamParser::new(&[0x00, 0x00, 1, 0, 0, 0], &mut stmt(1))
        .parse()
        .is_err());
    // unknown type byte
    assert!(ParamParser::new(&[0x00, 0x01, 0x99, 0x00, 1], &mut stmt(1))
        .parse()
        .is_err());
    // truncated value
    assert!(
        ParamParser::new(&[0x00, 0x01, 0x03, 0x00, 1, 0], &mut stmt(1))
            .parse()
            .is_err()
    );
    // truncated type block and bitmap
    assert!(ParamParser::new(&[0x00, 0x01, 0x03], &mut stmt(2))
        .parse()
        .is_err());
    assert!(ParamParser::new(&[], &mut stmt(1)).parse().is_err());
}
