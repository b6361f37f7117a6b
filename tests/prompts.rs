//! The shipped announcements in `prompts/` (the IVR's) and `prompts/acd/`
//! (the ACD's), made by `scripts/make-prompts`: exactly the expected prompts
//! are there and compiled in, and every one parses with `media::wav`, is
//! 8 kHz mono (the parser refuses anything else), lasts as long as its kind
//! should (sentences 0.5–20 s, the pieces the ACD joins 0.15–3 s, music on
//! hold 20–40 s), is not silent (RMS above -40 dBFS), does not clip (peak
//! below full scale), loads as a `Prompt` with whole 20 ms frames for PCMA
//! and PCMU, and never sounds like a DTMF key to the in-band detector.

use std::path::{Path, PathBuf};

use hotline::ivr::Prompts;
use hotline::media::inband::{self, InbandDetector};
use hotline::media::wav::{self, Prompt};
use hotline::media::{Codec, FRAME_SAMPLES};

/// `prompts/*.wav`: what flows play.
const IVR: [&str; 7] = [
    "blocked",
    "greeting",
    "merged_line",
    "queue_comfort",
    "recording_notice",
    "survey",
    "thank_you",
];

/// `prompts/acd/*.wav`: what the ACD plays.
const ACD: [&str; 23] = [
    "agent_logged_in",
    "agent_logged_out",
    "agent_not_ready",
    "agent_ready",
    "feature_failed",
    "hold_music",
    "num_0",
    "num_1",
    "num_10",
    "num_100",
    "num_2",
    "num_3",
    "num_4",
    "num_5",
    "num_6",
    "num_7",
    "num_8",
    "num_9",
    "position_prefix",
    "position_suffix",
    "queue_full",
    "wait_minutes",
    "wait_prefix",
];

/// The pieces joined with a number into one announcement.
const PIECES: [&str; 4] = [
    "position_prefix",
    "position_suffix",
    "wait_prefix",
    "wait_minutes",
];

/// How long a prompt may last, in seconds.
fn bounds(name: &str) -> (f64, f64) {
    if name == "hold_music" {
        (20.0, 40.0)
    } else if name.starts_with("num_") || PIECES.contains(&name) {
        (0.15, 3.0)
    } else {
        (0.5, 20.0)
    }
}

fn wav_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    files.sort();
    files
}

fn prompts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts")
}

