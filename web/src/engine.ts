// The engine: the bundle's edge graphs and models in onnxruntime-web (WASM), routing and rules.
// Its answers are the JSON of `mixai-infer predict|align --json` (docs/edge.md).

import * as ort from "onnxruntime-web/wasm";

import { AudioError, decodeAudio, interleaveRows, type DecodedAudio } from "./audio.ts";
import { BundleError, parseManifest, resolveFlags, taskPlan, type Manifest } from "./manifest.ts";
import { decide, type Decision, type TaskPlan } from "./routing.ts";
import { Rules } from "./rules.ts";
import { sha256Hex } from "./sha256.ts";
import { TASKS, answerFields, finish, type Source, type TaskSpec } from "./tasks.ts";

export { AudioError, BundleError };

export interface EngineOptions {
  /** Folder of the bundle (manifest.json, the graphs, the models); default "bundle/". */
  bundleUrl?: string | URL;
  /** URL of onnxruntime-web's ort-wasm-simd-threaded.wasm; default "ort/" beside the page. */
  wasmUrl?: string | URL;
  /** Flag overrides (like the environment variables of the Python runtime). */
  flags?: Record<string, boolean>;
  fetch?: typeof fetch;
}

export interface CallOptions {
  userId?: string | null;
}

/** Where one task's answer came from (results.Provenance). */
export interface Provenance {
  source: "ml" | "rules";
  model_version: string | null;
  variant: string | null;
  experiment_id: string | null;
  reason: string | null;
  /** Per-user adapters are not applied in the browser (docs/edge.md). */
  personalized: false;
}

/** One task's answer: its fields and provenance; `extra` fields go beside the provenance. */
interface Answer {
  spec: TaskSpec;
  values: number[];
  provenance: Provenance;
}

export interface Timings {
  decodeMs: number;
  graphMs: number;
  modelsMs: number;
}

const EDGE_GRAPHS = { features: "features", alignment: "alignment" } as const;

const resolve = (url: string | URL, base: string | URL): URL => new URL(url, base);

/** The bundle's graphs, models and routing, loaded once; share one per page. */
export class Engine {
  /** Milliseconds of the last call's stages, for the page and the benchmark. */
  lastTimings: Timings = { decodeMs: 0, graphMs: 0, modelsMs: 0 };

  private constructor(
    readonly manifest: Manifest,
    readonly flags: Record<string, boolean>,
    private readonly graphs: Record<keyof typeof EDGE_GRAPHS, ort.InferenceSession>,
    private readonly names: Record<Source, readonly string[]>,
    private readonly rates: Record<Source, readonly number[]>,
    private readonly plans: Map<string, TaskPlan>,
    private readonly sessions: Map<string, ort.InferenceSession>,
    readonly rules: Rules,
  ) {}

