"""What the serving image does, tested without a Docker engine (none runs here or in CI).

The test reads the Dockerfile and .dockerignore and replays the image's steps on this machine: the COPYs
into an /app-like folder (through the .dockerignore filter), the RUN of scripts/docker_install.sh into a
clean virtualenv (the image's ENV applied), then the ENTRYPOINT on a model directory, a /predict on
local frames, and the HEALTHCHECK command line. What Docker alone does (apt-get, useradd, the volume)
is checked as Dockerfile text.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

import numpy as np
import pytest

from backend_fixtures import add_tiny_version, grey_image_bytes, ls_fixture, recorded_schema, reference_probs
from e2e.server_process import free_port, wait_for_health
from training.preprocess import PreprocessConfig, load_frame
from training.propagation import load_rules

ROOT = Path(__file__).resolve().parent.parent
COMPILERS = ("gcc", "g++", "clang", "build-essential", "make", "cmake")
JEMALLOC_ON_HOST = any(Path(d, "libjemalloc.so.2").is_file()
                       for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu"))
FRAME_GREY = 70  # every frame of the recorded task gets this grey value


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: continuation lines joined, comment lines dropped."""
    instructions, pending = [], ""
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, args = pending.strip().partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    return instructions


def stage(instructions, name: str | None = None) -> list[tuple[str, str]]:
    """The instructions that build stage `name` (default: the last stage, what `docker build` builds),
    its parent stages' first; FROM lines dropped."""
    stages, parents, current = {}, {}, None
    for keyword, args in instructions:
        if keyword == "FROM":
            words = args.split()
            current = words[2] if len(words) == 3 and words[1].upper() == "AS" else f"#{len(stages)}"
            stages[current], parents[current] = [], words[0]
        else:
            stages[current].append((keyword, args))
    name = name or current
    chain = stages[name]
    while parents[name] in stages:
        name = parents[name]
        chain = stages[name] + chain
    return chain


def args_of(instructions, keyword: str) -> list[str]:
    return [args for kw, args in instructions if kw == keyword]


def image_env(instructions) -> dict[str, str]:
    """The Dockerfile's ENV key=value pairs (the only ENV form this Dockerfile uses)."""
    env = {}
    for args in args_of(instructions, "ENV"):
        for pair in shlex.split(args):
            key, sep, value = pair.partition("=")
            assert sep, f"Dockerfile: ENV {pair!r} is not key=value"
            env[key] = value
    return env


