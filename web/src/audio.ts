// Decoding an audio file for the graphs, with the checks of mixai_inference.audio.as_float_audio.
//
// The graphs downmix and resample themselves (docs/features.md, "In the browser"): the file is
// decoded at its own rate when the graph takes that rate, so that the Web Audio API does not
// resample, and at 48 kHz otherwise.

export const MIN_DURATION_S = 3;
export const MAX_DURATION_S = 600;
export const MAX_CHANNELS = 2;
const DURATION_POLICY = `from ${MIN_DURATION_S} s to ${MAX_DURATION_S} s`;
const CHANNEL_POLICY = `mono or stereo (1 or ${MAX_CHANNELS} channels); downmix surround audio first`;

/** A rejected input; `name` is the class of mixai_inference.errors that Python raises. */
export class AudioError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/** Decoded audio: one Float32Array per channel (full scale 1.0) at `sampleRate`. */
export interface DecodedAudio {
  channels: Float32Array[];
  sampleRate: number;
  /** The rate the file's header states (null when it could not be read). */
  fileSampleRate: number | null;
}

const ascii = (view: DataView, at: number, n: number): string =>
  at + n > view.byteLength
    ? ""
    : String.fromCharCode(...new Uint8Array(view.buffer, view.byteOffset + at, n));

function wavFormatChunk(view: DataView): number | null {
  // RIFF/RF64 chunks after the 12-byte header: where the "fmt " chunk starts
  for (let at = 12; at + 8 <= view.byteLength; ) {
    const size = view.getUint32(at + 4, true);
    if (ascii(view, at, 4) === "fmt ") return at;
    at += 8 + size + (size % 2);
  }
  return null;
}

const isWav = (view: DataView, magic: string): boolean =>
  (magic === "RIFF" || magic === "RF64") && ascii(view, 8, 4) === "WAVE";

function aiffRate(view: DataView): number | null {
  for (let at = 12; at + 8 <= view.byteLength; ) {
    const size = view.getUint32(at + 4);
    if (ascii(view, at, 4) === "COMM") {
      // 80-bit IEEE extended: sign+exponent (16 bits), 64-bit mantissa with explicit 1
      const exponent = (view.getUint16(at + 16) & 0x7fff) - 16383;
      const mantissa = view.getUint32(at + 18) * 2 ** 32 + view.getUint32(at + 22);
      return Math.round(mantissa * 2 ** (exponent - 63));
    }
    at += 8 + size + (size % 2);
  }
  return null;
}

// "fLaC", then the STREAMINFO block: after min/max block and frame sizes, 20 bits of rate,
// 3 of channels - 1 and 5 of bits per sample - 1
const FLAC_RATE_AT = 8 + 10;

function flacRate(view: DataView): number | null {
  if (view.byteLength < FLAC_RATE_AT + 3) return null;
  const at = FLAC_RATE_AT;
  return (view.getUint8(at) << 12) | (view.getUint8(at + 1) << 4) | (view.getUint8(at + 2) >> 4);
}

function oggRate(view: DataView): number | null {
  const page = 27 + view.getUint8(26); // the first page's header and its segment table
  if (ascii(view, page + 1, 6) === "vorbis") return view.getUint32(page + 12, true);
  if (ascii(view, page, 8) === "OpusHead") return 48000; // Opus always decodes at 48 kHz
  return null;
}

const MPEG_RATES: Record<number, readonly number[]> = {
  3: [44100, 48000, 32000], // MPEG-1
  2: [22050, 24000, 16000], // MPEG-2
  0: [11025, 12000, 8000], // MPEG-2.5
};

function mp3Rate(view: DataView): number | null {
  let at = 0;
  if (ascii(view, 0, 3) === "ID3") {
    const size = [6, 7, 8, 9].reduce((n, k) => (n << 7) | (view.getUint8(k) & 0x7f), 0);
    at = 10 + size;
  }
  for (; at + 4 <= view.byteLength && at < 1 << 16; at++) {
    if (view.getUint8(at) !== 0xff || (view.getUint8(at + 1) & 0xe0) !== 0xe0) continue;
    const version = (view.getUint8(at + 1) >> 3) & 3;
    const index = (view.getUint8(at + 2) >> 2) & 3;
    const rate = MPEG_RATES[version]?.[index];
    if (rate) return rate;
  }
  return null;
}

/** The sample rate a WAV, RF64, AIFF, FLAC, OGG (Vorbis, Opus) or MP3 header states, or null. */
export function headerSampleRate(bytes: ArrayBuffer): number | null {
  const view = new DataView(bytes);
  const magic = ascii(view, 0, 4);
  try {
    if (isWav(view, magic)) {
      const fmt = wavFormatChunk(view);
      return fmt === null ? null : view.getUint32(fmt + 12, true);
    }
    if (magic === "FORM" && ["AIFF", "AIFC"].includes(ascii(view, 8, 4))) return aiffRate(view);
    if (magic === "fLaC") return flacRate(view);
    if (magic === "OggS") return oggRate(view);
    return mp3Rate(view);
  } catch {
    return null; // a header cut short: let the decoder say what is wrong
  }
}

