//! Tones (WIP).
