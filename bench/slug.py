"""The size of the slug that `git push heroku main` builds, made here as Heroku's Python buildpack would make it.

    python bench/slug.py [--work /tmp/slug] [--reuse]

Steps, in the buildpack's order:
1. the app: the files git would push (`git ls-files`, with files not yet committed), less what `.slugignore` names;
2. the Python runtime in `.heroku/python`: this machine's CPython of `.python-version` (its standard library
   without `test/` and the static `libpython*.a`, which Heroku's builds do not ship either), a fresh virtual
   environment over it, and `pip install -r requirements.txt` into it;
3. bytecode compiled for every module (`compileall`, as the buildpack does after installing);
4. `bin/post_compile`, run from the app's folder with that Python first on PATH;
5. a smoke check: the slug's Python imports the service in both roles and answers one prediction;
6. the slug: `tar czf` of the folder (gzip's default level, as Heroku's builder). Heroku's limit is 500 MB
   compressed (a warning above 300 MB); the goal here is <= 400 MB.

`--reuse` keeps step 2's install from a previous run (pip's download cache makes a fresh one ~2-4 minutes); the
"before post_compile" figure is then that of an install already stripped.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMOKE = """
import base64, io, json, sys, tempfile
from PIL import Image, ImageDraw
from livedigits.config import Config
from main import create_app, close_service
image = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
ImageDraw.Draw(image).line([(140, 40), (140, 240)], fill=(0, 0, 0, 255), width=18)
buffer = io.BytesIO(); image.save(buffer, "PNG")
body = {"image": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()}
for role in ("serve", "all"):
    with tempfile.TemporaryDirectory() as store:
        app = create_app(Config(storage_url=store, role=role))
        if role == "all":
            app.extensions["learner"].wait_booted()  # it loads TensorFlow on its own thread, while the app answers
        answer = app.test_client().post("/api/predict", json=body).get_json()["answer"]
        if role == "all":  # one SGD step of both models: TensorFlow's training kernels run too
            learned = app.test_client().post("/api/train", json={**body, "label": 1}).get_json()["model_version"]
            answer = f"{answer}, learns (version {learned})"
        close_service(app)
        print(role, "answers", answer, "- tensorflow loaded:", "tensorflow" in sys.modules)
