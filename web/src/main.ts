// The page: choose a mix, or a vocal and an instrumental; everything runs here, offline.
// The engine is exposed as window.mixaiEdge (CONTRACTS §11) for the MIXAI app and the tests.

import { Engine } from "./engine.ts";
import { MASTER_PARAM_NAMES, MASTER_PARAM_RANGES, PRESETS } from "./tasks.ts";

let loading: Promise<Engine> | null = null;
const engine = (): Promise<Engine> => (loading ??= Engine.load());

export interface MixaiEdge {
  ready(): Promise<void>;
  features(bytes: ArrayBuffer): Promise<{ names: string[]; values: number[] }>;
  predict(bytes: ArrayBuffer, options?: { userId?: string | null }): Promise<Record<string, unknown>>;
  align(
    vocal: ArrayBuffer,
    instrumental: ArrayBuffer,
    options?: { userId?: string | null },
  ): Promise<Record<string, unknown>>;
  /** The loaded engine (timings, routing), for tools and tests. */
  engine(): Promise<Engine>;
}

const api: MixaiEdge = {
  ready: async () => void (await engine()),
  features: async (bytes) => (await engine()).features(bytes),
  predict: async (bytes, options) => (await engine()).predict(bytes, options),
  align: async (vocal, instrumental, options) => (await engine()).align(vocal, instrumental, options),
  engine,
};
(globalThis as unknown as { mixaiEdge: MixaiEdge }).mixaiEdge = api;

// --- the page ----------------------------------------------------------------------------------

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

function element(tag: string, text = "", className = ""): HTMLElement {
  const node = document.createElement(tag);
  node.textContent = text;
  if (className) node.className = className;
  return node;
}

function provenanceText(p: Record<string, string | null>): string {
  let text = p.source === "ml" ? `model ${p.model_version}` : "rules";
  if (p.variant) text += `, variant ${p.variant} of ${p.experiment_id}`;
  if (p.reason) text += ` (reason: ${p.reason})`;
  return text;
}

function showPrediction(out: Record<string, unknown>): void {
  const params = $("params");
  params.replaceChildren();
  for (const name of MASTER_PARAM_NAMES) {
    const [low, high] = MASTER_PARAM_RANGES[name];
    const row = element("tr");
    row.append(element("th", name), element("td", (out[name] as number).toFixed(2), "num"));
    row.append(element("td", `${low} … ${high}`, "range"));
    params.append(row);
  }
  $("params-source").textContent = provenanceText(out.master_reg as Record<string, string | null>);
  const scores = out.preset_scores as Record<string, number>;
  const list = $("presets");
  list.replaceChildren();
  for (const preset of [...PRESETS].sort((a, b) => scores[b] - scores[a])) {
    const item = element("li", "", preset === out.preset ? "best" : "");
    const bar = element("span", "", "bar");
    bar.style.width = `${(100 * scores[preset]).toFixed(1)}%`;
    item.append(element("span", preset, "label"), bar, element("span", scores[preset].toFixed(3), "num"));
    list.append(item);
  }
  $("preset-source").textContent = provenanceText(out.preset_cls as Record<string, string | null>);
  $("mix-result").hidden = false;
}

function showAlignment(out: Record<string, unknown>): void {
  const offset = out.offset_ms as number;
  $("offset").textContent = `${offset >= 0 ? "+" : ""}${offset.toFixed(1)} ms`;
  $("confidence").textContent = (out.confidence as number).toFixed(3);
  $("align-source").textContent = provenanceText(out.align_conf as Record<string, string | null>);
  $("align-result").hidden = false;
}

async function analyse(event: Event): Promise<void> {
  event.preventDefault();
  const status = $("status");
  const mode = ($("mode-align") as HTMLInputElement).checked ? "align" : "mix";
  const userId = ($("user-id") as HTMLInputElement).value.trim() || null;
  const file = (id: string) => ($(id) as HTMLInputElement).files?.[0];
  try {
    const started = performance.now();
    const e = await engine();
    if (mode === "mix") {
      const mix = file("mix-file");
      if (!mix) throw new Error("choose a mix first");
      showPrediction(await e.predict(await mix.arrayBuffer(), { userId }));
    } else {
      const vocal = file("vocal-file");
      const instrumental = file("instrumental-file");
      if (!vocal || !instrumental) throw new Error("choose a vocal and an instrumental");
      showAlignment(await e.align(await vocal.arrayBuffer(), await instrumental.arrayBuffer(), { userId }));
    }
    const t = e.lastTimings;
    status.textContent =
      `done in ${(performance.now() - started).toFixed(0)} ms (decode ${t.decodeMs.toFixed(0)}, ` +
      `features ${t.graphMs.toFixed(0)}, models ${t.modelsMs.toFixed(1)} ms), on this device`;
    status.className = "ok";
  } catch (error) {
    status.textContent = `${(error as Error).name}: ${(error as Error).message}`;
    status.className = "error";
  }
}

function showMode(): void {
  const align = ($("mode-align") as HTMLInputElement).checked;
  $("mix-inputs").hidden = align;
  $("align-inputs").hidden = !align;
}

if (typeof document !== "undefined") {
  document.addEventListener("DOMContentLoaded", () => {
    $("form").addEventListener("submit", (event) => void analyse(event));
    for (const id of ["mode-mix", "mode-align"]) $(id).addEventListener("change", showMode);
    showMode();
    const status = $("status");
    engine().then(
      (e) => {
        const tasks = ["master_reg", "preset_cls", "align_conf"].map((task) => {
          const d = e.route(task);
          return `${task}: ${d.reason === null ? `model ${d.version}` : `rules (${d.reason})`}`;
        });
        $("engine").textContent = `bundle of ${e.manifest.created_at}; ${tasks.join("; ")}`;
        status.textContent = "ready: your audio stays on this device";
      },
      (error: Error) => {
        status.textContent = `the engine could not start: ${error.message}`;
        status.className = "error";
      },
    );
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.register("sw.js").then(
        () => navigator.serviceWorker.ready.then(() => ($("offline").textContent = "available offline")),
        () => ($("offline").textContent = "offline use unavailable (no service worker)"),
      );
    }
  });
}
