//! # nsplit
//!
//! Split ONNX models between a phone and a server: the Neurosurgeon system (Kang et al.,
//! ASPLOS 2017) as a compiler pass, extended to DAG-shaped models.
//!
//! The pipeline runs one way, one module per stage:
//!
//! ```text
//! load ─► graph ─► shapes ─► cost ─► plan ─► emit ─► verify
//! ```
//!
//! - [`load`]: the ONNX file and its external data ([`load::Model`]);
//! - [`graph`]: the petgraph graph with explicit inputs, initializers and outputs, subgraph
//!   captures as edges, a stable topological order ([`graph::ModelGraph`]);
//! - [`shapes`]: every tensor's type and shape ([`shapes::ShapeTable`]);
//! - [`cost`]: per-node features: op class, FLOPs, bytes, weights ([`cost::NodeFeatures`]);
//! - [`cut`]: a head/tail partition and its boundary ([`cut::Cut`]);
//! - [`emit`]: matched head/tail ONNX files ([`emit::Emitter`]);
//! - [`verify`]: head-then-tail against the original, under tract;
//! - [`plan`]: the best cut per network and the exact breakpoints ([`plan::Plan`]);
//! - [`serve`]: the tails in a Triton repository, and the protocol to reach them;
//! - [`client`]: the phone's side at run time: which pair a request uses under the conditions
//!   it believes ([`client::choose`]), and `nsplit run` (head here, tail on an inference
//!   server);
//! - [`annotate`]: the per-node report (`nsplit annotate`);
//! - [`job`]: the main job, every stage in order (`nsplit MODEL --out DIR`).
//!
//! [`Analysis::run`] runs the stages up to cost.

pub mod analysis;
pub mod client;
pub mod cost;
pub mod cut;
#[cfg(feature = "dev")]
pub mod dev;
pub mod emit;
pub mod graph;
pub mod guard;
pub mod job;
pub mod load;

pub mod ops;
pub mod output;
pub mod plan;
pub mod profiler;
pub mod proto;
pub mod report;
pub mod runtime;
pub mod selection;
pub mod serve;
pub mod setting;
pub mod shapes;
pub mod split;
pub mod tensor;
pub mod verify;
pub mod warn;

pub use analysis::Analysis;
