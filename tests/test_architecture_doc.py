"""docs/architecture.md lists every module of the installed packages (training/, backend/)."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _listed(sections: list[str], package: str, rel: Path) -> bool:
    """In a section of the package, `rel` (its path inside the package) in backticks; in a sub-package's own
    section ("### backend/active_learning ..."), its file name is enough."""
    return any((s.startswith(package) and f"`{rel.as_posix()}`" in s)
               or (rel.parent != Path(".") and s.startswith(f"{package}/{rel.parent.as_posix()}") and f"`{rel.name}`" in s)
               for s in sections)


def test_every_module_of_training_and_backend_is_in_the_architecture_doc():
    sections = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8").split("\n### ")
    missing = [f"{package}/{path.relative_to(REPO / package).as_posix()}"
               for package in ("training", "backend") for path in sorted((REPO / package).rglob("*.py"))
               if not _listed(sections, package, path.relative_to(REPO / package))]
    assert not missing, f"not in docs/architecture.md: {missing}"
