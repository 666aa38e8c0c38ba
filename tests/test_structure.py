"""The package's structure: no module of mzsr_tf imports one that imports it back."""
import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "mzsr_tf"


def _imports():
    """{module: the mzsr_tf modules (and module.name candidates) it imports, at any depth of its code}."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        name = name[: -len(".__init__")] if name.endswith(".__init__") else name
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mzsr_tf"):
                targets.add(node.module)
                targets.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names if alias.name.startswith("mzsr_tf"))
        found[name] = targets
    return found


def _cycles(imports):
    return sorted((a, b) for a in imports for b in imports[a] & imports.keys() if a < b and a in imports[b])


def test_no_module_imports_one_that_imports_it_back():
    imports = _imports()
    assert len(imports) > 30 and "mzsr_tf.meta_test" in imports and "mzsr_tf.cli" in imports
    assert _cycles(imports) == []


def test_the_check_sees_a_cycle():
    """The check above can fail: meta_test imports self_ensemble; were it imported back, it would be listed."""
    imports = _imports()
    assert "mzsr_tf.self_ensemble" in imports["mzsr_tf.meta_test"]
    imports["mzsr_tf.self_ensemble"].add("mzsr_tf.meta_test")
    assert _cycles(imports) == [("mzsr_tf.meta_test", "mzsr_tf.self_ensemble")]
