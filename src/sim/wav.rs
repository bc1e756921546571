//! Reading and writing WAV files, so the demo, `voxbridge call` and the load generator can play
//! recorded speech into a call and save what came back.
//!
//! The reader takes what audio tools actually write: PCM of 8 (unsigned), 16, 24 or 32 bits,
//! IEEE float of 32 or 64 bits, G.711 μ-law, and `WAVE_FORMAT_EXTENSIBLE` wrapping any of
//! those. It skips chunks it does not need (`LIST`, `fact`, `cue `, ...), honours the pad byte
//! after odd-sized chunks, and treats a data size of 0 or `0xFFFFFFFF` (what streaming writers
//! leave behind) as "to the end of the file". Every format comes out as 16-bit samples, mono
//! (channels mixed down by averaging), at the file's own rate: rate conversion is the
//! resampler's job, not this module's.
//!
//! The writer produces the plainest file there is: 16-bit mono PCM with a 44-byte header.

use std::path::Path;

use crate::audio::mulaw;

/// `WAVE_FORMAT_PCM`.
const FORMAT_PCM: u16 = 1;
/// `WAVE_FORMAT_IEEE_FLOAT`.
const FORMAT_FLOAT: u16 = 3;
/// `WAVE_FORMAT_ALAW`; named only to give a precise error.
const FORMAT_ALAW: u16 = 6;
/// `WAVE_FORMAT_MULAW`.
const FORMAT_MULAW: u16 = 7;
/// `WAVE_FORMAT_EXTENSIBLE`: the real format is the first two bytes of the sub-format GUID.
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// Bytes 2..16 of every `KSDATAFORMAT_SUBTYPE_*` GUID for a classic format code
/// (`xxxxxxxx-0000-0010-8000-00aa00389b71`, stored little-endian).
const SUBFORMAT_GUID_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

/// Data sizes that mean "unknown, read to the end of the file" (an unfinished or streamed
/// file, or RF64's placeholder).
const STREAMED_SIZES: [u32; 2] = [0, u32::MAX];

/// A decoded WAV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WavAudio {
    /// Samples per second, as the file declares it.
    pub sample_rate: u32,
    /// How many channels the file had before they were mixed down.
    pub channels: u16,
    /// Mono 16-bit samples: every channel of a frame averaged into one.
    pub samples: Vec<i16>,
}

/// Why a WAV file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("cannot read or write the WAV file: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a WAV file (no RIFF/WAVE header)")]
    NotWav,
    #[error("unsupported WAV format: {0}")]
    Unsupported(String),
    #[error("the WAV file is truncated")]
    Truncated,
    #[error("malformed WAV file: {0}")]
    Malformed(String),
}

/// Reads and decodes the WAV file at `path`.
pub fn read_wav(path: &Path) -> Result<WavAudio, WavError> {
    let bytes = std::fs::read(path)?;
    parse_wav(&bytes)
}

/// Writes `samples` to `path` as a 16-bit mono PCM WAV file at `sample_rate`.
pub(crate) fn write_wav(path: &Path, sample_rate: u32, samples: &[i16]) -> Result<(), WavError> {
    std::fs::write(path, encode_wav(sample_rate, samples))?;
    Ok(())
}

/// A complete 16-bit mono PCM WAV file holding `samples` at `sample_rate`.
pub(crate) fn encode_wav(sample_rate: u32, samples: &[i16]) -> Vec<u8> {
    const HEADER_LEN: usize = 44;
    let data_len = samples.len().saturating_mul(2);
    // A file over 4 GiB cannot state its size; the streamed marker still lets readers
    // (this one included) take the data to the end of the file.
    let data_size = u32::try_from(data_len)
        .ok()
        .filter(|size| *size <= u32::MAX - 36)
        .unwrap_or(u32::MAX);
    let riff_size = data_size.saturating_add(36);
    let mut out = Vec::with_capacity(HEADER_LEN + data_len);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&riff_size.to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&FORMAT_PCM.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // channels
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&sample_rate.saturating_mul(2).to_le_bytes()); // byte rate
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_size.to_le_bytes());
    for sample in samples {
        out.extend_from_slice(&sample.to_le_bytes());
    }
    out
}

