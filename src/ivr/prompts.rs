//! The announcements flows and the ACD may play: the shipped ones
//! (`prompts/*.wav` for the IVR, `prompts/acd/*.wav` for the ACD, compiled
//! in; prompts/README.md) and, with `[prompts] dir`, a centre's own
//! recordings, added or put in place of a shipped one of the same name.
//!
//! Every prompt is parsed and pre-encoded (PCMA and PCMU) once, when the
//! config loads; a call plays an `Arc` of it. The ACD's spoken numbers are
//! pieces joined per announcement ([`Prompts::sequence`], [`spoken_number`]):
//! "您前面还有" + 二 十 三 + "位来电在等待。".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::media::wav::{Prompt, WavError};

/// The shipped prompts' bytes, by name: the IVR's ([`super::PROMPTS`],
/// `prompts/*.wav`) then the ACD's ([`Prompts::ACD`], `prompts/acd/*.wav`).
const SHIPPED: [(&str, &[u8]); super::PROMPTS.len() + Prompts::ACD.len()] = [
    ("greeting", include_bytes!("../../prompts/greeting.wav")),
    (
        "recording_notice",
        include_bytes!("../../prompts/recording_notice.wav"),
    ),
    (
        "merged_line",
        include_bytes!("../../prompts/merged_line.wav"),
    ),
    (
        "queue_comfort",
        include_bytes!("../../prompts/queue_comfort.wav"),
    ),
    ("survey", include_bytes!("../../prompts/survey.wav")),
    ("thank_you", include_bytes!("../../prompts/thank_you.wav")),
    ("blocked", include_bytes!("../../prompts/blocked.wav")),
    (
        "queue_full",
        include_bytes!("../../prompts/acd/queue_full.wav"),
    ),
    (
        "position_prefix",
        include_bytes!("../../prompts/acd/position_prefix.wav"),
    ),
    (
        "position_suffix",
        include_bytes!("../../prompts/acd/position_suffix.wav"),
    ),
    (
        "wait_prefix",
        include_bytes!("../../prompts/acd/wait_prefix.wav"),
    ),
    (
        "wait_minutes",
        include_bytes!("../../prompts/acd/wait_minutes.wav"),
    ),
    ("num_0", include_bytes!("../../prompts/acd/num_0.wav")),
    ("num_1", include_bytes!("../../prompts/acd/num_1.wav")),
    ("num_2", include_bytes!("../../prompts/acd/num_2.wav")),
    ("num_3", include_bytes!("../../prompts/acd/num_3.wav")),
    ("num_4", include_bytes!("../../prompts/acd/num_4.wav")),
    ("num_5", include_bytes!("../../prompts/acd/num_5.wav")),
    ("num_6", include_bytes!("../../prompts/acd/num_6.wav")),
    ("num_7", include_bytes!("../../prompts/acd/num_7.wav")),
    ("num_8", include_bytes!("../../prompts/acd/num_8.wav")),
    ("num_9", include_bytes!("../../prompts/acd/num_9.wav")),
    ("num_10", include_bytes!("../../prompts/acd/num_10.wav")),
    ("num_100", include_bytes!("../../prompts/acd/num_100.wav")),
    (
        "agent_logged_in",
        include_bytes!("../../prompts/acd/agent_logged_in.wav"),
    ),
    (
        "agent_logged_out",
        include_bytes!("../../prompts/acd/agent_logged_out.wav"),
    ),
    (
        "agent_ready",
        include_bytes!("../../prompts/acd/agent_ready.wav"),
    ),
    (
        "agent_not_ready",
        include_bytes!("../../prompts/acd/agent_not_ready.wav"),
    ),
    (
        "feature_failed",
        include_bytes!("../../prompts/acd/feature_failed.wav"),
    ),
    (
        "hold_music",
        include_bytes!("../../prompts/acd/hold_music.wav"),
    ),
];

