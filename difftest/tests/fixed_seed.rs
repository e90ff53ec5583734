//! A fixed-seed run over every class: at least 100 000 instructions compared, no divergence.

use difftest::{run, Config};

#[test]
fn a_fixed_seed_run_of_100k_instructions_finds_no_divergence() {
    let config = Config {
        seed: 0x7e57_5eed,
        sequences: 2700,
        len: 50,
        ..Config::default()
    };
    let report = run(&config).expect("harness");
    eprintln!("{}", report.summary());
    if let Some(d) = report.divergences.first() {
        panic!("{d}");
    }
    assert!(report.instructions >= 100_000, "{}", report.summary());
    // Coverage: nearly every mnemonic of the implemented list shows up.
    assert!(
        report.generated.len() * 10 >= report.implemented * 9,
        "{}; not generated: {:?}",
        report.summary(),
        report.not_generated
    );
}
