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