/// Decodes a WAV file held in memory.
pub(crate) fn parse_wav(bytes: &[u8]) -> Result<WavAudio, WavError> {
    let riff = bytes.get(0..4).ok_or(WavError::NotWav)?;
    // RF64 is RIFF for files over 4 GiB: same layout, sizes moved to a `ds64` chunk (skipped
    // here as unknown) and the data size left as 0xFFFFFFFF, which is read to the end.
    if (riff != b"RIFF" && riff != b"RF64") || bytes.get(8..12) != Some(b"WAVE".as_slice()) {
        return Err(WavError::NotWav);
    }
    let (format, data) = find_chunks(bytes)?;
    let sample_format = SampleFormat::from_fmt(&format)?;
    Ok(WavAudio {
        sample_rate: format.sample_rate,
        channels: format.channels,
        samples: decode_frames(data, sample_format, format.channels),
    })
}

/// The fields of the `fmt ` chunk this reader uses.
#[derive(Debug, Clone, Copy)]
struct FormatChunk {
    /// The format tag, with `WAVE_FORMAT_EXTENSIBLE` already resolved to its sub-format.
    format_tag: u16,
    channels: u16,
    sample_rate: u32,
    /// Bits per sample of the container (24-in-32 files say 32 here).
    bits_per_sample: u16,
}

/// Walks the chunk list and returns the format and the data bytes.
///
/// The RIFF size in the header is ignored: streaming writers leave it 0 or wrong, and the file
/// length is the better authority.
fn find_chunks(bytes: &[u8]) -> Result<(FormatChunk, &[u8]), WavError> {
    let mut format = None;
    let mut data = None;
    let mut position = 12usize;
    loop {
        let Some(header) = bytes.get(position..position.saturating_add(8)) else {
            // Fewer than 8 bytes left: either the clean end or a stray byte of padding, unless
            // what we came for has not been seen yet.
            if position < bytes.len() && (format.is_none() || data.is_none()) {
                return Err(WavError::Truncated);
            }
            break;
        };
        let id = &header[0..4];
        let declared = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let body_start = position + 8;
        if id == b"data" {
            if STREAMED_SIZES.contains(&declared) {
                data = Some(&bytes[body_start..]);
                break;
            }
            let body = bytes
                .get(body_start..body_start.saturating_add(declared as usize))
                .ok_or(WavError::Truncated)?;
            data = Some(body);
        } else {
            let body = bytes
                .get(body_start..body_start.saturating_add(declared as usize))
                .ok_or(WavError::Truncated)?;
            if id == b"fmt " {
                format = Some(parse_fmt(body)?);
            }
        }
        if format.is_some() && data.is_some() {
            break;
        }
        // Chunks are word-aligned: an odd-sized chunk is followed by one pad byte.
        position = body_start
            .saturating_add(declared as usize)
            .saturating_add((declared & 1) as usize);
    }
    match (format, data) {
        (Some(format), Some(data)) => Ok((format, data)),
        (None, _) => Err(WavError::Malformed("no fmt chunk".into())),
        (Some(_), None) => Err(WavError::Malformed("no data chunk".into())),
    }
}

