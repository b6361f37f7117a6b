//! WAV (WIP).