  /**
   * Load the bundle. The edge graphs are required (BundleError without them: nothing can be
   * computed); a missing, tampered or broken model makes its task answer from the rules.
   */
  static async load(options: EngineOptions = {}): Promise<Engine> {
    const page = globalThis.location?.href ?? "http://localhost/";
    const bundleUrl = resolve(options.bundleUrl ?? "bundle/", page);
    const get = options.fetch ?? globalThis.fetch.bind(globalThis);
    ort.env.wasm.wasmPaths = { wasm: resolve(options.wasmUrl ?? "ort/ort-wasm-simd-threaded.wasm", page).href };
    ort.env.logLevel = "error";

    const fetchBytes = async (file: string): Promise<Uint8Array | null> => {
      try {
        const response = await get(resolve(file, bundleUrl));
        return response.ok ? new Uint8Array(await response.arrayBuffer()) : null;
      } catch {
        return null;
      }
    };
    const manifestBytes = await fetchBytes("manifest.json");
    if (manifestBytes === null) throw new BundleError(`no manifest.json under ${bundleUrl.href}`);
    const manifest = parseManifest(new TextDecoder().decode(manifestBytes));

    const graphs = {} as Record<keyof typeof EDGE_GRAPHS, ort.InferenceSession>;
    for (const name of Object.keys(EDGE_GRAPHS) as (keyof typeof EDGE_GRAPHS)[]) {
      const entry = manifest.edge?.[name];
      if (!entry) throw new BundleError(`the bundle has no edge graph "${name}": rebuild it with the export pipeline`);
      const bytes = await fetchBytes(entry.file);
      if (bytes === null) throw new BundleError(`${entry.file} is missing from the bundle`);
      if (sha256Hex(bytes) !== entry.sha256) throw new BundleError(`${entry.file}: sha256 differs from the manifest`);
      graphs[name] = await ort.InferenceSession.create(bytes, sessionOptions);
    }
    const edge = manifest.edge as NonNullable<Manifest["edge"]>;
    const names = { mix: edge.features.names, alignment: edge.alignment.names };
    const rates = { mix: edge.features.sample_rates, alignment: edge.alignment.sample_rates };
    const rules = new Rules(names.mix, names.alignment);
    const flags = resolveFlags(manifest.flags, options.flags);

    const sessions = new Map<string, ort.InferenceSession>();
    const plans = new Map<string, TaskPlan>();
    for (const spec of TASKS) {
      const inputDim = names[spec.source].length;
      const failures: Record<string, string> = {};
      const draft = taskPlan(spec, manifest, flags, inputDim, {});
      if (draft.reason === null) {
        for (const [version, model] of Object.entries(manifest.tasks[spec.name].models)) {
          if (model.status === "retired" || draft.staticFailures[version]) continue;
          const bytes = await fetchBytes(model.file);
          if (bytes === null) failures[version] = "file_missing";
          else if (sha256Hex(bytes) !== model.sha256) failures[version] = "sha256_mismatch";
          else {
            const session = await loadModel(bytes, spec, model.output_dim);
            if (typeof session === "string") failures[version] = session;
            else sessions.set(`${spec.name}/${version}`, session);
          }
        }
      }
      plans.set(spec.name, taskPlan(spec, manifest, flags, inputDim, failures));
    }
    return new Engine(manifest, flags, graphs, names, rates, plans, sessions, rules);
  }

  /** The feature names and values of an audio file (mixai-infer features). */
  async features(bytes: ArrayBuffer): Promise<{ names: string[]; values: number[] }> {
    const values = await this.featureVector(bytes);
    return { names: [...this.names.mix], values: Array.from(values) };
  }

  /** Mastering parameters and preset of a mix: the JSON of `mixai-infer predict --json`. */
  async predict(bytes: ArrayBuffer, options: CallOptions = {}): Promise<Record<string, unknown>> {
    const features = await this.featureVector(bytes);
    const start = performance.now();
    const answers = await this.answer("mix", features, options.userId ?? null);
    this.lastTimings.modelsMs = performance.now() - start;
    return merged(answers);
  }

  /** Offset and confidence of a vocal against its instrumental (`mixai-infer align --json`). */
  async align(
    vocal: ArrayBuffer,
    instrumental: ArrayBuffer,
    options: CallOptions = {},
  ): Promise<Record<string, unknown>> {
    let start = performance.now();
    const rates = this.rates.alignment;
    const v = await decodeAudio(vocal, rates, "vocal");
    // both stems at the vocal's decoding rate, as mixai-infer resamples the instrumental to it
    const i = await decodeAudio(instrumental, [v.sampleRate], "instrumental");
    const decodeMs = performance.now() - start;
    start = performance.now();
    const out = await this.graphs.alignment.run({
      vocal: audioTensor(v),
      instrumental: audioTensor(i),
      sample_rate: rateTensor(v.sampleRate),
    });
    const features = out.alignment_features.data as Float32Array;
    const offsetMs = (out.offset_ms.data as Float32Array)[0];
    const graphMs = performance.now() - start;
    start = performance.now();
    const answers = await this.answer("alignment", features, options.userId ?? null);
    this.lastTimings = { decodeMs, graphMs, modelsMs: performance.now() - start };
    return { offset_ms: offsetMs, ...merged(answers) };
  }

  /** Where a user's requests for a task go (before any model runs). */
  route(task: string, userId: string | null = null): Decision {
    return decide(this.plans.get(task) as TaskPlan, userId);
  }

