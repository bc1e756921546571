#!/usr/bin/env bash
# Regenerates the demo's speech samples in src/sim/voices/ (committed; the build embeds them).
# Needs espeak-ng and sox (Debian: apt-get install espeak-ng sox). Output: 8 kHz mono 16-bit
# WAV, leading and trailing silence trimmed, about 8 KB per second.
set -euo pipefail
out="$(cd "$(dirname "$0")/.." && pwd)/src/sim/voices"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

speak() { # name voice words-per-minute text
  espeak-ng -v "$2" -s "$3" -w "$tmp/$1.wav" "$4"
  sox "$tmp/$1.wav" -r 8000 -c 1 -b 16 "$out/$1.wav" \
    silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse
}

speak caller en-us 150 "Hi, I would like to book a table for two tonight."
speak assistant-greeting en-gb+f3 165 "Hello, thanks for calling Acme Bistro. How can I help you today?"
speak assistant-outbound-greeting en-gb+f3 165 "Hi, this is Acme Bistro, returning your call. How can I help?"
speak assistant-answer en-gb+f3 165 "Of course. A table for two at eight tonight is booked. See you then!"
ls -l "$out"
