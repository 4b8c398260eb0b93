//! External tensor data (`data_location = EXTERNAL`): parsing, validation and reading.

use anyhow::{bail, Context, Result};
use onnx_protobuf::{tensor_proto::DataLocation, TensorProto};
use std::path::{Component, Path, PathBuf};

/// Where one tensor's bytes live outside the model file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalData {
    /// Path relative to the model's folder, as written in the model.
    pub location: String,
    pub offset: u64,
    /// Byte count; `None` means "to the end of the file".
    pub length: Option<u64>,
}

impl ExternalData {
    /// The tensor's external reference, if it has one. Malformed entries are an error naming the tensor.
    pub fn of(t: &TensorProto) -> Result<Option<ExternalData>> {
        if t.data_location.value() != DataLocation::EXTERNAL as i32 {
            return Ok(None);
        }
        let mut ext = ExternalData {
            location: String::new(),
            offset: 0,
            length: None,
        };
        for kv in &t.external_data {
            let number = || {
                kv.value.trim().parse::<u64>().with_context(|| {
                    format!(
                        "tensor `{}`: external_data `{}` = `{}` is not a byte count",
                        t.name, kv.key, kv.value
                    )
                })
            };
            match kv.key.as_str() {
                "location" => ext.location = kv.value.clone(),
                "offset" => ext.offset = number()?,
                "length" => ext.length = Some(number()?),
                _ => {} // "checksum" and future keys do not change where the bytes are
            }
        }
        if ext.location.is_empty() {
            bail!(
                "tensor `{}` is marked EXTERNAL but has no `location`",
                t.name
            );
        }
        Ok(Some(ext))
    }

    /// The data file's path, refusing locations that are absolute or leave the model's folder:
    /// a model must not make us read arbitrary files.
    pub fn resolve(&self, dir: &Path, tensor: &str) -> Result<PathBuf> {
        let rel = Path::new(&self.location);
        let escapes = rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
        if rel.is_absolute()
            || escapes
            || self.location.starts_with('/')
            || self.location.starts_with('\\')
        {
            bail!(
                "tensor `{tensor}`: external data location `{}` is not a relative path inside the model's folder; \
                 external data files must sit beside the model",
                self.location
            );
        }
        Ok(dir.join(rel))
    }

    /// Check the file exists and holds the byte range.
    pub fn check(&self, dir: &Path, tensor: &str, model: &Path) -> Result<()> {
        let path = self
            .resolve(dir, tensor)
            .with_context(|| model.display().to_string())?;
        let size = std::fs::metadata(&path)
            .with_context(|| {
                format!(
                    "{}: external data file {} for tensor `{tensor}` is missing; copy it beside the model",
                    model.display(),
                    path.display()
                )
            })?
            .len();
        let end = self.offset + self.length.unwrap_or(size.saturating_sub(self.offset));
        if self.offset > size || end > size {
            bail!(
                "{}: tensor `{tensor}` wants bytes {}..{end} of {}, which has only {size} bytes (truncated?)",
                model.display(),
                self.offset,
                path.display()
            );
        }
        Ok(())
    }
}
