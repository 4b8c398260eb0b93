//! Device profiles: how long each class of op takes on a device, and (for phones) at what power.
//!
//! A profile is a versioned JSON document (format `nsplit.profile`, docs/profiles.md). For each
//! op class it may hold a fitted [`Regression`] of latency on the node's features; classes
//! without one use the [`Roofline`] fallback. Built-in profiles ship inside the binary
//! (`profiles/*.json`), each with its provenance; user profiles load from a file.

use super::OpClass;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const FORMAT: &str = "nsplit.profile";
pub const VERSION: u32 = 1;

/// Which side of the split a profile describes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Mobile,
    Cloud,
}

/// Where a profile's numbers come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// `measured` (by `nsplit profile`) or `estimated` (from public figures).
    pub kind: ProvenanceKind,
    /// What was measured on, or which public figures and assumptions were used.
    pub source: String,
    /// ISO date of the measurement or estimate.
    pub date: String,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProvenanceKind {
    Measured,
    Estimated,
}

impl ProvenanceKind {
    /// `measured` or `estimated`.
    pub fn name(self) -> &'static str {
        match self {
            ProvenanceKind::Measured => "measured",
            ProvenanceKind::Estimated => "estimated",
        }
    }
}

/// Node features a regression reads, in the units it reads them.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variable {
    /// Millions of floating-point operations.
    Mflops,
    /// Megabytes read (inputs and weights).
    MbRead,
    /// Megabytes written (outputs).
    MbWritten,
    /// Megabytes of input patches a convolution multiplies: its im2col matrix, output points x
    /// inputs per output point (the gather traffic a narrow conv pays per FLOP); 0 for other ops.
    MbPatches,
    /// The steps a recurrent op takes one after another (sequence length x directions): each
    /// pays a fixed cost apart from its FLOPs; 0 for other ops.
    Steps,
}

/// A node's work in the units regressions read.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct Figures {
    pub mflops: f64,
    pub mb_read: f64,
    pub mb_written: f64,
    pub mb_patches: f64,
    pub steps: f64,
}

impl Figures {
    /// From counts (FLOPs, bytes); `None` when FLOPs or bytes are unknown.
    pub fn of(
        flops: Option<u64>,
        bytes_read: Option<u64>,
        bytes_written: Option<u64>,
        patch_bytes: Option<u64>,
    ) -> Option<Figures> {
        Some(Figures {
            mflops: flops? as f64 / 1e6,
            mb_read: bytes_read? as f64 / 1e6,
            mb_written: bytes_written? as f64 / 1e6,
            mb_patches: patch_bytes.unwrap_or(0) as f64 / 1e6,
            steps: 0.0,
        })
    }

    /// A node's work, as its features count it; `None` when FLOPs or bytes are unknown.
    pub fn of_node(f: &super::NodeFeatures) -> Option<Figures> {
        Some(Figures {
            steps: f.steps.unwrap_or(0) as f64,
            ..Figures::of(f.flops, f.bytes_read, f.bytes_written, f.patch_bytes)?
        })
    }

    /// The value of one variable.
    pub fn get(&self, v: Variable) -> f64 {
        match v {
            Variable::Mflops => self.mflops,
            Variable::MbRead => self.mb_read,
            Variable::MbWritten => self.mb_written,
            Variable::MbPatches => self.mb_patches,
            Variable::Steps => self.steps,
        }
    }
}

impl std::ops::AddAssign for Figures {
    fn add_assign(&mut self, other: Figures) {
        self.mflops += other.mflops;
        self.mb_read += other.mb_read;
        self.mb_written += other.mb_written;
        self.mb_patches += other.mb_patches;
        self.steps += other.steps;
    }
}

/// `linear`: latency = c0 + Σ ci·xi; `log`: latency = c0 + Σ ci·ln(1 + xi).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    Linear,
    Log,
}

