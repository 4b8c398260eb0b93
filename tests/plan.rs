//! The planner: min-cut against brute force and the chain scan, exact breakpoints against a
//! dense sweep, and the planner's objective against the reported predictions.

use crate::common::*;
use nsplit::cost::Profiles;
use nsplit::plan::instance::Transfer;
use nsplit::plan::{chain, mincut, network, predict, Instance, Linear, Link, Method, Objective};
use proptest::prelude::*;

/// Costs are rounded to 1e-6 per flow edge; allow that over a small instance.
const TOL: f64 = 1e-4;

fn linear() -> impl Strategy<Value = Linear> {
    (0.0..50.0f64, 0.0..20.0f64).prop_map(|(a, b)| Linear { a, b })
}

/// A random DAG of `n` items: each item reads 1..=3 tensors produced earlier (or graph inputs),
/// items make 1 or 2 tensors, some tensors fan out, a few have unknown size.
fn dag(max: usize, chain_only: bool) -> impl Strategy<Value = Instance> {
    (1..=max).prop_flat_map(move |n| {
        (
            prop::collection::vec(linear(), n),
            prop::collection::vec(prop::option::weighted(0.95, linear()), n),
            prop::collection::vec(
                (
                    prop::collection::vec(any::<prop::sample::Index>(), 1..=3),
                    any::<bool>(),
                ),
                n,
            ),
            prop::collection::vec(prop::option::weighted(0.9, linear()), 2 * n + 2),
            linear(),
            any::<prop::sample::Index>(),
        )
            .prop_map(move |(mobile, cloud, reads, sizes, rtt, reply)| {
                // Tensors: two graph inputs, then each item's outputs.
                let mut producers: Vec<Option<usize>> = vec![None, None];
                let mut consumers: Vec<Vec<usize>> = vec![vec![], vec![]];
                for (i, (picks, two)) in reads.iter().enumerate() {
                    let available = producers.len();
                    for (k, pick) in picks.iter().enumerate() {
                        let t = if chain_only && k == 0 && i > 0 {
                            // In a chain, item i reads the last tensor item i-1 made.
                            producers.iter().rposition(|&p| p == Some(i - 1)).unwrap()
                        } else {
                            pick.index(available)
                        };
                        if !consumers[t].contains(&i) {
                            consumers[t].push(i);
                        }
                    }
                    for _ in 0..if *two { 2 } else { 1 } {
                        producers.push(Some(i));
                        consumers.push(vec![]);
                    }
                }
                let transfers = producers
                    .iter()
                    .zip(consumers)
                    .enumerate()
                    .filter(|(_, (_, c))| !c.is_empty())
                    .map(|(k, (&producer, consumers))| Transfer {
                        producer,
                        consumers,
                        cost: sizes[k % sizes.len()],
                    })
                    .collect();
                Instance {
                    mobile,
                    cloud,
                    transfers,
                    rtt,
                    reply_items: vec![n - 1, reply.index(n)],
                }
            })
    })
}

fn assert_close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= TOL * (1.0 + want.abs()),
        "{what}: {got} vs {want}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        // The default persistence replays tests/plan.proptest-regressions before new cases.
        ..ProptestConfig::default()
    })]

    /// The min-cut's head is closed, and costs what the best closed head set costs.
    #[test]
    fn min_cut_equals_brute_force(inst in dag(12, false), x in 0.001..10.0f64) {
        let (head, cost) = mincut::solve(&inst, x);
        prop_assert!(inst.is_closed(&head));
        prop_assert_eq!(inst.cost(&head).map(|c| c.at(x)), Some(cost));
        let (_, best) = inst.brute_force(x);
        assert_close(cost, best, "min-cut vs brute force");
    }

    /// On chains the prefix scan, the min-cut and brute force agree.
    #[test]
    fn chain_scan_equals_min_cut(inst in dag(12, true), x in 0.001..10.0f64) {
        prop_assert!(chain::is_chain(&inst));
        let (k, scan) = chain::best_prefix(&inst, x);
        let prefix: Vec<bool> = (0..inst.len()).map(|i| i < k).collect();
        assert_close(inst.cost(&prefix).unwrap().at(x), scan, "scan's own cost");
        let (_, cut) = mincut::solve(&inst, x);
        assert_close(scan, cut, "scan vs min-cut");
        assert_close(scan, inst.brute_force(x).1, "scan vs brute force");
    }

    /// Breakpoints: the pieces tile the range, each piece's cut is optimal at its midpoint, and
    /// a dense sweep of brute-force optima finds no change of best cost the pieces miss.
    #[test]
    fn breakpoints_match_a_dense_sweep(inst in dag(8, false)) {
        let (lo, hi) = (1e-3, 10.0);
        let nsplit::plan::Envelope { pieces, heads } =
            nsplit::plan::envelope(&inst, Method::MinCut, lo, hi);
        let line = |id: usize| inst.cost(&heads[id]).unwrap();
        prop_assert_eq!(pieces.first().unwrap().from, lo);
        prop_assert_eq!(pieces.last().unwrap().to, hi);
        for w in pieces.windows(2) {
            prop_assert!((w[0].to - w[1].from).abs() < 1e-12);
        }
        for p in &pieces {
            let mid = 0.5 * (p.from + p.to);
            assert_close(line(p.id).at(mid), inst.brute_force(mid).1, "piece at its midpoint");
        }
        // Every brute-force change of optimal line between two sweep points lies in a piece
        // boundary's interval; every sweep point is priced right by its piece.
        let steps = 400;
        let mut changes = 0;
        let mut last: Option<Linear> = None;
        for k in 0..=steps {
            let x = lo * (hi / lo).powf(k as f64 / steps as f64);
            let (head, best) = inst.brute_force(x);
            let p = pieces.iter().find(|p| p.from <= x && x <= p.to).unwrap();
            assert_close(line(p.id).at(x), best, "sweep point");
            let l = inst.cost(&head).unwrap();
            if let Some(prev) = last {
                let differs = (prev.a - l.a).abs() > TOL || (prev.b - l.b).abs() > TOL;
                if differs {
                    changes += 1;
                }
            }
            last = Some(l);
        }
        // The sweep can merge changes closer than its step, never invent them.
        prop_assert!(changes < pieces.len(),
            "sweep saw {} changes, envelope has {} pieces", changes, pieces.len());
    }
}

