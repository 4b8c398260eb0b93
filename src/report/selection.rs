//! `selection.md`: the selection table (`selection.json`, [`SelectionTable`]) for people.

use super::format::{fig, file_name, human_bytes, sent_text};
use crate::plan::{Method, Objective};
use crate::selection::{SelectionTable, VerificationStatus};
use std::fmt::Write;

/// `selection.md`: the selection table for people.
pub fn markdown(table: &SelectionTable) -> String {
    let mut out = String::new();
    let unit = match table.objective {
        Objective::Latency => "latency (ms)",
        Objective::Energy => "phone energy (mJ)",
    };
    let name = file_name(&table.model.path);
    let _ = writeln!(out, "# Selection table: {name}\n");
    let _ = writeln!(
        out,
        "Model `{}` (SHA-256 `{}`). Objective: {unit}. Phone: `{}` ({}); server: `{}` ({}), load x{}. Cuts chosen by {}.\n",
        table.model.path,
        &table.model.sha256,
        table.profiles.mobile,
        table.profiles.mobile_provenance,
        table.profiles.cloud,
        table.profiles.cloud_provenance,
        table.cloud_load,
        if table.method == Method::ChainScan {
            "the prefix scan (each node reads the one before it, so every head closed under its inputs is a prefix)"
        } else {
            "minimum cut (heads closed under their inputs need not be prefixes)"
        }
    );
    networks_section(&mut out, table);
    let _ = writeln!(
        out,
        "\n## Breakpoints\n\nThe best cut as the uplink varies, on each network (its RTT and radio, the downlink in the same ratio to the uplink). `nsplit select DIR --network NAME --bandwidth MBPS` reads these tables; each network's row above is its table at the network's own uplink. Each cut's predicted objective against the uplink, with the breakpoints marked: [selection.svg](selection.svg); every cut's latency and energy on one network: [cuts.svg](cuts.svg).\n"
    );
    for n in &table.networks {
        let net = &n.network;
        let _ = writeln!(
            out,
            "### {}\n\nRTT {} ms, {} radio, downlink {}x the uplink.\n",
            n.buckets.join(", "),
            net.rtt_ms,
            net.radio.name,
            fig(net.downlink_mbps / net.uplink_mbps)
        );
        pieces_table(&mut out, &n.pieces);
    }
    let bp = &table.breakpoints;
    let _ = writeln!(
        out,
        "### Without --network\n\n`nsplit select DIR --bandwidth MBPS` alone: {} to {} Mbps, RTT {} ms, {} radio, downlink equal to uplink.\n",
        fig(bp.from_mbps),
        fig(bp.to_mbps),
        bp.network.rtt_ms,
        bp.network.radio.name
    );
    pieces_table(&mut out, &bp.pieces);
    cuts_section(&mut out, table);
    for c in table.cuts.iter().filter(|c| !c.boundary.is_empty()) {
        let _ = writeln!(out, "\nTensors `{}` sends:\n", c.id);
        for b in &c.boundary {
            let _ = writeln!(out, "- `{}` {}", b.name, sent_text(b));
        }
    }
    if !table.notes.is_empty() {
        let _ = writeln!(out, "\n## Notes\n");
        for n in &table.notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    out
}

/// `## Per network`: each bucket's cut and predictions, and what the columns mean.
fn networks_section(out: &mut String, table: &SelectionTable) {
    let _ = writeln!(out, "## Per network\n");
    let _ = writeln!(
        out,
        "| network | uplink Mbps | RTT ms | cut | phone ms | transfer ms | server ms | total ms | phone mJ | speedup vs all-cloud | speedup vs all-mobile | energy saved vs all-cloud | next best |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for b in &table.buckets {
        let p = &b.predicted;
        let _ = writeln!(
            out,
            "| {} | {} | {} | `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            b.network.name,
            b.network.uplink_mbps,
            b.network.rtt_ms,
            b.cut,
            fig(p.mobile_ms),
            fig(p.transfer_ms),
            fig(p.cloud_ms),
            fig(p.total_ms),
            fig(p.mobile_mj),
            b.speedup_vs_all_cloud
                .map_or("n/a".into(), |s| format!("{}x", fig(s))),
            fig(b.speedup_vs_all_mobile) + "x",
            b.energy_saving_vs_all_cloud
                .map_or("n/a".into(), |s| format!("{:+.1}%", 100.0 * s)),
            b.margin.as_ref().map_or("—".into(), |m| format!(
                "`{}` {:+.1}%{}",
                m.runner_up,
                100.0 * m.relative,
                if m.near_tie { " (near tie)" } else { "" }
            )),
        );
    }
    let _ = writeln!(
        out,
        "\nA cut's id is `h<nodes on the phone>-<hash of which nodes>` (`all-mobile` and `all-cloud` name the ends). Speedup: how many times faster than running everything on that side; energy saved: the phone's energy against all-cloud's.\n\nNext best: this table's runner-up cut on that network and how much worse it is predicted; below {:.0}% (the profiles' run-to-run spread, at least 10%) it is a near tie, and the two may measure in either order.",
        100.0 * table.tie_within
    );
}

/// `## Cuts`: each pair's files, sides, upload, predictions and verification.
fn cuts_section(out: &mut String, table: &SelectionTable) {
    let _ = writeln!(out, "## Cuts\n");
    let _ = writeln!(
        out,
        "| cut | head | tail | phone nodes | server nodes | upload | phone ms | server ms | verified |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---:|---|");
    for c in &table.cuts {
        let file = |f: &Option<String>| f.as_ref().map_or("—".into(), |f| format!("`{f}`"));
        let verified = match (c.verification.status, &c.verification.reason) {
            (VerificationStatus::Passed, _) => format!(
                "passed{} (max abs diff {:.1e}{})",
                c.verification
                    .verifier
                    .map_or(String::new(), |r| format!(" in {r}")),
                c.verification.max_abs_diff.unwrap_or(0.0),
                if c.verification.sizes.is_empty() {
                    String::new()
                } else {
                    format!("; at {}", c.verification.sizes.join("; "))
                }
            ),
            (s, Some(r)) => format!("{}: {r}", s.name()),
            (s, None) => s.name().to_string(),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} |",
            c.id,
            file(&c.head),
            file(&c.tail),
            c.head_nodes,
            c.tail_nodes,
            human_bytes(c.upload_bytes),
            fig(c.mobile_ms),
            fig(c.cloud_ms),
            verified.replace('|', "\\|")
        );
    }
    if let Some(id) = table.fallback_only() {
        let _ = writeln!(
            out,
            "\n`{id}` is no bucket's choice: it is the fallback, the pair an app answers with on the phone alone when the server is down, refuses or is too slow (`--no-fallback` leaves it out)."
        );
    }
}

/// A breakpoint table: which cut from which uplink.
fn pieces_table(out: &mut String, pieces: &[crate::selection::Piece]) {
    let _ = writeln!(out, "| from Mbps | to Mbps | cut |");
    let _ = writeln!(out, "|---:|---:|---|");
    for p in pieces {
        let _ = writeln!(
            out,
            "| {} | {} | `{}` |",
            fig(p.from_mbps),
            fig(p.to_mbps),
            p.cut
        );
    }
    out.push('\n');
}
