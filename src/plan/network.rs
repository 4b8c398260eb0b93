//! Network conditions: the bandwidth buckets a plan is made for, and the radio's power.
//!
//! Radio power while transferring follows Huang et al. (MobiSys 2012), as Neurosurgeon used it:
//! P = α_u·t_u + α_d·t_d + β (mW, throughputs in Mbps). The paper gives each network's uplink
//! throughput and power coefficients; downlink throughput and round-trip time are not in its
//! table, so the defaults below state where theirs come from.

use crate::setting::Setting;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Format tag of a buckets file.
pub const FORMAT: &str = "nsplit.buckets";

/// Power coefficients of a radio (Huang et al.).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Radio {
    /// Which measurement the coefficients are (`3g`, `lte`, `wifi` or the user's own).
    pub name: String,
    pub alpha_u_mw_per_mbps: f64,
    pub alpha_d_mw_per_mbps: f64,
    pub beta_mw: f64,
}

/// One network condition the planner chooses a cut for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BandwidthBucket {
    pub name: String,
    /// Phone to server.
    pub uplink_mbps: f64,
    /// Server to phone (the results).
    pub downlink_mbps: f64,
    /// Paid once whenever anything runs on the server.
    pub rtt_ms: f64,
    pub radio: Radio,
    /// What a request costs beyond the network's time (serialising, the protocol, the server's
    /// front end): measured against a real server by `nsplit run --calibrate`. None when
    /// absent.
    #[serde(default, skip_serializing_if = "Protocol::is_free")]
    pub protocol: Protocol,
}

/// The cost of a request to the inference server beyond the bytes over the bandwidth and the
/// round trip: a constant per request and a cost per MB sent and received (encoding the tensors,
/// HTTP, copies into and out of the server). Over loopback, with this machine on both sides, a
/// KServe v2 request to Triton cost about 0.4 ms plus 1.6 ms/MB (docs/performance.md): for a
/// tail of a millisecond, as much as the compute. It slows the request, not the radio: the
/// energy objective leaves it out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    /// Paid once per request (ms).
    pub request_ms: f64,
    /// Paid per 10^6 bytes sent or received (ms).
    pub ms_per_mb: f64,
}

impl Protocol {
    /// No cost: the paper's model, where a transfer is its bytes over the bandwidth.
    pub fn is_free(&self) -> bool {
        self.request_ms == 0.0 && self.ms_per_mb == 0.0
    }

    /// The cost (ms) of moving `bytes` through the protocol.
    pub fn bytes_ms(&self, bytes: u64) -> f64 {
        self.ms_per_mb * bytes as f64 / 1e6
    }
}

/// Milliseconds one byte takes at 1 Mbps (8 bits / 10⁶ bit/s = 8·10⁻³ ms): every transfer time
/// is this times bytes over Mbps, here and in the planner's lines in 1/bandwidth
/// ([`super::Link`]).
pub const MS_PER_BYTE_AT_1_MBPS: f64 = 8e-3;

impl BandwidthBucket {
    /// Milliseconds to send `upload` bytes up (8·bytes/(10³·Mbps)), `download` bytes back, and,
    /// when anything runs on the server (`replies`), the round trip: the one transfer formula the
    /// planner's predictions and `nsplit run`'s use.
    pub fn transfer_ms(&self, upload: u64, download: u64, replies: bool) -> f64 {
        let request = if replies {
            self.rtt_ms + self.protocol.request_ms
        } else {
            0.0
        };
        self.upload_ms(upload)
            + MS_PER_BYTE_AT_1_MBPS * download as f64 / self.downlink_mbps
            + self.protocol.bytes_ms(upload + download)
            + request
    }

    /// Milliseconds to upload `bytes`.
    pub fn upload_ms(&self, bytes: u64) -> f64 {
        MS_PER_BYTE_AT_1_MBPS * bytes as f64 / self.uplink_mbps
    }

    /// This network at another uplink, its downlink in the same ratio.
    pub fn at_uplink(&self, mbps: f64) -> BandwidthBucket {
        BandwidthBucket {
            uplink_mbps: mbps,
            downlink_mbps: mbps * self.downlink_mbps / self.uplink_mbps,
            ..self.clone()
        }
    }
}

