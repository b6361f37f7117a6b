//! ITU-T G.711 A-law (PCMA) and µ-law (PCMU), from our own tables.
//!
//! Linear samples are 16-bit two's complement, the scale of the ITU-T G.191
//! software tools (STL `g711.c`), which is the ITU's own reference
//! implementation of G.711: A-law works on the 13 most significant bits,
//! µ-law on the 14 most significant bits, and a negative sample is made
//! positive by one's complement (`!x`) before quantising, so −1 quantises
//! like 0 and −32 768 like +32 767.
//!
//! # Tables
//!
//! - **Decode**: one 256-entry `i16` table per law, computed at compile time
//!   by `const fn` from the bit layout of G.711 Tables 1a/2a (segment,
//!   step, half-step reconstruction). Generated rather than typed: 512
//!   literal numbers are 512 chances of a typo, the formula is the spec's,
//!   and the exhaustive tests compare every entry with an independent oracle.
//! - **Encode**: a 4,096-entry (A-law) and a 16,384-entry (µ-law) `u8` table
//!   indexed by the sample's 12 (13) most significant bits, computed at
//!   compile time from the segment-search encoder, which is kept as the
//!   specification of the table and checked against it for all 65,536
//!   samples. The table won the measurement (`benches/g711.rs`, 160-sample
//!   frame, medians on a shared 2-core box): 205 ns (A) / 207 ns (µ) against
//!   557 / 536 ns for a leading-zeros segment search; 20 KiB of tables.
//! - **A↔µ transcoding**: two direct 256-entry tables expanded at compile
//!   time from the 128 magnitude rows of G.711 Table 3 (µ→A) and Table 4
//!   (A→µ). These are data, not a formula: the Recommendation chose some
//!   rows for double-conversion behaviour (e.g. µ 48 → A 46, not the A code
//!   whose interval holds the µ value), so `alaw_encode(ulaw_decode(u))`
//!   is *not* the same conversion. Literal rows are the spec's content,
//!   written once and proved against the oracle for all 256 codes each.
//!
//! G.711's optional µ-law all-zero suppression (code `0x00` sent as `0x02`)
//! is not applied: RTP has no ones-density requirement.

/// A-law code of the smallest positive value (+8): what an idle A-law
/// channel carries. Decodes to +8.
pub const ALAW_SILENCE: u8 = 0xD5;

/// µ-law code of zero: what an idle µ-law channel carries. Decodes to 0.
pub const ULAW_SILENCE: u8 = 0xFF;

/// The slices given to a G.711 slice helper have different lengths.
///
/// A caller's mistake, not bad network input: each sample maps to exactly
/// one code, so the two buffers must be the same length (160 for a 20 ms
/// frame at 8 kHz). Nothing is written when this is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "G.711 buffers differ in length: {input} input samples/codes but {output} output slots; \
     one code per sample, so both must be the same length (160 for a 20 ms frame)"
)]
pub struct LengthMismatch {
    /// Length of the input slice.
    pub input: usize,
    /// Length of the output slice.
    pub output: usize,
}

// ---------------------------------------------------------------------------
// Decode tables (const fn from the G.711 bit layout, as G.191 expands them).

/// Linear value of one A-law code: even bits inverted on the line
/// (`^ 0x55`), bit 7 set for positive, 3-bit segment, 4-bit step,
/// reconstructed at the middle of its interval.
const fn alaw_decode_formula(code: u8) -> i16 {
    let ix = (code ^ 0x55) & 0x7F;
    let segment = ix >> 4;
    let mut magnitude = (ix & 0x0F) as i16;
    if segment > 0 {
        magnitude += 16; // the implicit leading one of segments 1..7
    }
    magnitude = (magnitude << 4) + 8; // to 16-bit scale, plus half a step
    if segment > 1 {
        magnitude <<= segment - 1;
    }
    if code & 0x80 != 0 {
        magnitude
    } else {
        -magnitude
    }
}

/// Linear value of one µ-law code: all bits inverted on the line, bit 7 set
/// for positive, value `((2·step + 33) << segment) − 33` in 14-bit units.
const fn ulaw_decode_formula(code: u8) -> i16 {
    let inverted = !code;
    let segment = (inverted >> 4) & 0x07;
    let step = (inverted & 0x0F) as i16;
    let magnitude = ((((step << 1) + 33) << segment) - 33) << 2;
    if code & 0x80 != 0 {
        magnitude
    } else {
        -magnitude
    }
}