/// The number words, by value: `NUMBER_WORDS[d]` says digit `d`.
const NUMBER_WORDS: [&str; 10] = [
    "num_0", "num_1", "num_2", "num_3", "num_4", "num_5", "num_6", "num_7", "num_8", "num_9",
];

/// The largest number [`spoken_number`] says; anything above is said as it.
pub const MAX_SPOKEN_NUMBER: u32 = 999;

/// The prompt names that say `n` in Mandarin, as a count ("还有二十三位"),
/// from the number words `num_0`..`num_9`, `num_10` (十) and `num_100` (百):
///
/// | n | said | names |
/// |---|---|---|
/// | 0 | 零 | `num_0` |
/// | 7 | 七 | `num_7` |
/// | 10 | 十 | `num_10` |
/// | 12 | 十二 | `num_10 num_2` |
/// | 20 | 二十 | `num_2 num_10` |
/// | 23 | 二十三 | `num_2 num_10 num_3` |
/// | 100 | 一百 | `num_1 num_100` |
/// | 105 | 一百零五 | `num_1 num_100 num_0 num_5` |
/// | 110 | 一百一十 | `num_1 num_100 num_1 num_10` |
/// | 999 | 九百九十九 | `num_9 num_100 num_9 num_10 num_9` |
///
/// Above [`MAX_SPOKEN_NUMBER`] it says 999 (a queue position or a wait in
/// minutes that large is "very many" to a caller either way). 2 is always
/// 二, also where speech would say 两 (两百, 两位): there is one word per
/// digit.
#[must_use]
pub fn spoken_number(n: u32) -> Vec<&'static str> {
    let n = n.min(MAX_SPOKEN_NUMBER) as usize;
    let (hundreds, tens, units) = (n / 100, n / 10 % 10, n % 10);
    let mut names = Vec::with_capacity(5);
    if hundreds > 0 {
        names.extend([NUMBER_WORDS[hundreds], "num_100"]);
        if tens == 0 && units > 0 {
            names.push("num_0"); // 一百零五
        }
    }
    if tens > 0 {
        // 十二 alone, but 一百一十二 after the hundreds.
        if tens > 1 || hundreds > 0 {
            names.push(NUMBER_WORDS[tens]);
        }
        names.push("num_10");
    }
    if units > 0 || n == 0 {
        names.push(NUMBER_WORDS[units]);
    }
    names
}

/// The prompts a configuration can play, by name.
#[derive(Debug, Clone)]
pub struct Prompts {
    by_name: BTreeMap<String, Arc<Prompt>>,
}

/// Two sets are equal when they have the same names with the same audio
/// (what a reload compares).
impl PartialEq for Prompts {
    fn eq(&self, other: &Self) -> bool {
        self.by_name.len() == other.by_name.len()
            && self
                .by_name
                .iter()
                .zip(&other.by_name)
                .all(|((a, pa), (b, pb))| a == b && (Arc::ptr_eq(pa, pb) || pa.pcm() == pb.pcm()))
    }
}

impl Eq for Prompts {}

/// Why a prompt directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PromptDirError {
    /// The directory cannot be listed.
    #[error("cannot read the directory {}: {source}", dir.display())]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file cannot be read.
    #[error("cannot read {}: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file's name is not a prompt name.
    #[error(
        "{}: \"{name}\" is not a prompt name (letters, digits, '-' and '_' before .wav)",
        file.display()
    )]
    Name {
        /// The file.
        file: PathBuf,
        /// Its stem.
        name: String,
    },
    /// A file is not a WAV file we can play.
    #[error("{}: {source}", file.display())]
    Wav {
        /// The file.
        file: PathBuf,
        /// Why.
        source: WavError,
    },
}