impl Radio {
    /// Power (W) while uploading at `mbps`.
    pub fn upload_w(&self, mbps: f64) -> f64 {
        (self.alpha_u_mw_per_mbps * mbps + self.beta_mw) / 1000.0
    }
}

/// The paper's three networks. Uplink throughput and power: Neurosurgeon's table (from Huang et
/// al.). Downlink: Huang et al.'s median LTE downlink (12.74 Mbps); 3G and Wi-Fi downlink are
/// assumed at twice their uplink. RTT: assumed typical values (3G 150 ms, LTE 70 ms, Wi-Fi 30 ms).
pub fn default_buckets() -> Vec<BandwidthBucket> {
    let bucket = |name: &str, up, down, rtt, au, ad, b| BandwidthBucket {
        name: name.into(),
        uplink_mbps: up,
        downlink_mbps: down,
        rtt_ms: rtt,
        radio: Radio {
            name: name.into(),
            alpha_u_mw_per_mbps: au,
            alpha_d_mw_per_mbps: ad,
            beta_mw: b,
        },
        protocol: Protocol::default(),
    };
    vec![
        bucket("3g", 1.1, 2.2, 150.0, 868.98, 122.12, 817.88),
        bucket("lte", 5.85, 12.74, 70.0, 438.39, 51.97, 1288.04),
        bucket("wifi", 18.88, 37.76, 30.0, 283.17, 137.01, 132.86),
    ]
}

/// The networks planned for when none are named.
pub const DEFAULT_BUCKETS: &str = "3g,lte,wifi";
/// The network whose RTT and radio a bare bandwidth and the breakpoint sweep use when none is
/// named.
pub const DEFAULT_BASE_NETWORK: &str = "lte";
/// The uplink range (Mbps) of the breakpoint sweep when none is given.
pub const DEFAULT_SWEEP_RANGE: &str = "0.1..1000";

/// The network whose RTT and radio a bandwidth given as a bare number, and the breakpoint sweep,
/// use (its uplink is replaced; downlink is taken equal to uplink).
pub fn reference_network(name: &str) -> Result<BandwidthBucket> {
    default_buckets()
        .into_iter()
        .find(|b| b.name == name)
        .with_context(|| format!("unknown network `{name}`: use 3g, lte or wifi"))
}

/// A bucket at `mbps` up and down, with `like`'s RTT and radio.
pub fn at_bandwidth(mbps: f64, like: &BandwidthBucket) -> BandwidthBucket {
    BandwidthBucket {
        name: format!("{mbps} Mbps"),
        uplink_mbps: mbps,
        downlink_mbps: mbps,
        ..like.clone()
    }
}

/// `--buckets`: a buckets file (JSON), or a comma-separated list of network names (`3g`, `lte`,
/// `wifi`) and bandwidths in Mbps (which take `like`'s RTT and radio).
pub fn parse_buckets(spec: &str, like: &BandwidthBucket) -> Result<Vec<BandwidthBucket>> {
    let path = Path::new(spec);
    let buckets = if spec.ends_with(".json") || path.is_file() {
        load_buckets(path)?
    } else {
        let mut out = vec![];
        for item in spec.split(',').map(str::trim) {
            if let Ok(mbps) = item.parse::<f64>() {
                out.push(at_bandwidth(mbps, like));
            } else {
                out.push(reference_network(item).with_context(|| {
                    format!(
                        "{} `{item}`: not a number of Mbps, a network name or a file",
                        Setting::Buckets
                    )
                })?);
            }
        }
        out
    };
    validate(&buckets, spec)?;
    Ok(buckets)
}

/// A buckets file: `{"format": "nsplit.buckets", "version": 1, "buckets": [..]}`, each bucket
/// with the fields of [`BandwidthBucket`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketsFile {
    pub format: String,
    pub version: u32,
    pub buckets: Vec<BandwidthBucket>,
}

