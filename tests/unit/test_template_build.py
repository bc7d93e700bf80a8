"""How template.yaml builds the code: what every cold start on Lambda then pays or not."""

from tests.support import ROOT, template


def test_every_function_ships_its_bytecode() -> None:
    """Lambda cannot write .pyc files: a function built without them compiles its modules
    on every cold start. functions/Makefile and layers/common/Makefile compile them."""
    resources = template()["Resources"]
    functions = {
        name: r for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"
    }
    assert functions
    for name, function in functions.items():
        assert function["Properties"]["CodeUri"] == "functions/", name
        assert function.get("Metadata", {}).get("BuildMethod") == "makefile", name
    for makefile in (ROOT / "functions" / "Makefile", ROOT / "layers" / "common" / "Makefile"):
        assert "compileall" in makefile.read_text(), makefile


def test_the_bench_imports_the_layer_the_template_builds_for_this_machine() -> None:
    """`make bench` times imports from `.aws-sam/build/<layer>`: a name the template must
    define, or the bench fails after deploying (as it did when the layer was split)."""
    import platform

    from bench.imports import lambda_like_path

    layers = {
        name for name, r in template()["Resources"].items() if r["Type"].endswith("LayerVersion")
    }
    with lambda_like_path() as path:
        layer_dir = path.split(":")[1]
    name = layer_dir.removesuffix("/python").rsplit("/", 1)[-1]
    assert name in layers
    built_for = template()["Resources"][name]["Metadata"]["BuildArchitecture"]
    assert built_for == ("arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64")
