//! The output folder: every file nsplit writes (halves with their external data, tables,
//! profiles, model repositories) and no partial output.
//!
//! Every file is first written under its final name into a private staging folder inside the
//! output folder (`DIR/.nsplit-XXXXXX/`), where the halves can be checked (a half and its data
//! file sit side by side, so external data resolves), and renamed into place by
//! [`Staging::commit`]. If anything fails before that, the staging folder is removed (and the
//! output folder too, if we created it), so a failed run leaves nothing behind.

use crate::load::Model;
use crate::proto::wire::{self, FileRange, Piece, PLACEHOLDER};
use anyhow::{bail, Context, Result};
use onnx_protobuf::{
    tensor_proto::DataLocation, Message, ModelProto, StringStringEntryProto, TensorProto,
};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// Write `bytes` as the file `path` all at once: into a temporary file beside it, then renamed
/// into place, so a failed write leaves no partial file.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let shown = path.display();
    let mut tmp = temp_file_beside(path)?;
    tmp.write_all(bytes)
        .with_context(|| format!("cannot write {shown}"))?;
    tmp.persist(path)
        .map_err(|e| anyhow::anyhow!("cannot write {shown}: {}", e.error))?;
    Ok(())
}

/// A temporary file in `path`'s folder, to be renamed to `path` once written. It is created
/// 0666 less the umask, as any other file the user writes (a temporary file's own default is
/// 0600, which would survive the rename).
pub fn temp_file_beside(path: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir).with_context(|| {
        format!(
            "cannot write {}: its folder is missing or not writable",
            path.display()
        )
    })
}

/// When halves store their weights in a separate data file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ExternalData {
    /// External when the source model used external data, or when a half exceeds 2 GiB.
    Auto,
    Always,
    /// Inline, except for a half over 2 GiB, which protobuf cannot write inline.
    Never,
}

/// Tensors smaller than this stay inline even in external mode (onnx's own default threshold).
const EXTERNAL_MIN_BYTES: usize = 1024;
/// protobuf refuses messages over i32::MAX bytes.
const PROTOBUF_LIMIT: u64 = i32::MAX as u64;

/// A file written by [`Staging::write_model`].
#[derive(Clone, Debug)]
pub struct Written {
    /// Its name in the output folder.
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub data_file: Option<PathBuf>,
    pub data_bytes: u64,
}

/// Files written into a staging folder, renamed into place together.
pub struct Staging {
    dir: PathBuf,
    created_dir: bool,
    /// Removed on drop, with anything not committed.
    stage: TempDir,
    /// Final names of the staged files, in the order written.
    names: Vec<String>,
}

impl Staging {
    /// Prepare `dir` (created if missing). A path that is a file, or a folder we cannot write
    /// into, is an error naming it.
    pub fn new(dir: &Path) -> Result<Staging> {
        Staging::staged_in(dir, dir)
    }

    /// Like [`new`](Self::new), with the staging folder beside `dir` (in its parent) rather
    /// than inside: for a folder a server watches, such as a Triton model repository, which
    /// would take a folder inside for a model.
    pub fn beside(dir: &Path) -> Result<Staging> {
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Staging::staged_in(dir, &parent)
    }

    fn staged_in(dir: &Path, stage_in: &Path) -> Result<Staging> {
        if dir.exists() && !dir.is_dir() {
            bail!("output path {} exists and is not a folder", dir.display());
        }
        let created_dir = !dir.exists();
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create output folder {}", dir.display()))?;
        let stage = tempfile::Builder::new()
            .prefix(".nsplit-")
            .tempdir_in(stage_in);
        let stage = match stage {
            Ok(stage) => stage,
            Err(e) => {
                if created_dir {
                    let _ = std::fs::remove_dir(dir);
                }
                bail!("output folder {} is not writable: {e}", dir.display());
            }
        };
        Ok(Staging {
            dir: dir.to_path_buf(),
            created_dir,
            stage,
            names: vec![],
        })
    }