"""


def slugignore_patterns() -> list[str]:
    path = ROOT / ".slugignore"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    """.slugignore's rules as Heroku applies them: a pattern with a slash is anchored at the root, one without
    matches a name at any depth; a match on a folder drops everything under it."""
    parts = relative.split("/")
    for pattern in patterns:
        anchored = pattern.strip("/")
        if "/" in pattern:
            if any(fnmatch.fnmatch("/".join(parts[: i + 1]), anchored) for i in range(len(parts))):
                return True
        elif any(fnmatch.fnmatch(part, anchored) for part in parts):
            return True
    return False


def copy_app(app: Path) -> tuple[int, int]:
    """Step 1; (files kept, files left out by .slugignore)."""
    listing = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]  # a commit's files, and new ones
    files = subprocess.run(listing, cwd=ROOT, capture_output=True, check=True).stdout
    patterns, kept, dropped = slugignore_patterns(), 0, 0
    for relative in filter(None, files.decode().split("\0")):
        if ignored(relative, patterns):
            dropped += 1
            continue
        target = app / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)
        kept += 1
    return kept, dropped


def install_runtime(python_home: Path) -> None:
    """Step 2: the standard library and interpreter, then a virtual environment with the requirements."""
    version = (ROOT / ".python-version").read_text().strip()
    if f"{sys.version_info.major}.{sys.version_info.minor}" != version:
        sys.exit(f".python-version says {version}; run this bench with that Python")
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    target = python_home / "lib" / stdlib.name

    def leave_out(folder: str, names: list[str]) -> list[str]:
        here = Path(folder)
        out = [n for n in names if n in ("site-packages", "__pycache__") or n.endswith(".a")]
        return out + (["test"] if here == stdlib else [])

    shutil.copytree(stdlib, target, ignore=leave_out, symlinks=True)
    libdir = Path(sysconfig.get_config_var("LIBDIR"))
    for shared in libdir.glob("libpython3*.so*"):
        shutil.copy2(shared, python_home / "lib" / shared.name, follow_symlinks=False)
    subprocess.run([sys.executable, "-m", "venv", "--copies", str(python_home)], check=True)
    pip = [str(python_home / "bin" / "python"), "-m", "pip"]
    subprocess.run([*pip, "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "--quiet", "-r", str(ROOT / "requirements.txt")], check=True)


def megabytes(path: Path) -> float:
    total = sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())
    return total / 1e6


def compressed_megabytes(folder: Path, *members: str) -> float:
    """What `tar czf` of these members of `folder` weighs (gzip's default level, as Heroku's builder)."""
    tar = subprocess.Popen(["tar", "-czf", "-", "-C", str(folder), *members], stdout=subprocess.PIPE)
    size = 0
    while chunk := tar.stdout.read(1 << 20):
        size += len(chunk)
    if tar.wait():
        raise RuntimeError("tar failed")
    return size / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/slug"))
    parser.add_argument("--reuse", action="store_true", help="keep the Python install of a previous run")
    args = parser.parse_args()
    app, python_home = args.work / "app", args.work / "app" / ".heroku" / "python"
    started = time.monotonic()
    if not (args.reuse and (python_home / "bin" / "python").exists()):
        shutil.rmtree(args.work, ignore_errors=True)
        install_runtime(python_home)
        print(f"runtime and requirements installed in {time.monotonic() - started:.0f} s")
    for child in app.iterdir() if app.exists() else []:
        if child.name != ".heroku":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    kept, dropped = copy_app(app)
    print(f"app: {kept} files from git ls-files, {dropped} left out by .slugignore")
    python = str(python_home / "bin" / "python")
    subprocess.run([python, "-m", "compileall", "-q", "-j", "0", str(python_home / "lib"), str(app)],
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    site = python_home / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    before, before_compressed = megabytes(site), compressed_megabytes(app, ".")
    env = {**os.environ, "PATH": f"{python_home / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    if (app / "bin" / "post_compile").exists():
        subprocess.run(["bash", "bin/post_compile"], cwd=app, env=env, check=True)
    print(f"bin/post_compile: site-packages {before:,.0f} MB -> {megabytes(site):,.0f} MB; "
          f"the slug before it: {before_compressed:,.1f} MB compressed")  # fmt: skip
    smoke = subprocess.run([python, "-c", SMOKE], cwd=app, env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
                           capture_output=True, text=True, check=False)  # fmt: skip
    print("smoke check:", smoke.stdout.strip().replace("\n", "; "))
    if smoke.returncode:
        sys.exit(f"the slug does not run:\n{smoke.stderr[-3000:]}")

    packages = sorted(site.iterdir(), key=lambda p: -megabytes(p) if p.is_dir() else 0)[:6]
    print("\nlargest installed packages (uncompressed):")
    for package in packages:
        print(f"  {package.name:<28} {megabytes(package):8,.0f} MB")
    sizes = {
        "app": [p.name for p in app.iterdir() if p.name != ".heroku"],
        "python runtime + packages": [".heroku"],
    }
    print(f"\n{'':<28} {'uncompressed':>12} {'compressed':>11}")
    for label, members in sizes.items():
        raw = sum(megabytes(app / m) if (app / m).is_dir() else (app / m).stat().st_size / 1e6 for m in members)
        print(f"{label:<28} {raw:9,.0f} MB {compressed_megabytes(app, *members):8,.1f} MB")
    total = compressed_megabytes(app, ".")
    print(f"{'slug (tar czf of the app)':<28} {megabytes(app):9,.0f} MB {total:8,.1f} MB   goal <= 400 MB, limit 500")


if __name__ == "__main__":
    main()
