//! WAV parsing for announcements, and [`Prompt`]: an announcement decoded
//! and pre-encoded once at load.
//!
//! Sans-IO: the driver reads the file and passes the bytes to [`parse`] or
//! [`Prompt::from_wav`]. Accepted: RIFF/WAVE with a `fmt ` chunk of
//! 16-bit PCM (format 1), A-law (6) or µ-law (7), plain or wrapped in
//! `WAVE_FORMAT_EXTENSIBLE` (0xFFFE) with the matching sub-format GUID;
//! 8000 Hz; mono. Other chunks (`LIST`, `fact`, `cue `, …) are skipped,
//! odd-sized chunks are followed by their pad byte (RIFF word alignment),
//! and anything past the RIFF size is ignored. Everything else is a
//! [`WavError`] that says what is wrong and what a prompt must be, never a
//! panic.

use std::time::Duration;

use super::{g711, Codec, G711Frame, FRAME_SAMPLES, SAMPLE_RATE};

/// The `sox` command that turns any audio file into an acceptable prompt.
pub const SOX_HINT: &str = "convert with `sox in.wav -r 8000 -c 1 -b 16 out.wav`";

const FORMAT_PCM: u16 = 0x0001;
const FORMAT_ALAW: u16 = 0x0006;
const FORMAT_ULAW: u16 = 0x0007;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// Bytes 4..16 of every `KSDATAFORMAT_SUBTYPE_*` GUID for a WAVE format
/// tag (`{tag-0000-0010-8000-00AA00389B71}`, little-endian fields).
const SUBFORMAT_GUID_TAIL: [u8; 12] = [
    0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

/// How the samples in a WAV file's `data` chunk are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WavEncoding {
    /// Linear PCM, 16-bit signed little-endian.
    Pcm16,
    /// G.711 A-law, one byte per sample.
    Alaw,
    /// G.711 µ-law, one byte per sample.
    Ulaw,
}

/// A parsed WAV file: its encoding and its audio as linear PCM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    /// The encoding the file stored.
    pub encoding: WavEncoding,
    /// The audio as 8 kHz mono linear PCM (G.711 data decoded).
    pub samples: Vec<i16>,
}

/// Why a WAV file cannot be used as a prompt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    /// Fewer bytes than a RIFF/WAVE header.
    #[error(
        "{len} bytes is too short for a WAV file (a RIFF/WAVE header alone is 12 bytes); \
         the file is empty or truncated"
    )]
    TooShort {
        /// Length of the input.
        len: usize,
    },
    /// The first 12 bytes are not `RIFF....WAVE`.
    #[error(
        "not a WAV file: it starts with \"{found}\"; a WAV file starts with \"RIFF\", \
         a size, then \"WAVE\" ({hint})",
        hint = SOX_HINT
    )]
    NotWave {
        /// The first 12 bytes, escaped.
        found: String,
    },
    /// A chunk runs past the end of the file.
    #[error(
        "truncated: the \"{chunk}\" chunk at byte {offset} declares {declared} bytes \
         but only {available} remain; the file was cut short, export it again"
    )]
    Truncated {
        /// The chunk's id, escaped (or "chunk header" for a partial header).
        chunk: String,
        /// Where the chunk header starts.
        offset: usize,
        /// The size the chunk declares.
        declared: u64,
        /// The bytes actually left for it.
        available: usize,
    },
    /// No `fmt ` chunk.
    #[error("no \"fmt \" chunk: a WAV file must say how its audio is encoded ({hint})", hint = SOX_HINT)]
    MissingFmt,
    /// No `data` chunk.
    #[error("no \"data\" chunk: the file holds no audio")]
    MissingData,
    /// The `fmt ` chunk is too small for its format.
    #[error(
        "the \"fmt \" chunk is {len} bytes but must be at least {needed} \
         (16, or 40 for WAVE_FORMAT_EXTENSIBLE); the header is corrupt"
    )]
    FmtTooShort {
        /// Its length.
        len: usize,
        /// The least it must be.
        needed: usize,
    },
    /// A format tag other than PCM, A-law or µ-law.
    #[error(
        "format tag {tag:#06x} ({name}): prompts must be 16-bit PCM (1), A-law (6) or µ-law (7); \
         {hint}",
        name = format_name(*tag),
        hint = SOX_HINT
    )]
    UnsupportedFormat {
        /// The format tag (from the sub-format GUID for EXTENSIBLE).
        tag: u16,
    },
    /// `WAVE_FORMAT_EXTENSIBLE` with a sub-format GUID that is not a WAVE
    /// format tag GUID.
    #[error(
        "WAVE_FORMAT_EXTENSIBLE sub-format {{{guid}}} is not a PCM, A-law or µ-law GUID \
         ({{0000000X-0000-0010-8000-00AA00389B71}}); {hint}",
        hint = SOX_HINT
    )]
    UnsupportedSubFormat {
        /// The GUID as hex bytes.
        guid: String,
    },
    /// Not 8000 Hz.
    #[error("sample rate {rate} Hz: prompts must be 8000 Hz mono; {hint}", hint = SOX_HINT)]
    SampleRate {
        /// The file's rate.
        rate: u32,
    },
    /// Not mono.
    #[error("{channels} channels: prompts must be 8000 Hz mono; {hint}", hint = SOX_HINT)]
    Channels {
        /// The file's channel count.
        channels: u16,
    },
    /// A sample size that does not fit the encoding.
    #[error(
        "{bits}-bit {encoding}: prompts must be 16-bit PCM or 8-bit A-law/µ-law; {hint}",
        hint = SOX_HINT
    )]
    BitsPerSample {
        /// "PCM", "A-law" or "µ-law".
        encoding: &'static str,
        /// The file's bits per sample.
        bits: u16,
    },
    /// `nBlockAlign` disagrees with mono samples of that size.
    #[error(
        "block align {found} bytes, but mono {bits}-bit audio has {expected}; \
         the header is inconsistent, export the file again"
    )]
    BlockAlign {
        /// The file's block align.
        found: u16,
        /// What it must be.
        expected: u16,
        /// The file's bits per sample.
        bits: u16,
    },
    /// The `data` chunk ends in the middle of a sample.
    #[error(
        "the \"data\" chunk is {len} bytes, not a whole number of {block}-byte samples; \
         the file is truncated or corrupt"
    )]
    PartialSample {
        /// The data chunk's length.
        len: usize,
        /// Bytes per sample.
        block: usize,
    },
    /// The `data` chunk holds no samples.
    #[error("the \"data\" chunk is empty: a prompt needs audio")]
    Empty,
}