/// The instance the planner optimises prices every cut as the selection table reports it.
#[test]
fn planner_objective_equals_reported_prediction() {
    let profiles = Profiles::default();
    for (name, shapes) in FIXTURES {
        let a = analyse(&fixture(name), shapes);
        let costs = nsplit::cost::NodeCosts::predict(&a.graph, &a.features, &profiles);
        // Each network as the paper prices it, and with a protocol cost (`nsplit run
        // --calibrate`): the planner's instance and the reported prediction count it alike.
        let buckets = network::default_buckets().into_iter().flat_map(|b| {
            let calibrated = network::BandwidthBucket {
                protocol: network::Protocol {
                    request_ms: 0.4,
                    ms_per_mb: 1.6,
                },
                ..b.clone()
            };
            [b, calibrated]
        });
        for bucket in buckets {
            for objective in [Objective::Latency, Objective::Energy] {
                let (inst, items) = Instance::build(
                    &a.graph,
                    &a.shapes,
                    &costs,
                    objective,
                    2.0,
                    &Link::of_bucket(&bucket),
                );
                let x = 1.0 / bucket.uplink_mbps;
                for k in 0..=inst.len() {
                    let head: Vec<bool> = (0..inst.len()).map(|i| i < k).collect();
                    let cut = items.cut(&a.graph, &head).unwrap();
                    let planned = inst.cost(&head).map(|c| c.at(x));
                    let reported = predict::predict(
                        &a.graph, &a.shapes, &costs, &cut, &bucket, 2.0,
                    )
                    .map(|p| match objective {
                        Objective::Latency => p.total_ms,
                        Objective::Energy => p.mobile_mj,
                    });
                    match (planned, reported) {
                        (Some(p), Some(r)) => assert!(
                            (p - r).abs() <= 1e-9 * (1.0 + r.abs()),
                            "{name} {} {objective:?} prefix {k}: planned {p}, reported {r}",
                            bucket.name
                        ),
                        (p, r) => assert_eq!(p.is_some(), r.is_some(), "{name} prefix {k}"),
                    }
                }
            }
        }
    }
}

/// On every chain-shaped fixture and light net, the scan and the min-cut choose equally.
#[test]
fn chain_models_scan_and_min_cut_agree() {
    let profiles = Profiles::default();
    let mut models: Vec<(std::path::PathBuf, Vec<String>)> = FIXTURES
        .iter()
        .map(|(n, s)| (fixture(n), s.iter().map(|s| s.to_string()).collect()))
        .collect();
    models.extend(light_models().into_iter().map(|p| (p, vec![])));
    let mut chains = 0;
    for (path, shapes) in &models {
        let shapes: Vec<&str> = shapes.iter().map(String::as_str).collect();
        let a = analyse(path, &shapes);
        let costs = nsplit::cost::NodeCosts::predict(&a.graph, &a.features, &profiles);
        for objective in [Objective::Latency, Objective::Energy] {
            let link = Link::sweep(&network::reference_network("lte").unwrap());
            let (inst, _) = Instance::build(&a.graph, &a.shapes, &costs, objective, 1.0, &link);
            if !chain::is_chain(&inst) {
                continue;
            }
            chains += 1;
            for mbps in [0.1, 0.5, 1.1, 3.0, 5.85, 18.88, 100.0, 1000.0] {
                let x = 1.0 / mbps;
                let scan = nsplit::plan::best_head(&inst, Method::ChainScan, x);
                let cut = nsplit::plan::best_head(&inst, Method::MinCut, x);
                let (s, c) = (
                    inst.cost(&scan).unwrap().at(x),
                    inst.cost(&cut).unwrap().at(x),
                );
                assert!(
                    (s - c).abs() <= 1e-5 * (1.0 + s),
                    "{}: at {mbps} Mbps scan {s} vs min-cut {c}",
                    path.display()
                );
            }
        }
    }
    assert!(chains >= 8, "only {chains} chain cases");
}