impl Prompts {
    /// The ACD's shipped prompts (`prompts/acd/*.wav`), besides the IVR's
    /// [`super::PROMPTS`]; texts and durations in prompts/README.md.
    ///
    /// - `hold_music`: music on hold (25.6 s, loops; no speech).
    /// - `queue_full`: 当前来电较多，请您稍后再拨，再见。 (queue full, or
    ///   the longest wait reached).
    /// - `position_prefix` 您前面还有 + a number + `position_suffix`
    ///   位来电在等待。 ([`Prompts::queue_position`]).
    /// - `wait_prefix` 预计等待时间 + a number + `wait_minutes` 分钟。
    ///   ([`Prompts::expected_wait`]).
    /// - `num_0`..`num_9` 零一二…九, `num_10` 十, `num_100` 百: the number
    ///   words (`spoken_number`), trimmed of silence so they join.
    /// - `agent_logged_in` 已签入。, `agent_logged_out` 已签出。,
    ///   `agent_ready` 已示闲。, `agent_not_ready` 已示忙。,
    ///   `feature_failed` 操作失败。: answers to an agent's feature codes.
    pub const ACD: [&'static str; 23] = [
        "queue_full",
        "position_prefix",
        "position_suffix",
        "wait_prefix",
        "wait_minutes",
        "num_0",
        "num_1",
        "num_2",
        "num_3",
        "num_4",
        "num_5",
        "num_6",
        "num_7",
        "num_8",
        "num_9",
        "num_10",
        "num_100",
        "agent_logged_in",
        "agent_logged_out",
        "agent_ready",
        "agent_not_ready",
        "feature_failed",
        "hold_music",
    ];

    /// The shipped prompts (parsed once per process).
    ///
    /// # Panics
    /// Never in a tested build: `tests/prompts.rs` and the unit test below
    /// parse every shipped file.
    #[must_use]
    pub fn shipped() -> Prompts {
        static SHIPPED_SET: OnceLock<Prompts> = OnceLock::new();
        SHIPPED_SET
            .get_or_init(|| {
                let mut by_name = BTreeMap::new();
                for (name, bytes) in SHIPPED {
                    match Prompt::from_wav(name, bytes) {
                        Ok(p) => {
                            by_name.insert(name.to_owned(), Arc::new(p));
                        }
                        // A shipped file that does not parse is a build
                        // defect the tests catch; leave the name out rather
                        // than take the process down.
                        Err(e) => {
                            tracing::error!(prompt = name, error = %e, "shipped prompt unusable")
                        }
                    }
                }
                Prompts { by_name }
            })
            .clone()
    }

