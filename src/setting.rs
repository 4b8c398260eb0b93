//! What the user sets, named as a front end names it. The library's messages say which setting
//! would fix a problem ([`Setting`]), not how to type it: the command line installs its flag
//! names ([`name_with`], in `main.rs`), so its errors say `--input-shape`; a program that uses
//! the library without installing names reads the concept (`input shape`).

use std::sync::OnceLock;

/// A value the user gives the tool, or an action the user can take, as a message names it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Setting {
    /// The sizes of a graph input (`NAME=DIMS`).
    InputShape,
    /// Real input values for the checks (a NumPy file or folder).
    SampleInputs,
    /// One scalar input's value.
    InputValue,
    /// The networks to plan for.
    Buckets,
    /// The server's load factor.
    CloudLoad,
    /// What the planner minimises, set to energy.
    EnergyObjective,
    /// A measured uplink bandwidth to look up.
    Bandwidth,
    /// The network a lookup reads the breakpoints of.
    Network,
    /// Writing the halves without checking them.
    NoVerify,
    /// Writing no all-mobile pair where no bucket chooses it.
    NoFallback,
    /// How much faster or slower than profiled the server's pairs are written for.
    ServerSpread,
    /// Writing a Triton repository of the tails with the main job.
    Triton,
    /// Writing a Triton repository of an output folder's tails.
    PackageTriton,
    /// An inference server's URL.
    Server,
    /// How long to wait for an inference server.
    Timeout,
    /// A value for one of the model's inputs, from a NumPy file (`NAME=FILE.npy`).
    RunInput,
    /// The served model's name.
    ServedModel,
    /// The round trip a lookup assumes.
    RoundTrip,
    /// The server's load a lookup assumes.
    ServerLoad,
}

impl Setting {
    /// The name a program that installed none reads: the concept.
    fn concept(self) -> &'static str {
        match self {
            Setting::InputShape => "input shape",
            Setting::SampleInputs => "sample inputs",
            Setting::InputValue => "input value",
            Setting::Buckets => "networks",
            Setting::CloudLoad => "server load",
            Setting::EnergyObjective => "the energy objective",
            Setting::Bandwidth => "bandwidth",
            Setting::Network => "network",
            Setting::NoVerify => "writing unchecked halves",
            Setting::NoFallback => "leaving out the all-mobile fallback",
            Setting::ServerSpread => "the server's spread",
            Setting::Triton => "a Triton repository",
            Setting::PackageTriton => "packaging the output folder's tails for Triton",
            Setting::Server => "server",
            Setting::Timeout => "timeout",
            Setting::RunInput => "input",
            Setting::ServedModel => "served model name",
            Setting::RoundTrip => "round trip",
            Setting::ServerLoad => "the server's current load",
        }
    }
}

static NAMES: OnceLock<fn(Setting) -> &'static str> = OnceLock::new();

/// Name every setting as `names` says from now on (once per process; a later call is ignored).
pub fn name_with(names: fn(Setting) -> &'static str) {
    let _ = NAMES.set(names);
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(
            NAMES
                .get()
                .map_or_else(|| self.concept(), |names| names(*self)),
        )
    }
}
