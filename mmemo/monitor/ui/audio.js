// Browser audio: decode/resample to 16 kHz mono, WAV encoding, microphone capture.
"use strict";

const TARGET_RATE = 16000;

// Any audio the browser can decode -> Float32Array at 16 kHz mono.
async function decodeTo16k(arrayBuffer) {
  const probe = new (window.AudioContext || window.webkitAudioContext)();
  const decoded = await probe.decodeAudioData(arrayBuffer);
  probe.close();
  const frames = Math.ceil(decoded.duration * TARGET_RATE);
  const offline = new OfflineAudioContext(1, Math.max(1, frames), TARGET_RATE);
  const source = offline.createBufferSource();
  source.buffer = decoded;  // mixed down to the context's single channel
  source.connect(offline.destination);
  source.start();
  const rendered = await offline.startRendering();
  return rendered.getChannelData(0);
}

function floatToInt16(samples) {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    out[i] = s < 0 ? s * 0x8000 : s * 0x7fff;
  }
  return out;
}

// 16-bit PCM WAV, so the server never needs ffmpeg for browser recordings.
function encodeWav(samples, rate) {
  const pcm = floatToInt16(samples);
  const buffer = new ArrayBuffer(44 + pcm.byteLength);
  const view = new DataView(buffer);
  const text = (offset, s) => { for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + pcm.byteLength, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, pcm.byteLength, true);
  new Int16Array(buffer, 44).set(pcm);
  return new Blob([buffer], {type: "audio/wav"});
}

// MediaRecorder: start() then stop() -> a 16 kHz WAV Blob.
class Recorder {
  async start() {
    this.stream = await navigator.mediaDevices.getUserMedia({audio: true});
    this.chunks = [];
    this.recorder = new MediaRecorder(this.stream);
    this.recorder.ondataavailable = (event) => this.chunks.push(event.data);
    this.recorder.start();
  }

  stop() {
    return new Promise((resolve, reject) => {
      this.recorder.onstop = async () => {
        this.stream.getTracks().forEach((track) => track.stop());
        try {
          const blob = new Blob(this.chunks, {type: this.recorder.mimeType});
          resolve(encodeWav(await decodeTo16k(await blob.arrayBuffer()), TARGET_RATE));
        } catch (error) { reject(error); }
      };
      this.recorder.stop();
    });
  }
}

// Microphone -> 16 kHz Int16 chunks of about `chunkSeconds`, handed to onChunk(ArrayBuffer).
class MicrophoneStream {
  constructor(onChunk, chunkSeconds = 0.25) {
    this.onChunk = onChunk;
    this.chunkSamples = Math.round(chunkSeconds * TARGET_RATE);
    this.pending = [];
    this.pendingLength = 0;
  }

  async start() {
    this.stream = await navigator.mediaDevices.getUserMedia({audio: {channelCount: 1}});
    this.context = new (window.AudioContext || window.webkitAudioContext)();
    const source = this.context.createMediaStreamSource(this.stream);
    this.processor = this.context.createScriptProcessor(4096, 1, 1);
    const ratio = this.context.sampleRate / TARGET_RATE;
    let position = 0;  // fractional read position carried across callbacks
    this.processor.onaudioprocess = (event) => {
      const input = event.inputBuffer.getChannelData(0);
      const out = [];
      for (; position < input.length; position += ratio) out.push(input[Math.floor(position)]);
      position -= input.length;
      this.push(Float32Array.from(out));
    };
    source.connect(this.processor);
    this.processor.connect(this.context.destination);
  }

  push(samples) {
    this.pending.push(samples);
    this.pendingLength += samples.length;
    if (this.pendingLength < this.chunkSamples) return;
    const all = new Float32Array(this.pendingLength);
    let offset = 0;
    for (const part of this.pending) { all.set(part, offset); offset += part.length; }
    this.pending = [];
    this.pendingLength = 0;
    this.onChunk(floatToInt16(all).buffer);
  }

  stop() {
    if (this.processor) this.processor.disconnect();
    if (this.stream) this.stream.getTracks().forEach((track) => track.stop());
    if (this.context) this.context.close();
  }
}