/// Which companding law a `const fn` table generator builds.
#[derive(Clone, Copy)]
enum Law {
    A,
    Mu,
}

const fn decode_table(law: Law) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut code = 0usize;
    while code < 256 {
        table[code] = match law {
            Law::A => alaw_decode_formula(code as u8),
            Law::Mu => ulaw_decode_formula(code as u8),
        };
        code += 1;
    }
    table
}

static ALAW_DECODE: [i16; 256] = decode_table(Law::A);
static ULAW_DECODE: [i16; 256] = decode_table(Law::Mu);

// ---------------------------------------------------------------------------
// Encoders by segment search: the specification of the encode tables.

/// A-law code of a 16-bit sample by segment search (G.711 Table 1a,
/// quantised as G.191 does). Kept as the definition the table is built from.
const fn alaw_encode_search(sample: i16) -> u8 {
    // 11-bit magnitude (the 12-bit A-law input without its sign); one's
    // complement for negatives, as G.191: `!x >> 4 == !(x >> 4)`.
    let (magnitude, sign) = if sample >= 0 {
        ((sample >> 4) as u16, 0x80u8)
    } else {
        ((!sample >> 4) as u16, 0x00u8)
    };
    // Shift of the 4 step bits: the position of the leading one above bit 4
    // (segments 0 and 1 share step size 1, so both use shift 0).
    let shift = (15 - (magnitude | 0x10).leading_zeros()) - 4;
    let segment = shift + (magnitude >= 0x10) as u32;
    let step = (magnitude >> shift) & 0x0F;
    ((segment << 4) as u8 | step as u8 | sign) ^ 0x55
}

/// µ-law code of a 16-bit sample by segment search (G.711 Table 2a,
/// quantised as G.191 does). Kept as the definition the table is built from.
const fn ulaw_encode_search(sample: i16) -> u8 {
    // 13-bit magnitude plus the µ-law bias of 33, clamped to the top of
    // segment 7.
    let (magnitude, sign) = if sample >= 0 {
        ((sample >> 2) as u16, 0x80u8)
    } else {
        ((!sample >> 2) as u16, 0x00u8)
    };
    let mut biased = magnitude + 33;
    if biased > 0x1FFF {
        biased = 0x1FFF;
    }
    // biased >= 33, so its leading one is at bit 5 or above: segment 0..7.
    let segment = (15 - biased.leading_zeros()) - 5;
    let step = (biased >> (segment + 1)) & 0x0F;
    ((segment << 4) as u8 | step as u8 | sign) ^ 0x7F
}

// ---------------------------------------------------------------------------
// Encode tables: the code depends only on `sample >> 4` (A) / `sample >> 2`
// (µ), because `!x >> n == !(x >> n)` for the arithmetic shift. The index is
// that value as an unsigned field with its sign bit flipped, so it runs
// 0..N in sample order and the compiler can see it is in bounds.

const ALAW_ENCODE_LEN: usize = 1 << 12;
const ULAW_ENCODE_LEN: usize = 1 << 14;

const fn alaw_index(sample: i16) -> usize {
    (((sample as u16) >> 4) ^ 0x0800) as usize
}

const fn ulaw_index(sample: i16) -> usize {
    (((sample as u16) >> 2) ^ 0x2000) as usize
}

const fn alaw_encode_table() -> [u8; ALAW_ENCODE_LEN] {
    let mut table = [0u8; ALAW_ENCODE_LEN];
    let mut i = 0usize;
    while i < ALAW_ENCODE_LEN {
        // A sample with these top 12 bits: (i - 2048) << 4.
        let sample = ((i as i32 - 2048) << 4) as i16;
        table[i] = alaw_encode_search(sample);
        i += 1;
    }
    table
}

const fn ulaw_encode_table() -> [u8; ULAW_ENCODE_LEN] {
    let mut table = [0u8; ULAW_ENCODE_LEN];
    let mut i = 0usize;
    while i < ULAW_ENCODE_LEN {
        let sample = ((i as i32 - 8192) << 2) as i16;
        table[i] = ulaw_encode_search(sample);
        i += 1;
    }
    table
}