/// A fitted latency model for one op class; latency in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Regression {
    pub form: Form,
    pub variables: Vec<Variable>,
    /// Intercept first, then one coefficient per variable.
    pub coefficients: Vec<f64>,
    /// Coefficient of determination of log latency on the fitting samples.
    pub r2: f64,
    /// Mean relative error on held-out samples, which chose the form.
    pub holdout_error: f64,
    pub samples: usize,
    /// An extra slope past a threshold of one variable (linear form only): the working set
    /// falls out of cache there and every further megabyte costs more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hinge: Option<Hinge>,
    /// How far apart the profiler's passes timed the same samples: the median over samples of
    /// |pass 1 - pass 2| / the faster. What a rerun of the profile may move a prediction by;
    /// absent in profiles taken in one pass or not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<f64>,
}

/// latency += `slope` x max(0, `variable` - `at`).
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hinge {
    pub variable: Variable,
    pub at: f64,
    pub slope: f64,
}

impl Regression {
    /// Predicted latency (ms) for the variable values `x` (same order as `variables`).
    pub fn predict(&self, x: &[f64]) -> f64 {
        let terms = self.coefficients[1..].iter().zip(x).map(|(c, &v)| {
            c * match self.form {
                Form::Linear => v,
                Form::Log => (1.0 + v).ln(),
            }
        });
        let hinge = self.hinge.map_or(0.0, |h| {
            let v = self
                .variables
                .iter()
                .position(|&v| v == h.variable)
                .map_or(0.0, |i| x[i]);
            h.slope * (v - h.at).max(0.0)
        });
        (self.coefficients[0] + terms.sum::<f64>() + hinge).max(0.0)
    }
}

/// Fallback for classes without a regression: an op takes its fixed overhead plus the longer of
/// its compute time (at a class's fraction of peak) and its memory time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Roofline {
    pub peak_gflops: f64,
    pub memory_gbps: f64,
    pub overhead_ms: f64,
    /// Fraction of peak FLOP/s reached, per class; `default` for the rest.
    pub efficiency: BTreeMap<String, f64>,
}

impl Roofline {
    pub fn predict(&self, class: OpClass, mflops: f64, mb: f64) -> f64 {
        let eff = self
            .efficiency
            .get(class.name())
            .or_else(|| self.efficiency.get("default"))
            .copied()
            .unwrap_or(1.0);
        // GFLOP/s = MFLOP per ms; GB/s = MB per ms.
        let compute = mflops / (self.peak_gflops * eff);
        let memory = mb / self.memory_gbps;
        self.overhead_ms + compute.max(memory)
    }
}

/// A device's latency (and power) model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceProfile {
    pub format: String,
    pub version: u32,
    pub name: String,
    pub role: Role,
    pub provenance: Provenance,
    /// The runtime whose times the profile stands for, and its version: a measured profile's
    /// (`tract-onnx 0.23 (1 thread, optimised)`, `onnxruntime 1.22.0 (CPU, 1 thread, every graph
    /// optimisation)`), a built-in one's (the paper's Caffe). A table is only as right as this is
    /// the runtime that runs the halves. Absent in profiles before 2026-12-07.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Regressions by op class name (`conv`, `matmul`, ...), or by `op:<OpType>` for an op whose
    /// cost differs from its class's (`op:LRN` among the norms); the op's own one wins.
    #[serde(default)]
    pub regressions: BTreeMap<String, Regression>,
    pub fallback: Roofline,
    /// Active power (W) by op class name, `default` for the rest; required for mobile profiles.
    #[serde(default)]
    pub power_w: BTreeMap<String, f64>,
    /// Time a run takes beyond its nodes' (dispatch, inputs and outputs), ms, once per model run;
    /// measured profiles take it out of every sample before fitting. 0 when absent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub run_overhead_ms: f64,
    /// How much slower ops run inside a network than alone, where the profile timed them (the
    /// caches hold the previous ops' data, much of it dirty), by kernel (`op:<OpType>`, as the
    /// regressions) or op class, `default` for the rest: a node's prediction is multiplied by
    /// its kernel's factor, else its class's. 1 when absent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context_factors: BTreeMap<String, f64>,
    /// The private cache per core (L2, MB) of the measured machine. A network slows an op by
    /// evicting its data from this cache between runs, which one op run alone keeps there; an
    /// op whose data is a fraction of the cache is slowed by that fraction of its factor
    /// ([`context_factor`](Self::context_factor)). Absent: factors apply in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_mb: Option<f64>,
    /// A measured profile's own uncertainty: how much its predictions may move from one
    /// profiling run to the next on this machine (the median of its samples' pass-to-pass
    /// spread). The planner calls two cuts a tie when they are predicted closer than this.
    /// Absent in profiles that were not measured by passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<f64>,
    /// The reference conv's typical time (ms) over the profiling run
    /// ([`Reference`](crate::profiler::Reference)): the machine speed every prediction
    /// stands for. Timing the reference again tells how far the machine now runs from that
    /// speed (a benchmark judges its measurements at the profile's speed so). Absent in
    /// profiles that were not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_ms: Option<f64>,
}