fn format_name(tag: u16) -> &'static str {
    match tag {
        0x0001 => "PCM",
        0x0002 => "Microsoft ADPCM",
        0x0003 => "IEEE float",
        0x0006 => "A-law",
        0x0007 => "µ-law",
        0x0011 => "IMA ADPCM",
        0x0031 => "GSM 6.10",
        0x0055 => "MPEG layer 3",
        0xFFFE => "extensible",
        _ => "unknown",
    }
}

fn escaped(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at + 2)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Parse WAV bytes into linear PCM.
///
/// # Errors
/// A [`WavError`] naming the problem and what a prompt must be.
pub fn parse(bytes: &[u8]) -> Result<Wav, WavError> {
    if bytes.len() < 12 {
        return Err(WavError::TooShort { len: bytes.len() });
    }
    if &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWave {
            found: escaped(&bytes[0..12]),
        });
    }
    // Honour a RIFF size smaller than the file (trailing bytes, e.g. an
    // appended tag, are not ours); a larger one means truncation, which the
    // chunk that runs out reports.
    let riff_size = u32_at(bytes, 4).map_or(0, |n| n as usize);
    let limit = bytes.len().min(riff_size.saturating_add(8));

    let mut fmt: Option<&[u8]> = None;
    let mut data: Option<&[u8]> = None;
    let mut pos = 12;
    while pos < limit {
        let remaining = limit - pos;
        if remaining < 8 {
            if fmt.is_some() && data.is_some() {
                break; // a stray pad byte or junk after the audio
            }
            return Err(WavError::Truncated {
                chunk: "chunk header".to_owned(),
                offset: pos,
                declared: 8,
                available: remaining,
            });
        }
        let id = &bytes[pos..pos + 4];
        let size = u32_at(bytes, pos + 4).map_or(0, |n| n as usize);
        let body_start = pos + 8;
        let available = limit - body_start;
        if size > available {
            return Err(WavError::Truncated {
                chunk: escaped(id),
                offset: pos,
                declared: size as u64,
                available,
            });
        }
        let body = &bytes[body_start..body_start + size];
        match id {
            b"fmt " if fmt.is_none() => fmt = Some(body),
            b"data" if data.is_none() => data = Some(body),
            _ => {} // LIST, fact, cue, bext, JUNK, … and repeats: not ours
        }
        // Chunks are word-aligned: an odd size is followed by a pad byte
        // (which may be missing at the very end of a file).
        pos = body_start + size + (size & 1);
    }

    let fmt = fmt.ok_or(WavError::MissingFmt)?;
    let data = data.ok_or(WavError::MissingData)?;
    let encoding = parse_fmt(fmt)?;

    let samples: Vec<i16> = match encoding {
        WavEncoding::Pcm16 => {
            if data.len() % 2 != 0 {
                return Err(WavError::PartialSample {
                    len: data.len(),
                    block: 2,
                });
            }
            data.chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect()
        }
        WavEncoding::Alaw => data.iter().map(|&c| g711::alaw_decode(c)).collect(),
        WavEncoding::Ulaw => data.iter().map(|&c| g711::ulaw_decode(c)).collect(),
    };
    if samples.is_empty() {
        return Err(WavError::Empty);
    }
    Ok(Wav { encoding, samples })
}