    /// The shipped prompts plus every `*.wav` in `dir` (a file named like a
    /// shipped prompt replaces it).
    ///
    /// # Errors
    /// The directory or a file cannot be read, a file name is not a prompt
    /// name, or a file is not an 8 kHz mono WAV we can play.
    pub fn with_dir(dir: &Path) -> Result<Prompts, PromptDirError> {
        let mut set = Prompts::shipped();
        let entries = std::fs::read_dir(dir).map_err(|source| PromptDirError::Dir {
            dir: dir.to_owned(),
            source,
        })?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| PromptDirError::Dir {
                dir: dir.to_owned(),
                source,
            })?;
            let path = entry.path();
            if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
            {
                files.push(path);
            }
        }
        files.sort();
        for file in files {
            let name = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(PromptDirError::Name { file, name });
            }
            let bytes = std::fs::read(&file).map_err(|source| PromptDirError::Read {
                file: file.clone(),
                source,
            })?;
            let prompt = Prompt::from_wav(name.clone(), &bytes)
                .map_err(|source| PromptDirError::Wav { file, source })?;
            set.by_name.insert(name, Arc::new(prompt));
        }
        Ok(set)
    }

    /// The prompt called `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Arc<Prompt>> {
        self.by_name.get(name)
    }

    /// Every name, sorted.
    #[must_use]
    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }

    /// One prompt playing the prompts called `names` back to back
    /// ([`Prompt::concat`]: frames copied, 0–20 ms of silence between
    /// parts), or `None` when a name is unknown or `names` is empty. A single
    /// name gives that prompt's own `Arc` (no copy).
    ///
    /// Built per call: an announcement of a few seconds is some tens of
    /// kilobytes (PCM and both codecs). A centre's own recording of a piece
    /// (`[prompts] dir`, e.g. its own `num_3.wav`) is used like any other.
    #[must_use]
    pub fn sequence(&self, names: &[&str]) -> Option<Arc<Prompt>> {
        match names {
            [] => None,
            [one] => self.get(one).cloned(),
            _ => {
                let parts = names
                    .iter()
                    .map(|name| self.get(name).map(Arc::as_ref))
                    .collect::<Option<Vec<&Prompt>>>()?;
                Some(Arc::new(Prompt::concat(&parts)))
            }
        }
    }

    /// 您前面还有 `ahead` 位来电在等待。 (`position_prefix`, the number,
    /// `position_suffix`); `None` if one of the pieces is missing.
    #[must_use]
    pub fn queue_position(&self, ahead: u32) -> Option<Arc<Prompt>> {
        self.around("position_prefix", ahead, "position_suffix")
    }

    /// 预计等待时间 `minutes` 分钟。 (`wait_prefix`, the number,
    /// `wait_minutes`); `None` if one of the pieces is missing. The caller
    /// rounds (0 says 零分钟).
    #[must_use]
    pub fn expected_wait(&self, minutes: u32) -> Option<Arc<Prompt>> {
        self.around("wait_prefix", minutes, "wait_minutes")
    }

    /// `before`, `n` spoken, `after`.
    fn around(&self, before: &'static str, n: u32, after: &'static str) -> Option<Arc<Prompt>> {
        let mut names = Vec::with_capacity(7);
        names.push(before);
        names.extend(spoken_number(n));
        names.push(after);
        self.sequence(&names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_prompt_loads() {
        let set = Prompts::shipped();
        let mut want: Vec<&str> = super::super::PROMPTS.to_vec();
        want.extend(Prompts::ACD);
        want.sort_unstable();
        assert_eq!(set.names(), want);
        for name in want {
            // The number words are single syllables (tests/prompts.rs has
            // every file's bounds).
            let floor = if name.starts_with("num_") { 150 } else { 500 };
            let p = set.get(name).map(|p| p.duration().as_millis());
            assert!(p.is_some_and(|ms| ms > floor), "{name}: {p:?}");
        }
    }

    #[test]
    fn spoken_numbers_follow_mandarin_counting() {
        let cases: [(u32, &[&str]); 22] = [
            (0, &["num_0"]),
            (1, &["num_1"]),
            (2, &["num_2"]),
            (9, &["num_9"]),
            (10, &["num_10"]),
            (11, &["num_10", "num_1"]),
            (12, &["num_10", "num_2"]),
            (19, &["num_10", "num_9"]),
            (20, &["num_2", "num_10"]),
            (23, &["num_2", "num_10", "num_3"]),
            (99, &["num_9", "num_10", "num_9"]),
            (100, &["num_1", "num_100"]),
            (101, &["num_1", "num_100", "num_0", "num_1"]),
            (105, &["num_1", "num_100", "num_0", "num_5"]),
            (110, &["num_1", "num_100", "num_1", "num_10"]),
            (112, &["num_1", "num_100", "num_1", "num_10", "num_2"]),
            (120, &["num_1", "num_100", "num_2", "num_10"]),
            (200, &["num_2", "num_100"]),
            (999, &["num_9", "num_100", "num_9", "num_10", "num_9"]),
            (1000, &["num_9", "num_100", "num_9", "num_10", "num_9"]),
            (12_345, &["num_9", "num_100", "num_9", "num_10", "num_9"]),
            (u32::MAX, &["num_9", "num_100", "num_9", "num_10", "num_9"]),
        ];
        for (n, want) in cases {
            assert_eq!(spoken_number(n), want, "{n}");
        }
        // Every number up to the cap is said with shipped words, never two
        // tens or hundreds words, and the words are never empty.
        let set = Prompts::shipped();
        for n in 0..=MAX_SPOKEN_NUMBER {
            let names = spoken_number(n);
            assert!((1..=5).contains(&names.len()), "{n}: {names:?}");
            assert!(names.iter().all(|w| set.get(w).is_some()), "{n}");
            assert!(names.iter().filter(|&&w| w == "num_10").count() <= 1);
            assert!(names.iter().filter(|&&w| w == "num_100").count() <= 1);
            assert!(n == 0 || names.last() != Some(&"num_0"), "{n}: {names:?}");
        }
    }

    #[test]
    fn a_sequence_joins_named_prompts_or_is_none() {
        let set = Prompts::shipped();
        let piece = |name: &str| match set.get(name) {
            Some(p) => Arc::clone(p),
            None => panic!("{name} is not shipped"),
        };
        let names = [
            "position_prefix",
            "num_2",
            "num_10",
            "num_3",
            "position_suffix",
        ];
        let Some(joined) = set.sequence(&names) else {
            panic!("no sequence");
        };
        assert_eq!(
            joined.name(),
            "position_prefix+num_2+num_10+num_3+position_suffix"
        );
        for codec in crate::media::Codec::ALL {
            let want: usize = names.iter().map(|n| piece(n).frames(codec).len()).sum();
            assert_eq!(joined.frames(codec).len(), want, "{codec:?}");
            assert_eq!(
                joined.frames(codec).first(),
                piece("position_prefix").frames(codec).first()
            );
            assert_eq!(
                joined.frames(codec).last(),
                piece("position_suffix").frames(codec).last()
            );
        }
        assert_eq!(set.queue_position(23), Some(joined));

        // One name is that prompt itself, not a copy.
        let one = set.sequence(&["queue_full"]);
        assert!(one.is_some_and(|p| Arc::ptr_eq(&p, &piece("queue_full"))));
        assert_eq!(set.sequence(&[]), None);
        assert_eq!(set.sequence(&["num_1", "no_such_prompt"]), None);
        assert_eq!(set.sequence(&["no_such_prompt"]), None);

        let wait = set.expected_wait(5).map(|p| p.name().to_owned());
        assert_eq!(wait.as_deref(), Some("wait_prefix+num_5+wait_minutes"));
        // 您前面还有 … 位来电在等待。 lasts a few seconds, not more.
        let ms = set.queue_position(999).map(|p| p.duration().as_millis());
        assert!(ms.is_some_and(|ms| (3000..8000).contains(&ms)), "{ms:?}");
    }

    #[test]
    fn a_directory_adds_and_replaces() {
        let dir = std::env::temp_dir().join(format!("hotline-prompts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).ok();
        let short = wav_bytes(&[1000i16; 800]);
        std::fs::write(dir.join("greeting.wav"), &short).ok();
        std::fs::write(dir.join("press-one.wav"), &short).ok();
        std::fs::write(dir.join("notes.txt"), b"ignored").ok();
        let set = match Prompts::with_dir(&dir) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        assert!(set.get("press-one").is_some());
        assert_eq!(
            set.get("greeting").map(|p| p.duration().as_millis()),
            Some(100)
        );
        assert!(set.get("survey").is_some());
        assert_ne!(set, Prompts::shipped());

        std::fs::write(dir.join("bad name.wav"), &short).ok();
        let err = Prompts::with_dir(&dir).err().map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("bad name")),
            "{err:?}"
        );
        std::fs::remove_file(dir.join("bad name.wav")).ok();
        std::fs::write(dir.join("broken.wav"), b"RIFF").ok();
        let err = Prompts::with_dir(&dir).err().map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("broken.wav")),
            "{err:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A 16-bit 8 kHz mono WAV of `pcm`.
    pub(crate) fn wav_bytes(pcm: &[i16]) -> Vec<u8> {
        let data_len = u32::try_from(pcm.len() * 2).unwrap_or(0);
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + data_len).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&8000u32.to_le_bytes());
        v.extend_from_slice(&16000u32.to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&16u16.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&data_len.to_le_bytes());
        for s in pcm {
            v.extend_from_slice(&s.to_le_bytes());
        }
        v
    }
}
