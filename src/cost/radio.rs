//! Radio power while transferring (Huang et al., MobiSys 2012, as used by Neurosurgeon):
//! P = α_u·t_u + α_d·t_d + β (mW, throughputs in Mbps).

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Power model and nominal throughput of one kind of network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadioPower {
    pub name: String,
    pub uplink_mbps: f64,
    pub alpha_u_mw_per_mbps: f64,
    pub alpha_d_mw_per_mbps: f64,
    pub beta_mw: f64,
}

impl RadioPower {
    /// Power (W) while uploading at `mbps`.
    pub fn upload_w(&self, mbps: f64) -> f64 {
        (self.alpha_u_mw_per_mbps * mbps + self.beta_mw) / 1000.0
    }

    /// Power (W) while downloading at `mbps`.
    pub fn download_w(&self, mbps: f64) -> f64 {
        (self.alpha_d_mw_per_mbps * mbps + self.beta_mw) / 1000.0
    }
}

/// The paper's three networks (Huang et al., table 3; uplink throughputs as Neurosurgeon used).
pub fn default_networks() -> Vec<RadioPower> {
    let n = |name: &str, up, au, ad, b| RadioPower {
        name: name.into(),
        uplink_mbps: up,
        alpha_u_mw_per_mbps: au,
        alpha_d_mw_per_mbps: ad,
        beta_mw: b,
    };
    vec![
        n("3g", 1.1, 868.98, 122.12, 817.88),
        n("lte", 5.85, 438.39, 51.97, 1288.04),
        n("wifi", 18.88, 283.17, 137.01, 132.86),
    ]
}

/// Networks from a JSON file: a list of objects with the fields of [`RadioPower`].
pub fn load_networks(path: &std::path::Path) -> Result<Vec<RadioPower>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let nets: Vec<RadioPower> = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a list of networks", path.display()))?;
    for n in &nets {
        for (field, v) in [
            ("uplink_mbps", n.uplink_mbps),
            ("alpha_u_mw_per_mbps", n.alpha_u_mw_per_mbps),
            ("alpha_d_mw_per_mbps", n.alpha_d_mw_per_mbps),
            ("beta_mw", n.beta_mw),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                bail!(
                    "{}: network `{}`: field `{field}` must be a non-negative number, got {v}",
                    path.display(),
                    n.name
                );
            }
        }
    }
    Ok(nets)
}