/// Check a `fmt ` chunk body and say how the data is encoded.
fn parse_fmt(fmt: &[u8]) -> Result<WavEncoding, WavError> {
    let short = |needed: usize| WavError::FmtTooShort {
        len: fmt.len(),
        needed,
    };
    let field16 = |at| u16_at(fmt, at).ok_or_else(|| short(16));
    let mut tag = field16(0)?;
    let channels = field16(2)?;
    let rate = u32_at(fmt, 4).ok_or_else(|| short(16))?;
    let block_align = field16(12)?;
    let bits = field16(14)?;

    if tag == FORMAT_EXTENSIBLE {
        // cbSize(2) validBits(2) channelMask(4) SubFormat GUID(16) from 16.
        let guid = fmt.get(24..40).ok_or_else(|| short(40))?;
        let sub_tag = u32_at(guid, 0).unwrap_or(u32::MAX);
        match u16::try_from(sub_tag) {
            Ok(sub) if guid[4..] == SUBFORMAT_GUID_TAIL => tag = sub,
            _ => {
                return Err(WavError::UnsupportedSubFormat {
                    guid: guid.iter().map(|b| format!("{b:02x}")).collect(),
                });
            }
        }
    }

    let (encoding, name, want_bits) = match tag {
        FORMAT_PCM => (WavEncoding::Pcm16, "PCM", 16),
        FORMAT_ALAW => (WavEncoding::Alaw, "A-law", 8),
        FORMAT_ULAW => (WavEncoding::Ulaw, "µ-law", 8),
        other => return Err(WavError::UnsupportedFormat { tag: other }),
    };
    if channels != 1 {
        return Err(WavError::Channels { channels });
    }
    if rate != SAMPLE_RATE {
        return Err(WavError::SampleRate { rate });
    }
    if bits != want_bits {
        return Err(WavError::BitsPerSample {
            encoding: name,
            bits,
        });
    }
    let expected = want_bits / 8;
    if block_align != expected {
        return Err(WavError::BlockAlign {
            found: block_align,
            expected,
            bits,
        });
    }
    Ok(encoding)
}

/// An announcement ready to play: linear PCM plus 20 ms frames pre-encoded
/// once for each [`Codec`], the last frame padded with the codec's silence.
///
/// Playing it is an index into [`Prompt::frames`] per shard tick; nothing is
/// encoded per call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    name: String,
    pcm: Vec<i16>,
    pcma: Vec<G711Frame>,
    pcmu: Vec<G711Frame>,
}

impl Prompt {
    /// Build a prompt from 8 kHz mono linear PCM, encoding each law from it.
    #[must_use]
    pub fn from_pcm(name: impl Into<String>, pcm: Vec<i16>) -> Self {
        let pcma = frames_of(&pcm, Codec::Pcma, g711::alaw_encode);
        let pcmu = frames_of(&pcm, Codec::Pcmu, g711::ulaw_encode);
        Prompt {
            name: name.into(),
            pcm,
            pcma,
            pcmu,
        }
    }

    /// Parse a WAV file and build a prompt from it.
    ///
    /// A G.711 file keeps its own codes for its own law (re-encoding a
    /// decoded code gives the code back) and is converted to the other law
    /// by the G.711 tables ([`g711::alaw_to_ulaw`] / [`g711::ulaw_to_alaw`]),
    /// not by decoding and re-encoding.
    ///
    /// # Errors
    /// Any [`WavError`] from [`parse`].
    pub fn from_wav(name: impl Into<String>, bytes: &[u8]) -> Result<Self, WavError> {
        let wav = parse(bytes)?;
        let pcm = wav.samples;
        let (pcma, pcmu) = match wav.encoding {
            WavEncoding::Pcm16 => {
                return Ok(Prompt::from_pcm(name, pcm));
            }
            WavEncoding::Alaw => (
                frames_of(&pcm, Codec::Pcma, g711::alaw_encode),
                frames_of(&pcm, Codec::Pcmu, |s| {
                    g711::alaw_to_ulaw(g711::alaw_encode(s))
                }),
            ),
            WavEncoding::Ulaw => (
                frames_of(&pcm, Codec::Pcma, |s| {
                    g711::ulaw_to_alaw(g711::ulaw_encode(s))
                }),
                frames_of(&pcm, Codec::Pcmu, g711::ulaw_encode),
            ),
        };
        Ok(Prompt {
            name: name.into(),
            pcm,
            pcma,
            pcmu,
        })
    }