static ALAW_ENCODE: [u8; ALAW_ENCODE_LEN] = alaw_encode_table();
static ULAW_ENCODE: [u8; ULAW_ENCODE_LEN] = ulaw_encode_table();

// ---------------------------------------------------------------------------
// A↔µ transcoding: G.711 (11/88) Tables 3 and 4, magnitude rows.
//
// Row k of each table is the *decoder output value number* of one law
// (counting up from the smallest magnitude; the sign is carried across
// unchanged). Entries are the other law's number in the Recommendation's
// numbering: A-law numbers run 1..128, µ-law numbers 0..127.
//
// Beware copies of these tables "corrected" in 1994 (many `g711.c`
// descendants): they map µ 80 -> A 80 and A 80 -> µ 80, where G.711 has
// µ 80 -> A 81 and A 80 -> µ 79. The Recommendation's own notes decide it:
// after A -> µ -> A "26, 28, 30, 32, 45, 47, 63 and 80 are changed" and
// "only bit 8 is changed"; with the "corrected" rows A 81 would change
// instead, by more than bit 8. `double_conversion_follows_g711_notes`
// checks both notes.

/// G.711 Table 3: µ-law number (index) → A-law number (1..=128).
const G711_TABLE3_ULAW_TO_ALAW: [u8; 128] = [
    1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, //
    9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, //
    25, 27, 29, 31, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, //
    46, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, //
    64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, //
    81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, 96, //
    97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, //
    113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127, 128,
];

/// G.711 Table 4: A-law number − 1 (index) → µ-law number (0..=127).
const G711_TABLE4_ALAW_TO_ULAW: [u8; 128] = [
    1, 3, 5, 7, 9, 11, 13, 15, 16, 17, 18, 19, 20, 21, 22, 23, //
    24, 25, 26, 27, 28, 29, 30, 31, 32, 32, 33, 33, 34, 34, 35, 35, //
    36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 48, 49, 49, //
    50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 64, //
    65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 79, //
    80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, //
    96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, //
    112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127,
];

/// Expand Table 3 to all 256 µ-law codes. A µ-law code's magnitude number
/// is its low 7 bits inverted; an A-law code's is its low 7 bits with the
/// even bits inverted. Bit 7 is the sign in both (set = positive).
const fn ulaw_to_alaw_table() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut code = 0usize;
    while code < 256 {
        let u = code as u8;
        let number = (!u & 0x7F) as usize;
        let a_magnitude = G711_TABLE3_ULAW_TO_ALAW[number] - 1;
        table[code] = (a_magnitude | (u & 0x80)) ^ 0x55;
        code += 1;
    }
    table
}

/// Expand Table 4 to all 256 A-law codes (see [`ulaw_to_alaw_table`]).
const fn alaw_to_ulaw_table() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut code = 0usize;
    while code < 256 {
        let a = code as u8;
        let number = ((a ^ 0x55) & 0x7F) as usize;
        let u_number = G711_TABLE4_ALAW_TO_ULAW[number];
        table[code] = !(u_number | (a & 0x80)) ^ 0x80;
        code += 1;
    }
    table
}

static ULAW_TO_ALAW: [u8; 256] = ulaw_to_alaw_table();
static ALAW_TO_ULAW: [u8; 256] = alaw_to_ulaw_table();

// ---------------------------------------------------------------------------
// Public API.

/// Encode one 16-bit linear sample to A-law (G.711 Table 1a).
#[inline]
#[must_use]
pub fn alaw_encode(sample: i16) -> u8 {
    ALAW_ENCODE[alaw_index(sample)]
}

/// Decode one A-law code to a 16-bit linear sample (the middle of the
/// code's quantisation interval; never 0, the smallest is ±8).
#[inline]
#[must_use]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[code as usize]
}

/// Encode one 16-bit linear sample to µ-law (G.711 Table 2a).
/// Magnitudes beyond the µ-law range (about ±32 635) clip to the end codes.
#[inline]
#[must_use]
pub fn ulaw_encode(sample: i16) -> u8 {
    ULAW_ENCODE[ulaw_index(sample)]
}

/// Decode one µ-law code to a 16-bit linear sample (the middle of the
/// code's quantisation interval; both `0xFF` and `0x7F` decode to 0).
#[inline]
#[must_use]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[code as usize]
}

