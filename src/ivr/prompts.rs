//! The announcements flows may play: the shipped ones (`prompts/*.wav`,
//! compiled in) and, with `[prompts] dir`, a centre's own recordings, added
//! or put in place of a shipped one of the same name.
//!
//! Every prompt is parsed and pre-encoded (PCMA and PCMU) once, when the
//! config loads; a call plays an `Arc` of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::media::wav::{Prompt, WavError};

/// The shipped prompts' bytes, by name (see [`super::PROMPTS`]).
const SHIPPED: [(&str, &[u8]); 7] = [
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
];

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_prompt_loads() {
        let set = Prompts::shipped();
        let mut want: Vec<&str> = super::super::PROMPTS.to_vec();
        want.sort_unstable();
        assert_eq!(set.names(), want);
        for name in want {
            let p = set.get(name).map(|p| p.duration().as_millis());
            assert!(p.is_some_and(|ms| ms > 500), "{name}: {p:?}");
        }
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