    /// One prompt that plays `parts` back to back, named `"a+b+…"` after
    /// them: how an announcement is put together from pieces ("您前面还有"
    /// + 二 十 三 + "位来电在等待。").
    ///
    /// The parts' frames are copied as they are, for both codecs: nothing
    /// is decoded or encoded again, so each part sounds exactly as it does
    /// alone (a G.711 file keeps its own codes). Each part but the last
    /// therefore still ends with its own last frame, padded with silence:
    /// 0–20 ms of silence between parts, which the PCM carries too (zeros,
    /// the linear form of each codec's silence), so that [`Prompt::pcm`] is
    /// what the frames play and [`Prompt::duration`] is the parts' durations,
    /// each but the last rounded up to whole 20 ms frames. No parts give an
    /// empty prompt (no frames, zero duration).
    ///
    /// Four allocations, each sized up front: the name, the PCM and one
    /// frame vector per codec.
    #[must_use]
    pub fn concat(parts: &[&Prompt]) -> Prompt {
        let frames: usize = parts.iter().map(|p| p.pcma.len()).sum();
        let name_len: usize = parts.iter().map(|p| p.name.len() + 1).sum();
        let mut name = String::with_capacity(name_len.saturating_sub(1));
        let mut pcm = Vec::with_capacity(frames * FRAME_SAMPLES);
        let mut pcma = Vec::with_capacity(frames);
        let mut pcmu = Vec::with_capacity(frames);
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                name.push('+');
                // Pad the previous part to its last frame's end.
                pcm.resize(pcm.len().next_multiple_of(FRAME_SAMPLES), 0);
            }
            name.push_str(&part.name);
            pcm.extend_from_slice(&part.pcm);
            pcma.extend_from_slice(&part.pcma);
            pcmu.extend_from_slice(&part.pcmu);
        }
        Prompt {
            name,
            pcm,
            pcma,
            pcmu,
        }
    }

    /// The prompt's name (e.g. `greeting`).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Length of the audio itself (not rounded up to whole frames).
    #[must_use]
    pub fn duration(&self) -> Duration {
        // 125 µs per sample at 8 kHz.
        Duration::from_micros(self.pcm.len() as u64 * 125)
    }

    /// The audio as linear PCM.
    #[must_use]
    pub fn pcm(&self) -> &[i16] {
        &self.pcm
    }

    /// The audio as 20 ms G.711 frames in `codec`, ready as RTP payloads.
    #[must_use]
    pub fn frames(&self, codec: Codec) -> &[G711Frame] {
        match codec {
            Codec::Pcma => &self.pcma,
            Codec::Pcmu => &self.pcmu,
        }
    }
}

