"""benchmarks/ shares one helper module, benchmarks/common.py: no benchmark script imports another, and no test
imports a benchmark script. What a script and a test share lives in benchmarks.common (or in the package)."""
import ast

import pytest

from tests.conftest import ROOT

BENCHMARKS = ROOT / "benchmarks"
HELPER = "common"
SCRIPTS = frozenset(path.stem for path in BENCHMARKS.glob("*.py")) - {HELPER}
# Calls that import a module named by a string: importlib.import_module("benchmarks.x"), runpy.run_path(...),
# importlib.util.spec_from_file_location(name, "benchmarks/x.py"), conftest's load_script...
IMPORTING_CALLS = {"import_module", "__import__", "run_module", "run_path", "spec_from_file_location", "load_script"}


def imported_scripts(source, in_benchmarks):
    """The names of benchmark scripts (not the helper module) that source imports: `import benchmarks.x`,
    `from benchmarks import x`, `from benchmarks.x import ...`, a relative import, a string handed to an importing
    call, and, in benchmarks/ itself, where a script runs with its own folder first on sys.path, `import x`."""
    found = set()

    def add(dotted):
        parts = dotted.split(".")
        if parts[0] == "benchmarks":
            found.update(parts[1:2])
        elif in_benchmarks:
            found.add(parts[0])

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level and in_benchmarks:  # from . import x, from .x import y
                found.update([node.module.split(".")[0]] if node.module else [alias.name for alias in node.names])
            elif node.module == "benchmarks":
                found.update(alias.name for alias in node.names)
            elif node.module and not node.level:
                add(node.module)
        elif isinstance(node, ast.Call):
            function = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if function in IMPORTING_CALLS:
                for argument in node.args:
                    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                        text = argument.value.replace("\\", "/").removesuffix(".py")
                        if text.startswith("benchmarks/"):
                            found.add(text.removeprefix("benchmarks/").split("/")[0])
                        elif text.startswith("benchmarks."):
                            add(text)
    return found & SCRIPTS


def offenders(paths, in_benchmarks):
    return {str(path.relative_to(ROOT)): sorted(names) for path in paths
            if (names := imported_scripts(path.read_text(encoding="utf-8"), in_benchmarks))}


def test_the_helper_module_is_there_and_there_are_scripts_beside_it():
    assert (BENCHMARKS / f"{HELPER}.py").is_file()
    assert len(SCRIPTS) > 5  # what the other tests check is not vacuous


def test_no_benchmark_imports_a_benchmark_script():
    assert offenders(sorted(BENCHMARKS.glob("*.py")), in_benchmarks=True) == {}, (
        "a benchmark imports another benchmark script: move what they share into benchmarks/common.py")


def test_no_test_imports_a_benchmark_script():
    assert offenders(sorted((ROOT / "tests").rglob("*.py")), in_benchmarks=False) == {}, (
        "a test imports a benchmark script: move what it needs into benchmarks/common.py, the package, or a test "
        "helper; run a script itself as a user does (conftest's run_script)")


@pytest.mark.parametrize(("source", "in_benchmarks", "expected"), [
    ("import benchmarks.negatives", False, {"negatives"}),
    ("import benchmarks.negatives as n", False, {"negatives"}),
    ("from benchmarks import negatives, common", False, {"negatives"}),
    ("from benchmarks.release_compare import release_tree", False, {"release_compare"}),
    ("def f():\n    from benchmarks.class_bias import leaned_predictions", False, {"class_bias"}),
    ("import importlib\nimportlib.import_module('benchmarks.real_faces')", False, {"real_faces"}),
    ("load_script('benchmarks/negatives.py')", False, {"negatives"}),
    ("import real_video", True, {"real_video"}),
    ("from labelled_video import match", True, {"labelled_video"}),
    ("from . import compare_fer", True, {"compare_fer"}),
    ("import real_video", False, set()),  # outside benchmarks/, a bare name is no benchmark script
    ("from benchmarks.common import paste\nfrom benchmarks import common\nimport numpy", True, set()),
    ("run_script('benchmarks/serve_load.py', '--duration', 8)", False, set()),  # runs it, as a user does
])
def test_imports_of_benchmark_scripts_are_found_however_written(source, in_benchmarks, expected):
    assert imported_scripts(source, in_benchmarks) == expected
