#!/usr/bin/env bash
# Start Label Studio 1.23.2 with a ready demo project (our labeling config, generated recordings
# served by a local-files storage) connected to a RUNNING backend, with pre-annotations retrieved.
# Prints the URL and login; Ctrl-C stops Label Studio.
#
#   scripts/demo.sh BACKEND_URL            e.g. scripts/demo.sh http://127.0.0.1:9090
#
#   DEMO_DIR         working folder, wiped at start (default ~/.cache/recmeta/demo)
#   DEMO_PORT        Label Studio port (default 8080)
#   DEMO_RECORDINGS  generated recordings (default 12)
#
# The backend needs no Label Studio settings for the demo: Label Studio's /setup call gives it the
# hostname and the admin's legacy token. To set them anyway (see docs/label-studio.md):
#   LABEL_STUDIO_URL=http://127.0.0.1:8080 LABEL_STUDIO_API_KEY=recmeta-demo-token, or
#   LOCAL_FILES_DOCUMENT_ROOT=$DEMO_DIR/documents to read the frames from disk.
set -euo pipefail
cd "$(dirname "$0")/.."

backend="${1:-}"
if [[ -z "$backend" ]]; then
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
  echo "start a backend first, e.g.: MODEL_DIR=models .venv/bin/python -m backend --port 9090" >&2
  exit 2
fi
if ! curl -fsS --max-time 5 "$backend/health" >/dev/null; then
  echo "demo: no backend answers at $backend/health; start it first (python -m backend --port ...)" >&2
  exit 1
fi

dir="${DEMO_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/recmeta/demo}"
# Wipe only a folder an earlier demo made (or an empty one), never an arbitrary DEMO_DIR.
if [[ -d "$dir" && -n "$(ls -A "$dir")" && ! -f "$dir/.recmeta-demo" ]]; then
  echo "demo: $dir exists and is not a demo folder; set DEMO_DIR to a new path" >&2
  exit 1
fi
rm -rf "$dir"
mkdir -p "$dir/documents"
touch "$dir/.recmeta-demo"
echo "demo: preparing the Label Studio venv (the first time takes about a minute)" >&2
bash scripts/ls_venv.sh >/dev/null

PYTHONPATH=. exec .venv/bin/python - "$backend" "$dir" "${DEMO_PORT:-8080}" "${DEMO_RECORDINGS:-12}" <<'PY'
import json
import signal
import sys
from pathlib import Path

from tests.e2e.ls_server import REPO_ROOT, LabelStudio, LabelStudioConfig
from training.synthetic import generate

# A closed terminal or `kill` must stop Label Studio too (its own process group does not get them).
for sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(sig, lambda *_: sys.exit(0))
backend_url, root, port, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
recordings = generate(root / "documents" / "synthetic", recordings=n, subjects=max(1, n // 3)).root
# The generator numbers people from 0 in every set; these are not the default model's people, so that
# "Start training" adds them to its split as new subjects.
tasks = json.loads((recordings / "tasks.json").read_text(encoding="utf-8"))
for task in tasks:
    task["data"]["subject_id"] = "demo_" + task["data"]["subject_id"]
(recordings / "tasks.json").write_text(json.dumps(tasks, indent=1), encoding="utf-8")
config = LabelStudioConfig(data_dir=root / "label-studio", document_root=root / "documents", port=port,
                           password="recmeta-demo", legacy_token="recmeta-demo-token")
print(f"demo: starting Label Studio on port {port} (about 40 s on a fresh folder)", flush=True)
with LabelStudio(config) as ls:
    label_config = (REPO_ROOT / "label_config.xml").read_text(encoding="utf-8")
    project = ls.create_recordings_project("recmeta demo", label_config, recordings)
    ls.connect_ml_backend(project["id"], backend_url)
    ls.retrieve_predictions(project["id"])
    # The backend points the project's model_version at its version right after the predictions
    # are stored, which fills the Prediction score column (docs/label-studio.md).
    tab = ls.create_view(project["id"], "Least certain first", ["tasks:predictions_score"])
    tasks = ls.tasks(project["id"])
    predicted = sum(1 for t in tasks if t["predictions"])
    print(f"""
Label Studio:   {ls.url}/projects/{project['id']}/data
least certain:  {ls.url}/projects/{project['id']}/data?tab={tab['id']} (ordered by prediction score)
login:          {config.username} / {config.password}
legacy token:   {config.legacy_token}
backend:        {backend_url}
pre-annotated:  {predicted} of {len(tasks)} tasks (open a task to see the predicted choices)
server log:     {ls.log_path}
Ctrl-C stops Label Studio.""", flush=True)
    try:
        ls.process.wait()
    except KeyboardInterrupt:
        print("\ndemo: stopping Label Studio", flush=True)
PY