/// The context factor of ops whose data stays in the cache (`context_factors.in_cache:<class>`,
/// per op class; `in_cache` alone, for every class, in profiles before 2026-12-04): what a
/// network's sustained run costs an op that no other op's data evicts.
pub const IN_CACHE: &str = "in_cache";

/// The `context_factors` key of `class`'s factor for ops whose data stays in cache.
pub fn in_cache_key(class: OpClass) -> String {
    format!("{IN_CACHE}:{}", class.name())
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// The mobile and cloud device profiles used.
pub struct Profiles {
    pub mobile: DeviceProfile,
    pub cloud: DeviceProfile,
}

impl Profiles {
    /// Profiles by built-in name or file path.
    pub fn resolve(mobile: &str, cloud: &str) -> Result<Profiles> {
        Ok(Profiles {
            mobile: DeviceProfile::resolve(mobile)?,
            cloud: DeviceProfile::resolve(cloud)?,
        })
    }
}

/// The phone profile used when none is named: a Jetson TK1 phone-class GPU (estimated).
pub const DEFAULT_MOBILE: &str = "jetson-tk1";
/// The server profile used when none is named: a Titan X server GPU (estimated).
pub const DEFAULT_CLOUD: &str = "titan-x";

impl Default for Profiles {
    /// The paper-shaped pair, [`DEFAULT_MOBILE`] and [`DEFAULT_CLOUD`].
    fn default() -> Self {
        Profiles::resolve(DEFAULT_MOBILE, DEFAULT_CLOUD).expect("built-in profiles are valid")
    }
}

/// Profiles that ship with the binary: (name, JSON).
pub const BUILT_IN: &[(&str, &str)] = &[
    ("jetson-tk1", include_str!("../../profiles/jetson-tk1.json")),
    (
        "jetson-tk1-cpu",
        include_str!("../../profiles/jetson-tk1-cpu.json"),
    ),
    ("titan-x", include_str!("../../profiles/titan-x.json")),
    ("tesla-k40", include_str!("../../profiles/tesla-k40.json")),
    ("x86-2core", include_str!("../../profiles/x86-2core.json")),
];

impl DeviceProfile {
    /// A built-in profile by name, or a profile file by path.
    pub fn resolve(name_or_path: &str) -> Result<DeviceProfile> {
        if let Some((_, json)) = BUILT_IN.iter().find(|(n, _)| *n == name_or_path) {
            return DeviceProfile::from_json(json, &format!("built-in profile `{name_or_path}`"));
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
            bail!(
                "`{name_or_path}` is neither a built-in profile ({}) nor a file",
                names.join(", ")
            );
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read profile {}", path.display()))?;
        DeviceProfile::from_json(&text, &path.display().to_string())
    }

    /// Parse and check a profile; errors name the source and the field.
    pub fn from_json(text: &str, source: &str) -> Result<DeviceProfile> {
        let p: DeviceProfile =
            serde_json::from_str(text).with_context(|| format!("{source}: not a valid profile"))?;
        p.check()
            .with_context(|| format!("{source}: invalid profile"))?;
        Ok(p)
    }

    fn check(&self) -> Result<()> {
        if self.format != FORMAT {
            bail!("field `format` is `{}`, expected `{FORMAT}`", self.format);
        }
        if self.version != VERSION {
            bail!(
                "field `version` is {}, this nsplit reads version {VERSION}",
                self.version
            );
        }
        let classes: Vec<&str> = ALL_CLASSES.iter().map(|c| c.name()).collect();
        for (class, r) in &self.regressions {
            if !classes.contains(&class.as_str()) && !class.starts_with("op:") {
                bail!(
                    "field `regressions.{class}`: unknown op class (known: {}, or op:<OpType>)",
                    classes.join(", ")
                );
            }
            if r.coefficients.len() != r.variables.len() + 1 {
                bail!(
                    "field `regressions.{class}.coefficients`: {} values for {} variables (expected intercept + one per variable)",
                    r.coefficients.len(),
                    r.variables.len()
                );
            }
            if r.coefficients.iter().any(|c| !c.is_finite()) {
                bail!("field `regressions.{class}.coefficients`: not all finite");
            }
            if let Some(h) = r.hinge {
                if r.form != Form::Linear {
                    bail!("field `regressions.{class}.hinge`: a hinge belongs to the linear form only");
                }
                if !r.variables.contains(&h.variable) {
                    bail!(
                        "field `regressions.{class}.hinge.variable`: `{}` is not one of the regression's variables",
                        serde_json::to_string(&h.variable).unwrap_or_default()
                    );
                }
                if !(h.at.is_finite() && h.slope.is_finite() && h.slope >= 0.0) {
                    bail!("field `regressions.{class}.hinge`: `at` must be finite and `slope` finite and >= 0");
                }
            }
        }
        let f = &self.fallback;
        for (field, v) in [
            ("peak_gflops", f.peak_gflops),
            ("memory_gbps", f.memory_gbps),
        ] {
            if !(v.is_finite() && v > 0.0) {
                bail!("field `fallback.{field}` must be a positive number, got {v}");
            }
        }
        if !(f.overhead_ms.is_finite() && f.overhead_ms >= 0.0) {
            bail!(
                "field `fallback.overhead_ms` must be >= 0, got {}",
                f.overhead_ms
            );
        }
        for (class, e) in &f.efficiency {
            if !(*e > 0.0 && *e <= 1.0) {
                bail!("field `fallback.efficiency.{class}` must be in (0, 1], got {e}");
            }
        }
        if self.role == Role::Mobile && !self.power_w.contains_key("default") {
            bail!(
                "field `power_w.default` is required for a mobile profile (energy = power x time)"
            );
        }
        for (class, f) in &self.context_factors {
            let in_cache_class = class
                .strip_prefix(IN_CACHE)
                .and_then(|rest| rest.strip_prefix(':'));
            if class != "default"
                && class != IN_CACHE
                && !in_cache_class.is_some_and(|c| classes.contains(&c))
                && !classes.contains(&class.as_str())
                && !class.starts_with("op:")
            {
                bail!("field `context_factors.{class}`: unknown op class (known: {}, op:<OpType>, in_cache:<class>, in_cache or default)", classes.join(", "));
            }
            if !(f.is_finite() && *f > 0.0) {
                bail!("field `context_factors.{class}` must be a positive number, got {f}");
            }
        }
        if let Some(c) = self.cache_mb.filter(|c| !(c.is_finite() && *c > 0.0)) {
            bail!("field `cache_mb` must be a positive number of megabytes, got {c}");
        }
        if !(self.run_overhead_ms.is_finite() && self.run_overhead_ms >= 0.0) {
            bail!(
                "field `run_overhead_ms` must be >= 0, got {}",
                self.run_overhead_ms
            );
        }
        for (class, w) in &self.power_w {
            if !(w.is_finite() && *w >= 0.0) {
                bail!("field `power_w.{class}` must be a non-negative number of watts, got {w}");
            }
        }
        Ok(())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("profiles are plain data") + "\n"
    }

    /// Write the profile to `path`, all or nothing.
    pub fn write(&self, path: &Path) -> Result<()> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .with_context(|| format!("{} needs a file name", path.display()))?;
        let mut staging = crate::output::Staging::new(dir)?;
        staging.write_text(&name.to_string_lossy(), &self.to_json())?;
        staging.commit()
    }

    /// Predicted latency (ms) of a node of `class` with the given work; `None` when its FLOPs or
    /// bytes are unknown.
    pub fn latency_ms(
        &self,
        class: OpClass,
        flops: Option<u64>,
        bytes_read: Option<u64>,
        bytes_written: Option<u64>,
    ) -> Option<f64> {
        self.op_latency_ms("", class, flops, bytes_read, bytes_written)
    }

    /// Like [`latency_ms`](Self::latency_ms), with the op's own regression (`op:<OpType>`) when
    /// the profile has one. Without a conv's patch bytes (read as 0): a node's full prediction is
    /// [`node_latency_ms`](Self::node_latency_ms).
    pub fn op_latency_ms(
        &self,
        op_type: &str,
        class: OpClass,
        flops: Option<u64>,
        bytes_read: Option<u64>,
        bytes_written: Option<u64>,
    ) -> Option<f64> {
        let work = Figures::of(flops, bytes_read, bytes_written, None)?;
        Some(self.figures_latency_ms(op_type, class, &work))
    }

    /// Predicted latency (ms) of an op with this work: its own regression (`op:<OpType>`), else
    /// its class's, else the roofline fallback; times the context factor.
    pub fn figures_latency_ms(&self, op_type: &str, class: OpClass, work: &Figures) -> f64 {
        let regression = self
            .regressions
            .get(&format!("op:{op_type}"))
            .or_else(|| self.regressions.get(class.name()));
        let alone = match regression {
            Some(r) => {
                let x: Vec<f64> = r.variables.iter().map(|&v| work.get(v)).collect();
                r.predict(&x)
            }
            None => self
                .fallback
                .predict(class, work.mflops, work.mb_read + work.mb_written),
        };
        alone * self.context_factor(op_type, class, work)
    }

    /// The context factors as `class factor` pairs, for reports: `activation 1.15, default 1.10`.
    pub fn context_factors_text(&self) -> String {
        self.context_factors
            .iter()
            .map(|(class, f)| format!("{class} {f:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The factor a node of `class` (its kernel `op_type`, as for its regression) with this
    /// work runs slower by inside a network than alone: between its class's factor for ops
    /// whose data stays in cache ([`IN_CACHE`]`:<class>`, else [`IN_CACHE`], else 1) and its
    /// kernel's own factor
    /// (`op:<OpType>`, else its class's, else `default`, else 1), by its
    /// [`context_share`](Self::context_share).
    pub fn context_factor(&self, op_type: &str, class: OpClass, work: &Figures) -> f64 {
        let own = self
            .context_factors
            .get(&format!("op:{op_type}"))
            .or_else(|| self.context_factors.get(class.name()))
            .or_else(|| self.context_factors.get("default"))
            .copied()
            .unwrap_or(1.0);
        let in_cache = self
            .context_factors
            .get(&in_cache_key(class))
            .or_else(|| self.context_factors.get(IN_CACHE))
            .copied()
            .unwrap_or(1.0);
        let s = self.context_share(work);
        in_cache * (1.0 - s) + own * s
    }

    /// How much of its context factor an op with this work takes: the bytes it reads and
    /// writes as a share of the cache ([`cache_mb`](Self::cache_mb)), at most 1. A tiny op
    /// finds its data in cache inside a network as it does alone; the whole of a large one's
    /// passes through memory that the network has filled with other data.
    pub fn context_share(&self, work: &Figures) -> f64 {
        self.cache_mb.map_or(1.0, |cache| {
            ((work.mb_read + work.mb_written) / cache).min(1.0)
        })
    }

    /// Predicted latency (ms) of a node from its features: zero for a free epilogue fused into
    /// the kernel before it, else [`figures_latency_ms`](Self::figures_latency_ms) of its work.
    pub fn node_latency_ms(&self, f: &super::NodeFeatures) -> Option<f64> {
        if f.view || f.fused == Some(super::fusion::Epilogue::Free) {
            return Some(0.0);
        }
        let work = Figures::of_node(f)?;
        Some(self.figures_latency_ms(&f.regression_op, f.class, &work))
    }

    /// Active power (W) while running a node of `class`, for mobile profiles.
    pub fn power_w(&self, class: OpClass) -> Option<f64> {
        self.power_w
            .get(class.name())
            .or_else(|| self.power_w.get("default"))
            .copied()
    }
}

/// Every op class, for validation and the profiler.
pub const ALL_CLASSES: [OpClass; 11] = [
    OpClass::Conv,
    OpClass::Matmul,
    OpClass::Pool,
    OpClass::Elementwise,
    OpClass::Activation,
    OpClass::Norm,
    OpClass::Softmax,
    OpClass::Recurrent,
    OpClass::DataMovement,
    OpClass::ControlFlow,
    OpClass::Other,
];
