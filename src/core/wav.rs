//! The little of WAV (RIFF, PCM) the module needs: read a recording's
//! header (channels, rate, length), and write a tone per channel (the
//! sandbox's recordings).

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// What a WAV file's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    pub channels: u16,
    pub sample_rate: u32,
    pub bits_per_sample: u16,
    /// Bytes of sample data (the `data` chunk, as far as the file holds it).
    pub data_bytes: u64,
}

impl WavInfo {
    /// Milliseconds of audio.
    pub fn duration_ms(&self) -> u64 {
        let frame = u64::from(self.channels) * u64::from(self.bits_per_sample / 8);
        let rate = u64::from(self.sample_rate);
        if frame == 0 || rate == 0 {
            return 0;
        }
        self.data_bytes / frame * 1000 / rate
    }
}

/// Reads the header of the WAV file at `path`; `None` when it is not one.
pub fn read_info(path: &Path) -> io::Result<Option<WavInfo>> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut riff = [0u8; 12];
    if f.read_exact(&mut riff).is_err() || &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
        return Ok(None);
    }
    let mut fmt: Option<(u16, u32, u16)> = None;
    let mut pos = 12u64;
    while pos + 8 <= len {
        let mut head = [0u8; 8];
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut head)?;
        let size = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
        let body = pos + 8;
        match &head[0..4] {
            b"fmt " if size >= 16 => {
                let mut b = [0u8; 16];
                f.read_exact(&mut b)?;
                let channels = u16::from_le_bytes([b[2], b[3]]);
                let rate = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
                let bits = u16::from_le_bytes([b[14], b[15]]);
                fmt = Some((channels, rate, bits));
            }
            b"data" => {
                let Some((channels, sample_rate, bits_per_sample)) = fmt else {
                    return Ok(None);
                };
                // A header not yet updated (or a cut file): what is there.
                let data_bytes = size.min(len - body);
                return Ok(Some(WavInfo {
                    channels,
                    sample_rate,
                    bits_per_sample,
                    data_bytes,
                }));
            }
            _ => {}
        }
        pos = body + size + (size & 1);
    }
    Ok(None)
}

/// Writes `ms` of 16-bit PCM at `rate` with one sine tone per channel
/// (`tones_hz[i]` on channel i).
pub fn write_tones(path: &Path, rate: u32, tones_hz: &[f64], ms: u64) -> io::Result<()> {
    let channels = tones_hz.len() as u16;
    let frames = u64::from(rate) * ms / 1000;
    let data = frames * u64::from(channels) * 2;
    let mut w = BufWriter::new(File::create(path)?);
    w.write_all(b"RIFF")?;
    w.write_all(&((36 + data) as u32).to_le_bytes())?;
    w.write_all(b"WAVEfmt ")?;
    w.write_all(&16u32.to_le_bytes())?;
    w.write_all(&1u16.to_le_bytes())?; // PCM
    w.write_all(&channels.to_le_bytes())?;
    w.write_all(&rate.to_le_bytes())?;
    w.write_all(&(rate * u32::from(channels) * 2).to_le_bytes())?;
    w.write_all(&(channels * 2).to_le_bytes())?;
    w.write_all(&16u16.to_le_bytes())?;
    w.write_all(b"data")?;
    w.write_all(&(data as u32).to_le_bytes())?;
    for n in 0..frames {
        let t = n as f64 / f64::from(rate);
        for hz in tones_hz {
            let v = (t * hz * std::f64::consts::TAU).sin() * 8000.0;
            w.write_all(&(v as i16).to_le_bytes())?;
        }
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_wav_reads_back() {
        let p = std::env::temp_dir().join(format!("c2c-wav-{}.wav", uuid::Uuid::new_v4()));
        write_tones(&p, 8000, &[1000.0, 400.0], 1500).unwrap();
        let info = read_info(&p).unwrap().unwrap();
        assert_eq!(
            (info.channels, info.sample_rate, info.bits_per_sample),
            (2, 8000, 16)
        );
        assert_eq!(info.duration_ms(), 1500);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 44 + 8000 * 3 / 2 * 4);
        std::fs::write(&p, b"not a wav at all").unwrap();
        assert_eq!(read_info(&p).unwrap(), None);
        let _ = std::fs::remove_file(&p);
    }
}
