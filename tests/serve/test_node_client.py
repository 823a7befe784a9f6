"""The TypeScript example of docs/deployment.md, run under Node against a live service."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from service_support import FEATURES, Service
from test_service import tone

DEPLOYMENT_DOC = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"
TOKEN = "node-test-token"


def example_as_javascript() -> str:
    """The ``typescript`` block of the deployment page with its type annotations removed."""
    (code,) = re.findall(r"```typescript\n(.*?)```", DEPLOYMENT_DOC.read_text("utf-8"), re.S)
    code = code.replace("export async function", "async function")
    code = re.sub(r"\): Promise<any> \{", ") {", code)
    code = re.sub(r"const headers: Record<string, string> =", "const headers =", code)
    return re.sub(
        r"(\w): (?:string \| FormData|string|boolean|number\[\]|Blob)(?=[,)])", r"\1", code
    )


def test_the_documented_typescript_calls_the_service(
    bundle: Path, sqlite_db: str, start_service: Callable[..., Service], tmp_path: Path
) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    service = start_service(bundle, sqlite_db, MIXAI_SERVICE_TOKEN=TOKEN)
    mix = tone(tmp_path / "mix.wav")
    harness = f"""
(async () => {{
  const byFeatures = await masteringFromFeatures({json.dumps(FEATURES)}, "user-ts", "job-ts");
  const bytes = require("fs").readFileSync({json.dumps(str(mix))});
  const wav = new Blob([bytes], {{ type: "audio/wav" }});
  const byAudio = await masteringFromAudio(wav, "user-ts", "job-2");
  let refused = null;
  try {{
    await masteringFromFeatures([1, 2, 3], "user-ts", "job-3");
  }} catch (e) {{
    refused = e.message;
  }}
  console.log(JSON.stringify({{ byFeatures, byAudio, refused }}));
}})().catch((e) => {{ console.error(e); process.exit(1); }});
"""
    script = tmp_path / "client.js"
    script.write_text(example_as_javascript() + harness, encoding="utf-8")
    env = {"MIXAI_URL": f"http://127.0.0.1:{service.port}", "MIXAI_SERVICE_TOKEN": TOKEN}
    done = subprocess.run(
        [node, str(script)], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["byFeatures"]["master_reg"]["source"] == "ml"
    assert out["byFeatures"]["target_lufs"] == -19.5
    assert out["byAudio"]["preset"]
    assert len(out["byAudio"]["request_id"]) == 32
    assert out["refused"].startswith("mixai-serve 400: features must have 175 numbers")