/// Convert an A-law code to µ-law by G.711 Table 4 (not by decoding and
/// re-encoding, which the Recommendation does not define as the conversion).
#[inline]
#[must_use]
pub fn alaw_to_ulaw(code: u8) -> u8 {
    ALAW_TO_ULAW[code as usize]
}

/// Convert a µ-law code to A-law by G.711 Table 3.
#[inline]
#[must_use]
pub fn ulaw_to_alaw(code: u8) -> u8 {
    ULAW_TO_ALAW[code as usize]
}

fn check_lengths(input: usize, output: usize) -> Result<(), LengthMismatch> {
    if input == output {
        Ok(())
    } else {
        Err(LengthMismatch { input, output })
    }
}

/// Encode linear samples to A-law, one code per sample.
///
/// # Errors
/// [`LengthMismatch`] if `out` is not exactly as long as `pcm`.
pub fn encode_alaw(pcm: &[i16], out: &mut [u8]) -> Result<(), LengthMismatch> {
    check_lengths(pcm.len(), out.len())?;
    for (code, &sample) in out.iter_mut().zip(pcm) {
        *code = alaw_encode(sample);
    }
    Ok(())
}

/// Decode A-law codes to linear samples, one sample per code.
///
/// # Errors
/// [`LengthMismatch`] if `out` is not exactly as long as `codes`.
pub fn decode_alaw(codes: &[u8], out: &mut [i16]) -> Result<(), LengthMismatch> {
    check_lengths(codes.len(), out.len())?;
    for (sample, &code) in out.iter_mut().zip(codes) {
        *sample = alaw_decode(code);
    }
    Ok(())
}

/// Encode linear samples to µ-law, one code per sample.
///
/// # Errors
/// [`LengthMismatch`] if `out` is not exactly as long as `pcm`.
pub fn encode_ulaw(pcm: &[i16], out: &mut [u8]) -> Result<(), LengthMismatch> {
    check_lengths(pcm.len(), out.len())?;
    for (code, &sample) in out.iter_mut().zip(pcm) {
        *code = ulaw_encode(sample);
    }
    Ok(())
}

/// Decode µ-law codes to linear samples, one sample per code.
///
/// # Errors
/// [`LengthMismatch`] if `out` is not exactly as long as `codes`.
pub fn decode_ulaw(codes: &[u8], out: &mut [i16]) -> Result<(), LengthMismatch> {
    check_lengths(codes.len(), out.len())?;
    for (sample, &code) in out.iter_mut().zip(codes) {
        *sample = ulaw_decode(code);
    }
    Ok(())
}

/// Convert A-law codes to µ-law in place (G.711 Table 4), e.g. a PCMA
/// payload relayed to a PCMU leg.
pub fn transcode_alaw_to_ulaw(codes: &mut [u8]) {
    for code in codes {
        *code = alaw_to_ulaw(*code);
    }
}

/// Convert µ-law codes to A-law in place (G.711 Table 3).
pub fn transcode_ulaw_to_alaw(codes: &mut [u8]) {
    for code in codes {
        *code = ulaw_to_alaw(*code);
    }
}

#[cfg(test)]
mod tests {
    //! Exhaustive checks against `audio-codec-algorithms` (an independent
    //! implementation whose own tests compare all 65,536 encodings with
    //! output of the ITU-T G.191 tools), plus properties that hold by the
    //! Recommendation whatever any oracle says.
    use super::*;
    use audio_codec_algorithms as oracle;

    fn all_samples() -> impl Iterator<Item = i16> {
        i16::MIN..=i16::MAX
    }

    fn all_codes() -> impl Iterator<Item = u8> {
        0..=u8::MAX
    }

    #[test]
    fn alaw_decode_equals_oracle_for_all_256_codes() {
        for code in all_codes() {
            assert_eq!(
                alaw_decode(code),
                oracle::decode_alaw(code),
                "A-law code {code:#04x}"
            );
        }
    }

    #[test]
    fn ulaw_decode_equals_oracle_for_all_256_codes() {
        for code in all_codes() {
            assert_eq!(
                ulaw_decode(code),
                oracle::decode_ulaw(code),
                "µ-law code {code:#04x}"
            );
        }
    }

    #[test]
    fn alaw_encode_equals_oracle_for_all_65536_samples() {
        for sample in all_samples() {
            assert_eq!(
                alaw_encode(sample),
                oracle::encode_alaw(sample),
                "sample {sample}"
            );
        }
    }

