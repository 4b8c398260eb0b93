//! Planner time against graph size, on synthetic DAGs shaped like real networks: a trunk with
//! skip connections (ResNet-like) and four-way branches that merge (Inception-like), random
//! costs and tensor sizes. Reported as ratios against a baseline measured in the same run on the
//! same graph (petgraph's topological sort: one linear pass), and as the growth from one size to
//! the next (10x the nodes should cost about 10x the time).
//!
//! ```text
//! cargo bench --bench plan [-- MAX_NODES]
//! ```

use nsplit::plan::breakpoints::{lower_envelope, Line};
use nsplit::plan::instance::Transfer;
use nsplit::plan::{mincut, Instance, Linear};
use rand::{Rng, SeedableRng};
use std::time::Instant;

fn main() {
    let max: usize = std::env::args()
        .skip(1)
        .find(|a| a != "--bench")
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    println!(
        "| items | topological sort ms | min-cut ms | ratio | breakpoints ms | solves | growth (min-cut) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let mut previous: Option<(usize, f64)> = None;
    for n in [1_000, 3_000, 10_000, 30_000, 100_000] {
        if n > max {
            break;
        }
        let inst = synthetic(n, 7);
        let topo = median(5, || {
            let mut g = petgraph::graph::DiGraph::<(), ()>::with_capacity(n, 2 * n);
            let nodes: Vec<_> = (0..n).map(|_| g.add_node(())).collect();
            for t in &inst.transfers {
                if let Some(p) = t.producer {
                    for &c in &t.consumers {
                        g.add_edge(nodes[p], nodes[c], ());
                    }
                }
            }
            std::hint::black_box(petgraph::algo::toposort(&g, None).unwrap());
        });
        let cut = median(3, || {
            std::hint::black_box(mincut::solve(&inst, 1.0 / 10.0));
        });
        let mut solves = 0;
        let envelope = median(1, || {
            let mut heads: Vec<Vec<bool>> = vec![];
            solves = 0;
            let pieces = lower_envelope(1e-3, 10.0, &mut |x| {
                solves += 1;
                let (head, _) = mincut::solve(&inst, x);
                let l = inst.cost(&head).unwrap();
                let id = heads.iter().position(|h| *h == head).unwrap_or_else(|| {
                    heads.push(head);
                    heads.len() - 1
                });
                Line { id, a: l.a, b: l.b }
            });
            std::hint::black_box(pieces);
        });
        let growth = previous.map_or("".into(), |(m, t)| {
            format!("{:.1}x for {:.1}x the items", cut / t, n as f64 / m as f64)
        });
        println!(
            "| {n} | {topo:.2} | {cut:.1} | {:.0}x | {envelope:.0} | {solves} | {growth} |",
            cut / topo
        );
        previous = Some((n, cut));
    }
}

fn median(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

/// `n` items: blocks of a residual block (3 items and a skip) or an inception block (4 branches
/// of 1-2 items merged by a concat), alternating at random.
fn synthetic(n: usize, seed: u64) -> Instance {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut inst = Instance::default();
    let mut tensor_of: std::collections::HashMap<usize, usize> = Default::default();
    let mut item =
        |inst: &mut Instance, rng: &mut rand_chacha::ChaCha8Rng, reads: &[Option<usize>]| {
            let i = inst.mobile.len();
            let ms: f64 = rng.random_range(0.05..5.0);
            inst.mobile.push(Linear { a: ms, b: 0.0 });
            inst.cloud.push(Some(Linear {
                a: ms / 20.0,
                b: 0.0,
            }));
            for &r in reads {
                // One tensor per producer; several readers share it.
                match r.and_then(|p| tensor_of.get(&p)) {
                    Some(&t) => inst.transfers[t].consumers.push(i),
                    None => {
                        if let Some(p) = r {
                            tensor_of.insert(p, inst.transfers.len());
                        }
                        let bytes: f64 = rng.random_range(1e3..1e6);
                        inst.transfers.push(Transfer {
                            producer: r,
                            consumers: vec![i],
                            cost: Some(Linear {
                                a: 0.0,
                                b: 8e-3 * bytes,
                            }),
                        });
                    }
                }
            }
            i
        };
    let mut last: Option<usize> = None;
    while inst.mobile.len() + 8 < n {
        if rng.random_bool(0.5) {
            let a = item(&mut inst, &mut rng, &[last]);
            let b = item(&mut inst, &mut rng, &[Some(a)]);
            let c = item(&mut inst, &mut rng, &[Some(b)]);
            last = Some(item(&mut inst, &mut rng, &[Some(c), last]));
        } else {
            let mut ends = vec![];
            for _ in 0..4 {
                let mut x = item(&mut inst, &mut rng, &[last]);
                if rng.random_bool(0.5) {
                    x = item(&mut inst, &mut rng, &[Some(x)]);
                }
                ends.push(Some(x));
            }
            last = Some(item(&mut inst, &mut rng, &ends));
        }
    }
    inst.reply_items = vec![last.unwrap()];
    inst.rtt = Linear { a: 50.0, b: 0.0 };
    inst
}
