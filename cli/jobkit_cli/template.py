"""template.yaml as data: CloudFormation's tags (``!Ref``, ``!Sub`` …) become plain values,
for the tools and tests that read what the template declares."""

from pathlib import Path
from typing import Any

import yaml

from jobkit_cli.paths import project_root


class _CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_CfnLoader.add_multi_constructor("!", _tag)


def load_template(root: Path | None = None) -> dict[str, Any]:
    text = ((root or project_root()) / "template.yaml").read_text()
    loaded: dict[str, Any] = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - tags become values
    return loaded