/** The bits per sample of a WAV's or FLAC's integer samples, or null (other formats, float WAV). */
export function headerIntegerBits(bytes: ArrayBuffer): number | null {
  const view = new DataView(bytes);
  const magic = ascii(view, 0, 4);
  try {
    if (isWav(view, magic)) {
      const fmt = wavFormatChunk(view);
      if (fmt === null) return null;
      // 1: PCM; 0xfffe: extensible, whose sub-format a float file also declares with 32 bits
      const format = view.getUint16(fmt + 8, true);
      return format === 1 || format === 0xfffe ? view.getUint16(fmt + 22, true) : null;
    }
    if (magic === "fLaC" && view.byteLength >= FLAC_RATE_AT + 4) {
      const at = FLAC_RATE_AT + 2;
      return (((view.getUint8(at) & 1) << 4) | (view.getUint8(at + 1) >> 4)) + 1;
    }
  } catch {
    // a header cut short: nothing to correct
  }
  return null;
}

/**
 * 16-bit samples as libsndfile (and so mixai_inference) reads them, k / 32768, in place.
 * Chromium's decoder divides positive samples by 32767 instead
 * (media::SignedInt16SampleTypeTraits), an asymmetric distortion 90 dB down that moves
 * features reading quiet detail (spectral contrast, MFCC minima). A decoder that already
 * gives multiples of 1 / 32768 is left alone.
 */
export function int16AsLibsndfile(channels: readonly Float32Array[]): void {
  const asymmetric = channels.some((c) => c.some((v) => v > 0 && !Number.isInteger(v * 32768)));
  if (!asymmetric) return;
  for (const channel of channels) {
    for (let i = 0; i < channel.length; i++) {
      if (channel[i] > 0) channel[i] = Math.round(channel[i] * 32767) / 32768;
    }
  }
}

/** The rate to decode at: the file's own when the graph takes it, else 48 kHz (or the highest). */
export function decodingRate(fileRate: number | null, supported: readonly number[]): number {
  if (fileRate !== null && supported.includes(fileRate)) return fileRate;
  return supported.includes(48000) ? 48000 : Math.max(...supported);
}

/** The checks of as_float_audio on decoded channels (count, duration, finite samples). */
export function checkAudio(channels: readonly Float32Array[], sampleRate: number, what = "audio") {
  if (channels.length > MAX_CHANNELS) {
    throw new AudioError(
      "TooManyChannelsError",
      `${what} has ${channels.length} channels; accepted: ${CHANNEL_POLICY}`,
    );
  }
  const n = channels.length ? channels[0].length : 0;
  if (n === 0) {
    throw new AudioError("AudioTooShortError", `${what} is empty (0 samples); accepted: ${DURATION_POLICY}`);
  }
  const duration = n / sampleRate;
  if (duration < MIN_DURATION_S) {
    throw new AudioError(
      "AudioTooShortError",
      `${what} lasts ${duration.toFixed(3)} s, shorter than the minimum; accepted: ${DURATION_POLICY}`,
    );
  }
  if (duration > MAX_DURATION_S) {
    throw new AudioError(
      "AudioTooLongError",
      `${what} lasts ${duration.toFixed(1)} s, longer than the maximum; accepted: ${DURATION_POLICY}`,
    );
  }
  let bad = 0;
  let first = -1;
  for (const channel of channels) {
    for (let i = 0; i < channel.length; i++) {
      if (!Number.isFinite(channel[i])) {
        bad++;
        if (first < 0 || i < first) first = i;
      }
    }
  }
  if (bad) {
    throw new AudioError(
      "NonFiniteAudioError",
      `${what} contains ${bad} NaN or infinite samples (first at sample ${first}); ` +
        "accepted: finite sample values only",
    );
  }
}

/**
 * Decode an audio file with the Web Audio API for a graph that takes `supported` rates, and
 * check it. Throws AudioError for unusable input.
 */
export async function decodeAudio(
  bytes: ArrayBuffer,
  supported: readonly number[],
  what = "audio",
): Promise<DecodedAudio> {
  if (bytes.byteLength === 0) throw new AudioError("EmptyFileError", `${what} is an empty file (0 bytes)`);
  const fileSampleRate = headerSampleRate(bytes);
  const sampleRate = decodingRate(fileSampleRate, supported);
  const context = new OfflineAudioContext(1, 1, sampleRate);
  let buffer: AudioBuffer;
  try {
    buffer = await context.decodeAudioData(bytes.slice(0)); // decoding detaches its input
  } catch (error) {
    throw new AudioError(
      "UnsupportedFormatError",
      `${what} could not be decoded (${(error as Error).message || error}); accepted: ` +
        "WAV, FLAC, OGG Vorbis/Opus, MP3 (AIFF where the browser decodes it: not Chromium)",
    );
  }
  const channels = Array.from({ length: buffer.numberOfChannels }, (_, c) => buffer.getChannelData(c));
  if (headerIntegerBits(bytes) === 16 && sampleRate === fileSampleRate) int16AsLibsndfile(channels);
  checkAudio(channels, sampleRate, what);
  return { channels, sampleRate, fileSampleRate };
}

/** Channels as one (channels, samples) row-major Float32Array. */
export function interleaveRows(channels: readonly Float32Array[]): Float32Array {
  const n = channels[0].length;
  const out = new Float32Array(channels.length * n);
  channels.forEach((channel, c) => out.set(channel, c * n));
  return out;
}
