//! nsplit's integration tests: one binary (tract is linked once), a module per area.
//!
//! `cargo test` runs them all; `cargo test --test tests AREA::` one area, e.g.
//! `cargo test --test tests fuzz::`.

mod common;

mod architecture;
mod bad_input;
mod corpus;
mod docs;
mod emit;
mod exports;
mod figures;
mod fixture_generator;
mod fixtures;
mod fuzz;
mod paper;
mod plan;
mod profiles;
mod python;
mod real_models;
mod repository;
mod selection;
mod serve;
mod streaming;
mod tutorial;