    #[test]
    fn ulaw_encode_equals_oracle_for_all_65536_samples() {
        for sample in all_samples() {
            assert_eq!(
                ulaw_encode(sample),
                oracle::encode_ulaw(sample),
                "sample {sample}"
            );
        }
    }

    #[test]
    fn transcoding_tables_equal_oracle_for_all_256_codes() {
        for code in all_codes() {
            assert_eq!(
                alaw_to_ulaw(code),
                oracle::convert_alaw_to_ulaw(code),
                "A {code:#04x}"
            );
            assert_eq!(
                ulaw_to_alaw(code),
                oracle::convert_ulaw_to_alaw(code),
                "µ {code:#04x}"
            );
        }
    }

    #[test]
    fn encode_table_equals_segment_search_for_all_samples() {
        for sample in all_samples() {
            assert_eq!(
                alaw_encode(sample),
                alaw_encode_search(sample),
                "A {sample}"
            );
            assert_eq!(
                ulaw_encode(sample),
                ulaw_encode_search(sample),
                "µ {sample}"
            );
        }
    }

    /// Spot values straight from G.191 / G.711, independent of any crate.
    #[test]
    fn reference_points() {
        assert_eq!(alaw_decode(ALAW_SILENCE), 8);
        assert_eq!(ulaw_decode(ULAW_SILENCE), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(alaw_encode(0), ALAW_SILENCE);
        assert_eq!(alaw_encode(-1), 0x55); // one's complement: −1 is "−0"
        assert_eq!(ulaw_encode(0), ULAW_SILENCE);
        assert_eq!(ulaw_encode(-1), 0x7F);
        assert_eq!(alaw_decode(0xAA), 32256); // A-law maximum, +4032 in 13 bits
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(ulaw_decode(0x80), 32124); // µ-law maximum, +8031 in 14 bits
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        // The rows that "corrected" copies of Tables 3 and 4 change.
        assert_eq!(ulaw_to_alaw(0xFF ^ 80), (81 - 1) ^ 0xD5); // µ 80 -> A 81
        assert_eq!(alaw_to_ulaw((80 - 1) ^ 0xD5), 0xFF ^ 79); // A 80 -> µ 79
    }

    /// Decoding then encoding gives the code back: each code's decoded
    /// value lies inside its own interval. (µ-law's "negative zero" 0x7F
    /// decodes to 0 and comes back as 0xFF, the same value.)
    #[test]
    fn code_round_trip_is_identity() {
        for code in all_codes() {
            assert_eq!(alaw_encode(alaw_decode(code)), code, "A {code:#04x}");
            let expected = if code == 0x7F { 0xFF } else { code };
            assert_eq!(ulaw_encode(ulaw_decode(code)), expected, "µ {code:#04x}");
        }
    }

    /// Encoding is monotonic, and the quantisation error of a sample is at
    /// most half the step of its segment (plus the one's-complement offset
    /// of one 16-bit unit for negatives), except µ-law's clipped ends.
    #[test]
    fn quantisation_error_is_within_half_a_step() {
        let mut previous = (i16::MIN, i16::MIN);
        for sample in all_samples() {
            let a = alaw_decode(alaw_encode(sample));
            let u = ulaw_decode(ulaw_encode(sample));
            assert!(
                a >= previous.0 && u >= previous.1,
                "not monotonic at {sample}"
            );
            previous = (a, u);

            let a_step = alaw_step(a);
            assert!(
                (i32::from(sample) - i32::from(a)).abs() <= a_step / 2 + 1,
                "A-law {sample} -> {a} (step {a_step})"
            );
            if (i32::from(sample)).abs() <= 32_635 {
                let u_step = ulaw_step(u);
                assert!(
                    (i32::from(sample) - i32::from(u)).abs() <= u_step / 2 + 1,
                    "µ-law {sample} -> {u} (step {u_step})"
                );
            }
        }
    }

    fn alaw_step(decoded: i16) -> i32 {
        // Segment 0 and 1: 16 (16-bit units); doubling per segment after.
        let m = i32::from(decoded).abs();
        let mut step = 16;
        let mut top = 512;
        while m >= top {
            step *= 2;
            top *= 2;
        }
        step
    }

    fn ulaw_step(decoded: i16) -> i32 {
        // Segment s covers biased 14-bit magnitudes [32 << s, 64 << s) with
        // step 2 << s (in 14-bit units, x4 in 16-bit units).
        let biased = i32::from(decoded).abs() / 4 + 33;
        let mut s = 0;
        while biased >= 64 << s {
            s += 1;
        }
        (2 << s) * 4
    }

    #[test]
    fn decode_is_odd_symmetric() {
        for code in 0x80..=0xFFu8 {
            assert_eq!(alaw_decode(code), -alaw_decode(code & 0x7F));
            assert_eq!(ulaw_decode(code), -ulaw_decode(code & 0x7F));
        }
    }

    /// µ-law number of a µ-law code (0..=127) and A-law number (1..=128)
    /// of an A-law code, as G.711 Tables 1-4 count them.
    fn u_number(code: u8) -> u8 {
        !code & 0x7F
    }
    fn a_number(code: u8) -> u8 {
        ((code ^ 0x55) & 0x7F) + 1
    }

    /// G.711 (11/88) notes to Tables 3 and 4, independent of the oracle:
    /// after µ → A → µ, µ numbers 0, 2, 4, …, 14 come back increased by 1
    /// and every other code is unchanged; after A → µ → A, A numbers
    /// 26, 28, 30, 32, 45, 47, 63 and 80 are changed and every other code
    /// is unchanged. In both, "only bit 8 is changed" (the PCM LSB).
    #[test]
    fn double_conversion_follows_g711_notes() {
        for code in all_codes() {
            let back = alaw_to_ulaw(ulaw_to_alaw(code));
            if [0, 2, 4, 6, 8, 10, 12, 14].contains(&u_number(code)) {
                assert_eq!(u_number(back), u_number(code) + 1, "µ {code:#04x}");
                assert_eq!(back, code ^ 0x01, "µ {code:#04x}: only bit 8 changes");
            } else {
                assert_eq!(back, code, "µ {code:#04x} must survive µ-A-µ");
            }

            let back = ulaw_to_alaw(alaw_to_ulaw(code));
            if [26, 28, 30, 32, 45, 47, 63, 80].contains(&a_number(code)) {
                assert_eq!(back, code ^ 0x01, "A {code:#04x}: only bit 8 changes");
            } else {
                assert_eq!(back, code, "A {code:#04x} must survive A-µ-A");
            }
        }
    }

    #[test]
    fn slice_helpers_match_scalars_and_refuse_mismatched_lengths() {
        let pcm: Vec<i16> = (0..160).map(|i| (i * 409 - 32_000) as i16).collect();
        let mut a = [0u8; 160];
        let mut u = [0u8; 160];
        encode_alaw(&pcm, &mut a).unwrap();
        encode_ulaw(&pcm, &mut u).unwrap();
        for (i, &s) in pcm.iter().enumerate() {
            assert_eq!(a[i], alaw_encode(s));
            assert_eq!(u[i], ulaw_encode(s));
        }
        let mut back = [0i16; 160];
        decode_alaw(&a, &mut back).unwrap();
        assert!(back.iter().zip(&a).all(|(&s, &c)| s == alaw_decode(c)));
        decode_ulaw(&u, &mut back).unwrap();
        assert!(back.iter().zip(&u).all(|(&s, &c)| s == ulaw_decode(c)));

        let mut t = a;
        transcode_alaw_to_ulaw(&mut t);
        assert!(t.iter().zip(&a).all(|(&x, &c)| x == alaw_to_ulaw(c)));
        let mut t = u;
        transcode_ulaw_to_alaw(&mut t);
        assert!(t.iter().zip(&u).all(|(&x, &c)| x == ulaw_to_alaw(c)));

        let mut short = [0u8; 159];
        let err = encode_alaw(&pcm, &mut short).unwrap_err();
        assert_eq!(
            err,
            LengthMismatch {
                input: 160,
                output: 159
            }
        );
        assert!(err
            .to_string()
            .contains("160 input samples/codes but 159 output slots"));
        assert!(encode_ulaw(&pcm, &mut short).is_err());
        let mut long = [0i16; 161];
        assert!(decode_alaw(&a, &mut long).is_err());
        assert!(decode_ulaw(&u, &mut long).is_err());
        assert_eq!(short, [0u8; 159], "nothing written on error");
    }
}