/// Encode `pcm` into whole frames, padding the last with `codec`'s silence.
fn frames_of(pcm: &[i16], codec: Codec, encode: impl Fn(i16) -> u8) -> Vec<G711Frame> {
    pcm.chunks(FRAME_SAMPLES)
        .map(|chunk| {
            let mut frame = [codec.silence(); FRAME_SAMPLES];
            for (code, &sample) in frame.iter_mut().zip(chunk) {
                *code = encode(sample);
            }
            frame
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `fmt ` body: tag, channels, rate, bits (block align and byte rate
    /// derived, as a well-formed file has them).
    fn fmt(tag: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
        let align = channels * bits / 8;
        let mut b = Vec::new();
        b.extend_from_slice(&tag.to_le_bytes());
        b.extend_from_slice(&channels.to_le_bytes());
        b.extend_from_slice(&rate.to_le_bytes());
        b.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
        b.extend_from_slice(&align.to_le_bytes());
        b.extend_from_slice(&bits.to_le_bytes());
        b
    }

    /// A WAVE_FORMAT_EXTENSIBLE `fmt ` body wrapping `sub` (a format tag).
    fn fmt_extensible(sub: u16, bits: u16) -> Vec<u8> {
        let mut b = fmt(FORMAT_EXTENSIBLE, 1, 8000, bits);
        b.extend_from_slice(&22u16.to_le_bytes()); // cbSize
        b.extend_from_slice(&bits.to_le_bytes()); // valid bits
        b.extend_from_slice(&4u32.to_le_bytes()); // SPEAKER_FRONT_CENTER
        b.extend_from_slice(&u32::from(sub).to_le_bytes());
        b.extend_from_slice(&SUBFORMAT_GUID_TAIL);
        b
    }

    fn chunk(id: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = id.to_vec();
        b.extend_from_slice(&(body.len() as u32).to_le_bytes());
        b.extend_from_slice(body);
        if body.len() % 2 == 1 {
            b.push(0); // pad byte
        }
        b
    }

    fn riff(chunks: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = chunks.concat();
        let mut b = b"RIFF".to_vec();
        b.extend_from_slice(&(body.len() as u32 + 4).to_le_bytes());
        b.extend_from_slice(b"WAVE");
        b.extend_from_slice(&body);
        b
    }

    fn pcm_bytes(samples: &[i16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    fn ramp_samples(n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| ((i as i32 * 997) % 60_000 - 30_000) as i16)
            .collect()
    }

    fn pcm_wav(samples: &[i16]) -> Vec<u8> {
        riff(&[
            chunk(b"fmt ", &fmt(1, 1, 8000, 16)),
            chunk(b"data", &pcm_bytes(samples)),
        ])
    }

    #[test]
    fn pcm16_parses_to_its_samples() {
        let samples = ramp_samples(500);
        let wav = parse(&pcm_wav(&samples)).unwrap();
        assert_eq!(wav.encoding, WavEncoding::Pcm16);
        assert_eq!(wav.samples, samples);
    }

    #[test]
    fn alaw_and_ulaw_decode_through_g711() {
        let codes: Vec<u8> = (0..=255).collect();
        let a = parse(&riff(&[
            chunk(b"fmt ", &fmt(6, 1, 8000, 8)),
            chunk(b"data", &codes),
        ]))
        .unwrap();
        assert_eq!(a.encoding, WavEncoding::Alaw);
        assert_eq!(
            a.samples,
            codes
                .iter()
                .map(|&c| g711::alaw_decode(c))
                .collect::<Vec<_>>()
        );
        let u = parse(&riff(&[
            chunk(b"fmt ", &fmt(7, 1, 8000, 8)),
            chunk(b"data", &codes),
        ]))
        .unwrap();
        assert_eq!(u.encoding, WavEncoding::Ulaw);
        assert_eq!(
            u.samples,
            codes
                .iter()
                .map(|&c| g711::ulaw_decode(c))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn extensible_wrapping_each_format_parses() {
        let samples = ramp_samples(160);
        let p = parse(&riff(&[
            chunk(b"fmt ", &fmt_extensible(1, 16)),
            chunk(b"data", &pcm_bytes(&samples)),
        ]))
        .unwrap();
        assert_eq!((p.encoding, p.samples), (WavEncoding::Pcm16, samples));
        for (sub, enc) in [(6, WavEncoding::Alaw), (7, WavEncoding::Ulaw)] {
            let w = parse(&riff(&[
                chunk(b"fmt ", &fmt_extensible(sub, 8)),
                chunk(b"data", &[1, 2]),
            ]))
            .unwrap();
            assert_eq!(w.encoding, enc);
            assert_eq!(w.samples.len(), 2);
        }
    }

    #[test]
    fn extensible_with_a_foreign_guid_or_short_fmt_is_refused() {
        let mut f = fmt_extensible(1, 16);
        f[30] = 0x11; // not the WAVE tag GUID tail
        let err = parse(&riff(&[chunk(b"fmt ", &f), chunk(b"data", &[0, 0])])).unwrap_err();
        assert!(
            matches!(err, WavError::UnsupportedSubFormat { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("sox"), "{err}");

        let float = fmt_extensible(3, 16);
        let err = parse(&riff(&[chunk(b"fmt ", &float), chunk(b"data", &[0, 0])])).unwrap_err();
        assert_eq!(err, WavError::UnsupportedFormat { tag: 3 });

        let short = &fmt_extensible(1, 16)[..30];
        let err = parse(&riff(&[chunk(b"fmt ", short), chunk(b"data", &[0, 0])])).unwrap_err();
        assert_eq!(
            err,
            WavError::FmtTooShort {
                len: 30,
                needed: 40
            }
        );
    }

    #[test]
    fn unknown_chunks_are_skipped_with_odd_size_padding() {
        let samples = ramp_samples(321);
        let bytes = riff(&[
            chunk(b"LIST", b"INFOISFT\x05\x00\x00\x00sox!\x00"), // odd: 17 bytes + pad
            chunk(b"fmt ", &fmt(1, 1, 8000, 16)),
            chunk(b"fact", &321u32.to_le_bytes()),
            chunk(b"junk", b"abc"), // odd again, before data
            chunk(b"data", &pcm_bytes(&samples)),
            chunk(b"cue ", &[0; 4]),
        ]);
        assert_eq!(parse(&bytes).unwrap().samples, samples);
    }

    #[test]
    fn data_before_fmt_and_a_missing_final_pad_byte_are_accepted() {
        let codes = [0xD5u8, 0x55, 0x2A]; // odd-sized data, last chunk
                                          // Drop data's pad byte at the end of the file.
        let mut bytes = riff(&[chunk(b"fmt ", &fmt(6, 1, 8000, 8)), chunk(b"data", &codes)]);
        bytes.pop();
        let riff_size = (bytes.len() - 8) as u32;
        bytes[4..8].copy_from_slice(&riff_size.to_le_bytes());
        assert_eq!(parse(&bytes).unwrap().samples.len(), 3);
        let reordered = riff(&[chunk(b"data", &codes), chunk(b"fmt ", &fmt(6, 1, 8000, 8))]);
        assert_eq!(parse(&reordered).unwrap().samples.len(), 3);
    }

    #[test]
    fn bytes_past_the_riff_size_are_ignored() {
        let samples = ramp_samples(10);
        let mut bytes = pcm_wav(&samples);
        bytes.extend_from_slice(b"TAG+garbage that is not a chunk");
        assert_eq!(parse(&bytes).unwrap().samples, samples);
    }

    #[test]
    fn truncated_files_say_so() {
        let bytes = pcm_wav(&ramp_samples(100));
        let cut = &bytes[..bytes.len() - 10];
        let err = parse(cut).unwrap_err();
        assert_eq!(
            err,
            WavError::Truncated {
                chunk: "data".into(),
                offset: 36,
                declared: 200,
                available: 190
            }
        );
        assert!(err.to_string().contains("cut short"), "{err}");

        let err = parse(&bytes[..40]).unwrap_err(); // inside the data header
        assert!(matches!(err, WavError::Truncated { ref chunk, .. } if chunk == "chunk header"));
        assert_eq!(
            parse(&bytes[..7]).unwrap_err(),
            WavError::TooShort { len: 7 }
        );
        assert!(matches!(
            parse(&bytes[..20]).unwrap_err(),
            WavError::Truncated { .. }
        ));
    }

    #[test]
    fn every_prefix_and_many_corruptions_give_errors_not_panics() {
        let bytes = riff(&[
            chunk(b"LIST", b"odd"),
            chunk(b"fmt ", &fmt_extensible(1, 16)),
            chunk(b"data", &pcm_bytes(&ramp_samples(40))),
        ]);
        for len in 0..bytes.len() {
            assert!(
                parse(&bytes[..len]).is_err(),
                "prefix of {len} bytes parsed"
            );
        }
        // Deterministic corruption: every byte of the header region set to
        // a few hostile values.
        for at in 0..80.min(bytes.len()) {
            for v in [0x00, 0x01, 0x7F, 0x80, 0xFF] {
                let mut b = bytes.clone();
                b[at] = v;
                let _ = parse(&b); // must return, Ok or Err
            }
        }
    }

    #[test]
    fn not_riff_or_not_wave_is_refused() {
        let err = parse(b"ID3\x04\x00\x00\x00\x00\x00\x00\x00\x00mp3...").unwrap_err();
        assert!(matches!(err, WavError::NotWave { .. }));
        assert!(err.to_string().contains("starts with \"ID3"), "{err}");
        let mut avi = pcm_wav(&[0; 4]);
        avi[8..12].copy_from_slice(b"AVI ");
        assert!(matches!(parse(&avi).unwrap_err(), WavError::NotWave { .. }));
    }

    fn with_fmt(f: Vec<u8>, data: &[u8]) -> Result<Wav, WavError> {
        parse(&riff(&[chunk(b"fmt ", &f), chunk(b"data", data)]))
    }

    #[test]
    fn wrong_rate_channels_bits_and_formats_name_the_requirement() {
        let err = with_fmt(fmt(1, 1, 16_000, 16), &[0; 4]).unwrap_err();
        assert_eq!(err, WavError::SampleRate { rate: 16_000 });
        assert_eq!(
            err.to_string(),
            "sample rate 16000 Hz: prompts must be 8000 Hz mono; \
             convert with `sox in.wav -r 8000 -c 1 -b 16 out.wav`"
        );
        let err = with_fmt(fmt(1, 2, 8000, 16), &[0; 4]).unwrap_err();
        assert_eq!(err, WavError::Channels { channels: 2 });
        assert!(err
            .to_string()
            .starts_with("2 channels: prompts must be 8000 Hz mono"));

        let err = with_fmt(fmt(1, 1, 8000, 8), &[0; 4]).unwrap_err();
        assert_eq!(
            err,
            WavError::BitsPerSample {
                encoding: "PCM",
                bits: 8
            }
        );
        let err = with_fmt(fmt(6, 1, 8000, 16), &[0; 4]).unwrap_err();
        assert_eq!(
            err,
            WavError::BitsPerSample {
                encoding: "A-law",
                bits: 16
            }
        );
        let err = with_fmt(fmt(7, 1, 8000, 16), &[0; 4]).unwrap_err();
        assert_eq!(
            err,
            WavError::BitsPerSample {
                encoding: "µ-law",
                bits: 16
            }
        );

        let err = with_fmt(fmt(3, 1, 8000, 32), &[0; 4]).unwrap_err();
        assert_eq!(err, WavError::UnsupportedFormat { tag: 3 });
        assert!(err.to_string().contains("0x0003 (IEEE float)"), "{err}");
        let err = with_fmt(fmt(0x11, 1, 8000, 4), &[0; 4]).unwrap_err();
        assert!(err.to_string().contains("IMA ADPCM"), "{err}");

        let mut f = fmt(1, 1, 8000, 16);
        f[12] = 4; // block align 4 for mono 16-bit
        assert_eq!(
            with_fmt(f, &[0; 4]).unwrap_err(),
            WavError::BlockAlign {
                found: 4,
                expected: 2,
                bits: 16
            }
        );
        assert_eq!(
            with_fmt(fmt(1, 1, 8000, 16)[..14].to_vec(), &[0; 4]).unwrap_err(),
            WavError::FmtTooShort {
                len: 14,
                needed: 16
            }
        );
    }

    #[test]
    fn missing_chunks_partial_samples_and_empty_data_are_refused() {
        let only_fmt = riff(&[chunk(b"fmt ", &fmt(1, 1, 8000, 16))]);
        assert_eq!(parse(&only_fmt).unwrap_err(), WavError::MissingData);
        let only_data = riff(&[chunk(b"data", &[0; 4])]);
        assert_eq!(parse(&only_data).unwrap_err(), WavError::MissingFmt);
        assert_eq!(
            with_fmt(fmt(1, 1, 8000, 16), &[0; 5]).unwrap_err(),
            WavError::PartialSample { len: 5, block: 2 }
        );
        assert_eq!(
            with_fmt(fmt(1, 1, 8000, 16), &[]).unwrap_err(),
            WavError::Empty
        );
        assert_eq!(
            with_fmt(fmt(6, 1, 8000, 8), &[]).unwrap_err(),
            WavError::Empty
        );
    }

    #[test]
    fn prompt_frames_are_pre_encoded_and_the_last_is_padded_with_silence() {
        let samples = ramp_samples(FRAME_SAMPLES * 2 + 1);
        let prompt = Prompt::from_wav("greeting", &pcm_wav(&samples)).unwrap();
        assert_eq!(prompt.name(), "greeting");
        assert_eq!(prompt.pcm(), &samples[..]);
        assert_eq!(prompt.duration(), Duration::from_micros(321 * 125));
        for codec in Codec::ALL {
            let frames = prompt.frames(codec);
            assert_eq!(frames.len(), 3, "{codec:?}");
            for (i, &s) in samples.iter().enumerate() {
                assert_eq!(
                    frames[i / FRAME_SAMPLES][i % FRAME_SAMPLES],
                    codec.encode_sample(s)
                );
            }
            assert!(
                frames[2][1..].iter().all(|&c| c == codec.silence()),
                "{codec:?} pad"
            );
        }
    }

    #[test]
    fn g711_prompts_keep_their_codes_and_transcode_by_the_tables() {
        let codes: Vec<u8> = (0..=255u8).cycle().take(400).collect();
        let a = Prompt::from_wav(
            "a",
            &riff(&[chunk(b"fmt ", &fmt(6, 1, 8000, 8)), chunk(b"data", &codes)]),
        )
        .unwrap();
        let a_out: Vec<u8> = a.frames(Codec::Pcma).iter().flatten().copied().collect();
        assert_eq!(&a_out[..400], &codes[..]);
        let u_out: Vec<u8> = a.frames(Codec::Pcmu).iter().flatten().copied().collect();
        let want: Vec<u8> = codes.iter().map(|&c| g711::alaw_to_ulaw(c)).collect();
        assert_eq!(&u_out[..400], &want[..]);
        assert!(u_out[400..].iter().all(|&c| c == g711::ULAW_SILENCE));

        let u = Prompt::from_wav(
            "u",
            &riff(&[chunk(b"fmt ", &fmt(7, 1, 8000, 8)), chunk(b"data", &codes)]),
        )
        .unwrap();
        let u_out: Vec<u8> = u.frames(Codec::Pcmu).iter().flatten().copied().collect();
        // µ-law's negative zero (0x7F) comes back as positive zero (0xFF).
        let want: Vec<u8> = codes
            .iter()
            .map(|&c| if c == 0x7F { 0xFF } else { c })
            .collect();
        assert_eq!(&u_out[..400], &want[..]);
        let a_out: Vec<u8> = u.frames(Codec::Pcma).iter().flatten().copied().collect();
        let want: Vec<u8> = want.iter().map(|&c| g711::ulaw_to_alaw(c)).collect();
        assert_eq!(&a_out[..400], &want[..]);
        assert_eq!(g711::ulaw_to_alaw(0x7F), g711::ulaw_to_alaw(0xFF) ^ 0x80);
    }

    #[test]
    fn concat_copies_each_parts_frames_and_pads_the_pcm_between_them() {
        let a = Prompt::from_pcm("a", ramp_samples(FRAME_SAMPLES * 2 + 1));
        let b = Prompt::from_pcm("b", vec![1000; FRAME_SAMPLES]);
        let codes: Vec<u8> = (0..=255u8).cycle().take(FRAME_SAMPLES + 7).collect();
        let c = Prompt::from_wav(
            "c",
            &riff(&[chunk(b"fmt ", &fmt(7, 1, 8000, 8)), chunk(b"data", &codes)]),
        )
        .unwrap();
        let joined = Prompt::concat(&[&a, &b, &c]);
        assert_eq!(joined.name(), "a+b+c");
        for codec in Codec::ALL {
            let frames = joined.frames(codec);
            assert_eq!(frames.len(), 3 + 1 + 2, "{codec:?}");
            let want: Vec<G711Frame> = [&a, &b, &c]
                .iter()
                .flat_map(|p| p.frames(codec).iter().copied())
                .collect();
            assert_eq!(frames, &want[..], "{codec:?}");
        }
        // The µ-law file's own codes survive (no decode and re-encode).
        assert_eq!(joined.frames(Codec::Pcmu)[4], c.frames(Codec::Pcmu)[0]);

        // a is padded to 3 frames, b fills its one, c is as long as it is.
        let pcm = joined.pcm();
        assert_eq!(
            pcm.len(),
            3 * FRAME_SAMPLES + FRAME_SAMPLES + FRAME_SAMPLES + 7
        );
        assert_eq!(&pcm[..a.pcm().len()], a.pcm());
        assert!(pcm[a.pcm().len()..3 * FRAME_SAMPLES]
            .iter()
            .all(|&s| s == 0));
        assert_eq!(&pcm[3 * FRAME_SAMPLES..4 * FRAME_SAMPLES], b.pcm());
        assert_eq!(&pcm[4 * FRAME_SAMPLES..], c.pcm());
        assert_eq!(
            joined.duration(),
            Duration::from_millis(60 + 20) + c.duration()
        );
        assert_eq!(
            joined.frames(Codec::Pcma).len(),
            pcm.len().div_ceil(FRAME_SAMPLES)
        );

        // Joined prompts join again the same way.
        let twice = Prompt::concat(&[&joined, &a]);
        assert_eq!(twice.name(), "a+b+c+a");
        assert_eq!(twice.frames(Codec::Pcma).len(), 6 + 3);
        assert_eq!(twice.pcm().len(), 6 * FRAME_SAMPLES + a.pcm().len());
    }

    #[test]
    fn concat_of_one_part_is_that_part_and_of_none_is_empty() {
        let a = Prompt::from_pcm("a", ramp_samples(FRAME_SAMPLES + 1));
        assert_eq!(Prompt::concat(&[&a]), a);

        let empty = Prompt::concat(&[]);
        assert_eq!(empty.name(), "");
        assert!(empty.pcm().is_empty());
        assert_eq!(empty.duration(), Duration::ZERO);
        for codec in Codec::ALL {
            assert!(empty.frames(codec).is_empty(), "{codec:?}");
        }
        // An empty part adds nothing but its name.
        let with_empty = Prompt::concat(&[&empty, &a, &empty]);
        assert_eq!(with_empty.name(), "+a+");
        assert_eq!(with_empty.frames(Codec::Pcmu), a.frames(Codec::Pcmu));
        assert_eq!(with_empty.pcm().len(), 2 * FRAME_SAMPLES);
    }
}