fn parse_fmt(body: &[u8]) -> Result<FormatChunk, WavError> {
    let u16_at = |at: usize| {
        body.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        body.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let short = || WavError::Malformed(format!("fmt chunk of {} bytes is too short", body.len()));
    let mut format_tag = u16_at(0).ok_or_else(short)?;
    let channels = u16_at(2).ok_or_else(short)?;
    let sample_rate = u32_at(4).ok_or_else(short)?;
    let bits_per_sample = u16_at(14).ok_or_else(short)?;
    if format_tag == FORMAT_EXTENSIBLE {
        // cbSize(2) validBits(2) channelMask(4) subFormat GUID(16), after the 16 basic bytes.
        let guid = body.get(24..40).ok_or_else(|| {
            WavError::Malformed("WAVE_FORMAT_EXTENSIBLE without a sub-format".into())
        })?;
        if guid[2..] != SUBFORMAT_GUID_TAIL {
            return Err(WavError::Unsupported(
                "WAVE_FORMAT_EXTENSIBLE with a non-standard sub-format GUID".into(),
            ));
        }
        format_tag = u16::from_le_bytes([guid[0], guid[1]]);
    }
    if channels == 0 {
        return Err(WavError::Malformed("zero channels".into()));
    }
    if sample_rate == 0 {
        return Err(WavError::Malformed("sample rate 0".into()));
    }
    Ok(FormatChunk {
        format_tag,
        channels,
        sample_rate,
        bits_per_sample,
    })
}

/// How one sample is stored.
#[derive(Debug, Clone, Copy)]
enum SampleFormat {
    Unsigned8,
    Signed16,
    Signed24,
    Signed32,
    Float32,
    Float64,
    MuLaw,
}

impl SampleFormat {
    fn from_fmt(format: &FormatChunk) -> Result<SampleFormat, WavError> {
        Ok(match (format.format_tag, format.bits_per_sample) {
            (FORMAT_PCM, 8) => SampleFormat::Unsigned8,
            (FORMAT_PCM, 16) => SampleFormat::Signed16,
            (FORMAT_PCM, 24) => SampleFormat::Signed24,
            (FORMAT_PCM, 32) => SampleFormat::Signed32,
            (FORMAT_FLOAT, 32) => SampleFormat::Float32,
            (FORMAT_FLOAT, 64) => SampleFormat::Float64,
            (FORMAT_MULAW, 8) => SampleFormat::MuLaw,
            (FORMAT_PCM, bits) => {
                return Err(WavError::Unsupported(format!("{bits}-bit PCM")));
            }
            (FORMAT_FLOAT, bits) => {
                return Err(WavError::Unsupported(format!("{bits}-bit float")));
            }
            (FORMAT_MULAW, bits) => {
                return Err(WavError::Unsupported(format!("{bits}-bit μ-law")));
            }
            (FORMAT_ALAW, _) => return Err(WavError::Unsupported("G.711 A-law".into())),
            (tag, _) => return Err(WavError::Unsupported(format!("format tag {tag:#06x}"))),
        })
    }

    fn bytes_per_sample(self) -> usize {
        match self {
            SampleFormat::Unsigned8 | SampleFormat::MuLaw => 1,
            SampleFormat::Signed16 => 2,
            SampleFormat::Signed24 => 3,
            SampleFormat::Signed32 | SampleFormat::Float32 => 4,
            SampleFormat::Float64 => 8,
        }
    }

    /// One sample as 16-bit. `bytes` holds exactly [`Self::bytes_per_sample`] bytes.
    fn to_i16(self, bytes: &[u8]) -> i16 {
        let byte = |at: usize| bytes.get(at).copied().unwrap_or(0);
        match self {
            SampleFormat::Unsigned8 => (i16::from(byte(0)) - 128) << 8,
            SampleFormat::Signed16 => i16::from_le_bytes([byte(0), byte(1)]),
            // The top 16 bits of a wider integer; the arithmetic shift keeps the sign.
            SampleFormat::Signed24 => {
                (i32::from_le_bytes([0, byte(0), byte(1), byte(2)]) >> 16) as i16
            }
            SampleFormat::Signed32 => {
                (i32::from_le_bytes([byte(0), byte(1), byte(2), byte(3)]) >> 16) as i16
            }
            SampleFormat::Float32 => float_to_i16(f64::from(f32::from_le_bytes([
                byte(0),
                byte(1),
                byte(2),
                byte(3),
            ]))),
            SampleFormat::Float64 => float_to_i16(f64::from_le_bytes([
                byte(0),
                byte(1),
                byte(2),
                byte(3),
                byte(4),
                byte(5),
                byte(6),
                byte(7),
            ])),
            SampleFormat::MuLaw => mulaw::decode_sample(byte(0)),
        }
    }
}

/// Full scale ±1.0 to 16-bit, clipping overs; NaN becomes silence.
fn float_to_i16(value: f64) -> i16 {
    if value.is_nan() {
        return 0;
    }
    (value.clamp(-1.0, 1.0) * f64::from(i16::MAX)).round() as i16
}

/// Decodes whole frames and mixes each down to one sample. A trailing partial frame (a cut-off
/// file, or a pad byte counted into the data size) is dropped.
fn decode_frames(data: &[u8], format: SampleFormat, channels: u16) -> Vec<i16> {
    let sample_len = format.bytes_per_sample();
    let frame_len = sample_len * usize::from(channels);
    let frames = data.chunks_exact(frame_len);
    let mut samples = Vec::with_capacity(frames.len());
    for frame in frames {
        let sum: i32 = frame
            .chunks_exact(sample_len)
            .map(|sample| i32::from(format.to_i16(sample)))
            .sum();
        // The average of i16 values is always within i16.
        samples.push((sum / i32::from(channels)) as i16);
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WAV file with the given `fmt ` body and data, plus any extra chunks before `data`.
    fn build(fmt: &[u8], extra: &[(&[u8; 4], &[u8])], data: &[u8]) -> Vec<u8> {
        let mut chunks = Vec::new();
        let mut push = |id: &[u8; 4], body: &[u8]| {
            chunks.extend_from_slice(id);
            chunks.extend_from_slice(&(body.len() as u32).to_le_bytes());
            chunks.extend_from_slice(body);
            if body.len() % 2 == 1 {
                chunks.push(0);
            }
        };
        push(b"fmt ", fmt);
        for (id, body) in extra {
            push(id, body);
        }
        push(b"data", data);
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(4 + chunks.len() as u32).to_le_bytes());
        out.extend_from_slice(b"WAVE");
        out.extend_from_slice(&chunks);
        out
    }

    fn fmt(tag: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
        let block = channels * bits.div_ceil(8);
        let mut body = Vec::new();
        body.extend_from_slice(&tag.to_le_bytes());
        body.extend_from_slice(&channels.to_le_bytes());
        body.extend_from_slice(&rate.to_le_bytes());
        body.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
        body.extend_from_slice(&block.to_le_bytes());
        body.extend_from_slice(&bits.to_le_bytes());
        body
    }

    fn extensible(sub_format: u16, channels: u16, rate: u32, bits: u16, valid: u16) -> Vec<u8> {
        let mut body = fmt(FORMAT_EXTENSIBLE, channels, rate, bits);
        body.extend_from_slice(&22u16.to_le_bytes()); // cbSize
        body.extend_from_slice(&valid.to_le_bytes());
        body.extend_from_slice(&4u32.to_le_bytes()); // channel mask: front centre
        body.extend_from_slice(&sub_format.to_le_bytes());
        body.extend_from_slice(&SUBFORMAT_GUID_TAIL);
        body
    }

    #[test]
    fn sixteen_bit_round_trips_through_a_file() {
        let samples: Vec<i16> = vec![0, 1, -1, i16::MAX, i16::MIN, 1234, -4321];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("round.wav");
        write_wav(&path, 16_000, &samples).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 44 + samples.len() * 2);
        assert_eq!(&bytes[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 36 + 14);
        assert_eq!(bytes, encode_wav(16_000, &samples));
        let audio = read_wav(&path).unwrap();
        assert_eq!(
            audio,
            WavAudio {
                sample_rate: 16_000,
                channels: 1,
                samples
            }
        );
    }

    #[test]
    fn eight_bit_unsigned_is_centred_on_128() {
        let file = build(&fmt(FORMAT_PCM, 1, 8_000, 8), &[], &[128, 255, 0, 192]);
        let audio = parse_wav(&file).unwrap();
        assert_eq!(audio.sample_rate, 8_000);
        assert_eq!(audio.samples, [0, 127 << 8, -32_768, 64 << 8]);
    }

    #[test]
    fn twenty_four_and_thirty_two_bit_keep_the_top_sixteen_bits() {
        let data24 = [0x56, 0x34, 0x12, 0x00, 0x00, 0x80, 0xFF, 0xFF, 0xFF];
        let audio = parse_wav(&build(&fmt(FORMAT_PCM, 1, 8_000, 24), &[], &data24)).unwrap();
        assert_eq!(audio.samples, [0x1234, i16::MIN, -1]);

        let data32 = [0x78, 0x56, 0x34, 0x12, 0x00, 0x00, 0x00, 0x80];
        let audio = parse_wav(&build(&fmt(FORMAT_PCM, 1, 8_000, 32), &[], &data32)).unwrap();
        assert_eq!(audio.samples, [0x1234, i16::MIN]);
    }

    #[test]
    fn floats_scale_to_full_range_and_clip() {
        let values32 = [0.0f32, 0.5, -1.0, 2.0, f32::NAN];
        let data: Vec<u8> = values32.iter().flat_map(|v| v.to_le_bytes()).collect();
        let audio = parse_wav(&build(&fmt(FORMAT_FLOAT, 1, 16_000, 32), &[], &data)).unwrap();
        assert_eq!(audio.samples, [0, 16_384, -32_767, 32_767, 0]);

        let values64 = [0.25f64, -0.25];
        let data: Vec<u8> = values64.iter().flat_map(|v| v.to_le_bytes()).collect();
        let audio = parse_wav(&build(&fmt(FORMAT_FLOAT, 1, 16_000, 64), &[], &data)).unwrap();
        assert_eq!(audio.samples, [8_192, -8_192]);
    }

    #[test]
    fn stereo_is_mixed_down_by_averaging() {
        let frames: [[i16; 2]; 3] = [[1000, 3000], [-2000, 2000], [i16::MAX, i16::MAX]];
        let data: Vec<u8> = frames
            .iter()
            .flatten()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let audio = parse_wav(&build(&fmt(FORMAT_PCM, 2, 8_000, 16), &[], &data)).unwrap();
        assert_eq!(audio.channels, 2);
        assert_eq!(audio.samples, [2000, 0, i16::MAX]);
    }

    #[test]
    fn extensible_resolves_its_sub_format() {
        // 24 valid bits in 32-bit containers, left-justified as the spec requires.
        let data = [0x00, 0x56, 0x34, 0x12];
        let file = build(&extensible(FORMAT_PCM, 1, 8_000, 32, 24), &[], &data);
        assert_eq!(parse_wav(&file).unwrap().samples, [0x1234]);

        let data = (-0.5f32).to_le_bytes();
        let file = build(&extensible(FORMAT_FLOAT, 1, 8_000, 32, 32), &[], &data);
        assert_eq!(parse_wav(&file).unwrap().samples, [-16_384]);

        let mut odd_guid = extensible(FORMAT_PCM, 1, 8_000, 16, 16);
        let last = odd_guid.len() - 1;
        odd_guid[last] ^= 0xFF;
        let file = build(&odd_guid, &[], &[0, 0]);
        assert!(matches!(parse_wav(&file), Err(WavError::Unsupported(_))));
    }

    #[test]
    fn mu_law_decodes_with_g711() {
        let samples = [0i16, 1000, -1000, 30_000];
        let mut codes = Vec::new();
        mulaw::encode_into(&samples, &mut codes);
        let audio = parse_wav(&build(&fmt(FORMAT_MULAW, 1, 8_000, 8), &[], &codes)).unwrap();
        let expected: Vec<i16> = codes.iter().map(|&c| mulaw::decode_sample(c)).collect();
        assert_eq!(audio.samples, expected);
        assert!((i32::from(audio.samples[1]) - 1000).abs() < 64);
    }

    #[test]
    fn unknown_and_odd_sized_chunks_are_skipped() {
        let data: Vec<u8> = [7i16, -7].iter().flat_map(|s| s.to_le_bytes()).collect();
        let file = build(
            &fmt(FORMAT_PCM, 1, 8_000, 16),
            &[(b"LIST", b"INFOISFT\x05\0\0\0lavf\0"), (b"odd ", b"abc")],
            &data,
        );
        assert_eq!(parse_wav(&file).unwrap().samples, [7, -7]);
    }

    #[test]
    fn streamed_data_sizes_read_to_the_end() {
        for marker in STREAMED_SIZES {
            let mut file = encode_wav(8_000, &[5, 6, 7]);
            file[40..44].copy_from_slice(&marker.to_le_bytes());
            file[4..8].copy_from_slice(&0u32.to_le_bytes());
            assert_eq!(parse_wav(&file).unwrap().samples, [5, 6, 7], "{marker:#x}");
        }
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        assert!(matches!(parse_wav(b""), Err(WavError::NotWav)));
        assert!(matches!(
            parse_wav(b"RIFF\0\0\0\0AVI "),
            Err(WavError::NotWav)
        ));
        assert!(matches!(
            parse_wav(b"hello world, not audio"),
            Err(WavError::NotWav)
        ));

        let file = encode_wav(8_000, &[1, 2, 3, 4]);
        // Every cut of a valid file gives a clear error.
        for cut in 0..file.len() {
            match parse_wav(&file[..cut]) {
                Err(WavError::NotWav | WavError::Truncated | WavError::Malformed(_)) => {}
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        // Data declared longer than the file.
        let mut long = file.clone();
        long[40..44].copy_from_slice(&100u32.to_le_bytes());
        assert!(matches!(parse_wav(&long), Err(WavError::Truncated)));

        let no_data = {
            let mut out = file[..36].to_vec();
            out[4..8].copy_from_slice(&28u32.to_le_bytes());
            out
        };
        assert!(matches!(parse_wav(&no_data), Err(WavError::Malformed(m)) if m == "no data chunk"));

        let unsupported = build(&fmt(FORMAT_PCM, 1, 8_000, 12), &[], &[0, 0]);
        assert!(
            matches!(parse_wav(&unsupported), Err(WavError::Unsupported(m)) if m == "12-bit PCM")
        );
        let alaw = build(&fmt(FORMAT_ALAW, 1, 8_000, 8), &[], &[0]);
        assert!(matches!(parse_wav(&alaw), Err(WavError::Unsupported(_))));
        let silent = build(&fmt(FORMAT_PCM, 0, 8_000, 16), &[], &[0, 0]);
        assert!(matches!(parse_wav(&silent), Err(WavError::Malformed(_))));

        // Pseudo-random garbage after a valid header never panics.
        let mut state = 0x1234_5678u32;
        for _ in 0..500 {
            let mut bytes = b"RIFF\0\0\0\0WAVE".to_vec();
            for _ in 0..(state % 96) {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                bytes.push((state >> 24) as u8);
            }
            let _ = parse_wav(&bytes);
        }
        assert!(matches!(
            read_wav(Path::new("/nonexistent/voxbridge.wav")),
            Err(WavError::Io(_))
        ));
    }
}
