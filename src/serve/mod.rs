//! Deploying the halves, after **emit**: the tails on an inference server, and the protocol the
//! phone speaks to it (the phone's side is [`crate::client`]).
//!
//! - [`triton`]: a Triton model repository of the tails (`--triton`, `nsplit package`);
//! - [`kserve`]: a client of the Open Inference Protocol (KServe v2 REST) with binary tensors;
//!
//! Element types under every name and NumPy files are the runtime's ([`crate::runtime`]).

pub mod kserve;
pub mod triton;

use crate::output::Staging;
use crate::selection::SelectionTable;
use anyhow::{Context, Result};
use onnx_protobuf::{Message, ModelProto, ValueInfoProto};
use std::path::Path;
use triton::{TailFile, TritonOptions};

/// `nsplit package DIR --triton REPO`: write the Triton models of DIR's tails into `repo`
/// (replacing models of the same names, leaving others), then name them in DIR/selection.json.
pub fn package(dir: &Path, repo: &Path, opts: &TritonOptions) -> Result<Vec<(String, String)>> {
    let mut table = SelectionTable::load(dir)?;
    let tails = TailFile::of_table(&table, |file| dir.join(file));
    let mut staging = Staging::beside(repo)?;
    let names = triton::write_repository(&table, &tails, &mut staging, "", opts)?;
    staging.commit()?;
    name_models(&mut table, &names);
    let mut staging = Staging::new(dir)?;
    staging.write_text("selection.json", &table.to_json())?;
    staging.commit()?;
    Ok(names)
}

/// A half's declared graph inputs (initializers left out) and outputs, read from its file.
pub struct HalfIo {
    pub inputs: Vec<ValueInfoProto>,
    pub outputs: Vec<ValueInfoProto>,
}

impl HalfIo {
    pub fn read(path: &Path) -> Result<HalfIo> {
        let shown = path.display();
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {shown}"))?;
        let proto = ModelProto::parse_from_bytes(&bytes)
            .with_context(|| format!("{shown} is not an ONNX model"))?;
        let graph = proto.graph.into_option().unwrap_or_default();
        let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs = graph
            .input
            .iter()
            .filter(|vi| !initializers.contains(&vi.name.as_str()))
            .cloned()
            .collect();
        Ok(HalfIo {
            inputs,
            outputs: graph.output,
        })
    }

    pub fn input_names(&self) -> Vec<String> {
        self.inputs.iter().map(|v| v.name.clone()).collect()
    }

    pub fn output_names(&self) -> Vec<String> {
        self.outputs.iter().map(|v| v.name.clone()).collect()
    }
}

/// Record each cut's served model in the table.
pub fn name_models(table: &mut SelectionTable, names: &[(String, String)]) {
    for cut in &mut table.cuts {
        cut.triton_model = names
            .iter()
            .find(|(id, _)| *id == cut.id)
            .map(|(_, name)| name.clone());
    }
}