    /// Create the staged file that will become `DIR/name`; a name with `/` is a file in a
    /// folder, and the folder is what [`commit`](Self::commit) moves into place.
    fn create(&mut self, name: &str) -> Result<File> {
        if self.names.iter().any(|n| n == name) {
            bail!("internal error: {name} written twice");
        }
        let path = self.stage.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create a folder in {}", self.dir.display()))?;
        }
        let file = File::create(&path)
            .with_context(|| format!("cannot create a file in {}", self.dir.display()))?;
        self.names.push(name.to_string());
        Ok(file)
    }

    /// The folder the staged files go into.
    pub fn target(&self) -> &Path {
        &self.dir
    }

    /// Where `DIR/name` sits until [`commit`](Self::commit): read it there to check it.
    pub fn staged(&self, name: &str) -> PathBuf {
        self.stage.path().join(name)
    }

    /// Write `model` as `name` (and `name.data` in external mode). Bytes that `source` keeps
    /// on disk (external data, weights left in the model file) move file to file, never through
    /// memory. The model's tensors are changed only while writing.
    ///
    /// `share`: the same model, written before in this folder (the whole model is both the
    /// all-mobile head and the all-cloud tail): `name` becomes a second name of that file (a hard
    /// link: one copy of the bytes) when it has no data file; with one, each name gets its own
    /// model and data file, so either ships alone. Data files are never linked: the onnx checker
    /// refuses external data with several links.
    pub fn write_model(
        &mut self,
        name: &str,
        model: &mut ModelProto,
        source: &Model,
        mode: ExternalData,
        share: Option<&Written>,
    ) -> Result<Written> {
        source.check_unchanged()?;
        let on_disk: Vec<Option<FileRange>> = model
            .graph
            .initializer
            .iter()
            .map(|t| source.file_range(t))
            .collect::<Result<_>>()?;
        let source_external = model
            .graph
            .initializer
            .iter()
            .any(|t| t.data_location.value() == DataLocation::EXTERNAL as i32);
        let disk_bytes: u64 = on_disk.iter().flatten().map(|r| r.len).sum();
        let too_big = model.compute_size() + disk_bytes > PROTOBUF_LIMIT;
        let external = match mode {
            ExternalData::Always => true,
            ExternalData::Auto => source_external || too_big,
            ExternalData::Never => too_big,
        };
        // A link would read its data by the first name (`all-cloud.tail.onnx.data` from the
        // all-mobile head an app bundles), so a model with a data file is written again.
        if let Some(shared) = share.filter(|s| s.data_file.is_none()) {
            return self.link(shared, name);
        }
        let data_name = format!("{name}.data");
        let mut data = match external {
            false => None,
            true => Some(DataFile {
                file: self.create(&data_name)?,
                len: 0,
                pending: None,
            }),
        };

        let file = self.create(name)?;
        // Each tensor is swapped for the form it is written in; the originals go back whatever
        // happens, so a failed write leaves the source model as it was.
        let mut originals: Vec<(usize, TensorProto)> = vec![];
        let result = write_swapped(
            model,
            on_disk,
            &mut originals,
            data.as_mut(),
            &data_name,
            &file,
        )
        .with_context(|| format!("cannot write {name}"));
        let graph = model.graph.mut_or_insert_default();
        for (i, t) in originals {
            graph.initializer[i] = t;
        }
        result?;
        source.check_unchanged()?;
        let bytes = file.metadata()?.len();
        let (data_file, data_bytes) = match data {
            // Not synced: like cp and compilers, the page cache writes it back.
            Some(data) => (Some(self.dir.join(&data_name)), data.len),
            None => (None, 0),
        };
        Ok(Written {
            name: name.to_string(),
            path: self.dir.join(name),
            bytes,
            data_file,
            data_bytes,
        })
    }

    /// Stage `name` as a second name (a hard link) of the staged model `shared`: only ever a
    /// file nsplit wrote, never the user's model, whose in-place edits a link would follow.
    fn link(&mut self, shared: &Written, name: &str) -> Result<Written> {
        if !self.names.contains(&shared.name) {
            bail!("internal error: {} is not staged", shared.name);
        }
        if self.names.iter().any(|n| n == name) {
            bail!("internal error: {name} written twice");
        }
        std::fs::hard_link(self.staged(&shared.name), self.staged(name)).with_context(|| {
            format!(
                "cannot link {name} to {} in {}",
                shared.name,
                self.dir.display()
            )
        })?;
        self.names.push(name.to_string());
        Ok(Written {
            name: name.to_string(),
            path: self.dir.join(name),
            ..shared.clone()
        })
    }

    /// Write a small text file (selection tables, reports).
    pub fn write_text(&mut self, name: &str, text: &str) -> Result<PathBuf> {
        let mut f = self.create(name)?;
        f.write_all(text.as_bytes())
            .with_context(|| format!("cannot write {name}"))?;
        Ok(self.dir.join(name))
    }

    /// Copy the file at `from` to become `DIR/name` (the kernel copies where it can).
    pub fn copy_file(&mut self, from: &Path, name: &str) -> Result<PathBuf> {
        let mut to = self.create(name)?;
        let mut src =
            File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
        std::io::copy(&mut src, &mut to)
            .with_context(|| format!("cannot copy {} into {name}", from.display()))?;
        Ok(self.dir.join(name))
    }

    /// Rename every staged file, and every staged folder as a whole, into place (each rename
    /// is atomic: same file system). A folder already there is replaced.
    pub fn commit(mut self) -> Result<()> {
        let mut moved: Vec<String> = vec![];
        for name in std::mem::take(&mut self.names) {
            let top = name.split('/').next().unwrap_or(&name).to_string();
            if moved.contains(&top) {
                continue;
            }
            let (from, to) = (self.stage.path().join(&top), self.dir.join(&top));
            let mut old = None;
            if from.is_dir() && to.is_dir() {
                // Out of the way first: a rename cannot replace a folder that has files.
                let aside = self.stage.path().join(format!(".replaced-{}", moved.len()));
                std::fs::rename(&to, &aside)
                    .with_context(|| format!("cannot replace {}", to.display()))?;
                old = Some(aside);
            }
            if let Err(e) = std::fs::rename(&from, &to) {
                if let Some(aside) = old {
                    let _ = std::fs::rename(aside, &to); // put the old folder back
                }
                return Err(e)
                    .with_context(|| format!("cannot move the output into {}", to.display()));
            }
            moved.push(top);
        }
        self.created_dir = false;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Uncommitted: the staging folder removes itself; remove an output folder we made.
        if self.created_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Write `model` into `file`: each initializer's bytes into `data` (external) or spliced in from
/// its file range (inline); `originals` gets every tensor swapped for its written form.
fn write_swapped(
    model: &mut ModelProto,
    on_disk: Vec<Option<FileRange>>,
    originals: &mut Vec<(usize, TensorProto)>,
    mut data: Option<&mut DataFile>,
    data_name: &str,
    file: &File,
) -> Result<()> {
    let mut spliced: HashMap<usize, FileRange> = HashMap::new();
    let graph = model.graph.mut_or_insert_default();
    for (i, (t, disk)) in graph.initializer.iter_mut().zip(on_disk).enumerate() {
        let written = match (&mut data, disk) {
            (Some(data), disk) => {
                let offset = data.len;
                match &disk {
                    Some(range) => data.append_range(range),
                    None if t.raw_data.len() >= EXTERNAL_MIN_BYTES => {
                        data.append_bytes(&t.raw_data)
                    }
                    None => continue,
                }
                .with_context(|| format!("cannot write {data_name}"))?;
                external_stub(t, data_name, offset, data.len - offset)
            }
            (None, Some(range)) if t.raw_data == PLACEHOLDER => {
                // Left in the source's file: spliced in as it is written, the tensor unchanged.
                spliced.insert(i, range);
                continue;
            }
            (None, Some(range)) => {
                // External in the source, inline here.
                let mut inline = external_stub(t, "", 0, 0);
                inline.external_data.clear();
                inline.data_location = DataLocation::DEFAULT.into();
                inline.raw_data = PLACEHOLDER.to_vec();
                spliced.insert(i, range);
                inline
            }
            (None, None) => continue,
        };
        originals.push((i, std::mem::replace(t, written)));
    }
    if let Some(data) = data {
        data.flush()
            .with_context(|| format!("cannot write {data_name}"))?;
    }
    let bytes = model.write_to_bytes().context("cannot serialise it")?;
    let rope = wire::splice(&bytes, &spliced)?;
    write_rope(&rope, file)
}

/// A half's data file being written. Ranges that follow each other in one source file are
/// copied in one call: fewer calls, and the kernel throttles a long copy less than many short ones
/// (3.2 GB in 64 MB calls took 1.8x as long as in 2 GB calls here).
struct DataFile {
    file: File,
    /// Bytes appended so far, pending ones included.
    len: u64,
    pending: Option<FileRange>,
}

impl DataFile {
    fn append_range(&mut self, r: &FileRange) -> Result<()> {
        match &mut self.pending {
            Some(p) if p.path == r.path && p.offset + p.len == r.offset => p.len += r.len,
            _ => {
                self.flush()?;
                self.pending = Some(r.clone());
            }
        }
        self.len += r.len;
        Ok(())
    }

    fn append_bytes(&mut self, b: &[u8]) -> Result<()> {
        self.flush()?;
        (&self.file).write_all(b)?;
        self.len += b.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        match self.pending.take() {
            Some(p) => copy_range(&p, &self.file),
            None => Ok(()),
        }
    }
}

/// Append `range` to `to`, file to file: `std::io::copy` between files is `copy_file_range` on
/// Linux (a reflink where the file system shares blocks), falling back to `sendfile` and then to
/// a buffer elsewhere.
fn copy_range(range: &FileRange, mut to: &File) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let shown = range.path.display();
    let mut from = File::open(&range.path).with_context(|| format!("cannot open {shown}"))?;
    from.seek(SeekFrom::Start(range.offset))?;
    let copied = std::io::copy(&mut (&from).take(range.len), &mut to)
        .with_context(|| format!("cannot copy from {shown}"))?;
    if copied != range.len {
        bail!(
            "{shown} ended before byte {} (was it changed while nsplit ran?)",
            range.offset + range.len
        );
    }
    Ok(())
}

/// Write the pieces in order: bytes from memory, ranges file to file.
fn write_rope(rope: &wire::Rope, file: &File) -> Result<()> {
    let mut to = file;
    for piece in &rope.pieces {
        match piece {
            Piece::Bytes(b) => to.write_all(b)?,
            Piece::Range(r) => copy_range(r, to)?,
        }
    }
    Ok(())
}

/// The tensor without its data, pointing at `location` (or nowhere when `location` is empty).
fn external_stub(t: &TensorProto, location: &str, offset: u64, length: u64) -> TensorProto {
    let entry = |k: &str, v: String| StringStringEntryProto {
        key: k.into(),
        value: v,
        ..Default::default()
    };
    TensorProto {
        name: t.name.clone(),
        data_type: t.data_type,
        dims: t.dims.clone(),
        doc_string: t.doc_string.clone(),
        data_location: DataLocation::EXTERNAL.into(),
        external_data: vec![
            entry("location", location.to_string()),
            entry("offset", offset.to_string()),
            entry("length", length.to_string()),
        ],
        ..Default::default()
    }
}
