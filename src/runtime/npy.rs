//! Tensors in NumPy files: `nsplit run` reads each input from an `.npy` file and writes the
//! outputs as one `.npz` archive (what `np.load` opens), named by tensor.
//!
//! npyz parses and writes the `.npy` headers; the data is the raw little-endian bytes that
//! follow (big-endian files are swapped on reading), so every numeric type and bool round-trips
//! without a per-type path. An `.npz` is a stored (uncompressed) zip of `.npy` files, as
//! `np.savez` writes it.

use super::datatype::WireType;
use anyhow::{anyhow, bail, Context, Result};
use npyz::{Endianness, Order, TypeStr, WriterBuilder};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use tract_onnx::prelude::{DatumType, Tensor};

/// Read one array from an `.npy` file.
pub fn read_npy(path: &Path) -> Result<Tensor> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    read_npy_from(BufReader::new(file), &path.display().to_string())
}

/// Read one array in `.npy` form from `reader`; `shown` names it in errors.
fn read_npy_from(reader: impl Read, shown: &str) -> Result<Tensor> {
    let npy =
        npyz::NpyFile::new(reader).with_context(|| format!("{shown} is not a NumPy .npy file"))?;
    let npyz::DType::Plain(ty) = npy.dtype() else {
        bail!("{shown} holds a structured array; save a plain numeric array (np.save)");
    };
    let wire = wire_of(&ty).with_context(|| shown.to_string())?;
    let dt = wire.datum()?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let order = npy.order();
    let mut bytes = vec![];
    npy.into_inner()
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {shown}"))?;
    let size = dt.size_of();
    let needed = shape
        .iter()
        .try_fold(size, |n, &d| n.checked_mul(d))
        .with_context(|| format!("{shown}: shape {shape:?} is too large"))?;
    if bytes.len() != needed {
        bail!(
            "{shown}: shape {shape:?} of {} needs {needed} bytes of data, the file has {}",
            wire.kserve,
            bytes.len()
        );
    }
    if ty.endianness() == Endianness::Big && size > 1 {
        bytes.chunks_mut(size).for_each(|c| c.reverse());
    }
    if dt == DatumType::Bool && bytes.iter().any(|&b| b > 1) {
        bail!("{shown}: a bool array holds bytes other than 0 and 1");
    }
    let tensor = match order {
        Order::C => tensor_from_bytes(dt, &shape, &bytes)?,
        // Fortran order: the data is the transpose's, in C order.
        Order::Fortran => {
            let reversed: Vec<usize> = shape.iter().rev().copied().collect();
            let axes: Vec<usize> = (0..shape.len()).rev().collect();
            tensor_from_bytes(dt, &reversed, &bytes)?.permute_axes(&axes)?
        }
    };
    Ok(tensor)
}

/// Read every array of an `.npz` archive, in the archive's order.
pub fn read_npz(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let shown = path.display();
    let file = File::open(path).with_context(|| format!("cannot open {shown}"))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .with_context(|| format!("{shown} is not an .npz archive"))?;
    let mut arrays = vec![];
    for i in 0..zip.len() {
        let entry = zip
            .by_index(i)
            .with_context(|| format!("cannot read {shown}"))?;
        let name = entry
            .name()
            .with_context(|| format!("{shown}: an entry has no readable name"))?
            .trim_end_matches(".npy")
            .to_string();
        let t = read_npy_from(entry, &format!("{shown}: array `{name}`"))?;
        arrays.push((name, t));
    }
    Ok(arrays)
}

