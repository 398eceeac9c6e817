//! Reading a recording: a 16-bit PCM WAV's channels, and the power of one
//! frequency in them (Goertzel).
#![allow(dead_code)]

use std::path::Path;

/// The 16-bit PCM WAV at `path`: (channels, rate, samples per channel).
pub fn read_wav(path: &Path) -> (u16, u32, Vec<Vec<f64>>) {
    parse_wav(&std::fs::read(path).unwrap())
}

/// A 16-bit PCM WAV's bytes: (channels, rate, samples per channel).
pub fn parse_wav(b: &[u8]) -> (u16, u32, Vec<Vec<f64>>) {
    assert_eq!(&b[0..4], b"RIFF");
    assert_eq!(&b[8..12], b"WAVE");
    let (mut pos, mut fmt) = (12usize, None);
    while pos + 8 <= b.len() {
        let id = &b[pos..pos + 4];
        let size = u32::from_le_bytes(b[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let body = pos + 8;
        if id == b"fmt " {
            let ch = u16::from_le_bytes([b[body + 2], b[body + 3]]);
            let rate = u32::from_le_bytes(b[body + 4..body + 8].try_into().unwrap());
            let bits = u16::from_le_bytes([b[body + 14], b[body + 15]]);
            assert_eq!(bits, 16, "16-bit PCM");
            fmt = Some((ch, rate));
        } else if id == b"data" {
            let (ch, rate) = fmt.expect("fmt before data");
            let data = &b[body..(body + size).min(b.len())];
            let mut chans = vec![Vec::new(); ch as usize];
            for (i, s) in data.chunks_exact(2).enumerate() {
                chans[i % ch as usize].push(f64::from(i16::from_le_bytes([s[0], s[1]])));
            }
            return (ch, rate, chans);
        }
        pos = body + size + (size & 1);
    }
    panic!("no data chunk");
}

/// Power of `hz` in `x` (Goertzel).
pub fn goertzel(x: &[f64], rate: u32, hz: f64) -> f64 {
    let w = std::f64::consts::TAU * hz / f64::from(rate);
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for v in x {
        let s = v + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - c * s1 * s2
}
