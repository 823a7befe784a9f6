// Header sample rates, the decoding rate and the input checks of as_float_audio.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  AudioError,
  checkAudio,
  decodingRate,
  headerIntegerBits,
  headerSampleRate,
  int16AsLibsndfile,
  interleaveRows,
} from "../src/audio.ts";

function bytes(build: (view: DataView) => void, size: number): ArrayBuffer {
  const buffer = new ArrayBuffer(size);
  build(new DataView(buffer));
  return buffer;
}
const put = (view: DataView, at: number, text: string) =>
  [...text].forEach((c, i) => view.setUint8(at + i, c.charCodeAt(0)));

function wav(rate: number, withListChunk = false, format = 1, bits = 16): ArrayBuffer {
  return bytes((v) => {
    put(v, 0, "RIFF");
    put(v, 8, "WAVE");
    let at = 12;
    if (withListChunk) {
      put(v, at, "LIST");
      v.setUint32(at + 4, 5, true); // odd size: padded to 6
      at += 8 + 6;
    }
    put(v, at, "fmt ");
    v.setUint32(at + 4, 16, true);
    v.setUint16(at + 8, 1, true);
    v.setUint16(at + 10, 2, true);
    v.setUint32(at + 12, rate, true);
    v.setUint16(at + 8, format, true);
    v.setUint16(at + 22, bits, true);
  }, 80);
}

test("WAV, RF64 and chunks before fmt", () => {
  assert.equal(headerSampleRate(wav(44100)), 44100);
  assert.equal(headerSampleRate(wav(22050, true)), 22050);
  const rf64 = wav(48000);
  put(new DataView(rf64), 0, "RF64");
  assert.equal(headerSampleRate(rf64), 48000);
});

test("integer bits per sample of WAV (PCM, extensible) and FLAC; null for float and others", () => {
  assert.equal(headerIntegerBits(wav(44100)), 16);
  assert.equal(headerIntegerBits(wav(44100, true, 0xfffe, 24)), 24);
  assert.equal(headerIntegerBits(wav(44100, false, 3, 32)), null); // IEEE float
  const flac = bytes((v) => {
    put(v, 0, "fLaC");
    v.setUint8(20, 0x02); // channels - 1 = 1 (bits 3..1), bits - 1 = 15 = 0b01111: 0 here
    v.setUint8(21, 0xf0); // and 0b1111 in the high nibble
  }, 42);
  assert.equal(headerIntegerBits(flac), 16);
  const flac24 = bytes((v) => {
    put(v, 0, "fLaC");
    v.setUint8(20, 0x03);
    v.setUint8(21, 0x70); // bits - 1 = 23 = 0b10111
  }, 42);
  assert.equal(headerIntegerBits(flac24), 24);
  assert.equal(headerIntegerBits(new ArrayBuffer(10)), null);
});

test("16-bit samples decoded as k / 32767 when positive become libsndfile's k / 32768", () => {
  const ks = [0, 1, -1, 8, -8, 16384, -16384, 32767, -32768];
  const chromium = Float32Array.from(ks, (k) => (k > 0 ? k / 32767 : k / 32768));
  const channels = [chromium, Float32Array.from(chromium)];
  int16AsLibsndfile(channels);
  const libsndfile = Float32Array.from(ks, (k) => k / 32768);
  for (const channel of channels) assert.deepEqual(channel, libsndfile);
  int16AsLibsndfile(channels); // already k / 32768: left alone
  assert.deepEqual(channels[0], libsndfile);
});

test("FLAC STREAMINFO", () => {
  const flac = bytes((v) => {
    put(v, 0, "fLaC");
    // 20-bit rate 96000 (0x17700) at byte 18: 0x17, 0x70, 0x0_
    v.setUint8(18, 0x17);
    v.setUint8(19, 0x70);
    v.setUint8(20, 0x02);
  }, 42);
  assert.equal(headerSampleRate(flac), 96000);
});

test("AIFF 80-bit extended rate", () => {
  const aiff = bytes((v) => {
    put(v, 0, "FORM");
    put(v, 8, "AIFF");
    put(v, 12, "COMM");
    v.setUint32(16, 18);
    v.setUint16(28, 0x400e); // 44100 = 0xAC44 << 48 with exponent 15
    v.setUint32(30, 0xac440000);
  }, 60);
  assert.equal(headerSampleRate(aiff), 44100);
});

test("OGG Vorbis and Opus, MP3 after an ID3 tag", () => {
  const vorbis = bytes((v) => {
    put(v, 0, "OggS");
    v.setUint8(26, 1);
    v.setUint8(28, 1);
    put(v, 29, "vorbis");
    v.setUint32(28 + 12, 32000, true);
  }, 80);
  assert.equal(headerSampleRate(vorbis), 32000);
  const opus = bytes((v) => {
    put(v, 0, "OggS");
    v.setUint8(26, 1);
    put(v, 28, "OpusHead");
  }, 60);
  assert.equal(headerSampleRate(opus), 48000);
  const mp3 = bytes((v) => {
    put(v, 0, "ID3");
    v.setUint8(9, 10); // tag of 10 bytes after the 10-byte header
    v.setUint8(20, 0xff);
    v.setUint8(21, 0xfb); // MPEG-1 layer III
    v.setUint8(22, 0x94); // bitrate 9, rate index 1: 48000
  }, 40);
  assert.equal(headerSampleRate(mp3), 48000);
  assert.equal(headerSampleRate(new ArrayBuffer(10)), null);
});

test("decode at the file's rate when the graph takes it, else 48 kHz", () => {
  const rates = [22050, 44100, 48000];
  assert.equal(decodingRate(44100, rates), 44100);
  assert.equal(decodingRate(22050, rates), 22050);
  assert.equal(decodingRate(96000, rates), 48000);
  assert.equal(decodingRate(null, rates), 48000);
  assert.equal(decodingRate(8000, [16000, 22050]), 22050);
});

test("the checks and messages of as_float_audio", () => {
  const seconds = (s: number) => new Float32Array(Math.round(s * 1000));
  assert.doesNotThrow(() => checkAudio([seconds(3), seconds(3)], 1000));
  const rejects = (channels: Float32Array[], name: string, message: RegExp) =>
    assert.throws(() => checkAudio(channels, 1000), (e: Error) => e instanceof AudioError && e.name === name && message.test(e.message));
  rejects([seconds(2.5)], "AudioTooShortError", /lasts 2\.500 s, shorter than the minimum; accepted: from 3 s to 600 s/);
  rejects([seconds(601)], "AudioTooLongError", /lasts 601\.0 s, longer than the maximum/);
  rejects([seconds(3), seconds(3), seconds(3)], "TooManyChannelsError", /audio has 3 channels/);
  rejects([new Float32Array(0)], "AudioTooShortError", /is empty/);
  const bad = seconds(4);
  bad[7] = NaN;
  bad[9] = Infinity;
  rejects([seconds(4), bad], "NonFiniteAudioError", /2 NaN or infinite samples \(first at sample 7\)/);
});

test("channels become one (channels, samples) row-major array", () => {
  assert.deepEqual(Array.from(interleaveRows([Float32Array.of(1, 2), Float32Array.of(3, 4)])), [1, 2, 3, 4]);
});
