//! The fuzz target bodies as a deterministic property test: each body gets its
//! checked-in seed corpus (`fuzz/corpus/<target>/`), then mutations of those seeds and
//! random inputs from a fixed-seed RNG. This runs the same assertions as
//! `scripts/fuzz`, on stable Rust and in seconds, but explores far less: it guards the
//! bodies and the corpus, and catches regressions near the seeds.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchboard_fuzz_targets::{Body, TARGETS};

/// Mutated inputs per target, on top of the seeds.
const MUTATIONS: usize = 3_000;
/// Purely random inputs per target.
const RANDOM_INPUTS: usize = 300;
/// Bytes the framings and formats give meaning to, tried more often than chance would.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0xff, 0x1e, b'{', b'}', b'[', b']', b'"', b',', b'/', b'-', b'#', b'.', b'=', b'&',
    b'0', b'5', b'9', b'b', 0x80, 0x90, 0xc0, 0xc4, 0xd4, 0xdc, 0xde, 0xdf,
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).expect("seed file"))
        .collect();
    assert!(!seeds.is_empty(), "no seeds for {target}");
    seeds
}

/// Runs `body` on `input`; a failure names the target and the input in hex (turn it
/// into a file with `xxd -r -p` and replay it with `scripts/fuzz --replay TARGET FILE`).
fn run(target: &str, body: Body, input: &[u8]) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| body(input))) {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("?");
        let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
        panic!("{target} failed on input {hex}: {message}");
    }
}

fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..=4) {
        let len = data.len();
        let byte = if rng.random_bool(0.5) {
            INTERESTING[rng.random_range(0..INTERESTING.len())]
        } else {
            rng.random()
        };
        match rng.random_range(0..6) {
            0 if len > 0 => data[rng.random_range(0..len)] = byte,
            1 if len > 0 => data[rng.random_range(0..len)] ^= 1 << rng.random_range(0..8),
            2 => data.insert(rng.random_range(0..=len), byte),
            3 if len > 0 => {
                let start = rng.random_range(0..len);
                let end = rng.random_range(start..=len.min(start + 8));
                data.drain(start..end);
            }
            4 if len > 0 => {
                let start = rng.random_range(0..len);
                let end = rng.random_range(start..=len);
                let copy = data[start..end].to_vec();
                let at = rng.random_range(0..=len);
                data.splice(at..at, copy);
            }
            _ => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                let cut = rng.random_range(0..=len);
                let from = rng.random_range(0..=other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
        }
    }
    data
}

fn exercise(target: &str) {
    let (_, body) = *TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a known target");
    let seeds = seeds(target);
    for seed in &seeds {
        run(target, body, seed);
    }
    let seed = target.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..MUTATIONS {
        let input = mutate(&mut rng, &seeds);
        run(target, body, &input);
    }
    for _ in 0..RANDOM_INPUTS {
        let len = rng.random_range(0..64);
        let input: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        run(target, body, &input);
    }
}

macro_rules! targets {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                exercise(stringify!($name));
            }
        )*

        /// Every body has a test here, a cargo-fuzz target and a seed corpus.
        #[test]
        fn every_target_is_wired() {
            let tested = [$(stringify!($name)),*];
            let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml"))
                .expect("fuzz/Cargo.toml");
            for (name, _) in TARGETS {
                assert!(tested.contains(name), "{name} has no test in tests/corpus.rs");
                let bin = format!("name = \"{name}\"");
                assert!(manifest.contains(&bin), "{name} is not a bin of fuzz/Cargo.toml");
                assert!(fuzz_dir().join(format!("fuzz_targets/{name}.rs")).exists());
                assert!(fuzz_dir().join("corpus").join(name).is_dir(), "{name} has no seeds");
            }
            assert_eq!(tested.len(), TARGETS.len());
        }
    };
}

targets!(
    engineio_packet,
    engineio_payload,
    engineio_handshake,
    socketio_decoder,
    msgpack,
    redis_adapter,
    streams,
    sharded,
    resp,
    session,
    jwt,
    hook_reply,
    forward_frame,
    question_frame,
    sse_frame,
    relay_watch,
    inbound_watch,
    reframe,
);
