//! The harness catches a deliberately wrong translation: with the frontend's test-only fault
//! switch on, every `adc` is followed by `rax ^= 1`. The run must report a divergence whose
//! first differing instruction is an `adc`, with the seed, and minimizing must shrink it to a
//! short sequence that still contains one. Its own test binary (process): the switch is
//! global to the process.

use difftest::iced_x86::Mnemonic;
use difftest::{run, Config, Side};
use frontend::x86_64::fault_injection;

#[test]
fn a_mistranslated_adc_is_reported_and_minimized() {
    fault_injection::set(Some(Mnemonic::Adc));
    let config = Config {
        seed: 0xadc,
        sequences: 500,
        len: 50,
        minimize: false,
        ..Config::default()
    };
    let plain = run(&config);
    let small = run(&Config {
        minimize: true,
        ..config.clone()
    });
    // The seed and the index replay the sequence alone.
    let replay = plain
        .as_ref()
        .ok()
        .and_then(|r| r.divergences.first())
        .map(|d| {
            run(&Config {
                first: d.index,
                sequences: 1,
                ..config.clone()
            })
        });
    fault_injection::set(None);

    let plain = plain.expect("harness");
    let d = plain.divergences.first().expect("the wrong adc is caught");
    let again = replay.expect("replayed").expect("harness");
    let r = again.divergences.first().expect("the replay diverges too");
    assert_eq!(
        (r.index, r.first, r.mnemonic),
        (d.index, d.first, d.mnemonic)
    );
    assert_eq!(again.sequences, 1);
    assert_eq!(d.mnemonic, Mnemonic::Adc, "{d}");
    assert_eq!(d.seed, 0xadc);
    assert_eq!(d.side, Side::Jit, "the JIT is compared first");
    assert_eq!(d.sequence.items[d.first].instr.mnemonic(), Mnemonic::Adc);
    assert!(d.listing.contains("=>") && d.listing.contains("adc"), "{d}");
    assert!(d.diffs.iter().any(|f| f.field == "rax"), "{d}");
    let shown = d.to_string();
    assert!(shown.contains("seed 0xadc") && shown.contains(&format!("sequence {}", d.index)));

    let small = small.expect("harness");
    let m = small.divergences.first().expect("still caught");
    assert_eq!(m.index, d.index, "the same sequence");
    assert_eq!(m.mnemonic, Mnemonic::Adc);
    assert!(
        m.sequence.items.len() <= 3,
        "minimized to a short sequence:\n{m}"
    );
    assert!(m.original_len > m.sequence.items.len());
}
