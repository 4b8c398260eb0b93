//! Reports for people and programs, written from what the stages computed; no stage uses them.
//!
//! - [`annotate`]: the per-node report of `nsplit annotate` (table, CSV, JSON);
//! - [`selection`]: `selection.md`, the selection table for people;
//! - [`format`]: sizes, counts, shapes and figures as the reports write them.

pub mod annotate;
pub mod figures;
pub mod format;
pub mod selection;

pub use annotate::Annotations;