impl BucketsFile {
    /// Networks with no round trip at these uplinks (downlink equal, the radio of `like`):
    /// transfer is size over bandwidth alone, as the paper models it.
    pub fn without_round_trip(mbps: &[f64], like: &BandwidthBucket) -> BucketsFile {
        BucketsFile {
            format: FORMAT.into(),
            version: 1,
            buckets: mbps
                .iter()
                .map(|&b| BandwidthBucket {
                    rtt_ms: 0.0,
                    ..at_bandwidth(b, like)
                })
                .collect(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("buckets are plain data") + "\n"
    }
}

pub fn load_buckets(path: &Path) -> Result<Vec<BandwidthBucket>> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {shown}"))?;
    let file: BucketsFile = serde_json::from_str(&text)
        .with_context(|| format!("{shown}: not a buckets file (docs/user-guide.md)"))?;
    if file.format != FORMAT || file.version != 1 {
        bail!(
            "{shown}: format `{}` version {} is not {FORMAT} version 1",
            file.format,
            file.version
        );
    }
    Ok(file.buckets)
}

fn validate(buckets: &[BandwidthBucket], source: &str) -> Result<()> {
    if buckets.is_empty() {
        bail!("{source}: no buckets");
    }
    for b in buckets {
        let r = &b.radio;
        for (field, v, positive) in [
            ("uplink_mbps", b.uplink_mbps, true),
            ("downlink_mbps", b.downlink_mbps, true),
            ("rtt_ms", b.rtt_ms, false),
            ("protocol.request_ms", b.protocol.request_ms, false),
            ("protocol.ms_per_mb", b.protocol.ms_per_mb, false),
            ("radio.alpha_u_mw_per_mbps", r.alpha_u_mw_per_mbps, false),
            ("radio.alpha_d_mw_per_mbps", r.alpha_d_mw_per_mbps, false),
            ("radio.beta_mw", r.beta_mw, false),
        ] {
            let ok = v.is_finite() && if positive { v > 0.0 } else { v >= 0.0 };
            if !ok {
                let want = if positive { "positive" } else { "non-negative" };
                bail!(
                    "{source}: bucket `{}`: `{field}` must be a {want} number, got {v}",
                    b.name
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_bad_values() {
        let lte = reference_network("lte").unwrap();
        let b = parse_buckets("3g, 2.5,wifi", &lte).unwrap();
        assert_eq!(b[0].uplink_mbps, 1.1);
        assert_eq!(
            (b[1].uplink_mbps, b[1].downlink_mbps, b[1].rtt_ms),
            (2.5, 2.5, 70.0)
        );
        assert_eq!(b[2].name, "wifi");
        let e = parse_buckets("0", &lte).unwrap_err().to_string();
        assert!(e.contains("uplink_mbps") && e.contains("positive"), "{e}");
        let e = format!("{:#}", parse_buckets("5g", &lte).unwrap_err());
        assert!(e.contains("5g"), "{e}");
    }

    #[test]
    fn the_protocol_costs_per_request_and_per_byte_beyond_the_network() {
        let lte = reference_network("lte").unwrap();
        let with = BandwidthBucket {
            protocol: Protocol {
                request_ms: 0.4,
                ms_per_mb: 1.6,
            },
            ..lte.clone()
        };
        // 1 MB up, 1 kB down: the protocol adds 0.4 + 1.6 x 1.001 ms to what the network takes.
        let (up, down) = (1_000_000, 1_000);
        let extra = with.transfer_ms(up, down, true) - lte.transfer_ms(up, down, true);
        assert!((extra - (0.4 + 1.6 * 1.001)).abs() < 1e-9, "{extra}");
        // Nothing on the server: no request, nothing to pay.
        assert_eq!(with.transfer_ms(0, 0, false), 0.0);
        // Absent from a file, it is free, and a free one is not written.
        let json = serde_json::to_string(&lte).unwrap();
        assert!(!json.contains("protocol"), "{json}");
        let read: BandwidthBucket =
            serde_json::from_str(&serde_json::to_string(&with).unwrap()).unwrap();
        assert_eq!(read.protocol, with.protocol);
        let bad = BandwidthBucket {
            protocol: Protocol {
                request_ms: -1.0,
                ms_per_mb: 0.0,
            },
            ..lte
        };
        let e = validate(&[bad], "b.json").unwrap_err().to_string();
        assert!(e.contains("protocol.request_ms"), "{e}");
    }
}