/// Every shipped file, IVR's then ACD's.
fn prompt_files() -> Vec<PathBuf> {
    let mut files = wav_files(&prompts_dir());
    files.extend(wav_files(&prompts_dir().join("acd")));
    files
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

fn stems(files: &[PathBuf]) -> Vec<String> {
    let mut names: Vec<String> = files.iter().map(|p| stem(p)).collect();
    names.sort();
    names
}

fn load(path: &Path) -> (String, Vec<u8>, Vec<i16>) {
    let name = stem(path);
    let bytes = std::fs::read(path).expect("read prompt");
    let wav = wav::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    (name, bytes, wav.samples)
}

#[test]
fn exactly_the_expected_prompts_are_shipped_and_compiled_in() {
    assert_eq!(stems(&wav_files(&prompts_dir())), IVR, "prompts/*.wav");
    assert_eq!(
        stems(&wav_files(&prompts_dir().join("acd"))),
        ACD,
        "prompts/acd/*.wav"
    );

    let mut acd = Prompts::ACD.to_vec();
    acd.sort_unstable();
    assert_eq!(acd, ACD, "ivr::Prompts::ACD");

    // The compiled-in set is the files, name for name and sample for sample.
    let shipped = Prompts::shipped();
    let files = prompt_files();
    assert_eq!(shipped.names(), stems(&files));
    for path in files {
        let (name, _, samples) = load(&path);
        let compiled = shipped.get(&name).map(|p| p.pcm());
        assert!(
            compiled == Some(&samples[..]),
            "{name} differs from its file"
        );
    }
}

#[test]
fn every_prompt_parses_and_is_a_usable_announcement() {
    let files = prompt_files();
    assert!(!files.is_empty(), "no prompts/*.wav");
    for path in files {
        let (name, bytes, samples) = load(&path);

        let seconds = samples.len() as f64 / 8000.0;
        let (min, max) = bounds(&name);
        assert!(
            (min..=max).contains(&seconds),
            "{name}: {seconds:.2} s, want {min}-{max} s"
        );

        let rms = (samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>()
            / samples.len() as f64)
            .sqrt();
        let rms_dbfs = 20.0 * (rms / 32768.0).log10();
        assert!(rms_dbfs > -40.0, "{name}: RMS {rms_dbfs:.1} dBFS, silent?");

        let peak = samples
            .iter()
            .map(|&s| i32::from(s).abs())
            .max()
            .unwrap_or(0);
        assert!(
            peak < 32_767,
            "{name}: peak {peak} reaches full scale (clipped)"
        );

        let prompt = Prompt::from_wav(name.clone(), &bytes).expect("prompt");
        assert_eq!(prompt.duration().as_micros(), samples.len() as u128 * 125);
        for codec in Codec::ALL {
            assert_eq!(
                prompt.frames(codec).len(),
                samples.len().div_ceil(FRAME_SAMPLES),
                "{name} {codec:?}"
            );
        }
    }
}

/// The number words are trimmed (no silence before or after the syllable)
/// so that 二 十 三 joins into one number, and the pieces around a number
/// have at most 50 ms of silence on the side that joins it.
#[test]
fn the_pieces_of_a_spoken_number_have_no_silence_where_they_join() {
    // The first and last sample at -40 dBFS or more: speech, not the
    // padding (exact zeros) nor the trimmed tail (below -46 dBFS).
    let audible = |s: &i16| i32::from(*s).abs() >= 328;
    for path in prompt_files() {
        let (name, _, samples) = load(&path);
        let lead = samples.iter().position(audible).unwrap_or(samples.len());
        let tail = samples.iter().rev().position(audible).unwrap_or(0);
        let (max_lead, max_tail) = match name.as_str() {
            n if n.starts_with("num_") => (10, 10),
            "position_prefix" | "wait_prefix" => (250, 60),
            "position_suffix" | "wait_minutes" => (60, 350),
            _ => continue,
        };
        let (lead_ms, tail_ms) = (lead / 8, tail / 8);
        assert!(
            lead_ms <= max_lead && tail_ms <= max_tail,
            "{name}: {lead_ms} ms of silence before, {tail_ms} ms after; \
             want at most {max_lead} and {max_tail}"
        );
    }
}

/// Music on hold is quieter than speech (peak -12 dBFS, speech -3) and
/// fades out at its end, so that looping it does not click.
#[test]
fn hold_music_is_quiet_and_loops_without_a_click() {
    let (_, _, samples) = load(&prompts_dir().join("acd/hold_music.wav"));
    let peak = samples
        .iter()
        .map(|&s| f64::from(s).abs())
        .fold(0.0, f64::max);
    let peak_dbfs = 20.0 * (peak / 32768.0).log10();
    assert!(
        (-13.0..=-11.0).contains(&peak_dbfs),
        "peak {peak_dbfs:.1} dBFS, want about -12"
    );
    // The last 10 ms at least 28 dB below the peak, ending near zero.
    let end = &samples[samples.len() - 80..];
    assert!(
        end.iter().all(|&s| i32::from(s).abs() < 328) && end[79].abs() < 32,
        "the last 10 ms are not faded out: {end:?}"
    );
}

/// The keys the in-band DTMF detector hears in `prompt` played `plays`
/// times back to back, as it goes out in PCMA.
fn keys_heard(prompt: &Prompt, plays: usize) -> String {
    let mut detector = InbandDetector::new();
    for _ in 0..plays {
        for frame in prompt.frames(Codec::Pcma) {
            let pcm: Vec<i16> = frame
                .iter()
                .map(|&c| Codec::Pcma.decode_sample(c))
                .collect();
            detector.push(&pcm);
        }
    }
    std::iter::from_fn(|| detector.poll_digit()).collect()
}

/// Nothing we play may be taken for a key press by an in-band DTMF
/// detector at the far end (or ours, on an echo): every prompt as it goes
/// out in PCMA, and the music on hold looped, once round the loop point.
#[test]
fn no_prompt_sounds_like_a_dtmf_key() {
    // The check itself hears a key: 100 ms of DTMF 5 at about -10 dBFS.
    let (low, high) = inband::tones_of('5').expect("DTMF 5");
    let tone: Vec<i16> = (0..800)
        .map(|n| {
            let t = n as f32 / 8000.0;
            let s =
                (std::f32::consts::TAU * low * t).sin() + (std::f32::consts::TAU * high * t).sin();
            (5000.0 * s) as i16
        })
        .collect();
    assert_eq!(keys_heard(&Prompt::from_pcm("dtmf-5", tone), 1), "5");

    let shipped = Prompts::shipped();
    for name in shipped.names() {
        let Some(prompt) = shipped.get(name) else {
            continue;
        };
        let plays = if name == "hold_music" { 2 } else { 1 };
        let keys = keys_heard(prompt, plays);
        assert!(keys.is_empty(), "{name} is heard as DTMF {keys:?}");
    }
}