def dockerignore_excludes(patterns: list[str]):
    """Docker's .dockerignore rule: the last pattern matching a path or one of its parent folders wins."""
    def regex(pattern: str) -> re.Pattern:
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**", i):
                i += 2 + pattern.startswith("/", i + 2)
                out += ".*" if i >= len(pattern) else "(.*/)?"
                continue
            out += {"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i]))
            i += 1
        return re.compile(out + r"\Z")

    rules = [(p.startswith("!"), regex(p.lstrip("!").strip("/"))) for p in patterns]

    def excluded(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
        verdict = False
        for negated, pattern in rules:
            if any(pattern.match(prefix) for prefix in prefixes):
                verdict = not negated
        return verdict
    return excluded


def replay_copies(instructions, context: Path, app: Path) -> None:
    """Every COPY, as Docker does it, with the image's WORKDIR mapped to `app`."""
    ignore = (context / ".dockerignore").read_text().splitlines()
    excluded = dockerignore_excludes([p.strip() for p in ignore if p.strip() and not p.startswith("#")])
    workdir = PurePosixPath(args_of(instructions, "WORKDIR")[-1])
    for args in args_of(instructions, "COPY"):
        *sources, dest = shlex.split(args)
        assert not any(s.startswith("--") for s in sources), f"Dockerfile: COPY {args}: flags are not replayed"
        target = app / (workdir / dest).relative_to(workdir)
        for source in sources:
            assert not excluded(source), f"Dockerfile: COPY {source} is excluded by .dockerignore"
            path = context / source
            if path.is_dir():  # Docker copies a folder's contents, minus what .dockerignore leaves out
                for file in sorted(p for p in path.rglob("*") if p.is_file()):
                    relative = file.relative_to(context).as_posix()
                    if not excluded(relative):
                        (target / file.relative_to(path)).parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(file, target / file.relative_to(path))
            else:
                into = target / path.name if dest.endswith("/") else target
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, into)


def healthcheck(instructions) -> tuple[str, float]:
    """(the shell command, its timeout in seconds) of the HEALTHCHECK."""
    (args,) = args_of(instructions, "HEALTHCHECK")
    options, _, command = args.partition(" CMD ")
    timeout = re.search(r"--timeout=(\d+)s", options)
    return command.strip(), float(timeout.group(1)) if timeout else 30.0


@pytest.fixture(scope="module")
def dockerfile():
    """The serving image: the Dockerfile's last (default) stage."""
    return stage(dockerfile_instructions((ROOT / "Dockerfile").read_text()))


@pytest.fixture(scope="module")
def train_dockerfile():
    return stage(dockerfile_instructions((ROOT / "Dockerfile").read_text()), "train")


def test_dockerfile_serves_as_non_root_without_compilers_with_a_model_volume(dockerfile):
    env = image_env(dockerfile)
    (user,) = args_of(dockerfile, "USER")
    assert user.split(":")[0] not in ("root", "0")
    assert env["MODEL_DIR"] in json.loads(args_of(dockerfile, "VOLUME")[0])
    assert args_of(dockerfile, "EXPOSE") == [env["PORT"]]
    assert healthcheck(dockerfile)[0]
    runs = " ".join(args_of(dockerfile, "RUN"))
    assert not [c for c in COMPILERS if re.search(rf"(^|\s){re.escape(c)}(\s|$)", runs)]
    assert "libjemalloc2" in runs and env["MALLOC"] in ("glibc", "jemalloc")  # the entrypoint preloads jemalloc
    assert [r for r in args_of(dockerfile, "RUN") if "scripts/docker_install.sh" in r]


@pytest.fixture(scope="module")
def image(dockerfile, tmp_path_factory):
    return replay_image(dockerfile, tmp_path_factory.mktemp("image"))


@pytest.fixture(scope="module")
def train_image(train_dockerfile, tmp_path_factory):
    return replay_image(train_dockerfile, tmp_path_factory.mktemp("train-image"))


def replay_image(dockerfile, root: Path) -> SimpleNamespace:
    """The image's files and its installed clean virtualenv; env: the image's ENV over this machine's."""
    app, venv, tmp = root / "app", root / "venv", root / "tmp"
    tmp.mkdir()
    replay_copies(dockerfile, ROOT, app)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHON", "LD_PRELOAD")}
    env.update(image_env(dockerfile))
    # pip's build folders and the entrypoint's metrics folder stay in tmp; PIP_NO_CACHE_DIR is the image's.
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", TMPDIR=str(tmp), HOME=str(tmp))
    (install,) = [r for r in args_of(dockerfile, "RUN") if "scripts/docker_install.sh" in r]
    done = subprocess.run(["/bin/sh", "-c", install], cwd=app, env=dict(env, PYTHON=str(venv / "bin" / "python")),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"RUN {install} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return SimpleNamespace(app=app, python=str(venv / "bin" / "python"), env=env)


@pytest.mark.slow
def test_install_step_gives_a_consistent_torch_free_environment(image):
    probe = "import importlib.util as u; print(u.find_spec('torch') is None, u.find_spec('onnxruntime') is not None)"
    found = subprocess.run([image.python, "-c", probe], env=image.env, capture_output=True, text=True, check=True)
    assert found.stdout.split() == ["True", "True"]
    check = subprocess.run([image.python, "-m", "pip", "check"], env=image.env, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


@pytest.mark.slow
def test_training_image_retrains_where_the_backend_runs(train_dockerfile, train_image, tmp_path):
    """The train target: same entrypoint, user and volume as the serving image, and a real
    `python -m training.fit` (what a local active-learning job runs) works in its environment."""
    assert args_of(train_dockerfile, "ENTRYPOINT") and args_of(train_dockerfile, "USER")[-1] != "root"
    check = subprocess.run([train_image.python, "-m", "pip", "check"], env=train_image.env, capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout
    run = [train_image.python, "-m"]
    env = dict(train_image.env, PYTHONPATH="")  # the image's /app, not this checkout
    subprocess.run(run + ["training.synthetic", "--out", str(tmp_path / "syn"), "--recordings", "6",
                          "--subjects", "6", "--frames", "3", "--size", "32"],
                   cwd=train_image.app, env=env, check=True, capture_output=True, timeout=120)
    fit = subprocess.run(run + ["training.fit", "--export", str(tmp_path / "syn" / "export.json"),
                                "--data-root", str(tmp_path), "--out", str(tmp_path / "run"), "--image-size", "32",
                                "--frames", "3", "--width", "0.25", "--steps", "3", "--epochs-per-step", "1",
                                "--threads", "1", "--batch-size", "4", "--no-progress"],
                         cwd=train_image.app, env=env, capture_output=True, text=True, timeout=300)
    assert fit.returncode == 0, fit.stdout[-2000:] + fit.stderr[-2000:]
    assert (tmp_path / "run" / "model.onnx").is_file() and (tmp_path / "run" / "split.json").is_file()


def expected_choices(weights, schema) -> dict[str, tuple[str, float]]:
    """The tiny model on all-FRAME_GREY frames, decoded jointly: {label: (choice, score)}."""
    frames = load_frame(grey_image_bytes(FRAME_GREY), PreprocessConfig(image_size=16))[None, None]
    probs = reference_probs(weights, np.repeat(frames, 4, axis=0), np.ones(4, np.float32))
    decoded = load_rules(schema).joint_decode(probs)
    return {name: (schema[name].classes[index], prob) for name, (index, prob) in decoded.items()}


@pytest.mark.slow
def test_entrypoint_serves_predictions_and_answers_the_healthcheck(dockerfile, image, tmp_path):
    body = ls_fixture("predict_request_interactive.json")
    docroot = tmp_path / "docroot"
    for ref in body["tasks"][0]["data"]["frames"]:
        frame = docroot / ref.split("?d=", 1)[1]
        frame.parent.mkdir(parents=True, exist_ok=True)
        frame.write_bytes(grey_image_bytes(FRAME_GREY))
    schema = recorded_schema()
    weights = add_tiny_version(tmp_path / "models", tmp_path, "image-v1", schema=schema, frames=4)
    port = free_port()
    env = dict(image.env, MODEL_DIR=str(tmp_path / "models"), PORT=str(port), HOST="127.0.0.1",
               LOCAL_FILES_DOCUMENT_ROOT=str(docroot), ONNX_THREADS="1")
    (entrypoint,) = json.loads(args_of(dockerfile, "ENTRYPOINT")[0])
    workdir = PurePosixPath(args_of(dockerfile, "WORKDIR")[-1])
    command = [str(image.app / PurePosixPath(entrypoint).relative_to(workdir))]  # exec form: needs its x bit
    check_cmd, check_timeout = healthcheck(dockerfile)
    log = tmp_path / "server.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(command, cwd=image.app, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        health = wait_for_health(f"http://127.0.0.1:{port}", proc, timeout_s=60, log=log)
        assert health["status"] == "UP" and health["model_version"] == "image-v1"
        request = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            (entry,) = json.loads(response.read())["results"]
        got = {item["from_name"]: (item["value"]["choices"][0], item["score"]) for item in entry["result"]}
        expected = expected_choices(weights, schema)
        assert list(got) == list(schema.names)
        for name, (choice, score) in expected.items():
            assert got[name][0] == choice and got[name][1] == pytest.approx(score, abs=1e-5)
        maps = Path(f"/proc/{proc.pid}/maps").read_text()  # the image's MALLOC choice is the serving process's
        assert ("libjemalloc" in maps) == (env["MALLOC"] == "jemalloc" and JEMALLOC_ON_HOST)
        up = subprocess.run(["/bin/sh", "-c", check_cmd], env=env, capture_output=True, timeout=check_timeout)
        assert up.returncode == 0, up.stderr.decode()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    down = subprocess.run(["/bin/sh", "-c", check_cmd], env=env, capture_output=True, timeout=check_timeout)
    assert down.returncode != 0  # the HEALTHCHECK notices a server that is gone