  private async featureVector(bytes: ArrayBuffer): Promise<Float32Array> {
    let start = performance.now();
    const audio = await decodeAudio(bytes, this.rates.mix);
    const decodeMs = performance.now() - start;
    start = performance.now();
    const out = await this.graphs.features.run({
      audio: audioTensor(audio),
      sample_rate: rateTensor(audio.sampleRate),
    });
    this.lastTimings = { decodeMs, graphMs: performance.now() - start, modelsMs: 0 };
    return out.features.data as Float32Array;
  }

  /** Each task of `source` answered from its routed model or its rule (Predictor._answer). */
  private async answer(source: Source, row: Float32Array, userId: string | null): Promise<Answer[]> {
    const valid = row.every(Number.isFinite);
    const answers: Answer[] = [];
    for (const spec of TASKS.filter((task) => task.source === source)) {
      const decision = this.route(spec.name, userId);
      let provenance = provenanceOf(decision);
      let values: number[] | null = null;
      if (provenance.source === "ml") {
        const result = await this.run(spec, decision.version as string, row, valid);
        values = result.values === null ? null : finish(spec, result.values);
        if (result.reason !== null) provenance = fallback(provenance, result.reason);
        else if (values === null) provenance = fallback(provenance, "bad_output");
      }
      answers.push({ spec, values: values ?? spec.rule(this.rules, row), provenance });
    }
    return answers;
  }

  private async run(
    spec: TaskSpec,
    version: string,
    row: Float32Array,
    valid: boolean,
  ): Promise<{ values: number[] | null; reason: string | null }> {
    const session = this.sessions.get(`${spec.name}/${version}`);
    if (session === undefined) return { values: null, reason: "load_error" }; // not routed here
    if (!valid) return { values: null, reason: "invalid_features" };
    let output: ort.Tensor;
    try {
      const feed = { [spec.inputTensor]: new ort.Tensor("float32", row, [1, row.length]) };
      output = (await session.run(feed))[spec.outputTensor];
    } catch {
      return { values: null, reason: "runtime_error" };
    }
    const dims = output.dims;
    if (dims.length !== 2 || dims[0] !== 1 || dims[1] !== spec.outputs.length) {
      return { values: null, reason: "bad_output" };
    }
    const values = Array.from(output.data as Float32Array);
    if (!values.every(Number.isFinite)) return { values: null, reason: "non_finite_output" };
    return { values, reason: null };
  }
}

const sessionOptions: ort.InferenceSession.SessionOptions = {
  executionProviders: ["wasm"],
  graphOptimizationLevel: "all",
};

/** A verified model's session, or the reason it cannot serve (load_error, io_mismatch). */
async function loadModel(
  bytes: Uint8Array,
  spec: TaskSpec,
  outputDim: number,
): Promise<ort.InferenceSession | string> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, sessionOptions);
  } catch {
    return "load_error";
  }
  const io = session.inputNames.includes(spec.inputTensor) && session.outputNames.includes(spec.outputTensor);
  return io && outputDim === spec.outputs.length ? session : "io_mismatch";
}

const audioTensor = (audio: DecodedAudio): ort.Tensor =>
  new ort.Tensor("float32", interleaveRows(audio.channels), [audio.channels.length, audio.channels[0].length]);

const rateTensor = (rate: number): ort.Tensor => new ort.Tensor("int64", BigInt64Array.of(BigInt(rate)), []);

function provenanceOf(decision: Decision): Provenance {
  return {
    source: decision.reason === null && decision.version !== null ? "ml" : "rules",
    model_version: decision.version,
    variant: decision.variant,
    experiment_id: decision.experimentId,
    reason: decision.reason,
    personalized: false,
  };
}

const fallback = (provenance: Provenance, reason: string): Provenance => ({ ...provenance, source: "rules", reason });

/** Every answer's fields, then each task's provenance under the task's name (results._merged). */
function merged(answers: readonly Answer[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const answer of answers) Object.assign(out, answerFields(answer.spec, answer.values));
  // The out-of-distribution guard does not run in the browser: no score, as a bundle without
  // training references answers in Python (docs/edge.md).
  for (const answer of answers) out[answer.spec.name] = { ...answer.provenance, ood_score: null, ood: false };
  return out;
}
