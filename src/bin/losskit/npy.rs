//! A small reader and writer for NumPy's `.npy` format (versions 1.0, 2.0 and 3.0).
//!
//! Read: little-endian (or byte-order-free) `f4`/`f8` (as f32) and `i4`/`i8` (as i64), C order.
//! Anything else (big-endian, Fortran order, other dtypes, object arrays) is refused with a
//! one-line message. Write: f32 (`<f4`) and i64 (`<i8`), version 1.0, C order, the header
//! padded so that the data starts on a 64-byte boundary (as NumPy does).

use std::path::Path;

/// Elements of an array read from a file.
#[derive(Clone, Debug, PartialEq)]
pub enum NpyData {
    /// Float data (from `f4` or `f8`).
    F32(Vec<f32>),
    /// Integer data (from `i4` or `i8`).
    I64(Vec<i64>),
}

/// An array read from a `.npy` file.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// C-order shape (empty for a 0-d array).
    pub shape: Vec<usize>,
    /// The elements.
    pub data: NpyData,
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// Read a `.npy` file. Errors name the file.
pub fn read(path: &Path) -> Result<NpyArray, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read '{}': {e}", path.display()))?;
    parse(&bytes).map_err(|e| format!("'{}': {e}", path.display()))
}

/// Parse the bytes of a `.npy` file.
pub fn parse(b: &[u8]) -> Result<NpyArray, String> {
    if b.len() < 10 || &b[..6] != MAGIC {
        return Err("not a .npy file (bad magic string)".into());
    }
    let major = b[6];
    let (hlen, start): (usize, usize) = match major {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        2 | 3 => {
            if b.len() < 12 {
                return Err("truncated .npy header".into());
            }
            (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
        }
        v => return Err(format!("unsupported .npy format version {v}")),
    };
    let end = start
        .checked_add(hlen)
        .filter(|&e| e <= b.len())
        .ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(&b[start..end]).map_err(|_| "the .npy header is not text")?;
    let descr = dict_value(header, "descr")?;
    let descr = unquote(descr).ok_or_else(|| format!("unsupported dtype {descr}"))?;
    let fortran = dict_value(header, "fortran_order")?;
    match fortran {
        "False" => {}
        "True" => {
            return Err("Fortran-order arrays are not supported (save with C order)".into());
        }
        v => return Err(format!("bad fortran_order value {v}")),
    }
    let shape = parse_shape(dict_value(header, "shape")?)?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("shape too large")?;
    let (order, kind) = match descr.as_bytes() {
        [o @ (b'<' | b'|' | b'='), rest @ ..] => (*o, std::str::from_utf8(rest).unwrap_or("")),
        [b'>', ..] => {
            return Err(format!(
                "big-endian dtype '{descr}' is not supported (use little-endian)"
            ));
        }
        _ => (b'<', descr),
    };
    if order == b'=' && cfg!(target_endian = "big") {
        return Err(format!("native-order dtype '{descr}' on a big-endian host"));
    }
    let payload = &b[end..];
    let need = |size: usize| -> Result<&[u8], String> {
        let n = count.checked_mul(size).ok_or("shape too large")?;
        if payload.len() < n {
            return Err(format!(
                "data truncated: shape {shape:?} of '{descr}' needs {n} bytes, the file has {}",
                payload.len()
            ));
        }
        Ok(&payload[..n])
    };
    let data = match kind {
        "f4" => NpyData::F32(
            need(4)?
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        "f8" => NpyData::F32(
            need(8)?
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
                .collect(),
        ),
        "i4" => NpyData::I64(
            need(4)?
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                .collect(),
        ),
        "i8" => NpyData::I64(
            need(8)?
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        ),
        _ => {
            return Err(format!(
                "dtype '{descr}' is not supported (use float32, float64, int32 or int64)"
            ));
        }
    };
    Ok(NpyArray { shape, data })
}

/// The text of the value of `key` in the header's Python dict literal.
fn dict_value<'h>(header: &'h str, key: &str) -> Result<&'h str, String> {
    let missing = || format!("the .npy header has no '{key}'");
    let k = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))
        .ok_or_else(missing)?;
    let rest = &header[k + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':').ok_or_else(missing)?;
    let rest = rest.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')').map(|e| e + 1)
    } else if let Some(q) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') {
        rest[1..].find(q).map(|e| e + 2)
    } else {
        rest.find([',', '}'])
    }
    .ok_or_else(|| format!("malformed '{key}' in the .npy header"))?;
    Ok(rest[..end].trim())
}

