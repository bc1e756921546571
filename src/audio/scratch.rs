//! Scratch buffers lent per thread: the buffers a frame's audio passes through on its way
//! (base64-decoded bytes, samples, resampled samples, re-encoded bytes), which hold nothing
//! from one frame to the next.
//!
//! Kept in each call, they cost every live call its largest frame several times over (about
//! 40 KiB with OpenAI's 24 kHz audio, measured in docs/benchmarks.md, "Memory per live call").
//! The calls of one worker thread take turns, so one set per thread serves them all; a frame
//! borrows a buffer with [`Lent`] and the buffer goes back when the guard drops.
//!
//! Per frame, not per resampler piece: the resampler keeps its own small block buffers, since
//! borrowing them for every 20 ms piece measured 15 % slower in `benches/audio_resample.rs`.
//!
//! Nothing here can panic or lose data: a buffer borrowed while its slot is already lent out
//! (a conversion nested in another that uses the same slot) is simply a new, empty one, and
//! whichever of the two is given back last stays. Each slot has one user on the media path, so
//! that never happens there.

use std::cell::Cell;
use std::ops::{Deref, DerefMut};
use std::thread::LocalKey;

/// A buffer that grew past this (a frame far larger than any real one) is not kept for the
/// thread's next frames: it is freed when given back.
const KEEP_AT_MOST_BYTES: usize = 256 * 1024;

type Slot<T> = LocalKey<Cell<Vec<T>>>;

thread_local! {
    static DECODED: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    static ENCODED: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    static CHUNK_BYTES: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    static SAMPLES: Cell<Vec<i16>> = const { Cell::new(Vec::new()) };
    static CONVERTED: Cell<Vec<i16>> = const { Cell::new(Vec::new()) };
}

/// A scratch buffer borrowed from this thread's slot, empty, and given back on drop.
pub(crate) struct Lent<T: 'static> {
    buffer: Vec<T>,
    home: &'static Slot<T>,
}

impl<T: 'static> Lent<T> {
    fn from(home: &'static Slot<T>) -> Lent<T> {
        // `try_with`: during the thread's teardown the slot is gone; a new buffer does.
        // Empty: a buffer is cleared when it is given back.
        let buffer = home.try_with(Cell::take).unwrap_or_default();
        Lent { buffer, home }
    }
}

impl<T: 'static> Deref for Lent<T> {
    type Target = Vec<T>;

    fn deref(&self) -> &Vec<T> {
        &self.buffer
    }
}

impl<T: 'static> DerefMut for Lent<T> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.buffer
    }
}

impl<T: 'static> Drop for Lent<T> {
    fn drop(&mut self) {
        let mut buffer = std::mem::take(&mut self.buffer);
        if buffer.capacity() * size_of::<T>() > KEEP_AT_MOST_BYTES {
            return;
        }
        buffer.clear();
        let _ = self.home.try_with(|slot| slot.set(buffer));
    }
}

/// Bytes decoded from a frame's base64.
pub(crate) fn decoded() -> Lent<u8> {
    Lent::from(&DECODED)
}

/// Bytes encoded for the AI (s16le or μ-law).
pub(crate) fn encoded() -> Lent<u8> {
    Lent::from(&ENCODED)
}

/// The s16le bytes of a chunk for FreJun.
pub(crate) fn chunk_bytes() -> Lent<u8> {
    Lent::from(&CHUNK_BYTES)
}

/// A frame's samples at their own rate.
pub(crate) fn samples() -> Lent<i16> {
    Lent::from(&SAMPLES)
}

/// A frame's samples converted to another rate.
pub(crate) fn converted() -> Lent<i16> {
    Lent::from(&CONVERTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_empty_with_its_capacity() {
        let capacity = {
            let mut bytes = decoded();
            bytes.extend_from_slice(&[1, 2, 3]);
            bytes.capacity()
        };
        let again = decoded();
        assert!(again.is_empty());
        assert_eq!(again.capacity(), capacity);
    }

    #[test]
    fn a_slot_lent_twice_gives_the_second_borrower_a_buffer_of_its_own() {
        let mut first = samples();
        first.push(1);
        let mut second = samples();
        assert!(second.is_empty());
        second.push(2);
        assert_eq!(&first[..], &[1]);
        assert_eq!(&second[..], &[2]);
    }

    #[test]
    fn a_huge_buffer_is_not_kept() {
        {
            let mut bytes = encoded();
            bytes.resize(KEEP_AT_MOST_BYTES + 1, 0);
        }
        assert_eq!(encoded().capacity(), 0);
    }

    #[test]
    fn each_thread_has_its_own_buffers() {
        {
            let mut bytes = chunk_bytes();
            bytes.reserve(1_000);
        }
        let elsewhere = std::thread::spawn(|| chunk_bytes().capacity())
            .join()
            .unwrap();
        assert_eq!(elsewhere, 0);
        assert!(chunk_bytes().capacity() >= 1_000);
    }
}
