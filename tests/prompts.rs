//! The shipped announcements in `prompts/` (made by `scripts/make-prompts`):
//! every expected prompt is present, and every `prompts/*.wav` parses with
//! `media::wav`, is 8 kHz mono (the parser refuses anything else), lasts
//! 0.5–20 s, is not silent (RMS above -40 dBFS) and does not clip (peak
//! below full scale), and loads as a `Prompt` with whole 20 ms frames for
//! PCMA and PCMU.

use std::path::{Path, PathBuf};

use hotline::media::wav::{self, Prompt};
use hotline::media::{Codec, FRAME_SAMPLES};

const EXPECTED: [&str; 7] = [
    "blocked",
    "greeting",
    "merged_line",
    "queue_comfort",
    "recording_notice",
    "survey",
    "thank_you",
];

fn prompt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    files.sort();
    files
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn every_expected_prompt_is_shipped() {
    let names: Vec<String> = prompt_files().iter().map(|p| stem(p)).collect();
    for name in EXPECTED {
        assert!(
            names.iter().any(|n| n == name),
            "prompts/{name}.wav is missing"
        );
    }
}

#[test]
fn every_prompt_parses_and_is_a_usable_announcement() {
    let files = prompt_files();
    assert!(!files.is_empty(), "no prompts/*.wav");
    for path in files {
        let name = stem(&path);
        let bytes = std::fs::read(&path).expect("read prompt");
        let wav = wav::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let samples = &wav.samples;

        let seconds = samples.len() as f64 / 8000.0;
        assert!(
            (0.5..=20.0).contains(&seconds),
            "{name}: {seconds:.2} s, want 0.5-20 s"
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