fn unquote(s: &str) -> Option<&str> {
    s.strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
}

fn parse_shape(s: &str) -> Result<Vec<usize>, String> {
    let inner = s
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("malformed shape {s}"))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| format!("malformed shape {s}"))
        })
        .collect()
}

fn header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims = match shape.len() {
        0 => String::new(),
        1 => format!("{},", shape[0]),
        _ => shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}");
    // magic (6) + version (2) + length (2) + header + '\n', padded to a multiple of 64.
    let unpadded = 10 + h.len() + 1;
    h.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    h.push('\n');
    let mut out = Vec::with_capacity(10 + h.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out
}

/// The bytes of an f32 array as a `.npy` file.
pub fn encode_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let mut out = header("<f4", shape);
    out.reserve(data.len() * 4);
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// The bytes of an i64 array as a `.npy` file (the CLI writes only f32; used by tests).
#[cfg(test)]
pub fn encode_i64(shape: &[usize], data: &[i64]) -> Vec<u8> {
    let mut out = header("<i8", shape);
    out.reserve(data.len() * 8);
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Write an f32 array. Errors name the file.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), String> {
    std::fs::write(path, encode_f32(shape, data))
        .map_err(|e| format!("cannot write '{}': {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_f32_and_i64() {
        let v = [1.5f32, -2.0, 3.25, 0.0, 7.0, -0.5];
        let b = encode_f32(&[2, 3], &v);
        assert_eq!((b.len() - v.len() * 4) % 64, 0);
        let a = parse(&b).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, NpyData::F32(v.to_vec()));
        let t = [3i64, -100, 0];
        let a = parse(&encode_i64(&[3], &t)).unwrap();
        assert_eq!(a.shape, vec![3]);
        assert_eq!(a.data, NpyData::I64(t.to_vec()));
        let a = parse(&encode_f32(&[], &[4.0])).unwrap();
        assert_eq!(a.shape, Vec::<usize>::new());
        assert_eq!(a.data, NpyData::F32(vec![4.0]));
    }

    fn with_header(h: &str, payload: &[u8]) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[1, 0]);
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn reads_f64_and_i32_as_written_by_numpy() {
        let mut p = Vec::new();
        for v in [0.5f64, -1.25] {
            p.extend_from_slice(&v.to_le_bytes());
        }
        let a = parse(&with_header(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }          \n",
            &p,
        ))
        .unwrap();
        assert_eq!(a.data, NpyData::F32(vec![0.5, -1.25]));
        let mut p = Vec::new();
        for v in [7i32, -100] {
            p.extend_from_slice(&v.to_le_bytes());
        }
        let a = parse(&with_header(
            "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }\n",
            &p,
        ))
        .unwrap();
        assert_eq!(a.shape, vec![2]);
        assert_eq!(a.data, NpyData::I64(vec![7, -100]));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let e = |h: &str, p: &[u8]| parse(&with_header(h, p)).unwrap_err();
        assert!(
            e(
                "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
                &[0; 4]
            )
            .contains("big-endian")
        );
        assert!(
            e(
                "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }",
                &[0; 4]
            )
            .contains("Fortran")
        );
        assert!(
            e(
                "{'descr': '<u2', 'fortran_order': False, 'shape': (1,), }",
                &[0; 2]
            )
            .contains("not supported")
        );
        assert!(
            e(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
                &[0; 4]
            )
            .contains("truncated")
        );
        assert!(parse(b"hello world").unwrap_err().contains("magic"));
    }
}