/// Write `tensors` as an `.npz` archive at `path`, atomically (a temporary file beside it,
/// renamed into place).
pub fn write_npz(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let shown = path.display();
    let tmp = crate::output::temp_file_beside(path)?;
    {
        let mut zip = zip::ZipWriter::new(BufWriter::new(tmp.as_file()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(true);
        for (name, t) in tensors {
            zip.start_file(format!("{name}.npy"), options)
                .with_context(|| format!("cannot write {shown}"))?;
            write_npy_to(&mut zip, t).with_context(|| format!("{shown}: array `{name}`"))?;
        }
        zip.finish()
            .and_then(|mut w| w.flush().map_err(Into::into))
            .with_context(|| format!("cannot write {shown}"))?;
    }
    tmp.persist(path)
        .map_err(|e| anyhow!("cannot write {shown}: {}", e.error))?;
    Ok(())
}

/// Write one array as the `.npy` file `path`.
pub fn write_npy(path: &Path, t: &Tensor) -> Result<()> {
    let mut f = BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?,
    );
    write_npy_to(&mut f, t)?;
    f.flush()
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Write one array as `.npy` bytes.
pub fn write_npy_to(w: &mut impl Write, t: &Tensor) -> Result<()> {
    let wire = WireType::of_datum(t.datum_type())?;
    let ty: TypeStr = wire
        .numpy
        .ok_or_else(|| anyhow!("NumPy has no type for {}", wire.kserve))?
        .parse()
        .map_err(|e| anyhow!("{e}"))?;
    let shape: Vec<u64> = t.shape().iter().map(|&d| d as u64).collect();
    let w = npyz::WriteOptions::new_header_only()
        .dtype(npyz::DType::Plain(ty))
        .shape(&shape)
        .writer(w)
        .write_header_only()?;
    w.write_all(t.as_bytes())?;
    Ok(())
}

/// The element type of a NumPy type string.
fn wire_of(ty: &TypeStr) -> Result<WireType> {
    let same = |numpy: &str| {
        numpy
            .parse::<TypeStr>()
            .is_ok_and(|n| n.type_char() == ty.type_char() && n.size_field() == ty.size_field())
    };
    for dt in [
        DatumType::F32,
        DatumType::F64,
        DatumType::F16,
        DatumType::I8,
        DatumType::I16,
        DatumType::I32,
        DatumType::I64,
        DatumType::U8,
        DatumType::U16,
        DatumType::U32,
        DatumType::U64,
        DatumType::Bool,
    ] {
        let wire = WireType::of_datum(dt)?;
        if wire.numpy.is_some_and(same) {
            return Ok(wire);
        }
    }
    bail!("NumPy type `{ty}` is not a tensor type nsplit can send (use a numeric or bool array)")
}

fn tensor_from_bytes(dt: DatumType, shape: &[usize], bytes: &[u8]) -> Result<Tensor> {
    // SAFETY: `bytes` holds exactly `shape`'s element count of `dt` in its little-endian
    // layout (checked by the caller), and bools are 0 or 1.
    let t = unsafe { Tensor::from_raw_dt(dt, shape, bytes)? };
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npz_round_trips_through_npy_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tensor::from_shape(&[2, 3], &[1f32, 2., 3., 4., 5., 6.]).unwrap();
        let npy = dir.path().join("x.npy");
        let mut f = File::create(&npy).unwrap();
        write_npy_to(&mut f, &t).unwrap();
        drop(f);
        assert_eq!(read_npy(&npy).unwrap(), t);
        let b = Tensor::from_shape(&[3], &[true, false, true]).unwrap();
        let npz = dir.path().join("out.npz");
        write_npz(&npz, &[("x".into(), t.clone()), ("mask".into(), b.clone())]).unwrap();
        let back = read_npz(&npz).unwrap();
        assert_eq!(back[0], ("x".to_string(), t));
        assert_eq!(back[1], ("mask".to_string(), b));
    }

    #[test]
    fn a_file_too_short_for_its_shape_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let npy = dir.path().join("x.npy");
        let t = Tensor::from_shape(&[4], &[1i64, 2, 3, 4]).unwrap();
        let mut bytes = vec![];
        write_npy_to(&mut bytes, &t).unwrap();
        bytes.truncate(bytes.len() - 8);
        std::fs::write(&npy, bytes).unwrap();
        let e = format!("{:#}", read_npy(&npy).unwrap_err());
        assert!(e.contains("needs 32 bytes of data, the file has 24"), "{e}");
    }
}
